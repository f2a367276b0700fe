"""Personas: who a user is in a chat (name, description, avatar), one default per user."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import personas
from personae.storage.types import new_id, utcnow


@dataclass(frozen=True)
class PersonaRecord:
    id: str
    user_id: str
    name: str
    description: str
    avatar: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


def _persona(row: RowMapping) -> PersonaRecord:
    return PersonaRecord(**{f.name: row[f.name] for f in fields(PersonaRecord)})


async def insert_persona(
    tx: AsyncSession, *, user_id: str, name: str, description: str, avatar: str | None
) -> str:
    """Store a persona (not default; see `make_default`)."""
    now = utcnow()
    persona_id = new_id()
    await tx.execute(
        insert(personas).values(
            id=persona_id,
            user_id=user_id,
            name=name,
            description=description,
            avatar=avatar,
            is_default=False,
            created_at=now,
            updated_at=now,
        )
    )
    return persona_id


async def get_persona(tx: AsyncSession, persona_id: str) -> PersonaRecord | None:
    row = (await tx.execute(select(personas).where(personas.c.id == persona_id))).mappings().first()
    return _persona(row) if row else None


async def list_personas(tx: AsyncSession, user_id: str) -> list[PersonaRecord]:
    query = select(personas).where(personas.c.user_id == user_id).order_by(personas.c.id)
    return [_persona(row) for row in (await tx.execute(query)).mappings()]


async def count_personas(tx: AsyncSession, user_id: str) -> int:
    query = select(func.count()).where(personas.c.user_id == user_id)
    return int((await tx.execute(query)).scalar_one())


async def default_persona(tx: AsyncSession, user_id: str) -> PersonaRecord | None:
    query = select(personas).where(personas.c.user_id == user_id, personas.c.is_default.is_(True))
    row = (await tx.execute(query)).mappings().first()
    return _persona(row) if row else None


async def make_default(tx: AsyncSession, user_id: str, persona_id: str) -> None:
    """Make one persona the user's default and every other one not."""
    await tx.execute(
        update(personas)
        .where(personas.c.user_id == user_id)
        .values(is_default=(personas.c.id == persona_id))
    )


async def update_persona(tx: AsyncSession, persona_id: str, **values: Any) -> None:
    await tx.execute(
        update(personas).where(personas.c.id == persona_id).values(updated_at=utcnow(), **values)
    )


async def delete_persona(tx: AsyncSession, persona_id: str) -> None:
    await tx.execute(delete(personas).where(personas.c.id == persona_id))
