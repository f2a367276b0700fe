"""Webhooks for incident changes: a durable outbox delivered in the background.

A change is written as one pending delivery per subscription in the database,
then a background task posts it. A receiver that is down or slow only delays
its own deliveries: each try has a timeout, failures are retried with
exponential backoff (capped at an hour) up to `webhook_max_attempts`, and
nothing an operator or a probe does ever waits for a receiver.

Targets are public http(s) addresses only (`webhook_targets`): checked when
registered, and again at each try, which connects to the address it checked. A try
refused or failed counts as one of the attempts; a target that no try can ever reach
(a URL stored before these checks) fails its delivery at once.

Several processes may deliver: each delivery is leased to one of them while it is
sent, and sent again (by anyone) when its sender dies before recording the try. So
a delivery arrives at least once, and every try carries the same `Webhook-Id`
header (the delivery's id) for the receiver to drop repeats by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import timedelta
from typing import Any

import httpx

from personae.errors import NotFound
from personae.services import webhook_targets as targets
from personae.services.incidents import IncidentView
from personae.services.webhook_targets import Resolver, WebhookTargetRefused
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import webhooks as repo
from personae.storage.repos.webhooks import DeliveryRecord, SubscriptionRecord
from personae.storage.types import utcnow

log = logging.getLogger("personae.webhooks")
_POLL_S = 1.0
_BATCH = 50
_MAX_BACKOFF_S = 3600.0
# A lease outlives the try it covers: a receiver's timeout plus this much.
_LEASE_MARGIN_S = 1.0
WEBHOOK_ID_HEADER = "Webhook-Id"


def incident_payload(view: IncidentView) -> dict[str, Any]:
    """What a receiver gets: the incident in Statuspage's field names, updates newest first."""
    found = view.incident

    def iso(moment: Any) -> str | None:
        return moment.isoformat(timespec="milliseconds") if moment else None

    return {
        "meta": {"generated_at": iso(utcnow()), "event": "incident.updated"},
        "incident": {
            "id": found.id,
            "name": found.title,
            "status": found.status,
            "impact": found.impact,
            "created_at": iso(found.created_at),
            "updated_at": iso(found.updated_at),
            "monitoring_at": iso(found.monitoring_at),
            "resolved_at": iso(found.resolved_at),
            "components": found.components,
            "incident_updates": [
                {"id": u.id, "status": u.status, "body": u.body, "created_at": iso(u.created_at)}
                for u in view.updates
            ],
        },
    }


class WebhookService:
    """Subscriptions, and the background task that delivers to them."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = targets.system_resolver,
    ) -> None:
        self._db = database
        self._settings = settings
        self._transport = transport
        self._resolver = resolver
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"

    async def subscribe(self, url: str) -> SubscriptionRecord:
        """Subscribe `url`; WebhookTargetRefused unless it is an http(s) address whose
        name resolves to public addresses only (see `webhook_targets`)."""
        await self._resolve(targets.parse(url))
        async with self._db.write() as tx:
            return await repo.insert_subscription(tx, url)

    async def unsubscribe(self, subscription_id: str) -> None:
        async with self._db.write() as tx:
            if not await repo.disable_subscription(tx, subscription_id):
                raise NotFound("No webhook subscription with this id.")

    async def subscriptions(self) -> list[SubscriptionRecord]:
        async with self._db.read() as tx:
            return await repo.list_subscriptions(tx)

    async def deliveries(self, subscription_id: str) -> list[DeliveryRecord]:
        async with self._db.read() as tx:
            return await repo.list_deliveries(tx, subscription_id)

    async def incident_changed(self, view: IncidentView) -> None:
        """Queue the change for every subscriber (an incident listener; never posts here)."""
        async with self._db.write() as tx:
            queued = await repo.enqueue(tx, incident_payload(view))
        if queued:
            self._wake.set()

    async def _resolve(self, target: targets.Target) -> list[targets.Address]:
        return await targets.resolve(
            target,
            resolver=self._resolver,
            allow_private=self._settings.webhook_allow_private,
            timeout_s=self._settings.webhook_timeout_s,
        )

    # --- delivery ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            # Each try connects to the address it checked, named in Host and SNI: a
            # kept connection would be keyed by that address alone, so none is kept.
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=self._settings.webhook_timeout_s,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            self._task = asyncio.create_task(self._loop(), name="personae-webhooks")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("delivering webhooks failed; trying again shortly")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)

    @property
    def _lease_s(self) -> float:
        settings = self._settings
        return max(settings.webhook_lease_s, settings.webhook_timeout_s + _LEASE_MARGIN_S)

    async def deliver_due(self) -> int:
        """Lease the deliveries whose time has come and nobody holds, and try them all
        at once; returns how many were tried."""
        async with self._db.read() as tx:
            if not await repo.any_due(tx):
                return 0
        async with self._db.write() as tx:
            due = await repo.claim_due(
                tx,
                owner=self.owner,
                lease_s=self._lease_s,
                limit=_BATCH,
                skip_locked=not self._db.is_sqlite,
            )
        await asyncio.gather(*(self._deliver(delivery, url) for delivery, url in due))
        return len(due)

    async def _deliver(self, delivery: DeliveryRecord, url: str) -> None:
        final = False
        try:
            target = targets.parse(url)
        except WebhookTargetRefused as refused:
            error: str | None = f"refused: {refused.detail}"
            final = True  # no later try could be sent
        else:
            error = await self._try(delivery, target)
        attempts = delivery.attempts + 1
        delay = min(_MAX_BACKOFF_S, self._settings.webhook_retry_base_s * 2 ** (attempts - 1))
        if error is None:
            status = repo.DELIVERED
        elif final or attempts >= self._settings.webhook_max_attempts:
            status = repo.FAILED
            log.warning(
                "a webhook delivery was dropped",
                extra={
                    "subscription_id": delivery.subscription_id,
                    "target": targets.redacted(url),
                    "error": error,
                },
            )
        else:
            status = repo.PENDING
        async with self._db.write() as tx:
            await repo.record_attempt(
                tx,
                delivery.id,
                owner=self.owner,
                status=status,
                attempts=attempts,
                next_attempt_at=utcnow() + timedelta(seconds=delay),
                error=error,
            )

    async def _try(self, delivery: DeliveryRecord, target: targets.Target) -> str | None:
        """Post `delivery` once: None when the receiver took it, else what went wrong.

        The whole try (resolving, checking, connecting to each allowed address in
        turn, the answer) fits in `webhook_timeout_s`, so it ends within its lease.
        """
        assert self._client is not None
        timeout_s = self._settings.webhook_timeout_s
        error = "no address answered"
        try:
            async with asyncio.timeout(timeout_s):
                for address in await self._resolve(target):
                    url, headers, extensions = targets.pinned(target, address)
                    headers[WEBHOOK_ID_HEADER] = delivery.id
                    try:
                        response = await self._client.post(
                            url, json=delivery.payload, headers=headers, extensions=extensions
                        )
                    except httpx.ConnectError as failure:
                        error = _described(failure)
                        continue
                    if response.status_code >= 300:
                        return f"the receiver answered {response.status_code}"
                    return None
        except WebhookTargetRefused as refused:
            return f"refused: {refused.detail}"
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except httpx.HTTPError as failure:
            return _described(failure)
        except Exception as failure:
            # Whatever else breaks a try is counted as one, so that a delivery always
            # ends: one left unrecorded would be taken again each time its lease ran out.
            log.exception("a webhook try failed unexpectedly")
            return _described(failure)
        return error


def _described(failure: Exception) -> str:
    return f"{type(failure).__name__}: {failure}"[:300]
