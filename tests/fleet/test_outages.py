"""Riding out faults: replies wait out a backend outage instead of failing, a reply
past its deadline fails clearly, poison replies are quarantined, and the jobs of a
dead process are taken back within seconds (SIMULATED backends on real HTTP)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import insert, select, update

from conftest import Api, wait_for_reply
from personae.app import create_app
from personae.errors import WorkTimedOut
from personae.llm.simulated import SimulationOptions, simulated_backend_app
from personae.settings import Settings
from personae.storage.tables import jobs, messages, processes
from personae.storage.types import utcnow


class RestartableBackend:
    """A SIMULATED backend on a fixed loopback port that can go down and come back."""

    def __init__(self, **options: Any) -> None:
        self.options = SimulationOptions(**options)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = simulated_backend_app(self.options)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Go down at once: streams running are cut, new connections refused."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = self._server.force_exit = True
        await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def _app_on(
    make_settings: Callable[..., Settings], backend: RestartableBackend, **settings: Any
) -> AsyncIterator[Api]:
    values: dict[str, Any] = {
        "backend_url": None,
        "backends": [f"a={backend.url},slots=2"],
        "max_reply_tokens": 12,
        "backend_probe_interval_s": 10,
    }
    values.update(settings)
    app = create_app(make_settings(**values))
    async with app.router.lifespan_context(app):
        api = Api(app)
        yield api
        await api.aclose()


@contextlib.asynccontextmanager
async def _served(
    make_settings: Callable[..., Settings], **settings: Any
) -> AsyncIterator[tuple[Api, RestartableBackend]]:
    """An app whose one backend is a SIMULATED one, up for the whole block."""
    backend = RestartableBackend(name="a")
    await backend.start()
    try:
        async with _app_on(make_settings, backend, **settings) as api:
            yield api, backend
    finally:
        await backend.stop()


async def _chat(client: httpx.AsyncClient) -> str:
    character = await client.post("/api/v1/characters", json={"name": "Bramble"})
    chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
    return str(chat.json()["id"])


async def _send(client: httpx.AsyncClient, chat_id: str, client_id: str) -> str:
    sent = await client.put(
        f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": "Hello there"}
    )
    assert sent.status_code == 202, sent.text
    return str(sent.json()["reply"]["id"])


async def _job_of(api: Api, reply_id: str) -> dict[str, Any]:
    async with api.container.database.read() as tx:
        row = (await tx.execute(select(jobs).where(jobs.c.message_id == reply_id))).mappings()
        return dict(row.one())


async def test_a_backend_down_for_3_s_fails_no_reply(
    make_settings: Callable[..., Settings],
) -> None:
    backend = RestartableBackend(name="a", slots=2, tokens_per_second=12)
    await backend.start()
    try:
        async with _app_on(make_settings, backend) as api:
            users = [await api.user(f"user{number}") for number in range(3)]
            sent = []
            for number, client in enumerate(users):
                chat_id = await _chat(client)
                for turn in range(2):
                    sent.append((client, chat_id, await _send(client, chat_id, f"m{number}{turn}")))
            await asyncio.sleep(0.5)  # two replies are streaming, four wait in line
            await backend.stop()
            await asyncio.sleep(3)
            await backend.start()
            replies = [
                await wait_for_reply(client, chat_id, reply_id, timeout_s=60)
                for client, chat_id, reply_id in sent
            ]
            assert [reply["status"] for reply in replies] == ["complete"] * 6, replies
            for reply in replies:
                job = await _job_of(api, reply["id"])
                assert job["attempts"] <= 1, "cut streams count once; a refused connection not"
    finally:
        await backend.stop()


async def test_a_reply_waits_for_a_dead_backend_until_its_deadline_then_fails_clearly(
    make_settings: Callable[..., Settings],
) -> None:
    backend = RestartableBackend(name="a")  # never started: nothing listens there
    async with _app_on(make_settings, backend, reply_deadline_s=4, job_retry_base_s=0.1) as api:
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        reply_id = await _send(alice, chat_id, "m1")
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=30)
        waiting = [data for name, data in await _chat_events(api, chat_id) if name == "queue"]
        assert waiting, "the stream said why the reply waited"
        assert all(data.get("reason") == "backend_unavailable" for data in waiting), waiting
        assert all(data["estimated_start_s"] is None for data in waiting)
        assert (reply["status"], reply["error_code"], reply["retryable"]) == (
            "failed",
            "backend_unavailable",
            True,
        )
        job = await _job_of(api, reply_id)
        assert job["attempts"] == 0, "a backend that is down failed nobody's reply"
        # While no backend answers, a new send says so in its 202 (and is stored).
        sent = await alice.put(f"/api/v1/chats/{chat_id}/messages/m2", json={"content": "Hi"})
        assert sent.status_code == 202
        assert sent.json()["reply"]["queue"]["reason"] == "backend_unavailable"


async def _chat_events(api: Api, chat_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event the chat's stream holds (name, data), oldest first."""
    events = await api.container.events.read(f"chat:{chat_id}", None, wait_s=0)
    return [(event.name, event.data) for event in events]


