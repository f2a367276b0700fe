"""Chats and their messages (with swipes: sibling replies at one position)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import characters, chats, message_vectors, messages
from personae.storage.types import new_id, utcnow


class DuplicateMessage(Exception):
    """A message with this client_id is already stored (the transaction is void)."""


@dataclass(frozen=True)
class ChatRecord:
    id: str
    owner_id: str
    character_id: str
    character_name: str
    title: str
    persona_name: str
    persona_description: str
    next_position: int
    backend: str | None
    created_at: datetime
    updated_at: datetime
    persona_id: str | None = None
    prompt_changed_at: datetime | None = None
    # The character's content rating now (the mature gate reads it on every send).
    character_rating: str = "general"
    # 'direct' (one owner, one character) or 'room' (members and characters).
    kind: str = "direct"
    turn_mode: str = "natural"
    auto_turns_left: int = 0

    @property
    def is_room(self) -> bool:
        return self.kind == "room"

    @property
    def prompt_version(self) -> datetime:
        """Changes when the chat changes in a way its next prompt shows."""
        return self.prompt_changed_at or self.created_at


@dataclass(frozen=True)
class MessageRecord:
    id: str
    chat_id: str
    author_id: str | None
    role: str
    position: int
    swipe_index: int
    selected: bool
    parent_id: str | None
    client_id: str | None
    content_hash: str | None
    content: str
    status: str
    error_code: str | None
    retryable: bool
    rating: int | None
    labels: dict[str, Any]
    backend: str | None
    generation: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    swipe_count: int = 1
    # The moderation category that ended the reply (status "filtered"), else None.
    filtered_category: str | None = None
    # Why the reply ended (stop, length, stopped, filtered, failed); None while it is
    # written, for a user message, and for replies stored before it was recorded.
    finish_reason: str | None = None
    # Cut by the token limit and trimmed to its last whole sentence.
    cut_short: bool = False
    # Which character of a room wrote it (None in a one-on-one chat).
    character_id: str | None = None


_MESSAGE_FIELDS = [f.name for f in fields(MessageRecord) if f.name != "swipe_count"]


def _chat(row: RowMapping) -> ChatRecord:
    return ChatRecord(**{f.name: row[f.name] for f in fields(ChatRecord)})


def _message(row: RowMapping, swipe_count: int = 1) -> MessageRecord:
    values = {name: row[name] for name in _MESSAGE_FIELDS}
    return MessageRecord(**values, swipe_count=swipe_count)


@functools.cache
def _chat_query() -> Any:
    """A chat with its character's name (built once: a Select is immutable, and building
    this join took a tenth of a millisecond on every read)."""
    return (
        select(
            *chats.c,
            characters.c.name.label("character_name"),
            characters.c.rating.label("character_rating"),
        )
        .select_from(chats.join(characters, characters.c.id == chats.c.character_id))
        .where(chats.c.deleted_at.is_(None))
    )


# --- chats -----------------------------------------------------------------------


async def insert_chat(
    tx: AsyncSession,
    *,
    owner_id: str,
    character_id: str,
    title: str,
    persona_name: str,
    persona_description: str,
    persona_id: str | None = None,
    kind: str = "direct",
    turn_mode: str = "natural",
) -> str:
    now = utcnow()
    chat_id = new_id()
    await tx.execute(
        insert(chats).values(
            id=chat_id,
            owner_id=owner_id,
            character_id=character_id,
            title=title,
            persona_name=persona_name,
            persona_description=persona_description,
            persona_id=persona_id,
            kind=kind,
            turn_mode=turn_mode,
            next_position=0,
            created_at=now,
            updated_at=now,
            prompt_changed_at=now,
        )
    )
    return chat_id


async def get_chat(tx: AsyncSession, chat_id: str) -> ChatRecord | None:
    row = (await tx.execute(_chat_query().where(chats.c.id == chat_id))).mappings().first()
    return _chat(row) if row else None


async def prompt_version(tx: AsyncSession, chat_id: str) -> datetime | None:
    """The chat's `ChatRecord.prompt_version` (None once it is deleted)."""
    query = select(chats.c.prompt_changed_at, chats.c.created_at).where(
        chats.c.id == chat_id, chats.c.deleted_at.is_(None)
    )
    row = (await tx.execute(query)).first()
    if row is None:
        return None
    changed: datetime = row[0] or row[1]
    return changed


