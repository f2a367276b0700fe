"""Users, sessions and API tokens."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import api_tokens, sessions, users
from personae.storage.types import new_id, utcnow


class DuplicateUsername(Exception):
    """The UNIQUE index on users.username refused an insert."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    username: str
    display_name: str
    password_hash: str | None
    role: str
    created_at: datetime
    # Until when a moderator suspended the account; None or past: not suspended.
    suspended_until: datetime | None = None
    # The age declaration (None until made) and the day the account is adult from.
    age_declared_at: datetime | None = None
    adult_from: date | None = None
    show_mature: bool = False
    wellbeing_dismissed_at: datetime | None = None

    def suspended_at(self, now: datetime) -> bool:
        return self.suspended_until is not None and self.suspended_until > now

    def is_adult(self, today: date) -> bool:
        """Whether the account is a confirmed adult on `today`."""
        return self.adult_from is not None and self.adult_from <= today


@dataclass(frozen=True)
class SessionRecord:
    id: str
    user_id: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None


@dataclass(frozen=True)
class TokenRecord:
    id: str
    user_id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _user(row: RowMapping) -> UserRecord:
    return UserRecord(
        id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        role=row["role"],
        created_at=row["created_at"],
        suspended_until=row["suspended_until"],
        age_declared_at=row["age_declared_at"],
        adult_from=row["adult_from"],
        show_mature=bool(row["show_mature"]),
        wellbeing_dismissed_at=row["wellbeing_dismissed_at"],
    )


def _session(row: RowMapping) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        user_id=row["user_id"],
        csrf_token=row["csrf_token"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        user_agent=row["user_agent"],
        ip=row["ip"],
    )


def _token(row: RowMapping) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


# --- users ---------------------------------------------------------------------


async def insert_user(
    tx: AsyncSession,
    *,
    username: str,
    display_name: str,
    password_hash: str | None,
    role: str = "user",
) -> UserRecord:
    """Insert a user; raises DuplicateUsername when the name is taken."""
    now = utcnow()
    user_id = new_id()
    values = {
        "id": user_id,
        "username": username,
        "display_name": display_name,
        "password_hash": password_hash,
        "role": role,
        "created_at": now,
        "updated_at": now,
    }
    try:
        async with tx.begin_nested():
            await tx.execute(insert(users).values(**values))
    except IntegrityError as error:
        raise DuplicateUsername(username) from error
    return UserRecord(
        id=user_id,
        username=username,
        display_name=display_name,
        password_hash=password_hash,
        role=role,
        created_at=now,
    )


async def get_user(tx: AsyncSession, user_id: str) -> UserRecord | None:
    row = (
        (await tx.execute(select(users).where(users.c.id == user_id, users.c.deleted_at.is_(None))))
        .mappings()
        .first()
    )
    return _user(row) if row else None


async def get_user_by_username(tx: AsyncSession, username: str) -> UserRecord | None:
    query = select(users).where(users.c.username == username, users.c.deleted_at.is_(None))
    row = (await tx.execute(query)).mappings().first()
    return _user(row) if row else None


async def set_user_role(tx: AsyncSession, user_id: str, role: str) -> None:
    await tx.execute(
        update(users).where(users.c.id == user_id).values(role=role, updated_at=utcnow())
    )


async def set_suspended_until(tx: AsyncSession, user_id: str, until: datetime | None) -> None:
    await tx.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(suspended_until=until, updated_at=utcnow())
    )


async def declare_age(
    tx: AsyncSession, user_id: str, *, declared_at: datetime, adult_from: date
) -> bool:
    """Store an age declaration unless one is stored already (then False): the first
    declaration stands, whichever process writes first."""
    result = await tx.execute(
        update(users)
        .where(users.c.id == user_id, users.c.age_declared_at.is_(None))
        .values(age_declared_at=declared_at, adult_from=adult_from, updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def reset_age(tx: AsyncSession, user_id: str) -> None:
    """Forget the age declaration (an admin's correction); mature content goes off too."""
    await tx.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(age_declared_at=None, adult_from=None, show_mature=False, updated_at=utcnow())
    )


async def set_show_mature(tx: AsyncSession, user_id: str, show_mature: bool) -> None:
    await tx.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(show_mature=show_mature, updated_at=utcnow())
    )


async def update_profile(tx: AsyncSession, user_id: str, **values: Any) -> None:
    """Change the user's own settings (`display_name`, `show_mature`)."""
    await tx.execute(
        update(users).where(users.c.id == user_id).values(updated_at=utcnow(), **values)
    )


async def set_wellbeing_dismissed(tx: AsyncSession, user_id: str, when: datetime) -> None:
    await tx.execute(update(users).where(users.c.id == user_id).values(wellbeing_dismissed_at=when))


async def set_password_hash(tx: AsyncSession, user_id: str, password_hash: str) -> None:
    await tx.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, updated_at=utcnow())
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_users(
    tx: AsyncSession, *, query: str | None, before: str | None, limit: int
) -> list[UserRecord]:
    """Accounts newest first (ids sort by creation), those before the id `before`;
    `query` is matched without case inside the username or the display name."""
    statement = select(users).where(users.c.deleted_at.is_(None))
    if query:
        pattern = f"%{_escape_like(query.lower())}%"
        statement = statement.where(
            or_(
                func.lower(users.c.username).like(pattern, escape="\\"),
                func.lower(users.c.display_name).like(pattern, escape="\\"),
            )
        )
    if before is not None:
        statement = statement.where(users.c.id < before)
    statement = statement.order_by(users.c.id.desc()).limit(limit)
    return [_user(row) for row in (await tx.execute(statement)).mappings()]


