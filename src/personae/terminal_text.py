"""Text for a terminal: messages wrapped at word boundaries to its width, paragraphs kept,
also while a reply streams in token by token."""

from __future__ import annotations

import shutil
import textwrap
from typing import TextIO


def terminal_width() -> int:
    """The terminal's columns ($COLUMNS when set, 80 when not a terminal), at least 20."""
    return max(20, shutil.get_terminal_size((80, 24)).columns)


def wrap_message(prefix: str, text: str, width: int) -> str:
    """`prefix` then `text`, each paragraph (line) wrapped to `width` on its own; empty
    lines stay, so paragraphs and line breaks the character wrote are kept."""
    lines: list[str] = []
    for number, paragraph in enumerate(text.split("\n")):
        start = prefix if number == 0 else ""
        if not paragraph.strip():
            lines.append(start.rstrip())
            continue
        lines.extend(
            textwrap.wrap(
                paragraph,
                width,
                initial_indent=start,
                break_on_hyphens=False,
                drop_whitespace=True,
            )
            or [start.rstrip()]
        )
    return "\n".join(lines)


class StreamWrapper:
    """Writes text that arrives in pieces, breaking lines only between words: a word
    is held back until the space after it shows that it is whole. A word longer than
    the width fills the line it starts on and goes on below, as textwrap cuts it."""

    def __init__(self, out: TextIO, width: int, *, column: int = 0) -> None:
        self._out = out
        self._width = width
        self._column = column
        self._indent = column  # the first line starts after a prefix
        self._word = ""
        self._spaces = ""

    def write(self, text: str) -> None:
        for char in text:
            if char == "\n":
                self._flush_word()
                self._newline()
                self._spaces = ""
            elif char.isspace():
                self._flush_word()
                self._spaces += " "
            else:
                self._word += char
        self._out.flush()

    def finish(self) -> None:
        """Write the last word (the reply ended)."""
        self._flush_word()
        self._spaces = ""
        self._out.flush()

    def _flush_word(self) -> None:
        if not self._word:
            return
        spaces = self._spaces if self._column > self._indent else ""
        word, self._word, self._spaces = self._word, "", ""
        if len(word) > self._width - self._indent:
            # Too long for any line: fill this one and go on below (textwrap's way).
            room = self._width - self._column - len(spaces)
            if room < 1:
                self._newline()
                spaces, room = "", self._width
            self._out.write(spaces + word[:room])
            self._column += len(spaces) + room
            word = word[room:]
            while word:
                self._newline()
                self._out.write(word[: self._width])
                self._column = min(len(word), self._width)
                word = word[self._width :]
            return
        if self._column + len(spaces) + len(word) > self._width:
            self._newline()
            spaces = ""
        self._out.write(spaces + word)
        self._column += len(spaces) + len(word)

    def _newline(self) -> None:
        self._out.write("\n")
        self._column = self._indent = 0
