"""`personae chat --room` against a real server (uvicorn on a free port, a SIMULATED
backend): joining by an invite link, speakers' names, /who, joining again by the
room's id, a revoked invite, and being removed while in the room."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import PASSWORD, serve_app, simulated_backend
from personae.app import create_app
from personae.settings import Settings


@dataclass
class Room:
    url: str
    owner: httpx.AsyncClient
    id: str

    async def invite(self) -> dict[str, Any]:
        response = await self.owner.post(f"/api/v1/rooms/{self.id}/invites", json={})
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def messages(self) -> list[dict[str, Any]]:
        response = await self.owner.get(f"/api/v1/chats/{self.id}/messages?limit=200")
        return list(response.json()["items"])


async def _register(api: httpx.AsyncClient, username: str) -> None:
    opened = await api.post(
        "/api/v1/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert opened.status_code == 201, opened.text
    api.headers["X-CSRF-Token"] = opened.json()["csrf_token"]


@pytest.fixture
async def room(make_settings: Callable[..., Settings]) -> AsyncIterator[Room]:
    async with simulated_backend(tokens_per_second=2000, first_token_ms=1) as backend:
        app = create_app(make_settings(backend_url=backend, max_reply_tokens=16))
        async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as owner:
            await _register(owner, "alice")
            ids = []
            for name in ("Bramble", "Juniper"):
                made = await owner.post("/api/v1/characters", json={"name": name})
                assert made.status_code == 201, made.text
                ids.append(made.json()["id"])
            created = await owner.post(
                "/api/v1/rooms",
                json={"title": "Riverside", "character_ids": ids, "turn_mode": "list"},
            )
            assert created.status_code == 201, created.text
            async with httpx.AsyncClient(base_url=url) as guest:
                await _register(guest, "bob")  # the account the terminal logs in with
            yield Room(url, owner, created.json()["id"])


async def _chat(url: str, *args: str, typed: str = "") -> tuple[int | None, str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "personae.cli", "chat", *args, "--url", url,
        env={**clean, "PERSONAE_USERNAME": "bob", "PERSONAE_PASSWORD": PASSWORD,
             "COLUMNS": "200"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(typed.encode()), 120)
    return process.returncode, out.decode(), err.decode()


async def test_join_by_invite_link_talk_and_list_who_is_here(room: Room) -> None:
    invite = await room.invite()
    link = f"{room.url}{invite['url']}"
    code, out, err = await _chat(room.url, "--room", link, typed="Hello, room!\n/who\n")
    assert code == 0, err
    assert 'room "Riverside"' in out
    # Both characters answered, in list order, each under its own name.
    replies = [m for m in await room.messages() if m["role"] == "assistant"]
    answered = [m for m in replies if m["status"] == "complete" and m["content"]]
    assert len(answered) >= 2
    for reply in answered[-2:]:
        assert reply["content"].strip().splitlines()[0][:20] in out
    assert out.index("Bramble: ") < out.index("Juniper: ")
    assert "people:" in out and "alice: owner" in out and "bob (you): member" in out
    assert "characters:" in out

    # The owner's message from elsewhere is shown under the owner's name next time,
    # joining by the room's id (bob is a member now), with bob's own as "you".
    sent = await room.owner.put(
        f"/api/v1/chats/{room.id}/messages/owner-1", json={"content": "Welcome, Bob!"}
    )
    assert sent.status_code == 202, sent.text
    code, again, err = await _chat(room.url, "--room", room.id, typed="/quit\n")
    assert code == 0, err
    assert "you: Hello, room!" in again
    assert "alice: Welcome, Bob!" in again


async def test_a_revoked_invite_or_no_room_is_one_line_and_exit_code_2(room: Room) -> None:
    invite = await room.invite()
    revoked = await room.owner.delete(f"/api/v1/rooms/{room.id}/invites/{invite['id']}")
    assert revoked.status_code in (200, 204), revoked.text
    code, _out, err = await _chat(room.url, "--room", invite["token"], typed="hi\n")
    assert code == 2 and "invite_revoked" in err and "Traceback" not in err
    code, _out, err = await _chat(room.url, "--room", "no-such-room", typed="hi\n")
    assert code == 2 and "no room 'no-such-room'" in err
    code, _out, err = await _chat(room.url, typed="hi\n")
    assert code == 2 and "--room" in err


async def test_removed_while_in_the_room_is_told_and_ends(room: Room) -> None:
    invite = await room.invite()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "personae.cli", "chat", "--room", invite["token"],
        "--url", room.url,
        env={**clean, "PERSONAE_USERNAME": "bob", "PERSONAE_PASSWORD": PASSWORD,
             "COLUMNS": "200"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    out: list[str] = []

    async def read_until(text: str) -> None:
        assert process.stdout is not None
        while not any(text in line for line in out):
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, f"the output ended before {text!r}: {''.join(out)}"
            out.append(line.decode())

    process.stdin.write(b"Hello, room!\n")
    await process.stdin.drain()
    await read_until("Juniper: ")  # both characters answered (list order)
    members = (await room.owner.get(f"/api/v1/rooms/{room.id}")).json()["members"]
    (bob,) = [m for m in members if m["username"] == "bob"]
    removed = await room.owner.delete(f"/api/v1/rooms/{room.id}/members/{bob['user_id']}")
    assert removed.status_code == 204, removed.text
    await read_until("the owner removed you from this room")
    process.stdin.close()
    assert await asyncio.wait_for(process.wait(), 60) == 2
    assert process.stderr is not None
    err = (await process.stderr.read()).decode()
    assert "removed you" in err and "Traceback" not in err
