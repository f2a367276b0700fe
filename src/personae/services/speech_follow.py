"""Following a reply's text as it is written, sentence by sentence, for read-aloud.

A late reader takes the chat stream's cursor first, then the reply's stored text
(the last checkpoint), then the `token` events after the cursor: each token names
its `offset` in the reply's text, so text the checkpoint already holds is not
counted twice. A token past the end of the known text means a gap (tokens written
between the checkpoint and the cursor): the text is read again from the database
until the checkpoints catch up. A `reply_state` event carries the whole text
(the final one when the reply ends: trimmed, or cut before a filtered sentence).

A sentence is given out only when the reply has gone on past its end (a later
token, or a stored or final text): the moderation gate checks each sentence before
the next token is written, so no sentence the gate would refuse is ever spoken.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from personae.events.base import EventLog
from personae.services.chat_events import FINAL_STATES, chat_stream
from personae.storage.db import Database
from personae.storage.repos import chats as chats_repo
from personae.storage.repos.chats import MessageRecord
from personae.voice.sentences import Sentence, SentenceSplitter

# How long one read of the stream waits before the stored text is looked at again.
_WAIT_S = 2.0
# A reply that shows no change for this long is not followed any more.
_IDLE_GIVE_UP_S = 600.0


class MessageChanged(Exception):
    """The message was edited, deleted or written again: what was spoken is stale."""


@dataclass
class _Text:
    known: str = ""
    settled: int = 0  # how far the text is checked by the gate and gone on past
    final: bool = False

    def take(self, content: str, final: bool) -> None:
        """A whole text, stored or published: all of it is settled."""
        self.known, self.settled, self.final = content, len(content), final

    def token(self, offset: int, piece: str) -> bool:
        """A token; False when it leaves a gap after the known text."""
        if offset > len(self.known):
            return False
        if offset + len(piece) > len(self.known):
            self.known = self.known[:offset] + piece
        # The gate checked all the text before this token before it was written.
        self.settled = max(self.settled, min(offset, len(self.known)))
        return True


def matches(message: MessageRecord, sentence: Sentence) -> bool:
    """Whether a message's text still holds `sentence` where it was read. While the
    reply is being written, its stored text lags the stream by up to a checkpoint: a
    stored text that stops before the sentence's end, agreeing with it so far, holds
    it (the reply cannot be edited meanwhile; `_finish` checks the final text)."""
    stored = message.content[sentence.start : sentence.end]
    if stored == sentence.text:
        return True
    writing = message.status not in FINAL_STATES
    return writing and len(message.content) < sentence.end and sentence.text.startswith(stored)


class ReplyFollower:
    """The sentences of one reply, in order, as they are completed."""

    def __init__(
        self, database: Database, events: EventLog, *, message_id: str, chat_id: str, limit: int
    ) -> None:
        self._db = database
        self._events = events
        self._message_id = message_id
        self._stream = chat_stream(chat_id)
        self._limit = limit
        self.final_text: str | None = None  # set once the whole text to speak is known

    async def _stored(self) -> MessageRecord:
        async with self._db.read() as tx:
            message = await chats_repo.get_message(tx, self._message_id)
        if message is None:
            raise MessageChanged("the message is gone")
        return message

    async def sentences(self) -> AsyncIterator[Sentence]:
        """Every sentence of the reply (its first `limit` characters), each once."""
        splitter = SentenceSplitter()
        cursor = await self._events.last_id(self._stream)
        message = await self._stored()
        text = _Text()
        text.take(message.content, message.status in FINAL_STATES)
        changed_at = time.monotonic()
        while True:
            if text.final or len(text.known) >= self._limit:
                self.final_text = text.known[: self._limit]
                for sentence in splitter.finish(self.final_text):
                    yield sentence
                return
            for sentence in splitter.feed(text.known, text.settled):
                yield sentence
            before = (text.known, text.final)
            cursor, look_again = await self._read(cursor, text)
            if look_again:
                message = await self._stored()
                if len(message.content) >= len(text.known) or message.status in FINAL_STATES:
                    text.take(message.content, message.status in FINAL_STATES)
            if (text.known, text.final) != before:
                changed_at = time.monotonic()
            elif time.monotonic() - changed_at > _IDLE_GIVE_UP_S:
                raise MessageChanged("the reply shows no progress")

    async def _read(self, cursor: str | None, text: _Text) -> tuple[str | None, bool]:
        """Apply the stream's next events to `text`; returns the new cursor and whether
        the stored text must be read (a gap, a change, or nothing heard for a while)."""
        events = await self._events.read(self._stream, cursor, wait_s=_WAIT_S)
        look_again = not events
        for event in events:
            cursor = event.id
            data = event.data
            if (data.get("message_id") or data.get("id")) != self._message_id:
                continue
            if event.name == "token":
                if not text.token(int(data.get("offset", 0)), str(data.get("text", ""))):
                    look_again = True
            elif event.name == "reply_state":
                text.take(str(data.get("content") or ""), data.get("status") in FINAL_STATES)
            elif event.name == "message":
                # Edited, deleted or another swipe shown: stale unless the text is the same.
                stored = await self._stored()
                if not stored.content.startswith(text.known[: text.settled]):
                    raise MessageChanged("the message was edited")
        return cursor, look_again
