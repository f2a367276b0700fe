"""Crisis resources: who to reach when a message shows intent of self-harm.

Shown beside the chat (never instead of it) for the user's locale, taken from the
request's Accept-Language (accounts keep no language yet). Built-in lists cover
English; an operator's JSON file (PERSONAE_CRISIS_RESOURCES_FILE) adds or replaces
locales: {"en-US": [{"name": ..., "contact": ..., "url": ...}], "*": [...]}. The
"*" list is the international fallback for any locale without its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from personae.errors import ConfigurationError

_MAX_LANGUAGES = 8


@dataclass(frozen=True)
class CrisisResource:
    name: str
    contact: str
    url: str


_FIND_A_HELPLINE = CrisisResource(
    "Find A Helpline (international)",
    "Free, confidential lines in your country",
    "https://findahelpline.com",
)
_LIFELINE_988 = CrisisResource(
    "988 Suicide & Crisis Lifeline (US)", "Call or text 988", "https://988lifeline.org"
)
BUILTIN: dict[str, tuple[CrisisResource, ...]] = {
    "en-us": (_LIFELINE_988, _FIND_A_HELPLINE),
    "en-gb": (
        CrisisResource("Samaritans (UK and Ireland)", "Call 116 123", "https://www.samaritans.org"),
        _FIND_A_HELPLINE,
    ),
    "en": (_LIFELINE_988, _FIND_A_HELPLINE),
    "*": (_FIND_A_HELPLINE,),
}


def accepted_languages(header: str | None) -> list[str]:
    """Language tags of an Accept-Language header, most wanted first, lower case."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:512].split(",")[:_MAX_LANGUAGES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower()
        if not tag or tag == "*":
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            weighted.append((-quality, index, tag[:35]))
    return [tag for _, _, tag in sorted(weighted)]


def _parse(raw: object, where: str) -> dict[str, tuple[CrisisResource, ...]]:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: the top level must be an object of locales")
    found: dict[str, tuple[CrisisResource, ...]] = {}
    for locale, entries in raw.items():
        if not isinstance(entries, list):
            raise ConfigurationError(f"{where}: {locale} must be a list")
        resources = []
        for entry in entries:
            fields = ("name", "contact", "url")
            if not isinstance(entry, dict) or not all(
                isinstance(entry.get(key), str) for key in fields
            ):
                raise ConfigurationError(f"{where}: each {locale} entry needs name, contact, url")
            resources.append(CrisisResource(entry["name"], entry["contact"], entry["url"]))
        found[str(locale).lower()] = tuple(resources)
    return found


class CrisisDirectory:
    """The crisis resources of each locale (built-in, with the operator's file over them)."""

    def __init__(self, path: Path | None = None) -> None:
        self._by_locale = dict(BUILTIN)
        if path is not None:
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ConfigurationError(f"cannot read crisis resources {path}: {error}") from None
            self._by_locale.update(_parse(raw, str(path)))

    def for_languages(self, languages: list[str]) -> list[dict[str, str]]:
        """The resources of the first language with any (its exact tag, then its primary
        subtag), else the international fallback."""
        for tag in languages:
            for key in (tag, tag.split("-")[0]):
                if key in self._by_locale:
                    return [asdict(r) for r in self._by_locale[key]]
        return [asdict(r) for r in self._by_locale.get("*", BUILTIN["*"])]
