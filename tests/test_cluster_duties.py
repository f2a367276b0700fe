"""Cluster duties happen once though every process could do them (real processes on
PostgreSQL and Redis: two api processes, two workers and a SIMULATED backend process).

One process leads at a time, as each process's `personae_leader` gauge says, and
another takes over within two checks of the leader's kill -9; each incident change
reaches a webhook receiver once; a backend outage opens one automatic incident, kept
through a change of leader, and resolved once the backend is back on its port.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cluster_processes import Cluster, Process, cluster
from conftest import PASSWORD, POSTGRES_URL, REDIS_URL, eventually, serve_app
from personae.services.webhooks import WEBHOOK_ID_HEADER
from personae.storage.db import Database
from personae.storage.repos import accounts
from personae.storage.tables import incident_updates, incidents, webhook_deliveries

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="several processes need PostgreSQL and Redis"
)

CHECK_S = 0.5  # PERSONAE_LEADER_CHECK_S
PROBE_S = 0.5  # PERSONAE_PROBE_INTERVAL_S
BACKEND = "backend:sim"  # the status component of the workers' backend `sim`
_LEADER = re.compile(r"^personae_leader (\S+)$", re.MULTILINE)
_CLUSTER_SLOTS = re.compile(
    r'^personae_cluster_backend_slots\{backend="sim"\} (\S+)$', re.MULTILINE
)
_POLL_S = 0.05
_QUICK = {
    "leader_check_s": str(CHECK_S),
    "probe_interval_s": str(PROBE_S),
    "probe_timeout_s": "1",
}


# --- who leads ---------------------------------------------------------------------------


async def _leader_gauge(client: httpx.AsyncClient, process: Process) -> float | None:
    """The process's `personae_leader`, or None when it does not answer."""
    try:
        response = await client.get(f"{process.url}/metrics")
    except httpx.TransportError:
        return None
    found = _LEADER.search(response.text)
    assert found, "every process exports personae_leader"
    return float(found.group(1))


async def _leaders(processes: list[Process]) -> list[Process]:
    """The running processes whose gauge says they lead; never more than one."""
    running = [p for p in processes if p.popen.poll() is None]
    async with httpx.AsyncClient(timeout=3.0) as client:
        gauges = await asyncio.gather(*(_leader_gauge(client, p) for p in running))
    leading = [p for p, gauge in zip(running, gauges, strict=True) if gauge == 1]
    assert len(leading) <= 1, f"{len(leading)} processes lead at once"
    return leading


async def _sole_leader(processes: list[Process], timeout_s: float = 10.0) -> Process:
    async def one() -> Process | None:
        leading = await _leaders(processes)
        return leading[0] if leading else None

    leader: Process = await eventually(one, "one process leads", timeout_s)
    return leader


