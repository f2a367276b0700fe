"""SQLite's writer lock: one holder; urgent writers first; cancellation never leaks it."""

from __future__ import annotations

import asyncio

from personae.storage.writer_lock import WriterLock


async def test_waiting_urgent_writers_go_before_earlier_ordinary_ones() -> None:
    lock = WriterLock()
    order: list[str] = []

    async def write(name: str, urgent: bool) -> None:
        async with lock.hold(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0.01)

    async with lock.hold():
        tasks = [
            asyncio.create_task(write("ordinary-1", False)),
            asyncio.create_task(write("ordinary-2", False)),
            asyncio.create_task(write("urgent", True)),
        ]
        await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    assert order == ["urgent", "ordinary-1", "ordinary-2"]


async def test_a_cancelled_waiter_does_not_keep_the_lock() -> None:
    lock = WriterLock()
    async with lock.hold():
        waiting = asyncio.create_task(lock._acquire(False))
        await asyncio.sleep(0)
        waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    async with asyncio.timeout(1), lock.hold():
        pass
