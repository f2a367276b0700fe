"""Character Card V1/V2/V3 JSON: reading a card into a character's fields, and back.

The imported card's JSON object is kept verbatim. On export it is the base, and
only the fields that were changed since are written over it, so unknown keys,
`extensions` and the key order come back exactly as they arrived.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from personae.cards.fields import (
    as_object,
    as_optional_int,
    as_text,
    as_text_list,
    check_unicode,
)
from personae.cards.lorebook import Lorebook, book_to_card, parse_book
from personae.errors import InvalidCard

Spec = Literal["v1", "v2", "v3"]
ExportSpec = Literal["v2", "v3"]
SPECS: dict[str, Spec] = {"chara_card_v2": "v2", "chara_card_v3": "v3"}
_SPEC_NAMES: dict[ExportSpec, tuple[str, str]] = {
    "v2": ("chara_card_v2", "2.0"),
    "v3": ("chara_card_v3", "3.0"),
}

# A character's field → the card's key for it (in `data`, or at the root of a V1 card).
CARD_KEYS: dict[str, str] = {
    "name": "name",
    "description": "description",
    "personality": "personality",
    "scenario": "scenario",
    "first_message": "first_mes",
    "example_dialogues": "mes_example",
    "creator_notes": "creator_notes",
    "system_prompt": "system_prompt",
    "post_history_instructions": "post_history_instructions",
    "alternate_greetings": "alternate_greetings",
    "character_book": "character_book",
    "tags": "tags",
    "creator": "creator",
    "character_version": "character_version",
    "extensions": "extensions",
    "nickname": "nickname",
    "group_only_greetings": "group_only_greetings",
    "creation_date": "creation_date",
}
_V3_ONLY = frozenset({"nickname", "group_only_greetings", "creation_date"})
# V2 exporters often mirror these at the root for V1 readers; edits keep them in step.
_LEGACY_ROOT = frozenset(
    {"name", "description", "personality", "scenario", "first_mes", "mes_example", "tags"}
)
_V1_KEYS = ("description", "personality", "scenario", "first_mes", "mes_example")

TEXT_LIMIT = 32_000
GREETING_LIMIT = 16_000
MAX_GREETINGS = 100
MAX_TAGS = 20
TAG_LIMIT = 32


@dataclass(frozen=True)
class ParsedCard:
    spec: Spec
    fields: dict[str, Any]  # a character's fields, by the names the characters table uses
    document: dict[str, Any]  # the card's JSON object exactly as it arrived
    assets: list[dict[str, Any]]  # V3 asset descriptors (type, uri, name, ext)


def _tags(data: dict[str, Any], path: str) -> list[str]:
    """Tags as the search index keeps them: trimmed, 1-32 characters, at most 20."""
    tags: list[str] = []
    for tag in as_text_list(data, "tags", path):
        tag = tag.strip()
        if 0 < len(tag) <= TAG_LIMIT and tag not in tags:
            tags.append(tag)
    return tags[:MAX_TAGS]


def _assets(data: dict[str, Any], path: str) -> list[dict[str, Any]]:
    raw = data.get("assets")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidCard(f"{path}.assets: must be a list")
    for index, asset in enumerate(raw):
        where = f"{path}.assets[{index}]"
        if not isinstance(asset, dict):
            raise InvalidCard(f"{where}: must be an object")
        for key in ("type", "uri", "name", "ext"):
            as_text(asset, key, where, limit=2048)
    return list(raw)


def _fields(data: dict[str, Any], path: str) -> dict[str, Any]:
    name = as_text(data, "name", path, limit=128)
    if not name.strip():
        raise InvalidCard(f"{path}.name: a card needs a name")
    book = data.get("character_book")
    greetings = {"limit": GREETING_LIMIT, "max_items": MAX_GREETINGS}
    return {
        "name": name,
        "description": as_text(data, "description", path, limit=TEXT_LIMIT),
        "personality": as_text(data, "personality", path, limit=TEXT_LIMIT),
        "scenario": as_text(data, "scenario", path, limit=TEXT_LIMIT),
        "first_message": as_text(data, "first_mes", path, limit=GREETING_LIMIT),
        "example_dialogues": as_text(data, "mes_example", path, limit=TEXT_LIMIT),
        "creator_notes": as_text(data, "creator_notes", path, limit=TEXT_LIMIT),
        "system_prompt": as_text(data, "system_prompt", path, limit=TEXT_LIMIT),
        "post_history_instructions": as_text(
            data, "post_history_instructions", path, limit=TEXT_LIMIT
        ),
        "alternate_greetings": as_text_list(data, "alternate_greetings", path, **greetings),
        "character_book": (
            None if book is None else parse_book(book, f"{path}.character_book").to_json()
        ),
        "tags": _tags(data, path),
        "creator": as_text(data, "creator", path, limit=128),
        "character_version": as_text(data, "character_version", path, limit=64),
        "extensions": as_object(data, "extensions", path),
        "nickname": as_text(data, "nickname", path, limit=128),
        "group_only_greetings": as_text_list(data, "group_only_greetings", path, **greetings),
        "creation_date": as_optional_int(data, "creation_date", path),
    }


def read_card(document: Any) -> ParsedCard:
    """A card's JSON object (V1 flat, V2 or V3), checked field by field."""
    if not isinstance(document, dict):
        raise InvalidCard("The card must be a JSON object.")
    check_unicode(document, "The card")
    spec_name = document.get("spec")
    if spec_name == "lorebook_v3":
        raise InvalidCard(
            "This is a lorebook, not a character card: "
            "upload it to PUT /api/v1/characters/{id}/lorebook."
        )
    if spec_name is None and "data" not in document:
        if not isinstance(document.get("name"), str) or not any(k in document for k in _V1_KEYS):
            raise InvalidCard(
                'This JSON is not a character card: it has no "spec" and no V1 card fields.'
            )
        return ParsedCard("v1", _fields(document, "card"), document, [])
    if spec_name is not None and spec_name not in SPECS:
        raise InvalidCard(f'Unknown card spec "{spec_name}": expected chara_card_v2 or v3.')
    data = document.get("data")
    if not isinstance(data, dict):
        raise InvalidCard('data: a V2/V3 card keeps its fields in a "data" object.')
    spec = SPECS.get(str(spec_name), "v2")
    assets = _assets(data, "data") if spec == "v3" else []
    return ParsedCard(spec, _fields(data, "data"), document, assets)


