"""Characters: creation, visibility rules, search."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from personae import strict_json
from personae.cards.lorebook import parse_book
from personae.errors import Forbidden, InvalidState, NotFound, VoiceNotInstalled
from personae.images import ProcessedImage
from personae.offload import bounded
from personae.services.accounts import STAFF_ROLES
from personae.services.avatars import check_avatar, checked_own_image, data_url_bytes
from personae.services.content_ratings import check_may_open, lists_mature
from personae.services.quotas import Quotas
from personae.services.voices import choice_from_json, stored_voice, with_voice
from personae.services.warmup import PrefixWarmer
from personae.storage.db import Database, Transaction
from personae.storage.repos import character_assets as assets_repo
from personae.storage.repos import characters as repo
from personae.storage.repos import images as images_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.characters import CharacterRecord, CharacterSort, CreatorStats
from personae.storage.types import utcnow

if TYPE_CHECKING:
    from personae.services.images import ImageService
    from personae.services.voices import VoiceService


class NotPublic(InvalidState):
    """Only public characters are shown on the discover page, so only they can be featured."""

    code = "character_not_public"
    title = "Only a public character can be featured"


def can_read(character: CharacterRecord, viewer: UserRecord | None) -> bool:
    """Private characters exist only for their owner; unlisted ones for whoever has the id.
    A character a moderator hid exists only for its owner, whatever its visibility."""
    if character.visibility != "private" and character.hidden_at is None:
        return True
    return viewer is not None and viewer.id == character.owner_id


def sees_definition(character: CharacterRecord, viewer: UserRecord | None) -> bool:
    """Whether `viewer` may read the character's definition: its creator and staff
    always, others only while the creator shows it (`definition_visible`)."""
    if viewer is not None and (viewer.id == character.owner_id or viewer.role in STAFF_ROLES):
        return True
    return character.definition_visible


def shown_to(character: CharacterRecord, viewer: UserRecord | None) -> CharacterRecord:
    """The character as `viewer` sees it: the definition (system prompt, description,
    personality, scenario, example dialogues, post-history instructions, lorebook and
    the imported card) comes back empty unless they may read it. The name, tagline,
    greetings, tags and avatar are the character's public face."""
    if sees_definition(character, viewer):
        return character
    return replace(
        character,
        description="",
        personality="",
        scenario="",
        example_dialogues="",
        system_prompt="",
        post_history_instructions="",
        character_book=None,
        card=None,
    )


def _can_moderate(character: CharacterRecord, user: UserRecord) -> bool:
    """Moderators and admins find any character, private ones included, to take it
    down or off the featured list; reading and listing stay as `can_read` says."""
    return user.role in STAFF_ROLES or can_read(character, user)


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """Values fit to store: JSON objects and lists within the JSON limits (at most 64
    levels deep, no NaN or Infinity), and a lorebook sent in the card format checked
    and kept in the normalised form."""
    for name, value in values.items():
        if isinstance(value, dict | list):
            strict_json.check(value, name)
    book = values.get("character_book")
    if book is None:
        return values
    return {**values, "character_book": parse_book(book).to_json()}


def _can_delete(character: CharacterRecord, user: UserRecord) -> bool:
    """The creator, or staff taking a character down; nobody else."""
    return user.id == character.owner_id or user.role in STAFF_ROLES


def _changeable(character: CharacterRecord | None, user: UserRecord) -> CharacterRecord:
    """The character, if `user` may change it: only its creator (staff take characters
    down, they do not edit them)."""
    if character is None or not can_read(character, user):
        raise NotFound("No character with this id.")
    if user.id != character.owner_id:
        raise Forbidden("Only the creator of a character can change it.")
    return character


@dataclass(frozen=True)
class _Avatar:
    """What a create or an update does to the avatar."""

    keep: bool  # the field was not sent, or sent back as the current picture's URL
    picture: ProcessedImage | None = None  # an uploaded picture to store


