"""Every cache a process keeps in memory stays within its setting, however many
chats, users or addresses come by (the memory of a long-running server stays flat)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest

from conftest import REDIS_URL
from personae.container import build_container
from personae.errors import RateLimited
from personae.events.base import parse_event_id
from personae.events.memory import MemoryEventLog
from personae.services.ratelimit import BoundedMemoryStorage, RateLimiter, build_storage
from personae.settings import Settings

LONG_MESSAGE = "x" * 4000


async def _publish_chat(log: MemoryEventLog, stream: str, tokens: int) -> None:
    """What one reply to a long message puts in its chat's stream."""
    message = {"id": f"{stream}-m", "content": LONG_MESSAGE, "status": "complete"}
    await log.publish(stream, "message", message)
    for offset in range(tokens):
        piece = {"message_id": f"{stream}-r", "offset": offset, "text": " word"}
        await log.publish(stream, "token", piece)
    await log.publish(stream, "reply_state", {**message, "content": "word " * tokens})


async def test_the_event_log_holds_about_its_memory_budget_over_many_chats() -> None:
    budget = 2 * 2**20
    log = MemoryEventLog(size=2000, max_bytes=budget)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(400):
            await _publish_chat(log, f"chat:{number}", tokens=200)
            assert log.retained_bytes <= budget
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # The estimate is near what the events really take: the process holds at most twice it.
    assert held <= 2 * budget
    assert 10 < log.stream_count < 400
    newest = await log.read("chat:399", None, wait_s=0)
    assert len(newest) == 202  # the newest chat's stream is whole


async def test_a_forgotten_stream_tells_a_reconnecting_client_it_is_not_covered() -> None:
    log = MemoryEventLog(size=100, max_bytes=200_000)
    first = await log.publish("chat:old", "message", {"content": LONG_MESSAGE})
    for number in range(100):
        await _publish_chat(log, f"chat:{number}", tokens=20)
    assert not await log.covers("chat:old", first.id)
    assert await log.read("chat:old", first.id, wait_s=0) == []
    latest = await log.publish("chat:old", "message", {"content": "back"})
    assert await log.covers("chat:old", latest.id)
    assert parse_event_id(latest.id) is not None


async def test_one_busy_stream_stays_within_its_ring() -> None:
    log = MemoryEventLog(size=50, max_bytes=2**20)
    for offset in range(5000):
        await log.publish("chat:busy", "token", {"message_id": "r", "offset": offset, "text": "a"})
    assert len(await log.read("chat:busy", None, wait_s=0)) == 50
    assert log.retained_bytes < 50 * 1000


async def test_the_app_bounds_its_event_log_by_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    if REDIS_URL:
        pytest.skip("with Redis the event log's streams are trimmed in Redis")
    container = build_container(make_settings(event_log_memory_mib=1))
    events = container.events
    assert isinstance(events, MemoryEventLog)
    for number in range(100):
        await _publish_chat(events, f"chat:{number}", tokens=50)
    assert 0 < events.retained_bytes <= 2**20
    await container.aclose()


async def test_rate_limit_windows_are_kept_for_at_most_the_bound_of_identities() -> None:
    storage = BoundedMemoryStorage(max_keys=100)
    limiter = RateLimiter(storage)
    for number in range(1000):
        await limiter.hit("send", f"address-{number}", "3/minute")
    assert len(storage.events) <= 100
    for _ in range(2):
        await limiter.hit("send", "address-999", "3/minute")
    with pytest.raises(RateLimited):  # the most recent identity is still counted
        await limiter.hit("send", "address-999", "3/minute")


async def test_an_identity_hit_often_outlives_a_flood_of_new_ones() -> None:
    storage = BoundedMemoryStorage(max_keys=100)
    limiter = RateLimiter(storage)
    await limiter.hit("login", "steady", "1000/minute")
    for number in range(500):
        await limiter.hit("login", f"flood-{number}", "5/minute")
        await limiter.hit("login", "steady", "1000/minute")
    assert len(storage.events) <= 100
    stats = await limiter._limiter.get_window_stats(
        limiter._item("1000/minute"), "personae", "login", "steady"
    )
    assert stats.remaining == 1000 - 501


async def test_fixed_window_counters_are_bounded_too() -> None:
    storage = BoundedMemoryStorage(max_keys=100)
    for number in range(1000):
        await storage.incr(f"counter-{number}", 60)
    assert len(storage.storage) <= 100
    assert await storage.get("counter-999") == 1


def test_without_redis_rate_limits_are_kept_in_bounded_memory() -> None:
    storage = build_storage(None, memory_keys=1234)
    assert isinstance(storage, BoundedMemoryStorage) and storage.max_keys == 1234
