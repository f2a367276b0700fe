"""Hand-written community cards that use every field of both specs, and helpers to pack them."""

from __future__ import annotations

import base64
import copy
import io
import json
import zipfile
from typing import Any

from personae.cards import png

LOREBOOK: dict[str, Any] = {
    "name": "Kestrel lore",
    "description": "Places and people aboard",
    "scan_depth": 3,
    "token_budget": 200,
    "recursive_scanning": False,
    "extensions": {"chub": {"id": 7}},
    "entries": [
        {
            "keys": ["Port Sable", "/sabl(e|es)\\b/i"],
            "content": "Port Sable is a smugglers' harbour.",
            "extensions": {"selectiveLogic": 0, "probability": 100},
            "enabled": True,
            "insertion_order": 10,
            "case_sensitive": False,
            "use_regex": False,
            "constant": False,
            "name": "Port Sable",
            "priority": 5,
            "id": 1,
            "comment": "harbour",
            "selective": True,
            "secondary_keys": ["harbour", "dock"],
            "position": "before_char",
        },
        {
            "keys": ["ledger"],
            "content": "The ledger lists every debt.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 20,
            "constant": True,
            "position": "after_char",
        },
    ],
}

V2_CARD: dict[str, Any] = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "name": "Captain Ilsa Varga",
    "description": "{{char}} commands the Kestrel.",
    "x_exporter_root": {"keep": [1, 2.5, None, True]},
    "data": {
        "name": "Captain Ilsa Varga",
        "description": "{{char}} commands the Kestrel.",
        "personality": "wry, decisive",
        "scenario": "<USER> buys passage on the <bot>'s ship.",
        "first_mes": "*taps the crate* Welcome aboard, {{User}}.",
        "mes_example": "<START>\n{{user}}: Where to?\n{{char}}: Port Sable.",
        "creator_notes": "SECRET-CREATOR-NOTE: works best with adventure prompts.",
        "system_prompt": "Stay in character as {{char}}.",
        "post_history_instructions": "Keep replies short, {{char}}.",
        "alternate_greetings": ["Hold the rail!", "First flight, {{user}}?"],
        "character_book": LOREBOOK,
        "tags": ["Adventure", "steampunk"],
        "creator": "ilsa-fan",
        "character_version": "1.2",
        "extensions": {
            "depth_prompt": {"prompt": "Remember the ledger.", "depth": 4, "role": "system"},
            "talkativeness": "0.5",
            "fav": False,
            "ünïcode": "✓",
        },
        "x_unknown_data_key": {"nested": ["a", {"b": 1}]},
    },
}

V3_CARD: dict[str, Any] = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "x_root_unknown": 42,
    "data": {
        **copy.deepcopy(V2_CARD["data"]),
        "nickname": "Cap",
        "creator_notes_multilingual": {"en": "Adventure", "fr": "Aventure"},
        "source": ["https://example.org/ilsa"],
        "group_only_greetings": ["Crew, to stations!"],
        "creation_date": 1_700_000_000,
        "modification_date": 1_700_000_500,
        "assets": [
            {"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"},
            {
                "type": "emotion",
                "uri": "embeded://assets/emotion/images/happy.png",
                "name": "happy",
                "ext": "png",
            },
        ],
    },
}

V1_CARD: dict[str, Any] = {
    "name": "Old Tom",
    "description": "{{char}} keeps the lighthouse.",
    "personality": "gruff",
    "scenario": "A storm.",
    "first_mes": "Who goes there?",
    "mes_example": "",
}


def b64(document: Any) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def card_png(chunks: dict[str, str], *, image: bytes | None = None) -> bytes:
    """A PNG carrying the given text chunks (already base64 where a card needs it)."""
    return png.with_text(image or png.placeholder("sample"), chunks)


def charx(card: Any, files: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if card is not None:
            archive.writestr("card.json", json.dumps(card))
        for path, data in (files or {}).items():
            archive.writestr(path, data)
    return buffer.getvalue()


HAPPY_PNG = png.placeholder("happy", size=8)
