"""A voice call with a chat's character over a WebSocket (docs/voice.md, "Talking and
calls"): frames in and out; services/calls.py does the rest."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from personae import strict_json
from personae.api.deps import websocket_user
from personae.api.problems import problem_body
from personae.container import Container
from personae.errors import AppError, InternalError, RequestTimedOut, ValidationFailed
from personae.services.call_io import CallStart
from personae.services.calls import Call
from personae.storage.repos.accounts import UserRecord

router = APIRouter(tags=["voice"])
log = logging.getLogger("personae.calls")

# The wait for the `start` frame, and the largest text frame taken.
START_TIMEOUT_S = 10.0
TEXT_FRAME_MAX = 4096
_GONE = (WebSocketDisconnect, RuntimeError, OSError)  # the client left mid-send


class _SocketLink:
    """services.calls.CallLink on a WebSocket: one frame (or audio pair) at a time."""

    def __init__(self, websocket: WebSocket, container: Container) -> None:
        self._websocket = websocket
        self._container = container
        self._lock = asyncio.Lock()
        self._open = True

    async def send(self, frame: dict[str, Any], pcm: bytes | None = None) -> None:
        async with self._lock:
            if not self._open:
                return
            try:
                await self._websocket.send_text(json.dumps(frame))
                if pcm is not None:
                    await self._websocket.send_bytes(pcm)
            except _GONE:
                self._open = False

    async def send_problem(self, kind: str, error: AppError, **fields: Any) -> None:
        await self.send({"type": kind, "problem": problem_body(error), **fields})

    async def close(self, error: AppError) -> None:
        """An `error` frame, then the close code 4000 + the error's HTTP status."""
        await self.send_problem("error", error)
        await self.end(4000 + error.status)

    async def caller(self) -> UserRecord:
        return await websocket_user(self._websocket, self._container)

    async def end(self, code: int = 1000) -> None:
        async with self._lock:
            if self._open:
                self._open = False
                with contextlib.suppress(*_GONE):
                    await self._websocket.close(code=code)


def _text_frame(text: str) -> dict[str, Any]:
    if len(text) > TEXT_FRAME_MAX:
        raise ValidationFailed(f"Text frames are at most {TEXT_FRAME_MAX} characters.")
    try:
        frame = strict_json.loads(text, "The frame")
    except json.JSONDecodeError as error:
        raise ValidationFailed(f"A text frame must be a JSON object ({error.msg}).") from error
    if not isinstance(frame, dict):
        raise ValidationFailed("A text frame must be a JSON object with a 'type'.")
    return frame


async def _start_frame(websocket: WebSocket) -> CallStart:
    try:
        message = await asyncio.wait_for(websocket.receive(), START_TIMEOUT_S)
    except TimeoutError as error:
        raise RequestTimedOut(f"No start frame came within {START_TIMEOUT_S:g} s.") from error
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return CallStart.parse(_text_frame(message.get("text") or ""))


async def _converse(websocket: WebSocket, call: Call, link: _SocketLink) -> None:
    """Hand the client's frames to the call until it ends the call or leaves."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("bytes") is not None:
                await call.hear(message["bytes"])
                continue
            frame = _text_frame(message.get("text") or "")
            kind = frame.get("type")
            if kind == "end":
                return
            if kind != "interrupt":
                raise ValidationFailed("Text frames during a call: interrupt or end.")
            await call.interrupt()
        except ValidationFailed as error:
            if message.get("bytes") is not None:
                await link.close(error)  # a client that sends bad audio is not a caller
                return
            await link.send_problem("error", error)


@router.websocket("/api/v1/chats/{chat_id}/call")
async def call_chat(websocket: WebSocket, chat_id: str) -> None:
    """Audio both ways: PCM16LE mono in, the character's speech out (docs/voice.md)."""
    container: Container = websocket.app.state.container
    link = _SocketLink(websocket, container)
    await websocket.accept()
    try:
        user = await link.caller()
        target = await container.calls.open(user, chat_id)
        start = await _start_frame(websocket)
        call = await container.calls.start(user, target, start, link)
    except AppError as error:
        await link.close(error)
        return
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("a call could not start")
        await link.close(InternalError("The call could not start; try again."))
        return
    try:
        await _converse(websocket, call, link)
    except WebSocketDisconnect:
        pass
    finally:
        await call.hang_up()
    await link.end()