def _card_value(name: str, value: Any) -> Any:
    if name == "character_book":
        return None if value is None else book_to_card(Lorebook.from_json(value))
    return copy.deepcopy(value)


def _write(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def _fresh(spec: ExportSpec, fields: dict[str, Any], modified_at: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, key in CARD_KEYS.items():
        if spec == "v2" and name in _V3_ONLY:
            continue
        _write(data, key, _card_value(name, fields[name]))
    if spec == "v3":
        data["modification_date"] = modified_at
    spec_name, version = _SPEC_NAMES[spec]
    return {"spec": spec_name, "spec_version": version, "data": data}


def build_card(
    spec: ExportSpec,
    fields: dict[str, Any],
    original: dict[str, Any] | None,
    *,
    modified_at: int,
) -> dict[str, Any]:
    """The card to export: the original object with the changed fields written over it.

    `fields` are the character's current values (by table name); `modified_at` is
    the unix time of its last change, written as V3's `modification_date` when
    something changed.
    """
    if original is None:
        return _fresh(spec, fields, modified_at)
    parsed = read_card(original)
    if parsed.spec == "v1":
        upgraded = {**copy.deepcopy(original), **_fresh(spec, fields, modified_at)}
        for key in _LEGACY_ROOT & upgraded.keys() & upgraded["data"].keys():
            upgraded[key] = copy.deepcopy(upgraded["data"][key])
        return upgraded
    document = copy.deepcopy(original)
    data: dict[str, Any] = document["data"]
    changed = [name for name in CARD_KEYS if fields[name] != parsed.fields[name]]
    for name in changed:
        key = CARD_KEYS[name]
        value = _card_value(name, fields[name])
        _write(data, key, value)
        if key in _LEGACY_ROOT and key in document:
            _write(document, key, copy.deepcopy(value))
    if spec != parsed.spec:
        document["spec"], document["spec_version"] = _SPEC_NAMES[spec]
        if spec == "v3":
            data.setdefault("group_only_greetings", list(fields["group_only_greetings"]))
    if changed and spec == "v3":
        data["modification_date"] = modified_at
    return document
