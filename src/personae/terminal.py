"""`personae chat`: a terminal chat over the public API."""

from __future__ import annotations

import asyncio
import getpass
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from personae.client import ApiError, PersonaeClient, StreamEvent, Unreachable
from personae.terminal_text import StreamWrapper, terminal_width, wrap_message

# Messages shown when a chat is resumed: enough to remember where it was.
_RESUME_MESSAGES = 20
_CANDIDATES_SHOWN = 10
_STARS = range(1, 5)  # PUT /messages/{id}/rating takes 1 to 4 stars

HELP = """commands:
  /help       this list
  /swipe      another reply in place of the last one
  /rate N     rate the last reply, 1 to 4 stars
  /continue   the character goes on from the end of the last reply
  /quit       leave (Ctrl-D too)
anything else is sent to {name}."""


class ChatExit(Exception):
    """Ends `personae chat` with one line on stderr and an exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        self.code = code
        super().__init__(message)


@dataclass
class Credentials:
    username: str | None = None
    password: str | None = None
    token: str | None = None


async def run_chat(url: str, wanted: str, credentials: Credentials, *, new: bool = False) -> int:
    """The whole command: returns its exit code (0, 1 when the server cannot be
    reached, 2 for anything else that stops it), having said why on stderr."""
    try:
        async with PersonaeClient(url, token=credentials.token) as client:
            await client.ping()
            if credentials.token is None:
                await client.login(*await _ask_credentials(credentials))
            character = await pick_character(client, wanted)
            session = await _open_session(client, character, new=new)
            await session.converse()
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


def _say(line: str) -> None:
    print(f"personae: {line}", file=sys.stderr)


async def _ask_credentials(given: Credentials) -> tuple[str, str]:
    def ask() -> tuple[str, str]:
        try:
            username = given.username or input("username: ")
            password = given.password or getpass.getpass("password: ")
        except EOFError:
            raise ChatExit("no username and password given") from None
        return username, password

    return await asyncio.to_thread(ask)


async def pick_character(client: PersonaeClient, wanted: str) -> dict[str, Any]:
    """The character whose id is `wanted`, or the one whose name is, ignoring case.
    Anything else (no such name, or several) is a ChatExit naming the candidates:
    never another character than the one asked for."""
    by_id = await client.character(wanted)
    if by_id is not None:
        return by_id
    found: dict[str, dict[str, Any]] = {}
    for mine in (True, False):
        for character in await client.search_characters(wanted, mine=mine):
            found.setdefault(character["id"], character)
    exact = [c for c in found.values() if c["name"].casefold() == wanted.casefold()]
    if len(exact) == 1:
        return exact[0]
    if exact:
        raise ChatExit(f"several characters are named '{wanted}'; give one's id:" + _listed(exact))
    if found:
        raise ChatExit(
            f"no character is named '{wanted}'. Did you mean one of these?"
            + _listed(list(found.values()))
        )
    raise ChatExit(f"no character '{wanted}' (not an id, and no name holds it)")


def _listed(characters: list[dict[str, Any]]) -> str:
    lines = [f"\n  {c['name']}  (id {c['id']})" for c in characters[:_CANDIDATES_SHOWN]]
    more = len(characters) - _CANDIDATES_SHOWN
    return "".join(lines) + (f"\n  … and {more} more" if more > 0 else "")


async def _open_session(
    client: PersonaeClient, character: dict[str, Any], *, new: bool
) -> ChatSession:
    session = ChatSession(client, character["name"], sys.stdout, terminal_width())
    chat = None if new else await client.last_chat_with(character["id"])
    if chat is None:
        chat = await client.start_chat(character["id"])
        session.say(f"(a new chat with {character['name']}; /help lists the commands)")
    else:
        session.say(
            f'(your last chat with {character["name"]}, "{chat["title"]}"; '
            "`--new` starts another; /help lists the commands)"
        )
    session.chat_id = chat["id"]
    for message in await client.history(chat["id"], limit=_RESUME_MESSAGES):
        session.show(message)
    return session


@dataclass
class ChatSession:
    client: PersonaeClient
    name: str
    out: TextIO
    width: int
    chat_id: str = ""
    last_reply: dict[str, Any] | None = field(default=None)

    def say(self, text: str) -> None:
        """A line of the client's own (a notice, an answer to a command), wrapped."""
        self.out.write(wrap_message("", text, self.width) + "\n\n")

    def show(self, message: dict[str, Any]) -> None:
        speaker = self.name if message["role"] == "assistant" else "you"
        self.out.write(wrap_message(f"{speaker}: ", message["content"], self.width) + "\n\n")
        if message["role"] == "assistant":
            self.last_reply = message

    async def converse(self) -> None:
        while True:
            line = await _read_line("you> ")
            if line is None:
                self.out.write("\n")
                return
            if not line.strip():
                continue
            if line.startswith("/"):
                if not await self.command(line.split()):
                    return
                continue
            await self._send(line)

    async def command(self, words: list[str]) -> bool:
        """Run one /command; False when the chat should end."""
        name, arguments = words[0].lower(), words[1:]
        if name in ("/quit", "/exit", "/q"):
            return False
        if name in ("/help", "/?"):
            self.say(HELP.format(name=self.name))
        elif name == "/rate":
            await self._rate(arguments)
        elif name in ("/swipe", "/continue"):
            await self._again(name)
        else:
            self.say(f"[unknown command {name}: /help lists them]")
        return True

    async def _rate(self, arguments: list[str]) -> None:
        if len(arguments) != 1 or not arguments[0].isdigit() or int(arguments[0]) not in _STARS:
            self.say("[/rate takes a number of stars, 1 to 4: /rate 3]")
            return
        if self.last_reply is None:
            self.say("[there is no reply to rate yet]")
            return
        stars = int(arguments[0])
        await self.client.rate(self.last_reply["id"], stars)
        self.say(f"[rated {'★' * stars}{'☆' * (4 - stars)} ({stars} of 4)]")

    async def _again(self, command: str) -> None:
        if self.last_reply is None:
            self.say(f"[there is no reply to {command[1:]} yet]")
            return
        reply_id = self.last_reply["id"]
        if command == "/swipe":
            await self._stream(lambda: self.client.swipe(reply_id))
        else:
            await self._stream(lambda: self.client.continue_reply(reply_id), continued=True)

    async def _send(self, line: str) -> None:
        async def start() -> dict[str, Any]:
            return dict((await self.client.send(self.chat_id, line, client_id))["reply"])

        client_id = uuid.uuid4().hex
        try:
            await self._stream(start)
        except ApiError as error:
            if error.code != "content_refused":
                raise
            self.say(
                f"[not sent: {error.body.get('reason')} ({error.body.get('category')}). "
                f"{error.detail}]"
            )

    async def _stream(
        self, start: Callable[[], Awaitable[dict[str, Any]]], *, continued: bool = False
    ) -> None:
        """Start a reply (send, swipe or continue) and write it as it streams."""
        writer = ReplyWriter(self.out, self.width, self.name, continued=continued)
        try:
            async for event in self.client.follow(self.chat_id, start):
                writer.apply(event)
        except ApiError as error:
            if not writer.started:
                raise
            writer.note(f"the reply stopped: {error.detail} [{error.code}]")
        finally:
            writer.finish()
        self.last_reply = writer.reply or self.last_reply


