"""Webhook subscriptions and their deliveries (a small durable outbox).

A delivery being sent is leased to one process (claimed with FOR UPDATE SKIP
LOCKED on PostgreSQL), so two processes never send it at once; a lease that runs
out (its sender died) makes it due again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import webhook_deliveries, webhook_subscriptions
from personae.storage.types import new_id, utcnow

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    url: str
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    subscription_id: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def _subscription(row: RowMapping) -> SubscriptionRecord:
    return SubscriptionRecord(**{f.name: row[f.name] for f in fields(SubscriptionRecord)})


def _delivery(row: RowMapping) -> DeliveryRecord:
    return DeliveryRecord(**{f.name: row[f.name] for f in fields(DeliveryRecord)})


async def insert_subscription(tx: AsyncSession, url: str) -> SubscriptionRecord:
    record = SubscriptionRecord(new_id(), url, utcnow(), None)
    await tx.execute(
        insert(webhook_subscriptions).values(id=record.id, url=url, created_at=record.created_at)
    )
    return record


async def list_subscriptions(tx: AsyncSession) -> list[SubscriptionRecord]:
    """Active subscriptions, oldest first."""
    query = (
        select(webhook_subscriptions)
        .where(webhook_subscriptions.c.disabled_at.is_(None))
        .order_by(webhook_subscriptions.c.created_at, webhook_subscriptions.c.id)
    )
    return [_subscription(row) for row in (await tx.execute(query)).mappings()]


async def disable_subscription(tx: AsyncSession, subscription_id: str) -> bool:
    result = await tx.execute(
        update(webhook_subscriptions)
        .where(
            webhook_subscriptions.c.id == subscription_id,
            webhook_subscriptions.c.disabled_at.is_(None),
        )
        .values(disabled_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def enqueue(tx: AsyncSession, payload: dict[str, Any]) -> int:
    """One pending delivery of `payload` per active subscription; returns how many."""
    subscriptions = await list_subscriptions(tx)
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "subscription_id": s.id,
            "payload": payload,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for s in subscriptions
    ]
    if rows:
        await tx.execute(insert(webhook_deliveries), rows)
    return len(rows)


def _due(now: datetime, limit: int) -> Any:
    """Pending deliveries whose time has come and that nobody holds, oldest due first."""
    active = select(webhook_subscriptions.c.id).where(webhook_subscriptions.c.disabled_at.is_(None))
    return (
        select(webhook_deliveries.c.id)
        .where(
            webhook_deliveries.c.status == PENDING,
            webhook_deliveries.c.next_attempt_at <= now,
            or_(
                webhook_deliveries.c.lease_expires_at.is_(None),
                webhook_deliveries.c.lease_expires_at < now,
            ),
            webhook_deliveries.c.subscription_id.in_(active),
        )
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        .limit(limit)
    )


async def any_due(tx: AsyncSession) -> bool:
    """Whether a delivery is waiting: a read, so an idle sender never takes the writer."""
    found = await tx.execute(_due(utcnow(), 1))
    return found.first() is not None


async def claim_due(
    tx: AsyncSession, *, owner: str, lease_s: float, limit: int, skip_locked: bool
) -> list[tuple[DeliveryRecord, str]]:
    """Lease up to `limit` due deliveries to `owner`, each with its receiver's URL.

    One statement picks and leases (UPDATE ... RETURNING); with `skip_locked` rows
    another process is claiming are passed over rather than waited for.
    """
    now = utcnow()
    due = _due(now, limit)
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    claimed = (
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
        .returning(*(webhook_deliveries.c[f.name] for f in fields(DeliveryRecord)))
    )
    deliveries = [_delivery(row) for row in (await tx.execute(claimed)).mappings()]
    if not deliveries:
        return []
    subscription_ids = {delivery.subscription_id for delivery in deliveries}
    receivers = select(webhook_subscriptions.c.id, webhook_subscriptions.c.url).where(
        webhook_subscriptions.c.id.in_(subscription_ids)
    )
    urls = {str(row.id): str(row.url) for row in await tx.execute(receivers)}
    ordered = sorted(deliveries, key=lambda d: (d.next_attempt_at, d.id))
    return [(delivery, urls[delivery.subscription_id]) for delivery in ordered]


async def record_attempt(
    tx: AsyncSession,
    delivery_id: str,
    *,
    owner: str,
    status: str,
    attempts: int,
    next_attempt_at: datetime,
    error: str | None,
) -> bool:
    """Record a try and give the lease back; False (nothing written) when `owner` no
    longer holds the lease: it ran out and another process took the delivery."""
    result = await tx.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.lease_owner == owner)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=error,
            delivered_at=utcnow() if status == DELIVERED else None,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_deliveries(tx: AsyncSession, subscription_id: str) -> list[DeliveryRecord]:
    query = (
        select(webhook_deliveries)
        .where(webhook_deliveries.c.subscription_id == subscription_id)
        .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
    )
    return [_delivery(row) for row in (await tx.execute(query)).mappings()]
