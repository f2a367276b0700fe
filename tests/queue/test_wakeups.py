"""A job queued by an api process wakes the workers through the shared event log
(Redis where configured; the same log object stands for it otherwise), so they claim
it at once rather than at their next poll."""

from __future__ import annotations

import asyncio
import secrets

from conftest import REDIS_URL
from personae.events.base import Event, EventLog
from personae.events.memory import MemoryEventLog
from personae.events.redis import RedisEventLog
from personae.jobs.wakeups import Wakeups


def _logs() -> tuple[EventLog, EventLog]:
    """The api process's log and a worker's: two Redis clients on one prefix, or one
    memory log seen by both."""
    if REDIS_URL:
        prefix = f"wakeups-{secrets.token_hex(4)}"
        return RedisEventLog(REDIS_URL, prefix=prefix), RedisEventLog(REDIS_URL, prefix=prefix)
    shared = MemoryEventLog()
    return shared, shared


async def test_each_announcement_wakes_every_listening_worker() -> None:
    api_log, worker_log = _logs()
    api, workers = Wakeups(api_log), [Wakeups(worker_log), Wakeups(worker_log)]
    woken = [asyncio.Event(), asyncio.Event()]
    try:
        for worker, event in zip(workers, woken, strict=True):
            worker.listen(event.set)
        await asyncio.sleep(0.2)  # the listeners are reading
        assert not any(event.is_set() for event in woken), "nothing was announced yet"
        api.announce()
        async with asyncio.timeout(3):
            await asyncio.gather(*(event.wait() for event in woken))
        for event in woken:
            event.clear()
        api.announce()
        async with asyncio.timeout(3):
            await asyncio.gather(*(event.wait() for event in woken))
    finally:
        for wakeups in (api, *workers):
            await wakeups.aclose()
        await api_log.aclose()
        if worker_log is not api_log:
            await worker_log.aclose()


class _SwallowingLog(MemoryEventLog):
    """A log whose blocking read swallows a cancellation and returns empty, as
    redis-py's does when the cancel lands as the read starts."""

    async def read(self, stream: str, after: str | None, *, wait_s: float) -> list[Event]:
        try:
            await asyncio.sleep(wait_s)
        except asyncio.CancelledError:
            return []
        return []


async def test_closing_ends_the_listener_even_when_a_read_swallows_the_cancel() -> None:
    wakeups = Wakeups(_SwallowingLog())
    wakeups.listen(lambda: None)
    await asyncio.sleep(0.05)  # the listener is in its blocking read
    closing = asyncio.create_task(wakeups.aclose())
    done, _ = await asyncio.wait({closing}, timeout=3)
    assert closing in done, "closing waits for a listener that never ends"
