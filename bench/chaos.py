"""Chaos: kill -9 the server and take backends down under load, then check every message.

Real processes on loopback: a Personae server (`personae serve`) on SQLite, or on
PostgreSQL + Redis (a fresh database and key prefix, dropped afterwards), and
SIMULATED backends (`personae simulate-backend`: they write no real text; 2, or
`--backends`, with 4 slots, 20 tokens a second, 40-token replies). N users
each send messages with client ids, retry the SAME id on any failure (refused
connection, 5xx, 503 `queue_full`, 429, after its Retry-After) until it is
acknowledged, and wait for the reply's end (polling the chat's messages) before
the next send. Meanwhile the server is killed with SIGKILL `--server-kills` times
(restarted at once on the same database and port) and a backend `--backend-kills`
times (down 2 to 4 s, then restarted on its port), spread over the run.

When the load stops, it waits up to 60 s for the replies to end, then reads the
database directly and prints: acknowledged messages lost, duplicates (one client
id stored twice, or a user message with more than one reply at its place),
replies failed (with their codes), replies not final 60 s after the load stops,
and interrupted replies that restarted from scratch although a checkpoint
existed. For the last, the replies' stored text is sampled twice a second during
the run (read only): every later text of a reply, and its final one, must begin
with the longest text seen of it before. (The simulation writes the same words
for every request, so a restart shows only when a sample falls while the redone
text is shorter than the checkpoint; lost text always shows.)

Every process of the run imports a copy of the personae package taken when the
run begins, so edits made to the checkout meanwhile do not reach its restarts.

The exit status is 1 when any of those figures is not 0. `--smoke` (CI) is a run
of under a minute: 4 users, 1 server kill, 1 backend kill, every check made.

    python bench/chaos.py --db postgres --users 30 --server-kills 20 --backend-kills 4
    python bench/chaos.py --db sqlite --server-kills 5 --backend-kills 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from processes import (
    Deployment,
    Restartable,
    Store,
    free_port,
    personae_env,
    postgres_deployment,
    sqlite_deployment,
    wait_ready,
)

import personae

PASSWORD = "a long enough passphrase"
SLOTS, TOKENS_PER_S, REPLY_TOKENS = 4, 20.0, 40
SETTLE_S = 60.0
SAMPLE_EVERY_S = 0.5
POLL_EVERY_S = 0.4
UNFINISHED = ("queued", "generating")

SAMPLE_SQL = (
    "SELECT id, status, content FROM messages "
    "WHERE role = 'assistant' AND status IN ('queued', 'generating')"
)
USER_MESSAGES_SQL = (
    "SELECT id, chat_id, author_id, client_id, position FROM messages WHERE role = 'user'"
)
REPLIES_SQL = (
    "SELECT id, chat_id, parent_id, position, status, error_code, content "
    "FROM messages WHERE role = 'assistant'"
)
JOBS_SQL = "SELECT message_id, status, attempts, max_attempts, takeovers, last_error FROM jobs"


# --- the load -------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    token: str
    chat_id: str


@dataclass
class Tally:
    # (chat id, client id) -> reply id, for every send the server acknowledged.
    acknowledged: dict[tuple[str, str], str] = field(default_factory=dict)
    retried: Counter[str] = field(default_factory=Counter)
    poll_failures: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    server_kills: int = 0
    backend_kills: int = 0
    server_down: str = ""
    # When each kill happened (UTC, as in the servers' logs), to read the logs by.
    kill_times: list[str] = field(default_factory=list)

    def note_kill(self, what: str) -> None:
        self.kill_times.append(f"{datetime.now(UTC):%H:%M:%S} {what}")


async def make_users(client: httpx.AsyncClient, count: int) -> list[User]:
    """Each user registers and opens a chat with one character (made by the first)."""
    tokens = []
    for number in range(count):
        name = f"chaos{number:03d}"
        opened = await client.post(
            "/api/v1/auth/register", json={"username": name, "password": PASSWORD}
        )
        opened.raise_for_status()
        made = await client.post(
            "/api/v1/tokens",
            json={"name": "chaos"},
            headers={"X-CSRF-Token": opened.json()["csrf_token"]},
        )
        client.cookies.clear()
        tokens.append((name, made.json()["token"]))
    character = await client.post(
        "/api/v1/characters", json={"name": "Chaos"}, headers=_auth(tokens[0][1])
    )
    users = []
    for name, token in tokens:
        chat = await client.post(
            "/api/v1/chats", json={"character_id": character.json()["id"]}, headers=_auth(token)
        )
        users.append(User(name, token, chat.json()["id"]))
    return users


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def converse(client: httpx.AsyncClient, user: User, tally: Tally, until: float) -> None:
    """Send, wait for the reply's end, send again, until the load stops."""
    loop = asyncio.get_running_loop()
    number = 0
    while loop.time() < until:
        client_id = f"{user.name}-{number}"
        reply_id = await send_until_acknowledged(client, user, client_id, tally, until)
        if reply_id is None:
            return
        await wait_for_reply_end(client, user, reply_id, tally, until)
        number += 1


