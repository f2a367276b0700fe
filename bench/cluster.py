"""One service, many processes (issue 16): nginx in front of 2 api processes and 2
workers on PostgreSQL + Redis, under load, while its processes are killed and restarted.

Real processes on loopback: nginx (deploy/nginx.conf's proxy settings; its upstream the
two api ports), `personae serve --role api` x2 (trusting nginx's X-Forwarded-For),
`personae worker` x2 (each given both backends), `personae migrate` before them, a fresh
PostgreSQL database and Redis key prefix (dropped at the end), and 2 SIMULATED backends
(`personae simulate-backend`: no model, no real text; `--slots` each, 20 tokens a
second, 40-token replies).

Users register through nginx and talk, each in a chat of its own: a send (PUT with a
client id, retried with the same id until acknowledged with 202), its reply followed on
the chat's event stream (reopened with Last-Event-ID whenever it ends) until final, the
next send. For `--seconds`, a random Personae process is killed with SIGKILL every 10 s
and started again on its port, and one backend is down for a while, so that the
leader's probes open and resolve an incident and post webhooks to a receiver here.
Then each of the four is restarted in turn with SIGTERM (its exit waited for, started,
ready on /readyz) under the same load. Then the load stops.

It prints: acknowledged messages lost, duplicates, replies not final 60 s after the load
stops; the most completions ever in flight at once on each backend against its slots
(`max_in_flight` of its /simulation/stats, read before it is killed and at the end);
requests that failed as clients saw them during the rolling restart (a transport error
or a status other than 2xx; a stream that ends and is reopened is not one); duplicate
webhook deliveries (a `Webhook-Id` received twice); duplicate incidents (more than one
automatic incident open at once for a component, sampled every second); and replies a
second with the 2 workers and 2 backends, then 1 worker given 1 backend (the same users,
nginx and api processes), and their ratio (target at least 1.8).

The exit status is 1 when a figure that should be 0 is not, a backend was sent more than
its slots, a process did not exit cleanly on SIGTERM, or (not with --smoke) the ratio is
under 1.8. `--smoke` (CI): 8 users, 2 slots a backend, 15 s of load with a kill and a
6 s outage, the rolling restart, 8 s of each throughput; the ratio is not judged.

    python bench/cluster.py                  # 50 users, 5 minutes, 4 slots a backend
    python bench/cluster.py --users 30 --seconds 120 --slots 2
    python bench/cluster.py --smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from chaos import REPLIES_SQL, USER_MESSAGES_SQL, _duplicates, settle, snapshot_code
from processes import Cluster, cluster, run_cli

PASSWORD = "a long enough passphrase"
TOKENS_PER_S, REPLY_TOKENS = 20.0, 40
KILL_EVERY_S = 10.0
SETTLE_S = 60.0
# A reply whose end the stream has not shown for this long is looked up.
POLL_AFTER_S = 10.0
RATIO_TARGET = 1.8
FINAL = frozenset({"complete", "stopped", "failed"})
OPEN_AUTOMATIC_SQL = (
    "SELECT CAST(components AS TEXT) FROM incidents "
    "WHERE automatic AND status NOT IN ('resolved', 'postmortem')"
)
AUTOMATIC_SQL = "SELECT count(*) FROM incidents WHERE automatic"
SETUP_502: list[str] = []


@dataclass(frozen=True)
class Plan:
    users: int
    seconds: float
    slots: int
    outage_at_s: float
    outage_s: float
    warmup_s: float
    measure_s: float
    seed: int
    smoke: bool


BEGAN = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - BEGAN:4.0f} s] {text}", flush=True)


# --- the processes --------------------------------------------------------------


SETTINGS = {  # for every Personae process, beside those of the deployment
    "max_reply_tokens": str(REPLY_TOKENS),
    # The simulation's words repeat: the quality gate would rewrite its replies.
    "quality_gate": "false",
    # A probe round every 2 s: an outage of seconds opens an incident.
    "probe_interval_s": "2",
    # The webhook receiver listens on 127.0.0.1.
    "webhook_allow_private": "true",
    # Every user comes from 127.0.0.1.
    "send_rate_per_ip": "1000000/minute",
    "send_rate_per_user": "1000000/minute",
    "register_rate_per_ip": "1000000/hour",
    "login_rate_per_ip": "1000000/minute",
}


async def read_peaks(found: Cluster, peaks: dict[str, tuple[int, int]]) -> None:
    """Per backend: the most completions in flight at once, and writing at once (kept
    across its restarts: its own counts start again)."""
    async with httpx.AsyncClient(timeout=5) as client:
        for backend in found.backends:
            with contextlib.suppress(httpx.HTTPError):
                stats = (await client.get(f"{backend.url}/simulation/stats")).json()
                seen = peaks.get(backend.name, (0, 0))
                peaks[backend.name] = (
                    max(seen[0], stats["max_in_flight"]),
                    max(seen[1], stats["max_active"]),
                )


# --- the users ------------------------------------------------------------------


@dataclass
class User:
    name: str
    token: str
    chat_id: str = ""
    sent: int = 0
    last_event_id: str | None = None
    retry_s: float = 2.0  # the stream's `retry:`, after a failed attempt to open it
    states: dict[str, str] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tally:
    phase: str = "kills"
    # (chat id, client id) -> reply id, for every send the server acknowledged.
    acknowledged: dict[tuple[str, str], str] = field(default_factory=dict)
    # phase -> cause -> requests that failed as the client saw them.
    failures: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    reopened: Counter[str] = field(default_factory=Counter)
    completed: list[float] = field(default_factory=list)
    found_by_polling: int = 0
    refused: int = 0

    def failed(self, cause: str) -> None:
        self.failures[self.phase][cause] += 1


@dataclass
class Load:
    client: httpx.AsyncClient
    tally: Tally
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def call(self, method: str, path: str, **options: Any) -> httpx.Response | None:
        """The answer, or None when the request failed on the way; non-2xx are counted."""
        try:
            answer = await self.client.request(method, path, **options)
        except httpx.HTTPError as error:
            self.tally.failed(type(error).__name__)
            return None
        if not answer.is_success:
            try:
                code = str(answer.json().get("code", ""))
            except ValueError:
                code = ""
            self.tally.failed(f"{answer.status_code} {code}".strip())
        return answer


async def _post(client: httpx.AsyncClient, path: str, body: Any, **options: Any) -> Any:
    """A setup request, sent again after a 502: nginx may reuse an idle connection just as
    the api process closes it (uvicorn closes them after 5 s), and retries no POST."""
    for _ in range(5):
        answer = await client.post(path, json=body, **options)
        if answer.status_code != 502:
            return answer.raise_for_status().json()
        SETUP_502.append(path)
    return answer.raise_for_status().json()


async def _register(url: str, name: str) -> User:
    async with httpx.AsyncClient(base_url=url, timeout=30) as own:  # cookies of its own
        body = {"username": name, "password": PASSWORD}
        csrf = {"X-CSRF-Token": (await _post(own, "/api/v1/auth/register", body))["csrf_token"]}
        made = await _post(own, "/api/v1/tokens", {"name": "cluster"}, headers=csrf)
        return User(name, str(made["token"]))


async def make_users(found: Cluster, client: httpx.AsyncClient, count: int) -> list[User]:
    """An admin, then the users, each with a chat with the admin's character."""
    admin = await _register(found.url, "admin")
    names = [f"user{number:03d}" for number in range(count)]
    role = asyncio.create_task(run_cli(["user", "set-role", "admin", "admin"], found.env))
    users = await asyncio.gather(*(_register(found.url, name) for name in names))
    await role
    made = await _post(client, "/api/v1/characters", {"name": "Bramble"}, headers=admin.auth)
    for user in users:
        chat = await _post(client, "/api/v1/chats", {"character_id": made["id"]}, headers=user.auth)
        user.chat_id = str(chat["id"])
    if SETUP_502:
        say(f"setup: {len(SETUP_502)} POSTs answered 502 by nginx and sent again")
    return [admin, *users]