class CharacterService:
    """Create, read, change and find characters."""

    def __init__(
        self,
        database: Database,
        *,
        cpu_budget_s: float,
        quotas: Quotas | None = None,
        images: ImageService | None = None,
        trending_window_days: float = 7.0,
        warmer: PrefixWarmer | None = None,
        voices: VoiceService | None = None,
    ) -> None:
        self._voices = voices
        self._db = database
        self._cpu_budget_s = cpu_budget_s
        self._quotas = quotas or Quotas()
        self._images = images
        self._trending_window = timedelta(days=trending_window_days)
        self._warmer = warmer

    async def _checked(
        self, values: dict[str, Any], current_image: str | None = None
    ) -> tuple[dict[str, Any], _Avatar]:
        """`_normalised(values)`, off the event loop, and an uploaded picture read and
        resized: everything is checked before any write. The `avatar` left in the values
        is an https URL or None; an uploaded picture comes back apart."""
        if "avatar" not in values or checked_own_image(values["avatar"], current_image):
            avatar = _Avatar(keep=True)
            values = {name: value for name, value in values.items() if name != "avatar"}
        else:
            check_avatar(values["avatar"])
            upload = data_url_bytes(values["avatar"])
            picture = None
            if upload is not None:
                assert self._images is not None, "pictures need the image service"
                picture = await self._images.prepare(upload)
                values = {**values, "avatar": None}
            avatar = _Avatar(keep=False, picture=picture)
        normalised = await bounded(
            _normalised,
            values,
            budget_s=self._cpu_budget_s,
            what="checking the character",
            input_at_fault=True,
        )
        return normalised, avatar

    async def _store_avatar(
        self, tx: Transaction, character: CharacterRecord, avatar: _Avatar
    ) -> None:
        """Replace the character's stored picture as `avatar` says; the old one is
        deleted (its bytes go back to the owner's quota)."""
        if avatar.keep:
            return
        if character.avatar_image_id is not None:
            await images_repo.delete_image(tx, character.avatar_image_id)
        image_id = None
        if avatar.picture is not None:
            # After the old picture left: replacing one counts only the new one.
            await self._quotas.check_stored_bytes(tx, character.owner_id, avatar.picture.byte_count)
            image_id = await images_repo.insert_image(
                tx, character.owner_id, character.id, avatar.picture
            )
        if image_id is not None or character.avatar_image_id is not None:
            await repo.set_avatar_image(tx, character.id, image_id)

    def _with_voice(
        self, values: dict[str, Any], current: CharacterRecord | None = None
    ) -> dict[str, Any]:
        """The values with the `voice` field checked and moved into the extensions
        (`extensions["personae"]["voice"]`, so a card keeps it). An update that sends
        new extensions but no voice keeps the character's voice."""
        values = dict(values)
        sent = "voice" in values
        wire = values.pop("voice", None)
        if sent and wire is not None:
            if self._voices is None:
                raise VoiceNotInstalled("voice is not available on this server")
            choice = choice_from_json(wire)
            assert choice is not None, "the schema checked the voice"
            self._voices.check_choice(choice)
        elif sent:
            choice = None
        elif current is not None and "extensions" in values:
            choice = stored_voice(current.extensions)
            if choice is None:
                return values
        else:
            return values
        base = values.get("extensions", current.extensions if current is not None else {})
        values["extensions"] = with_voice(base, choice)
        return values

    async def create(self, owner: UserRecord, values: dict[str, Any]) -> CharacterRecord:
        if values.get("voice") is None:
            values = {name: value for name, value in values.items() if name != "voice"}
        values, avatar = await self._checked(self._with_voice(values))
        async with self._db.write() as tx:
            await self._quotas.check_new_character(tx, owner.id)
            character_id = await repo.insert_character(tx, owner.id, values)
            character = await repo.get_character(tx, character_id)
            assert character is not None
            await self._store_avatar(tx, character, avatar)
            character = await repo.get_character(tx, character_id)
        assert character is not None
        return character

    async def get(self, character_id: str, viewer: UserRecord | None) -> CharacterRecord:
        """A character the viewer may read; others' private ones are simply not found,
        and a mature one is refused to a viewer who is neither an adult nor its owner."""
        return shown_to(await self._readable(character_id, viewer), viewer)

    async def open(self, character_id: str, viewer: UserRecord | None) -> CharacterRecord:
        """`get`, for a character's page being opened: its prompt prefix is warmed for
        the viewer's first reply in the background (lowest priority, see warmup.py)."""
        character = await self._readable(character_id, viewer)
        if self._warmer is not None and viewer is not None:
            self._warmer.character_viewed(character, viewer)
        return shown_to(character, viewer)

    async def _readable(self, character_id: str, viewer: UserRecord | None) -> CharacterRecord:
        async with self._db.read() as tx:
            character = await repo.get_character(tx, character_id)
        if character is None or not can_read(character, viewer):
            raise NotFound("No character with this id.")
        check_may_open(character.rating, character.owner_id, viewer)
        return character

    async def update(
        self, character_id: str, user: UserRecord, values: dict[str, Any]
    ) -> CharacterRecord:
        """Change a character (its creator only). Who may is settled before the values
        are checked, so whoever gets past it has every field applied (the voice too)."""
        async with self._db.read() as tx:
            current = _changeable(await repo.get_character(tx, character_id), user)
        values, avatar = await self._checked(
            self._with_voice(values, current), current.avatar_image_id
        )
        async with self._db.write() as tx:
            character = _changeable(await repo.get_character(tx, character_id), user)
            await repo.update_character(tx, character_id, values)
            await self._store_avatar(tx, character, avatar)
            updated = await repo.get_character(tx, character_id)
        assert updated is not None
        return updated

    async def delete(self, character_id: str, user: UserRecord) -> None:
        """Hide a character from everybody; its chats keep working from the stored copy.
        Its card files and pictures are removed, which gives their bytes back to the
        owner's quota."""
        async with self._db.write() as tx:
            character = await repo.get_character(tx, character_id)
            if character is None or not _can_moderate(character, user):
                raise NotFound("No character with this id.")
            if not _can_delete(character, user):
                raise Forbidden("Only the creator of a character or a moderator can delete it.")
            await repo.soft_delete_character(tx, character_id)
            await assets_repo.delete_assets(tx, character_id)
            await images_repo.delete_character_images(tx, character_id)

    async def set_featured(
        self, character_id: str, user: UserRecord, featured: bool
    ) -> CharacterRecord:
        """Feature a public character on the discover page, or stop featuring one (staff only).

        Featuring twice keeps the first time; unfeaturing works whatever the visibility,
        so a character made private since can still be taken off the list.
        """
        if user.role not in STAFF_ROLES:
            raise Forbidden("Only moderators and admins choose the featured characters.")
        async with self._db.write() as tx:
            character = await repo.get_character(tx, character_id)
            if character is None or not _can_moderate(character, user):
                raise NotFound("No character with this id.")
            if featured and character.visibility != "public":
                raise NotPublic(
                    f"This character is {character.visibility}; only public characters are "
                    "listed, so only they can be featured."
                )
            if featured != character.featured:
                await repo.set_featured(tx, character_id, utcnow() if featured else None)
            updated = await repo.get_character(tx, character_id)
        assert updated is not None
        return updated

    async def search(
        self,
        viewer: UserRecord | None,
        *,
        query: str | None = None,
        tag: str | None = None,
        sort: CharacterSort = "new",
        owner_id: str | None = None,
        limit: int = 24,
        offset: int = 0,
        featured: bool | None = None,
    ) -> list[CharacterRecord]:
        """Characters for discovery and search; mature ones only for a confirmed adult
        who turned them on (and always the viewer's own). "trending" ranks by the
        messages sent in the last PERSONAE_TRENDING_WINDOW_DAYS."""
        async with self._db.read() as tx:
            found = await repo.search_characters(
                tx,
                viewer_id=viewer.id if viewer else None,
                query=query.strip() if query else None,
                tag=tag.strip() if tag else None,
                sort=sort,
                owner_id=owner_id,
                limit=limit,
                offset=offset,
                featured=featured,
                include_mature=lists_mature(viewer),
                trending_since=utcnow() - self._trending_window,
            )
        return [shown_to(character, viewer) for character in found]

    async def creator_stats(self, owner: UserRecord) -> list[CreatorStats]:
        """The owner's characters with their chats, messages and ratings (only ever
        the asker's own: nobody sees another creator's figures)."""
        async with self._db.read() as tx:
            return await repo.creator_stats(tx, owner.id)
