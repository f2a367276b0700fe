"""Deleting an account, after a confirmation, in one transaction: all or nothing.

What happens to what the account owned (docs/settings.md, "Deleting an account"):

- its chats with every message, swipe, memory, recall vector and reply job, its
  personas, sessions, API tokens, appeals and the warnings it got: deleted;
- its characters: a public or unlisted one that somebody else has a chat with stays,
  anonymised (its creator becomes the deleted account, its `creator` field is
  cleared), so their chats go on, as Character.AI and Reddit keep content under an
  anonymous author; every other one is deleted (one whose row others' old chats
  still name is deleted as its owner's delete does: out of every list, files gone);
- reports it filed stay for the moderators, under the anonymised account;
- the account itself becomes an anonymous tombstone (no name, password or age,
  marked deleted): nothing can log in to it, and its username is free at once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from personae.errors import ConfirmationMismatch, LastAdmin
from personae.services.accounts import DELETED_USERNAME_PREFIX, AccountService
from personae.storage.db import Database
from personae.storage.repos import account_deletion as repo
from personae.storage.repos.account_deletion import OwnedCharacter
from personae.storage.repos.accounts import UserRecord

DELETED_DISPLAY_NAME = "Deleted account"
_KEPT_VISIBILITIES = frozenset({"public", "unlisted"})


@dataclass(frozen=True)
class DeletionSummary:
    chats_deleted: int
    characters_deleted: int
    characters_anonymised: int


def tombstone_username(user_id: str) -> str:
    """A unique name no one can register (the prefix is reserved): 28 characters."""
    return DELETED_USERNAME_PREFIX + user_id[-20:].lower()


def _stays(character: OwnedCharacter) -> bool:
    return (
        not character.deleted
        and character.chatted_by_others
        and character.visibility in _KEPT_VISIBILITIES
    )


def _card_without_creator(card: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored card with its `creator` emptied (V2/V3 keep it under `data`)."""
    if not isinstance(card, dict):
        return card
    cleared = copy.deepcopy(card)
    for holder in (cleared, cleared.get("data")):
        if isinstance(holder, dict) and "creator" in holder:
            holder["creator"] = ""
    return cleared


class AccountDeletion:
    """DELETE /api/v1/me. Knows no HTTP and no SQL."""

    def __init__(self, database: Database, accounts: AccountService) -> None:
        self._db = database
        self._accounts = accounts

    async def delete(
        self, user: UserRecord, *, password: str | None, confirm: str | None, ip: str | None
    ) -> DeletionSummary:
        """Delete the account once confirmed: with its current password, or, for an
        account without one, by typing its username as `confirm`."""
        if user.password_hash is not None:
            await self._accounts.confirm_password(user, password, ip=ip)
        elif (confirm or "").strip().lower() != user.username:
            raise ConfirmationMismatch(
                f"Type your username, {user.username}, to confirm; nothing was deleted.",
                extra={"errors": [{"field": "confirm", "message": "does not match"}]},
            )
        async with self._db.write() as tx:
            if user.role == "admin" and await repo.count_admins(tx) <= 1:
                raise LastAdmin(
                    "You are the only admin: make another account admin first "
                    "(`personae user set-role`), then delete this one. Nothing was deleted."
                )
            chats_deleted = await repo.delete_chats_of(tx, user.id)
            owned = await repo.owned_characters(tx, user.id)
            kept = [character for character in owned if _stays(character)]
            gone = [character for character in owned if not _stays(character)]
            for character in kept:
                await repo.clear_creator(tx, character.id, _card_without_creator(character.card))
            await repo.retire_characters(tx, [c.id for c in gone if c.chatted_by_others])
            await repo.delete_characters(tx, [c.id for c in gone if not c.chatted_by_others])
            await repo.delete_belongings(tx, user.id)
            await repo.scrub_user(
                tx,
                user.id,
                username=tombstone_username(user.id),
                display_name=DELETED_DISPLAY_NAME,
            )
        return DeletionSummary(
            chats_deleted=chats_deleted,
            characters_deleted=len(gone),
            characters_anonymised=len(kept),
        )
