"""A SIMULATED OpenAI-compatible inference server, for load and failure tests.

It writes no real text: replies are made of words from a fixed list at a set
speed. What it does simulate faithfully is what Personae depends on: streaming
chat completions over HTTP, a limited number of slots, a prompt prefix cache
(reported as `usage.prompt_tokens_details.cached_tokens`, as vLLM does), the
tokenize and health endpoints, and faults: failures at a given rate, and faults
armed through `POST /simulation/faults` (hang before the first token, stall
mid-stream, malformed SSE, an HTTP status, a context-length error), and `script`:
the next replies say the fault's `text`, word by word, instead of the word list. `loop`
makes it repeat one phrase forever, for testing the quality gate.
Each stream ends with a `finish_reason`, as real servers send it: "length" when the
reply was cut by `max_tokens` (the word list never ends by itself, so it always is;
a script longer than `max_tokens` is too), "stop" when a script was said to its
end, or the fault's `finish_reason` when one is armed (e.g. "content_filter").
`GET /simulation/stats` counts what it was asked (`short_requests`: those for at
most one token, i.e. prompt warm-ups); its `max_in_flight`, the most
completions ever in flight at once, shows a client that sent more than the slots
(the rest wait inside for a slot, as on a real server).

Start one with `personae simulate-backend --port P ...`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_SENTENCE = (
    "the tea is warm and the rain taps on the window while the fox tells a story about "
    "the river path and the old mill where lanterns glow at dusk"
)
_WORDS = tuple(_SENTENCE.split(" "))
_LOOP_PHRASE = ("I", "am", "so", "sorry")


@dataclass
class SimulationOptions:
    name: str = "simulated"
    slots: int = 4
    tokens_per_second: float = 200.0
    first_token_ms: float = 20.0
    prompt_ms_per_token: float = 0.05
    fail_rate: float = 0.0
    loop: bool = False
    context_length: int = 8192
    seed: int | None = None
    # Prompts whose KV cache the server keeps (a GPU keeps a few per slot, not all).
    cache_entries: int = 64


@dataclass
class _Fault:
    mode: str
    remaining: int
    after_tokens: int = 0
    status: int = 500
    text: str = ""
    finish_reason: str | None = None


@dataclass
class _State:
    options: SimulationOptions
    slots: asyncio.Semaphore
    faults: list[_Fault] = field(default_factory=list)
    prompts: OrderedDict[tuple[str, ...], None] = field(default_factory=OrderedDict)
    requests: int = 0
    # The last user turn of the most recent requests (what tests check was asked).
    last_user_turns: deque[str] = field(default_factory=lambda: deque(maxlen=32))
    # The same, of the requests answered to their end (not those the client let go of).
    answered_user_turns: deque[str] = field(default_factory=lambda: deque(maxlen=32))
    # The unfinished assistant turn the most recent requests ended with (a reply to
    # continue), "" for those that ended otherwise.
    last_prefills: deque[str] = field(default_factory=lambda: deque(maxlen=32))
    # The client connections (address and port) completions came on.
    connections: set[tuple[str, int]] = field(default_factory=set)
    # Completions being answered (holding a slot or waiting for one), those holding a
    # slot, and the most of each ever at once (see `_slot`).
    in_flight: int = 0
    max_in_flight: int = 0
    active: int = 0
    max_active: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    # Completions asked for at most one token (prompt warm-ups).
    short_requests: int = 0
    random: random.Random = field(default_factory=random.Random)


def _tokens(text: str) -> list[str]:
    return text.split()


def _prompt_tokens(messages: list[dict[str, Any]]) -> list[str]:
    tokens: list[str] = []
    for message in messages:
        tokens.append(f"<{message.get('role', 'user')}>")
        tokens.extend(_tokens(str(message.get("content", ""))))
    return tokens


def _cached_prefix(state: _State, prompt: list[str]) -> int:
    """The longest prefix this server has seen before (its simulated KV cache)."""
    best = 0
    for seen in state.prompts:
        length = 0
        for mine, theirs in zip(prompt, seen, strict=False):
            if mine != theirs:
                break
            length += 1
        best = max(best, length)
    state.prompts[tuple(prompt)] = None
    state.prompts.move_to_end(tuple(prompt))
    while len(state.prompts) > state.options.cache_entries:
        state.prompts.popitem(last=False)
    state.prompt_tokens += len(prompt)
    state.cached_tokens += best
    return best


def _take_fault(state: _State) -> _Fault | None:
    for fault in state.faults:
        if fault.remaining > 0:
            fault.remaining -= 1
            return fault
    return None


def _chunk(name: str, text: str, finish_reason: str | None = None) -> bytes:
    delta = {"content": text} if text else {}
    event = {
        "id": "sim",
        "object": "chat.completion.chunk",
        "model": name,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(event)}\n\n".encode()


def _error(status: int, message: str, kind: str = "server_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status)


async def _completions(request: Request) -> Response:
    state: _State = request.app.state.simulation
    options = state.options
    state.requests += 1
    if request.client is not None:
        state.connections.add((request.client.host, request.client.port))
    body = await request.json()
    messages = body.get("messages") or []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    user_turn = str(users[-1].get("content", "")) if users else ""
    state.last_user_turns.append(user_turn)
    prompt = _prompt_tokens(messages)
    fault = _take_fault(state)
    if fault and fault.mode == "status":
        return _error(fault.status, f"simulated HTTP {fault.status}")
    if (fault and fault.mode == "context") or len(prompt) > options.context_length:
        return _error(
            400,
            f"the request exceeds the available context size ({len(prompt)} tokens)",
            "exceed_context_size_error",
        )
    if options.fail_rate and state.random.random() < options.fail_rate:
        return _error(500, "simulated failure (--fail-rate)")
    max_tokens = int(body.get("max_tokens") or 64)
    state.short_requests += max_tokens <= 1
    # Continuing an unfinished assistant turn (prefill) goes on after a space.
    last = messages[-1] if messages else {}
    continuing = last.get("role") == "assistant" and bool(str(last.get("content", "")).strip())
    state.last_prefills.append(str(last.get("content", "")) if continuing else "")
    return StreamingResponse(
        _stream(state, prompt, max_tokens, fault, continuing, user_turn),
        media_type="text/event-stream",
    )


@asynccontextmanager
async def _slot(state: _State) -> AsyncIterator[None]:
    """Hold one of the slots, waiting for it if they are all taken.

    The most completions ever in flight at once (`max_in_flight`) is what a client
    sent: one that keeps to the slots never makes it exceed them. Those holding a
    slot (`max_active`) never exceed them, whatever the client does.
    """
    state.in_flight += 1
    state.max_in_flight = max(state.max_in_flight, state.in_flight)
    try:
        async with state.slots:
            state.active += 1
            state.max_active = max(state.max_active, state.active)
            try:
                yield
            finally:
                state.active -= 1
    finally:
        state.in_flight -= 1


async def _stream(
    state: _State,
    prompt: list[str],
    max_tokens: int,
    fault: _Fault | None,
    continuing: bool,
    user_turn: str,
) -> AsyncIterator[bytes]:
    options = state.options
    async with _slot(state):
        if fault and fault.mode == "hang":
            await asyncio.sleep(3600)
        cached = _cached_prefix(state, prompt)
        fresh = len(prompt) - cached
        await asyncio.sleep((options.first_token_ms + fresh * options.prompt_ms_per_token) / 1000)
        words = _LOOP_PHRASE if options.loop else _WORDS
        finish_reason = "length"
        if fault and fault.mode == "script":
            words = tuple(fault.text.split())
            if len(words) <= max_tokens:
                finish_reason = "stop"
            max_tokens = min(max_tokens, len(words))
        if fault and fault.finish_reason:
            finish_reason = fault.finish_reason
        interval = 1.0 / options.tokens_per_second
        started = time.monotonic()
        for index in range(max_tokens):
            if fault and fault.mode == "stall" and index == fault.after_tokens:
                await asyncio.sleep(3600)
            if fault and fault.mode == "malformed" and index == fault.after_tokens:
                yield b"data: {this is not json\n\n"
                return
            word = words[index % len(words)]
            yield _chunk(options.name, word if index == 0 and not continuing else " " + word)
            delay = started + (index + 1) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield _chunk(options.name, "", finish_reason)
        usage = {
            "prompt_tokens": len(prompt),
            "completion_tokens": max_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        final = {"id": "sim", "object": "chat.completion.chunk", "choices": [], "usage": usage}
        yield f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode()
        state.answered_user_turns.append(user_turn)


async def _faults(request: Request) -> Response:
    """Arm a fault for the next `count` requests: hang, stall, malformed, status, context,
    or script (say `text`); `finish_reason` replaces the one the stream ends with."""
    state: _State = request.app.state.simulation
    body = await request.json()
    state.faults.append(
        _Fault(
            mode=str(body["mode"]),
            remaining=int(body.get("count", 1)),
            after_tokens=int(body.get("after_tokens", 0)),
            status=int(body.get("status", 500)),
            text=str(body.get("text", "")),
            finish_reason=str(body["finish_reason"]) if body.get("finish_reason") else None,
        )
    )
    return JSONResponse({"armed": body})


async def _stats(request: Request) -> Response:
    state: _State = request.app.state.simulation
    return JSONResponse(
        {
            "requests": state.requests,
            "connections": len(state.connections),
            "in_flight": state.in_flight,
            "max_in_flight": state.max_in_flight,
            "active": state.active,
            "max_active": state.max_active,
            "prompt_tokens": state.prompt_tokens,
            "cached_tokens": state.cached_tokens,
            "short_requests": state.short_requests,
            "last_user_turns": list(state.last_user_turns),
            "answered_user_turns": list(state.answered_user_turns),
            "last_prefills": list(state.last_prefills),
        }
    )


async def _tokenize(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"tokens": list(range(len(_tokens(str(body.get("content", ""))))))})


async def _health(_request: Request) -> Response:
    return JSONResponse({"status": "ok", "simulation": True})


async def _models(request: Request) -> Response:
    state: _State = request.app.state.simulation
    model = {"id": state.options.name, "object": "model", "owned_by": "personae-simulation"}
    return JSONResponse({"object": "list", "data": [model]})


def simulated_backend_app(options: SimulationOptions) -> Starlette:
    """The ASGI app of one simulated backend (serve it with uvicorn)."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _completions, methods=["POST"]),
            Route("/tokenize", _tokenize, methods=["POST"]),
            Route("/health", _health),
            Route("/v1/models", _models),
            Route("/simulation/faults", _faults, methods=["POST"]),
            Route("/simulation/stats", _stats),
        ]
    )
    app.state.simulation = _State(
        options=options,
        slots=asyncio.Semaphore(options.slots),
        random=random.Random(options.seed),
    )
    return app
