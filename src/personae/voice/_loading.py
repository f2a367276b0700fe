"""Loading a blocking engine once, in a thread, whoever asks first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoadedOnce(Generic[T]):
    """`await get()` loads with `load` in a thread at the first call; later calls (and
    calls made meanwhile) get the same object. `run(fn, ...)` calls a blocking method
    of it in a thread, one call at a time (the engines' native parts, such as espeak's
    phonemizer, are not all safe across threads)."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._value: T | None = None
        self._loading = asyncio.Lock()
        self._running = threading.Lock()

    async def get(self) -> T:
        if self._value is None:
            async with self._loading:
                if self._value is None:
                    self._value = await asyncio.to_thread(self._load)
        return self._value

    async def run(self, work: Callable[[T], object]) -> object:
        value = await self.get()

        def locked() -> object:
            with self._running:
                return work(value)

        return await asyncio.to_thread(locked)
