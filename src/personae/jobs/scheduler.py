"""The scheduler: claims reply jobs from the database and runs them, within capacity.

Jobs are rows with a lease, so they survive this process: a job whose process
died is claimed again when its lease runs out (or at once on start when this is
the only process, as with SQLite). While a job runs, its lease is renewed; on
shutdown, running replies get a grace period, then are checkpointed and put
back in line for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from personae.events.base import EventLog
from personae.jobs.heartbeat import Heartbeat, process_owner
from personae.jobs.read_ahead import ReadAhead, let_go, result_or_none
from personae.jobs.service_times import ServiceTimes
from personae.jobs.wakeups import Wakeups
from personae.services.chat_events import BACKEND_UNAVAILABLE, publish_queue_place
from personae.services.fleet_view import FleetView
from personae.services.generation import GenerationService
from personae.services.job_state import JobControl, Outcome, Preloaded, StreamAhead
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.jobs import JobRecord
from personae.storage.types import utcnow

log = logging.getLogger("personae.scheduler")
_POLL_S = 0.5
_QUEUE_ANNOUNCE_S = 5.0
_QUEUE_ANNOUNCE_MAX = 1000
# How long a reply that can start waits for its stream begun ahead to have begun.
_AHEAD_WAIT_S = 0.1
# Replies past their deadline ended per round while no backend can take replies.
_OVERDUE_PER_ROUND = 20
# How long replies told to pause at shutdown get to checkpoint before they are cancelled.
_CHECKPOINT_S = 2.0


@dataclass
class _Running:
    job: JobRecord
    control: JobControl
    task: asyncio.Task[None] = field(init=False)
    preload: asyncio.Task[Preloaded | None] | None = None
    # The chat's prompt version as the claim saw it (whether a preload is still current).
    chat_changed_at: datetime | None = None
    # Its first stream, begun while the claim was stored.
    ahead: asyncio.Task[StreamAhead | None] | None = None


class Scheduler:
    """Runs as many reply jobs at once as the usable backends have slots."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        settings: Settings,
        *,
        paused: Callable[[], Awaitable[bool]] | None = None,
        owner: str | None = None,
        fleet: FleetView | None = None,
        leads: Callable[[], bool] = lambda: True,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = database
        # Told of every job queued (here, or in another process when woken): prompt
        # warm-ups give way at once (see services/warmup.py).
        self._on_queued = on_queued
        # Whether this process leads the cluster: only the leader announces the places
        # in line (every worker would publish each place once more).
        self._leads = leads
        # The backends as the cluster sees them (several processes share a database):
        # waiting replies' estimates then come from there, not this process's view.
        self._fleet = fleet
        # Asked before each claim: while it says yes (maintenance), replies wait in line.
        self._paused = paused
        self._events = events
        self._settings = settings
        self._generation: GenerationService | None = None
        # Runners of other job kinds (e.g. "summary"); replies go to `_generation`.
        self._handlers: dict[str, Callable[[JobRecord, JobControl], Awaitable[Outcome]]] = {}
        self._capacity: Callable[[], int] = lambda: 1
        self.owner = owner or process_owner()
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._wakeups = Wakeups(events)
        self._heartbeat = Heartbeat(database, settings, self.owner, self._wake.set)
        # Since when (loop time) no backend can take replies, while that lasts.
        self._unavailable_since: float | None = None
        self._service_times = ServiceTimes()
        self._slots: Callable[[], dict[str, int]] = dict
        # Whether a job beyond the given number running here would find a backend slot.
        self._room: Callable[[int], Awaitable[bool]] = self._room_here
        self._read_ahead = ReadAhead(database, settings)

    # --- JobSignals --------------------------------------------------------------------

    def job_queued(self, reply_id: str | None = None) -> None:
        """Claim soon; `reply_id`, a reply just queued, is read while it is claimed
        when a slot is free (it is then likely the one claimed)."""
        self._on_queued()
        self._wake.set()
        if self._fleet is not None and self._generation is None:
            self._wakeups.announce()  # an api process: the job runs in a worker
        if reply_id is not None and self._busy() < self._capacity() and not self._stopping:
            self._read_ahead.start(reply_id)

    def _woken(self) -> None:
        """Another process queued a job."""
        self._on_queued()
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is not None:
            running.control.stop_requested.set()

    @property
    def max_wait_s(self) -> float:
        """A reply waiting this long goes first, whatever its tier (no starvation)."""
        return self._settings.queue_max_wait_s

    def estimate_start_s(self, position: int) -> float | None:
        """When the reply at `position` in line is likely to start, over the usable
        backends' slots (see `ServiceTimes.estimate_start_s`); None while no backend
        can take replies (nobody knows when one is back)."""
        if self._fleet is not None:
            return self._fleet.estimate_start_s(
                position, self._service_times.of, self._service_times.overall_s
            )
        if self.backend_unavailable():
            return None
        free = max(0, self._capacity() - self._busy()) if self._generation is not None else 0
        if position <= free:
            return 0.0  # a slot of this process is free for it: it starts at the next claim
        # The first `free` in line take the free slots; the rest wait for waves.
        return self._service_times.estimate_start_s(
            position - free, self._slots(), self._capacity()
        )

    async def refresh_estimates(self, tx: Transaction) -> None:
        if self._fleet is not None:
            await self._fleet.refresh_counts(tx)

    def backend_unavailable(self) -> bool:
        """Whether no backend can take a reply now (all down, or their breakers open)."""
        if self._fleet is not None:
            return self._fleet.unavailable()
        return self._generation is not None and self._capacity() <= 0

    def service_time_s(self, backend: str) -> float:
        if self._fleet is not None:
            return self._fleet.service_s(backend, self._service_times.of(backend))
        return self._service_times.of(backend)

    def register(
        self, kind: str, runner: Callable[[JobRecord, JobControl], Awaitable[Outcome]]
    ) -> None:
        """Run jobs of `kind` with `runner` instead of the reply generator."""
        self._handlers[kind] = runner

    # --- life cycle --------------------------------------------------------------------

    async def _room_here(self, busy: int) -> bool:
        return busy < self._capacity()

    def _busy(self) -> int:
        """Jobs still needing a backend slot (not those only storing how they ended)."""
        return sum(1 for running in self._running.values() if not running.control.slot_freed)

    @property
    def running_count(self) -> int:
        return len(self._running)

    async def start(
        self,
        generation: GenerationService,
        *,
        capacity: Callable[[], int],
        recover_all: bool,
        slots: Callable[[], dict[str, int]] = dict,
        room: Callable[[int], Awaitable[bool]] | None = None,
    ) -> None:
        """Take back the jobs of dead processes, then start claiming.

        `recover_all` is for a single-process deployment (SQLite): every running
        job then belongs to a process that is gone, so it need not wait for its lease.
        """
        self._generation = self._read_ahead.generation = generation
        self._capacity = capacity
        self._slots = slots
        self._room = room or self._room_here
        recovered = await self._heartbeat.start(recover_all=recover_all)
        if self._fleet is not None:  # jobs are queued by other processes too
            self._wakeups.listen(self._woken)
        if recovered:
            log.info("recovered interrupted reply jobs", extra={"count": recovered})
        self._loop_task = asyncio.create_task(self._loop(), name="personae-scheduler")

    def stop_claiming(self) -> None:
        """Take no new jobs (they wait in the database for another process or the next start)."""
        self._stopping = True
        self._read_ahead.drop_all()
        self._wake.set()

    async def shutdown(self, grace_s: float) -> None:
        """Stop claiming; let running replies finish for `grace_s`, then checkpoint the rest."""
        self.stop_claiming()
        if self._loop_task is not None:
            await self._loop_task
        tasks = [running.task for running in self._running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for running in list(self._running.values()):
                running.control.shutting_down.set()
            if pending:
                # Short enough that the whole stop stays inside grace + 4 s, where the
                # exit deadline (cli) would end the process: a reply that does not
                # pause (no token comes) is cancelled, which checkpoints it too.
                _, still = await asyncio.wait(pending, timeout=_CHECKPOINT_S)
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
        await self._heartbeat.stop()
        await self._wakeups.aclose()

    # --- the loop ----------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_announce = loop.time() + _QUEUE_ANNOUNCE_S
        while not self._stopping:
            # Cleared before the work, not after: a slot freed or a job queued while
            # this round claims must wake the next round, not be forgotten.
            self._wake.clear()
            if loop.time() >= next_announce and self._leads():
                next_announce = loop.time() + _QUEUE_ANNOUNCE_S
                await self._announce_queue()
            try:
                # Not one job more than the slots: a job claimed ahead of its slot
                # could not be overtaken by a paying tier arriving after it.
                while not self._stopping and await self._room(self._busy()):
                    if self._paused is not None and await self._paused():
                        break
                    ahead = self._read_ahead.begin_stream()
                    try:
                        claimed = await self._claim()
                    except BaseException:
                        let_go(ahead)
                        raise
                    if claimed is None:
                        let_go(ahead)
                        break
                    self._launch(*claimed, ahead=ahead)
                if self._unavailable_for_s() >= self._settings.reply_deadline_s:
                    await self._end_overdue()
                elif 0 < self._capacity() <= self._busy() and not self._stopping:
                    # (Nothing is read ahead while no backend can take replies.)
                    await self._read_ahead.refresh()
            except Exception:
                log.exception("claiming jobs failed; trying again shortly")
            # asyncio.timeout, not wait_for (which waits in a task of its own): woken,
            # this loop runs at the next turn, before a finished reply's own writes.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_POLL_S):
                    await self._wake.wait()

    async def _announce_queue(self) -> None:
        """Tell every waiting reply its place in line and estimate (the waiting room)."""
        try:
            async with self._db.read() as tx:
                waiting = await job_repo.list_queued(
                    tx, limit=_QUEUE_ANNOUNCE_MAX, max_wait_s=self._settings.queue_max_wait_s
                )
            reason = BACKEND_UNAVAILABLE if self.backend_unavailable() else None
            for position, job in enumerate(waiting, start=1):
                if job.kind == "reply" and job.chat_id and job.message_id:
                    await publish_queue_place(
                        self._events,
                        job.chat_id,
                        job.message_id,
                        position,
                        self.estimate_start_s(position),
                        reason=reason,
                    )
        except Exception:
            log.exception("announcing queue places failed")

    def _unavailable_for_s(self) -> float:
        """How long no backend has been able to take replies (0 while one can)."""
        if not self.backend_unavailable() or self._stopping:
            self._unavailable_since = None
            return 0.0
        now = asyncio.get_running_loop().time()
        if self._unavailable_since is None:
            self._unavailable_since = now
        return now - self._unavailable_since

    async def _end_overdue(self) -> None:
        """When no backend has been able to take replies for the reply deadline, the
        replies that have waited that long too are claimed all the same: finding no
        backend, each ends failed and says so (not during maintenance: replies wait)."""
        if self._paused is not None and await self._paused():
            return
        cutoff = utcnow() - timedelta(seconds=self._settings.reply_deadline_s)
        for _ in range(_OVERDUE_PER_ROUND):
            claimed = await self._claim(created_before=cutoff)
            if claimed is None:
                return
            self._launch(*claimed, past_deadline=True)

    async def _claim(
        self, *, created_before: datetime | None = None
    ) -> tuple[JobRecord, datetime | None] | None:
        """The next job (created before `created_before`, when given: replies only),
        leased to this process, and its chat's prompt version."""
        async with self._db.write(urgent=True) as tx:
            job = await job_repo.claim_next(
                tx,
                owner=self.owner,
                lease_s=self._settings.job_lease_s,
                skip_locked=not self._db.is_sqlite,
                max_wait_s=self._settings.queue_max_wait_s,
                created_before=created_before,
                kind=None if created_before is None else "reply",
            )
            if job is None:
                return None
            changed_at = await chat_repo.prompt_version(tx, job.chat_id) if job.chat_id else None
        return job, changed_at

    def _launch(
        self,
        job: JobRecord,
        chat_changed_at: datetime | None,
        ahead: asyncio.Task[StreamAhead | None] | None = None,
        *,
        past_deadline: bool = False,
    ) -> None:
        """Run a claimed job; `ahead`, a stream begun while the claim was stored (used
        if it is this job's)."""
        control = JobControl(on_slot_free=self._wake.set, past_deadline=past_deadline)
        running = _Running(job=job, control=control)
        running.preload = self._read_ahead.take(job) if job.kind == "reply" else None
        if ahead is not None and running.preload is not None:
            running.ahead = ahead  # run() takes it up if it was asked this reply's prompt
        else:
            let_go(ahead)
        running.chat_changed_at = chat_changed_at
        running.task = asyncio.create_task(self._run(running), name=f"personae-job-{job.id}")
        self._running[job.id] = running

    async def _run(self, running: _Running) -> None:
        lease = asyncio.create_task(self._keep_lease(running))
        try:
            generation = self._generation
            assert generation is not None
            handler = self._handlers.get(running.job.kind)
            if handler is not None and running.job.takeovers >= self._settings.job_max_takeovers:
                await self._set_aside(running.job)
                return
            if handler is not None:
                outcome = await handler(running.job, running.control)
            else:
                preloaded = await result_or_none(running.preload)
                ahead = await self._begun(running)
                outcome = await generation.run(
                    running.job, running.control, preloaded, running.chat_changed_at, ahead
                )
            # The measured service time (queue estimates) is that of replies only.
            reply = running.job.kind == "reply"
            if reply and outcome.status == "complete" and outcome.service_s > 0:
                self._service_times.measure(outcome)
                if self._fleet is not None and outcome.backend is not None:
                    await self._fleet.measure(outcome.backend, outcome.service_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "reply job crashed; its lease will bring it back", extra={"job_id": running.job.id}
            )
        finally:
            let_go(running.ahead)  # ended before run() took it
            lease.cancel()
            await asyncio.gather(lease, return_exceptions=True)
            self._running.pop(running.job.id, None)
            self._wake.set()

    async def _set_aside(self, job: JobRecord) -> None:
        """A background job taken back too often ends failed (see `job_max_takeovers`)."""
        log.warning(
            "background job quarantined after repeated takeovers",
            extra={"job_id": job.id, "kind": job.kind, "takeovers": job.takeovers},
        )
        async with self._db.write(urgent=True) as tx:
            await job_repo.finish(tx, job.id, job_repo.FAILED, "reply_quarantined")

    async def _begun(self, running: _Running) -> StreamAhead | None:
        """The stream begun ahead of `running`, if it has begun by now: a reply never
        waits long for a stream it can do without (one that has not begun is let go)."""
        task, running.ahead = running.ahead, None  # run() takes it up or abandons it
        if task is None:
            return None
        await asyncio.wait({task}, timeout=_AHEAD_WAIT_S)
        if not task.done():
            let_go(task)
            return None
        return await result_or_none(task)

    async def _keep_lease(self, running: _Running) -> None:
        interval = self._settings.job_lease_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._db.write(urgent=True) as tx:
                    held = await job_repo.renew_lease(
                        tx, running.job.id, self.owner, self._settings.job_lease_s
                    )
            except Exception:
                log.exception("renewing a lease failed", extra={"job_id": running.job.id})
                continue
            if not held:
                running.control.lease_lost.set()
                return