async def lock_chat(tx: AsyncSession, chat_id: str) -> ChatRecord | None:
    """Read a chat and hold its row until the transaction ends (PostgreSQL row lock;
    SQLite's single writer already serialises)."""
    query = _chat_query().where(chats.c.id == chat_id).with_for_update(of=chats)
    row = (await tx.execute(query)).mappings().first()
    return _chat(row) if row else None


async def update_chat(tx: AsyncSession, chat_id: str, **values: Any) -> None:
    await tx.execute(
        update(chats).where(chats.c.id == chat_id).values(updated_at=utcnow(), **values)
    )


async def prompt_changed(tx: AsyncSession, chat_id: str, **values: Any) -> None:
    """Like `update_chat`, for a change the chat's next prompt shows: replies read
    ahead for this chat are read again."""
    now = utcnow()
    await tx.execute(
        update(chats)
        .where(chats.c.id == chat_id)
        .values(updated_at=now, prompt_changed_at=now, **values)
    )


async def soft_delete_chat(tx: AsyncSession, chat_id: str) -> None:
    now = utcnow()
    await tx.execute(
        update(chats).where(chats.c.id == chat_id).values(deleted_at=now, updated_at=now)
    )


async def reserve_positions(tx: AsyncSession, chat: ChatRecord, count: int) -> int:
    """Take `count` consecutive positions in a locked chat; returns the first."""
    first = chat.next_position
    await tx.execute(
        update(chats)
        .where(chats.c.id == chat.id)
        .values(next_position=first + count, updated_at=utcnow())
    )
    return first


# --- messages --------------------------------------------------------------------


async def insert_message(
    tx: AsyncSession,
    *,
    chat_id: str,
    role: str,
    position: int,
    content: str,
    status: str,
    author_id: str | None = None,
    swipe_index: int = 0,
    selected: bool = True,
    parent_id: str | None = None,
    client_id: str | None = None,
    content_hash: str | None = None,
    labels: dict[str, Any] | None = None,
    character_id: str | None = None,
) -> MessageRecord:
    """Store a message; returns it as stored (its swipe count as if it were the only
    one at its position: callers adding a swipe beside others read it back)."""
    now = utcnow()
    record = MessageRecord(
        id=new_id(),
        chat_id=chat_id,
        author_id=author_id,
        role=role,
        position=position,
        swipe_index=swipe_index,
        selected=selected,
        parent_id=parent_id,
        client_id=client_id,
        content_hash=content_hash,
        content=content,
        status=status,
        error_code=None,
        retryable=False,
        rating=None,
        labels=labels or {},
        backend=None,
        generation=None,
        created_at=now,
        updated_at=now,
        character_id=character_id,
    )
    # Columns left out stay SQL NULL (a JSON column given None would store JSON null).
    unset = {"error_code", "rating", "backend", "generation", "filtered_category", "finish_reason"}
    values = {name: getattr(record, name) for name in _MESSAGE_FIELDS if name not in unset}
    try:
        await tx.execute(insert(messages).values(**values))
    except IntegrityError as error:
        # The UNIQUE index on (chat, author, client_id): another request stored it first.
        raise DuplicateMessage(client_id or "") from error
    return record


def _swipe_count_column() -> Any:
    """How many live messages share the row's position (a subquery: one statement)."""
    siblings = messages.alias("siblings")
    return (
        select(func.count())
        .where(
            siblings.c.chat_id == messages.c.chat_id,
            siblings.c.position == messages.c.position,
            siblings.c.deleted_at.is_(None),
        )
        .scalar_subquery()
        .label("swipe_count")
    )


