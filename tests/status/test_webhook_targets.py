"""Webhooks reach only public http(s) addresses: refused when registered, checked again
when sent (the name resolved anew, the try sent to the address checked), and a
refused or broken target ends its deliveries without holding up anyone else's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from status_helpers import staff

from conftest import Api, assert_problem, eventually, serve_app
from personae.app import create_app
from personae.services.incidents import IncidentService
from personae.services.webhooks import WEBHOOK_ID_HEADER, WebhookService
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import webhooks as repo

Address = IPv4Address | IPv6Address
PUBLIC = ip_address("93.184.215.14")
SECRET = "s3cret-pass"

REFUSED = {
    "http://2130706433:5432/": "loopback",  # decimal
    "http://0x7f000001/hook": "loopback",  # hex
    "http://0177.1/hook": "loopback",  # octal
    "http://017700000001/hook": "loopback",  # octal, one number
    "http://0177.0.0.1/hook": "invalid",  # httpx reads no octal in four parts
    "http://127.1/hook": "loopback",  # shortened
    "http://[::ffff:127.0.0.1]:8080/": "loopback",  # IPv4-mapped
    "http://[::127.0.0.1]/": "loopback",  # IPv4-compatible
    "http://[::1]/": "loopback",
    "http://localhost:5432/": "loopback",  # a name resolving to loopback
    "http://169.254.169.254/latest/meta-data/": "metadata",
    "http://[fd00:ec2::254]/latest/meta-data/": "metadata",
    "http://[::ffff:169.254.169.254]/": "metadata",
    "http://metadata.google.internal/computeMetadata/v1/": "metadata",
    "http://10.1.2.3/hook": "private",
    "http://192.168.0.1/hook": "private",
    "http://[fd12:3456::1]/hook": "private",
    "http://100.64.0.1/hook": "carrier_grade_nat",
    "http://169.254.1.1/hook": "link_local",
    "http://0.0.0.0:8000/": "unspecified",
    "http://224.0.0.1/": "multicast",
    "http://240.0.0.1/": "reserved",
    f"https://hooks:{SECRET}@hooks.example.org/hook": "credentials",
    f"https://{SECRET}@hooks.example.org/hook": "credentials",
    "http://hooks.example.org/hook\r\nX-Injected: 1": "control_character",
    "http://hooks.example.org/hook\n": "control_character",
    "http://hooks.example.org/a b": "control_character",
    "ftp://hooks.example.org/hook": "scheme",
    "file:///etc/passwd": "scheme",
    "gopher://127.0.0.1:6379/_INFO": "scheme",
}


def _all_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


async def test_inner_addresses_credentials_and_other_schemes_are_refused(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(make_settings(probe_interval_s=0))
    async with app.router.lifespan_context(app):
        api = Api(app)
        admin = await staff(api)
        wrong = {}
        for url, reason in REFUSED.items():
            answer = await admin.post("/api/v1/admin/webhooks", json={"url": url})
            said = (answer.status_code, answer.json().get("code"), answer.json().get("reason"))
            if said != (422, "webhook_target_refused", reason):
                wrong[url] = said
                continue
            assert_problem(answer, 422, "webhook_target_refused")
            assert SECRET not in answer.text
        assert not wrong, wrong
        assert (await admin.get("/api/v1/admin/webhooks")).json() == []
        await api.aclose()
    assert SECRET not in _all_logged(caplog)


async def test_allowing_private_targets_still_refuses_metadata_services(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(probe_interval_s=0, webhook_allow_private=True))
    async with app.router.lifespan_context(app):
        api = Api(app)
        admin = await staff(api)
        for url in ("http://127.0.0.1:9/hook", "http://localhost:9/", "http://10.0.0.5/"):
            answer = await admin.post("/api/v1/admin/webhooks", json={"url": url})
            assert answer.status_code == 201, answer.text
        for url in ("http://169.254.169.254/", "http://metadata.google.internal/"):
            answer = await admin.post("/api/v1/admin/webhooks", json={"url": url})
            assert assert_problem(answer, 422, "webhook_target_refused")["reason"] == "metadata"
        for url in (f"http://u:{SECRET}@127.0.0.1/", "http://127.0.0.1/\r\n"):
            answer = await admin.post("/api/v1/admin/webhooks", json={"url": url})
            assert_problem(answer, 422, "webhook_target_refused")
        await api.aclose()


class _Resolver:
    """Answers each name from a script of answers, the last one repeated; counts calls."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self._script = script
        self.calls: dict[str, int] = dict.fromkeys(script, 0)

    async def __call__(self, host: str, port: int) -> list[Address]:
        answers = self._script[host]
        answer = answers[min(self.calls[host], len(answers) - 1)]
        self.calls[host] += 1
        return [ip_address(address) for address in answer]


@asynccontextmanager
async def _sender(settings: Settings, **seams: Any) -> AsyncIterator[WebhookService]:
    """A webhook sender on the test's database (no app: nothing else sends), with
    incidents queued for it."""
    database = Database(settings.resolved_database_url)
    webhooks = WebhookService(database, settings, **seams)
    webhooks.start()
    try:
        yield webhooks
    finally:
        await webhooks.aclose()
        await database.dispose()


