"""Backend slot leases (one row per request in flight, by backend and process) and
backend states (what the workers last saw of each backend), shared by every process.

Taking a slot locks the candidate backends (a transaction-scoped advisory lock
each, in name order so two takers never wait on each other crosswise), counts
their rows, and takes the first in the caller's order that has room: two
processes can never both take a backend's last slot.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import backend_slots, backend_states, processes
from personae.storage.types import utcnow

# pg_advisory_xact_lock(namespace, hashtext(backend)): the first key keeps the locks
# apart from any other advisory lock in the database.
_SLOT_LOCK_NAMESPACE = 0x534C_4F54  # "SLOT"


async def take_first(
    tx: AsyncSession, owner: str, candidates: Sequence[tuple[str, int]]
) -> tuple[str, str] | None:
    """A slot on the first of `candidates` (name, slots) with one free, leased to
    `owner`: (backend, lease id), or None when every candidate is full."""
    if not candidates:
        return None
    names = sorted({name for name, _ in candidates})
    if tx.get_bind().dialect.name == "postgresql":
        for name in names:
            await tx.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:name))"),
                {"namespace": _SLOT_LOCK_NAMESPACE, "name": name},
            )
    busy = await count_by_backend(tx, names)
    for name, slots in candidates:
        if busy.get(name, 0) < slots:
            lease = secrets.token_hex(16)
            await tx.execute(
                insert(backend_slots).values(id=lease, backend=name, owner=owner, taken_at=utcnow())
            )
            return name, lease
    return None


async def give_back(tx: AsyncSession, lease: str) -> None:
    await tx.execute(delete(backend_slots).where(backend_slots.c.id == lease))


async def count_by_backend(tx: AsyncSession, names: Sequence[str] | None = None) -> dict[str, int]:
    """Requests in flight on each backend (on `names` only, when given)."""
    query = select(backend_slots.c.backend, func.count()).group_by(backend_slots.c.backend)
    if names is not None:
        query = query.where(backend_slots.c.backend.in_(names))
    rows = await tx.execute(query)
    return {str(name): int(count) for name, count in rows.all()}


async def forget_owner(tx: AsyncSession, owner: str) -> None:
    """A process that stops cleanly gives back whatever it still holds."""
    await tx.execute(delete(backend_slots).where(backend_slots.c.owner == owner))


async def forget_dead(tx: AsyncSession) -> int:
    """Drop the leases of processes that have no row in `processes` (gone or dead)."""
    alive = select(processes.c.id)
    result = await tx.execute(delete(backend_slots).where(backend_slots.c.owner.not_in(alive)))
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BackendState:
    name: str
    role: str
    slots: int
    healthy: bool
    breaker: str
    usable: bool
    # The moving measure of a reply's time on it (None until one finished there).
    service_s: float | None


async def report_states(tx: AsyncSession, states: Sequence[BackendState]) -> None:
    """What this worker sees now of each backend; the measured service times stay as
    they are (`service_s` is not written here)."""
    if not states:
        return
    upsert = (
        postgresql_insert(backend_states)
        if tx.get_bind().dialect.name == "postgresql"
        else sqlite_insert(backend_states)
    )
    now = utcnow()
    await tx.execute(
        upsert.on_conflict_do_update(
            index_elements=[backend_states.c.name],
            set_={
                column: upsert.excluded[column]
                for column in ("role", "slots", "healthy", "breaker", "usable", "reported_at")
            },
        ),
        [
            {
                "name": state.name,
                "role": state.role,
                "slots": state.slots,
                "healthy": state.healthy,
                "breaker": state.breaker,
                "usable": state.usable,
                "reported_at": now,
            }
            for state in states
        ],
    )


async def measure_service(tx: AsyncSession, name: str, seconds: float, weight: float) -> None:
    """Move `name`'s measure of a reply's time `weight` of the way towards `seconds`."""
    column = backend_states.c.service_s
    await tx.execute(
        update(backend_states)
        .where(backend_states.c.name == name)
        .values(
            service_s=case((column.is_(None), seconds), else_=column + weight * (seconds - column))
        )
    )


async def read_states(tx: AsyncSession, *, fresh_within_s: float) -> list[BackendState]:
    """The backends some worker reported on within `fresh_within_s` (those of workers
    that all stopped are not counted)."""
    cutoff = utcnow() - timedelta(seconds=fresh_within_s)
    rows = await tx.execute(
        select(backend_states)
        .where(backend_states.c.reported_at >= cutoff)
        .order_by(backend_states.c.name)
    )
    return [
        BackendState(
            name=row.name,
            role=row.role,
            slots=int(row.slots),
            healthy=bool(row.healthy),
            breaker=row.breaker,
            usable=bool(row.usable),
            service_s=row.service_s,
        )
        for row in rows
    ]
