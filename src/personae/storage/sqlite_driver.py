"""aiosqlite with one thread hop a statement.

aiosqlite runs each call of the DB-API in its connection's thread, and
SQLAlchemy's adapter makes four such calls a statement (open a cursor,
execute, fetch, close), each a round trip through a queue and the event loop.
A statement on a local SQLite file takes microseconds; the hops took most of a
statement's half millisecond. This adapter runs the four in one call: the
statement's rows, description and counts come back together.

A transaction's BEGIN waits to run in the call of its first statement
(`begin_with_first_statement`), and a commit or rollback with no transaction
open in SQLite (nothing was run, or the pool's reset after the session's own
rollback) makes no call at all: a read transaction of one statement is two
trips to the thread, not four. A read declared to be one statement
(`Database.read_one`) begins nothing, so it is one trip.

It builds on SQLAlchemy's aiosqlite adapter (`sqlalchemy.dialects.sqlite.aiosqlite`)
and aiosqlite's `Connection._execute` (the call that runs a function in the
connection's thread); pyproject.toml keeps both to the versions it was written for.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import immutabledict
from sqlalchemy.util.concurrency import await_only as await_

_T = TypeVar("_T")
_Description = Sequence[tuple[Any, ...]] | None


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor whose statement runs, fetches and closes in one call to the thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No call to the thread here: the real cursor lives only inside `_run`.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._soft_closed_memoized = immutabledict()
        self._description: _Description = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # the rows are fetched and the real cursor closed already

    def close(self) -> None:
        self._rows.clear()

    async def _call(self, work: Callable[[sqlite3.Cursor], _T]) -> _T:
        raw: sqlite3.Connection = self._connection._conn
        adapted: OneHopConnection = self._adapt_connection  # type: ignore[assignment]

        def run() -> tuple[_T, bool]:
            cursor = raw.cursor()
            try:
                if begin is not None:
                    cursor.execute(begin)
                return work(cursor), raw.in_transaction
            finally:
                cursor.close()

        connection: Any = self._connection  # an aiosqlite.Connection
        async with adapted._execute_mutex:
            adapted.count_statement()
            begin, adapted._pending_begin = adapted._pending_begin, None
            try:
                outcome: tuple[_T, bool] = await connection._execute(run)
            except BaseException:
                adapted._in_transaction = True  # unknown: let rollback ask SQLite
                raise
        result, adapted._in_transaction = outcome
        return result

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        def work(cursor: sqlite3.Cursor) -> tuple[_Description, list[Any], int, int | None]:
            if parameters is None:
                cursor.execute(operation)
            else:
                cursor.execute(operation, parameters)
            rows = cursor.fetchall() if cursor.description else []
            return cursor.description, rows, cursor.rowcount, cursor.lastrowid

        self._description, rows, self._rowcount, self._lastrowid = await self._call(work)
        self._rows = collections.deque(rows)
        return None

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        def work(cursor: sqlite3.Cursor) -> tuple[int, int | None]:
            cursor.executemany(operation, seq_of_parameters)
            return cursor.rowcount, cursor.lastrowid

        self._description = None
        self._rowcount, self._lastrowid = await self._call(work)
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_alone", "_in_transaction", "_pending_begin")
    _cursor_cls = _Cursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # Whether SQLite had a transaction open after the last call (a new
        # connection is in autocommit mode), and the BEGIN not yet run.
        self._in_transaction = False
        self._pending_begin: str | None = None
        # In a transaction begun by `run_one_statement_alone`: whether its statement ran.
        self._alone: bool | None = None

    def begin_with_first_statement(self, statement: str) -> None:
        """Run `statement` (BEGIN, BEGIN IMMEDIATE) just before the next one, in its call."""
        self._pending_begin = statement

    def run_one_statement_alone(self) -> None:
        """Begin nothing: the transaction's one statement is its own (SQLite's
        autocommit), and a second one raises rather than read another snapshot."""
        self._alone = False

    def count_statement(self) -> None:
        """A statement is about to run: in a one-statement read, only the first may."""
        if self._alone is None:
            return
        if self._alone:  # its one statement ran outside any transaction
            raise sqlite3.ProgrammingError("a one-statement read ran a second one")
        self._alone = True

    def cursor(self, server_side: bool = False) -> Any:
        if server_side:  # aiosqlite's own cursor
            self.count_statement()
        if server_side and self._pending_begin is not None:
            begin, self._pending_begin = self._pending_begin, None
            await_(self._connection.execute(begin))
            self._in_transaction = True
        return super().cursor(server_side)

    def commit(self) -> None:
        self._end_transaction(super().commit)

    def rollback(self) -> None:
        self._end_transaction(super().rollback)

    def _end_transaction(self, end: Callable[[], None]) -> None:
        self._pending_begin = None  # a BEGIN not run began nothing
        self._alone = None
        if self._in_transaction:
            end()
            self._in_transaction = False


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API whose connections use `_Cursor`.

    Given to the engine as its `module`; server-side cursors stay aiosqlite's own.
    """

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
