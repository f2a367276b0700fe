"""How each backend's real replies went lately: the status probes' first witness.

A probe of its own can only say that a backend answered one small request; the
replies users got say whether it serves them. Each finished reply that names
its backend is kept (the newest few hundred per backend, in memory, per
process), and the probes read the outcomes and times to first token of those
that ended within their window.
"""

from __future__ import annotations

import statistics
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from personae.words import plural

_KEPT_PER_BACKEND = 256
_KEPT_BACKENDS = 64  # backends renamed by reloads must not grow this forever


@dataclass(frozen=True)
class _Outcome:
    at: float
    ok: bool
    first_token_ms: float | None


@dataclass(frozen=True)
class ReplySummary:
    """The replies a backend finished within a window."""

    replies: int
    failed: int
    first_token_s: float | None  # the median of the complete ones

    def describe(self, window_s: float) -> str:
        if not self.replies:
            return f"no reply finished in the last {window_s:g} s"
        complete = self.replies - self.failed
        replies = plural(self.replies, "reply", "replies")
        text = f"{complete} of {replies} in the last {window_s:g} s complete"
        if self.first_token_s is not None:
            text += f", first token after {self.first_token_s:.2f} s (median)"
        return text


class BackendReplies:
    """Recent reply outcomes per backend (fed by `Metrics.reply_finished`)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._outcomes: OrderedDict[str, deque[_Outcome]] = OrderedDict()

    def record(self, state: str, generation: Mapping[str, Any]) -> None:
        """Keep how a reply ended, when it names its backend. A stop asked by the user
        says nothing about the backend, so it is not kept."""
        backend = generation.get("backend")
        if not isinstance(backend, str) or state not in ("complete", "failed"):
            return
        first_ms = generation.get("first_token_ms")
        first = float(first_ms) if isinstance(first_ms, int | float) else None
        kept = self._outcomes.get(backend)
        if kept is None:
            kept = self._outcomes[backend] = deque(maxlen=_KEPT_PER_BACKEND)
            while len(self._outcomes) > _KEPT_BACKENDS:
                self._outcomes.popitem(last=False)
        kept.append(_Outcome(self._clock(), state == "complete", first))

    def summary(self, backend: str, *, window_s: float) -> ReplySummary:
        """The replies `backend` finished in the last `window_s` seconds."""
        since = self._clock() - window_s
        recent = [o for o in self._outcomes.get(backend, ()) if o.at >= since]
        firsts = [o.first_token_ms for o in recent if o.ok and o.first_token_ms is not None]
        median = round(statistics.median(firsts) / 1000, 3) if firsts else None
        return ReplySummary(len(recent), sum(not o.ok for o in recent), median)

    def completed_since(self, backend: str, moment: float) -> int:
        """Replies `backend` completed since `moment` (a reading of this clock)."""
        return sum(1 for o in self._outcomes.get(backend, ()) if o.ok and o.at >= moment)

    def now(self) -> float:
        return self._clock()
