"""The cluster's leadership, as PostgreSQL keeps it: an advisory lock held on a
connection of the leader's own. PostgreSQL lets go of it the moment that
connection ends, so a leader killed with SIGKILL is replaced at the next check of
another process, with no lease to wait out and no home-made election. On SQLite
there is one process, and it is the leader."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from personae.storage.db import Database

log = logging.getLogger("personae.leader")
# pg_advisory_lock's key for "the leader of this database's Personae cluster".
_LEADER_KEY = 0x5045_5253_4F4E_4145 & 0x7FFF_FFFF_FFFF_FFFF
# A check that does not answer within this is a lost connection (and so a lost lock).
_CHECK_TIMEOUT_S = 5.0


class LeaderLock:
    """Whether this process leads; `try_take` and `still_held` are cheap to call often."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._db.is_sqlite or self._connection is not None

    async def try_take(self) -> bool:
        """Take the lock if nobody holds it (never waits)."""
        if self.held:
            return True
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            connection = await self._db.engine.connect()
        try:
            query = text("SELECT pg_try_advisory_lock(:key)")
            async with asyncio.timeout(_CHECK_TIMEOUT_S):
                taken = bool((await connection.execute(query, {"key": _LEADER_KEY})).scalar())
                await connection.commit()  # the lock is the session's, not the transaction's
        except BaseException:
            # It may hold the lock after all: never give it back to the pool.
            await self._discard(connection)
            raise
        if not taken:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def still_held(self) -> bool:
        """Whether the lock's connection still answers (if not, the lock is gone)."""
        if self._db.is_sqlite:
            return True
        connection = self._connection
        if connection is None:
            return False
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT_S):
                await connection.execute(text("SELECT 1"))
                await connection.commit()
            return True
        except Exception:
            log.warning("lost the connection that held the leadership", exc_info=True)
            await self._drop()
            return False

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT_S):
                unlock = text("SELECT pg_advisory_unlock(:key)")
                await connection.execute(unlock, {"key": _LEADER_KEY})
                await connection.commit()
            await connection.close()
        except Exception:
            await self._discard(connection)

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._discard(connection)

    @staticmethod
    async def _discard(connection: AsyncConnection) -> None:
        """Close a connection that may still hold the lock for good (a pooled one
        would keep it, and nobody else could lead)."""
        with contextlib.suppress(Exception):
            await connection.invalidate()
        with contextlib.suppress(Exception):
            await connection.close()
