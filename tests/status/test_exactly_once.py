"""Effects users see happen once though several processes share one database.

On PostgreSQL two apps (two processes' worth of services) run on one database;
on SQLite one process is the deployment, so one app is enough.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from conftest import POSTGRES_URL, serve_app
from personae.app import create_app
from personae.container import Container
from personae.services.webhooks import WEBHOOK_ID_HEADER
from personae.settings import Settings

PROCESSES = 2 if POSTGRES_URL else 1


class Receiver:
    """A webhook receiver that notes the `Webhook-Id` of every request it gets."""

    def __init__(self, *, hold_first: bool = False) -> None:
        self.ids: list[str] = []
        self.first_arrived = asyncio.Event()
        self._hold_first = hold_first

    async def hook(self, request: Request) -> Response:
        self.ids.append(request.headers[WEBHOOK_ID_HEADER])
        await request.json()
        if self._hold_first and len(self.ids) == 1:
            self.first_arrived.set()
            await asyncio.sleep(2)  # its sender dies before it hears back
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])


@asynccontextmanager
async def _containers(settings: Settings, count: int) -> AsyncIterator[list[Container]]:
    async with AsyncExitStack() as stack:
        containers = []
        for _ in range(count):
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            containers.append(app.state.container)
        yield containers


async def _eventually(check: Callable[[], Any], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "not true in time"
        await asyncio.sleep(0.05)


async def test_concurrent_senders_deliver_each_event_once_with_its_id(
    make_settings: Callable[..., Settings],
) -> None:
    receiver = Receiver()
    settings = make_settings(probe_interval_s=0, webhook_allow_private=True)
    async with (
        serve_app(receiver.app()) as receiver_url,
        _containers(settings, PROCESSES) as containers,
    ):
        first = containers[0]
        subscriptions = [await first.webhooks.subscribe(f"{receiver_url}/hook") for _ in range(2)]
        for number in range(10):
            await first.incidents.open(f"Trouble {number}", "Looking into it.")
        # Every process's background sender runs too; these calls add to the race.
        for _ in range(3):
            await asyncio.gather(*(c.webhooks.deliver_due() for c in containers for _ in range(3)))

        async def all_delivered() -> bool:
            found = [d for s in subscriptions for d in await first.webhooks.deliveries(s.id)]
            return len(found) == 20 and all(d.status == "delivered" for d in found)

        await _eventually(all_delivered)
        await asyncio.sleep(1.5)  # a duplicate in flight would land now
        delivered = [d for s in subscriptions for d in await first.webhooks.deliveries(s.id)]
    assert len(receiver.ids) == 20, "each delivery was sent once"
    assert sorted(receiver.ids) == sorted(d.id for d in delivered)
    assert all(d.attempts == 1 for d in delivered)


async def test_a_delivery_whose_sender_died_is_sent_again_with_the_same_id(
    make_settings: Callable[..., Settings],
) -> None:
    receiver = Receiver(hold_first=True)
    settings = make_settings(
        probe_interval_s=0, webhook_timeout_s=1.0, webhook_lease_s=0.5, webhook_allow_private=True
    )
    async with serve_app(receiver.app()) as receiver_url:
        async with _containers(settings, 1) as (doomed,):
            subscription = await doomed.webhooks.subscribe(f"{receiver_url}/hook")
            await doomed.incidents.open("Trouble", "Looking into it.")
            await asyncio.wait_for(receiver.first_arrived.wait(), 10)
        # The sender is gone mid-request: its try was never recorded, its lease runs out.
        async with _containers(settings, 1) as (survivor,):
            webhooks = survivor.webhooks

            async def delivered() -> bool:
                found = await webhooks.deliveries(subscription.id)
                return [d.status for d in found] == ["delivered"]

            await _eventually(delivered)
            (delivery,) = await webhooks.deliveries(subscription.id)
    assert receiver.ids == [delivery.id, delivery.id]
    assert delivery.attempts == 1


async def test_concurrent_failures_open_one_automatic_incident_per_component(
    make_settings: Callable[..., Settings],
) -> None:
    async with _containers(make_settings(probe_interval_s=0), PROCESSES) as containers:

        async def open_for(component: str, container: Container) -> str:
            view = await container.incidents.open(
                f"{component} is down",
                "Our checks fail.",
                components=[component],
                automatic=True,
            )
            return view.incident.id

        tries = [
            open_for(c, containers[n % PROCESSES])
            for c in ("database", "queue") * 8
            for n in range(2)
        ]
        opened = await asyncio.gather(*tries)
        incidents = containers[0].incidents
        unresolved = await incidents.list_incidents(unresolved_only=True)
        assert len(unresolved) == 2 and set(opened) == {i.incident.id for i in unresolved}
        assert all(len(view.updates) == 1 for view in unresolved)
        database = await incidents.open_automatic("database")
        assert database is not None and database.incident.components == ["database"]

        # A person's incidents are not limited; a resolved one makes way for a new one.
        for _ in range(2):
            await incidents.open("Database slow", "Looking.", components=["database"])
        await incidents.resolve(database.incident.id, "Works again.")
        again = await open_for("database", containers[-1])
        assert again != database.incident.id
        assert len(await incidents.list_incidents(unresolved_only=True)) == 4
