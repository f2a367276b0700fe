"""Bodies of the account, session and token endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from personae.api.schemas.common import Input, Output


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


class WarningShown(Output):
    id: str
    reason: str | None
    note: str
    created_at: datetime


class MePublic(UserPublic):
    warnings: list[WarningShown] = Field(
        default_factory=list, description="Warnings moderators gave you, newest first."
    )


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