async def test_a_job_taken_back_3_times_is_quarantined_and_the_server_stays_ready(
    make_settings: Callable[..., Settings],
) -> None:
    async with _served(make_settings, backend_probe_interval_s=0) as (api, _):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        first = await _send(alice, chat_id, "m1")
        await wait_for_reply(alice, chat_id, first)
        # The next reply was being written by a process that died, twice already.
        reply_id = await _stored_as_running_elsewhere(api, alice, chat_id, takeovers=2)
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=20)
        assert (reply["status"], reply["error_code"], reply["retryable"]) == (
            "failed",
            "reply_quarantined",
            False,
        )
        assert reply["content"] == "kept so far", "its text is kept"
        job = await _job_of(api, reply_id)
        assert (job["status"], job["takeovers"]) == ("failed", 3)
        assert (await alice.get("/readyz")).status_code == 200
        metrics = (await api.client().get("/metrics")).text
        assert "personae_replies_quarantined_total 1.0" in metrics
        # The chat goes on.
        after = await _send(alice, chat_id, "m3")
        assert (await wait_for_reply(alice, chat_id, after))["status"] == "complete"


async def _stored_as_running_elsewhere(
    api: Api, client: httpx.AsyncClient, chat_id: str, *, takeovers: int
) -> str:
    """Send a message while no backend takes replies, then make its job look like one
    a dead process was writing (a lease that ran out, `takeovers` earlier takeovers)."""
    _backends_down(api)
    reply_id = await _send(client, chat_id, "m2")
    async with api.container.database.write() as tx:
        await tx.execute(
            update(jobs)
            .where(jobs.c.message_id == reply_id)
            .values(
                status="running",
                lease_owner="a-dead-process",
                lease_expires_at=utcnow() - timedelta(seconds=1),
                takeovers=takeovers,
            )
        )
        await tx.execute(
            update(messages).where(messages.c.id == reply_id).values(content="kept so far")
        )
    _backends_up(api)
    return reply_id


def _backends_down(api: Api) -> None:
    """Every backend looks down to the router (its probes are off in these tests), so
    nothing is claimed and sent replies wait in line."""
    for backend in api.container.router.backends:
        backend.healthy = False


def _backends_up(api: Api) -> None:
    for backend in api.container.router.backends:
        backend.healthy = True
    api.container.scheduler.job_queued()


async def test_a_reply_whose_prompt_runs_out_of_time_is_taken_back_then_quarantined(
    make_settings: Callable[..., Settings],
) -> None:
    async with _served(make_settings, job_max_takeovers=2) as (api, _):
        generation = api.container.scheduler._generation
        assert generation is not None
        material = generation.material

        async def too_slow(*_args: Any, **_kwargs: Any) -> Any:
            raise WorkTimedOut("building the prompt took too long")

        material.prompt = too_slow  # type: ignore[method-assign]
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        reply_id = await _send(alice, chat_id, "m1")
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=20)
        assert (reply["status"], reply["error_code"]) == ("failed", "reply_quarantined")
        assert (await _job_of(api, reply_id))["takeovers"] == 2
        assert (await alice.get("/readyz")).status_code == 200


