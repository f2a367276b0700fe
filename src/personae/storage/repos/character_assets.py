"""Files that came with a character's card (CHARX assets, a PNG card's image)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import character_assets


@dataclass(frozen=True)
class AssetRecord:
    path: str  # inside a CHARX archive
    type: str  # "icon", "background", "emotion", ... or "other" for unlisted files
    name: str
    ext: str
    media_type: str
    uri: str | None  # the card's own reference to the file, e.g. embeded://assets/x.png
    data: bytes


async def insert_assets(tx: AsyncSession, character_id: str, assets: list[AssetRecord]) -> None:
    """Store a character's asset files (in the caller's transaction)."""
    if not assets:
        return
    await tx.execute(
        insert(character_assets),
        [
            {
                "character_id": character_id,
                "path": asset.path,
                "type": asset.type,
                "name": asset.name,
                "ext": asset.ext,
                "media_type": asset.media_type,
                "uri": asset.uri,
                "data": asset.data,
            }
            for asset in assets
        ],
    )


async def list_assets(tx: AsyncSession, character_id: str) -> list[AssetRecord]:
    """A character's asset files, by path."""
    query = (
        select(character_assets)
        .where(character_assets.c.character_id == character_id)
        .order_by(character_assets.c.path)
    )
    rows = (await tx.execute(query)).mappings()
    return [
        AssetRecord(
            path=row["path"],
            type=row["type"],
            name=row["name"],
            ext=row["ext"],
            media_type=row["media_type"],
            uri=row["uri"],
            data=bytes(row["data"]),
        )
        for row in rows
    ]


async def delete_assets(tx: AsyncSession, character_id: str) -> None:
    """Remove a character's asset files (a deleted character's are of no use to anyone)."""
    await tx.execute(
        delete(character_assets).where(character_assets.c.character_id == character_id)
    )