async def send_until_acknowledged(
    client: httpx.AsyncClient, user: User, client_id: str, tally: Tally, until: float
) -> str | None:
    """The reply id once the server acknowledged the send; None if the load stopped
    first or the server refused the id (counted)."""
    path = f"/api/v1/chats/{user.chat_id}/messages/{client_id}"
    body = {"content": f"Tell me a story, please ({client_id})."}
    loop = asyncio.get_running_loop()
    backoff = 0.2
    while loop.time() < until:
        try:
            answer = await client.put(path, json=body, headers=_auth(user.token))
        except httpx.HTTPError as error:
            tally.retried[type(error).__name__] += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            continue
        if answer.status_code in (200, 202):
            reply_id = str(answer.json()["reply"]["id"])
            tally.acknowledged[(user.chat_id, client_id)] = reply_id
            return reply_id
        if answer.status_code == 409:  # the same id with the same content: never right
            tally.refused.append(f"{client_id}: {answer.text[:200]}")
            return None
        tally.retried[f"{answer.status_code} {_problem_code(answer)}"] += 1
        await asyncio.sleep(min(float(answer.headers.get("Retry-After", backoff)), 5.0))
        backoff = min(backoff * 2, 2.0)
    return None


def _problem_code(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("code", ""))
    except ValueError:
        return ""


async def wait_for_reply_end(
    client: httpx.AsyncClient, user: User, reply_id: str, tally: Tally, until: float
) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            page = await client.get(
                f"/api/v1/chats/{user.chat_id}/messages",
                params={"limit": 10},
                headers=_auth(user.token),
            )
            if page.status_code == 200:
                for message in page.json()["items"]:
                    if message["id"] == reply_id and message["status"] not in UNFINISHED:
                        return
            else:
                tally.poll_failures[str(page.status_code)] += 1
        except (httpx.HTTPError, ValueError) as error:
            tally.poll_failures[type(error).__name__] += 1
        await asyncio.sleep(POLL_EVERY_S)


# --- the faults -----------------------------------------------------------------


def spread(count: int, seconds: float, first_share: float, rng: random.Random) -> list[float]:
    """`count` moments over `seconds`, evenly apart with a little jitter."""
    gap = seconds / count if count else seconds
    return [gap * (index + first_share) + rng.uniform(-0.1, 0.1) * gap for index in range(count)]


async def kill_server(
    server: Restartable, url: str, moments: list[float], started: float, tally: Tally
) -> None:
    for moment in moments:
        await _sleep_until(started + moment)
        await wait_server_up(server, url)  # kill a server that is up
        server.kill()
        tally.server_kills += 1
        tally.note_kill("server")
        server.start()
    await wait_server_up(server, url)


class ServerDown(Exception):
    """The server did not come back after a start: the run stops and says why."""


async def wait_server_up(server: Restartable, url: str, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while True:
        status = server.exit_status()
        if status is not None:
            raise ServerDown(f"the server's start {server.starts} exited with status {status}")
        try:
            return await wait_ready(url, "/readyz", timeout_s=1.0)
        except RuntimeError:
            if loop.time() > give_up:
                raise ServerDown(
                    f"the server's start {server.starts} did not answer within {timeout_s:g} s"
                ) from None


async def kill_backends(
    backends: list[tuple[Restartable, str]],
    moments: list[float],
    started: float,
    tally: Tally,
    rng: random.Random,
) -> None:
    for index, moment in enumerate(moments):
        await _sleep_until(started + moment)
        backend, url = backends[index % len(backends)]
        backend.kill()
        tally.backend_kills += 1
        down_s = rng.uniform(2.0, 4.0)
        tally.note_kill(f"{backend.name} for {down_s:.1f} s")
        await asyncio.sleep(down_s)
        backend.start()
        await wait_ready(url, "/health")


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - asyncio.get_running_loop().time()))


