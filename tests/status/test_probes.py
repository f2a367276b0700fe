"""Probes against real backends: a stopped process, a hung one, a flapping one."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from conftest import Api, simulated_backend
from personae.app import create_app
from personae.settings import Settings

INTERVAL_S = 0.4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _start_backend_process(port: int) -> asyncio.subprocess.Process:
    """`personae simulate-backend` in its own process, answering /health."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "personae.cli", "simulate-backend", "--port", str(port),
        "--first-token-ms", "1", "--tokens-per-second", "1000",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    process.kill()
    await process.wait()
    raise AssertionError("the simulated backend did not start")


@asynccontextmanager
async def _running(settings: Settings) -> AsyncIterator[Api]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


async def _wait_for(check: Callable[[], Any], *, timeout_s: float, step_s: float = 0.05) -> float:
    """Seconds until `await check()` is true."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not await check():
        if loop.time() - started > timeout_s:
            raise AssertionError(f"not true after {timeout_s} s")
        await asyncio.sleep(step_s)
    return loop.time() - started


async def test_stopping_a_backend_process_opens_an_incident_and_restarting_resolves_it(
    make_settings: Callable[..., Settings],
) -> None:
    port = _free_port()
    process = await _start_backend_process(port)
    settings = make_settings(
        backend_url=f"http://127.0.0.1:{port}", probe_interval_s=INTERVAL_S, probe_timeout_s=1.0
    )
    try:
        async with _running(settings) as api:
            status = api.container.status
            incidents = api.container.incidents

            async def states() -> dict[str, str]:
                return {c.id: c.status for c in await status.components()}

            async def probed_ok() -> bool:
                return (await states()).get("backend:remote") == "operational" and bool(
                    (await status.uptime(1))["backend:remote"][0].checks
                )

            await _wait_for(probed_ok, timeout_s=5)
            process.kill()
            await process.wait()

            async def incident_open() -> bool:
                return await incidents.open_automatic("backend:remote") is not None

            elapsed = await _wait_for(incident_open, timeout_s=10)
            # Two failed rounds, each within one interval plus a (fast-failing) probe.
            assert elapsed < 2 * INTERVAL_S + 1.5, elapsed
            assert (await states())["backend:remote"] == "major_outage"
            assert (await states())["inference"] == "major_outage"
            public = (await api.client().get("/api/v2/incidents/unresolved.json")).json()
            [incident] = public["incidents"]
            assert incident["impact"] == "major"
            assert "Model backend remote" in incident["name"]
            assert "messages are saved" in incident["incident_updates"][0]["body"]

            process = await _start_backend_process(port)

            async def resolved() -> bool:
                return await incidents.open_automatic("backend:remote") is None

            await _wait_for(resolved, timeout_s=10)
            assert (await states())["backend:remote"] == "operational"
            [closed] = (await api.client().get("/api/v2/incidents.json")).json()["incidents"]
            assert closed["status"] == "resolved" and closed["resolved_at"]
            assert "works again" in closed["incident_updates"][0]["body"]
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_a_hung_backend_times_out_and_counts_as_failed(
    make_settings: Callable[..., Settings],
) -> None:
    async with simulated_backend(first_token_ms=1) as url:
        # One second leaves the database probe room on a busy machine; the
        # hung backend still has to be cut off at the timeout, not hang on.
        settings = make_settings(backend_url=url, probe_interval_s=0, probe_timeout_s=1.0)
        async with _running(settings) as api, httpx.AsyncClient(base_url=url) as backend:
            await backend.post("/simulation/faults", json={"mode": "hang", "count": 10})
            probes = api.container.probes
            for _ in range(2):
                results = {r.component: r for r in await probes.run_round()}
                hung = results["backend:remote"]
                assert not hung.ok and "no answer within 1 s" in hung.detail
                assert hung.latency_ms < 3000
                assert results["database"].ok and results["event_log"].ok
            view = await api.container.incidents.open_automatic("backend:remote")
            assert view is not None and view.incident.automatic


async def test_a_flapping_backend_shows_degraded_with_one_incident(
    make_settings: Callable[..., Settings],
) -> None:
    async with simulated_backend(first_token_ms=1, tokens_per_second=1000) as url:
        settings = make_settings(backend_url=url, probe_interval_s=0, probe_timeout_s=2)
        async with _running(settings) as api, httpx.AsyncClient(base_url=url) as backend:
            for outcome in "FOFOFFOOFOO":
                if outcome == "F":
                    await backend.post("/simulation/faults", json={"mode": "status", "count": 1})
                await api.container.probes.run_round()
            incidents = await api.container.incidents.list_incidents()
            assert len(incidents) == 1, [v.incident.title for v in incidents]
            [view] = incidents
            assert view.incident.status == "investigating"
            assert "unstable" in view.updates[0].body and len(view.updates) == 2
            states = {c.id: c.status for c in await api.container.status.components()}
            assert states["backend:remote"] == "degraded_performance"
            assert states["inference"] == "degraded_performance"


async def test_probes_stop_with_the_app_and_zero_disables_them(
    make_settings: Callable[..., Settings],
) -> None:
    async with _running(make_settings(probe_interval_s=0)) as api:
        await asyncio.sleep(0.2)
        assert (await api.container.status.uptime(1))["database"][0].checks == 0
    async with _running(make_settings(probe_interval_s=0.1)) as api:

        async def probed() -> bool:
            return (await api.container.status.uptime(1))["database"][0].checks > 0

        await _wait_for(probed, timeout_s=5)
