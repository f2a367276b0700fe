"""Database engines and transactions.

SQLite runs in WAL mode with a busy timeout and one writer: write transactions
take an in-process lock and begin IMMEDIATE, so two writers never race for the
upgrade from a read lock (which SQLite answers with SQLITE_BUSY at once).
PostgreSQL needs neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from personae.storage.sqlite_driver import OneHopConnection, one_hop_dbapi
from personae.storage.writer_lock import WriterLock

_SQLITE_BUSY_TIMEOUT_MS = 10_000

# What services hold while they compose several repository calls in one transaction.
Transaction = AsyncSession


def _normalise_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async driver."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # SQLite's own lower() folds ASCII only; search must ignore case in every script.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        immediate = options.get("personae_write", False)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        adapted = connection.connection.dbapi_connection
        if not isinstance(adapted, OneHopConnection):
            connection.exec_driver_sql(begin)
        elif options.get("personae_one_statement"):
            adapted.run_one_statement_alone()
        else:
            adapted.begin_with_first_statement(begin)  # one trip to its thread fewer


class Database:
    """An async engine plus read and write transactions suited to its dialect."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = _normalise_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"echo": echo}
        if not self.is_sqlite:
            options.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        elif parsed.get_driver_name() == "aiosqlite":
            options.update(module=one_hop_dbapi())
        self.engine = create_async_engine(self.url, **options)
        self._write_engine = self.engine
        self._one_statement_engine = self.engine
        self._write_lock = WriterLock()
        if self.is_sqlite:
            _install_sqlite_pragmas(self.engine)
            self._write_engine = self.engine.execution_options(personae_write=True)
            self._one_statement_engine = self.engine.execution_options(personae_one_statement=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; it never commits."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def read_one(self) -> AsyncIterator[AsyncSession]:
        """A session for a read of one statement (a second one raises on SQLite).

        On SQLite it runs without BEGIN: a lone SELECT is a transaction by itself,
        and none is left to roll back, so the read is one trip to the connection's
        thread, not two (for the reads on the way to a reply's first token).
        """
        async with AsyncSession(self._one_statement_engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on error.

        `urgent` is for the reply pipeline: on SQLite (one writer) it goes before
        waiting ordinary writes.
        """
        # SQLite has one writer: queue here rather than meet SQLITE_BUSY mid-transaction.
        lock: AbstractAsyncContextManager[Any] = (
            self._write_lock.hold(urgent=urgent) if self.is_sqlite else nullcontext()
        )
        async with (
            lock,
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.engine.dispose()
