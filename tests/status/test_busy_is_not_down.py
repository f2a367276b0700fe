"""Busy is not down: a backend whose one slot is always taken by users' replies reads
busy, never degraded, while a backend that really fails opens one incident dated from
its first failed check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx

from conftest import Api, fleet, wait_for_reply
from personae.settings import Settings
from personae.storage.repos import status as status_repo

# Five minutes at the default 30 s interval.
ROUNDS = 10
SOLO = "backend:solo"
BAD_STATES = {"degraded_performance", "partial_outage", "major_outage"}


async def _keep_chatting(api: Api, name: str, finished: list[str]) -> None:
    """One user sending a message each time the previous reply has ended."""
    client = await api.user(name)
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    chat_id = chat.json()["id"]
    for turn in range(10_000):
        sent = await client.put(
            f"/api/v1/chats/{chat_id}/messages/{name}-{turn}", json={"content": "hello"}
        )
        assert sent.status_code == 202, sent.text
        reply = await wait_for_reply(client, chat_id, sent.json()["reply"]["id"])
        finished.append(reply["status"])


@contextlib.asynccontextmanager
async def _users(api: Api, count: int) -> AsyncIterator[list[str]]:
    finished: list[str] = []
    tasks = [asyncio.create_task(_keep_chatting(api, f"user{n}", finished)) for n in range(count)]
    try:
        yield finished
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(check: Callable[[], bool], timeout_s: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "not true in time"
        await asyncio.sleep(0.05)


async def test_a_single_slot_backend_kept_busy_by_replies_never_shows_degraded(
    make_settings: Callable[..., Settings],
) -> None:
    # A reply holds the one slot about 1.5 s, longer than the probe timeout: a probe
    # that queued for the slot behind it would time out.
    backend = {"slots": 1, "first_token_ms": 50, "tokens_per_second": 8}
    async with (
        fleet(make_settings, {"solo": backend}, probe_interval_s=0, probe_timeout_s=1.0) as (
            api,
            _urls,
        ),
        _users(api, 3) as finished,
    ):
        await _until(lambda: len(finished) >= 2)
        busy_rounds = 0
        for _ in range(ROUNDS):
            results = {r.component: r for r in await api.container.probes.run_round()}
            assert results[SOLO].ok, results[SOLO].detail
            states = {c.id: c for c in await api.container.status.components()}
            for component in (SOLO, "inference", "queue"):
                assert states[component].status not in BAD_STATES, states[component]
            if states[SOLO].status == "busy":
                busy_rounds += 1
                assert states[SOLO].wait_s is not None
            await asyncio.sleep(0.3)
        assert busy_rounds >= ROUNDS // 2, busy_rounds
        public = await api.client().get("/api/v2/components.json")
        page = (await api.client().get("/status")).text
        notice = (await api.client().get("/api/v1/notice")).json()
        incidents = await api.container.incidents.list_incidents()
    assert incidents == []
    assert set(finished) == {"complete"}, finished
    solo = next(c for c in public.json()["components"] if c["id"] == SOLO)
    assert solo["status"] == "operational"  # Statuspage's enum has no busy
    assert solo["personae"]["status"] == "busy"
    assert solo["personae"]["text"].startswith("Busy: replies wait about ")
    assert solo["personae"]["wait_s"] >= 0
    assert "Busy: replies wait about" in page and "Degraded" not in page
    assert notice["kind"] in ("none", "busy")


async def test_a_backend_that_really_fails_opens_one_incident_since_its_first_failed_check(
    make_settings: Callable[..., Settings],
) -> None:
    backend = {"slots": 1, "first_token_ms": 1, "tokens_per_second": 1000}
    async with (
        fleet(make_settings, {"solo": backend}, probe_interval_s=0, probe_timeout_s=2) as (
            api,
            urls,
        ),
        httpx.AsyncClient(base_url=urls["solo"]) as simulation,
    ):
        probes = api.container.probes
        for _ in range(2):
            assert {r.component: r for r in await probes.run_round()}[SOLO].ok
        # Every generation now answers 500; its slot is idle, so the probe generates.
        await simulation.post("/simulation/faults", json={"mode": "status", "count": 100})
        failed = {r.component: r for r in await probes.run_round()}[SOLO]
        assert not failed.ok
        states = {c.id: c.status for c in await api.container.status.components()}
        assert states[SOLO] == "degraded_performance"
        assert await api.container.incidents.open_automatic(SOLO) is None
        for _ in range(3):
            await probes.run_round()
        states = {c.id: c.status for c in await api.container.status.components()}
        assert states[SOLO] == "major_outage" and states["inference"] == "major_outage"
        async with api.container.database.read() as tx:
            results = await status_repo.recent_probe_results(tx, SOLO, limit=10)
        first_failed = [r for r in results if not r.ok][-1]
        [view] = await api.container.incidents.list_incidents()
        public = (await api.client().get("/api/v2/incidents.json")).json()["incidents"]
    assert view.incident.automatic and view.incident.components == [SOLO]
    assert view.incident.created_at == first_failed.checked_at
    assert f"since {first_failed.checked_at:%H:%M} UTC" in view.updates[0].body
    [incident] = public
    assert incident["started_at"] == first_failed.checked_at.isoformat(timespec="milliseconds")
