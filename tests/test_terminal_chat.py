"""`personae chat` against a real server (uvicorn on a free port, a SIMULATED backend):
resuming, --new, the commands, wrapping, exact names, and a server that is not there."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from conftest import PASSWORD, serve_app, simulated_backend
from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.chats import ReplyPublic
from personae.app import create_app
from personae.settings import Settings
from personae.terminal_text import StreamWrapper, wrap_message

CONTINUE_PATH = "/api/v1/messages/{message_id}/continue"
WIDTH = 32


@dataclass
class Server:
    url: str
    api: httpx.AsyncClient
    continued: list[str] = field(default_factory=list)

    async def character(self, name: str, **extra: Any) -> str:
        response = await self.api.post("/api/v1/characters", json={"name": name, **extra})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def chats(self) -> list[dict[str, Any]]:
        return list((await self.api.get("/api/v1/chats")).json()["items"])

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(f"/api/v1/chats/{chat_id}/messages")
        return list(response.json()["items"])


def _continue_route(app: Any, calls: list[str]) -> None:
    """POST /messages/{id}/continue as its contract says (202, then the reply streams
    like a swipe's), for a tree where the real route has not landed yet."""
    if any(getattr(route, "path", None) == CONTINUE_PATH for route in app.routes):
        return

    async def go_on(message_id: str, user: CurrentUser, container: ContainerDep) -> ReplyPublic:
        calls.append(message_id)
        reply, _queue = await container.messages.swipe(user, message_id)
        return ReplyPublic.model_validate(reply)

    app.router.routes.insert(0, APIRoute(CONTINUE_PATH, go_on, methods=["POST"], status_code=202))


@pytest.fixture
async def server(make_settings: Callable[..., Settings]) -> AsyncIterator[Server]:
    async with simulated_backend(tokens_per_second=2000, first_token_ms=1) as backend:
        app = create_app(make_settings(backend_url=backend, max_reply_tokens=24))
        calls: list[str] = []
        _continue_route(app, calls)
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as api:
            opened = await api.post(
                "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
            )
            api.headers["X-CSRF-Token"] = opened.json()["csrf_token"]
            yield Server(url, api, calls)


@dataclass
class Run:
    code: int | None
    out: str
    err: str


async def _chat(url: str, *args: str, typed: str = "") -> Run:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "personae.cli", "chat", *args, "--url", url,
        env={**clean, "PERSONAE_USERNAME": "alice", "PERSONAE_PASSWORD": PASSWORD,
             "COLUMNS": str(WIDTH)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(typed.encode()), 120)
    return Run(process.returncode, out.decode(), err.decode())


def _words(text: str) -> list[str]:
    return text.split()


async def test_a_server_that_is_not_there_is_one_line_and_exit_code_1() -> None:
    url = "http://127.0.0.1:9"  # the discard port: nothing listens
    run = await _chat(url, "Bramble")
    assert run.code == 1
    assert run.err == (
        f"personae: cannot reach the server at {url} (connection refused). "
        "Is `personae serve` running?\n"
    )
    assert run.out == ""


async def test_the_name_must_match_exactly_or_the_candidates_are_listed(server: Server) -> None:
    bramble = await server.character("Bramble", first_message="Tea?")
    await server.character("Bramblewood", first_message="Hm.")
    loose = await _chat(server.url, "brambl", typed="hello\n")
    assert loose.code == 2
    assert "no character is named 'brambl'" in loose.err
    assert f"Bramble  (id {bramble})" in loose.err and "Bramblewood" in loose.err
    assert "Traceback" not in loose.err
    assert await server.chats() == []  # nothing was opened with a guess

    exact = await _chat(server.url, "BRAMBLE", typed="/quit\n")
    assert exact.code == 0, exact.err
    assert [chat["character_id"] for chat in await server.chats()] == [bramble]
    by_id = await _chat(server.url, bramble, typed="/quit\n")
    assert by_id.code == 0 and "Bramble: Tea?" in by_id.out

    await server.character("Twin")
    await server.character("twin")
    twins = await _chat(server.url, "Twin", typed="/quit\n")
    assert twins.code == 2 and "several characters are named 'Twin'" in twins.err
    nothing = await _chat(server.url, "Nobody", typed="/quit\n")
    assert nothing.code == 2 and "no character 'Nobody'" in nothing.err


async def test_it_resumes_the_last_chat_unless_new_and_wraps_at_words(server: Server) -> None:
    await server.character("Bramble", first_message="Tea? " * 12)
    first = await _chat(server.url, "Bramble", typed="Hello, fox!\n")
    assert first.code == 0, first.err
    assert "(a new chat with Bramble" in first.out
    (chat,) = await server.chats()
    _greeting, sent, reply = await server.messages(chat["id"])
    assert sent["content"] == "Hello, fox!" and reply["status"] == "complete"
    lines = first.out.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    # The greeting and the streamed reply, wrapped between whole words only.
    assert _words(first.out).count("Tea?") == 12
    assert " ".join(_words(reply["content"])) in " ".join(_words(first.out))

    again = await _chat(server.url, "bramble", typed="/quit\n")
    assert again.code == 0, again.err
    assert "your last chat with Bramble" in again.out
    assert "you: Hello, fox!" in again.out
    assert " ".join(_words(reply["content"])) in " ".join(_words(again.out))
    assert len(await server.chats()) == 1

    fresh = await _chat(server.url, "Bramble", "--new", typed="")
    assert fresh.code == 0, fresh.err
    assert "you: Hello" not in fresh.out
    assert len(await server.chats()) == 2


async def test_help_swipe_rate_and_continue(server: Server) -> None:
    await server.character("Bramble", first_message="Tea?")
    typed = "/help\nHello!\n/swipe\n/rate 9\n/rate 3\n/continue\n/dance\n/quit\nnot sent\n"
    run = await _chat(server.url, "Bramble", typed=typed)
    assert run.code == 0, run.err
    flat = " ".join(_words(run.out))  # as read, whatever the wrapping
    for command in ("/help", "/swipe", "/rate N", "/continue", "/quit"):
        assert command in flat
    assert "/rate takes a number of stars, 1 to 4" in flat
    assert "rated ★★★☆ (3 of 4)" in flat
    assert "Bramble (continued): " in run.out
    assert "unknown command /dance" in flat
    (chat,) = await server.chats()
    messages = await server.messages(chat["id"])
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Hello!"]
    swiped = messages[-1]
    # /swipe wrote a second reply; /rate rated it; /continue went on from it.
    assert swiped["swipe_count"] >= 2
    if server.continued:  # the stand-in route: it records what it was asked to continue
        assert len(server.continued) == 1


async def test_rating_and_swiping_before_any_reply_say_so(server: Server) -> None:
    await server.character("Quiet")
    run = await _chat(server.url, "Quiet", typed="/rate 2\n/swipe\n/continue\n")
    assert run.code == 0, run.err
    flat = " ".join(_words(run.out))
    for what in ("rate", "swipe", "continue"):
        assert f"[there is no reply to {what} yet]" in flat


TEXT = (
    "The tea is warm and the rain taps on the window.\n\n"
    "*She smiles* and pours   another cup, a-very-long-hyphenated-word-indeed here.\nEnd."
)


@pytest.mark.parametrize("chunk", [1, 3, 7, len(TEXT)])
def test_a_streamed_reply_wraps_like_the_whole_text_whatever_the_pieces(chunk: int) -> None:
    out = io.StringIO()
    wrapper = StreamWrapper(out, 24, column=len("Bramble: "))
    out.write("Bramble: ")
    for start in range(0, len(TEXT), chunk):
        wrapper.write(TEXT[start : start + chunk])
    wrapper.finish()
    lines = out.getvalue().split("\n")
    assert max(len(line) for line in lines) <= 24
    assert out.getvalue() == wrap_message("Bramble: ", TEXT, 24)
    assert "" in lines  # the paragraph break is kept


def test_a_word_longer_than_the_line_is_cut_not_lost() -> None:
    out = io.StringIO()
    wrapper = StreamWrapper(out, 10)
    wrapper.write("ab " + "x" * 25 + " cd")
    wrapper.finish()
    assert out.getvalue().split("\n") == ["ab xxxxxxx", "xxxxxxxxxx", "xxxxxxxx", "cd"]