# Built once: every reply reads messages through it, and building it costs more than
# running it.
_SWIPE_COUNT = _swipe_count_column()


async def get_message(tx: AsyncSession, message_id: str) -> MessageRecord | None:
    query = select(messages, _SWIPE_COUNT).where(
        messages.c.id == message_id, messages.c.deleted_at.is_(None)
    )
    row = (await tx.execute(query)).mappings().first()
    return _message(row, int(row["swipe_count"])) if row else None


async def lock_message(tx: AsyncSession, message_id: str) -> MessageRecord | None:
    """Read a message and hold its row until the transaction ends (PostgreSQL row lock;
    SQLite's single writer already serialises): what is checked against its text stays
    true until commit, since every change of the text locks the row first."""
    query = (
        select(messages, _SWIPE_COUNT)
        .where(messages.c.id == message_id, messages.c.deleted_at.is_(None))
        .with_for_update(of=messages)
    )
    row = (await tx.execute(query)).mappings().first()
    return _message(row, int(row["swipe_count"])) if row else None


async def get_by_client_id(
    tx: AsyncSession, chat_id: str, author_id: str, client_id: str
) -> MessageRecord | None:
    """The message a client sent with this id (deleted ones too: the id stays taken)."""
    query = select(messages).where(
        messages.c.chat_id == chat_id,
        messages.c.author_id == author_id,
        messages.c.client_id == client_id,
    )
    row = (await tx.execute(query)).mappings().first()
    return _message(row) if row else None


async def get_reply_to(tx: AsyncSession, parent_id: str) -> MessageRecord | None:
    """The first reply written for a user message."""
    query = (
        select(messages)
        .where(messages.c.parent_id == parent_id)
        .order_by(messages.c.swipe_index)
        .limit(1)
    )
    row = (await tx.execute(query)).mappings().first()
    return _message(row) if row else None


async def list_swipes(tx: AsyncSession, chat_id: str, position: int) -> list[MessageRecord]:
    query = (
        select(messages)
        .where(
            messages.c.chat_id == chat_id,
            messages.c.position == position,
            messages.c.deleted_at.is_(None),
        )
        .order_by(messages.c.swipe_index)
    )
    rows = list((await tx.execute(query)).mappings())
    return [_message(row, len(rows)) for row in rows]


async def max_swipe_index(tx: AsyncSession, chat_id: str, position: int) -> int:
    query = select(func.max(messages.c.swipe_index)).where(
        messages.c.chat_id == chat_id, messages.c.position == position
    )
    value = (await tx.execute(query)).scalar_one_or_none()
    return int(value) if value is not None else -1


async def select_swipe(tx: AsyncSession, chat_id: str, position: int, message_id: str) -> None:
    """Make one swipe the selected reply at its position."""
    at_position = and_(messages.c.chat_id == chat_id, messages.c.position == position)
    await tx.execute(
        update(messages).where(at_position).values(selected=(messages.c.id == message_id))
    )


async def list_history(
    tx: AsyncSession,
    chat_id: str,
    *,
    before_position: int | None = None,
    limit: int | None = None,
) -> list[MessageRecord]:
    """Selected, not deleted messages in position order, newest `limit` before a position."""
    swipe_counts = (
        select(messages.c.position, func.count().label("swipe_count"))
        .where(messages.c.chat_id == chat_id, messages.c.deleted_at.is_(None))
        .group_by(messages.c.position)
        .subquery()
    )
    query = (
        select(*messages.c, swipe_counts.c.swipe_count)
        .join(swipe_counts, swipe_counts.c.position == messages.c.position)
        .where(
            messages.c.chat_id == chat_id,
            messages.c.selected.is_(True),
            messages.c.deleted_at.is_(None),
        )
        .order_by(messages.c.position.desc())
    )
    if before_position is not None:
        query = query.where(messages.c.position < before_position)
    if limit is not None:
        query = query.limit(limit)
    rows = list((await tx.execute(query)).mappings())
    return [_message(row, row["swipe_count"]) for row in reversed(rows)]


