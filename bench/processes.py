"""Real processes on loopback for the benchmarks: a Personae server, a simulated backend."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

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
