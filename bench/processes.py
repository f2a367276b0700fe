"""Real processes on loopback for the benchmarks (a Personae server, a simulated backend,
nginx in front), and the databases they run on (SQLite, or PostgreSQL + Redis made for
the run)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
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
    benchmark talks only to 127.0.0.1 (`serve` would fetch MiniLM and the voice files
    from PyPI). Voice is off unless `settings` turn it on.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env["PERSONAE_EMBEDDING_MODEL"] = "lexical"
    env["PERSONAE_VOICE"] = "off"  # a benchmark that speaks turns it on with its voice_dir
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

    def terminate(self) -> None:
        """SIGTERM, without waiting: `exit_status` says when it is done."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            print(f"{self.name} ignored SIGTERM for 30 s: killed", file=sys.stderr)
            self.kill()


class Served(Restartable):
    """A `personae` process that listens on a loopback port of its own (its `--port`) and
    is ready when `ready_path` answers 200 there."""

    def __init__(
        self, name: str, arguments: list[str], env: dict[str, str], logs: Path, ready_path: str
    ):
        self.port = free_port()
        super().__init__(name, [*arguments, "--port", str(self.port)], env, logs)
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path = ready_path

    async def up(self, timeout_s: float = 60.0) -> None:
        """Wait until it is ready; fails at once if it exits."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout_s
        while True:
            status = self.exit_status()
            if status is not None:
                raise RuntimeError(f"{self.name} exited with status {status}: {self.log_path}")
            try:
                return await wait_ready(self.url, self.ready_path, timeout_s=1.0)
            except RuntimeError:
                if loop.time() > give_up:
                    raise RuntimeError(
                        f"{self.name} was not ready within {timeout_s:g} s: {self.log_path}"
                    ) from None


async def run_cli(arguments: list[str], env: dict[str, str]) -> str:
    """`personae ARGUMENTS` to its end (off the event loop): what it printed, or an error
    with the end of its stderr."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "personae.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"personae {' '.join(arguments)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


# nginx in front of api processes, with the shipped configuration's proxy settings.

NGINX = "/usr/sbin/nginx"
SHIPPED_NGINX_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"


def nginx_config(shipped: str, port: int, upstream_ports: list[int], folder: Path) -> str:
    """A whole nginx.conf: the shipped server block (deploy/nginx.conf) listening on
    127.0.0.1:PORT, its upstream's servers replaced by the api ports on 127.0.0.1 (same
    options), and every path nginx writes (pid, logs, temp files) in `folder`, so it
    runs in the foreground without root-owned paths."""
    lines: list[str] = []
    upstreams = listens = 0
    for line in shipped.splitlines():
        words = line.split()
        if words[:1] == ["server"] and len(words) > 1 and ":" in words[1]:
            upstreams += 1
            if upstreams == 1:
                options = " ".join(["", *words[2:]]).rstrip(";")
                lines += [f"    server 127.0.0.1:{api}{options};" for api in upstream_ports]
            continue
        if words[:1] == ["listen"]:
            listens += 1
            if listens == 1:
                lines.append(f"    listen 127.0.0.1:{port};")
            continue
        lines.append(line)
    if not (upstreams and listens):
        raise ValueError("deploy/nginx.conf has no upstream server or listen line to replace")
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} warn;\n"
        "events {\n    worker_connections 4096;\n}\n"
        "http {\n    log_format timed '$time_local $status $request_time $upstream_addr "
        '$upstream_status "$request"\';\n'
        f"    access_log {folder / 'access.log'} timed;\n{temp}\n" + "\n".join(lines) + "\n}\n"
    )


