"""The SIMULATED backend's own bookkeeping, which tests and benchmarks read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from conftest import simulated_backend

ASK = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def test_stats_keep_the_most_completions_in_flight_and_holding_a_slot() -> None:
    """Five at once on two slots: five were in flight, two wrote, three waited."""
    async with (
        simulated_backend(slots=2, tokens_per_second=20, first_token_ms=0) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        idle = (await client.get("/simulation/stats")).json()
        answers = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=ASK) for _ in range(5))
        )
        stats = (await client.get("/simulation/stats")).json()
    assert (idle["max_in_flight"], idle["max_active"]) == (0, 0)
    assert [answer.status_code for answer in answers] == [200] * 5
    assert all(answer.text.endswith("data: [DONE]\n\n") for answer in answers)
    assert (stats["max_in_flight"], stats["max_active"]) == (5, 2)
    assert (stats["in_flight"], stats["active"]) == (0, 0)


async def test_a_completion_given_up_while_it_waited_for_a_slot_leaves_the_counts() -> None:
    async with (
        simulated_backend(slots=1, tokens_per_second=20, first_token_ms=0) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        writing = asyncio.create_task(
            client.post("/v1/chat/completions", json={**ASK, "max_tokens": 20})
        )
        async with client.stream("POST", "/v1/chat/completions", json=ASK):
            waiting = await _until(client, lambda stats: stats["in_flight"] == 2)
        assert (await writing).status_code == 200
        settled = await _until(client, lambda stats: stats["in_flight"] == 0)
    assert (waiting["active"], settled["active"]) == (1, 0)
    assert (settled["max_in_flight"], settled["max_active"]) == (2, 1)


async def _until(client: httpx.AsyncClient, wanted: Callable[[dict[str, Any]], bool]) -> Any:
    for _ in range(100):
        stats = (await client.get("/simulation/stats")).json()
        if wanted(stats):
            return stats
        await asyncio.sleep(0.02)
    raise AssertionError(f"the stats never came to it: {stats}")
