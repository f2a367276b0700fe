"""Routing replies over a fleet of backends.

A conversation stays on the backend that served its previous turn while that
backend is healthy and has a free slot, so its prompt prefix stays in that
backend's cache (as SGLang's cache-aware router does); otherwise it goes to the
least loaded healthy primary. When no primary can take it (all down or full),
it goes to a fallback backend, and the reply is labelled as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from personae.llm.backends import BackendSpec
from personae.llm.base import Provider
from personae.llm.breaker import CircuitBreaker

log = logging.getLogger("personae.router")


@dataclass(eq=False)
class Backend:
    spec: BackendSpec
    provider: Provider
    close: Callable[[], Awaitable[None]]
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    in_flight: int = 0
    healthy: bool = True  # the last active probe's answer
    retired: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def load(self) -> float:
        return self.in_flight / max(1, self.spec.slots)

    def usable(self) -> bool:
        return not self.retired and self.healthy and self.breaker.available()

    def is_down(self) -> bool:
        """Its last probe failed, or its breaker is not closed (asked again often)."""
        return not self.healthy or self.breaker.state != "closed"

    def has_room(self) -> bool:
        return self.in_flight < self.spec.slots


@dataclass(frozen=True)
class Choice:
    backend: Backend
    fallback: bool


class Router:
    """Chooses a backend per reply; knows each backend's load and health."""

    def __init__(self, backends: list[Backend], *, affinity: bool = True) -> None:
        self._backends = list(backends)
        self.affinity = affinity
        # Backends removed while streams ran on them, closing once those end.
        self._closing: set[asyncio.Future[None]] = set()
        self._turn = -1
        self._room = asyncio.Event()

    @property
    def backends(self) -> list[Backend]:
        return list(self._backends)

    def capacity(self) -> int:
        """Concurrent replies the usable backends can write (the scheduler's limit).

        0 while every backend is down or its breaker open: replies then wait in line
        (their queue events say why) until a backend is back, or their deadline passes.
        """
        return sum(b.spec.slots for b in self._backends if b.usable())

    def usable_slots(self) -> dict[str, int]:
        """The slots of each usable backend, by name."""
        return {b.name: b.spec.slots for b in self._backends if b.usable()}

    def choose(self, preferred: str | None, exclude: frozenset[str] = frozenset()) -> Choice | None:
        """The backend for the next stream of a conversation last served by `preferred`."""
        candidates = [b for b in self._backends if b.name not in exclude and b.usable()]
        primaries = [b for b in candidates if b.spec.role == "primary"]
        if self.affinity and preferred:
            sticky = next((b for b in primaries if b.name == preferred), None)
            if sticky is not None and sticky.has_room():
                return Choice(sticky, fallback=False)
        with_room = [b for b in primaries if b.has_room()]
        if with_room:
            return Choice(self._least_loaded(with_room), fallback=False)
        fallbacks = [b for b in candidates if b.spec.role == "fallback" and b.has_room()]
        if fallbacks:
            return Choice(self._least_loaded(fallbacks), fallback=True)
        return None

    def _least_loaded(self, backends: list[Backend]) -> Backend:
        """The least loaded (then highest priority) backend; ties taken in turn."""
        best = min((b.load, -b.spec.priority) for b in backends)
        tied = sorted(
            (b for b in backends if (b.load, -b.spec.priority) == best), key=lambda b: b.name
        )
        self._turn += 1
        return tied[self._turn % len(tied)]

    def all_busy(self, exclude: frozenset[str] = frozenset()) -> bool:
        """Whether usable backends exist but every slot is taken (wait, don't fail)."""
        usable = [b for b in self._backends if b.name not in exclude and b.usable()]
        return bool(usable) and not any(b.has_room() for b in usable)

    async def wait_for_room(self, timeout_s: float) -> None:
        """Wait until some stream ends (or the timeout passes)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout_s)

    @contextlib.contextmanager
    def using(self, backend: Backend) -> Iterator[None]:
        """Count a stream against a backend's slots while it runs."""
        backend.in_flight += 1
        try:
            yield
        finally:
            backend.in_flight -= 1
            self._room.set()
            if backend.retired and not backend.in_flight:
                self._closing.add(asyncio.ensure_future(backend.close()))

    async def replace(self, backends: list[Backend]) -> None:
        """Swap in a new list (hot reload). Streams on a removed backend go on until they
        end, then it is closed; backends kept by name keep their state."""
        kept = {b.name: b for b in self._backends}
        merged = []
        for new in backends:
            old = kept.pop(new.name, None)
            if old is not None and old.spec == new.spec:
                merged.append(old)
                await new.close()
            else:
                merged.append(new)
                if old is not None:
                    kept[old.name] = old
        self._backends = merged
        for gone in kept.values():
            gone.retired = True
            if not gone.in_flight:
                await gone.close()

    def any_down(self) -> bool:
        """Whether some backend failed its last probe or has its breaker open."""
        return any(b.is_down() for b in self._backends)

    async def probe(self, *, only_down: bool = False) -> None:
        """Ask every backend (or those `any_down` means) whether it is alive."""

        async def _one(backend: Backend) -> None:
            try:
                healthy = await asyncio.wait_for(backend.provider.health(), 10)
            except Exception:
                healthy = False
            if healthy != backend.healthy:
                log.warning(
                    "backend health changed",
                    extra={"backend": backend.name, "healthy": healthy},
                )
            backend.healthy = healthy

        await asyncio.gather(*(_one(b) for b in self._backends if not only_down or b.is_down()))

    async def aclose(self) -> None:
        for backend in self._backends:
            await backend.close()
        self._backends = []
        await asyncio.gather(*self._closing, return_exceptions=True)
