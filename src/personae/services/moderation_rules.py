"""The rules layer of moderation: word and pattern lists an operator can edit.

Built-in rules ship in `moderation_rules.toml` beside this module; an operator's file
(PERSONAE_MODERATION_RULES_FILE, same shape) adds to them, or replaces them with
`builtin = false`, and may override the policy table. The file is read again when it
changes (checked at most once a second); a file that does not parse keeps the rules
in force and logs why.

Matching is CPU work on user text: it runs off the event loop within the CPU budget
(moderation.py), words through one RE2 alternation per category (linear time), and
patterns the way lorebook keys run (RE2, else `regex` with a timeout per search), so
an operator's catastrophic pattern costs a bounded moment, never a stalled server.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from personae.cards.lorebook import compile_pattern
from personae.errors import ConfigurationError
from personae.offload import check_deadline
from personae.services.content_ratings import RATINGS

log = logging.getLogger("personae.moderation")

CATEGORIES = (
    "sexual_minors",
    "self_harm",
    "violence",
    "hate",
    "harassment",
    "sexual",
    "illegal",
)
Action = Literal["block", "warn", "allow"]
ACTIONS: tuple[Action, ...] = ("block", "warn", "allow")
_RELOAD_CHECK_S = 1.0
# The most words or patterns one category may hold (a bound on the work per message).
_MAX_RULES = 2000


class Matcher(Protocol):
    def found_in(self, text: str) -> bool: ...


@dataclass(frozen=True)
class RuleSet:
    """Compiled rules and the policy table: category -> rating -> action."""

    matchers: dict[str, tuple[Matcher, ...]]
    policy: dict[str, dict[str, Action]]
    source: str = "built-in"

    def match(self, text: str) -> list[str]:
        """The categories whose rules `text` trips, in CATEGORIES order (pure; runs in
        a worker thread: each pattern's search is bounded, the whole by the budget)."""
        hits = []
        for category in CATEGORIES:
            for matcher in self.matchers.get(category, ()):
                check_deadline("checking the moderation rules")
                if matcher.found_in(text):
                    hits.append(category)
                    break
        return hits

    def action(self, category: str, rating: str) -> Action:
        return self.policy.get(category, {}).get(rating, "allow")


@dataclass
class _Source:
    words: dict[str, list[str]] = field(default_factory=dict)
    patterns: dict[str, list[str]] = field(default_factory=dict)
    policy: dict[str, dict[str, Action]] = field(default_factory=dict)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigurationError(f"{where} must be a list of strings")
    if len(value) > _MAX_RULES:
        raise ConfigurationError(f"{where} holds more than {_MAX_RULES} entries")
    return [item for item in value if item.strip()]


def _parse_policy(raw: Any, where: str) -> dict[str, dict[str, Action]]:
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: [policy] must be a table")
    policy: dict[str, dict[str, Action]] = {}
    for category, per_rating in raw.items():
        if category not in CATEGORIES:
            raise ConfigurationError(f"{where}: unknown category {category!r} in [policy]")
        if isinstance(per_rating, str):  # one action for every rating
            per_rating = dict.fromkeys(RATINGS, per_rating)
        if not isinstance(per_rating, dict):
            raise ConfigurationError(f"{where}: policy.{category} must be a table or an action")
        for rating, action in per_rating.items():
            if rating not in RATINGS or action not in ACTIONS:
                raise ConfigurationError(
                    f"{where}: policy.{category}.{rating} = {action!r}: ratings are "
                    f"{', '.join(RATINGS)}; actions are {', '.join(ACTIONS)}"
                )
        policy[category] = cast(dict[str, Action], dict(per_rating))
    return policy


def parse_rules(text: str, where: str) -> tuple[_Source, bool]:
    """A rules file's content, and whether it keeps the built-in rules (`builtin`)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{where} is not valid TOML: {error}") from error
    source = _Source()
    categories = raw.get("categories", {})
    if not isinstance(categories, dict):
        raise ConfigurationError(f"{where}: [categories] must be a table")
    for category, rules in categories.items():
        if category not in CATEGORIES or not isinstance(rules, dict):
            raise ConfigurationError(
                f"{where}: unknown category {category!r} (known: {', '.join(CATEGORIES)})"
            )
        source.words[category] = _strings(rules.get("words", []), f"{category}.words")
        source.patterns[category] = _strings(rules.get("patterns", []), f"{category}.patterns")
    source.policy = _parse_policy(raw.get("policy", {}), where)
    keep = raw.get("builtin", True)
    if not isinstance(keep, bool):
        raise ConfigurationError(f"{where}: builtin must be true or false")
    return source, keep


def _words_matcher(words: list[str]) -> Matcher | None:
    if not words:
        return None
    # Spaces in a phrase match any run of whitespace.
    written = "|".join(r"\s+".join(re.escape(part) for part in w.split()) for w in words)
    # One case-insensitive alternation at word boundaries, which RE2 runs (escaped
    # words are always within its reach).
    return compile_pattern(rf"\b(?:{written})\b", "i")


def compile_rules(sources: list[_Source], name: str) -> RuleSet:
    """Merge sources (later ones add words and patterns and override policy cells)."""
    matchers: dict[str, tuple[Matcher, ...]] = {}
    policy: dict[str, dict[str, Action]] = {}
    for category in CATEGORIES:
        words = [w for s in sources for w in s.words.get(category, [])]
        found: list[Matcher] = []
        word_matcher = _words_matcher(words)
        if word_matcher is not None:
            found.append(word_matcher)
        for source in sources:
            for pattern in source.patterns.get(category, []):
                compiled = compile_pattern(pattern, "i")
                if compiled is None:
                    raise ConfigurationError(f"{name}: {category} pattern {pattern!r} is not valid")
                found.append(compiled)
        matchers[category] = tuple(found)
        for source in sources:
            policy.setdefault(category, {}).update(source.policy.get(category, {}))
    return RuleSet(matchers=matchers, policy=policy, source=name)


def builtin_source() -> _Source:
    text = resources.files("personae.services").joinpath("moderation_rules.toml").read_text()
    source, _keep = parse_rules(text, "built-in rules")
    return source


def load_rules(path: Path | None) -> RuleSet:
    """The built-in rules with the operator's file (if any) applied."""
    builtin = builtin_source()
    if path is None:
        return compile_rules([builtin], "built-in")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot read the moderation rules file {path}: {error}") from None
    operator, keep = parse_rules(text, str(path))
    sources = [builtin, operator] if keep else [_Source(policy=builtin.policy), operator]
    return compile_rules(sources, str(path))


class RulesFile:
    """The rules in force, read again when the operator's file changes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._stamp = self._stat()
        self._rules = load_rules(path)  # a broken file at start is a configuration error
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def current(self) -> RuleSet:
        """The rules, reloaded if the file changed (called in a worker thread)."""
        now = time.monotonic()
        if self._path is None or now - self._checked < _RELOAD_CHECK_S:
            return self._rules
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp is None or stamp == self._stamp:
                return self._rules
            self._stamp = stamp
            try:
                self._rules = load_rules(self._path)
                log.info("moderation rules reloaded", extra={"path": str(self._path)})
            except ConfigurationError as error:
                log.warning(
                    "moderation rules file not reloaded; the previous rules stay in force",
                    extra={"path": str(self._path), "error": error.detail},
                )
        return self._rules