async def _stays_sole_leader(processes: list[Process], leader: Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await _leaders(processes) == [leader]
        await asyncio.sleep(_POLL_S)


async def test_one_process_leads_and_another_takes_over_within_two_checks_of_a_kill_9(
    database_url: str, tmp_path: Path
) -> None:
    async with cluster(database_url, tmp_path, apis=2, **_QUICK) as running:
        processes = running.served
        leader = await _sole_leader(processes)
        assert leader in running.workers, "api processes do not lead"
        await _stays_sole_leader(processes, leader, 4 * CHECK_S)
        leader.kill_9()
        killed_at = time.monotonic()
        successor = await _sole_leader(processes, timeout_s=5.0)
        took = time.monotonic() - killed_at
        assert successor in running.workers and successor is not leader
        assert took < 2 * CHECK_S, f"the new leader took over after {took:.2f} s"
        await _stays_sole_leader(processes, successor, 4 * CHECK_S)
        # The cluster's figures come from the leader alone (a sum over processes
        # counts each once): the backend's slots, and the line by tier.
        async with httpx.AsyncClient(timeout=3.0) as client:
            for process in processes:
                if process.popen.poll() is not None:
                    continue
                text = (await client.get(f"{process.url}/metrics")).text
                slots = _CLUSTER_SLOTS.search(text)
                if process is successor:
                    assert slots and float(slots.group(1)) == 4, text
                    assert 'personae_cluster_queue_length{tier="user"} 0.0' in text
                else:
                    assert slots is None, "only the leader exports the cluster's figures"


# --- automatic incidents -----------------------------------------------------------------


class _IncidentWatch:
    """Reads the incidents table every poll; keeps the most automatic incidents that
    were open at once for each component."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.open: dict[str, list[str]] = {}
        self.most_open: Counter[str] = Counter()

    async def read(self) -> dict[str, list[str]]:
        query = select(incidents.c.id, incidents.c.automatic_component).where(
            incidents.c.automatic.is_(True),
            incidents.c.status.not_in(("resolved", "postmortem")),
        )
        async with self.database.read() as tx:
            rows = (await tx.execute(query)).all()
        found: dict[str, list[str]] = {}
        for incident_id, component in rows:
            found.setdefault(str(component), []).append(str(incident_id))
        for component, ids in found.items():
            self.most_open[component] = max(self.most_open[component], len(ids))
        self.open = found
        return found

    async def run(self) -> None:
        while True:
            await self.read()
            await asyncio.sleep(_POLL_S)

    async def until_open(self, component: str, timeout_s: float = 10.0) -> str:
        async def opened() -> str | None:
            ids = (await self.read()).get(component)
            return ids[0] if ids else None

        incident_id: str = await eventually(opened, f"an incident opens for {component}", timeout_s)
        return incident_id

    async def until_closed(self, component: str, timeout_s: float = 15.0) -> None:
        async def closed() -> bool:
            return component not in await self.read()

        await eventually(closed, f"the incident for {component} is resolved", timeout_s)


@asynccontextmanager
async def _watching(database_url: str) -> AsyncIterator[_IncidentWatch]:
    database = Database(database_url)
    watch = _IncidentWatch(database)
    task = asyncio.create_task(watch.run())
    try:
        yield watch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await database.dispose()


async def _backend_returns(running: Cluster) -> None:
    """The SIMULATED backend starts again on its port."""
    running.backend.restart()
    await running.backend.ready("/health")


async def _updates_of(database: Database, incident_id: str) -> list[str]:
    query = select(incident_updates.c.status).where(incident_updates.c.incident_id == incident_id)
    async with database.read() as tx:
        return [str(status) for status in (await tx.execute(query)).scalars()]


async def _automatic_incidents(database: Database) -> list[tuple[str, str]]:
    """Every automatic incident, open or not, with its component."""
    query = select(incidents.c.id, incidents.c.automatic_component).where(
        incidents.c.automatic.is_(True)
    )
    async with database.read() as tx:
        return [(str(i), str(component)) for i, component in (await tx.execute(query)).all()]


async def _failed_probes(process: Process, component: str) -> float:
    """How many probes of `component` failed in `process` (its /metrics)."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        metrics = (await client.get(f"{process.url}/metrics")).text
    label = f'personae_probes_total{{component="{component}",result="failed"}} '
    found = [line for line in metrics.splitlines() if line.startswith(label)]
    return float(found[0].removeprefix(label)) if found else 0.0


async def test_an_outage_opens_one_automatic_incident_kept_across_a_change_of_leader(
    database_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(database_url, tmp_path, apis=2, tokens_per_second=200, **_QUICK) as running,
        _watching(database_url) as watch,
    ):
        leader = await _sole_leader(running.served)
        running.backend.kill_9()
        incident_id = await watch.until_open(BACKEND)
        # The leader dies during the outage: its successor finds the open incident.
        leader.kill_9()
        successor = await _sole_leader(running.served, timeout_s=5.0)

        async def successor_saw_the_outage() -> bool:
            return await _failed_probes(successor, BACKEND) >= 2

        await eventually(successor_saw_the_outage, "the new leader probes the backend", 10.0)
        assert watch.open.get(BACKEND) == [incident_id]
        await _backend_returns(running)
        await watch.until_closed(BACKEND)
        await asyncio.sleep(3 * PROBE_S)  # a second incident would open now
        await watch.read()
        statuses = await _updates_of(watch.database, incident_id)
        automatic = await _automatic_incidents(watch.database)
    assert watch.most_open == {BACKEND: 1}, "one open automatic incident, for the backend only"
    assert automatic == [(incident_id, BACKEND)], "one incident for the one outage"
    assert watch.open == {}
    assert statuses.count("resolved") == 1, statuses


# --- webhooks ----------------------------------------------------------------------------


class _Receiver:
    """A webhook receiver: every request's `Webhook-Id` and what the incident was."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.events: list[tuple[str, str]] = []

    async def hook(self, request: Request) -> Response:
        self.ids.append(request.headers[WEBHOOK_ID_HEADER])
        incident = (await request.json())["incident"]
        self.events.append((incident["id"], incident["status"]))
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


async def _admin(running: Cluster, database: Database) -> httpx.AsyncClient:
    """A logged-in client of an account made an admin (as `personae user set-role` does)."""
    client = httpx.AsyncClient(timeout=10.0)
    account = {"username": "operator", "password": PASSWORD}
    registered = await client.post(f"{running.apis[0].url}/api/v1/auth/register", json=account)
    assert registered.status_code == 201, registered.text
    client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
    async with database.write() as tx:
        user = await accounts.get_user_by_username(tx, "operator")
        assert user is not None
        await accounts.set_user_role(tx, user.id, "admin")
    return client


async def _delivered(database: Database) -> list[tuple[str, str]]:
    query = select(webhook_deliveries.c.id, webhook_deliveries.c.status)
    async with database.read() as tx:
        return [(str(i), str(s)) for i, s in (await tx.execute(query)).all()]


async def test_each_incident_change_reaches_a_webhook_receiver_once(
    database_url: str, tmp_path: Path
) -> None:
    receiver = _Receiver()
    # The receiver listens on 127.0.0.1.
    hooks = {**_QUICK, "webhook_allow_private": "true"}
    async with (
        serve_app(receiver.app()) as receiver_url,
        cluster(database_url, tmp_path, apis=2, tokens_per_second=200, **hooks) as running,
        _watching(database_url) as watch,
    ):
        admin = await _admin(running, watch.database)
        try:
            first, second = (api.url + "/api/v1/admin" for api in running.apis)
            hook = await admin.post(f"{first}/webhooks", json={"url": f"{receiver_url}/hook"})
            assert hook.status_code == 201, hook.text
            # People's incidents, each opened on one api process and resolved on the other.
            manual = []
            for number, (one, other) in enumerate([(first, second), (second, first)] * 2):
                body = {"title": f"Slow replies {number}", "body": "Looking into it."}
                opened = await admin.post(f"{one}/incidents", json=body)
                assert opened.status_code == 201, opened.text
                manual.append(opened.json()["id"])
                resolve = {"status": "resolved", "body": "Fixed."}
                resolved = await admin.post(f"{other}/incidents/{manual[-1]}/updates", json=resolve)
                assert resolved.status_code == 201, resolved.text
        finally:
            await admin.aclose()
        # The leader's own incident: the backend goes down, then comes back on its port.
        running.backend.kill_9()
        automatic_id = await watch.until_open(BACKEND)
        await _backend_returns(running)
        await watch.until_closed(BACKEND)
        expected = {
            (incident_id, status)
            for incident_id in [*manual, automatic_id]
            for status in ("investigating", "resolved")
        }

        async def all_arrived() -> bool:
            return expected <= set(receiver.events)

        await eventually(all_arrived, "every incident change reaches the receiver", 15.0)
        await asyncio.sleep(2.5)  # workers look every second: a repeat would land now
        deliveries = await _delivered(watch.database)
        async with watch.database.read() as tx:
            changes = len((await tx.execute(select(incident_updates.c.id))).all())
    repeated = {webhook_id for webhook_id, times in Counter(receiver.ids).items() if times > 1}
    assert not repeated, f"delivered more than once: {repeated}"
    assert sorted(receiver.ids) == sorted(i for i, _ in deliveries)
    assert {status for _, status in deliveries} == {"delivered"}
    assert len(receiver.ids) == changes, "one delivery per incident change"
