"""Memory over a long run: the server's RSS after warm-up and at the end of steady chat.

`personae serve` runs on SQLite as its own process on loopback, first with the
embedded model (SmolLM2-135M via xllamacpp), then pointed at an external
backend (a SIMULATED one, `personae simulate-backend`), one after the other.
Several users chat steadily: each sends, reads the chat's event stream until
the reply is final, pauses, sends again, and opens a new chat every few turns
(so every per-chat cache keeps meeting new chats); one of them, as an attacker
would, sends messages of the longest allowed length.

Printed per backend: RSS at each tenth of the run, after warm-up (the first
third: bounded caches fill), the peak and the end, the growth from warm-up to
the end in percent (target: at most 10%), and the replies written. `--smoke`
is a run of about 10 seconds per backend (2 users, short messages and replies)
that checks the script works, not the target.

The embedded model's prompt cache in RAM (`PERSONAE_EMBEDDED_CACHE_RAM_MIB`,
256 MiB on a machine of 16 GiB or more) fills as chats come and go, then stays:
its bound is printed beside the growth.

    python bench/soak.py [--duration 30m] [--users 6] [--backend both|embedded|simulated]
                         [--set EVENT_LOG_MEMORY_MIB=64 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from processes import cli_process, free_port, personae_env, wait_ready

from personae.llm.embedded import default_cache_ram_mib
from personae.llm.model_files import pull_default_model

PASSWORD = "a long enough passphrase"
TURNS_PER_CHAT = 8
THINK_S = 0.5
LONGEST_MESSAGE = 4000
WORDS = ["tea", "fox", "lantern", "river", "moon", "garden", "storm", "letter", "castle",
         "violin", "harbor", "winter", "orchard", "clock", "ember", "meadow", "compass",
         "raven", "bridge", "candle", "festival", "secret"]  # fmt: skip
FINAL = {"complete", "failed", "stopped"}


@dataclass(frozen=True)
class Load:
    users: int
    duration_s: float
    longest_message: int = LONGEST_MESSAGE  # what user 0 sends, as an attacker would


@dataclass
class Tally:
    replies: dict[str, int] = field(default_factory=dict)
    send_errors: int = 0

    def count(self, status: str) -> None:
        self.replies[status] = self.replies.get(status, 0) + 1


def parse_duration(text: str) -> float:
    """'30m', '90s', '1h' or plain seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _message(rng: random.Random, attacker: bool, longest: int) -> str:
    if attacker:
        words = " ".join(rng.choice(WORDS) for _ in range(longest // 5))
        return words[:longest]
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))) + "?"


async def _user(client: httpx.AsyncClient, name: str) -> str:
    opened = await client.post(
        "/api/v1/auth/register", json={"username": name, "password": PASSWORD}
    )
    csrf = opened.json()["csrf_token"]
    made = await client.post(
        "/api/v1/tokens", json={"name": "soak"}, headers={"X-CSRF-Token": csrf}
    )
    client.cookies.clear()
    return str(made.json()["token"])


async def _new_chat(client: httpx.AsyncClient, auth: dict[str, str], character_id: str) -> str:
    chat = await client.post("/api/v1/chats", json={"character_id": character_id}, headers=auth)
    return str(chat.json()["id"])


async def _turn(
    client: httpx.AsyncClient, auth: dict[str, str], chat_id: str, client_id: str, text: str
) -> str:
    """Send one message and read the chat's stream until its reply is final: its status."""
    async with client.stream("GET", f"/api/v1/chats/{chat_id}/events", headers=auth) as stream:
        sent = await client.put(
            f"/api/v1/chats/{chat_id}/messages/{client_id}", json={"content": text}, headers=auth
        )
        if sent.status_code != 202:
            return f"http {sent.status_code}"
        reply_id = sent.json()["reply"]["id"]
        name = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "reply_state":
                data = json.loads(line[6:])
                if data.get("id") == reply_id and data.get("status") in FINAL:
                    return str(data["status"])
    return "stream ended"


