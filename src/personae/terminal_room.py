"""`personae chat --room`: a group room in the terminal. Everyone's messages and every
character's replies are written as they end, each with its speaker's name; what you
type is sent to the room."""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from personae.client import ApiError, PersonaeClient, StreamEvent, Unreachable
from personae.terminal import ChatExit, Credentials, _ask_credentials, _read_line, _say
from personae.terminal_text import terminal_width, wrap_message

_RESUME_MESSAGES = 20
_FINAL = frozenset({"complete", "stopped", "failed", "filtered"})
# Read from a pipe, a line waits until the room is quiet (no reply being written and
# nothing heard for this long), so a script reads the answers to what it sent.
_QUIET_S = 1.5
_QUIET_MAX_S = 180.0
_RECONNECT_WAIT_S = 0.5
_RECONNECTS = 6

HELP = """commands:
  /help          this list
  /who           who is in the room: people (here or not) and characters
  /to NAME text  send text and have the character NAME answer it
  /auto N        let the characters talk among themselves for N replies
  /stop          stop auto-mode
  /quit          leave the terminal (you stay a member; Ctrl-D too)
anything else is sent to the room."""

_REVOKED = {
    "removed": "the owner removed you from this room",
    "left": "you left this room",
    "room_deleted": "the room was deleted",
}


async def run_room(url: str, wanted: str, credentials: Credentials) -> int:
    """The command for a room: its id, or an invite (URL or token) accepted first."""
    try:
        async with PersonaeClient(url, token=credentials.token) as client:
            await client.ping()
            if credentials.token is None:
                await client.login(*await _ask_credentials(credentials))
            room = await resolve_room(client, wanted)
            me = await client.me()
            session = RoomSession(client, room, str(me["id"]), sys.stdout, terminal_width())
            await session.run()
    except Unreachable as error:
        _say(f"{error}. Is `personae serve` running?")
        return 1
    except ApiError as error:
        _say(f"{error.detail} [{error.code}, request {error.request_id}]")
        return 2
    except ChatExit as error:
        _say(str(error))
        return error.code
    return 0


