"""Reading one field of a card's JSON, with an error that names it.

Null counts as missing: many exporters write `null` for an empty field.
"""

from __future__ import annotations

import json
from typing import Any

from personae.errors import InvalidCard


def check_unicode(document: Any, what: str) -> None:
    """Refuse a lone surrogate (JSON's "\\ud800") anywhere: no UTF-8 can carry it back out."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidCard(
            f"{what} holds text that is not valid Unicode (a lone surrogate)."
        ) from error


def _field(raw: dict[str, Any], key: str) -> Any:
    return raw.get(key)


def _check(value: str, where: str, limit: int | None) -> None:
    # PostgreSQL stores neither NUL nor a lone surrogate (JSON's "\ud800") in text.
    if "\x00" in value:
        raise InvalidCard(f"{where}: must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidCard(f"{where}: is not valid Unicode text") from error
    if limit is not None and len(value) > limit:
        raise InvalidCard(f"{where}: longer than {limit} characters")


def as_text(raw: dict[str, Any], key: str, path: str, *, limit: int | None = None) -> str:
    value = _field(raw, key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidCard(f"{path}.{key}: must be a string, not {type(value).__name__}")
    _check(value, f"{path}.{key}", limit)
    return value


def as_text_list(
    raw: dict[str, Any],
    key: str,
    path: str,
    *,
    limit: int | None = None,
    max_items: int | None = None,
) -> list[str]:
    value = _field(raw, key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidCard(f"{path}.{key}: must be a list of strings")
    if max_items is not None and len(value) > max_items:
        raise InvalidCard(f"{path}.{key}: at most {max_items} items")
    for index, item in enumerate(value):
        _check(item, f"{path}.{key}[{index}]", limit)
    return list(value)


def as_bool(raw: dict[str, Any], key: str, path: str, *, default: bool) -> bool:
    value = _field(raw, key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidCard(f"{path}.{key}: must be true or false")
    return value


def as_number(raw: dict[str, Any], key: str, path: str, *, default: float) -> float:
    value = _field(raw, key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCard(f"{path}.{key}: must be a number")
    return value


def as_optional_int(raw: dict[str, Any], key: str, path: str) -> int | None:
    value = _field(raw, key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidCard(f"{path}.{key}: must be a whole number, 0 or more")
    return value


def as_object(raw: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = _field(raw, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidCard(f"{path}.{key}: must be an object")
    return value