async def test_the_jobs_of_a_dead_process_are_taken_back_within_5_s(
    make_settings: Callable[..., Settings],
) -> None:
    async with _served(make_settings, job_lease_s=60, backend_probe_interval_s=0) as (api, _):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        scheduler = api.container.scheduler
        _backends_down(api)
        reply_id = await _send(alice, chat_id, "m1")
        async with api.container.database.write() as tx:
            # A process that beat 4 s ago holds the job with 60 s of lease left.
            beat = utcnow() - timedelta(seconds=4)
            gone = {"id": "gone", "started_at": beat, "heartbeat_at": beat}
            await tx.execute(insert(processes).values(**gone))
            await tx.execute(
                update(jobs)
                .where(jobs.c.message_id == reply_id)
                .values(
                    status="running",
                    lease_owner="gone",
                    lease_expires_at=utcnow() + timedelta(seconds=60),
                )
            )
        started = asyncio.get_running_loop().time()
        _backends_up(api)
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=30)
        taken_back_s = asyncio.get_running_loop().time() - started
        assert reply["status"] == "complete"
        assert taken_back_s < 5, f"taken back after {taken_back_s:.1f} s, not the lease"
        job = await _job_of(api, reply_id)
        assert (job["takeovers"], job["attempts"]) == (1, 0), "a dead process is no attempt"
        async with api.container.database.read() as tx:
            alive = (await tx.execute(select(processes.c.id))).scalars().all()
        assert alive == [scheduler.owner], "the dead process's row is gone"


async def test_a_breaker_trial_cut_short_by_its_prompt_is_given_back(
    make_settings: Callable[..., Settings],
) -> None:
    async with _served(make_settings, backend_probe_interval_s=0) as (api, _):
        generation = api.container.scheduler._generation
        assert generation is not None
        material = generation.material
        build = material.prompt
        calls = []

        async def slow_once(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) == 1:
                raise WorkTimedOut("building the prompt took too long")
            return await build(*args, **kwargs)

        material.prompt = slow_once  # type: ignore[method-assign]
        breaker = api.container.router.backends[0].breaker
        for _ in range(3):
            breaker.failure()
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        reply_id = await _send(alice, chat_id, "m1")  # its first try takes the trial
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=30)
        assert reply["status"] == "complete", "the next try took the trial and closed it"
        assert breaker.state == "closed"


async def test_a_reply_that_waited_long_in_line_is_not_failed_by_a_short_outage(
    make_settings: Callable[..., Settings],
) -> None:
    settings = {"backend_probe_interval_s": 0, "reply_deadline_s": 3}
    async with _served(make_settings, **settings) as (api, _):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        _backends_down(api)
        reply_id = await _send(alice, chat_id, "m1")
        async with api.container.database.write() as tx:
            # It has waited in a long line for a minute already.
            long_ago = utcnow() - timedelta(seconds=60)
            await tx.execute(
                update(jobs).where(jobs.c.message_id == reply_id).values(created_at=long_ago)
            )
        await asyncio.sleep(2)  # a 2 s outage: shorter than the deadline
        _backends_up(api)
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=30)
        assert reply["status"] == "complete", "the deadline counts the wait for a backend"


async def test_a_reply_that_writes_between_takeovers_is_not_quarantined(
    make_settings: Callable[..., Settings],
) -> None:
    settings = {"backend_probe_interval_s": 0, "checkpoint_interval_s": 0.01}
    async with _served(make_settings, **settings) as (api, _):
        alice = await api.user("alice")
        chat_id = await _chat(alice)
        first = await _send(alice, chat_id, "m1")
        await wait_for_reply(alice, chat_id, first)
        # Taken back twice already, but this run writes: the count starts again.
        reply_id = await _stored_as_running_elsewhere(api, alice, chat_id, takeovers=1)
        reply = await wait_for_reply(alice, chat_id, reply_id, timeout_s=20)
        assert reply["status"] == "complete"
        assert (await _job_of(api, reply_id))["takeovers"] == 0
