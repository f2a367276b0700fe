"""Real processes on loopback for the benchmarks (a Personae server, a simulated backend),
and the databases they run on (SQLite, or PostgreSQL + Redis made for the run)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

LOG_TAIL_BYTES = 4000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_ready(url: str, path: str, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while loop.time() < give_up:
            try:
                if (await client.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}{path} did not answer within {timeout_s:g} s")


def personae_env(**settings: str) -> dict[str, str]:
    """This environment without any PERSONAE_ setting, plus `settings` (PERSONAE_ + key).

    Recall is lexical: the benchmarks' chats are too short to recall anything, and a
    benchmark talks only to 127.0.0.1 (`serve` would fetch MiniLM from PyPI).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env["PERSONAE_EMBEDDING_MODEL"] = "lexical"
    env.update({f"PERSONAE_{key.upper()}": value for key, value in settings.items()})
    return env


@contextmanager
def cli_process(arguments: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """`personae ARGUMENTS` in a process of its own, stopped (SIGTERM) on exit.

    Its log is kept aside and printed (the end of it) when the block fails, so a
    benchmark that breaks in CI says why.
    """
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "personae.cli", *arguments],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            yield process
        except BaseException:
            _stop(process)
            log.seek(0)
            tail = log.read()[-LOG_TAIL_BYTES:].decode(errors="replace")
            print(f"--- the end of `personae {arguments[0]}`'s log ---\n{tail}", file=sys.stderr)
            raise
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Restartable:
    """A `personae` process that can be killed and started again on the same port.

    Each start writes its own log file (stdout and stderr), kept after the run.
    """

    def __init__(self, name: str, arguments: list[str], env: dict[str, str], logs: Path):
        self.name, self._arguments, self._env, self._logs = name, arguments, env, logs
        self.starts = 0
        self.log_path = logs / f"{name}-00.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        self.log_path = self._logs / f"{self.name}-{self.starts:02d}.log"
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self._process = subprocess.Popen(
                [sys.executable, "-m", "personae.cli", *self._arguments],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def exit_status(self) -> int | None:
        """None while it runs (or before its first start)."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            print(f"{self.name} ignored SIGTERM for 30 s: killed", file=sys.stderr)
            self.kill()


# Databases beside a server, made for a run and read directly by the benchmark.

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"


class Store:
    """Read-only access to the server's database, beside the server."""

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self._path = path

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._read, sql)

    def _read(self, sql: str) -> list[tuple[Any, ...]]:
        # A connection a read: a server killed mid-write leaves nothing held here.
        connection = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()


class PostgresStore(Store):
    def __init__(self, url: str) -> None:
        self._url = url
        self._pool: asyncpg.Pool | None = None

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=2)
        async with self._pool.acquire() as connection:
            return [tuple(record) for record in await connection.fetch(sql)]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


@dataclass
class Deployment:
    """Where the server keeps its data, and how to make and drop it."""

    settings: dict[str, str]
    store: Store
    drop: Callable[[], Awaitable[None]]


async def sqlite_deployment(work: Path) -> Deployment:
    async def keep() -> None:  # the database stays beside the logs, to be read
        return None

    return Deployment({"data_dir": str(work)}, SqliteStore(work / "personae.db"), keep)


async def postgres_deployment(work: Path, label: str) -> Deployment:
    """A database and a Redis key prefix of the run's own, named LABEL_ and a random id."""
    name = f"{label}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    prefix = name.replace("_", "-")
    store = PostgresStore(f"{POSTGRES}/{name}")

    async def drop() -> None:
        await store.close()
        admin = await asyncpg.connect(f"{POSTGRES}/postgres")
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()
        keys = aioredis.from_url(REDIS)
        try:
            async for key in keys.scan_iter(match=f"{prefix}:*"):
                await keys.delete(key)
        finally:
            await keys.aclose()

    settings = {
        "data_dir": str(work),
        "database_url": f"{POSTGRES}/{name}",
        "redis_url": REDIS,
        "redis_prefix": prefix,
    }
    print(f"PostgreSQL database {name}, Redis key prefix {prefix}: dropped at the end")
    return Deployment(settings, store, drop)