# --- what the database says -----------------------------------------------------


@dataclass
class Checkpoints:
    """The longest text seen of each reply while it was being written, and the
    replies whose text was later seen not to begin with it."""

    longest: dict[str, str] = field(default_factory=dict)
    went_back: dict[str, tuple[str, str]] = field(default_factory=dict)
    samples: int = 0

    def see(self, reply_id: str, content: str) -> None:
        before = self.longest.get(reply_id, "")
        if not content.startswith(before):
            self.went_back.setdefault(reply_id, (before, content))
        if len(content) > len(before):
            self.longest[reply_id] = content


async def sample_checkpoints(store: Store, checkpoints: Checkpoints) -> None:
    while True:
        try:
            for reply_id, _status, content in await store.rows(SAMPLE_SQL):
                checkpoints.see(str(reply_id), content or "")
            checkpoints.samples += 1
        except (sqlite3.Error, asyncpg.PostgresError, OSError):
            pass  # the table is not there yet, or the database is busy: the next sample
        await asyncio.sleep(SAMPLE_EVERY_S)


async def settle(store: Store, deadline: float) -> int:
    """Wait until no reply is queued or being written, or the deadline; how many still are."""
    while True:
        unfinished = len(await store.rows(SAMPLE_SQL))
        if unfinished == 0 or asyncio.get_running_loop().time() >= deadline:
            return unfinished
        await asyncio.sleep(1.0)


@dataclass
class Findings:
    lost: list[tuple[str, str]]
    duplicates: list[str]
    failed: list[tuple[Any, ...]]
    unfinished: list[tuple[Any, ...]]
    restarted: dict[str, tuple[str, str]]
    complete: int
    part_written: int
    jobs: dict[str, tuple[Any, ...]]

    def figures(self) -> list[int]:
        counts = (self.lost, self.duplicates, self.failed, self.unfinished, self.restarted)
        return [len(found) for found in counts]


async def examine(store: Store, tally: Tally, checkpoints: Checkpoints) -> Findings:
    user_messages = await store.rows(USER_MESSAGES_SQL)
    replies = await store.rows(REPLIES_SQL)
    stored = {(str(chat), str(client)) for _, chat, _, client, _ in user_messages if client}
    lost = [key for key in tally.acknowledged if key not in stored]
    part_written = len(checkpoints.longest)
    for reply_id, *_rest, content in replies:
        checkpoints.see(str(reply_id), content or "")
    jobs = {str(row[0]): row for row in await store.rows(JOBS_SQL)}
    return Findings(
        lost=lost,
        duplicates=_duplicates(user_messages, replies),
        failed=[row for row in replies if row[4] == "failed"],
        unfinished=[row for row in replies if row[4] in UNFINISHED],
        restarted=checkpoints.went_back,
        complete=sum(1 for row in replies if row[4] == "complete"),
        part_written=part_written,
        jobs=jobs,
    )


def _duplicates(user_messages: list[tuple[Any, ...]], replies: list[tuple[Any, ...]]) -> list[str]:
    found = []
    senders = Counter((chat, author, client) for _, chat, author, client, _ in user_messages)
    found += [
        f"client id {client} stored {n} times" for (_, _, client), n in senders.items() if n > 1
    ]
    at_place: dict[str, set[str]] = {}
    for reply_id, chat, parent, position, *_ in replies:
        at_place.setdefault(f"{chat}@{position}", set()).add(str(reply_id))
        if parent:
            at_place.setdefault(str(parent), set()).add(str(reply_id))
    for message_id, chat, _, client, position in user_messages:
        answers = at_place.get(f"{chat}@{position + 1}", set()) | at_place.get(
            str(message_id), set()
        )
        if len(answers) > 1:
            found.append(f"message {client} has {len(answers)} replies")
    return found


