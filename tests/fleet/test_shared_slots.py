"""Backend slots over several processes: routers of three processes on one PostgreSQL
never hold more of a backend's slots than it has, a dead process's slots come back
with its heartbeat, and a chat ranks backends the same way in every process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conftest import POSTGRES_URL
from personae.llm.backends import BackendSpec
from personae.llm.router import Backend, Router, rendezvous
from personae.llm.slots import SharedSlots
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo


class _Silent:
    """A provider nobody calls: these tests take and give back slots only."""

    name = "silent"


def _backend(name: str, slots: int, role: str = "primary") -> Backend:
    async def close() -> None:
        return None

    spec = BackendSpec(name=name, url=f"http://127.0.0.1:1/{name}", slots=slots, role=role)  # type: ignore[arg-type]
    return Backend(spec=spec, provider=_Silent(), close=close)  # type: ignore[arg-type]


def test_a_chat_ranks_backends_the_same_everywhere_and_shares_follow_the_slots() -> None:
    first = [_backend("a", 2), _backend("b", 2), _backend("c", 4)]
    again = [_backend("c", 4), _backend("a", 2), _backend("b", 2)]
    chats = [f"chat-{number}" for number in range(4000)]
    tops = [rendezvous(chat, first)[0].name for chat in chats]
    assert tops == [rendezvous(chat, again)[0].name for chat in chats], "order-independent"
    share = {name: tops.count(name) / len(tops) for name in "abc"}
    assert share["c"] == pytest.approx(0.5, abs=0.04), share
    assert share["a"] == pytest.approx(0.25, abs=0.04), share
    # Removing b moves only b's chats: the others keep their backend.
    without_b = [rendezvous(chat, [first[0], first[2]])[0].name for chat in chats]
    assert all(now == before for now, before in zip(without_b, tops, strict=True) if before != "b")


async def test_without_sharing_a_full_backend_spills_to_the_next_in_the_chats_order() -> None:
    router = Router([_backend("a", 1), _backend("b", 1)])
    order = [b.name for b in rendezvous("chat-1", router.backends)]
    first = await router.take("chat-1")
    second = await router.take("chat-1")
    assert first is not None and second is not None
    assert [first.backend.name, second.backend.name] == order
    assert await router.take("chat-1") is None, "both full"
    await first.give_back()
    await first.give_back()  # twice is once
    third = await router.take("chat-1")
    assert third is not None and third.backend.name == order[0]
    assert [b.in_flight for b in router.backends] == [1, 1]


@pytest.mark.skipif(not POSTGRES_URL, reason="slots shared by processes need PostgreSQL")
async def test_three_processes_never_hold_more_than_a_backends_slots(
    make_settings: Callable[..., Settings],
) -> None:
    url = make_settings().resolved_database_url
    databases = [Database(url) for _ in range(3)]
    owners = [f"process-{number}" for number in range(3)]
    try:
        for database, owner in zip(databases, owners, strict=True):
            async with database.write() as tx:
                await job_repo.heartbeat(tx, owner)
        shared = [
            SharedSlots(database, owner) for database, owner in zip(databases, owners, strict=True)
        ]
        routers = [Router([_backend("a", 3), _backend("b", 2)], shared=slots) for slots in shared]
        # Twenty takers at once, spread over the three processes, all for one chat.
        taken = await asyncio.gather(*(routers[n % 3].take("chat-1") for n in range(20)))
        held = [choice for choice in taken if choice is not None]
        assert sorted(c.backend.name for c in held) == ["a", "a", "a", "b", "b"]
        assert await shared[0].count() == {"a": 3, "b": 2}
        assert not await routers[0].room_beyond(0)

        # A slot given back in one process is free for another.
        await held[0].give_back()
        on_slots = sum(b.in_flight for b in routers[1].backends)
        assert await routers[1].room_beyond(on_slots)
        assert not await routers[1].room_beyond(on_slots + 1), "a claimed reply takes it"
        again = await routers[1].take("chat-2")
        assert again is not None and again.backend.name == held[0].backend.name

        # Process 1, which took that slot, dies: once its heartbeat is stale, its slots
        # are free again (the others beat on).
        victim = 1
        alive = [n for n in range(3) if n != victim]
        dead = [c for c in [*held[1:], again] if c.router is routers[victim]]
        await asyncio.sleep(1.2)
        async with databases[alive[0]].write() as tx:
            for number in alive:
                await job_repo.heartbeat(tx, owners[number])
            await job_repo.release_dead(tx, owner=owners[alive[0]], dead_after_s=1.0)
        counted = await shared[alive[0]].count()
        assert sum(counted.values()) == 5 - len(dead)
    finally:
        for database in databases:
            await database.dispose()
