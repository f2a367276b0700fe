"""Lorebooks (a card's `character_book`, or a standalone `lorebook_v3` file).

A book is kept on the character in a normalised form (`normalise_book`), and
`select_entries` decides which entries a turn's prompt gets: the pure part of
the feature, with no knowledge of chats or prompts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal, Protocol

import re2
import regex

from personae.cards.fields import (
    as_bool,
    as_number,
    as_object,
    as_optional_int,
    as_text,
    as_text_list,
    check_unicode,
)
from personae.errors import InvalidCard
from personae.offload import check_deadline, remaining_s

SelectiveLogic = Literal["and_any", "not_all", "not_any", "and_all"]
Position = Literal["before_char", "after_char"]

# SillyTavern keeps the logic in `extensions.selectiveLogic` as a number.
_LOGIC_CODES: tuple[SelectiveLogic, ...] = ("and_any", "not_all", "not_any", "and_all")
DEFAULT_SCAN_DEPTH = 2  # SillyTavern's default: the last two messages
_MAX_RECURSION = 5
_REGEX_KEY = re.compile(r"^/(.+)/([a-z]*)$", re.DOTALL)
_MAX_ENTRIES = 1000
# What one search of a pattern RE2 cannot run (a backreference, a lookaround) may
# take in the `regex` module before the key counts as not found.
FALLBACK_SEARCH_S = 0.05


@dataclass(frozen=True)
class Entry:
    keys: tuple[str, ...]
    content: str
    secondary_keys: tuple[str, ...] = ()
    enabled: bool = True
    constant: bool = False
    selective: bool = False
    selective_logic: SelectiveLogic = "and_any"
    insertion_order: float = 100
    priority: float = 0
    position: Position = "before_char"
    case_sensitive: bool = False
    use_regex: bool = False
    id: int | str | None = None
    name: str = ""
    comment: str = ""
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lorebook:
    entries: tuple[Entry, ...] = ()
    name: str = ""
    description: str = ""
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool = False
    extensions: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stored, normalised form (what `from_json` reads back)."""
        return asdict(self) | {"entries": [_entry_json(entry) for entry in self.entries]}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> Lorebook:
        """A book from its stored, normalised form."""
        entries = tuple(
            Entry(
                **{
                    **entry,
                    "keys": tuple(entry["keys"]),
                    "secondary_keys": tuple(entry["secondary_keys"]),
                }
            )
            for entry in stored.get("entries", [])
        )
        return cls(**{**stored, "entries": entries})


def _entry_json(entry: Entry) -> dict[str, Any]:
    return asdict(entry) | {"keys": list(entry.keys), "secondary_keys": list(entry.secondary_keys)}


# --- reading the card formats ----------------------------------------------------


def _logic(extensions: dict[str, Any], path: str) -> SelectiveLogic:
    code = extensions.get("selectiveLogic", 0)
    if code is None:
        return "and_any"
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < len(_LOGIC_CODES):
        raise InvalidCard(f"{path}.extensions.selectiveLogic: must be 0, 1, 2 or 3")
    return _LOGIC_CODES[code]


def _parse_entry(raw: Any, path: str) -> Entry:
    if not isinstance(raw, dict):
        raise InvalidCard(f"{path}: must be an object")
    extensions = as_object(raw, "extensions", path)
    position = raw.get("position")
    entry_id = raw.get("id")
    if entry_id is not None and (isinstance(entry_id, bool) or not isinstance(entry_id, int | str)):
        raise InvalidCard(f"{path}.id: must be a number or a string")
    return Entry(
        keys=tuple(as_text_list(raw, "keys", path)),
        content=as_text(raw, "content", path),
        secondary_keys=tuple(as_text_list(raw, "secondary_keys", path)),
        enabled=as_bool(raw, "enabled", path, default=True),
        constant=as_bool(raw, "constant", path, default=False),
        selective=as_bool(raw, "selective", path, default=False),
        selective_logic=_logic(extensions, path),
        insertion_order=as_number(raw, "insertion_order", path, default=100),
        priority=as_number(raw, "priority", path, default=0),
        position="after_char" if position == "after_char" else "before_char",
        case_sensitive=as_bool(raw, "case_sensitive", path, default=False),
        use_regex=as_bool(raw, "use_regex", path, default=False),
        id=entry_id,
        name=as_text(raw, "name", path),
        comment=as_text(raw, "comment", path),
        extensions=extensions,
    )