async def _incident(webhooks: WebhookService, settings: Settings) -> None:
    database = Database(settings.resolved_database_url)
    incidents = IncidentService(database)
    incidents.subscribe(webhooks.incident_changed)
    await incidents.open("Slow", "Looking into it.")
    await database.dispose()


async def test_a_name_that_turns_private_after_registration_is_refused_when_sent(
    make_settings: Callable[..., Settings],
) -> None:
    hits: list[str] = []

    async def hook(request: Request) -> Response:
        hits.append(request.headers[WEBHOOK_ID_HEADER])
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    settings = make_settings(webhook_retry_base_s=0.05, webhook_max_attempts=3)
    # Public when registered, then the name points at this machine, where a receiver
    # listens: a sender that trusted the first answer, or asked again, would reach it.
    resolver = _Resolver({"hooks.example.org": [[str(PUBLIC)], ["127.0.0.1"]]})
    async with serve_app(receiver) as receiver_url, _sender(settings, resolver=resolver) as sender:
        port = httpx.URL(receiver_url).port
        subscription = await sender.subscribe(f"http://hooks.example.org:{port}/hook")
        await _incident(sender, settings)

        async def gave_up() -> bool:
            found = await sender.deliveries(subscription.id)
            return bool(found) and found[0].status == "failed"

        await eventually(gave_up)
        (delivery,) = await sender.deliveries(subscription.id)
    assert hits == [], "the sender connected to a loopback address"
    assert delivery.attempts == 3
    assert delivery.last_error is not None and "loopback" in delivery.last_error
    assert resolver.calls["hooks.example.org"] == 4  # registered, then each of 3 tries


async def test_each_try_goes_to_the_address_checked_and_a_refused_one_delays_nobody(
    make_settings: Callable[..., Settings],
) -> None:
    seen: list[httpx.Request] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    settings = make_settings(webhook_retry_base_s=0.05, webhook_max_attempts=2)
    resolver = _Resolver(
        {
            # Checked at the try's own resolution; any later one would say loopback.
            "good.example.org": [[str(PUBLIC)], ["93.184.215.15"], ["127.0.0.1"]],
            "bad.example.org": [[str(PUBLIC)], ["10.0.0.7"]],
        }
    )
    seams = {"resolver": resolver, "transport": httpx.MockTransport(answer)}
    async with _sender(settings, **seams) as sender:
        bad = await sender.subscribe("http://bad.example.org/hook")
        good = await sender.subscribe("https://good.example.org:8443/hook?key=1")
        await _incident(sender, settings)

        async def settled() -> bool:
            found = [*await sender.deliveries(bad.id), *await sender.deliveries(good.id)]
            return len(found) == 2 and all(d.status != "pending" for d in found)

        await eventually(settled)
        (refused,) = await sender.deliveries(bad.id)
        (delivered,) = await sender.deliveries(good.id)
    assert refused.status == "failed" and refused.attempts == 2
    assert refused.last_error is not None and "private" in refused.last_error
    assert delivered.status == "delivered" and delivered.attempts == 1
    (request,) = seen
    assert str(request.url) == "https://93.184.215.15:8443/hook?key=1"
    assert request.headers["host"] == "good.example.org:8443"
    assert request.extensions["sni_hostname"] == "good.example.org"
    assert request.headers[WEBHOOK_ID_HEADER] == delivered.id
    assert resolver.calls["good.example.org"] == 2


async def test_a_stored_target_no_try_may_reach_fails_at_once_and_keeps_its_secret(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    received: list[str] = []

    async def hook(request: Request) -> Response:
        received.append(request.headers[WEBHOOK_ID_HEADER])
        return JSONResponse({"ok": True})

    receiver = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    settings = make_settings(webhook_allow_private=True, webhook_max_attempts=8)
    async with serve_app(receiver) as receiver_url, _sender(settings) as sender:
        authority = receiver_url.removeprefix("http://")
        stored = [
            f"http://{authority}/hook\r\nX-Injected: 1",  # accepted before these checks
            f"http://hooks:{SECRET}@{authority}/hook",
        ]
        database = Database(settings.resolved_database_url)
        async with database.write() as tx:
            broken = [await repo.insert_subscription(tx, url) for url in stored]
        await database.dispose()
        good = await sender.subscribe(f"{receiver_url}/hook")
        await _incident(sender, settings)

        async def settled() -> bool:
            found = [d for s in [*broken, good] for d in await sender.deliveries(s.id)]
            return len(found) == 3 and all(d.status != "pending" for d in found)

        await eventually(settled)
        (delivered,) = await sender.deliveries(good.id)
        failed = [d for s in broken for d in await sender.deliveries(s.id)]
    assert delivered.status == "delivered" and received == [delivered.id]
    for delivery in failed:
        assert delivery.status == "failed" and delivery.attempts == 1
        assert delivery.last_error is not None and delivery.last_error.startswith("refused")
    assert SECRET not in _all_logged(caplog)
    assert "a webhook delivery was dropped" in caplog.text
