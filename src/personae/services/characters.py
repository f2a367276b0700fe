"""Characters: creation, visibility rules, search."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from personae import strict_json
from personae.cards.lorebook import parse_book
from personae.errors import Forbidden, InvalidState, NotFound
from personae.offload import bounded
from personae.services.accounts import STAFF_ROLES
from personae.services.avatars import check_avatar
from personae.services.content_ratings import check_may_open, lists_mature
from personae.services.quotas import Quotas
from personae.services.warmup import PrefixWarmer
from personae.storage.db import Database
from personae.storage.repos import character_assets as assets_repo
from personae.storage.repos import characters as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.characters import CharacterRecord, CharacterSort
from personae.storage.types import utcnow


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


class CharacterService:
    """Create, read, change and find characters."""

    def __init__(
        self,
        database: Database,
        *,
        cpu_budget_s: float,
        quotas: Quotas | None = None,
        warmer: PrefixWarmer | None = None,
    ) -> None:
        self._db = database
        self._cpu_budget_s = cpu_budget_s
        self._quotas = quotas or Quotas()
        self._warmer = warmer

    async def _checked(self, values: dict[str, Any]) -> dict[str, Any]:
        """`_normalised(values)`, off the event loop: everything is checked before any write."""
        check_avatar(values.get("avatar"))
        return await bounded(
            _normalised,
            values,
            budget_s=self._cpu_budget_s,
            what="checking the character",
            input_at_fault=True,
        )

    async def create(self, owner: UserRecord, values: dict[str, Any]) -> CharacterRecord:
        values = await self._checked(values)
        async with self._db.write() as tx:
            await self._quotas.check_new_character(tx, owner.id)
            character_id = await repo.insert_character(tx, owner.id, values)
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
        values = await self._checked(values)
        async with self._db.write() as tx:
            character = await repo.get_character(tx, character_id)
            if character is None or not can_read(character, user):
                raise NotFound("No character with this id.")
            if user.id != character.owner_id:
                raise Forbidden("Only the creator of a character can change it.")
            await repo.update_character(tx, character_id, values)
            updated = await repo.get_character(tx, character_id)
        assert updated is not None
        return updated

    async def delete(self, character_id: str, user: UserRecord) -> None:
        """Hide a character from everybody; its chats keep working from the stored copy.
        Its card files are removed, which gives their bytes back to the owner's quota."""
        async with self._db.write() as tx:
            character = await repo.get_character(tx, character_id)
            if character is None or not _can_moderate(character, user):
                raise NotFound("No character with this id.")
            if not _can_delete(character, user):
                raise Forbidden("Only the creator of a character or a moderator can delete it.")
            await repo.soft_delete_character(tx, character_id)
            await assets_repo.delete_assets(tx, character_id)

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
        who turned them on (and always the viewer's own)."""
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
            )
        return [shown_to(character, viewer) for character in found]
