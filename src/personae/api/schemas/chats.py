"""Bodies of the chat and message endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from personae.api.schemas.common import Input, Output
from personae.images import SIZES
from personae.services.avatars import image_url, image_urls, shown_avatar
from personae.services.wellbeing import AI_NOTICE

# Replies: queued -> generating -> complete | stopped | failed | filtered. A user
# message is complete, or waiting when the waiting room refused it (send it again).
ReplyStatus = Literal[
    "queued", "generating", "complete", "stopped", "failed", "filtered", "waiting"
]
# Why a reply ended: the model ended it (stop), the token limit cut it (length),
# the user stopped it (stopped), the content rules or the model's filter (filtered),
# or it failed (failed).
FinishReason = Literal["stop", "length", "stopped", "filtered", "failed"]


class PersonaIn(Input):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=4000)


class ChatCreate(Input):
    character_id: str = Field(min_length=1, max_length=64)
    persona: PersonaIn | None = None
    persona_id: str | None = Field(default=None, min_length=1, max_length=64)


class ChatUpdate(Input):
    title: str | None = Field(default=None, min_length=1, max_length=128)
    persona_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _something(self) -> ChatUpdate:
        if self.title is None and self.persona_id is None:
            raise ValueError("send title, persona_id or both")
        return self


class ChatPublic(Output):
    id: str
    character_id: str
    character_name: str
    title: str
    persona_name: str
    persona_id: str | None = None
    character_rating: str = Field(default="general", description="general, teen or mature")
    kind: Literal["direct", "room"] = Field(
        default="direct", description="room: a group room (GET /api/v1/rooms/{id})."
    )
    ai_notice: str = Field(
        default=AI_NOTICE, description="Show this in the chat: the character is an AI."
    )
    created_at: datetime
    updated_at: datetime


class ChatSummaryPublic(ChatPublic):
    """A chat as the list of chats shows it."""

    character_avatar: str | None = Field(
        default=None, description="The character's avatar, as its `avatar` field."
    )
    character_avatar_urls: dict[str, str] | None = Field(
        default=None,
        description="Its stored picture's sizes, as the character's `avatar_urls`.",
    )
    last_message: str | None = Field(
        default=None,
        description="The start (up to 200 characters, on one line) of the chat's last "
        "message with text; null in a chat without one.",
    )
    last_message_role: str | None = Field(
        default=None, description="Who wrote it: user or assistant."
    )
    last_message_at: datetime | None = Field(default=None, description="When it was sent.")

    # A stored picture is shown by its URLs; an avatar stored before avatars were
    # checked is shown as none (both as on characters).
    @model_validator(mode="before")
    @classmethod
    def _avatar(cls, record: Any) -> Any:
        if isinstance(record, dict):
            return record
        values = {name: getattr(record, name) for name in cls.model_fields if hasattr(record, name)}
        image_id = getattr(record, "character_avatar_image_id", None)
        values["character_avatar_urls"] = image_urls(image_id)
        values["character_avatar"] = (
            image_url(image_id, SIZES[-1])
            if image_id
            else shown_avatar(values.get("character_avatar"))
        )
        return values


class ChatPage(Output):
    items: list[ChatSummaryPublic]
    limit: int
    offset: int


class MessagePublic(Output):
    id: str
    chat_id: str
    role: str
    position: int
    swipe_index: int
    swipe_count: int
    selected: bool
    parent_id: str | None
    client_id: str | None
    content: str
    status: ReplyStatus
    error_code: str | None
    retryable: bool
    rating: int | None
    labels: dict[str, Any]
    backend: str | None = Field(default=None, description="The backend that wrote the reply.")
    fallback: bool = Field(default=False, description="Written by a fallback model.")
    quality: str | None = Field(
        default=None, description="ok, or why the quality gate flagged the reply."
    )
    filtered_category: str | None = Field(
        default=None, description="The moderation category that ended a filtered reply."
    )
    finish_reason: FinishReason | None = Field(
        default=None,
        description="Why the reply ended: stop, length, stopped, filtered or failed "
        "(null while it is written, for a user's message, and for replies stored "
        "before this was recorded).",
    )
    cut_short: bool = Field(
        default=False,
        description="The token limit cut the reply; it was trimmed to its last whole "
        "sentence. POST /api/v1/messages/{id}/continue goes on from its end.",
    )
    author_id: str | None = Field(
        default=None, description="Who sent a user message (in a room, one of its people)."
    )
    author_name: str | None = Field(
        default=None, description="In a room: the persona name a user message was sent under."
    )
    character_id: str | None = Field(
        default=None, description="In a room: the character who wrote a reply."
    )
    character_name: str | None = Field(
        default=None, description="In a room: that character's name when it wrote it."
    )
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _from_labels(cls, value: Any) -> Any:
        labels = getattr(value, "labels", None)
        if isinstance(labels, dict):
            speaker = labels.get("speaker")
            role = getattr(value, "role", None)
            return {
                **{name: getattr(value, name) for name in cls.model_fields if hasattr(value, name)},
                "fallback": bool(labels.get("fallback", False)),
                "quality": labels.get("quality"),
                "author_name": speaker if role == "user" else None,
                "character_name": speaker if role == "assistant" else None,
            }
        return value


class MessagePage(Output):
    items: list[MessagePublic]
    has_more: bool


class SendRequest(Input):
    content: str = Field(min_length=1, max_length=100_000)
    respond_with: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="In a room: the character who answers (needed in manual turn order).",
    )
    respond: bool = Field(
        default=True, description="In a room: false stores the message and plans no reply."
    )


class QueuePublic(Output):
    position: int
    estimated_start_s: float | None
    # "backend_unavailable" while no model answers (the reply starts when one is back).
    reason: str | None = None


class ReplyPublic(MessagePublic):
    queue: QueuePublic | None = None


class CrisisResourcePublic(Output):
    name: str
    contact: str
    url: str


class ContentWarningPublic(Output):
    category: str
    reason: str


class PlannedTurnPublic(Output):
    character_id: str
    name: str
    reason: str


class SendAccepted(Output):
    message: MessagePublic
    reply: ReplyPublic | None = Field(
        description="The reply now queued. In a room it is null when no reply starts at once "
        "(another is being written, or none was asked): `turns` says who will speak."
    )
    turns: list[PlannedTurnPublic] = Field(
        default_factory=list, description="In a room: the turns this message planned."
    )
    # Categories the content rules allow here with a warning.
    warnings: list[ContentWarningPublic] = Field(default_factory=list)
    # Whom to reach, when the message shows intent of self-harm (else empty).
    crisis_resources: list[CrisisResourcePublic] = Field(default_factory=list)


class MessageUpdate(Input):
    """Either new text, or the index of the swipe to show."""

    content: str | None = Field(default=None, min_length=1, max_length=100_000)
    swipe: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> MessageUpdate:
        if (self.content is None) == (self.swipe is None):
            raise ValueError("send either content or swipe")
        return self


class RatingIn(Input):
    stars: int = Field(ge=1, le=4)
