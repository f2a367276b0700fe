"""Slow clients (slowloris) against a real `personae serve` on 127.0.0.1, with raw
sockets: a head trickled byte by byte is cut after PERSONAE_REQUEST_HEAD_TIMEOUT_S, a
body that stalls gets 408 after PERSONAE_REQUEST_BODY_TIMEOUT_S; a normal request, a
body sent in parts with shorter pauses, and an event stream longer than both bounds
still work."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from conftest import NO_BACKEND, PASSWORD, serve_app
from personae.api.request_timeouts import head_timeout_protocol

HEAD_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
# Generous: the machine is shared and loaded; what matters is that the cut comes.
CUT_WITHIN_S = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _spawn(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "personae.cli", "serve", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'slow.db'}",
        PERSONAE_BACKEND_URL=NO_BACKEND,
        PERSONAE_SEED_DEMO="false",
        PERSONAE_LOG_JSON="false",
        PERSONAE_EMBEDDING_MODEL="lexical",
        PERSONAE_VOICE="off",  # voice is tested in tests/voice
        PERSONAE_REQUEST_HEAD_TIMEOUT_S=str(HEAD_TIMEOUT_S),
        PERSONAE_REQUEST_BODY_TIMEOUT_S=str(BODY_TIMEOUT_S),
        PERSONAE_SSE_HEARTBEAT_S="0.5",
        PERSONAE_GRACEFUL_SHUTDOWN_S="1",
    )
    log = tmp_path / "server.log"
    process = _spawn(port, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(600):
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("not ready: " + log.read_text()[-3000:])
        yield url, port
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _read_all(reader: asyncio.StreamReader, within_s: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    async with asyncio.timeout(within_s):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def test_a_head_trickled_byte_by_byte_is_cut(server: tuple[str, int]) -> None:
    _url, port = server
    reader, writer = await _connect(port)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 400
    started = time.monotonic()
    sent = 0
    try:
        # Byte by byte, each well inside any sane bound; the whole never arrives in time.
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.05)
            if time.monotonic() - started > CUT_WITHIN_S:
                break
        received = await _read_all(reader, 5.0)
    except (ConnectionResetError, BrokenPipeError):
        received = b""
    finally:
        writer.close()
    elapsed = time.monotonic() - started
    assert received == b"", received  # closed, never answered
    assert sent < len(head), "the server let the whole trickled head in"
    assert HEAD_TIMEOUT_S * 0.9 <= elapsed < CUT_WITHIN_S, elapsed


async def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    _url, port = server
    reader, writer = await _connect(port)
    started = time.monotonic()
    try:
        received = await _read_all(reader, CUT_WITHIN_S)
    finally:
        writer.close()
    assert received == b""
    assert time.monotonic() - started >= HEAD_TIMEOUT_S * 0.9


async def test_a_stalled_body_gets_408_and_the_connection_closes(
    server: tuple[str, int],
) -> None:
    _url, port = server
    reader, writer = await _connect(port)
    body = json.dumps({"username": "someone", "password": PASSWORD}).encode()
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:5]
    )
    await writer.drain()
    started = time.monotonic()
    try:
        received = await _read_all(reader, CUT_WITHIN_S)
    finally:
        writer.close()
    assert time.monotonic() - started >= BODY_TIMEOUT_S * 0.9
    head, _, payload = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), received
    assert b"content-type: application/problem+json" in head.lower()
    assert b"connection: close" in head.lower()
    problem = json.loads(payload)
    assert problem["code"] == "request_timeout"
    assert problem["status"] == 408
    assert problem["retryable"] is True


async def test_a_body_trickled_byte_by_byte_is_answered_408(server: tuple[str, int]) -> None:
    """One byte at a time, each pause longer than the bound between parts."""
    _url, port = server
    reader, writer = await _connect(port)
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    await writer.drain()
    received = b""
    try:
        for _ in range(3):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(BODY_TIMEOUT_S * 2)
        received = await _read_all(reader, CUT_WITHIN_S)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    # Answered 408 when the first pause passed the bound (or, if the answer was lost
    # to the reset of a write after the close, at least cut).
    assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received


async def test_normal_requests_and_bodies_in_parts_still_work(server: tuple[str, int]) -> None:
    url, port = server
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/healthz")).status_code == 200
    # A body in parts, each pause well under the bound: answered (401: no such account).
    reader, writer = await _connect(port)
    body = json.dumps({"username": "nobody-here", "password": PASSWORD}).encode()
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    try:
        for start in range(0, len(body), len(body) // 4 + 1):
            writer.write(body[start : start + len(body) // 4 + 1])
            await writer.drain()
            await asyncio.sleep(BODY_TIMEOUT_S / 5)
        received = await _read_all(reader, CUT_WITHIN_S)
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 401 "), received
    # A kept-alive connection serves a second request after a pause longer than the
    # head bound (the idle time between requests has its own, longer bound).
    reader, writer = await _connect(port)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:
        writer.write(request)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert first.startswith(b"HTTP/1.1 200 "), first
        length = int(
            next(
                line.split(b":", 1)[1]
                for line in first.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        await reader.readexactly(length)
        await asyncio.sleep(HEAD_TIMEOUT_S * 2)
        writer.write(request)
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert second.startswith(b"HTTP/1.1 200 "), second
    finally:
        writer.close()


async def test_an_event_stream_outlasts_both_bounds(server: tuple[str, int]) -> None:
    url, _port = server
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        registered = await client.post(
            "/api/v1/auth/register", json={"username": "streamer", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
        character = await client.post(
            "/api/v1/characters", json={"name": "Bramble", "description": "a fox"}
        )
        assert character.status_code == 201, character.text
        chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
        assert chat.status_code == 201, chat.text
        lasted_s = (HEAD_TIMEOUT_S + BODY_TIMEOUT_S) * 2
        heartbeats = 0
        async with client.stream("GET", f"/api/v1/chats/{chat.json()['id']}/events") as stream:
            assert stream.status_code == 200
            started = time.monotonic()
            async for line in stream.aiter_lines():
                heartbeats += line.startswith(": heartbeat")
                if time.monotonic() - started > lasted_s:
                    break
        assert time.monotonic() - started > lasted_s
        assert heartbeats >= 2


@pytest.mark.parametrize("prefer_h11", [False, True], ids=["httptools", "h11"])
async def test_both_http_parsers_cut_a_slow_head(prefer_h11: bool) -> None:
    """uvicorn runs httptools when installed, h11 otherwise: both carry the bound."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        raise AssertionError("no request should reach the app")

    protocol = head_timeout_protocol(HEAD_TIMEOUT_S, prefer_h11=prefer_h11)
    async with serve_app(app, lifespan="off", http=protocol) as url:
        reader, writer = await _connect(int(url.rsplit(":", 1)[1]))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        await writer.drain()
        started = time.monotonic()
        try:
            received = await _read_all(reader, CUT_WITHIN_S)
        finally:
            writer.close()
        assert received == b""
        assert time.monotonic() - started >= HEAD_TIMEOUT_S * 0.9
