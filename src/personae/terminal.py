"""`personae chat`: a terminal chat over the public API."""

from __future__ import annotations

import asyncio
import sys

from personae.client import ApiError, PersonaeClient
from personae.errors import ServiceUnavailable


async def _read_line(prompt: str) -> str | None:
    def _input() -> str | None:
        try:
            return input(prompt)
        except EOFError:
            return None

    return await asyncio.to_thread(_input)


async def run_chat(
    url: str,
    character_name: str,
    *,
    username: str | None,
    password: str | None,
    token: str | None,
) -> None:
    """Log in, open a chat with the character, then send lines and stream replies."""
    try:
        async with PersonaeClient(url, token=token) as client:
            if token is None:
                assert username is not None and password is not None
                await client.login(username, password)
            character = await client.find_character(character_name)
            chat = await client.start_chat(character["id"])
            for message in await client.history(chat["id"]):
                print(f"{character['name']}: {message['content']}\n")
            await _converse(client, chat["id"], character["name"])
    except ApiError as error:
        raise ServiceUnavailable(
            f"{error.detail} [{error.code}, request {error.request_id}]"
        ) from error
    except OSError as error:
        raise ServiceUnavailable(f"cannot reach {url}: {error}") from error


async def _converse(client: PersonaeClient, chat_id: str, name: str) -> None:
    while True:
        line = await _read_line("you> ")
        if line is None:
            print()
            return
        if not line.strip():
            continue
        sys.stdout.write(f"{name}: ")
        try:
            await _stream_reply(client, chat_id, line)
        except ApiError as error:
            if error.code != "content_refused":
                raise
            sys.stdout.write(
                f"\n[not sent: {error.body.get('reason')} ({error.body.get('category')}). "
                f"{error.detail}]"
            )
        sys.stdout.write("\n\n")


async def _stream_reply(client: PersonaeClient, chat_id: str, line: str) -> None:
    async for event in client.reply_stream(chat_id, line):
        if event.name == "token":
            sys.stdout.write(event.data["text"])
            sys.stdout.flush()
        elif event.name == "reply_state" and event.data["status"] == "failed":
            sys.stdout.write(
                f"\n[the reply failed ({event.data['error_code']}); your message is saved]"
            )
        elif event.name == "reply_state" and event.data["status"] == "filtered":
            sys.stdout.write(
                f"\n[the rest of the reply was filtered ({event.data['filtered_category']}): "
                "only the text before it is kept]"
            )
        elif event.name == "queue":
            sys.stdout.write(f"[waiting: place {event.data.get('position')}] ")
