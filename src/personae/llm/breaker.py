"""A circuit breaker per backend: closed, open, half-open."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after `threshold` failures in a row; after its open time lets one trial
    through (half-open); the trial's success closes it, its failure opens it again for
    twice as long (up to `max_open_s`).

    The first open time is short (a backend that blipped is back within seconds, and
    replies wait for it rather than fail); it grows while the backend stays down, so a
    long outage costs a trial request only now and then.
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        reset_after_s: float = 2.0,
        max_open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = threshold
        self._first_open_s = reset_after_s
        self._max_open_s = max_open_s
        self._open_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._open_s:
            return "half_open"
        return "open"

    def available(self) -> bool:
        """Whether a request may go to this backend now (without taking the trial)."""
        state = self.state
        return state == "closed" or (state == "half_open" and not self._trial_running)

    def acquire(self) -> bool:
        """Take permission for one request; in half-open only one trial at a time."""
        if not self.available():
            return False
        if self.state == "half_open":
            self._trial_running = True
        return True

    def release_trial(self) -> None:
        """The request that took the trial ended without an answer either way (it was
        never sent): the next request may take the trial."""
        self._trial_running = False

    def success(self) -> None:
        """The backend answered (a first token is enough): close."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False
        self._open_s = self._first_open_s

    def failure(self) -> None:
        self._failures += 1
        trial_failed = self.state == "half_open"
        self._trial_running = False
        if trial_failed:
            self._open_s = min(self._open_s * 2, self._max_open_s)
        if trial_failed or self._failures >= self._threshold:
            self._opened_at = self._clock()
