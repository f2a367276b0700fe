"""Character cards in and out: import a JSON/PNG/CHARX card, export one, set a lorebook."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from personae.cards.card import CARD_KEYS, ExportSpec, ParsedCard, build_card
from personae.cards.charx import ArchiveFile
from personae.cards.files import (
    ImportedFile,
    card_charx,
    card_json,
    card_png,
    read_card_file,
    read_lorebook_file,
)
from personae.cards.lorebook import Lorebook
from personae.errors import CardTooLarge, DefinitionHidden, Forbidden, NotFound, PayloadTooLarge
from personae.images import ProcessedImage
from personae.offload import bounded
from personae.services.characters import can_read, sees_definition
from personae.services.content_ratings import check_may_open
from personae.services.quotas import Quotas
from personae.storage.db import Database
from personae.storage.repos import character_assets as assets_repo
from personae.storage.repos import characters as repo
from personae.storage.repos import images as images_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.character_assets import AssetRecord
from personae.storage.repos.characters import CharacterRecord

if TYPE_CHECKING:
    from personae.services.images import ImageService

CardFormat = Literal["json", "png", "charx"]
# Unpacked CHARX archives may be this many times larger than the upload limit.
UNPACK_FACTOR = 8
_EMBEDDED = "embeded://"  # sic: the V3 spec's spelling
_PNG_IMAGE_PATH = "avatar.png"
_PICTURE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_MEDIA_TYPES = {"json": "application/json", "png": "image/png", "charx": "application/zip"}


@dataclass(frozen=True)
class CardDownload:
    filename: str
    media_type: str
    content: bytes


def _media_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _archive_assets(card: ParsedCard, files: list[ArchiveFile]) -> list[AssetRecord]:
    """A CHARX's files, each described by the card's asset entry that points at it."""
    described = {
        str(asset.get("uri", ""))[len(_EMBEDDED) :]: asset
        for asset in card.assets
        if str(asset.get("uri", "")).startswith(_EMBEDDED)
    }
    records = []
    for item in files:
        asset = described.get(item.path, {})
        if not asset and item.path == _PNG_IMAGE_PATH:
            # Our own exports carry a PNG card's image here, outside the card's assets.
            asset = {"type": "icon", "name": "main", "ext": "png", "uri": "ccdefault:"}
        suffix = item.path.rpartition(".")[2] if "." in item.path else ""
        ext = str(asset.get("ext") or suffix)
        records.append(
            AssetRecord(
                path=item.path,
                type=str(asset.get("type") or "other"),
                name=str(asset.get("name") or item.path.rsplit("/", 1)[-1]),
                ext=ext,
                media_type=_media_type(item.path),
                uri=str(asset["uri"]) if asset else None,
                data=item.data,
            )
        )
    return records


def _imported_assets(imported: ImportedFile) -> list[AssetRecord]:
    if imported.image is not None:
        image = AssetRecord(
            _PNG_IMAGE_PATH, "icon", "main", "png", "image/png", "ccdefault:", imported.image
        )
        return [image]
    return _archive_assets(imported.card, imported.files)


def _main_icon(assets: list[AssetRecord]) -> AssetRecord | None:
    icons = [a for a in assets if a.type == "icon" and a.media_type.startswith("image/")]
    return next((a for a in icons if a.name == "main"), icons[0] if icons else None)


def _avatar_source(assets: list[AssetRecord]) -> bytes | None:
    """The card's picture that becomes the avatar: its main icon when it is named as a
    picture an avatar may be (PNG, JPEG, GIF or WebP: an SVG icon is not). One named
    so that is something else is refused on reading (`image_unsupported`)."""
    icon = _main_icon(assets)
    if icon is None or icon.media_type not in _PICTURE_TYPES:
        return None
    return icon.data


def _avatar_png(
    assets: list[AssetRecord], picture: bytes | None, images: ImageService | None
) -> bytes | None:
    """The PNG a PNG card is written into: the card's own image, else the character's
    stored picture (turned into a PNG when it is not one)."""
    icon = _main_icon(assets)
    if icon is not None and icon.media_type == "image/png":
        return icon.data
    if picture is None or images is None:
        return None
    return images.as_png(picture)


def _filename(name: str, extension: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:64]
    return f"{slug or 'character'}.{extension}"


def _card(character: CharacterRecord, spec: ExportSpec) -> dict[str, Any]:
    fields = {name: getattr(character, name) for name in CARD_KEYS}
    if character.card is None and fields["creation_date"] is None:
        fields["creation_date"] = int(character.created_at.timestamp())
    return build_card(
        spec, fields, character.card, modified_at=int(character.updated_at.timestamp())
    )


def card_document(character: CharacterRecord, spec: ExportSpec = "v3") -> dict[str, Any]:
    """The character as the card JSON `card.json` downloads (V3 unless asked for V2)."""
    return _card(character, spec)


@dataclass(frozen=True)
class _Export:
    character: CharacterRecord
    assets: list[AssetRecord]
    picture: bytes | None  # the stored avatar's original


def _card_file(
    export: _Export, container: CardFormat, spec: ExportSpec, images: ImageService | None
) -> bytes:
    """The bytes of a card download (CPU-bound: run off the event loop)."""
    character = export.character
    if container == "json":
        return card_json(_card(character, spec))
    if container == "png":
        return card_png(
            _avatar_png(export.assets, export.picture, images),
            v2=_card(character, "v2"),
            v3=_card(character, "v3"),
            seed=character.id,
        )
    files = [ArchiveFile(asset.path, asset.data) for asset in export.assets]
    return card_charx(_card(character, "v3"), files)


class CardService:
    """Import and export Character Card V2/V3 files; standalone lorebooks."""

    def __init__(
        self,
        database: Database,
        *,
        max_upload_bytes: int,
        cpu_budget_s: float,
        card_assets_max_bytes: int | None = None,
        quotas: Quotas | None = None,
        images: ImageService | None = None,
    ) -> None:
        self._db = database
        self._images = images
        self._max_upload_bytes = max_upload_bytes
        self._cpu_budget_s = cpu_budget_s
        self._card_assets_max_bytes = card_assets_max_bytes
        self._quotas = quotas or Quotas()

    def _read_import(
        self, data: bytes, visibility: str
    ) -> tuple[dict[str, Any], list[AssetRecord], ProcessedImage | None]:
        """The new character's values, assets and picture from a card file (CPU-bound:
        run off the event loop). A card whose picture is damaged or too large in
        pixels is refused, rather than imported without its picture."""
        cap = self._card_assets_max_bytes
        imported = read_card_file(
            data, max_unpacked=self._max_upload_bytes * UNPACK_FACTOR, max_card_bytes=cap
        )
        assets = _imported_assets(imported)
        if cap is not None and imported.image is not None and len(imported.image) > cap:
            raise CardTooLarge(
                f"The card's image is larger than {cap} bytes, the most one card may store.",
                extra={"limit": cap},
            )
        source = _avatar_source(assets)
        picture = None
        if source is not None and self._images is not None:
            picture = self._images.process(source)
        values: dict[str, Any] = {
            **imported.card.fields,
            "tagline": "",
            "avatar": None,
            "visibility": visibility,
            "card": imported.card.document,
        }
        return values, assets, picture

    async def import_card(
        self, owner: UserRecord, data: bytes, *, visibility: str = "public"
    ) -> CharacterRecord:
        """A new character from a card file; a refused file leaves nothing stored.

        The file is read and checked in full (within the card's byte cap), and its
        picture resized, before the one transaction that checks the owner's quotas and
        stores the character, its assets and its picture.
        """
        if len(data) > self._max_upload_bytes:
            raise PayloadTooLarge(f"The file is larger than {self._max_upload_bytes} bytes.")
        values, assets, picture = await bounded(
            self._read_import,
            data,
            visibility,
            budget_s=self._cpu_budget_s,
            what="reading the card",
            input_at_fault=True,
        )
        asset_bytes = sum(len(asset.data) for asset in assets)
        picture_bytes = picture.byte_count if picture is not None else 0
        async with self._db.write() as tx:
            await self._quotas.check_new_character(
                tx, owner.id, asset_bytes=asset_bytes + picture_bytes
            )
            character_id = await repo.insert_character(tx, owner.id, values)
            await assets_repo.insert_assets(tx, character_id, assets)
            if picture is not None:
                image_id = await images_repo.insert_image(tx, owner.id, character_id, picture)
                await repo.set_avatar_image(tx, character_id, image_id)
            character = await repo.get_character(tx, character_id)
        assert character is not None
        return character

    async def export_card(
        self,
        character_id: str,
        viewer: UserRecord | None,
        container: CardFormat,
        *,
        spec: ExportSpec = "v3",
    ) -> CardDownload:
        """The character as a card file; others' private characters are not found."""
        async with self._db.read() as tx:
            character = await repo.get_character(tx, character_id)
            if character is None or not can_read(character, viewer):
                raise NotFound("No character with this id.")
            check_may_open(character.rating, character.owner_id, viewer)
            if not sees_definition(character, viewer):
                raise DefinitionHidden(
                    "This character's creator keeps its definition to themselves, so it "
                    "cannot be exported. You can still chat with it."
                )
            assets = await assets_repo.list_assets(tx, character_id) if container != "json" else []
            picture = None
            if container == "png" and character.avatar_image_id is not None:
                picture = await images_repo.get_original(tx, character.avatar_image_id)
        content = await bounded(
            _card_file,
            _Export(character, assets, picture),
            container,
            spec,
            self._images,
            budget_s=self._cpu_budget_s,
            what="writing the card",
        )
        filename = _filename(character.name, "card.json" if container == "json" else container)
        return CardDownload(filename, _MEDIA_TYPES[container], content)

    async def set_lorebook(
        self, character_id: str, user: UserRecord, data: bytes
    ) -> CharacterRecord:
        """Replace a character's lorebook with a standalone `lorebook_v3` file."""
        if len(data) > self._max_upload_bytes:
            raise PayloadTooLarge(f"The file is larger than {self._max_upload_bytes} bytes.")
        book: Lorebook = await bounded(
            read_lorebook_file,
            data,
            budget_s=self._cpu_budget_s,
            what="reading the lorebook",
            input_at_fault=True,
        )
        async with self._db.write() as tx:
            character = await repo.get_character(tx, character_id)
            if character is None or not can_read(character, user):
                raise NotFound("No character with this id.")
            if user.id != character.owner_id:
                raise Forbidden("Only the creator of a character can change its lorebook.")
            await repo.update_character(tx, character_id, {"character_book": book.to_json()})
            updated = await repo.get_character(tx, character_id)
        assert updated is not None
        return updated
