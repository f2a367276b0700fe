"""Following a reply as it is written, one whole sentence at a time: what a voice call
speaks while the reply still streams.

The reply's tokens come from the chat's event log (the same events its stream
carries, read from a cursor taken before the send, so none is missed); a sentence
is handed over once the text after it shows it is complete. The reply's final
state gives its final text (a trimmed or filtered reply may end sooner than its
tokens did) and the rest is handed over then. Should the log have dropped events
(a full in-memory ring) or say nothing for a while, the stored reply is read
instead: its checkpointed text is the truth.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from personae.events.base import EventLog
from personae.services.chat_events import FINAL_STATES, chat_stream
from personae.storage.db import Database
from personae.storage.repos import chats as chats_repo

# A sentence ends at . ! ? … (or a run of them, with closing quotes or brackets)
# followed by whitespace; a line break ends one too.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+|\n+")
# How long the log may stay silent before the stored reply is read instead.
_QUIET_S = 2.0


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str


@dataclass(frozen=True)
class Waiting:
    """The reply waits in line for a backend."""

    position: int
    estimated_start_s: float | None


@dataclass(frozen=True)
class Ended:
    """The reply is final: `status` is complete, stopped, failed or filtered."""

    status: str


ReplyNews = Sentence | Waiting | Ended


def split_sentences(text: str) -> tuple[list[str], int]:
    """The complete sentences at the start of `text`, and where the rest begins."""
    sentences, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        sentence = text[start : end.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = end.end()
    return sentences, start


class ReplyFollower:
    def __init__(self, database: Database, events: EventLog) -> None:
        self._db = database
        self._events = events

    async def cursor(self, chat_id: str) -> str | None:
        """Where to follow a chat from: take it before sending the message."""
        return await self._events.last_id(chat_stream(chat_id))

    async def follow(
        self, chat_id: str, reply_id: str, after: str | None
    ) -> AsyncIterator[ReplyNews]:
        """The reply's sentences as they complete, its places in line, then `Ended`."""
        stream = chat_stream(chat_id)
        text, spoken, index = "", 0, 0
        while True:
            since = after
            events = await self._events.read(stream, since, wait_s=_QUIET_S)
            final: tuple[str, str] | None = None
            for event in events:
                after = event.id
                data = event.data
                if event.name == "token" and data.get("message_id") == reply_id:
                    text = text[: int(data["offset"])] + str(data["text"])
                elif event.name == "queue" and data.get("message_id") == reply_id:
                    yield Waiting(int(data["position"]), data.get("estimated_start_s"))
                elif event.name == "reply_state" and data.get("id") == reply_id:
                    text = str(data.get("content") or "")
                    if data.get("status") in FINAL_STATES:
                        final = (text, str(data["status"]))
            gap = since is not None and events and not await self._events.covers(stream, since)
            if final is None and (not events or gap):
                final = await self._stored_if_final(reply_id)
                if final is None and not events:
                    continue
            if final is not None:
                text = final[0]
            sentences, rest = split_sentences(text[spoken:])
            if final is not None and text[spoken + rest :].strip():
                sentences.append(text[spoken + rest :].strip())
                rest = len(text) - spoken
            for sentence in sentences:
                yield Sentence(index, sentence)
                index += 1
            spoken += rest
            if final is not None:
                yield Ended(final[1])
                return

    async def _stored_if_final(self, reply_id: str) -> tuple[str, str] | None:
        async with self._db.read() as tx:
            reply = await chats_repo.get_message(tx, reply_id)
        if reply is None:
            return "", "failed"  # deleted meanwhile: nothing more to say
        if reply.status in FINAL_STATES:
            return reply.content, reply.status
        return None
