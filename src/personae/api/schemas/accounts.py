"""Bodies of the account, session and token endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, StrictBool, field_validator, model_validator

from personae.api.schemas.common import Input, Output
from personae.services.content_ratings import today


class RegisterRequest(Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    display_name: str | None = Field(default=None, max_length=64)


class LoginRequest(Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserPublic(Output):
    id: str
    username: str
    display_name: str
    role: str
    created_at: datetime
    suspended_until: datetime | None = Field(
        default=None, description="Until when a moderator suspended the account, if ever."
    )
    age_declared_at: datetime | None = Field(
        default=None, description="When the user declared their age; null until then."
    )
    adult: bool = Field(default=False, description="A confirmed adult (18 or older).")
    show_mature: bool = Field(
        default=False, description="Mature characters are listed in discovery and search."
    )

    @model_validator(mode="before")
    @classmethod
    def _adult_today(cls, value: Any) -> Any:
        is_adult = getattr(value, "is_adult", None)
        if callable(is_adult):
            fields = {
                name: getattr(value, name) for name in cls.model_fields if hasattr(value, name)
            }
            return {**fields, "adult": is_adult(today())}
        return value


class WarningShown(Output):
    id: str
    reason: str | None
    note: str
    created_at: datetime


class MePublic(UserPublic):
    warnings: list[WarningShown] = Field(
        default_factory=list, description="Warnings moderators gave you, newest first."
    )


class AgeDeclaration(Input):
    birth_date: str = Field(
        min_length=10, max_length=10, description="YYYY-MM-DD", examples=["1990-05-17"]
    )

    @field_validator("birth_date")
    @classmethod
    def _a_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be a date written YYYY-MM-DD") from None
        if not value[4] == value[7] == "-":
            raise ValueError("must be a date written YYYY-MM-DD")
        return value

    @property
    def parsed(self) -> date:
        return date.fromisoformat(self.birth_date)


class MeUpdate(Input):
    """Settings of one's account; a field left out (or null) stays as it is."""

    show_mature: StrictBool | None = Field(
        default=None, description="List mature characters (confirmed adults only)."
    )
    display_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The name shown for you: 1 to 64 characters, no line breaks.",
    )

    @model_validator(mode="after")
    def _something(self) -> MeUpdate:
        if self.show_mature is None and self.display_name is None:
            raise ValueError("give show_mature and/or display_name")
        return self


class PasswordChange(Input):
    current_password: str | None = Field(
        default=None,
        max_length=1024,
        description="Required when the account has a password (every account made by "
        "signing up has one).",
    )
    new_password: str = Field(min_length=1, max_length=1024)


class SessionsEnded(Output):
    sessions_ended: int = Field(description="How many other sessions were logged out.")


class AccountDeletionRequest(Input):
    password: str | None = Field(
        default=None, max_length=1024, description="The current password, if it has one."
    )
    confirm: str | None = Field(
        default=None,
        max_length=64,
        description="For an account without a password: its username, typed.",
    )


class AccountDeleted(Output):
    deleted: bool = True
    chats_deleted: int
    characters_deleted: int
    characters_anonymised: int = Field(
        description="Public or unlisted characters others chat with, kept without a creator."
    )


class WellbeingPublic(Output):
    session_minutes: float = Field(description="How long the current chatting session lasts.")
    session_started_at: datetime | None
    notice_due: bool = Field(description="Show the time-spent notice now.")
    notice: str | None = Field(description="The notice's text while it is due.")
    threshold_minutes: float = Field(description="PERSONAE_WELLBEING_SESSION_MINUTES.")


class SessionOpened(Output):
    user: UserPublic
    csrf_token: str
    expires_at: datetime


class SessionPublic(Output):
    id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    device: str = Field(
        default="", description='Readable: "Chrome on Android", "personae terminal client".'
    )
    ip: str | None
    current: bool = False


class TokenCreate(Input):
    name: str = Field(min_length=1, max_length=64)


class TokenPublic(Output):
    id: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="Shown once; only a hash is kept.")


class UserPage(Output):
    items: list[UserPublic]
    has_more: bool = Field(description="Ask again with before=<the last id> for more.")


class RoleUpdate(Input):
    role: Literal["user", "plus", "moderator", "admin"]