async def _chatter(
    client: httpx.AsyncClient,
    token: str,
    number: int,
    character_id: str,
    until: float,
    tally: Tally,
    longest: int,
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    rng = random.Random(number)
    loop = asyncio.get_running_loop()
    turn = 0
    chat_id = ""
    while loop.time() < until:
        if turn % TURNS_PER_CHAT == 0:
            chat_id = await _new_chat(client, auth, character_id)
        try:
            status = await _turn(
                client, auth, chat_id, f"u{number}-{turn}", _message(rng, number == 0, longest)
            )
        except httpx.HTTPError:
            tally.send_errors += 1
            await asyncio.sleep(1)
            continue
        tally.count(status)
        turn += 1
        await asyncio.sleep(THINK_S)


async def _watch(pid: int, samples: list[tuple[float, float]], started: float) -> None:
    while True:
        samples.append((time.monotonic() - started, rss_mib(pid)))
        await asyncio.sleep(2)


def _at(samples: list[tuple[float, float]], moment_s: float) -> float:
    return next((rss for at, rss in samples if at >= moment_s), samples[-1][1])


def _report(label: str, samples: list[tuple[float, float]], warmup_s: float, tally: Tally) -> float:
    after_warmup = _at(samples, warmup_s)
    end = samples[-1][1]
    growth = (end - after_warmup) / after_warmup * 100
    duration_s = samples[-1][0]
    tenths = [f"{_at(samples, duration_s * tenth / 10):.0f}" for tenth in range(11)]
    print(f"{label}")
    print(f"  RSS at each tenth (MiB)  {' '.join(tenths)}")
    print(f"  RSS at start of load     {samples[0][1]:8.1f} MiB")
    print(f"  RSS after warm-up        {after_warmup:8.1f} MiB  ({warmup_s:.0f} s)")
    print(f"  RSS peak                 {max(rss for _, rss in samples):8.1f} MiB")
    print(f"  RSS at the end           {end:8.1f} MiB  ({samples[-1][0]:.0f} s)")
    print(f"  growth after warm-up     {growth:+8.1f} %   (target: at most 10%)")
    print(f"  replies {dict(sorted(tally.replies.items()))}, send errors {tally.send_errors}")
    return growth


async def soak(label: str, env: dict[str, str], serve: list[str], load: Load) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with cli_process([*serve, "--port", str(port)], env) as server:
        await wait_ready(url, "/readyz")
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            tokens = [await _user(client, f"soak{number:03d}") for number in range(load.users)]
            auth = {"Authorization": f"Bearer {tokens[0]}"}
            character = await client.post(
                "/api/v1/characters",
                json={"name": "Bramble", "description": "A fox who keeps tea and secrets."},
                headers=auth,
            )
            character_id = character.json()["id"]
            samples: list[tuple[float, float]] = []
            loop = asyncio.get_running_loop()
            until = loop.time() + load.duration_s
            started = time.monotonic()
            watcher = asyncio.create_task(_watch(server.pid, samples, started))
            tally = Tally()
            await asyncio.gather(
                *(
                    _chatter(
                        client, token, number, character_id, until, tally, load.longest_message
                    )
                    for number, token in enumerate(tokens)
                )
            )
            samples.append((time.monotonic() - started, rss_mib(server.pid)))
            watcher.cancel()
    warmup_s = load.duration_s / 3
    return _report(label, samples, warmup_s, tally)


def _env(work: str, **settings: str) -> dict[str, str]:
    return personae_env(
        environment="development",
        data_dir=work,
        seed_demo="false",
        log_level="warning",
        send_rate_per_user="1000000/minute",
        send_rate_per_ip="1000000/minute",
        register_rate_per_ip="1000000/hour",
        graceful_shutdown_s="2",  # the run is over: no reply needs to finish
        **settings,
    )


async def main(load: Load, which: str, overrides: dict[str, str]) -> None:
    print(f"{load.users} users, {load.duration_s:.0f} s of steady chat per backend")
    print(f"settings given: {overrides or 'none (defaults)'}\n")
    if which in ("both", "embedded"):
        bound = overrides.get("embedded_cache_ram_mib", str(default_cache_ram_mib()))
        print(f"(the embedded model's prompt cache may take up to {bound} MiB)")
        model = pull_default_model(
            Path.home() / ".cache" / "personae-test", progress=lambda _l: None
        )
        with tempfile.TemporaryDirectory() as work:
            env = _env(work, model_path=str(model), **overrides)
            await soak("embedded model (SmolLM2-135M)", env, ["serve"], load)
        print()
    if which in ("both", "simulated"):
        with tempfile.TemporaryDirectory() as work:
            sim_port = free_port()
            env = _env(work, **{"max_reply_tokens": "60", **overrides})
            simulate = ["simulate-backend", "--port", str(sim_port), "--slots", "4"]
            simulate += ["--tokens-per-second", "200", "--first-token-ms", "50"]
            with cli_process(simulate, env):
                await wait_ready(f"http://127.0.0.1:{sim_port}", "/health")
                serve = ["serve", "--backend", f"sim=http://127.0.0.1:{sim_port},slots=4"]
                label = "external backend (SIMULATED, 4 slots)"
                await soak(label, env, serve, load)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="30m", help="per backend: 30m, 90s, 1h")
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--backend", choices=("both", "embedded", "simulated"), default="both")
    parser.add_argument("--smoke", action="store_true", help="about 10 s per backend")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting"
    )
    arguments = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in arguments.set)
    overrides = {name.lower().removeprefix("personae_"): value for name, value in overrides.items()}
    load = Load(arguments.users, parse_duration(arguments.duration))
    if arguments.smoke:  # the last turns must end soon after the run: short work
        overrides.setdefault("max_reply_tokens", "24")
        load = Load(min(arguments.users, 2), 10.0, longest_message=400)
    asyncio.run(main(load, arguments.backend, overrides))