def report(findings: Findings, tally: Tally, load_s: float, total_s: float, logs: Path) -> None:
    codes = Counter(str(row[5]) for row in findings.failed)
    print(f"messages acknowledged: {len(tally.acknowledged)}")
    print(f"replies complete: {findings.complete}")
    print(f"kills done: server {tally.server_kills}, backend {tally.backend_kills}")
    print(f"  at (UTC): {', '.join(tally.kill_times)}")
    print(f"run: load {load_s:.0f} s, whole run {total_s:.0f} s")
    print(f"sends retried, by cause: {dict(tally.retried.most_common())}")
    print(f"polls of a chat that failed, by cause: {dict(tally.poll_failures.most_common())}")
    print(f"replies seen part-written by the samples: {findings.part_written}")
    print()
    lost, duplicates, failed, unfinished, restarted = findings.figures()
    print(f"acknowledged messages lost: {lost}")
    print(f"duplicates: {duplicates}")
    print(f"replies failed: {failed}" + (f" {dict(codes)}" if codes else ""))
    print(f"replies not final {SETTLE_S:g} s after the load stops: {unfinished}")
    restarts = "interrupted replies that restarted from scratch although a checkpoint existed"
    print(f"{restarts}: {restarted}")
    print(f"sends refused (409 for the same id and content): {len(tally.refused)}")
    if tally.server_down:
        print(f"THE RUN STOPPED EARLY: {tally.server_down}")
    _evidence(findings, tally)
    kept = " and the SQLite database" if (logs / "personae.db").exists() else ""
    print(f"\nlogs of every process{kept}: {logs}")


def _job_text(job: tuple[Any, ...] | None) -> str:
    if job is None:
        return "no job"
    _, status, attempts, max_attempts, takeovers, last_error = job
    return (
        f"job {status}, attempts {attempts} of {max_attempts}, "
        f"taken back {takeovers} times, {last_error}"
    )


def _evidence(findings: Findings, tally: Tally) -> None:
    """A few of each problem, with the reply's job, to start reading the logs from."""
    shown: list[str] = [f"lost: chat {chat}, client id {client}" for chat, client in findings.lost]
    shown += [f"duplicate: {text}" for text in findings.duplicates]
    for label, rows in (("failed", findings.failed), ("not final", findings.unfinished)):
        for row in rows:
            job = findings.jobs.get(str(row[0]))
            shown.append(f"{label}: reply {row[0]} ({row[5]}), {_job_text(job)}")
    for reply_id, (before, after) in findings.restarted.items():
        shown.append(f"restarted: reply {reply_id}: {before[-40:]!r} then {after[:60]!r}")
    shown += [f"refused: {text}" for text in tally.refused]
    if shown:
        print("\nexamples:")
        for line in shown[:12]:
            print(f"  {line}")


# --- the run --------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    db: str
    users: int
    server_kills: int
    backend_kills: int
    seconds: float
    backends: int


def server_settings(deployment: Deployment, backend_ports: list[int]) -> dict[str, str]:
    fleet = [
        f"sim{n}=http://127.0.0.1:{port},slots={SLOTS}" for n, port in enumerate(backend_ports)
    ]
    return {
        **deployment.settings,
        "environment": "development",
        "seed_demo": "false",
        "log_level": "info",
        "backends": json.dumps(fleet),
        "max_reply_tokens": str(REPLY_TOKENS),
        # The simulation's words repeat: the quality gate would rewrite its replies,
        # which the restart check would take for a restart.
        "quality_gate": "false",
        "send_rate_per_ip": "1000000/minute",
        "send_rate_per_user": "1000000/minute",
        "register_rate_per_ip": "1000000/hour",
    }


@contextmanager
def fleet(
    work: Path, ports: list[int], env: dict[str, str]
) -> Iterator[list[tuple[Restartable, str]]]:
    backends = []
    for number, port in enumerate(ports):
        arguments = ["simulate-backend", "--port", str(port), "--slots", str(SLOTS)]
        arguments += ["--tokens-per-second", str(TOKENS_PER_S), "--name", f"sim{number}"]
        backend = Restartable(f"simulated-backend-{number}", arguments, env, work)
        backend.start()
        backends.append((backend, f"http://127.0.0.1:{port}"))
    try:
        yield backends
    finally:
        for backend, _ in backends:
            backend.stop()


def snapshot_code(work: Path) -> Path:
    """A copy of this checkout's personae package as it is now, imported by every start
    of the run.

    Others may be editing the checkout while a run restarts the server twenty
    times: each start would import whatever is there at that moment, half-edited
    or not, and a server that cannot start would pass for a finding.
    """
    repository = Path(__file__).resolve().parents[1]
    # This checkout's code, wherever the installed package happens to point.
    source = repository / "src" / "personae"
    if not source.is_dir():
        source = Path(personae.__file__).parent
    folder = work / "code"
    shutil.copytree(source, folder / "personae", ignore=shutil.ignore_patterns("__pycache__"))
    commit = _git(repository, "rev-parse", "--short", "HEAD")
    edited = _git(repository, "status", "--porcelain", "--", "src")
    changes = "with uncommitted changes in src" if edited else "no uncommitted changes in src"
    print(f"code: a copy of {source} taken now (commit {commit or '?'}, {changes})")
    return folder