def parse_book(raw: Any, path: str = "character_book") -> Lorebook:
    """A card's `character_book` object, checked field by field (errors name the field)."""
    if not isinstance(raw, dict):
        raise InvalidCard(f"{path}: must be an object")
    entries = raw.get("entries")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise InvalidCard(f"{path}.entries: must be a list")
    if len(entries) > _MAX_ENTRIES:
        raise InvalidCard(f"{path}.entries: at most {_MAX_ENTRIES} entries")
    return Lorebook(
        entries=tuple(_parse_entry(item, f"{path}.entries[{i}]") for i, item in enumerate(entries)),
        name=as_text(raw, "name", path),
        description=as_text(raw, "description", path),
        scan_depth=as_optional_int(raw, "scan_depth", path),
        token_budget=as_optional_int(raw, "token_budget", path),
        recursive_scanning=as_bool(raw, "recursive_scanning", path, default=False),
        extensions=as_object(raw, "extensions", path),
    )


def parse_lorebook_file(document: Any) -> Lorebook:
    """A standalone lorebook: `{"spec": "lorebook_v3", "data": {...}}` or a bare book."""
    check_unicode(document, "The lorebook")
    if isinstance(document, dict) and document.get("spec") == "lorebook_v3":
        return parse_book(document.get("data"), "data")
    if isinstance(document, dict) and isinstance(document.get("entries"), list):
        return parse_book(document, "lorebook")
    raise InvalidCard(
        'This is not a lorebook: expected "spec": "lorebook_v3" or a list of entries.'
    )


def _entry_to_card(entry: Entry) -> dict[str, Any]:
    extensions = dict(entry.extensions)
    if entry.selective_logic != "and_any" or "selectiveLogic" in extensions:
        extensions["selectiveLogic"] = _LOGIC_CODES.index(entry.selective_logic)
    card: dict[str, Any] = {
        "keys": list(entry.keys),
        "content": entry.content,
        "extensions": extensions,
        "enabled": entry.enabled,
        "insertion_order": entry.insertion_order,
        "case_sensitive": entry.case_sensitive,
        "use_regex": entry.use_regex,
        "constant": entry.constant,
        "name": entry.name,
        "priority": entry.priority,
        "comment": entry.comment,
        "selective": entry.selective,
        "secondary_keys": list(entry.secondary_keys),
        "position": entry.position,
    }
    if entry.id is not None:
        card["id"] = entry.id
    return card


def book_to_card(book: Lorebook) -> dict[str, Any]:
    """The book in the cards' own format (a `character_book` / lorebook_v3 `data`)."""
    card: dict[str, Any] = {"name": book.name, "description": book.description}
    if book.scan_depth is not None:
        card["scan_depth"] = book.scan_depth
    if book.token_budget is not None:
        card["token_budget"] = book.token_budget
    card["recursive_scanning"] = book.recursive_scanning
    card["extensions"] = dict(book.extensions)
    card["entries"] = [_entry_to_card(entry) for entry in book.entries]
    return card


# --- activation --------------------------------------------------------------------


class _Pattern(Protocol):
    def found_in(self, text: str) -> bool: ...


@dataclass(frozen=True)
class _Linear:
    """A pattern RE2 runs: time linear in the text, whatever the pattern."""

    compiled: Any  # re2's compiled pattern (the package has no type hints)

    def found_in(self, text: str) -> bool:
        return self.compiled.search(text) is not None


@dataclass(frozen=True)
class _Backtracking:
    """A pattern only a backtracking engine runs, each search cut off by a timeout."""

    compiled: regex.Pattern[str]

    def found_in(self, text: str) -> bool:
        left = remaining_s()
        timeout = FALLBACK_SEARCH_S if left is None else max(0.0, min(left, FALLBACK_SEARCH_S))
        try:
            # concurrent: the GIL is let go of during the search, so the event loop runs
            return self.compiled.search(text, timeout=timeout, concurrent=True) is not None
        except TimeoutError:
            return False


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a pattern RE2 cannot run is expected, not an error
    return options


