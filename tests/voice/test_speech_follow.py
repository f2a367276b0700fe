"""A sentence read from the stream, checked against the stored message before its clip
is kept: the stored text of a reply being written lags the stream by a checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from personae.services.speech_follow import matches
from personae.storage.repos.chats import MessageRecord
from personae.voice.sentences import Sentence

TEXT = "The storm came. The keeper climbed the stairs. He lit the lamp."
SECOND = Sentence(16, 46, "The keeper climbed the stairs.")


def _message(content: str, status: str) -> MessageRecord:
    now = datetime.now(UTC)
    return MessageRecord(
        id="m", chat_id="c", author_id=None, role="assistant", position=1, swipe_index=0,
        selected=True, parent_id=None, client_id=None, content_hash=None, content=content,
        status=status, error_code=None, retryable=False, rating=None, labels={},
        backend=None, generation=None, created_at=now, updated_at=now,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "status", "held"),
    [
        (TEXT, "complete", True),
        (TEXT[:50], "generating", True),  # stored past the sentence
        (TEXT[:30], "generating", True),  # the checkpoint stops inside it
        (TEXT[:10], "generating", True),  # ... or before it
        (TEXT[:30], "complete", False),  # a finished reply must hold all of it
        (TEXT[:16] + "The keeper ran", "generating", False),  # stored text disagrees
        ("Something else entirely, much longer than before.", "complete", False),
    ],
)
def test_a_sentence_is_held_by_a_lagging_stored_text_only_while_it_is_written(
    content: str, status: str, held: bool
) -> None:
    assert TEXT[SECOND.start : SECOND.end] == SECOND.text
    assert matches(_message(content, status), SECOND) is held
