"""Trimming a reply the token limit cut to its last whole sentence.

A reply that ran into `max_tokens` stops wherever the limit fell, often mid-word
("...That's how I make a living...\n\nIt"). What a person should see is the reply up
to its last finished sentence, with the role-play markers it opened closed again
(`*she turns to the door.` becomes `*she turns to the door.*`), and a Continue
action for the rest.

One pass over the text, no regular expression: the cost is linear in the reply's
length whatever it holds (it runs inline on the reply's job, over model output).
"""

from __future__ import annotations

from dataclasses import dataclass

from personae.services.job_state import Draft
from personae.voice.sentences import is_abbreviation

# What ends a sentence; the CJK full stops need no space after them.
_ENDS = frozenset(".!?…。！？‼⁇⁈⁉")
_CJK_ENDS = frozenset("。！？")
# Markers that open and close the same way (a run of asterisks is one marker:
# `*action*` and `**bold**`), and pairs.
_TOGGLES = frozenset('*"')
_PAIRS = {"“": "”", "「": "」", "『": "』", "«": "»", "(": ")", "[": "]"}
_CLOSERS = {closer: opener for opener, closer in _PAIRS.items()}
# Closing single quotes after a sentence's end belong to it ('...he said.').
_TRAILING = frozenset("'’")
# Open markers remembered at once (deeper nesting is not role-play prose).
_MAX_OPEN = 16


@dataclass(frozen=True)
class Trimmed:
    """The text to keep, and where the original was cut (`cut == len(text)`: nothing
    was cut, either because it ended at a sentence or because it has no sentence end
    after `floor`)."""

    text: str
    cut: int


class _Markers:
    """The role-play markers open at a point of the text: toggles and pairs, innermost
    last, each as (opener, closer)."""

    def __init__(self) -> None:
        self.open: list[tuple[str, str]] = []

    def toggle(self, marker: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == marker:
                del self.open[index]
                return
        self.push(marker, marker)

    def push(self, opener: str, closer: str) -> None:
        if len(self.open) < _MAX_OPEN:
            self.open.append((opener, closer))

    def close(self, closer: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][1] == closer:
                del self.open[index]
                return

    def closes_open(self, run: str) -> bool:
        """Whether `run` (a toggle run or a pair's closer) would close an open marker."""
        return any(closer == run for _opener, closer in self.open)

    def feed(self, run: str) -> None:
        if run[0] in _TOGGLES:
            self.toggle(run)
        elif run in _PAIRS:
            self.push(run, _PAIRS[run])
        elif run in _CLOSERS:
            self.close(run)

    def closing(self) -> str:
        return "".join(closer for _opener, closer in reversed(self.open))


def _run_at(text: str, index: int) -> str:
    """The marker at `index`: a run of one toggle character, or one pair character."""
    char = text[index]
    if char not in _TOGGLES:
        return char
    end = index + 1
    while end < len(text) and text[end] == char:
        end += 1
    return text[index:end]


def trim_to_sentence(text: str, floor: int = 0) -> Trimmed:
    """Cut `text` after its last whole sentence ending after `floor` (text before it
    was shown finished before, and is never cut), closing the markers left open.

    A sentence ends at . ! ? … (repeated or mixed: "?!", "...") followed by the
    quotes, asterisks and brackets that close there, then a space, a line break or
    the end; at 。！？ without a space; a paragraph ends at a line break, and an
    `*action*` where it closes (nothing else open) before a space. With
    no such end after `floor`, the text is kept as it is.
    """
    markers = _Markers()
    best: tuple[int, str] | None = None
    # Whether the text after the floor has anything but spaces yet (kept as a flag:
    # looking back at each line break would make the pass quadratic).
    spoken = False
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\n":
            if spoken:
                best = (index, markers.closing())
            index += 1
            continue
        if char not in _ENDS:
            run = _run_at(text, index)
            closes_action = run == "*" and markers.closes_open(run)
            markers.feed(run)
            index += len(run)
            spoken = spoken or (index > floor and not char.isspace())
            # A finished `*action*` ends a piece of role-play as a sentence does.
            after = index == length or text[index].isspace()
            if closes_action and after and index > floor and not markers.open:
                best = (index, "")
            continue
        end = index
        while end < length and text[end] in _ENDS:
            end += 1
        cjk = text[end - 1] in _CJK_ENDS
        single_dot = end - index == 1 and char == "."
        # The closers of what the sentence opened, and closing single quotes.
        while end < length:
            run = _run_at(text, end)
            if run[0] in _TRAILING or markers.closes_open(run):
                markers.feed(run)
                end += len(run)
                continue
            break
        boundary = end == length or text[end].isspace() or cjk
        if boundary and end > floor and not (single_dot and is_abbreviation(text, index)):
            best = (end, markers.closing())
        spoken = spoken or end > floor
        index = end
    if best is None:
        return Trimmed(text, length)
    cut, closing = best
    kept = text[:cut].rstrip()
    if len(kept) <= floor or not kept[floor:].strip():
        return Trimmed(text, length)
    return Trimmed(kept + closing, cut)


def trim_cut_draft(draft: Draft, floor: int) -> None:
    """End a reply the token limit cut at its last whole sentence, marked cut short.
    The text cut off is kept in its generation record (nothing written is deleted);
    a continued reply is trimmed only within what the continuation wrote (`floor`)."""
    trimmed = trim_to_sentence(draft.text, min(floor, len(draft.text)))
    if trimmed.cut < len(draft.text):
        draft.generation["trimmed"] = draft.text[trimmed.cut :]
    draft.text = trimmed.text
    draft.cut_short = True
