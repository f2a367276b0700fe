"""aiosqlite with one thread hop a statement.

aiosqlite runs each call of the DB-API in its connection's thread, and
SQLAlchemy's adapter makes four such calls a statement (open a cursor,
execute, fetch, close), each a round trip through a queue and the event loop.
A statement on a local SQLite file takes microseconds; the hops took most of a
statement's half millisecond. This adapter runs the four in one call: the
statement's rows, description and counts come back together.

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

        def run() -> _T:
            cursor = raw.cursor()
            try:
                return work(cursor)
            finally:
                cursor.close()

        connection: Any = self._connection  # an aiosqlite.Connection
        async with self._adapt_connection._execute_mutex:
            result: _T = await connection._execute(run)
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


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _Cursor  # type: ignore[assignment]


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API whose connections use `_Cursor`.

    Given to the engine as its `module`; server-side cursors stay aiosqlite's own.
    """

    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
