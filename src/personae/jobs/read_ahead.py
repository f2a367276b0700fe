"""Reading replies ahead of their claim: while every slot is busy, the material of the
replies first in line is read (read-only: they stay in line, where a more urgent one
may still overtake them), and a stream begun ahead for one of them while a claim is
stored. Used only if still fresh and still the claimed reply's (see StreamAhead)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TypeVar

from personae.services.generation import GenerationService
from personae.services.job_state import Preloaded, StreamAhead
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.jobs import JobRecord

log = logging.getLogger("personae.scheduler")
# A reply's material read ahead of its claim is used only this fresh.
_PRELOAD_MAX_AGE_S = 2.0
_PRELOAD_AHEAD = 2
_Read = TypeVar("_Read")


@dataclass
class _Preload:
    """A waiting reply's material, read ahead of its claim."""

    reply_id: str
    read_at: float
    task: asyncio.Task[Preloaded | None]


class ReadAhead:
    """The few replies likely to be claimed next, by reply id, with their material."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self._db = database
        self._settings = settings
        self.generation: GenerationService | None = None  # set when jobs run here
        self._preloads: dict[str, _Preload] = {}
        # The replies first in line when last looked at (while every slot was busy).
        self._line_head: list[str] = []

    async def refresh(self) -> None:
        """Read the material of the replies first in line. Two, not one: when a slot
        frees, its user's own next reply often becomes claimable, ahead of the one
        that was first."""
        async with self._db.read() as tx:
            first = await job_repo.list_queued(
                tx, limit=_PRELOAD_AHEAD, max_wait_s=self._settings.queue_max_wait_s
            )
        wanted = [job.message_id for job in first if job.kind == "reply" and job.message_id]
        self._line_head = wanted
        now = asyncio.get_running_loop().time()
        for reply_id, preload in list(self._preloads.items()):
            if reply_id not in wanted or now - preload.read_at >= _PRELOAD_MAX_AGE_S:
                self.drop(reply_id)
        for reply_id in wanted:
            if reply_id not in self._preloads:
                self.start(reply_id)

    def start(self, reply_id: str) -> None:
        """Begin reading `reply_id`'s material (a reply likely to be claimed next)."""
        if self.generation is None:
            return
        # Drop what went stale unclaimed (another process may have claimed it).
        now = asyncio.get_running_loop().time()
        for stale_id, stale in list(self._preloads.items()):
            if now - stale.read_at >= _PRELOAD_MAX_AGE_S:
                self.drop(stale_id)
        self.drop(reply_id)
        task = asyncio.create_task(
            self.generation.material.preload(reply_id), name="personae-preload"
        )
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._preloads[reply_id] = _Preload(reply_id, now, task)

    def drop(self, reply_id: str) -> None:
        preload = self._preloads.pop(reply_id, None)
        if preload is not None:
            preload.task.cancel()

    def drop_all(self) -> None:
        for reply_id in list(self._preloads):
            self.drop(reply_id)

    def take(self, job: JobRecord) -> asyncio.Task[Preloaded | None] | None:
        """The material read ahead for `job`, if any and still fresh."""
        preload = self._preloads.pop(job.message_id or "", None)
        if preload is None:
            return None
        if asyncio.get_running_loop().time() - preload.read_at >= _PRELOAD_MAX_AGE_S:
            preload.task.cancel()
            return None
        return preload.task

    def begin_stream(self) -> asyncio.Task[StreamAhead | None] | None:
        """While a claim is stored, begin the stream of the reply first in line whose
        material is read (the claim most likely takes it; see StreamAhead)."""
        generation = self.generation
        if generation is None:
            return None
        now = asyncio.get_running_loop().time()
        for reply_id in self._line_head:
            preload = self._preloads.get(reply_id)
            if preload is None or now - preload.read_at >= _PRELOAD_MAX_AGE_S:
                continue
            task = preload.task
            if not task.done() or task.cancelled() or task.exception() or not task.result():
                continue
            material = task.result()
            assert material is not None
            ahead = asyncio.create_task(
                generation.stream_ahead(material), name="personae-stream-ahead"
            )
            ahead.add_done_callback(lambda done: done.cancelled() or done.exception())
            return ahead
        return None


def let_go(ahead: asyncio.Task[StreamAhead | None] | None) -> None:
    """Abandon a stream begun ahead for a reply that did not take it."""
    if ahead is None:
        return

    async def abandon() -> None:
        begun = await result_or_none(ahead)
        if begun is not None:
            await begun.abandon()

    task = asyncio.create_task(abandon(), name="personae-stream-abandon")
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def result_or_none(task: asyncio.Task[_Read | None] | None) -> _Read | None:
    """What a read ahead read, or None if there was none or it failed (the job reads
    again)."""
    if task is None:
        return None
    try:
        return await task  # a taken preload is never cancelled: only its job could be
    except Exception:
        log.warning("reading a reply ahead failed; reading it again", exc_info=True)
        return None
