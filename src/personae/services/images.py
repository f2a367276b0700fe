"""Pictures by URL: avatars and card images, each in resized variants.

A picture's URL names it by id, and what an id holds never changes (a new avatar
is a new picture), so browsers and proxies may keep it for a year. Who may see a
picture follows its character: a private or hidden character's pictures are not
found by others, and are never marked for shared caches.
"""

from __future__ import annotations

from dataclasses import dataclass

from personae import images
from personae.errors import NotFound
from personae.images import ProcessedImage, Variant
from personae.offload import bounded
from personae.services.characters import can_read
from personae.services.content_ratings import check_may_open
from personae.storage.db import Database
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import images as repo
from personae.storage.repos import rooms as rooms_repo
from personae.storage.repos.accounts import UserRecord


@dataclass(frozen=True)
class ServedImage:
    variant: Variant
    shared_cache: bool  # public: any cache may keep it; otherwise the browser's only


class ImageService:
    """Check and resize uploaded pictures; serve stored ones."""

    def __init__(self, database: Database, *, cpu_budget_s: float, max_pixels: int) -> None:
        self._db = database
        self._cpu_budget_s = cpu_budget_s
        self._max_pixels = max_pixels

    async def prepare(self, data: bytes) -> ProcessedImage:
        """The picture checked, decoded and resized, off the event loop within the CPU
        budget; refused with `image_unsupported`, `image_unreadable` or
        `image_too_many_pixels`."""
        return await bounded(
            self.process,
            data,
            budget_s=self._cpu_budget_s,
            what="reading the picture",
            input_at_fault=True,
        )

    def process(self, data: bytes) -> ProcessedImage:
        """`prepare`, on the calling thread (for work already off the event loop)."""
        return images.process(data, max_pixels=self._max_pixels)

    def as_png(self, data: bytes) -> bytes:
        """The picture as PNG bytes, on the calling thread (card exports)."""
        return images.as_png(data, max_pixels=self._max_pixels)

    async def get(self, image_id: str, size: int, viewer: UserRecord | None) -> ServedImage:
        """The variant of a picture nearest to `size` pixels, for a viewer who may see
        its character."""
        wanted = images.nearest_size(size)
        async with self._db.read() as tx:
            image = await repo.get_image(tx, image_id)
            character = (
                await characters_repo.get_character(tx, image.character_id)
                if image is not None and image.character_id is not None
                else None
            )
            variant = await repo.get_variant(tx, image_id, wanted) if image else None
            # A private character's picture is shown to the members of its rooms.
            in_room = (
                character is not None
                and viewer is not None
                and not can_read(character, viewer)
                and await rooms_repo.shares_room(tx, viewer.id, character.id)
            )
        if image is None or (character is None and (viewer is None or viewer.id != image.owner_id)):
            raise NotFound("No picture with this id.")
        if character is not None:
            if not can_read(character, viewer) and not in_room:
                raise NotFound("No picture with this id.")
            check_may_open(character.rating, character.owner_id, viewer)
        if variant is None:
            variant = await self._make_variants(image_id, wanted)
        shared = (
            character is not None
            and character.visibility == "public"
            and character.hidden_at is None
            and character.rating != "mature"
        )
        return ServedImage(variant, shared)

    async def _make_variants(self, image_id: str, wanted: int) -> Variant:
        """Make and keep the variants of a picture stored without them (an avatar moved
        from a data: URL by migration 0016)."""
        async with self._db.read() as tx:
            original = await repo.get_original(tx, image_id)
        if original is None:
            raise NotFound("No picture with this id.")
        processed = await self.prepare(original)
        async with self._db.write() as tx:
            await repo.add_variants(tx, image_id, processed)
        return next(v for v in processed.variants if v.size == wanted)
