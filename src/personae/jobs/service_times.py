"""How long replies take: the scheduler's measures, and the start estimates of the line.

Each finished reply moves a moving average (overall, and for the backend that
wrote it); a place in line is estimated as waves of as many replies as there are
slots, each wave as long as the backends' measured speeds make it.
"""

from __future__ import annotations

from personae.services.fleet_view import DEFAULT_SERVICE_S, start_in_waves_s
from personae.services.job_state import Outcome

_EWMA_WEIGHT = 0.2


class ServiceTimes:
    """The moving measures of how long a reply takes, overall and by backend."""

    def __init__(self) -> None:
        self._overall_s = DEFAULT_SERVICE_S
        self._by_backend: dict[str, float] = {}

    @property
    def overall_s(self) -> float:
        return self._overall_s

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
        """`start_in_waves_s` over this process's measures."""
        return start_in_waves_s(
            position, slots, self.of, fallback_capacity=capacity, fallback_s=self._overall_s
        )
