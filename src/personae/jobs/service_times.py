"""How long replies take: the scheduler's measures, and the start estimates of the line.

Each finished reply moves a moving average (overall, and for the backend that
wrote it); a place in line is estimated as waves of as many replies as there are
slots, each wave as long as the backends' measured speeds make it.
"""

from __future__ import annotations

import math

from personae.services.job_state import Outcome

_DEFAULT_SERVICE_S = 8.0
_EWMA_WEIGHT = 0.2


class ServiceTimes:
    """The moving measures of how long a reply takes, overall and by backend."""

    def __init__(self) -> None:
        self._overall_s = _DEFAULT_SERVICE_S
        self._by_backend: dict[str, float] = {}

    def of(self, backend: str) -> float:
        """How long a reply takes on `backend` (the overall measure until that backend
        has finished a reply)."""
        return self._by_backend.get(backend, self._overall_s)

    def measure(self, outcome: Outcome) -> None:
        """Move the overall and the backend's measures towards this reply's."""
        self._overall_s += _EWMA_WEIGHT * (outcome.service_s - self._overall_s)
        if outcome.backend is not None:
            known = self._by_backend.get(outcome.backend)
            if known is None:
                self._by_backend[outcome.backend] = outcome.service_s
            else:
                self._by_backend[outcome.backend] = known + _EWMA_WEIGHT * (
                    outcome.service_s - known
                )

    def estimate_start_s(self, position: int, slots: dict[str, int], capacity: int) -> float:
        """Waves of `slots` replies (`capacity` when no backend reports slots), each
        as long as the backends' measures make it (one twice as fast serves twice as
        many)."""
        capacity = sum(slots.values()) or max(1, capacity)
        # Replies a second over all slots; the one-wave time is capacity / that rate.
        rate = sum(n / self.of(name) for name, n in slots.items())
        wave_s = capacity / rate if rate > 0 else self._overall_s
        return round(math.ceil(position / capacity) * wave_s, 1)
