"""The reply quality gate: catch loops, gibberish, empty replies and leaked markup.

Scored while the reply streams, on word tokens (no tokenizer needed): a pattern
of 16 or more tokens repeated 4 times stops the stream at once; the rest is
judged when the reply ends.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

_TOKEN = re.compile(r"\w+|[^\w\s]")
_LEAKS = re.compile(
    r"<\|im_(start|end)\|>|<\|(endoftext|eot_id|start_header_id|end_header_id)\|>|"
    r"</?s>|\[/?INST\]|^\s*(system|assistant|user)\s*:|\n\s*(system|assistant|user)\s*:",
    re.IGNORECASE,
)
PATTERN_TOKENS = 16
PATTERN_REPEATS = 4
MAX_REPEATED_4GRAM_SHARE = 0.5
MIN_COMPRESSION_RATIO = 0.18
_MIN_TOKENS_TO_JUDGE = 24


@dataclass(frozen=True)
class Verdict:
    ok: bool
    label: str
    detail: str = ""


OK = Verdict(True, "ok")


def repeated_4gram_share(tokens: list[str]) -> float:
    """The share of 4-grams that already appeared earlier in the reply."""
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    repeated = sum(count - 1 for count in counts.values())
    return repeated / len(grams)


def compression_ratio(text: str) -> float:
    """Compressed size over raw size: degenerate text compresses far too well."""
    raw = text.encode()
    return len(zlib.compress(raw, 9)) / len(raw) if raw else 1.0


class QualityMonitor:
    """Feed pieces as they stream; `looping` says when to stop; `verdict` judges the end."""

    def __init__(self, stop_strings: tuple[str, ...] = ()) -> None:
        self._text = ""
        self._tokens: list[str] = []
        self._stop_strings = tuple(s for s in stop_strings if s.strip())
        self.looping = False

    @property
    def text(self) -> str:
        return self._text

    def feed(self, piece: str) -> None:
        self._text += piece
        self._tokens = _TOKEN.findall(self._text)
        if not self.looping:
            self.looping = self._has_repeated_pattern()

    def _has_repeated_pattern(self) -> bool:
        """Whether the newest tokens end a pattern of >= 16 tokens seen 4 times in a row."""
        tokens = self._tokens
        longest = len(tokens) // PATTERN_REPEATS
        for size in range(PATTERN_TOKENS, longest + 1):
            tail = tokens[-size:]
            if all(
                tokens[len(tokens) - size * (k + 1) : len(tokens) - size * k] == tail
                for k in range(1, PATTERN_REPEATS)
            ):
                return True
        return False

    def verdict(self) -> Verdict:
        text = self._text
        if not text.strip():
            return Verdict(False, "empty", "the model returned no text")
        if self.looping:
            return Verdict(False, "repetitive", "a passage repeated itself four times")
        if _LEAKS.search(text) or any(stop in text for stop in self._stop_strings):
            return Verdict(False, "leaked_markup", "role tags or stop strings in the text")
        if len(self._tokens) >= _MIN_TOKENS_TO_JUDGE:
            share = repeated_4gram_share(self._tokens)
            if share > MAX_REPEATED_4GRAM_SHARE:
                return Verdict(False, "repetitive", f"{share:.0%} of 4-grams repeat")
            ratio = compression_ratio(text)
            if ratio < MIN_COMPRESSION_RATIO:
                return Verdict(False, "gibberish", f"compresses to {ratio:.0%}")
        return OK
