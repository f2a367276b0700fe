"""Stored pictures (avatars, card images) and their resized variants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from personae.images import ProcessedImage, Variant
from personae.storage.tables import image_variants, images
from personae.storage.types import new_id, utcnow


@dataclass(frozen=True)
class ImageRecord:
    id: str
    owner_id: str
    character_id: str | None
    sha256: str
    media_type: str
    width: int  # 0: not read yet (moved from a data: URL by migration 0016)
    height: int
    byte_count: int
    created_at: datetime


def _variant_rows(image_id: str, variants: list[Variant]) -> list[dict[str, object]]:
    return [
        {
            "image_id": image_id,
            "size": v.size,
            "media_type": v.media_type,
            "width": v.width,
            "height": v.height,
            "etag": v.etag,
            "data": v.data,
        }
        for v in variants
    ]


async def insert_image(
    tx: AsyncSession, owner_id: str, character_id: str | None, image: ProcessedImage
) -> str:
    """Store a picture and its variants (in the caller's transaction); returns its id."""
    image_id = new_id()
    await tx.execute(
        insert(images).values(
            id=image_id,
            owner_id=owner_id,
            character_id=character_id,
            sha256=image.sha256,
            media_type=image.media_type,
            width=image.width,
            height=image.height,
            byte_count=image.byte_count,
            data=image.original,
            created_at=utcnow(),
        )
    )
    if image.variants:
        await tx.execute(insert(image_variants), _variant_rows(image_id, image.variants))
    return image_id


async def get_image(tx: AsyncSession, image_id: str) -> ImageRecord | None:
    columns = [c for c in images.c if c.name != "data"]
    row = (await tx.execute(select(*columns).where(images.c.id == image_id))).mappings().first()
    return ImageRecord(**row) if row else None


async def get_original(tx: AsyncSession, image_id: str) -> bytes | None:
    query = select(images.c.data).where(images.c.id == image_id)
    data = (await tx.execute(query)).scalar_one_or_none()
    return bytes(data) if data is not None else None


async def get_variant(tx: AsyncSession, image_id: str, size: int) -> Variant | None:
    query = select(image_variants).where(
        image_variants.c.image_id == image_id, image_variants.c.size == size
    )
    row = (await tx.execute(query)).mappings().first()
    if row is None:
        return None
    return Variant(
        row["size"], row["media_type"], row["width"], row["height"], bytes(row["data"]), row["etag"]
    )


async def add_variants(tx: AsyncSession, image_id: str, processed: ProcessedImage) -> None:
    """Store the variants of a picture read late (moved by migration 0016), once: a
    second process that made them at the same time finds them there and adds none."""
    have = set(
        (
            await tx.execute(
                select(image_variants.c.size).where(image_variants.c.image_id == image_id)
            )
        ).scalars()
    )
    missing = [v for v in processed.variants if v.size not in have]
    if not missing:
        return
    await tx.execute(insert(image_variants), _variant_rows(image_id, missing))
    await tx.execute(
        update(images)
        .where(images.c.id == image_id)
        .values(
            width=processed.width,
            height=processed.height,
            byte_count=images.c.byte_count + sum(len(v.data) for v in missing),
        )
    )


async def delete_image(tx: AsyncSession, image_id: str) -> None:
    await tx.execute(delete(image_variants).where(image_variants.c.image_id == image_id))
    await tx.execute(delete(images).where(images.c.id == image_id))


async def delete_character_images(tx: AsyncSession, character_id: str) -> None:
    """Remove a character's pictures (a deleted character's are of no use to anyone)."""
    ids = select(images.c.id).where(images.c.character_id == character_id)
    await tx.execute(delete(image_variants).where(image_variants.c.image_id.in_(ids)))
    await tx.execute(delete(images).where(images.c.character_id == character_id))


async def originals_of(tx: AsyncSession, image_ids: list[str]) -> dict[str, tuple[str, bytes]]:
    """(media type, bytes) of each picture's original, by id (for exports)."""
    if not image_ids:
        return {}
    query = select(images.c.id, images.c.media_type, images.c.data).where(
        images.c.id.in_(image_ids)
    )
    return {row[0]: (row[1], bytes(row[2])) for row in (await tx.execute(query)).all()}
