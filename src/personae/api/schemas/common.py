"""Base classes for request and response bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False  # objects (a card's extensions) are stored as JSON, where NUL is escaped


class Input(BaseModel):
    """A request body: unknown fields are refused, naming the field."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    # PostgreSQL cannot store NUL in text: refuse it on every database alike, by name.
    @field_validator("*")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("must not contain NUL characters (\\u0000)")
        return value


class Output(BaseModel):
    """A response body, built from records by attribute."""

    model_config = ConfigDict(from_attributes=True)