async def list_history_between(
    tx: AsyncSession, chat_id: str, *, from_position: int, before_position: int
) -> list[MessageRecord]:
    """Like `list_history`, for positions in [from, before) only: a bounded read
    (swipes are counted in that range too), oldest first."""
    in_range = and_(
        messages.c.chat_id == chat_id,
        messages.c.deleted_at.is_(None),
        messages.c.position >= from_position,
        messages.c.position < before_position,
    )
    swipe_counts = (
        select(messages.c.position, func.count().label("swipe_count"))
        .where(in_range)
        .group_by(messages.c.position)
        .subquery()
    )
    query = (
        select(*messages.c, swipe_counts.c.swipe_count)
        .join(swipe_counts, swipe_counts.c.position == messages.c.position)
        .where(in_range, messages.c.selected.is_(True))
        .order_by(messages.c.position)
    )
    return [_message(row, row["swipe_count"]) for row in (await tx.execute(query)).mappings()]


async def get_history_messages(
    tx: AsyncSession, chat_id: str, message_ids: list[str], *, vector_model: str | None = None
) -> list[MessageRecord]:
    """Selected, not deleted messages of a chat among `message_ids`, in position order;
    given `vector_model`, only those with a vector of it (recall: an edit deletes a
    message's vector, and its old text must not be what recalls it)."""
    if not message_ids:
        return []
    # By primary key only: with chat_id in the WHERE, SQLite may walk the chat's index.
    query = select(messages).where(messages.c.id.in_(message_ids), messages.c.deleted_at.is_(None))
    if vector_model is not None:
        query = query.join(
            message_vectors,
            (message_vectors.c.message_id == messages.c.id)
            & (message_vectors.c.model == vector_model),
        )
    rows = [_message(row) for row in (await tx.execute(query)).mappings()]
    kept = [m for m in rows if m.chat_id == chat_id and m.selected]
    return sorted(kept, key=lambda m: m.position)


async def set_chat_persona(
    tx: AsyncSession, *, persona_id: str, name: str, description: str
) -> None:
    """Carry a persona's edit into every chat that uses it."""
    await tx.execute(
        update(chats)
        .where(chats.c.persona_id == persona_id)
        .values(persona_name=name, persona_description=description)
    )


async def latest_position(tx: AsyncSession, chat_id: str) -> int | None:
    query = select(func.max(messages.c.position)).where(
        messages.c.chat_id == chat_id, messages.c.deleted_at.is_(None)
    )
    value = (await tx.execute(query)).scalar_one_or_none()
    return int(value) if value is not None else None


async def update_message(tx: AsyncSession, message_id: str, **values: Any) -> None:
    values.setdefault("updated_at", utcnow())
    await tx.execute(update(messages).where(messages.c.id == message_id).values(**values))


async def replies_changed_since(
    tx: AsyncSession, chat_id: str, since: datetime
) -> list[MessageRecord]:
    """Assistant messages written or changed after a moment (to rebuild a lost stream)."""
    query = (
        select(messages)
        .where(
            messages.c.chat_id == chat_id,
            messages.c.role == "assistant",
            messages.c.updated_at >= since,
        )
        .order_by(messages.c.position, messages.c.swipe_index)
    )
    return [_message(row) for row in (await tx.execute(query)).mappings()]


async def unfinished_replies(tx: AsyncSession, chat_id: str) -> list[MessageRecord]:
    """Replies still queued or being written."""
    query = (
        select(messages)
        .where(
            messages.c.chat_id == chat_id,
            messages.c.role == "assistant",
            messages.c.status.in_(("queued", "generating")),
            messages.c.deleted_at.is_(None),
        )
        .order_by(messages.c.position, messages.c.swipe_index)
    )
    return [_message(row) for row in (await tx.execute(query)).mappings()]


async def set_chat_backend(tx: AsyncSession, chat_id: str, backend: str) -> None:
    """Remember which backend served the chat last (its prompt cache is warm there)."""
    await tx.execute(update(chats).where(chats.c.id == chat_id).values(backend=backend))
