"""Small key/value facts about the installation (for example: demo data seeded)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import app_meta


async def get_value(tx: AsyncSession, key: str) -> str | None:
    query = select(app_meta.c.value).where(app_meta.c.key == key)
    value: str | None = (await tx.execute(query)).scalar_one_or_none()
    return value


async def set_value(tx: AsyncSession, key: str, value: str) -> None:
    """Set a key; callers hold the write transaction, so read-then-write is safe."""
    if await get_value(tx, key) is None:
        await tx.execute(insert(app_meta).values(key=key, value=value))
    else:
        await tx.execute(app_meta.update().where(app_meta.c.key == key).values(value=value))