@lru_cache(maxsize=1024)
def _compile(pattern: str, flags: str) -> _Pattern | None:
    """`pattern` with inline `flags` ("ims" letters): in RE2 when it can express it,
    else in `regex`; None for a pattern neither reads (a broken pattern matches
    nothing rather than failing the turn)."""
    written = f"(?{flags}){pattern}" if flags else pattern
    try:
        return _Linear(re2.compile(written, _re2_options()))
    except re2.error:
        pass
    try:
        return _Backtracking(regex.compile(written))
    except (regex.error, ValueError, OverflowError):
        return None


def compile_pattern(pattern: str, flags: str = "") -> _Pattern | None:
    """A user's or operator's pattern as lorebook keys are run (RE2, else `regex` with a
    timeout per search); None when neither engine reads it. Moderation rules use it."""
    return _compile(pattern, flags)


def _key_pattern(key: str, entry: Entry) -> _Pattern | None:
    """A pattern for keys written `/pattern/flags` (or any key when `use_regex` is set)."""
    written = _REGEX_KEY.match(key)
    if written:
        pattern, letters = written.groups()
        return _compile(pattern, "".join(flag for flag in "ims" if flag in letters))
    if entry.use_regex:
        return _compile(key, "" if entry.case_sensitive else "i")
    return None


def _matches(key: str, entry: Entry, text: str, folded: str) -> bool:
    key = key.strip()
    if not key:
        return False
    if entry.use_regex or _REGEX_KEY.match(key):
        pattern = _key_pattern(key, entry)
        return pattern is not None and pattern.found_in(text)
    if entry.case_sensitive:
        return key in text
    return key.casefold() in folded


def _triggered(entry: Entry, text: str, folded: str) -> bool:
    if not any(_matches(key, entry, text, folded) for key in entry.keys):
        return False
    secondary = [key for key in entry.secondary_keys if key.strip()]
    if not entry.selective or not secondary:
        return True
    hits = [_matches(key, entry, text, folded) for key in secondary]
    if entry.selective_logic == "and_any":
        return any(hits)
    if entry.selective_logic == "and_all":
        return all(hits)
    if entry.selective_logic == "not_any":
        return not any(hits)
    return not all(hits)  # not_all


def _active(book: Lorebook, scan_text: str) -> dict[int, Entry]:
    """Entries that fire: constants, then keys found in the text (and, when the book
    scans recursively, in the content of entries that fired, a few rounds deep)."""
    candidates = [(index, entry) for index, entry in enumerate(book.entries) if entry.enabled]
    active = {index: entry for index, entry in candidates if entry.constant}
    for _round in range(_MAX_RECURSION if book.recursive_scanning else 1):
        folded = scan_text.casefold()
        fired = []
        for index, entry in candidates:
            check_deadline("Matching the lorebook")
            if index not in active and _triggered(entry, scan_text, folded):
                fired.append((index, entry))
        if not fired:
            break
        active.update(fired)
        scan_text = "\n".join([scan_text, *(entry.content for _index, entry in fired)])
    return active


def select_entries(
    book: Lorebook,
    recent_texts: Sequence[str],
    *,
    count_tokens: Callable[[str], int],
    scan_depth: int | None = None,
    token_budget: int | None = None,
) -> list[Entry]:
    """The entries a turn's prompt gets, in insertion order, within the token budget.

    `recent_texts` are the chat's messages, oldest first; keys are looked for in
    the last `scan_depth` of them (the book's, else the argument's, else 2).
    Constant entries are always candidates. When the budget (the book's, else the
    argument's, else none) cannot hold every candidate, constants go first, then
    higher `priority`, then lower `insertion_order`; an entry that does not fit is
    left out and smaller ones after it may still be taken.
    """
    depth = book.scan_depth if book.scan_depth is not None else scan_depth
    depth = DEFAULT_SCAN_DEPTH if depth is None else depth
    window = list(recent_texts)[-depth:] if depth > 0 else []
    active = _active(book, "\n".join(window))
    budget = book.token_budget if book.token_budget is not None else token_budget
    ranked = sorted(
        active.items(),
        key=lambda item: (
            not item[1].constant,
            -item[1].priority,
            item[1].insertion_order,
            item[0],
        ),
    )
    chosen: list[tuple[int, Entry]] = []
    used = 0
    for index, entry in ranked:
        cost = count_tokens(entry.content)
        if budget is not None and used + cost > budget:
            continue
        used += cost
        chosen.append((index, entry))
    chosen.sort(key=lambda item: (item[1].insertion_order, item[0]))
    return [entry for _index, entry in chosen]
