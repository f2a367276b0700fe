"""What a user stores, counted from the tables that store it, for the quotas."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import character_assets, characters, images, users


async def lock_owner(tx: AsyncSession, owner_id: str) -> None:
    """Hold the user's row until the transaction ends, so two writes of one user that
    are counted against a quota are counted one after the other (PostgreSQL; SQLite
    has a single writer already)."""
    await tx.execute(select(users.c.id).where(users.c.id == owner_id).with_for_update())


async def owned_asset_bytes(tx: AsyncSession, owner_id: str) -> int:
    """The bytes of the card files and pictures of the user's characters (deleted ones
    keep none)."""
    query = (
        select(func.coalesce(func.sum(func.length(character_assets.c.data)), 0))
        .select_from(
            character_assets.join(characters, characters.c.id == character_assets.c.character_id)
        )
        .where(characters.c.owner_id == owner_id, characters.c.deleted_at.is_(None))
    )
    pictures = select(func.coalesce(func.sum(images.c.byte_count), 0)).where(
        images.c.owner_id == owner_id
    )
    return int((await tx.execute(query)).scalar_one()) + int(
        (await tx.execute(pictures)).scalar_one()
    )
