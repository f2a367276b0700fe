"""Read-aloud audio of replies: one row per spoken piece (`speech_clips`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from personae.storage.tables import messages, speech_clips
from personae.storage.types import utcnow


@dataclass(frozen=True)
class ClipRecord:
    message_id: str
    voice_key: str
    index: int
    text: str
    sample_rate: int
    duration_ms: int
    is_last: bool
    pcm: bytes | None  # None when only the list was asked for


_LISTED = (
    speech_clips.c.message_id,
    speech_clips.c.voice_key,
    speech_clips.c.idx,
    speech_clips.c.text,
    speech_clips.c.sample_rate,
    speech_clips.c.duration_ms,
    speech_clips.c.is_last,
)


def _clip(row: dict[str, object], pcm: bytes | None) -> ClipRecord:
    return ClipRecord(
        message_id=str(row["message_id"]),
        voice_key=str(row["voice_key"]),
        index=int(row["idx"]),  # type: ignore[call-overload]
        text=str(row["text"]),
        sample_rate=int(row["sample_rate"]),  # type: ignore[call-overload]
        duration_ms=int(row["duration_ms"]),  # type: ignore[call-overload]
        is_last=bool(row["is_last"]),
        pcm=pcm,
    )


def _of(message_id: str, voice_key: str) -> ColumnElement[bool]:
    return and_(speech_clips.c.message_id == message_id, speech_clips.c.voice_key == voice_key)


async def list_clips(
    tx: AsyncSession, message_id: str, voice_key: str, *, with_audio: bool = False
) -> list[ClipRecord]:
    """The message's clips in this voice, in order (their audio too if asked)."""
    columns = (*_LISTED, speech_clips.c.pcm) if with_audio else _LISTED
    query = select(*columns).where(_of(message_id, voice_key)).order_by(speech_clips.c.idx)
    return [
        _clip(dict(row), bytes(row["pcm"]) if with_audio else None)
        for row in (await tx.execute(query)).mappings()
    ]


async def get_clip(
    tx: AsyncSession, message_id: str, voice_key: str, index: int
) -> ClipRecord | None:
    query = select(*_LISTED, speech_clips.c.pcm).where(
        _of(message_id, voice_key), speech_clips.c.idx == index
    )
    row = (await tx.execute(query)).mappings().first()
    return _clip(dict(row), bytes(row["pcm"])) if row else None


async def insert_clip(
    tx: AsyncSession,
    message_id: str,
    voice_key: str,
    index: int,
    *,
    text: str,
    sample_rate: int,
    pcm: bytes,
    duration_ms: int,
) -> bool:
    """Store one clip; False when it is there already (another process spoke it)."""
    dialect_insert = (
        postgresql_insert if tx.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    statement = (
        dialect_insert(speech_clips)
        .values(
            message_id=message_id,
            voice_key=voice_key,
            idx=index,
            text=text,
            sample_rate=sample_rate,
            pcm=pcm,
            byte_count=len(pcm),
            duration_ms=duration_ms,
            is_last=False,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(
            index_elements=[speech_clips.c.message_id, speech_clips.c.voice_key, speech_clips.c.idx]
        )
        .returning(speech_clips.c.idx)
    )
    return (await tx.execute(statement)).first() is not None


async def mark_complete(tx: AsyncSession, message_id: str, voice_key: str, clips: int) -> None:
    """Mark the clip that completes the message (clip `clips - 1`)."""
    await tx.execute(
        update(speech_clips)
        .where(_of(message_id, voice_key), speech_clips.c.idx == clips - 1)
        .values(is_last=True)
    )


async def delete_voice(tx: AsyncSession, message_id: str, voice_key: str) -> None:
    await tx.execute(delete(speech_clips).where(_of(message_id, voice_key)))


async def delete_from(tx: AsyncSession, message_id: str, voice_key: str, index: int) -> None:
    """Drop the message's clips in this voice from `index` on."""
    await tx.execute(
        delete(speech_clips).where(_of(message_id, voice_key), speech_clips.c.idx >= index)
    )


async def delete_for_messages(tx: AsyncSession, message_ids: list[str]) -> None:
    """Drop every clip of these messages (their text changed, or they are gone).

    The messages' rows are locked first (PostgreSQL; SQLite has one writer), the
    order in which read-aloud checks a message and stores its clip: a clip checked
    against the old text is either stored before and dropped here, or stored after,
    checked against the new text."""
    if message_ids:
        await tx.execute(
            select(messages.c.id)
            .where(messages.c.id.in_(message_ids))
            .order_by(messages.c.id)
            .with_for_update()
        )
        await tx.execute(delete(speech_clips).where(speech_clips.c.message_id.in_(message_ids)))


async def total_bytes(tx: AsyncSession) -> int:
    result = await tx.execute(select(func.coalesce(func.sum(speech_clips.c.byte_count), 0)))
    return int(result.scalar_one())


async def oldest_groups(tx: AsyncSession, limit: int) -> list[tuple[str, str, int]]:
    """(message id, voice key, bytes) of the groups of clips spoken longest ago."""
    started = func.min(speech_clips.c.created_at)
    query = (
        select(
            speech_clips.c.message_id,
            speech_clips.c.voice_key,
            func.sum(speech_clips.c.byte_count).label("bytes"),
        )
        .group_by(speech_clips.c.message_id, speech_clips.c.voice_key)
        .order_by(started, speech_clips.c.message_id)
        .limit(limit)
    )
    return [
        (str(row["message_id"]), str(row["voice_key"]), int(row["bytes"]))
        for row in (await tx.execute(query)).mappings()
    ]
