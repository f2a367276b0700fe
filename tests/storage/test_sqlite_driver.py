"""The one-hop aiosqlite adapter behaves as the DB-API that SQLAlchemy expects: rows,
counts, RETURNING, many rows at once, errors, rollback, and a real file in WAL mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from personae.storage.db import Database
from personae.storage.sqlite_driver import OneHopDBAPI

_metadata = MetaData()
_notes = Table(
    "notes",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("stars", Integer, nullable=False, default=0),
)


@pytest.fixture
async def database(tmp_path: Path) -> Database:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with database.engine.begin() as connection:
        await connection.run_sync(_metadata.create_all)
    yield database  # type: ignore[misc]
    await database.dispose()


async def test_the_engine_uses_the_one_hop_adapter(database: Database) -> None:
    assert isinstance(database.engine.dialect.dbapi, OneHopDBAPI)
    async with database.read() as tx:
        mode = (await tx.execute(select(func.sqlite_version()))).scalar_one()
        journal = (await tx.connection()).exec_driver_sql("PRAGMA journal_mode")
        assert mode and (await journal).scalar_one() == "wal"


async def test_rows_counts_and_returning(database: Database) -> None:
    async with database.write() as tx:
        await tx.execute(insert(_notes), [{"name": f"n{i}", "stars": i} for i in range(5)])
        returned = await tx.execute(
            insert(_notes).values(name="last", stars=9).returning(_notes.c.id, _notes.c.name)
        )
        assert returned.mappings().one()["name"] == "last"
        changed = await tx.execute(update(_notes).where(_notes.c.stars >= 3).values(stars=0))
        assert changed.rowcount == 3  # type: ignore[attr-defined]
    async with database.read() as tx:
        rows = (await tx.execute(select(_notes.c.name).order_by(_notes.c.id))).scalars().all()
        assert rows == ["n0", "n1", "n2", "n3", "n4", "last"]
        assert (await tx.execute(select(_notes).where(_notes.c.name == "none"))).first() is None
        many = await tx.execute(select(_notes).order_by(_notes.c.id))
        assert len(many.fetchmany(4)) == 4 and len(many.fetchall()) == 2


async def test_a_constraint_error_rolls_the_whole_transaction_back(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.write() as tx:
            await tx.execute(insert(_notes).values(name="twice"))
            await tx.execute(insert(_notes).values(name="twice"))
    async with database.read() as tx:
        assert (await tx.execute(select(func.count()).select_from(_notes))).scalar_one() == 0
    async with database.write() as tx:  # the connection is usable after the error
        await tx.execute(insert(_notes).values(name="once"))
    async with database.read() as tx:
        assert (await tx.execute(select(func.count()).select_from(_notes))).scalar_one() == 1


async def test_transactions_isolate_and_an_empty_one_ends_cleanly(
    database: Database, tmp_path: Path
) -> None:
    # An empty transaction ends cleanly, and leaves nothing pending for the next one.
    async with database.write():
        pass
    async with database.read():
        pass
    async with database.write() as tx:
        await tx.execute(insert(_notes).values(name="first"))
    # A read's snapshot starts at its first statement and holds until it ends,
    # whatever commits meanwhile (as a BEGIN sent on its own would).
    async with database.read() as tx:
        before = (await tx.execute(select(func.count()).select_from(_notes))).scalar_one()
        async with database.write() as other:
            await other.execute(insert(_notes).values(name="second"))
        again = (await tx.execute(select(func.count()).select_from(_notes))).scalar_one()
        assert before == again == 1
    # A write is IMMEDIATE from its first statement: another process's writer waits.
    elsewhere = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    try:
        async with database.write() as tx:
            await tx.execute(update(_notes).values(stars=1))
            connection = await elsewhere.engine.connect()
            try:
                raw = await connection.get_raw_connection()
                with pytest.raises(Exception, match="locked"):
                    await raw.driver_connection.execute("PRAGMA busy_timeout=0")
                    await raw.driver_connection.execute("BEGIN IMMEDIATE")
            finally:
                await connection.close()
    finally:
        await elsewhere.dispose()
    async with database.read() as tx:
        assert (await tx.execute(select(_notes.c.stars))).scalars().all() == [1, 1]


def _count_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the name of each call run in a connection's thread."""
    trips: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", "call"))
        return await execute(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_a_transaction_of_one_statement_is_two_trips_to_the_thread(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN rides with the first statement, and the pool's reset after the session's
    own rollback (no transaction left open) makes no trip."""
    async with database.read() as tx:  # the pool's connection is opened outside the count
        await tx.execute(select(func.count()).select_from(_notes))
    trips = _count_trips(monkeypatch)
    async with database.read() as tx:
        await tx.execute(select(func.count()).select_from(_notes))
    assert trips == ["run", "rollback"]
    trips.clear()
    async with database.write() as tx:
        await tx.execute(insert(_notes).values(name="one"))
    assert trips == ["run", "commit"]
    trips.clear()
    async with database.write():
        pass
    assert trips == []
    async with database.read() as tx:
        assert (await tx.execute(select(_notes.c.name))).scalars().all() == ["one"]


async def test_a_read_of_one_statement_is_one_trip_and_refuses_a_second(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`read_one` begins nothing (a lone SELECT is its own transaction), so nothing is
    left to roll back; a second statement would read another snapshot, so it raises,
    and the connection goes back to the pool as good as new."""
    async with database.write() as tx:
        await tx.execute(insert(_notes).values(name="one"))
    trips = _count_trips(monkeypatch)
    async with database.read_one() as tx:
        assert (await tx.execute(select(_notes.c.name))).scalars().all() == ["one"]
    assert trips == ["run"]
    with pytest.raises(Exception, match="one-statement read ran a second one"):
        async with database.read_one() as tx:
            await tx.execute(select(_notes.c.name))
            await tx.execute(select(_notes.c.stars))
    with pytest.raises(Exception, match="one-statement read ran a second one"):
        async with database.read_one() as tx:  # a streamed one counts too
            streamed = await tx.stream(select(_notes.c.name))
            assert [row.name async for row in streamed] == ["one"]
            await tx.execute(select(_notes.c.stars))
    trips.clear()
    async with database.read() as tx:  # the same pooled connection, a transaction again
        names = (await tx.execute(select(_notes.c.name))).scalars().all()
        stars = (await tx.execute(select(_notes.c.stars))).scalars().all()
    assert (names, stars) == (["one"], [0])
    assert trips == ["run", "run", "rollback"]
