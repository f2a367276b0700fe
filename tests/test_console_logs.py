"""`personae serve`'s console: "serving on" once the port listens, JSON lines when
stderr is not a terminal (readable lines when it is), no line twice, and health checks
and metrics scrapes not logged at INFO."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conftest import REDIS_URL, simulated_backend
from personae.logs import TextFormatter, json_wanted, request_id_var


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _accepts(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def _line_with(stderr: asyncio.StreamReader, text: str, seen: list[str]) -> str:
    """Read stderr up to the first line holding `text` (every line read goes to `seen`)."""
    while True:
        raw = await asyncio.wait_for(stderr.readline(), 120)
        assert raw, "the server ended early:\n" + "".join(seen)
        line = raw.decode()
        seen.append(line)
        if text in line:
            return line


async def test_serve_says_serving_on_once_listening_and_keeps_probes_quiet(
    tmp_path: Path, database_url: str
) -> None:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_SEED_DEMO="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
        **({"PERSONAE_REDIS_URL": REDIS_URL, "PERSONAE_REDIS_PREFIX": f"logs-{port}"}
           if REDIS_URL else {}),
    )  # fmt: skip
    seen: list[str] = []
    async with simulated_backend() as backend:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "personae.cli", "serve", "--port", str(port),
            "--model", backend,
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        try:
            serving = await _line_with(process.stderr, "serving on", seen)
            # Said only once the port listens: a connection made right now is accepted.
            assert await _accepts(port), seen
            assert serving.strip() == f"Personae is serving on http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                for path in ("/healthz",) * 5 + ("/readyz", "/metrics", "/api/v1/characters"):
                    assert (await client.get(path)).status_code == 200, path
            await _line_with(process.stderr, "/api/v1/characters", seen)
        finally:
            process.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(process.communicate(), 60)
    lines = [*seen, *rest.decode().splitlines(keepends=True)]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    # Not a terminal: JSON lines, apart from the few the command itself says.
    assert [line for line in lines if not line.startswith("{")] == [serving], lines
    assert [name for name, count in Counter(lines).items() if count > 1] == []
    assert not [r for r in records if "/healthz" in r["message"] or "/metrics" in r["message"]]
    assert not [r for r in records if "/readyz" in r["message"]]
    access = [r for r in records if "/api/v1/characters" in r["message"]]
    assert len(access) == 1 and access[0]["level"] == "info" and access[0]["request_id"]
    assert not [r for r in records if r["message"].startswith("Uvicorn running on")]


class _Terminal:
    def isatty(self) -> bool:
        return True


class _Pipe:
    def isatty(self) -> bool:
        return False


def test_the_format_is_text_on_a_terminal_json_elsewhere_or_as_set() -> None:
    assert json_wanted("auto", None, _Terminal()) is False
    assert json_wanted("auto", None, _Pipe()) is True
    assert json_wanted("text", None, _Pipe()) is False
    assert json_wanted("json", False, _Terminal()) is True
    assert json_wanted("auto", False, _Pipe()) is False  # PERSONAE_LOG_JSON=false still counts


def test_a_text_line_is_one_readable_line_with_its_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "personae.router", "levelno": logging.WARNING, "levelname": "WARNING",
         "msg": "backend %s changed", "args": ("health",), "backend": "gpu 1", "healthy": False}
    )  # fmt: skip
    token = request_id_var.set("abc123")
    try:
        line = TextFormatter().format(record)
    finally:
        request_id_var.reset(token)
    assert "\n" not in line
    moment, rest = line[:19], line[20:]
    assert moment[4] == "-" and moment[13] == ":"
    assert rest == (
        "WARNING personae.router: backend health changed  "
        'request_id=abc123 backend="gpu 1" healthy=false'
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_serving_on_every_address_names_the_local_one(host: str) -> None:
    from personae.logs import serving_lines

    first, *more = serving_lines(host, 8000)
    assert "http://127.0.0.1:8000" in first
    assert all("http://" in line and ":8000" in line for line in more)