@contextmanager
def nginx(port: int, upstream_ports: list[int], folder: Path) -> Iterator[str]:
    """nginx in the foreground (a child of this process) in front of the api ports;
    yields its URL. Stopped on exit, its logs kept in `folder`."""
    binary = shutil.which("nginx") or NGINX
    folder.mkdir(parents=True, exist_ok=True)
    # Run as root, nginx's workers are nobody: they must reach the temp paths.
    folder.chmod(0o755)
    config = folder / "nginx.conf"
    config.write_text(nginx_config(SHIPPED_NGINX_CONF.read_text(), port, upstream_ports, folder))
    arguments = [binary, "-p", str(folder), "-c", str(config), "-e", str(folder / "error.log")]
    checked = subprocess.run([*arguments, "-t"], capture_output=True, text=True, check=False)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused {config}: {checked.stderr.strip()}")
    with (folder / "nginx.out").open("wb") as out:
        process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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


# A deployment of several processes on loopback (deploy.md): PostgreSQL and Redis, SIMULATED
# backends, `personae migrate`, api processes behind nginx, workers.


@dataclass
class Cluster:
    """What `cluster` started; `started` is every process ever started, stopped at the end."""

    work: Path
    slots: int
    deployment: Deployment
    env: dict[str, str] = field(default_factory=dict)
    backends: list[Served] = field(default_factory=list)
    apis: list[Served] = field(default_factory=list)
    workers: list[Served] = field(default_factory=list)
    url: str = ""
    started: list[Restartable] = field(default_factory=list)

    def add(self, name: str, arguments: list[str], env: dict[str, str], path: str) -> Served:
        process = Served(name, arguments, env, self.work, path)
        self.started.append(process)
        process.start()
        return process

    async def use_workers(self, count: int) -> None:
        """Stop the workers; start `count`, each given the first `count` backends."""
        await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in self.workers))
        arguments = ["worker"]
        for backend in self.backends[:count]:
            arguments += ["--backend", f"{backend.name}={backend.url},slots={self.slots}"]
        self.workers = [
            self.add(f"worker-{n}-of-{count}", arguments, self.env, "/readyz")
            for n in range(1, count + 1)
        ]
        await asyncio.gather(*(worker.up() for worker in self.workers))

    def stop_all(self) -> None:
        for process in reversed(self.started):
            process.terminate()
        for process in reversed(self.started):
            process.stop()


@asynccontextmanager
async def cluster(
    work: Path, *, slots: int, tokens_per_s: float, settings: dict[str, str], code: Path
) -> AsyncIterator[Cluster]:
    """2 SIMULATED backends (`slots` each), a fresh PostgreSQL database and Redis prefix,
    `personae migrate`, 2 api processes behind nginx (which they trust), 2 workers given
    both backends, all ready; `settings` (PERSONAE_ + key) for every Personae process, which
    imports the personae package in `code`. Everything stopped and dropped on leaving."""
    deployment = await postgres_deployment(work, "cluster")
    imports = {"PYTHONPATH": str(code)}
    try:
        with ExitStack() as stops:
            found = Cluster(work, slots, deployment)
            stops.callback(found.stop_all)
            simulation = ["simulate-backend", "--slots", str(slots)]
            simulation += ["--tokens-per-second", str(tokens_per_s)]
            found.backends = [
                found.add(name, [*simulation, "--name", name], personae_env() | imports, "/health")
                for name in ("sim0", "sim1")
            ]
            shared = {
                **deployment.settings,
                "environment": "development",
                "secret_key": secrets.token_urlsafe(48),
                "auto_migrate": "false",
                "seed_demo": "false",
                "log_json": "false",
                "trusted_proxies": "127.0.0.1",
                "backends": json.dumps([f"{b.name}={b.url},slots={slots}" for b in found.backends]),
            }
            found.env = personae_env(**(shared | settings)) | imports
            await run_cli(["migrate"], found.env)
            found.apis = [
                found.add(f"api-{n}", ["serve", "--role", "api"], found.env, "/readyz")
                for n in (1, 2)
            ]
            await found.use_workers(2)
            await asyncio.gather(*(served.up() for served in found.backends + found.apis))
            ports = [api.port for api in found.apis]
            found.url = stops.enter_context(nginx(free_port(), ports, work / "nginx"))
            await wait_ready(found.url, "/readyz")
            yield found
    finally:
        await deployment.drop()