async def send(load: Load, user: User) -> str:
    """The reply id once the send is acknowledged; "" when the load stopped first."""
    client_id = f"{user.name}-{user.sent}"
    path = f"/api/v1/chats/{user.chat_id}/messages/{client_id}"
    body = {"content": f"Tell me a story, please ({client_id})."}
    backoff = 0.2
    while not load.stop.is_set():
        answer = await load.call("PUT", path, json=body, headers=user.auth)
        if answer is not None and answer.status_code in (200, 202):
            load.tally.acknowledged[(user.chat_id, client_id)] = answer.json()["reply"]["id"]
            user.sent += 1
            return str(answer.json()["reply"]["id"])
        if answer is not None and answer.status_code == 409:  # never right for one id
            load.tally.refused += 1
            user.sent += 1
            return ""
        wait = float(answer.headers.get("Retry-After", backoff)) if answer else backoff
        await load.pause(min(wait, 5.0))
        backoff = min(backoff * 2, 2.0)
    return ""


async def follow(load: Load, user: User) -> None:
    """The chat's event stream, reopened (with Last-Event-ID) whenever it ends."""
    path = f"/api/v1/chats/{user.chat_id}/events"
    timeout = httpx.Timeout(30, read=45)  # a heartbeat comes every 15 s
    while not load.stop.is_set():
        headers = user.auth | ({"Last-Event-ID": user.last_event_id} if user.last_event_id else {})
        try:
            async with load.client.stream("GET", path, headers=headers, timeout=timeout) as stream:
                if stream.status_code != 200:
                    load.tally.failed(f"{stream.status_code} opening a stream")
                    await load.pause(user.retry_s)
                    continue
                await _read_events(stream, user)
            load.tally.reopened[load.tally.phase] += 1
        except httpx.HTTPError as error:
            load.tally.failed(f"stream {type(error).__name__}")
            await load.pause(user.retry_s)


