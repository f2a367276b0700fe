"""Bodies of the character endpoints (fields of Character Card V2/V3)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from personae import strict_json
from personae.api.schemas.common import Input, Output
from personae.api.schemas.voices import VoiceChoiceIn, VoiceChoicePublic
from personae.images import SIZES
from personae.services import avatars
from personae.services.voices import choice_to_json, stored_voice

Visibility = Literal["public", "unlisted", "private"]
Rating = Literal["general", "teen", "mature"]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
LongText = Annotated[str, StringConstraints(max_length=32_000)]
Greeting = Annotated[str, StringConstraints(max_length=16_000)]


class CharacterFields(Input):
    tagline: str = Field(default="", max_length=256)
    description: LongText = ""
    personality: LongText = ""
    scenario: LongText = ""
    first_message: Greeting = ""
    alternate_greetings: list[Greeting] = Field(default_factory=list, max_length=32)
    example_dialogues: LongText = ""
    system_prompt: LongText = ""
    post_history_instructions: LongText = ""
    creator_notes: LongText = ""
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    avatar: str | None = Field(default=None, max_length=512_000)
    visibility: Visibility = "public"
    extensions: dict[str, Any] = Field(default_factory=dict)
    nickname: str = Field(default="", max_length=128)
    creator: str = Field(default="", max_length=128)
    character_version: str = Field(default="", max_length=64)
    group_only_greetings: list[Greeting] = Field(default_factory=list, max_length=100)
    # A lorebook in the card format (`character_book`); stored normalised.
    character_book: dict[str, Any] | None = None
    definition_visible: bool = Field(
        default=False,
        description="Others see the definition (system prompt, description, lorebook, ...) "
        "when they inspect a reply's prompt; off: hidden by the creator.",
    )
    rating: Rating = Field(
        default="general",
        description="The content rating: general (everyone), teen, or mature (confirmed "
        "adults only).",
    )
    voice: VoiceChoiceIn | None = Field(
        default=None,
        description="The voice its replies are read aloud in (GET /api/v1/voices); kept "
        'in extensions["personae"]["voice"]. null: the server\'s default voice.',
    )


class CharacterCreate(CharacterFields):
    name: str = Field(min_length=1, max_length=128)


_NULLABLE = frozenset({"avatar", "character_book", "voice"})
_NOT_NULLABLE = tuple(name for name in CharacterCreate.model_fields if name not in _NULLABLE)


class CharacterUpdate(Input):
    """Only the fields sent are changed."""

    name: str | None = Field(default=None, min_length=1, max_length=128)
    tagline: str | None = Field(default=None, max_length=256)
    description: LongText | None = None
    personality: LongText | None = None
    scenario: LongText | None = None
    first_message: Greeting | None = None
    alternate_greetings: list[Greeting] | None = Field(default=None, max_length=32)
    example_dialogues: LongText | None = None
    system_prompt: LongText | None = None
    post_history_instructions: LongText | None = None
    creator_notes: LongText | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20)
    avatar: str | None = Field(default=None, max_length=512_000)
    visibility: Visibility | None = None
    extensions: dict[str, Any] | None = None
    nickname: str | None = Field(default=None, max_length=128)
    creator: str | None = Field(default=None, max_length=128)
    character_version: str | None = Field(default=None, max_length=64)
    group_only_greetings: list[Greeting] | None = Field(default=None, max_length=100)
    character_book: dict[str, Any] | None = None
    definition_visible: bool | None = None
    rating: Rating | None = None
    voice: VoiceChoiceIn | None = Field(
        default=None, description="A voice, or null for the server's default voice."
    )

    # Runs only on fields that were sent, so a missing field keeps its value but an
    # explicit null is refused under the field's own name.
    @field_validator(*_NOT_NULLABLE)
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep it")
        return value

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class CharacterPublic(Output):
    id: str
    owner_id: str
    owner_username: str
    name: str
    tagline: str
    description: str
    personality: str
    scenario: str
    first_message: str
    alternate_greetings: list[str]
    example_dialogues: str
    system_prompt: str
    post_history_instructions: str
    creator_notes: str
    tags: list[str]
    avatar: str | None = Field(
        description="Its picture: the URL of its stored picture's largest variant "
        "(/api/v1/images/{id}?size=512, relative to the server), or an https URL, or null."
    )
    avatar_urls: dict[str, str] | None = Field(
        default=None,
        description="Its stored picture's variants by their longest side in pixels "
        f"({', '.join(str(size) for size in SIZES)}); null without a stored picture.",
    )
    visibility: Visibility
    extensions: dict[str, Any]
    nickname: str
    creator: str
    character_version: str
    group_only_greetings: list[str]
    creation_date: int | None
    character_book: dict[str, Any] | None
    chat_count: int
    rating_average: float | None = Field(
        default=None, description="The average stars (1-4) of its rated replies; null: none."
    )
    rating_count: int = Field(default=0, description="How many of its replies were rated.")
    featured: bool = Field(description="Shown in the discover page's Featured row.")
    definition_visible: bool = Field(
        description="Others see the definition when they inspect a reply's prompt."
    )
    rating: Rating = Field(description="The content rating: general, teen or mature.")
    voice: VoiceChoicePublic | None = Field(
        default=None,
        description='The voice it speaks with (from extensions["personae"]["voice"]); '
        "null: the server's default voice.",
    )
    hidden: bool = Field(
        default=False,
        description="A moderator hid it: only its owner (and moderators) still see it.",
    )
    created_at: datetime
    updated_at: datetime

    # Stored before the JSON limits existed, a value too deep or with NaN must not
    # make a page of characters fail for everybody: it is shown cut, as null.
    @field_validator("extensions", "character_book")
    @classmethod
    def _within_json_limits(cls, value: Any) -> Any:
        return strict_json.sanitised(value)

    # A stored picture is shown by its URL. An avatar stored before avatars were
    # checked, which is neither an uploaded picture nor an https URL (a `javascript:`
    # one, say), is shown as none.
    @model_validator(mode="before")
    @classmethod
    def _avatar(cls, record: Any) -> Any:
        if isinstance(record, dict):
            return record
        values = {name: getattr(record, name) for name in cls.model_fields if hasattr(record, name)}
        values["avatar"], values["avatar_urls"] = avatars.shown(
            getattr(record, "avatar_image_id", None), values.get("avatar")
        )
        voice = stored_voice(getattr(record, "extensions", None))
        values["voice"] = choice_to_json(voice) if voice is not None else None
        return values


class CharacterPage(Output):
    items: list[CharacterPublic]
    limit: int
    offset: int


class CreatorStatsPublic(Output):
    character_id: str
    name: str
    visibility: Visibility
    chat_count: int = Field(description="Its chats (deleted ones not counted).")
    message_count: int = Field(
        description="Messages in its chats: greetings, messages and replies, each turn "
        "once (alternative replies are not counted apart; deleted ones still count)."
    )
    rating_count: int = Field(description="How many of its replies were rated.")
    rating_average: float | None = Field(
        description="The average stars (1-4) of its rated replies; null: none."
    )


class CreatorStatsPage(Output):
    items: list[CreatorStatsPublic]
