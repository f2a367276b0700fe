"""Webhook subscriptions and their deliveries (a small durable outbox)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
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


async def due_deliveries(tx: AsyncSession, *, limit: int) -> list[tuple[DeliveryRecord, str]]:
    """Pending deliveries whose time has come, each with its receiver's URL."""
    query = (
        select(webhook_deliveries, webhook_subscriptions.c.url)
        .join(
            webhook_subscriptions,
            webhook_subscriptions.c.id == webhook_deliveries.c.subscription_id,
        )
        .where(
            webhook_deliveries.c.status == PENDING,
            webhook_deliveries.c.next_attempt_at <= utcnow(),
            webhook_subscriptions.c.disabled_at.is_(None),
        )
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        .limit(limit)
    )
    return [(_delivery(row), str(row["url"])) for row in (await tx.execute(query)).mappings()]


async def record_attempt(
    tx: AsyncSession,
    delivery_id: str,
    *,
    status: str,
    attempts: int,
    next_attempt_at: datetime,
    error: str | None,
) -> None:
    await tx.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            status=status,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=error,
            delivered_at=utcnow() if status == DELIVERED else None,
        )
    )


async def list_deliveries(tx: AsyncSession, subscription_id: str) -> list[DeliveryRecord]:
    query = (
        select(webhook_deliveries)
        .where(webhook_deliveries.c.subscription_id == subscription_id)
        .order_by(webhook_deliveries.c.created_at, webhook_deliveries.c.id)
    )
    return [_delivery(row) for row in (await tx.execute(query)).mappings()]