async def _read_events(stream: httpx.Response, user: User) -> None:
    name, event_id, data = "", "", ""
    async for line in stream.aiter_lines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line.startswith("retry: "):
            user.retry_s = int(line[7:]) / 1000
        elif not line:  # the end of an event: only now is it whole
            if name == "reply_state":
                reply = json.loads(data)
                user.states[str(reply["id"])] = str(reply["status"])
                user.changed.set()
            user.last_event_id = event_id or user.last_event_id
            name, event_id, data = "", "", ""


async def reply_end(load: Load, user: User, reply_id: str) -> str:
    """The reply's final status as the stream shows it (looked up when the stream says
    nothing for a while); "" when the load stopped first."""
    quiet_s = 0.0
    while not load.stop.is_set():
        user.changed.clear()
        if user.states.get(reply_id) in FINAL:
            return user.states[reply_id]
        try:
            await asyncio.wait_for(user.changed.wait(), 1.0)
            quiet_s = 0.0
        except TimeoutError:
            quiet_s += 1.0
        if quiet_s >= POLL_AFTER_S:
            quiet_s = 0.0
            path = f"/api/v1/chats/{user.chat_id}/messages"
            page = await load.call("GET", path, params={"limit": 10}, headers=user.auth)
            items = page.json()["items"] if page is not None and page.status_code == 200 else []
            status = next((str(m["status"]) for m in items if m["id"] == reply_id), "")
            if status in FINAL:
                load.tally.found_by_polling += 1
                return status
    return ""


async def converse(load: Load, user: User) -> None:
    follower = asyncio.create_task(follow(load, user))
    try:
        while not load.stop.is_set():
            reply_id = await send(load, user)
            if reply_id and await reply_end(load, user, reply_id) == "complete":
                load.tally.completed.append(asyncio.get_running_loop().time())
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


