"""Real Personae processes on one PostgreSQL and Redis, for the several-process tests:
api processes, workers and a SIMULATED backend process, each on a free loopback port
with its log in the test's directory."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from conftest import REDIS_URL

# How long a process has to answer its readiness path, and to end after SIGTERM.
READY_S = 60.0
STOP_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """`python -m personae.cli ARGS --port PORT`, its output appended to `log`."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.popen = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as sink:
            return subprocess.Popen(
                [sys.executable, "-m", "personae.cli", *self.args, "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=sink,
            )

    def restart(self) -> None:
        """Start it again on the same port (after it ended)."""
        assert self.popen.poll() is not None, "still running"
        self.popen = self._spawn()

    async def ready(self, path: str = "/readyz") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_S
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as client:
            while loop.time() < deadline:
                assert self.popen.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await client.get(path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("not ready: " + self.log.read_text()[-3000:])

    def kill_9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        stop_all([self])


def stop_all(processes: list[Process]) -> None:
    """SIGTERM to all at once, then SIGKILL to any still running after STOP_S."""
    running = [p for p in processes if p.popen.poll() is None]
    for process in running:
        process.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    for process in running:
        try:
            process.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.popen.kill()
            process.popen.wait(10)


@dataclass
class Cluster:
    backend: Process
    apis: list[Process]
    workers: list[Process]

    @property
    def served(self) -> list[Process]:
        """Every Personae process (api and worker roles)."""
        return [*self.apis, *self.workers]


def cluster_env(database_url: str, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of every process: this test's database, a Redis prefix of its
    own, and `settings` as PERSONAE_<NAME> variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_REDIS_URL=str(REDIS_URL),
        PERSONAE_REDIS_PREFIX=f"cluster-{os.getpid()}-{secrets.token_hex(3)}",
        PERSONAE_SECRET_KEY="a-secret-key-shared-by-every-process-0123456789",
        PERSONAE_SEED_DEMO="false",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
        PERSONAE_MAX_REPLY_TOKENS="60",
    )
    env.update({f"PERSONAE_{name.upper()}": value for name, value in settings.items()})
    return env


@asynccontextmanager
async def cluster(
    database_url: str,
    tmp_path: Path,
    *,
    apis: int = 1,
    workers: int = 2,
    tokens_per_second: float = 15,
    **settings: str,
) -> AsyncIterator[Cluster]:
    """A SIMULATED backend, then `apis` api processes and `workers` workers started
    together; every process still running is stopped on the way out."""
    env = cluster_env(database_url, tmp_path, **settings)
    backend = Process(
        ["simulate-backend", "--slots", "4", "--tokens-per-second", str(tokens_per_second)],
        env,
        tmp_path / "backend.log",
    )
    running = Cluster(backend, [], [])
    try:
        await backend.ready("/health")
        for number in range(apis):
            api = Process(["serve", "--role", "api"], env, tmp_path / f"api{number}.log")
            running.apis.append(api)
        for number in range(workers):
            worker = Process(
                ["worker", "--backend", f"sim={backend.url},slots=4"],
                env,
                tmp_path / f"worker{number}.log",
            )
            running.workers.append(worker)
        for process in running.served:
            await process.ready()
        yield running
    finally:
        stop_all(running.served)
        stop_all([backend])
