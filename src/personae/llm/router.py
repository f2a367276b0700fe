"""Routing replies over a fleet of backends.

A conversation stays on the backend that served its previous turn while that
backend is healthy and has a free slot, so its prompt prefix stays in that
backend's cache (as SGLang's cache-aware router does); otherwise it goes to the
primaries in the order rendezvous hashing of the chat gives, the same order in
every process. When no primary can take it (all down or full), it goes to a
fallback backend, and the reply is labelled as such. Taking a backend takes one
of its slots; with several processes the slots are counted in the database over
all of them (`SharedSlots`), so a backend never has more requests in flight than
its slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from personae.llm.backends import BackendSpec
from personae.llm.base import Provider
from personae.llm.breaker import CircuitBreaker
from personae.llm.slots import SharedSlots

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
    # Prompt warm-ups running on it (lowest priority: not in `in_flight`), each with
    # what cancels it: a reply taking this backend cancels them all.
    warmups: dict[Choice, Callable[[], None]] = field(default_factory=dict)

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


@dataclass(eq=False)
class Choice:
    """A backend taken for one stream: one of its slots is this stream's until
    `give_back` (which is safe to call twice)."""

    backend: Backend
    fallback: bool
    # The slot's lease in the shared ledger (None where this process is the only one).
    lease: str | None = None
    router: Router | None = field(default=None, repr=False)
    given_back: bool = False
    # A prompt warm-up's, not a reply's: it holds no lease and yields to any reply.
    warmup: bool = False

    async def give_back(self) -> None:
        if not self.given_back and self.router is not None:
            self.given_back = True
            await self.router.give_back(self)


def rendezvous(key: str, backends: list[Backend]) -> list[Backend]:
    """`backends` in the order `key` prefers them (weighted rendezvous hashing): the
    same in every process, a backend's share of keys in proportion to its slots, and
    adding or removing a backend moves only the keys that go to or came from it."""

    def score(backend: Backend) -> float:
        digest = hashlib.blake2b(f"{key}/{backend.name}".encode(), digest_size=8).digest()
        uniform = (int.from_bytes(digest, "big") + 0.5) / 2**64  # in (0, 1)
        return -backend.spec.slots / math.log(uniform)

    return sorted(backends, key=score, reverse=True)


def _cancel_warmups(backend: Backend) -> None:
    for cancel in list(backend.warmups.values()):
        cancel()


class Router:
    """Chooses a backend per stream and holds its slot; knows each backend's health.

    With `shared` slots (several processes on one database), a backend's slots are
    counted over every process; otherwise this process's own count is the whole truth.
    """

    def __init__(
        self,
        backends: list[Backend],
        *,
        affinity: bool = True,
        shared: SharedSlots | None = None,
    ) -> None:
        self._backends = list(backends)
        self.affinity = affinity
        self._shared = shared
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

    async def room_beyond(self, busy_here: int) -> bool:
        """Whether one more reply would find a free slot, beside the `busy_here` this
        process runs (those claimed but not yet on a backend count as taking a slot).
        With shared slots, the free slots are counted over every process."""
        if self._shared is None:
            return busy_here < self.capacity()
        waiting_here = max(0, busy_here - sum(b.in_flight for b in self._backends))
        counted = await self._shared.count()
        free = sum(
            max(0, b.spec.slots - counted.get(b.name, 0)) for b in self._backends if b.usable()
        )
        return free > waiting_here

    async def take(
        self,
        chat_id: str | None,
        preferred: str | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Choice | None:
        """A free slot for the next stream of chat `chat_id`, last served by `preferred`:
        that backend while it has room (its cache holds the conversation), then the
        primaries in the chat's rendezvous order, then the fallbacks. None when every
        usable backend is full (or none is usable)."""
        candidates = [b for b in self._backends if b.name not in exclude and b.usable()]
        order = self._order(chat_id, preferred, candidates)
        return await self._take_first(order)

    async def take_idle(self, chat_id: str, preferred: str | None) -> Choice | None:
        """For a prompt warm-up of chat `chat_id`: the backend its next reply would take
        first, only while that backend serves nothing at all (no reply, no other warm-up,
        here or, with shared slots, in any process). The choice holds no lease, and a
        reply taking the backend cancels it (`on_cancel` given to `hold_warmup`)."""
        candidates = [b for b in self._backends if b.usable()]
        order = self._order(chat_id, preferred, candidates)
        if not order:
            return None
        first = order[0]
        if first.in_flight or first.warmups:
            return None
        if self._shared is not None and (await self._shared.count()).get(first.name, 0):
            return None
        choice = Choice(first, first.spec.role == "fallback", None, router=self, warmup=True)
        first.warmups[choice] = lambda: None
        return choice

    def hold_warmup(self, choice: Choice, on_cancel: Callable[[], None]) -> None:
        """What cancels the warm-up on `choice` when a reply takes its backend."""
        if not choice.given_back:
            choice.backend.warmups[choice] = on_cancel

    def cancel_warmups(self) -> None:
        """Cancel every warm-up of this process (a reply was queued: it goes first)."""
        for backend in self._backends:
            _cancel_warmups(backend)

    async def take_backend(self, backend: Backend, *, cancel_warmups: bool = True) -> Choice | None:
        """A free slot on `backend` itself (a probe's or a classifier's generation), or
        None. With `cancel_warmups` false its warm-ups go on: a few tokens' request
        then waits in the backend's queue for the warm-up chunk being read (one small
        chunk), and the warm-up reads its next chunk after it."""
        return await self._take_first([backend], cancel_warmups=cancel_warmups)

    async def _take_first(
        self, order: list[Backend], *, cancel_warmups: bool = True
    ) -> Choice | None:
        if self._shared is None:
            chosen = next((b for b in order if b.has_room()), None)
            lease = None
        else:
            taken = await self._shared.take_first([(b.name, b.spec.slots) for b in order])
            chosen = next((b for b in order if taken and b.name == taken[0]), None)
            lease = taken[1] if taken else None
        if chosen is None:
            return None
        chosen.in_flight += 1
        if cancel_warmups:
            _cancel_warmups(chosen)  # a reply never waits for more than a warm-up's chunk
        return Choice(chosen, chosen.spec.role == "fallback", lease, router=self)

    def _order(
        self, chat_id: str | None, preferred: str | None, candidates: list[Backend]
    ) -> list[Backend]:
        primaries = [b for b in candidates if b.spec.role == "primary"]
        fallbacks = [b for b in candidates if b.spec.role == "fallback"]
        if not self.affinity or chat_id is None:
            return self._by_load(primaries) + self._by_load(fallbacks)
        sticky = [b for b in primaries if b.name == preferred]
        rest = [b for b in primaries if b.name != preferred]
        return sticky + rendezvous(chat_id, rest) + rendezvous(chat_id, fallbacks)

    def _by_load(self, backends: list[Backend]) -> list[Backend]:
        """Least loaded (then highest priority) first; ties taken in turn."""
        if not backends:
            return []
        self._turn += 1
        turn = self._turn
        ranked = sorted(backends, key=lambda b: (b.load, -b.spec.priority, b.name))
        best = (ranked[0].load, -ranked[0].spec.priority)
        tied = [b for b in ranked if (b.load, -b.spec.priority) == best]
        rotated = tied[turn % len(tied) :] + tied[: turn % len(tied)]
        return rotated + ranked[len(tied) :]

    def has_usable(self, exclude: frozenset[str] = frozenset()) -> bool:
        """Whether some backend outside `exclude` can take replies (when `take` found
        none free, they are all busy: wait, don't fail)."""
        return any(b.name not in exclude and b.usable() for b in self._backends)

    async def wait_for_room(self, timeout_s: float) -> None:
        """Wait until some stream of this process ends (or the timeout passes: a slot
        freed by another process is seen at the next `take`)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), timeout_s)

    async def give_back(self, choice: Choice) -> None:
        """The stream on `choice` ended: its slot is free again."""
        backend = choice.backend
        if choice.warmup:
            backend.warmups.pop(choice, None)
            return
        backend.in_flight -= 1
        self._room.set()
        if backend.retired and not backend.in_flight:
            self._closing.add(asyncio.ensure_future(backend.close()))
        if choice.lease is not None and self._shared is not None:
            await self._shared.give_back(choice.lease)

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
