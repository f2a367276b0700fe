"""One leader per cluster: exactly one of several processes on one database leads,
and another takes over within two checks when the leader's connection dies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import text

from conftest import POSTGRES_URL
from personae.services.leadership import Leadership
from personae.services.metrics import Metrics
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.leader_lock import LeaderLock

_CHECK_S = 0.2


async def test_the_one_process_on_sqlite_leads(make_settings: Callable[..., Settings]) -> None:
    if POSTGRES_URL:
        pytest.skip("the SQLite deployment's rule")
    database = Database(make_settings().resolved_database_url)
    metrics = Metrics()
    leadership = Leadership(LeaderLock(database), check_s=_CHECK_S, on_change=metrics.leading)
    assert b"\npersonae_leader 0.0\n" in metrics.render()
    await leadership.start()
    assert leadership.is_leader()
    assert b"\npersonae_leader 1.0\n" in metrics.render()
    await leadership.aclose()
    assert b"\npersonae_leader 0.0\n" in metrics.render(), "a stopped process leads no more"
    await database.dispose()


@pytest.mark.skipif(not POSTGRES_URL, reason="leadership among processes needs PostgreSQL")
async def test_one_of_three_leads_and_another_takes_over_when_its_connection_dies(
    make_settings: Callable[..., Settings],
) -> None:
    url = make_settings().resolved_database_url
    databases = [Database(url) for _ in range(3)]
    members = [Leadership(LeaderLock(db), check_s=_CHECK_S) for db in databases]
    try:
        for member in members:
            await member.start()
        await asyncio.sleep(_CHECK_S * 3)
        leaders = [member for member in members if member.is_leader()]
        assert len(leaders) == 1
        dead = members.index(leaders[0])
        # What SIGKILL does to the leader: its loop stops and its connections end, so
        # PostgreSQL lets go of the lock.
        task = members[dead]._task
        assert task is not None
        task.cancel()
        async with databases[(dead + 1) % 3].engine.connect() as admin:
            await admin.execute(
                text(
                    "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d "
                    "ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted "
                    "AND d.datname = current_database()"
                )
            )
            await admin.commit()
        await asyncio.sleep(_CHECK_S * 2 + 0.2)
        alive = [member for index, member in enumerate(members) if index != dead]
        assert sum(member.is_leader() for member in alive) == 1, "a new leader in two checks"
    finally:
        for member in members:
            await member.aclose()
        for database in databases:
            await database.dispose()
