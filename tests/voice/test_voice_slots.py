"""The voice line: slots, first come first served, places told, a full line refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conftest import Api
from personae.errors import VoiceBusy
from personae.services.metrics import Metrics
from personae.services.voice_slots import SYNTHESIS, TRANSCRIPTION, VoiceSlots


async def _hold(slots: VoiceSlots, kind: str, release: asyncio.Event, log: list[str], name: str,
                places: list[tuple[str, int]] | None = None) -> None:  # fmt: skip
    async def told(position: int, _estimate: float) -> None:
        if places is not None:
            places.append((name, position))

    async with slots.take(kind, told):
        log.append(name)
        await release.wait()


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_work_waits_in_line_in_order_and_hears_its_place() -> None:
    slots = VoiceSlots(synthesis=1, transcription=1, queue_max=5)
    release = [asyncio.Event() for _ in range(3)]
    log: list[str] = []
    places: list[tuple[str, int]] = []
    tasks = [
        asyncio.create_task(_hold(slots, SYNTHESIS, release[i], log, f"w{i}", places))
        for i in range(3)
    ]
    await _until(lambda: slots.state()[0].waiting == 2)
    assert log == ["w0"]
    assert ("w1", 1) in places and ("w2", 2) in places
    # Transcription has slots of its own: it does not wait behind synthesis.
    other = asyncio.Event()
    other.set()
    await _hold(slots, TRANSCRIPTION, other, log, "t")
    release[0].set()
    await _until(lambda: log[-1] == "w1")
    await _until(lambda: ("w2", 1) in places)  # moved up when w1 started
    release[1].set()
    release[2].set()
    await asyncio.gather(*tasks)
    assert log == ["w0", "t", "w1", "w2"]
    assert slots.state()[0].busy == 0 and slots.state()[0].served == 3


async def test_a_full_line_is_refused_at_once_with_a_retry_after() -> None:
    slots = VoiceSlots(synthesis=1, transcription=1, queue_max=1)
    release = asyncio.Event()
    log: list[str] = []
    first = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "a"))
    second = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "b"))
    await _until(lambda: slots.state()[0].waiting == 1)
    with pytest.raises(VoiceBusy) as refused:
        async with slots.take(SYNTHESIS):
            pass
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert refused.value.extra == {"kind": SYNTHESIS}
    release.set()
    await asyncio.gather(first, second)


async def test_leaving_the_line_gives_no_slot_away_and_loses_none() -> None:
    slots = VoiceSlots(synthesis=1, transcription=1, queue_max=5)
    release = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "holder"))
    leaver = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "leaver"))
    stayer = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "stayer"))
    await _until(lambda: slots.state()[0].waiting == 2)
    leaver.cancel()
    await _until(lambda: slots.state()[0].waiting == 1)
    release.set()
    await asyncio.gather(holder, stayer)
    assert log == ["holder", "stayer"]
    assert slots.state()[0].busy == 0
    # The slot is free again for the next one.
    async with asyncio.timeout(1), slots.take(SYNTHESIS):
        pass


async def test_the_lines_show_in_the_metrics() -> None:
    metrics = Metrics()
    slots = VoiceSlots(synthesis=2, transcription=1, queue_max=5, observer=metrics.voice_line)
    async with slots.take(SYNTHESIS):
        text = metrics.render().decode()
        assert 'personae_voice_slots{kind="synthesis"} 2.0' in text
        assert 'personae_voice_slots_busy{kind="synthesis"} 1.0' in text
    text = metrics.render().decode()
    assert 'personae_voice_slots_busy{kind="synthesis"} 0.0' in text
    assert 'personae_voice_work_seconds_count{kind="synthesis"} 1.0' in text


async def test_the_waiting_room_view_shows_the_voice_lines(api: Api) -> None:
    slots = api.container.voice_slots
    release = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "holder"))
    waiter = asyncio.create_task(_hold(slots, SYNTHESIS, release, log, "waiter"))
    await _until(lambda: slots.state()[0].waiting == 1)
    view = (await api.client().get("/api/v1/queue")).json()
    lines = {line["kind"]: line for line in view["voice"]}
    assert lines["synthesis"] == {
        "kind": "synthesis", "slots": 1, "busy": 1, "waiting": 1,
        "estimated_wait_s": lines["synthesis"]["estimated_wait_s"],
    }  # fmt: skip
    assert lines["synthesis"]["estimated_wait_s"] > 0
    assert lines["transcription"]["busy"] == 0 and lines["transcription"]["estimated_wait_s"] == 0
    release.set()
    await asyncio.gather(holder, waiter)


async def test_work_a_caller_stops_waiting_for_keeps_its_slot_until_it_ends() -> None:
    """An engine runs in a thread nothing can stop: a barge-in or a timeout frees the
    caller at once, but the slot stays taken until the thread is done, so the next
    request does not pile a second engine run onto a busy core."""
    import threading
    import time

    slots = VoiceSlots(synthesis=1, transcription=1, queue_max=5)
    release = threading.Event()
    ran: list[str] = []

    def engine(name: str) -> str:
        release.wait(10)
        ran.append(name)
        return name

    first = asyncio.create_task(slots.run(SYNTHESIS, lambda: asyncio.to_thread(engine, "first")))
    await _until(lambda: slots.state()[0].busy == 1)
    never = asyncio.create_task(slots.run(SYNTHESIS, lambda: asyncio.to_thread(engine, "never")))
    second = asyncio.create_task(slots.run(SYNTHESIS, lambda: asyncio.to_thread(engine, "second")))
    await _until(lambda: slots.state()[0].waiting == 2)
    first.cancel()  # the caller leaves while its work runs
    never.cancel()  # this one leaves while still in line
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(asyncio.CancelledError):
        await never
    await _until(lambda: slots.state()[0].waiting == 1)  # "never" left the line
    assert slots.state()[0].busy == 1  # "first" still runs in its thread
    started = time.monotonic()
    release.set()
    assert await second == "second"
    assert ran == ["first", "second"]  # "never" was never started
    assert time.monotonic() - started < 5
    assert slots.state()[0].busy == 0


async def test_a_budget_frees_the_caller_not_the_slot() -> None:
    import threading

    slots = VoiceSlots(synthesis=1, transcription=1, queue_max=5)
    release = threading.Event()
    with pytest.raises(TimeoutError):
        await slots.run(SYNTHESIS, lambda: asyncio.to_thread(release.wait, 10), budget_s=0.2)
    assert slots.state()[0].busy == 1
    release.set()
    await _until(lambda: slots.state()[0].busy == 0)
