"""What the chat stream says about messages: the data of its events."""

from __future__ import annotations

from typing import Any

from personae.events.base import EventLog
from personae.storage.repos.chats import MessageRecord

# Reply states: queued -> generating -> complete | stopped | failed | filtered
# (filtered: moderation ended it at a sentence; the text before it is kept).
QUEUED, GENERATING, COMPLETE, STOPPED, FAILED, FILTERED = (
    "queued",
    "generating",
    "complete",
    "stopped",
    "failed",
    "filtered",
)
FINAL_STATES = frozenset({COMPLETE, STOPPED, FAILED, FILTERED})
# Why a final reply ended (its `finish_reason`): the model ended it, the token limit
# cut it (trimmed to its last whole sentence, `cut_short`), or as its state says.
FINISH_STOP, FINISH_LENGTH = "stop", "length"
FINISH_OF_STATE = {STOPPED: "stopped", FILTERED: "filtered", FAILED: "failed"}
# Why a reply waits, when it is not just the line: no model answers (all down).
BACKEND_UNAVAILABLE = "backend_unavailable"


def chat_stream(chat_id: str) -> str:
    return f"chat:{chat_id}"


def message_data(message: MessageRecord) -> dict[str, Any]:
    """A message as the API shows it (the same fields as MessagePublic)."""
    speaker = message.labels.get("speaker")
    return {
        "id": message.id,
        "chat_id": message.chat_id,
        "role": message.role,
        "position": message.position,
        "swipe_index": message.swipe_index,
        "swipe_count": message.swipe_count,
        "selected": message.selected,
        "parent_id": message.parent_id,
        "client_id": message.client_id,
        "content": message.content,
        "status": message.status,
        "error_code": message.error_code,
        "retryable": message.retryable,
        "rating": message.rating,
        "labels": message.labels,
        "backend": message.backend,
        "fallback": bool(message.labels.get("fallback", False)),
        "quality": message.labels.get("quality"),
        "filtered_category": message.filtered_category,
        "finish_reason": message.finish_reason,
        "cut_short": message.cut_short,
        "author_id": message.author_id,
        "author_name": speaker if message.role == "user" else None,
        "character_id": message.character_id,
        "character_name": speaker if message.role == "assistant" else None,
        "created_at": message.created_at.isoformat(),
        "updated_at": message.updated_at.isoformat(),
    }


async def publish_reply_state(events: EventLog, reply: MessageRecord) -> None:
    """The state of a reply, with its whole text so far: enough to redraw it."""
    await events.publish(chat_stream(reply.chat_id), "reply_state", message_data(reply))


async def publish_message(events: EventLog, message: MessageRecord) -> None:
    """A message was sent, edited, deleted or had another swipe selected."""
    await events.publish(chat_stream(message.chat_id), "message", message_data(message))


async def publish_queue_place(
    events: EventLog,
    chat_id: str,
    reply_id: str,
    position: int,
    estimated_start_s: float | None,
    *,
    reason: str | None = None,
) -> None:
    """Where a reply waits in line, and when it should start; `reason` says why it
    waits when the answer is not just the line (BACKEND_UNAVAILABLE: no model answers,
    so there is no estimate)."""
    data: dict[str, object] = {
        "message_id": reply_id,
        "position": position,
        "estimated_start_s": estimated_start_s,
    }
    if reason is not None:
        data["reason"] = reason
    await events.publish(chat_stream(chat_id), "queue", data)
