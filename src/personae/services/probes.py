"""Health probes on a schedule, and the incidents they open and resolve by themselves.

Every round checks the database (a round trip), the event log (publish, then
read back), each inference backend and the waiting room. A probe that does not
answer within the timeout has failed: a hung backend is a down backend.

Busy is not down. A backend is judged first by the replies it finished lately
(a majority failed, or its breaker is open: failing), then by its health
endpoint, which takes no slot; the four-token generation runs only when one of
its slots is idle, holding that slot like a reply would, and a generation that
waited while real replies completed on the backend is busy, not failed. The
waiting room fails only when replies wait and none is being written; a full
line that moves is busy.

Two failures in a row open one incident for the component, dated from the
first of them; two passes in a row, once the component has stopped flapping,
resolve it. A component that passes and fails by turns keeps its one incident
open and shows degraded performance, so a flapping backend never makes an
incident storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import datetime, timedelta

from personae.events.base import EventLog
from personae.llm.base import ChatTurn, Provider, SamplingParams
from personae.llm.router import Backend, Router
from personae.services.incidents import IncidentService
from personae.services.metrics import Metrics
from personae.services.status import (
    Backends,
    StatusService,
    component_name,
    consecutive_failures,
    is_flapping,
)
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import status as repo
from personae.storage.repos.status import ProbeRecord
from personae.storage.types import utcnow
from personae.words import plural

log = logging.getLogger("personae.probes")
_RECOVERY_PASSES = 2
_OPEN_AFTER_FAILURES = 2
_PROBE_STREAM = "status:probe"
_PRUNE_EVERY_S = 3600.0
_DETAIL_CHARS = 300
_PROBE_PROMPT = (ChatTurn("user", "Reply with the single word: ok"),)
_PROBE_PARAMS = SamplingParams(max_tokens=4, temperature=0.0)
# Fewer replies than this in the window say too little to call a backend failing.
_JUDGED_AFTER_REPLIES = 3


class _ProbeFailed(Exception):
    """The check answered, and the answer is bad."""


_TEXTS = {
    "database": (
        "critical",
        "Chats and characters cannot be loaded",
        "Our checks cannot reach the database since {since} UTC. Pages may fail to load and "
        "messages may not be accepted; nothing already saved is lost. We are on it.",
    ),
    "event_log": (
        "major",
        "Replies do not appear live",
        "The event log behind live replies fails our checks since {since} UTC. Replies are "
        "still written and saved: reload the chat to see them.",
    ),
    "queue": (
        "minor",
        "Replies are slow to start",
        "Replies wait and none is being written since {since} UTC. Your messages are saved "
        "and are answered in turn once replies move again.",
    ),
}
_BACKEND_TEXT = (
    "major",
    "{name} is not answering",
    "{name} fails our checks since {since} UTC, so replies may wait or fail. Your messages "
    "are saved; a reply that fails keeps its text and can be regenerated.",
)


class ProbeRunner:
    """Runs a probe round every `probe_interval_s` and keeps automatic incidents in step."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        settings: Settings,
        incidents: IncidentService,
        status: StatusService,
        metrics: Metrics,
        backends: Backends,
        *,
        router: Router | None = None,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = database
        self._router = router
        # Only the cluster's leader probes and keeps incidents (one round, not N).
        self._leads = leads
        self._events = events
        self._settings = settings
        self._incidents = incidents
        self._status = status
        self._metrics = metrics
        self._backends = backends
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._pruned_at = 0.0

    # --- life cycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start probing in the background (not when the interval is 0)."""
        if self._settings.probe_interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="personae-probes")

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        # The first round waits one interval too: a starting server is not judged yet.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._settings.probe_interval_s)
            if self._stop.is_set():
                return
            if not self._leads():
                continue
            try:
                await self.run_round()
            except Exception:
                log.exception("a probe round failed; trying again next interval")

    # --- one round ---------------------------------------------------------------------

    async def run_round(self) -> list[ProbeRecord]:
        """Probe everything at once, store the results, then open or resolve incidents."""
        providers = list(self._backends())
        checks: dict[str, Callable[[], Awaitable[str]]] = {
            "api": self._api,
            "database": self._database,
            "event_log": self._event_log,
            "queue": self._queue,
        }
        slots = {b.name: b for b in self._router.backends} if self._router else {}
        for provider in providers:
            checks[f"backend:{provider.name}"] = self._backend_check(
                provider, slots.get(provider.name)
            )
        results = list(await asyncio.gather(*(self._timed(c, f) for c, f in checks.items())))
        backends = [r for r in results if r.component.startswith("backend:")]
        fleet_ok = any(r.ok for r in backends)
        detail = f"{sum(r.ok for r in backends)} of {plural(len(backends), 'backend')} answer"
        results.append(ProbeRecord("inference", fleet_ok, 0, detail, utcnow()))
        for result in results:
            self._metrics.probe(result.component, result.ok, result.latency_ms)
        async with self._db.write() as tx:
            await repo.insert_probe_results(tx, results)
            if time.monotonic() - self._pruned_at > _PRUNE_EVERY_S:
                self._pruned_at = time.monotonic()
                cutoff = utcnow() - timedelta(days=self._settings.probe_retention_days)
                await repo.delete_probe_results_before(tx, cutoff)
        for component in checks:
            if component != "api":
                await self._reconcile(component)
        return results

    async def _timed(self, component: str, check: Callable[[], Awaitable[str]]) -> ProbeRecord:
        started = time.monotonic()
        timeout = self._settings.probe_timeout_s
        if component.startswith("backend:"):
            # Its health and its generation each have the timeout (and say so themselves).
            timeout = 2 * timeout + 1
        try:
            async with asyncio.timeout(timeout):
                detail, ok = await check(), True
        except TimeoutError:
            detail, ok = f"no answer within {timeout:g} s", False
        except Exception as error:
            detail, ok = f"{type(error).__name__}: {error}", False
        latency_ms = round((time.monotonic() - started) * 1000)
        return ProbeRecord(component, ok, latency_ms, detail[:_DETAIL_CHARS], utcnow())

    async def _api(self) -> str:
        return "serving"

    async def _database(self) -> str:
        await self._db.ping()
        return "round trip ok"

    async def _event_log(self) -> str:
        before = await self._events.last_id(_PROBE_STREAM)
        sent = await self._events.publish(_PROBE_STREAM, "probe", {"at": utcnow().isoformat()})
        received = await self._events.read(_PROBE_STREAM, before, wait_s=0)
        if sent.id not in {event.id for event in received}:
            raise _ProbeFailed("a published event could not be read back")
        return "publish and read ok"

    async def _queue(self) -> str:
        room = await self._status.waiting_room()
        if await self._status.replies_paused():
            return f"{room.waiting} waiting; replies are paused for maintenance"
        if room.stuck(self._settings.probe_queue_wait_s):
            raise _ProbeFailed(
                f"{room.waiting} waiting and none is being written; "
                f"the oldest for {round(room.oldest_wait_s)} s"
            )
        if room.active:
            return f"{room.busy_text()} ({room.waiting} waiting, {room.writing} being written)"
        return f"no reply waits; {room.writing} being written"

    # --- backends ----------------------------------------------------------------------

    def _backend_check(
        self, provider: Provider, backend: Backend | None
    ) -> Callable[[], Awaitable[str]]:
        async def check() -> str:
            return await self._backend(provider, backend)

        return check

    async def _backend(self, provider: Provider, backend: Backend | None) -> str:
        """Real replies first, then the health endpoint, then a generation if a slot is
        idle (`backend` is None when the router does not know it: always generate)."""
        window = self._settings.probe_reply_window_s
        replies = self._metrics.backend_replies.summary(provider.name, window_s=window)
        seen = replies.describe(window)
        if replies.replies >= _JUDGED_AFTER_REPLIES and replies.failed * 2 > replies.replies:
            raise _ProbeFailed(f"replies fail: {seen}")
        if backend is not None and backend.breaker.state == "open":
            raise _ProbeFailed(f"replies failed in a row (its breaker is open); {seen}")
        timeout = self._settings.probe_timeout_s
        try:
            async with asyncio.timeout(timeout):
                healthy = await provider.health()
        except TimeoutError:
            raise _ProbeFailed(f"the health check gave no answer within {timeout:g} s") from None
        if not healthy:
            raise _ProbeFailed("the health check failed")
        slot = None
        if self._router is not None and backend is not None:
            # A probe's four tokens wait for the prompt warm-up chunk being read
            # rather than cancel the warm-up (see services/warmup.py).
            slot = await self._router.take_backend(backend, cancel_warmups=False)
            if slot is None:
                slots = backend.spec.slots
                are = "is" if slots == 1 else "are"
                return f"busy: its {plural(slots, 'slot')} {are} writing replies; health ok; {seen}"
        try:
            return f"{await self._generate(provider)}; {seen}"
        finally:
            if slot is not None:
                await slot.give_back()

    async def _generate(self, provider: Provider) -> str:
        """Four tokens, on a slot taken as a reply would take it (a reply claimed
        meanwhile waits for it rather than sharing the backend's slot unseen)."""
        witness = self._metrics.backend_replies
        began = witness.now()
        timeout = self._settings.probe_timeout_s
        pieces = 0
        try:
            async with asyncio.timeout(timeout):
                stream = provider.stream_chat(_PROBE_PROMPT, _PROBE_PARAMS)
                async with aclosing(stream) as pieces_of_text:
                    async for _piece in pieces_of_text:
                        pieces += 1
        except TimeoutError:
            # Another process's replies may fill the backend: they prove it serves.
            served = witness.completed_since(provider.name, began)
            if served:
                return (
                    f"busy: the probe waited while {plural(served, 'reply', 'replies')} completed"
                )
            raise _ProbeFailed(f"no answer within {timeout:g} s") from None
        return f"healthy; generated {plural(pieces, 'piece')}"

    # --- automatic incidents -----------------------------------------------------------

    async def _reconcile(self, component: str) -> None:
        async with self._db.read() as tx:
            results = await repo.recent_probe_results(tx, component, limit=10)
        recent = [r.ok for r in results]
        open_view = await self._incidents.open_automatic(component)
        if open_view is None:
            failures = consecutive_failures(recent)
            if failures >= _OPEN_AFTER_FAILURES:
                await self._open(component, since=results[failures - 1].checked_at)
            return
        incident = open_view.incident
        passing = len(recent) >= _RECOVERY_PASSES and all(recent[:_RECOVERY_PASSES])
        if passing and not is_flapping(recent):
            since = f"{incident.created_at:%H:%M}"
            await self._incidents.resolve(
                incident.id,
                f"{component_name(component)} works again: our checks pass. It was affected "
                f"from {since} to {utcnow():%H:%M} UTC. Nothing saved was lost; a reply that "
                "failed meanwhile can be regenerated.",
            )
        elif is_flapping(recent) and len(open_view.updates) == 1:
            await self._incidents.post_update(
                incident.id,
                incident.status,
                f"{component_name(component)} is unstable: our checks pass and fail by turns. "
                "We keep this incident open until it is steady again.",
            )

    async def _open(self, component: str, *, since: datetime) -> None:
        """Open the component's incident, dated from its first failed check."""
        impact, title, body = _TEXTS.get(component, _BACKEND_TEXT)
        name = component_name(component)
        log.warning("opening an automatic incident", extra={"component": component})
        await self._incidents.open(
            title.format(name=name),
            body.format(name=name, since=f"{since:%H:%M}"),
            impact=impact,
            components=[component],
            automatic=True,
            started_at=since,
        )
