"""A call's client for tests: a real WebSocket (the `websockets` package) to a real
uvicorn server, sending espeak-ng speech as 16 kHz PCM in 20 ms frames and keeping
every frame the server sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from recordings import espeak, joined, silence

from conftest import PASSWORD, serve_app, simulated_backend
from personae.app import create_app
from personae.settings import Settings
from personae.voice.base import Audio

FRAME_BYTES = 640  # 20 ms at 16 kHz
WAIT_S = 60.0


def speech(text: str, *, after_s: float = 1.2) -> Audio:
    """`text` spoken, with a little quiet before and enough after to end the turn."""
    return joined(silence(0.3), espeak(text), silence(after_s))


@dataclass
class Frame:
    type: str
    data: dict[str, Any]
    pcm: bytes | None = None


@dataclass
class CallClient:
    socket: Any
    frames: list[Frame] = field(default_factory=list)
    closed_with: int | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        pending: Frame | None = None
        try:
            async for message in self.socket:
                if isinstance(message, bytes):
                    assert pending is not None and pending.type == "audio", "PCM without audio"
                    pending.pcm = message
                    frame, pending = pending, None
                else:
                    data = json.loads(message)
                    frame = Frame(data["type"], data)
                    if frame.type == "audio":
                        pending = frame
                        continue
                async with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed_with = self.socket.close_code
            async with self._changed:
                self._changed.notify_all()

    def of_type(self, kind: str) -> list[Frame]:
        return [frame for frame in self.frames if frame.type == kind]

    async def wait_for(
        self, kind: str, count: int = 1, where: Callable[[Frame], bool] = lambda _f: True
    ) -> Frame:
        """The `count`-th frame of `kind` matching `where` (waiting for it)."""

        def found() -> bool:
            return len([f for f in self.of_type(kind) if where(f)]) >= count

        try:
            async with asyncio.timeout(WAIT_S), self._changed:
                while not found():
                    if self.closed_with is not None:
                        raise AssertionError(f"closed ({self.closed_with}) before {kind}: {self}")
                    await self._changed.wait()
        except TimeoutError as error:
            raise AssertionError(f"no {kind} frame in {WAIT_S:g} s: {self}") from error
        return [f for f in self.of_type(kind) if where(f)][count - 1]

    async def wait_closed(self) -> int:
        async with asyncio.timeout(WAIT_S), self._changed:
            while self.closed_with is None:
                await self._changed.wait()
        return self.closed_with

    async def say(self, audio: Audio) -> None:
        """Send the audio in 20 ms frames, as fast as the socket takes them."""
        assert audio.sample_rate == 16_000
        for start in range(0, len(audio.pcm), FRAME_BYTES):
            await self.socket.send(audio.pcm[start : start + FRAME_BYTES])

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(frame))

    def __str__(self) -> str:
        return str([(frame.type, frame.data) for frame in self.frames if frame.type != "audio"])


@dataclass
class Site:
    """A running server (uvicorn) and a SIMULATED chat backend beside it."""

    url: str
    backend_url: str
    app: Any

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    async def script(self, text: str) -> None:
        """The next reply says `text`, word by word."""
        async with httpx.AsyncClient(base_url=self.backend_url) as backend:
            armed = await backend.post(
                "/simulation/faults", json={"mode": "script", "text": text, "count": 1}
            )
            armed.raise_for_status()

    async def user(self) -> httpx.AsyncClient:
        """A signed-in client (cookies and CSRF header)."""
        client = httpx.AsyncClient(base_url=self.url, timeout=60)
        name = f"caller{secrets.token_hex(4)}"
        registered = await client.post(
            "/api/v1/auth/register", json={"username": name, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
        return client

    async def chat(self, client: httpx.AsyncClient) -> str:
        character = await client.post(
            "/api/v1/characters", json={"name": "Keeper", "visibility": "private"}
        )
        assert character.status_code == 201, character.text
        chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
        assert chat.status_code == 201, chat.text
        return str(chat.json()["id"])

    @asynccontextmanager
    async def call(
        self,
        chat_id: str,
        *,
        client: httpx.AsyncClient | None = None,
        headers: dict[str, str] | None = None,
        start: dict[str, Any] | None = None,
        send_start: bool = True,
    ) -> AsyncIterator[CallClient]:
        """A call, authenticated by `client`'s session cookie (Origin: this site) unless
        `headers` say otherwise; `start` is sent as the first frame (None: the default)."""
        if headers is None:
            assert client is not None
            cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
            headers = {"Cookie": cookies, "Origin": self.url}
        async with websockets.connect(
            f"{self.ws_url}/api/v1/chats/{chat_id}/call",
            additional_headers=headers,
            max_size=None,
            open_timeout=WAIT_S,
        ) as socket:
            call = CallClient(socket)
            call.start_reading()
            if send_start:
                with contextlib.suppress(websockets.ConnectionClosed):  # refused already
                    await call.send(start or {"type": "start", "sample_rate": 16_000})
            yield call


@asynccontextmanager
async def site(settings: Callable[..., Settings], **options: Any) -> AsyncIterator[Site]:
    """The app on uvicorn with a SIMULATED backend (`options`: its SimulationOptions)."""
    async with simulated_backend(slots=2, first_token_ms=0, **options) as backend_url:
        app_settings = settings(
            backend_url=None,
            backends=[f"sim={backend_url},slots=2,role=primary"],
            backend_probe_interval_s=0,
            max_reply_tokens=200,
        )
        app = create_app(app_settings)
        async with serve_app(app) as url:
            yield Site(url, backend_url, app)
