"""What a moderator sees of a report's or an appeal's target: a message with the few
around it, a character's name, owner, rating and visibility, a user's role and
suspension. Read whatever became of the target (deleted, removed, hidden)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from personae.storage.db import Transaction
from personae.storage.repos import accounts as accounts_repo
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import reports as repo
from personae.storage.repos import reviewed_messages as reviewed
from personae.storage.repos.reviewed_messages import ReviewedMessage

# Messages shown either side of a reported one.
AROUND = 3
_TEXT_MAX_CHARS = 4000


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _message(message: ReviewedMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "position": message.position,
        "content": message.content[:_TEXT_MAX_CHARS],
        "author_id": message.author_id,
        "deleted": message.deleted_at is not None,
        "removed_at": _when(message.removed_at),
        "created_at": _when(message.created_at),
    }


async def message_context(tx: Transaction, message_id: str) -> dict[str, Any]:
    message = await reviewed.get_reviewed_message(tx, message_id)
    if message is None:
        return {"found": False}
    around = await reviewed.messages_around(tx, message.chat_id, message.position, span=AROUND)
    owner = await accounts_repo.get_user(tx, message.chat_owner_id)
    return {
        "found": True,
        "message": _message(message),
        "chat_id": message.chat_id,
        "chat_owner": owner.username if owner else None,
        "character_id": message.character_id,
        "character_name": message.character_name,
        "around": [_message(m) for m in around if m.id != message.id],
    }


async def character_context(tx: Transaction, character_id: str) -> dict[str, Any]:
    character = await characters_repo.get_character(tx, character_id, include_deleted=True)
    if character is None:
        return {"found": False}
    deleted = await characters_repo.get_character(tx, character_id) is None
    return {
        "found": True,
        "name": character.name,
        "tagline": character.tagline,
        "owner_id": character.owner_id,
        "owner_username": character.owner_username,
        "rating": character.rating,
        "visibility": character.visibility,
        "hidden_at": _when(character.hidden_at),
        "deleted": deleted,
    }


async def user_context(tx: Transaction, user_id: str) -> dict[str, Any]:
    user = await accounts_repo.get_user(tx, user_id)
    if user is None:
        return {"found": False}
    warnings = await repo.list_warnings(tx, user.id, limit=100)
    return {
        "found": True,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "suspended_until": _when(user.suspended_until),
        "warnings": len(warnings),
    }


async def target_context(tx: Transaction, target_kind: str, target_id: str) -> dict[str, Any]:
    if target_kind == "message":
        return await message_context(tx, target_id)
    if target_kind == "character":
        return await character_context(tx, target_id)
    return await user_context(tx, target_id)