async def count_users(tx: AsyncSession) -> int:
    return int((await tx.execute(select(func.count()).select_from(users))).scalar_one())


# --- sessions ------------------------------------------------------------------


async def insert_session(
    tx: AsyncSession,
    *,
    user_id: str,
    token_hash: str,
    csrf_token: str,
    expires_at: datetime,
    user_agent: str | None,
    ip: str | None,
) -> SessionRecord:
    now = utcnow()
    record = SessionRecord(
        id=new_id(),
        user_id=user_id,
        csrf_token=csrf_token,
        created_at=now,
        last_seen_at=now,
        expires_at=expires_at,
        user_agent=user_agent,
        ip=ip,
    )
    await tx.execute(
        insert(sessions).values(
            id=record.id,
            user_id=user_id,
            token_hash=token_hash,
            csrf_token=csrf_token,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            user_agent=user_agent,
            ip=ip,
        )
    )
    return record


async def get_session_by_token_hash(tx: AsyncSession, token_hash: str) -> SessionRecord | None:
    query = select(sessions).where(sessions.c.token_hash == token_hash)
    row = (await tx.execute(query)).mappings().first()
    return _session(row) if row else None


async def list_sessions(tx: AsyncSession, user_id: str, now: datetime) -> list[SessionRecord]:
    query = (
        select(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
        .order_by(sessions.c.last_seen_at.desc())
    )
    return [_session(row) for row in (await tx.execute(query)).mappings()]


async def touch_session(
    tx: AsyncSession, session_id: str, *, last_seen_at: datetime, expires_at: datetime
) -> None:
    await tx.execute(
        update(sessions)
        .where(sessions.c.id == session_id)
        .values(last_seen_at=last_seen_at, expires_at=expires_at)
    )


async def delete_session(tx: AsyncSession, session_id: str, user_id: str) -> bool:
    result = await tx.execute(
        delete(sessions).where(sessions.c.id == session_id, sessions.c.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def delete_sessions_except(tx: AsyncSession, user_id: str, keep_id: str | None) -> int:
    """End every session of the user but `keep_id` (all of them when None)."""
    statement = delete(sessions).where(sessions.c.user_id == user_id)
    if keep_id is not None:
        statement = statement.where(sessions.c.id != keep_id)
    result = await tx.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_expired_sessions(tx: AsyncSession, now: datetime) -> int:
    result = await tx.execute(delete(sessions).where(sessions.c.expires_at <= now))
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- API tokens ----------------------------------------------------------------


async def insert_token(
    tx: AsyncSession, *, user_id: str, name: str, token_hash: str, prefix: str
) -> TokenRecord:
    now = utcnow()
    record = TokenRecord(
        id=new_id(),
        user_id=user_id,
        name=name,
        prefix=prefix,
        created_at=now,
        last_used_at=None,
        revoked_at=None,
    )
    await tx.execute(
        insert(api_tokens).values(
            id=record.id,
            user_id=user_id,
            name=name,
            token_hash=token_hash,
            prefix=prefix,
            created_at=now,
        )
    )
    return record


async def get_active_token_by_hash(tx: AsyncSession, token_hash: str) -> TokenRecord | None:
    query = select(api_tokens).where(
        api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
    )
    row = (await tx.execute(query)).mappings().first()
    return _token(row) if row else None


async def list_tokens(tx: AsyncSession, user_id: str) -> list[TokenRecord]:
    query = (
        select(api_tokens)
        .where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
        .order_by(api_tokens.c.created_at.desc())
    )
    return [_token(row) for row in (await tx.execute(query)).mappings()]


async def mark_token_used(tx: AsyncSession, token_id: str, when: datetime) -> None:
    await tx.execute(
        update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=when)
    )


async def revoke_token(tx: AsyncSession, token_id: str, user_id: str) -> bool:
    result = await tx.execute(
        update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            api_tokens.c.user_id == user_id,
            api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@functools.cache
def _session_and_user() -> Any:
    """Built once (its forty labelled columns took a while to build on every request)."""
    return (
        select(
            *[c.label(f"s_{c.name}") for c in sessions.c],
            *[c.label(f"u_{c.name}") for c in users.c],
        )
        .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
        .where(sessions.c.token_hash == bindparam("token_hash"), users.c.deleted_at.is_(None))
    )


async def get_session_and_user(
    tx: AsyncSession, token_hash: str
) -> tuple[SessionRecord, UserRecord] | None:
    """A session and its (not deleted) user in one query: every request asks this."""
    row = (await tx.execute(_session_and_user(), {"token_hash": token_hash})).mappings().first()
    if row is None:
        return None
    session = _session({c.name: row[f"s_{c.name}"] for c in sessions.c})  # type: ignore[arg-type]
    user = _user({c.name: row[f"u_{c.name}"] for c in users.c})  # type: ignore[arg-type]
    return session, user
