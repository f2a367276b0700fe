"""Webhooks for incident changes: retried with backoff, and a dead receiver blocks nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from status_helpers import staff

from conftest import NO_BACKEND, Api, assert_problem, serve_app
from personae.app import create_app
from personae.settings import Settings


def _receiver(received: list[dict[str, Any]], *, fail_first: int) -> Starlette:
    calls = 0

    async def hook(request: Request) -> Response:
        nonlocal calls
        calls += 1
        if calls <= fail_first:
            return JSONResponse({"error": "not now"}, status_code=500)
        received.append(await request.json())
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


async def _eventually(check: Callable[[], Any], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "not true in time"
        await asyncio.sleep(0.1)


async def test_incident_changes_reach_receivers_and_a_dead_one_blocks_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    received: list[dict[str, Any]] = []
    settings = make_settings(
        probe_interval_s=0,
        webhook_retry_base_s=0.1,
        webhook_max_attempts=3,
        webhook_timeout_s=1,
        webhook_allow_private=True,  # the receivers listen on 127.0.0.1
    )
    async with serve_app(_receiver(received, fail_first=1)) as receiver_url:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            api = Api(app)
            admin = await staff(api)
            good = await admin.post("/api/v1/admin/webhooks", json={"url": f"{receiver_url}/hook"})
            dead = await admin.post("/api/v1/admin/webhooks", json={"url": f"{NO_BACKEND}/hook"})
            assert good.status_code == dead.status_code == 201
            listed = (await admin.get("/api/v1/admin/webhooks")).json()
            assert [s["id"] for s in listed] == [good.json()["id"], dead.json()["id"]]

            started = time.monotonic()
            incident = await admin.post(
                "/api/v1/admin/incidents", json={"title": "Slow", "body": "Looking into it."}
            )
            resolved = await admin.post(
                f"/api/v1/admin/incidents/{incident.json()['id']}/updates",
                json={"status": "resolved", "body": "Fixed."},
            )
            assert resolved.status_code == 201
            assert time.monotonic() - started < 2  # never waits for a receiver

            async def both_arrived() -> bool:
                return len(received) == 2

            await _eventually(both_arrived)
            assert {p["incident"]["status"] for p in received} == {"investigating", "resolved"}
            assert all(p["incident"]["id"] == incident.json()["id"] for p in received)
            webhooks = api.container.webhooks

            async def dead_gave_up() -> bool:
                found = await webhooks.deliveries(dead.json()["id"])
                return bool(found) and all(d.status == "failed" for d in found)

            await _eventually(dead_gave_up)
            for delivery in await webhooks.deliveries(dead.json()["id"]):
                assert delivery.attempts == 3 and delivery.last_error
            retried = await webhooks.deliveries(good.json()["id"])
            assert {d.status for d in retried} == {"delivered"}
            assert sorted(d.attempts for d in retried) == [1, 2]

            gone = await admin.delete(f"/api/v1/admin/webhooks/{dead.json()['id']}")
            assert gone.status_code == 204
            missing = await admin.delete(f"/api/v1/admin/webhooks/{dead.json()['id']}")
            assert_problem(missing, 404, "not_found")
            bad = await admin.post("/api/v1/admin/webhooks", json={"url": "ftp://example.org/x"})
            assert_problem(bad, 422, "webhook_target_refused")
            user = await api.user()
            assert_problem(await user.get("/api/v1/admin/webhooks"), 403, "forbidden")
            await api.aclose()
