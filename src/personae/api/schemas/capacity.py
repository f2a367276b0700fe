"""The capacity plan, as the admin API and `personae capacity --json` give it."""

from __future__ import annotations

from datetime import datetime

from personae.api.schemas.common import Output


class TierLoadPublic(Output):
    tier: str
    arrivals_per_hour: float
    mean_service_s: float | None


class MonthPlanPublic(Output):
    month: int
    arrivals_per_hour: float
    slots_needed: int
    utilisation: float
    p95_wait_s: float | None


class CapacityPlanPublic(Output):
    days: float
    first_arrival: datetime | None
    last_arrival: datetime | None
    target_wait_s: float
    monthly_growth: float
    slots: int
    busiest_hour: int | None
    arrivals_per_hour: float
    mean_service_s: float | None
    utilisation: float
    average_utilisation: float
    tiers: list[TierLoadPublic]
    months: list[MonthPlanPublic]
    short_from_month: int | None
    note: str | None