@asynccontextmanager
async def running(load: Load, users: list[User]) -> AsyncIterator[None]:
    """Every user talks while the block runs; on leaving, requests in flight are dropped
    (not acknowledged, so not counted)."""
    talk = [asyncio.create_task(converse(load, user)) for user in users]
    try:
        yield
    finally:
        load.stop.set()
        for task in talk:
            task.cancel()
        for outcome in await asyncio.gather(*talk, return_exceptions=True):
            if isinstance(outcome, Exception):
                raise outcome


# --- the faults -----------------------------------------------------------------


async def kill_every(found: Cluster, plan: Plan, kills: list[str]) -> None:
    """SIGKILL a random Personae process every 10 s, start it again, wait until ready."""
    victims = random.Random(plan.seed)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for moment in range(int(KILL_EVERY_S), int(plan.seconds), int(KILL_EVERY_S)):
        await asyncio.sleep(max(0.0, began + moment - loop.time()))
        victim = victims.choice(found.apis + found.workers)
        victim.kill()
        kills.append(f"{moment}s {victim.name}")
        victim.start()
        await victim.up()
    await asyncio.sleep(max(0.0, began + plan.seconds - loop.time()))


async def outage(found: Cluster, plan: Plan, outcome: Outcome) -> None:
    """The last backend down for `outage_s` (SIGKILL), then started again on its port."""
    await asyncio.sleep(plan.outage_at_s)
    await read_peaks(found, outcome.peaks)  # its counts start again with it
    found.backends[-1].kill()
    await asyncio.sleep(plan.outage_s)
    found.backends[-1].start()
    await found.backends[-1].up()


async def roll(found: Cluster) -> list[tuple[str, int | None, float]]:
    """SIGTERM each api process and worker in turn, wait for its exit, start it, wait
    until ready: (name, exit status, seconds until ready again)."""
    loop = asyncio.get_running_loop()
    done = []
    for process in found.apis + found.workers:
        began = loop.time()
        await asyncio.to_thread(process.stop)  # SIGTERM; SIGKILL after 30 s
        status = process.exit_status()
        process.start()
        await process.up()
        done.append((process.name, status, loop.time() - began))
    return done


# --- what was seen --------------------------------------------------------------


