"""Pinned memories, summary versions and message vectors of a chat."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import jobs, memories, message_vectors, messages
from personae.storage.types import new_id, utcnow

PINNED, SUMMARY = "pinned", "summary"


@dataclass(frozen=True)
class MemoryRecord:
    id: str
    chat_id: str
    kind: str
    content: str
    source_message_id: str | None
    through_position: int | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


def _memory(row: RowMapping) -> MemoryRecord:
    return MemoryRecord(**{f.name: row[f.name] for f in fields(MemoryRecord)})


async def insert_memory(
    tx: AsyncSession,
    *,
    chat_id: str,
    kind: str,
    content: str,
    source_message_id: str | None = None,
    through_position: int | None = None,
) -> str:
    now = utcnow()
    memory_id = new_id()
    await tx.execute(
        insert(memories).values(
            id=memory_id,
            chat_id=chat_id,
            kind=kind,
            content=content,
            source_message_id=source_message_id,
            through_position=through_position,
            created_at=now,
            updated_at=now,
        )
    )
    return memory_id


async def get_memory(
    tx: AsyncSession, memory_id: str, *, include_deleted: bool = False
) -> MemoryRecord | None:
    query = select(memories).where(memories.c.id == memory_id)
    if not include_deleted:
        query = query.where(memories.c.deleted_at.is_(None))
    row = (await tx.execute(query)).mappings().first()
    return _memory(row) if row else None


async def get_memories(tx: AsyncSession, memory_ids: list[str]) -> list[MemoryRecord]:
    """These memories, deleted ones too (to show what an older prompt held)."""
    if not memory_ids:
        return []
    query = select(memories).where(memories.c.id.in_(memory_ids)).order_by(memories.c.id)
    return [_memory(row) for row in (await tx.execute(query)).mappings()]


async def list_memories(
    tx: AsyncSession, chat_id: str, kind: str | None = None
) -> list[MemoryRecord]:
    """Live memories of a chat, oldest first (summaries: every live version)."""
    query = select(memories).where(memories.c.chat_id == chat_id, memories.c.deleted_at.is_(None))
    if kind is not None:
        query = query.where(memories.c.kind == kind)
    query = query.order_by(memories.c.created_at, memories.c.id)
    return [_memory(row) for row in (await tx.execute(query)).mappings()]


async def count_pinned(tx: AsyncSession, chat_id: str) -> int:
    query = select(func.count()).where(
        memories.c.chat_id == chat_id,
        memories.c.kind == PINNED,
        memories.c.deleted_at.is_(None),
    )
    return int((await tx.execute(query)).scalar_one())


async def current_summary(tx: AsyncSession, chat_id: str) -> MemoryRecord | None:
    """The summary in use: the newest version not deleted."""
    query = (
        select(memories)
        .where(
            memories.c.chat_id == chat_id,
            memories.c.kind == SUMMARY,
            memories.c.deleted_at.is_(None),
        )
        .order_by(memories.c.created_at.desc(), memories.c.id.desc())
        .limit(1)
    )
    row = (await tx.execute(query)).mappings().first()
    return _memory(row) if row else None


async def update_memory(tx: AsyncSession, memory_id: str, **values: Any) -> None:
    await tx.execute(
        update(memories).where(memories.c.id == memory_id).values(updated_at=utcnow(), **values)
    )


async def soft_delete_memory(tx: AsyncSession, memory_id: str) -> None:
    now = utcnow()
    await tx.execute(
        update(memories).where(memories.c.id == memory_id).values(deleted_at=now, updated_at=now)
    )


# --- vectors -------------------------------------------------------------------


async def last_indexed_position(tx: AsyncSession, chat_id: str, model: str) -> int:
    """The newest message position with a vector of `model` (-1 when none)."""
    query = select(func.max(message_vectors.c.position)).where(
        message_vectors.c.chat_id == chat_id, message_vectors.c.model == model
    )
    value = (await tx.execute(query)).scalar_one_or_none()
    return int(value) if value is not None else -1


async def unindexed_messages(
    tx: AsyncSession, chat_id: str, *, after_position: int, before_position: int, limit: int
) -> list[tuple[str, int, str]]:
    """(id, position, content) of complete, selected messages past the indexed ones."""
    query = (
        select(messages.c.id, messages.c.position, messages.c.content)
        .where(
            messages.c.chat_id == chat_id,
            messages.c.position > after_position,
            messages.c.position < before_position,
            messages.c.selected.is_(True),
            messages.c.deleted_at.is_(None),
            messages.c.status == "complete",
        )
        .order_by(messages.c.position)
        .limit(limit)
    )
    return [(row.id, row.position, row.content) for row in await tx.execute(query)]


async def insert_vectors(
    tx: AsyncSession, chat_id: str, model: str, rows: list[tuple[str, int, bytes]]
) -> None:
    """Store (message_id, position, vector) rows, replacing a message's vector (a
    message has one vector: that of the embedder in use). An upsert: two indexers of
    one chat at once (PostgreSQL does not serialise them) both succeed."""
    if rows:
        upsert = (
            postgresql_insert(message_vectors)
            if tx.get_bind().dialect.name == "postgresql"
            else sqlite_insert(message_vectors)
        )
        excluded = upsert.excluded
        await tx.execute(
            upsert.on_conflict_do_update(
                index_elements=[message_vectors.c.message_id],
                set_={
                    "chat_id": excluded.chat_id,
                    "position": excluded.position,
                    "model": excluded.model,
                    "vector": excluded.vector,
                },
            ),
            [
                {
                    "message_id": message_id,
                    "chat_id": chat_id,
                    "position": position,
                    "model": model,
                    "vector": vector,
                }
                for message_id, position, vector in rows
            ],
        )


async def vectors_after(
    tx: AsyncSession, chat_id: str, model: str, after_position: int
) -> list[tuple[str, int, bytes]]:
    """(message_id, position, vector) of a chat past a position, in position order."""
    query = (
        select(message_vectors.c.message_id, message_vectors.c.position, message_vectors.c.vector)
        .where(
            message_vectors.c.chat_id == chat_id,
            message_vectors.c.model == model,
            message_vectors.c.position > after_position,
        )
        .order_by(message_vectors.c.position)
    )
    return [(row.message_id, row.position, bytes(row.vector)) for row in await tx.execute(query)]


async def delete_vectors(tx: AsyncSession, message_ids: list[str]) -> None:
    """Forget these messages' vectors (their text changed: the vectors no longer match)."""
    if message_ids:
        query = delete(message_vectors).where(message_vectors.c.message_id.in_(message_ids))
        await tx.execute(query)


async def has_open_job(tx: AsyncSession, chat_id: str, kind: str) -> bool:
    """Whether a job of this kind waits or runs for the chat (one summary at a time)."""
    query = select(func.count()).where(
        jobs.c.chat_id == chat_id, jobs.c.kind == kind, jobs.c.status.in_(("queued", "running"))
    )
    return bool((await tx.execute(query)).scalar_one())
