"""Bodies of the persona, memory and prompt-inspection endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from personae.api.schemas.common import Input, Output

_AVATAR_MAX = 512_000


class PersonaCreate(Input):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=4000)
    avatar: str | None = Field(default=None, max_length=_AVATAR_MAX)
    is_default: bool = False


class PersonaUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=4000)
    avatar: str | None = Field(default=None, max_length=_AVATAR_MAX)
    is_default: bool | None = None


class PersonaPublic(Output):
    id: str
    name: str
    description: str
    avatar: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime


class MemoryCreate(Input):
    content: str = Field(min_length=1, max_length=32_000)


class MemoryUpdate(Input):
    content: str = Field(min_length=1, max_length=128_000)


class MemoryPublic(Output):
    id: str
    chat_id: str
    kind: str = Field(description="pinned, or summary (the newest summary is the one in use)")
    content: str
    source_message_id: str | None
    through_position: int | None
    created_at: datetime
    updated_at: datetime


class MemoryList(Output):
    items: list[MemoryPublic]


class PromptPartPublic(Output):
    role: str
    source: str = Field(description="system, memory, message:<id>, recalled, ...")
    content: str
    redacted: bool = Field(
        default=False,
        description="The character's text in this part is hidden: content says so instead.",
    )


class PromptPublic(Output):
    message_id: str
    parts: list[PromptPartPublic]
    included: dict[str, Any] = Field(description="What went in: ids and token counts.")
    left_out: dict[str, Any]
    definition: Literal["shown", "hidden_by_creator", "character_unavailable"] = Field(
        default="shown",
        description="Whether the character's definition is shown: its creator sees it, "
        "others only while they may read the character and it has definition_visible on.",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_view(cls, value: Any) -> Any:
        record = getattr(value, "record", None)
        if isinstance(record, dict):
            return {
                "message_id": value.message_id,
                "parts": value.parts,
                "included": {k: v for k, v in record.items() if k != "left_out"},
                "left_out": record.get("left_out", {}),
                "definition": value.definition,
            }
        return value
