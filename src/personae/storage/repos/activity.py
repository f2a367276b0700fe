"""What a user did lately, for the well-being notices."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import messages


async def recent_message_times(
    tx: AsyncSession, author_id: str, *, since: datetime, limit: int
) -> list[datetime]:
    """When the user sent their messages since `since`, newest first (at most `limit`)."""
    query = (
        select(messages.c.created_at)
        .where(
            messages.c.author_id == author_id,
            messages.c.role == "user",
            messages.c.created_at >= since,
        )
        .order_by(messages.c.created_at.desc())
        .limit(limit)
    )
    return [row[0] for row in (await tx.execute(query)).all()]
