"""Bodies of the group room endpoints (docs/rooms.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from personae.api.schemas.common import Input, Output

TurnMode = Literal["natural", "list", "random", "manual"]
RoomRole = Literal["owner", "member", "viewer"]
InviteRole = Literal["member", "viewer"]
_ID = Field(min_length=1, max_length=64)


class RoomCreate(Input):
    title: str = Field(default="Room", min_length=1, max_length=128)
    character_ids: list[str] = Field(min_length=1, max_length=64)
    turn_mode: TurnMode | None = None


class RoomUpdate(Input):
    title: str | None = Field(default=None, min_length=1, max_length=128)
    turn_mode: TurnMode | None = None


class RoomCharacterAdd(Input):
    character_id: str = _ID


class RoomCharacterUpdate(Input):
    talkativeness: float | None = Field(default=None, ge=0.0, le=1.0)
    position: int | None = Field(default=None, ge=0, le=10_000)


class InviteCreate(Input):
    role: InviteRole = "member"
    expires_in_s: int = Field(default=86_400, ge=60, le=604_800)
    max_uses: int | None = Field(default=None, ge=1, le=10_000)


class MemberUpdate(Input):
    role: InviteRole | None = None
    muted_until: datetime | None = None

    @model_validator(mode="after")
    def _timezone(self) -> MemberUpdate:
        if self.muted_until is not None and self.muted_until.tzinfo is None:
            raise ValueError("muted_until needs a time zone (e.g. ...Z)")
        return self


class MyMembershipUpdate(Input):
    persona_id: str | None = Field(default=None, min_length=1, max_length=64)
    persona_name: str | None = Field(default=None, min_length=1, max_length=64)
    persona_description: str | None = Field(default=None, max_length=4000)


class TurnRequest(Input):
    character_id: str = _ID


class AutoRequest(Input):
    turns: int = Field(ge=1, le=1000)


class RoomMemberPublic(Output):
    user_id: str
    username: str
    display_name: str
    role: RoomRole
    persona_name: str
    muted_until: datetime | None = None
    here: bool = Field(description="Has a live event stream of the room now.")


class RoomCharacterPublic(Output):
    character_id: str
    name: str
    avatar: str | None = None
    avatar_urls: dict[str, str] | None = None
    position: int
    talkativeness: float
    description_short: str = Field(
        default="", description="Its tagline; empty for a private character of someone else."
    )


class RoomPublic(Output):
    id: str
    kind: Literal["room"] = "room"
    title: str
    owner_id: str
    turn_mode: TurnMode
    auto_turns_left: int
    my_role: RoomRole
    members: list[RoomMemberPublic]
    characters: list[RoomCharacterPublic]
    created_at: datetime
    updated_at: datetime


class InvitePublic(Output):
    id: str
    role: InviteRole
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    max_uses: int | None = None
    uses: int


class InviteCreated(Output):
    id: str
    token: str = Field(description="Shown only here: only its SHA-256 is stored.")
    url: str
    role: InviteRole
    expires_at: datetime
    max_uses: int | None = None


class TurnPublic(Output):
    id: str
    character_id: str
    reason: str
    status: str


class AutoPublic(Output):
    turns_left: int
    running: bool
