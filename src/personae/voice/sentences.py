"""A reply's text as sentences to speak: where sentences end, and what of each is said.

Sentences end where the moderation gate cuts them (`SENTENCE_END`, used by
services/moderation.py's SentenceGate too): a read-aloud never speaks a sentence
the gate has not checked, because it speaks only sentences that end at one of the
gate's ends, once the reply has gone on past it (`SentenceSplitter.feed`'s
`settled`). A full stop after an abbreviation or an initial ("Mr.", "J.") does not
end a sentence to be spoken (reply_trim.py reads abbreviations the same way).

What is said of a sentence (`Speakable`): the words, without markdown (emphasis
markers, headings, list bullets, inline code markers; a link's text without its
address; code blocks and bare URLs left out) and without role-play actions: a
`*span of several words*` is an action and is not spoken, a `*single*` word is
emphasis and is. An action may run over several sentences: `Speakable` reads a
reply's sentences in order and remembers an open one.

Pure text work, linear in the text; nothing here touches an engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? or … (with closing quotes or brackets) before a space, or
# at a line break.
SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]*_]*(?=\s)|\n")
# A full stop after one of these is not a sentence's end ("Mr. Holmes").
ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "vs", "etc", "e.g", "i.e", "mt"}
)
# The longest piece of a sentence given to an engine at once: a longer sentence is cut
# at a comma (or a space) before this, so no synthesis runs for minutes.
PIECE_MAX_CHARS = 300

_LINK = re.compile(r"\[([^\]\n]{0,500})\]\([^)\s]{0,2000}\)")
_URL = re.compile(r"https?://\S+")
_LINE_MARK = re.compile(r"^[ \t]*(?:#{1,6}|[-+>]|\d{1,3}[.)])[ \t]+", re.MULTILINE)
_UNDERSCORES = re.compile(r"(?<!\w)_+|_+(?!\w)")
_SPACES = re.compile(r"\s+")


def is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at `dot` ends an abbreviation or an initial ("J.")."""
    start = dot
    # Bounded: the longest abbreviation is short, and a long word is none.
    while start > max(0, dot - 6) and (text[start - 1].isalpha() or text[start - 1] == "."):
        start -= 1
    word = text[start:dot]
    if len(word) == 1 and word.isupper():
        return True
    return word.lower() in ABBREVIATIONS


def _not_an_end(text: str, start: int, dot: int) -> bool:
    """Whether the full stop at `dot` ends an abbreviation, or a list's number ("2.")
    that begins the sentence starting at `start`."""
    return is_abbreviation(text, dot) or text[start:dot].strip().isdigit()


@dataclass(frozen=True)
class Sentence:
    """`text[start:end]` of a reply, as written."""

    start: int
    end: int
    text: str


class SentenceSplitter:
    """Cuts a growing text into sentences, each once, in order."""

    def __init__(self) -> None:
        self.done = 0  # where the next sentence starts

    def feed(self, text: str, settled: int) -> list[Sentence]:
        """The sentences of `text` completed since the last call whose end lies before
        `settled` (how far the text is known to have been checked and gone on)."""
        found: list[Sentence] = []
        for match in SENTENCE_END.finditer(text, self.done):
            end = match.end()
            if end >= settled:
                break
            if match.group() == "." and _not_an_end(text, self.done, match.start()):
                continue
            found.append(Sentence(self.done, end, text[self.done : end]))
            self.done = end
        return found

    def finish(self, text: str) -> list[Sentence]:
        """The rest of a text that will not grow any more: its sentences and its
        unfinished end."""
        found = self.feed(text, len(text) + 1)
        if self.done < len(text):
            found.append(Sentence(self.done, len(text), text[self.done :]))
            self.done = len(text)
        return found


class Speakable:
    """What is said of a reply's sentences, read in order (see the module's notes)."""

    def __init__(self) -> None:
        self._in_action = False
        self._in_code = False

    def say(self, sentence: str) -> str:
        """The words of one sentence to speak; "" when nothing in it is spoken."""
        kept: list[str] = []
        index, length = 0, len(sentence)
        while index < length:
            if sentence.startswith("```", index):
                self._in_code = not self._in_code
                index += 3
                continue
            char = sentence[index]
            if self._in_code:
                index += 1
            elif char == "*":
                index = self._asterisks(sentence, index, kept)
            elif self._in_action:
                index += 1
            else:
                kept.append(char)
                index += 1
        return _plain("".join(kept))

    def _asterisks(self, sentence: str, index: int, kept: list[str]) -> int:
        """Read the run of asterisks at `index`; returns where reading goes on."""
        end = index
        while end < len(sentence) and sentence[end] == "*":
            end += 1
        if end - index > 1:  # **bold**: the markers go, the words stay
            return end
        if self._in_action:
            self._in_action = False
            return end
        close = sentence.find("*", end)
        if close != -1 and not sentence.startswith("**", close):
            inner = sentence[end:close].strip()
            if inner and not any(char.isspace() for char in inner):
                kept.append(inner)  # *one* emphasised word
                return close + 1
        self._in_action = True
        return end


def _plain(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    text = _LINE_MARK.sub("", text)
    text = _UNDERSCORES.sub("", text.replace("`", "").replace("~~", ""))
    text = _SPACES.sub(" ", text).strip()
    return text if any(char.isalnum() for char in text) else ""


def pieces(text: str, limit: int = PIECE_MAX_CHARS) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut after a comma, semicolon or
    colon where there is one in the second half of the piece, else at a space."""
    found: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = limit - 1
        found.append(text[: cut + 1].strip())
        text = text[cut + 1 :].strip()
    if text:
        found.append(text)
    return found