class WebhookReceiver:
    """Answers 204 to every request on a loopback port and keeps each `Webhook-Id`."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._server: asyncio.Server | None = None

    async def open(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/incidents"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[1:]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.ids.append(headers.get("webhook-id", ""))
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def watch_incidents(found: Cluster, most_open: Counter[str]) -> None:
    """The most automatic incidents ever open at once, per component (sampled each second)."""
    while True:
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            rows = await found.deployment.store.rows(OPEN_AUTOMATIC_SQL)
            for component, count in Counter(str(row[0]) for row in rows).items():
                most_open[component] = max(most_open[component], count)
        await asyncio.sleep(1.0)


@dataclass
class Outcome:
    tally: Tally
    load_s: float = 0.0
    kills: list[str] = field(default_factory=list)
    rolled: list[tuple[str, int | None, float]] = field(default_factory=list)
    lost: int = 0
    duplicates: list[str] = field(default_factory=list)
    unfinished: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    complete: int = 0
    most_open: Counter[str] = field(default_factory=Counter)
    incidents: int = 0
    webhook_ids: list[str] = field(default_factory=list)
    peaks: dict[str, tuple[int, int]] = field(default_factory=dict)
    rates: dict[int, float] = field(default_factory=dict)


async def examine(found: Cluster, outcome: Outcome) -> None:
    store = found.deployment.store
    user_messages = await store.rows(USER_MESSAGES_SQL)
    replies = await store.rows(REPLIES_SQL)
    stored = {(str(chat), str(client)) for _, chat, _, client, _ in user_messages if client}
    outcome.lost = sum(1 for key in outcome.tally.acknowledged if key not in stored)
    outcome.duplicates = _duplicates(user_messages, replies)
    outcome.unfinished = sum(1 for row in replies if row[4] in ("queued", "generating"))
    outcome.failed = Counter(str(row[5]) for row in replies if row[4] == "failed")
    outcome.complete = sum(1 for row in replies if row[4] == "complete")
    outcome.incidents = int((await store.rows(AUTOMATIC_SQL))[0][0])


async def throughput(
    found: Cluster, client: httpx.AsyncClient, users: list[User], plan: Plan
) -> dict[int, float]:
    """Replies completed a second (after a warm-up) with the 2 workers and 2 backends
    running, then with 1 worker given 1 backend: {workers: rate}."""
    loop = asyncio.get_running_loop()
    rates = {}
    for count in (2, 1):
        if count != len(found.workers):
            await settle(found.deployment.store, loop.time() + SETTLE_S)
            await found.use_workers(count)
        load = Load(client, Tally(phase="throughput"))
        began = loop.time() + plan.warmup_s
        async with running(load, users):
            await asyncio.sleep(plan.warmup_s + plan.measure_s)
        ended = sum(
            1 for moment in load.tally.completed if began <= moment < began + plan.measure_s
        )
        rates[count] = ended / plan.measure_s
        say(f"throughput with {count} + {count}: {ended} replies in {plan.measure_s:g} s")
    return rates


# --- the run --------------------------------------------------------------------


async def run(plan: Plan, work: Path) -> Outcome:
    """The whole run; SIGTERM cancels it, so that every process it started is stopped."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    receiver = WebhookReceiver()
    hooks = {"url": await receiver.open()}
    limits = httpx.Limits(max_connections=3 * plan.users + 20, max_keepalive_connections=100)
    try:
        code = snapshot_code(work)
        started = cluster(
            work, slots=plan.slots, tokens_per_s=TOKENS_PER_S, settings=SETTINGS, code=code
        )
        async with started as found:
            say(f"ready: nginx {found.url} in front of {', '.join(a.url for a in found.apis)}")
            async with httpx.AsyncClient(base_url=found.url, timeout=30, limits=limits) as client:
                admin, *users = await make_users(found, client, plan.users)
                await _post(client, "/api/v1/admin/webhooks", hooks, headers=admin.auth)
                outcome = await _measure(plan, found, Load(client, Tally()), users)
                outcome.webhook_ids = receiver.ids
                return outcome
    finally:
        await receiver.close()


async def _measure(plan: Plan, found: Cluster, load: Load, users: list[User]) -> Outcome:
    loop = asyncio.get_running_loop()
    outcome = Outcome(load.tally)
    watcher = asyncio.create_task(watch_incidents(found, outcome.most_open))
    try:
        began = loop.time()
        say(f"{plan.users} users talk; a SIGKILL every {KILL_EVERY_S:g} s for {plan.seconds:g} s")
        async with running(load, users):
            await asyncio.gather(
                kill_every(found, plan, outcome.kills), outage(found, plan, outcome)
            )
            say("the rolling restart")
            load.tally.phase = "rolling restart"
            outcome.rolled = await roll(found)
            load.tally.phase = "after"
        outcome.load_s = loop.time() - began
        say("the load stopped; waiting for every reply to end")
        await settle(found.deployment.store, loop.time() + SETTLE_S)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    await read_peaks(found, outcome.peaks)
    await examine(found, outcome)
    outcome.rates = await throughput(found, load.client, users, plan)
    await read_peaks(found, outcome.peaks)
    return outcome