def invite_token(given: str) -> str | None:
    """The token of an invite URL (".../join/TOKEN"), None for anything else."""
    if "/join/" not in given:
        return None
    return given.rsplit("/join/", 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/") or None


async def resolve_room(client: PersonaeClient, given: str) -> dict[str, Any]:
    """A room id the viewer is in, else an invite (URL or bare token) to accept."""
    token = invite_token(given)
    if token is None:
        room = await client.room(given)
        if room is not None:
            return room
        token = given
    try:
        return await client.accept_invite(token)
    except ApiError as error:
        if error.code != "not_found":
            raise  # expired, revoked, used up: the server's words say which
        raise ChatExit(
            f"no room '{given}' that you are in, and no invite with this token"
        ) from None


@dataclass
class RoomSession:
    client: PersonaeClient
    room: dict[str, Any]
    me: str
    out: TextIO
    width: int
    shown: set[str] = field(default_factory=set)  # ids of messages written (final ones)
    writing: set[str] = field(default_factory=set)  # replies queued or being written
    revoked: str | None = None
    _events: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)
    _heard: float = 0.0

    @property
    def room_id(self) -> str:
        return str(self.room["id"])

    def say(self, text: str) -> None:
        self.out.write(wrap_message("", text, self.width) + "\n\n")
        self.out.flush()

    def speaker(self, message: dict[str, Any]) -> str:
        if message.get("role") == "assistant":
            for character in self.room["characters"]:
                if character["character_id"] == message.get("character_id"):
                    return str(character["name"])
            return str(message.get("character_name") or "?")
        if message.get("author_id") in (None, self.me):
            return "you"
        return str(message.get("author_name") or "someone")

    def show(self, message: dict[str, Any]) -> None:
        if message["id"] in self.shown:
            return
        self.shown.add(message["id"])
        prefix = f"{self.speaker(message)}: "
        self.out.write(wrap_message(prefix, str(message["content"]), self.width) + "\n")
        if message.get("status") == "failed":
            self.out.write(f"[the reply failed ({message.get('error_code')})]\n")
        elif message.get("status") == "stopped":
            self.out.write("[the reply was stopped; what was written is kept]\n")
        self.out.write("\n")
        self.out.flush()

    async def run(self) -> None:
        opened = asyncio.Event()
        listener = asyncio.create_task(self._listen(opened))
        try:
            await asyncio.wait(
                [listener, asyncio.create_task(opened.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if listener.done():
                listener.result()  # raises why the stream could not open
            self.say(f'(room "{self.room["title"]}": {self._who_line()}; /help lists the commands)')
            history = await self.client.history(self.room_id, limit=_RESUME_MESSAGES)
            for message in history:
                if message["role"] == "user" or message["status"] in _FINAL:
                    self.show(message)
            printer = asyncio.create_task(self._print())
            try:
                await self._converse()
            finally:
                printer.cancel()
        finally:
            listener.cancel()
        if self.revoked is not None:
            raise ChatExit(self.revoked, code=2)

    def _who_line(self) -> str:
        names = ", ".join(str(c["name"]) for c in self.room["characters"])
        return f"{len(self.room['members'])} people, characters {names}"

    async def _listen(self, opened: asyncio.Event) -> None:
        """The room's stream into the queue, reopened from its last id when it drops."""
        last_id: str | None = None
        failures = 0
        while self.revoked is None:
            try:
                async for event in self.client.events(self.room_id, last_id):
                    failures = 0
                    if event.name == "open":
                        opened.set()
                        continue
                    last_id = event.id or last_id
                    await self._events.put(event)
                    if event.name == "access_revoked":
                        return
            except (httpx.TransportError, Unreachable):
                failures += 1
                if failures >= _RECONNECTS:
                    raise
            except ApiError as error:
                # Gone from the room while the stream was down: as if it had said so.
                if error.status != 404 or not opened.is_set():
                    raise
                await self._events.put(StreamEvent(None, "access_revoked", {}))
                return
            await asyncio.sleep(_RECONNECT_WAIT_S * max(1, failures))

    async def _print(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            event = await self._events.get()
            self._heard = loop.time()
            self._apply(event)

    def _apply(self, event: StreamEvent) -> None:
        data = event.data
        if event.name in ("message", "reply_state"):
            if data.get("role") == "assistant":
                if data.get("status") in _FINAL:
                    self.writing.discard(data["id"])
                    self.show(data)
                else:
                    self.writing.add(data["id"])
            elif data.get("role") == "user" and data.get("author_id") != self.me:
                self.show(data)
        elif event.name == "member":
            self.say(f"[{data.get('username')} {data.get('change')}]")
        elif event.name == "auto":
            running = data.get("running")
            self.say(
                f"[auto-mode: {data.get('turns_left')} turns left]"
                if running
                else "[auto-mode stopped]"
            )
        elif event.name == "room":
            self.room = {**self.room, **data}
        elif event.name == "access_revoked":
            self.revoked = _REVOKED.get(str(data.get("reason")), "you are no longer in this room")
            self.say(f"[{self.revoked}]")

    async def _converse(self) -> None:
        piped = not sys.stdin.isatty()
        while self.revoked is None:
            line = await _read_line("you> ")
            if line is None:
                if piped:
                    await self._wait_quiet()
                self.out.write("\n")
                return
            if not line.strip():
                continue
            if line.startswith("/"):
                if not await self.command(line.split()):
                    return
            else:
                await self._send(line)
            if piped:
                await self._wait_quiet()

    async def _wait_quiet(self) -> None:
        """Until no reply is queued or being written and nothing came for a moment."""
        loop = asyncio.get_running_loop()
        start = self._heard = max(self._heard, loop.time())
        while loop.time() - start < _QUIET_MAX_S and self.revoked is None:
            if not self.writing and self._events.empty() and loop.time() - self._heard >= _QUIET_S:
                return
            await asyncio.sleep(0.1)

    async def command(self, words: list[str]) -> bool:
        """Run one /command; False when the session should end."""
        name, arguments = words[0].lower(), words[1:]
        if name in ("/quit", "/exit", "/q"):
            return False
        if name in ("/help", "/?"):
            self.say(HELP)
        elif name == "/who":
            await self._who()
        elif name == "/to" and len(arguments) >= 2:
            await self._send(" ".join(arguments[1:]), respond_with=self._character(arguments[0]))
        elif name == "/auto" and len(arguments) == 1 and arguments[0].isdigit():
            await self.client.start_auto(self.room_id, int(arguments[0]))
        elif name == "/stop":
            await self.client.stop_auto(self.room_id)
        else:
            self.say(f"[{name} needs other words, or is unknown: /help lists the commands]")
        return True

    def _character(self, name: str) -> str | None:
        for character in self.room["characters"]:
            if str(character["name"]).casefold() == name.casefold():
                return str(character["character_id"])
        self.say(f"[no character named {name} here: /who lists them]")
        return None

    async def _who(self) -> None:
        room = await self.client.room(self.room_id)
        if room is None:
            return
        self.room = room
        lines = ["people:"]
        for member in room["members"]:
            name = member.get("persona_name") or member.get("display_name") or member["username"]
            where = "here" if member.get("here") else "away"
            you = " (you)" if member["user_id"] == self.me else ""
            lines.append(f"  {name}{you}: {member['role']}, {where}")
        lines.append("characters:")
        lines.extend(f"  {character['name']}" for character in room["characters"])
        self.out.write("\n".join(lines) + "\n\n")
        self.out.flush()

    async def _send(self, text: str, *, respond_with: str | None = None) -> None:
        try:
            accepted = await self.client.send(
                self.room_id, text, uuid.uuid4().hex, respond_with=respond_with
            )
        except ApiError as error:
            self.say(f"[not sent: {error.detail} ({error.code})]")
            return
        self.shown.add(accepted["message"]["id"])
        reply = accepted.get("reply")
        # Its end may have been written already (a fast reply): then it is not waited for.
        if reply and reply["id"] not in self.shown and reply.get("status") not in _FINAL:
            self.writing.add(reply["id"])
