"""The waiting room under load: 1x, 2x and 5x the capacity, open-loop arrivals.

Three real processes on loopback: a SIMULATED backend (`personae
simulate-backend`, 4 slots, 50 tokens/s, 100 ms to the first token), a Personae
server on SQLite pointed at it, and this driver, which sends messages from many
users at Poisson arrival times regardless of how the server keeps up. Replies
are 20 tokens, so the capacity is about 4 / 0.5 s = 8 replies a second.

Printed per load: the share of 5xx answers other than the deliberate 503
`queue_full` (target 0), goodput as a share of capacity (target at least 95%
under overload), p50 and p99 time to first token of admitted replies relative
to 1x, the median error of the start-time estimates given in the 202 (target at
most 30%), and FIFO inversions inside a tier (target 0).

    python bench/load.py [--seconds-1x 40] [--seconds-5x 120] [--smoke]

`--smoke` (CI) runs each load for 3 seconds with 10 users: it checks that the
script runs end to end and prints its figures, too briefly to judge the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from processes import cli_process, free_port, personae_env, wait_ready

PASSWORD = "a long enough passphrase"
SLOTS, TOKENS_PER_S, FIRST_TOKEN_MS, REPLY_TOKENS = 4, 50.0, 100.0, 20
CAPACITY_PER_S = SLOTS / (FIRST_TOKEN_MS / 1000 + REPLY_TOKENS / TOKENS_PER_S)
USERS = 160
SETTLE_S = 12.0  # enough for the admitted replies of a phase to finish


@dataclass
class Sent:
    reply_id: str
    sent_at: float
    estimate_s: float | None


@dataclass
class Phase:
    load: float
    seconds: float
    started_at: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    admitted: list[Sent] = field(default_factory=list)


async def _direct_capacity(backend_url: str, seconds: float = 10.0) -> float:
    """Replies a second the backend itself delivers with all its slots busy (measured
    here, side by side, so goodput is against what the backend really does)."""
    body = {
        "messages": [
            {"role": "system", "content": "You are Loader."},
            {"role": "user", "content": "Tell me something."},
        ],
        "stream": True,
        "max_tokens": REPLY_TOKENS,
    }
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker(client: httpx.AsyncClient) -> float:
        """Replies a second through one slot, over the time its replies really took:
        the last one ends after `end`, so dividing by `seconds` would overstate it."""
        done, began = 0, loop.time()
        while loop.time() < end:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                async for _ in response.aiter_lines():
                    pass
            done += 1
        return done / (loop.time() - began)

    async with httpx.AsyncClient(base_url=backend_url, timeout=60) as client:
        return sum(await asyncio.gather(*(worker(client) for _ in range(SLOTS))))


async def _users(client: httpx.AsyncClient, count: int) -> list[tuple[str, str]]:
    """(token, chat id) for each user, all chatting with one public character."""
    people = []
    for number in range(count):
        name = f"load{number:04d}"
        opened = await client.post(
            "/api/v1/auth/register", json={"username": name, "password": PASSWORD}
        )
        csrf = opened.json()["csrf_token"]
        token = (
            await client.post(
                "/api/v1/tokens", json={"name": "load"}, headers={"X-CSRF-Token": csrf}
            )
        ).json()["token"]
        client.cookies.clear()
        people.append(token)
    auth = {"Authorization": f"Bearer {people[0]}"}
    character = await client.post("/api/v1/characters", json={"name": "Loader"}, headers=auth)
    pairs = []
    for token in people:
        chat = await client.post(
            "/api/v1/chats",
            json={"character_id": character.json()["id"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        pairs.append((token, chat.json()["id"]))
    return pairs


async def _drive(client: httpx.AsyncClient, users: list[tuple[str, str]], phase: Phase) -> None:
    rate = phase.load * CAPACITY_PER_S
    rng = random.Random(7)
    phase.started_at = time.time()
    loop = asyncio.get_running_loop()
    end = loop.time() + phase.seconds
    tasks = []
    number = 0

    async def send(token: str, chat_id: str, client_id: str) -> None:
        sent_at = time.time()
        try:
            answer = await client.put(
                f"/api/v1/chats/{chat_id}/messages/{client_id}",
                json={"content": "Tell me something."},
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError:
            phase.statuses[599] = phase.statuses.get(599, 0) + 1
            return
        phase.statuses[answer.status_code] = phase.statuses.get(answer.status_code, 0) + 1
        if answer.status_code == 202:
            reply = answer.json()["reply"]
            queue = reply.get("queue") or {}
            phase.admitted.append(Sent(reply["id"], sent_at, queue.get("estimated_start_s")))

    while loop.time() < end:
        token, chat_id = users[number % len(users)]
        tasks.append(asyncio.create_task(send(token, chat_id, f"p{int(phase.load)}-{number}")))
        number += 1
        await asyncio.sleep(rng.expovariate(rate))
    await asyncio.gather(*tasks)


def _when(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _report(
    database: Path, phase: Phase, baseline: tuple[float, float] | None, measured: float
) -> tuple[float, float]:
    connection = sqlite3.connect(database)
    rows = {
        message_id: (created, started, finished, priority)
        for message_id, created, started, finished, priority in connection.execute(
            "SELECT message_id, created_at, started_at, finished_at, priority FROM jobs"
        )
    }
    reply_status = dict(connection.execute("SELECT id, status FROM messages").fetchall())
    # Goodput: replies finished while the phase ran, whoever sent them.
    window_end = phase.started_at + phase.seconds
    finished_in_window = sum(
        1
        for message_id, (_, _, finished, _) in rows.items()
        if finished is not None
        and phase.started_at <= _when(finished) <= window_end
        and reply_status.get(message_id) == "complete"
    )
    connection.close()
    ttfts, errors, finished_in_phase = [], [], 0
    order = []
    for sent in phase.admitted:
        created, started, finished, priority = rows[sent.reply_id]
        if started is None:
            continue
        wait = _when(started) - sent.sent_at
        ttfts.append(wait + FIRST_TOKEN_MS / 1000)
        if sent.estimate_s:
            errors.append(abs(sent.estimate_s - wait) / max(wait, 0.5))
        if finished is not None and reply_status.get(sent.reply_id) == "complete":
            finished_in_phase += 1
        order.append((priority, _when(created), _when(started)))
    inversions = 0
    by_created = sorted(order, key=lambda row: row[1])
    for index, (priority, _, started) in enumerate(by_created):
        inversions += sum(
            1 for later in by_created[index + 1 :] if later[0] == priority and later[2] < started
        )
    total = sum(phase.statuses.values())
    bad_5xx = sum(n for status, n in phase.statuses.items() if status >= 500 and status != 503)
    p50 = statistics.median(ttfts) if ttfts else float("nan")
    p99 = statistics.quantiles(ttfts, n=100)[98] if len(ttfts) >= 100 else max(ttfts, default=0)
    goodput = finished_in_window / phase.seconds / CAPACITY_PER_S
    goodput_measured = finished_in_window / phase.seconds / measured
    base = baseline or (p50, p99)
    statuses = dict(sorted(phase.statuses.items()))
    print(f"load {phase.load:g}x for {phase.seconds:g} s: {total} sends, statuses {statuses}")
    print(f"  5xx other than 503: {bad_5xx / max(total, 1):.2%}")
    print(
        f"  goodput: {goodput_measured:.1%} of the measured capacity, {goodput:.1%} of the "
        f"nominal ({finished_in_window} replies finished)"
    )
    print(f"  admitted replies completed: {finished_in_phase} of {len(phase.admitted)}")
    print(f"  TTFT p50 {p50:.2f} s ({p50 / base[0]:.2f}x of 1x)")
    print(f"  TTFT p99 {p99:.2f} s ({p99 / base[1]:.2f}x of 1x)")
    if errors:
        median_error = statistics.median(errors)
        print(f"  median error of start estimates: {median_error:.0%} ({len(errors)} estimates)")
    print(f"  FIFO inversions inside a tier: {inversions}")
    return base


async def main(seconds_1x: float, seconds_5x: float, users_count: int, smoke: bool) -> None:
    with tempfile.TemporaryDirectory() as work:
        sim_port, port = free_port(), free_port()
        env = personae_env(
            environment="development",
            data_dir=work,
            seed_demo="false",
            log_level="warning",
            backends=f'["sim=http://127.0.0.1:{sim_port},slots={SLOTS}"]',
            max_reply_tokens=str(REPLY_TOKENS),
            queue_max_length="64",
            send_rate_per_ip="1000000/minute",
            send_rate_per_user="1000000/minute",
            register_rate_per_ip="1000000/hour",
            quality_gate="false",
        )
        simulate = ["simulate-backend", "--port", str(sim_port), "--slots", str(SLOTS),
                    "--tokens-per-second", str(TOKENS_PER_S),
                    "--first-token-ms", str(FIRST_TOKEN_MS)]  # fmt: skip
        with cli_process(simulate, env), cli_process(["serve", "--port", str(port)], env):
            await wait_ready(f"http://127.0.0.1:{sim_port}", "/health")
            await wait_ready(f"http://127.0.0.1:{port}", "/readyz")
            limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits
            ) as client:
                users = await _users(client, users_count)
                measured = await _direct_capacity(
                    f"http://127.0.0.1:{sim_port}", seconds=2.0 if smoke else 10.0
                )
                print(
                    f"capacity: nominal {CAPACITY_PER_S:.1f} replies/s, measured directly "
                    f"{measured:.2f} replies/s; {users_count} users\n"
                )
                baseline = None
                for load, seconds in ((1.0, seconds_1x), (2.0, seconds_1x), (5.0, seconds_5x)):
                    phase = Phase(load, seconds)
                    await _drive(client, users, phase)
                    await asyncio.sleep(SETTLE_S / 6 if smoke else SETTLE_S)
                    baseline = _report(Path(work) / "personae.db", phase, baseline, measured)
                    print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds-1x", type=float, default=40)
    parser.add_argument("--seconds-5x", type=float, default=120)
    parser.add_argument(
        "--smoke", action="store_true", help="3 s a load, for CI (too short for the targets)"
    )
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.seconds_1x = arguments.seconds_5x = 3.0
    users = 10 if arguments.smoke else USERS
    asyncio.run(main(arguments.seconds_1x, arguments.seconds_5x, users, arguments.smoke))