def report(plan: Plan, outcome: Outcome, work: Path) -> bool:
    """Print the figures; True when every judged one is right."""
    tally = outcome.tally
    rolling = tally.failures.pop("rolling restart", Counter())
    unclean = [f"{name} exited with {code} on SIGTERM" for name, code, _ in outcome.rolled if code]
    webhook_duplicates = len(outcome.webhook_ids) - len(set(outcome.webhook_ids))
    incident_duplicates = sum(count - 1 for count in outcome.most_open.values())
    over = [name for name, (peak, _) in outcome.peaks.items() if peak > plan.slots]
    ratio = outcome.rates[2] / outcome.rates[1] if outcome.rates[1] else 0.0
    rolled = ", ".join(f"{name} exit {code}, back in {s:.1f} s" for name, code, s in outcome.rolled)
    print(f"\nload: {plan.users} users for {outcome.load_s:.0f} s ({plan.seconds:g} s of kills)")
    print(f"SIGKILLs ({len(outcome.kills)}): {', '.join(outcome.kills)}")
    print(f"backend outage: sim1 down {plan.outage_s:g} s from {plan.outage_at_s:g} s")
    print(f"rolling restart (SIGTERM, exit, start, ready): {rolled}")
    print(f"messages acknowledged: {len(tally.acknowledged)}; replies complete: ", end="")
    print(f"{outcome.complete}, failed: {sum(outcome.failed.values())} {dict(outcome.failed)}")
    print(f"streams ended by the server and reopened, by phase: {dict(tally.reopened)}")
    print(f"replies whose end the stream did not show (looked up): {tally.found_by_polling}")
    for phase, causes in tally.failures.items():
        print(f"requests failed as clients saw them, {phase} (not judged): {dict(causes)}")
    print(f"automatic incidents opened: {outcome.incidents}; ", end="")
    print(f"webhook deliveries received: {len(outcome.webhook_ids)}\n")
    print(f"acknowledged messages lost: {outcome.lost}")
    print(f"duplicates: {len(outcome.duplicates)}")
    print(f"replies not final {SETTLE_S:g} s after the load stops: {outcome.unfinished}")
    for name, (peak, writing) in sorted(outcome.peaks.items()):
        verdict = "ABOVE its slots" if peak > plan.slots else "within its slots"
        print(f"most requests in flight on {name}: {peak} against {plan.slots} slots ", end="")
        print(f"({verdict}; most writing at once: {writing})")
    print("requests that failed as clients saw them during the rolling restart: ", end="")
    print(f"{sum(rolling.values())}" + (f" {dict(rolling)}" if rolling else ""))
    print(f"duplicate webhook deliveries: {webhook_duplicates}")
    print(f"duplicate incidents: {incident_duplicates}")
    print(f"throughput: 1 worker + 1 backend {outcome.rates[1]:.2f} replies/s, ", end="")
    print(f"2 workers + 2 backends {outcome.rates[2]:.2f} replies/s")
    judged = "not judged with --smoke" if plan.smoke else f"target at least {RATIO_TARGET}x"
    print(f"throughput ratio: {ratio:.2f}x ({judged})")
    for line in outcome.duplicates[:5] + unclean:
        print(f"  {line}")
    if tally.refused:
        print(f"  sends refused (409 for one client id): {tally.refused}")
    print(f"\nlogs of every process: {work}")
    wrong = [outcome.lost, len(outcome.duplicates), outcome.unfinished, len(over)]
    wrong += [sum(rolling.values()), len(unclean), tally.refused]
    if not plan.smoke:
        wrong += [webhook_duplicates, incident_duplicates, int(ratio < RATIO_TARGET)]
    return not any(wrong)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=300.0, help="of kills")
    parser.add_argument("--slots", type=int, default=4, help="of each simulated backend")
    parser.add_argument("--seed", type=int, default=16, help="for the choice of victims")
    parser.add_argument("--smoke", action="store_true", help="a short run, for CI")
    arguments = parser.parse_args()
    if arguments.smoke:
        plan = Plan(8, 15.0, 2, 2.0, 6.0, 2.0, 8.0, arguments.seed, smoke=True)
    else:
        seconds = arguments.seconds
        plan = Plan(
            arguments.users, seconds, arguments.slots, seconds * 0.3, 20.0, 15.0, 60.0,
            arguments.seed, smoke=False,
        )  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="personae-cluster-"))
    say(f"2 SIMULATED backends of {plan.slots} slots, {plan.users} users; logs in {work}")
    try:
        outcome = asyncio.run(run(plan, work))
    except RuntimeError as error:
        sys.exit(f"the run stopped: {error}; logs in {work}")
    except asyncio.CancelledError:
        sys.exit(f"stopped by SIGTERM, everything it started stopped; logs in {work}")
    right = report(plan, outcome, work)
    say("done")
    sys.exit(0 if right else 1)


if __name__ == "__main__":
    main()