async def _read_line(prompt: str) -> str | None:
    """A typed line, None at the end of input. Read from a pipe, the line is echoed
    after the prompt, so the output reads as the conversation did."""

    def _input() -> str | None:
        try:
            line = input(prompt)
        except EOFError:
            return None
        if not sys.stdin.isatty():
            print(line)
        return line

    return await asyncio.to_thread(_input)


class ReplyWriter:
    """One reply on the terminal: its tokens wrapped as they come, written once each
    even when a reconnected stream sends some again, then what became of it."""

    def __init__(self, out: TextIO, width: int, name: str, *, continued: bool) -> None:
        self._out = out
        self._name = name
        self._continued = continued
        self._width = width
        self._wrapper: StreamWrapper | None = None
        self._written: int | None = None  # characters of the reply's text shown so far
        self._base = 0  # where the new text starts (a continuation's: the old text's end)
        self.reply: dict[str, Any] | None = None

    @property
    def started(self) -> bool:
        return self.reply is not None

    def apply(self, event: StreamEvent) -> None:
        if event.name == "accepted":
            self.reply = event.data
            self._base = len(str(event.data.get("content") or "")) if self._continued else 0
            prefix = f"{self._name} (continued): " if self._continued else f"{self._name}: "
            self._out.write(prefix)
            self._wrapper = StreamWrapper(self._out, self._width, column=len(prefix))
        elif event.name == "token":
            self._token(int(event.data.get("offset", self._written or 0)), event.data["text"])
        elif event.name == "queue":
            position = event.data.get("position")
            if self._wrapper is not None:
                self._wrapper.write(f"[waiting: place {position}] " if position else "[waiting] ")
        elif event.name == "reply_state":
            self._state(event.data)

    def _token(self, offset: int, text: str) -> None:
        if self._written is None:
            self._written = offset  # a continuation's tokens start at the old text's end
        skip = max(0, self._written - offset)
        if skip < len(text) and self._wrapper is not None:
            self._wrapper.write(text[skip:])
            self._written = offset + len(text)

    def _state(self, reply: dict[str, Any]) -> None:
        assert self.reply is not None
        self.reply = {**self.reply, **reply}
        content = str(reply.get("content") or "")
        if self._written is None:
            self._written = self._base
        if len(content) > self._written:  # the stream lost tokens: the reply has them
            self._token(self._written, content[self._written :])
        status = reply["status"]
        if status == "failed":
            self.note(f"the reply failed ({reply.get('error_code')}); your message is saved")
        elif status == "filtered":
            self.note(
                f"the rest of the reply was filtered ({reply.get('filtered_category')}): "
                "only the text before it is kept"
            )
        elif status == "stopped":
            self.note("the reply was stopped; what was written is kept")
        elif reply.get("cut_short"):
            self.note("cut short at the length limit: /continue goes on")

    def note(self, text: str) -> None:
        if self._wrapper is not None:
            self._wrapper.finish()
        self._out.write("\n" + wrap_message("", f"[{text}]", self._width))

    def finish(self) -> None:
        if self._wrapper is not None:
            self._wrapper.finish()
        self._out.write("\n\n")
        self._out.flush()