def _git(repository: Path, *arguments: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repository), *arguments], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


async def chaos(plan: Plan, work: Path, rng: random.Random) -> tuple[Findings, Tally, float]:
    """The load with its faults, then what the database holds; and the load's length."""
    if plan.db == "postgres":
        deployment = await postgres_deployment(work, "chaos")
    else:
        deployment = await sqlite_deployment(work)
    backend_ports, port = [free_port() for _ in range(plan.backends)], free_port()
    url = f"http://127.0.0.1:{port}"
    code = {"PYTHONPATH": str(snapshot_code(work))}
    env = personae_env(**server_settings(deployment, backend_ports)) | code
    server = Restartable("server", ["serve", "--port", str(port)], env, work)
    try:
        with fleet(work, backend_ports, personae_env() | code) as backends:
            for _, backend_url in backends:
                await wait_ready(backend_url, "/health")
            server.start()
            try:
                await wait_server_up(server, url)
                return await _under_load(plan, deployment.store, server, url, backends, rng)
            finally:
                server.stop()
    finally:
        await deployment.drop()


async def _under_load(
    plan: Plan,
    store: Store,
    server: Restartable,
    url: str,
    backends: list[tuple[Restartable, str]],
    rng: random.Random,
) -> tuple[Findings, Tally, float]:
    tally, checkpoints = Tally(), Checkpoints()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        users = await make_users(client, plan.users)
        loop = asyncio.get_running_loop()
        started = loop.time()
        until = started + plan.seconds
        sampler = asyncio.create_task(sample_checkpoints(store, checkpoints))
        server_moments = spread(plan.server_kills, plan.seconds, 0.5, rng)
        backend_moments = spread(plan.backend_kills, plan.seconds, 0.3, rng)
        try:
            async with asyncio.TaskGroup() as load:
                for user in users:
                    load.create_task(converse(client, user, tally, until))
                load.create_task(kill_server(server, url, server_moments, started, tally))
                load.create_task(kill_backends(backends, backend_moments, started, tally, rng))
        except* ServerDown as down:
            tally.server_down = f"{down.exceptions[0]}; its log: {server.log_path}"
        load_s = loop.time() - started
        try:
            if not tally.server_down:
                await settle(store, loop.time() + SETTLE_S)
            return await examine(store, tally, checkpoints), tally, load_s
        finally:
            sampler.cancel()


def default_seconds(server_kills: int) -> float:
    """A few minutes for the issue's commands: about 10 s between server kills."""
    return max(120.0, 10.0 * server_kills + 30.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--server-kills", type=int, default=5)
    parser.add_argument("--backend-kills", type=int, default=1)
    parser.add_argument(
        "--backends", type=int, default=2, help="simulated backends (1: a kill is an outage)"
    )
    parser.add_argument("--seconds", type=float, help="the load's length (default: by kills)")
    parser.add_argument("--seed", type=int, default=15, help="for the kills' moments")
    parser.add_argument(
        "--smoke", action="store_true", help="under a minute, for CI: 4 users, 1 kill of each"
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.users, arguments.server_kills, arguments.backend_kills = 4, 1, 1
        arguments.seconds = arguments.seconds or 20.0
    seconds = arguments.seconds or default_seconds(arguments.server_kills)
    plan = Plan(
        arguments.db,
        arguments.users,
        arguments.server_kills,
        arguments.backend_kills,
        seconds,
        arguments.backends,
    )
    work = Path(tempfile.mkdtemp(prefix="personae-chaos-"))
    print(
        f"chaos on {plan.db}: {plan.users} users for {plan.seconds:.0f} s, "
        f"{plan.server_kills} server kills, {plan.backend_kills} backend kills, "
        f"{plan.backends} SIMULATED backends; logs in {work}"
    )
    began = time.monotonic()
    try:
        findings, tally, load_s = asyncio.run(chaos(plan, work, random.Random(arguments.seed)))
    except ServerDown as down:
        sys.exit(f"the server did not start: {down}; logs in {work}")
    report(findings, tally, load_s, time.monotonic() - began, work)
    sys.exit(1 if any(findings.figures()) or tally.refused or tally.server_down else 0)


if __name__ == "__main__":
    main()
