"""Readers of the event log cancelled at random moments leave every stream working.

A chat's stream reader is cancelled whenever its client leaves, sometimes more
than once in a row (anyio cancel scopes deliver the cancellation again until
the task ends). None of that may break the stream for the readers that stay,
hold up a publisher, or raise anything (pytest turns unraisable errors into
failures).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from conftest import REDIS_URL
from personae.events.base import Event, EventLog
from personae.events.memory import MemoryEventLog
from personae.events.redis import RedisEventLog

STREAM = "chat:storm"
# Publishing is a ring append in memory and one round trip to Redis: far below this.
PUBLISH_BOUND_S = 5.0


@pytest.fixture(params=["memory", "redis"])
async def event_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    log: EventLog
    if request.param == "memory":
        log = MemoryEventLog(size=200)
    elif REDIS_URL:
        log = RedisEventLog(REDIS_URL, prefix=f"storm-{os.getpid()}-{id(request)}", size=200)
    else:
        pytest.skip("PERSONAE_TEST_REDIS_URL is not set")
    try:
        yield log
    finally:
        await log.aclose()


@dataclass
class Storm:
    log: EventLog
    chooser: random.Random
    published: list[Event] = field(default_factory=list)
    outcomes: list[asyncio.Task[list[Event]]] = field(default_factory=list)
    cancellations: int = 0

    async def publish_until(self, calm: asyncio.Event) -> None:
        while not calm.is_set():
            async with asyncio.timeout(PUBLISH_BOUND_S):
                event = await self.log.publish(STREAM, "token", {"n": len(self.published)})
            self.published.append(event)
            await asyncio.sleep(self.chooser.choice([0, 0, 0.001]))

    def _cursor(self) -> str | None:
        if not self.published:
            return None
        return self.chooser.choice([None, self.published[-1].id, "not-an-id"])

    def spawn_readers(self, count: int) -> list[asyncio.Task[list[Event]]]:
        readers = [
            asyncio.create_task(
                self.log.read(STREAM, self._cursor(), wait_s=self.chooser.uniform(0, 0.05))
            )
            for _ in range(count)
        ]
        self.outcomes.extend(readers)
        return readers

    async def cancel_at_random(self, readers: list[asyncio.Task[list[Event]]]) -> None:
        for _ in range(self.chooser.randint(0, 3)):
            await asyncio.sleep(self.chooser.choice([0, 0, 0, 0.001]))
            for reader in readers:
                if not reader.done() and self.chooser.random() < 0.5:
                    reader.cancel()
                    self.cancellations += 1


async def _storm(log: EventLog, *, cancellations: int, seed: int) -> Storm:
    storm = Storm(log, random.Random(seed))
    calm = asyncio.Event()
    publishers = [asyncio.create_task(storm.publish_until(calm)) for _ in range(3)]
    while storm.cancellations < cancellations:
        await storm.cancel_at_random(storm.spawn_readers(storm.chooser.randint(1, 40)))
        storm.outcomes = [task for task in storm.outcomes if not task.done()] + [
            task for task in storm.outcomes if task.done() and not task.cancelled()
        ][-100:]
    calm.set()
    await asyncio.gather(*publishers)
    await asyncio.gather(*storm.outcomes, return_exceptions=True)
    return storm


def _escaped(storm: Storm) -> list[BaseException]:
    return [
        error
        for task in storm.outcomes
        if not task.cancelled() and (error := task.exception()) is not None
    ]


async def _a_fresh_reader_gets_each_new_event(log: EventLog) -> None:
    for number in range(3):
        cursor = await log.last_id(STREAM)
        waiting = asyncio.create_task(log.read(STREAM, cursor, wait_s=10))
        await asyncio.sleep(0.01)  # the reader is waiting, not just started
        sent = await log.publish(STREAM, "token", {"after_the_storm": number})
        async with asyncio.timeout(10):
            received = await waiting
        assert [event.id for event in received] == [sent.id]
        assert received[0].data == {"after_the_storm": number}


async def test_random_reader_cancellations_leave_the_stream_delivering(
    event_log: EventLog,
) -> None:
    wanted = 10_000 if isinstance(event_log, MemoryEventLog) else 1_000
    storm = await _storm(event_log, cancellations=wanted, seed=15)

    assert storm.cancellations >= wanted
    assert storm.published, "the publishers never got to publish"
    assert _escaped(storm) == []
    await _a_fresh_reader_gets_each_new_event(event_log)


async def test_a_waiting_reader_is_woken_by_a_publish_not_its_timeout(
    event_log: EventLog,
) -> None:
    waiting = asyncio.create_task(event_log.read(STREAM, None, wait_s=30))
    await asyncio.sleep(0.05)
    sent = await event_log.publish(STREAM, "token", {"text": "hi"})
    async with asyncio.timeout(10):  # far below the reader's own 30 s wait
        received = await waiting
    assert [event.id for event in received] == [sent.id]


async def test_more_than_a_hundred_waiting_readers_all_get_the_event(event_log: EventLog) -> None:
    # One per open stream: a process serves more than a connection pool's default 100.
    waiting = [asyncio.create_task(event_log.read(STREAM, None, wait_s=30)) for _ in range(150)]
    await asyncio.sleep(0.2)
    sent = await event_log.publish(STREAM, "token", {"text": "to all"})
    async with asyncio.timeout(10):
        received = await asyncio.gather(*waiting)
    assert all([event.id for event in events] == [sent.id] for events in received)
