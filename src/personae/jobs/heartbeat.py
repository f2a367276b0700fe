"""A process's heartbeat: its row in `processes`, stamped every second, through which
the other processes see that it is alive, and it sees that they are not.

The jobs of a process whose stamp stopped are taken back at once: waiting out their
leases would keep their replies waiting, and their slots counted, for the whole lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable

from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo

log = logging.getLogger("personae.scheduler")


def process_owner() -> str:
    """This process's name in `processes` (and on the jobs and slots it holds)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """Beats for `owner`; calls `on_released` when it took back a dead process's jobs."""

    def __init__(
        self, database: Database, settings: Settings, owner: str, on_released: Callable[[], None]
    ) -> None:
        self._db = database
        self._settings = settings
        self._owner = owner
        self._on_released = on_released
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, recover_all: bool) -> int:
        """The first beat (alive before anything is leased to us: a job of a process
        with no row is taken back by the others), then one every interval. With
        `recover_all` (the one process of SQLite) every running job is taken back now;
        returns how many."""
        async with self._db.write(urgent=True) as tx:
            await job_repo.heartbeat(tx, self._owner)
            recovered = await job_repo.release_running(tx) if recover_all else 0
        self._task = asyncio.create_task(self._beat(), name="personae-heartbeat")
        return recovered

    async def stop(self) -> None:
        """Stop beating and take this process's row away, putting its jobs still leased
        back in line first (a job cancelled outside its stream, waiting for a slot or
        building its prompt, is not a takeover for the next process)."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        with contextlib.suppress(Exception):
            async with self._db.write(urgent=True) as tx:
                await job_repo.requeue_owned(tx, self._owner)
                await job_repo.forget_process(tx, self._owner)

    async def _beat(self) -> None:
        interval = self._settings.heartbeat_interval_s
        timeout = self._settings.heartbeat_timeout_s
        loop = asyncio.get_running_loop()
        last_beat = loop.time()
        while True:
            try:
                async with self._db.write(urgent=True) as tx:
                    await job_repo.heartbeat(tx, self._owner)
                    # A process that was itself stalled (its loop, or the database)
                    # past the timeout judges nobody this round: others were as slow.
                    released = 0
                    if loop.time() - last_beat < timeout:
                        released = await job_repo.release_dead(
                            tx, owner=self._owner, dead_after_s=timeout
                        )
                last_beat = loop.time()
                if released:
                    log.warning("took back the jobs of a dead process", extra={"count": released})
                    self._on_released()
            except Exception:
                log.exception("the process heartbeat failed; trying again")
            await asyncio.sleep(interval)
