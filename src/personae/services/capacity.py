"""The capacity planner: backend slots needed now and as traffic grows.

It reads the jobs recorded over a window (arrivals and time on a backend, by hour
of day and tier), takes the hour of the day with the highest offered load, and
sizes it as an M/M/c queue (services/erlang.py): the fewest slots that keep the
p95 wait under the target, now and for each month ahead with the traffic
compounding by the given growth. Replies and summaries are counted (both hold a
backend slot while they run); recall indexing runs on no backend and is not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from personae.errors import ValidationFailed
from personae.llm.router import Router
from personae.services.erlang import servers_needed, wait_quantile_s
from personae.services.memory import SUMMARY_JOB
from personae.services.send_path import REPLY_JOB
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import capacity as repo
from personae.storage.repos.capacity import HourlyJobs, TrafficWindow
from personae.storage.types import utcnow

BACKEND_JOB_KINDS = (REPLY_JOB, SUMMARY_JOB)
P95 = 0.95
# How far ahead to look for the month today's slots fall short, past the horizon asked.
_SHORTFALL_SEARCH_MONTHS = 120
# A lone arrival is not a rate: the observed time is never shorter than this.
_MIN_OBSERVED_S = 1.0
_GROWTH = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*%?\s*(?:/\s*(?:month|mo))?\s*$", re.I)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?\s*$", re.I)
_TIER_ORDER = {"plus": 0, "free": 1, "background": 2}
_SECONDS_PER = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class TierLoad:
    """One tier's traffic at the busiest hour."""

    tier: str
    arrivals_per_hour: float
    mean_service_s: float | None


@dataclass(frozen=True)
class MonthPlan:
    """What month `month` (0 is now) needs, and how today's slots would fare."""

    month: int
    arrivals_per_hour: float
    slots_needed: int
    utilisation: float
    # None when today's slots cannot keep up at all (the line grows without end).
    p95_wait_s: float | None


@dataclass(frozen=True)
class CapacityPlan:
    days: float
    first_arrival: datetime | None
    last_arrival: datetime | None
    target_wait_s: float
    monthly_growth: float
    slots: int
    # None when there is nothing to size: no traffic, or no job finished to measure.
    busiest_hour: int | None
    arrivals_per_hour: float
    mean_service_s: float | None
    utilisation: float
    average_utilisation: float
    tiers: list[TierLoad]
    months: list[MonthPlan]
    # The first month whose need exceeds today's slots (searched 10 years ahead).
    short_from_month: int | None
    note: str | None = None


def parse_growth(text: str) -> float:
    """`15%/month`, `15%` or `15` -> 0.15 (a share per month, compounding)."""
    found = _GROWTH.match(text)
    if found is None:
        raise ValidationFailed(f"growth '{text}' is not a percentage per month, like 15%/month")
    growth = float(found.group(1)) / 100.0
    if growth <= -1.0:
        raise ValidationFailed("growth must be above -100%/month")
    return growth


def parse_duration(text: str) -> float:
    """`10s`, `500ms`, `2m`, `1h` or `10` (seconds) -> seconds."""
    found = _DURATION.match(text)
    if found is None:
        raise ValidationFailed(f"'{text}' is not a duration, like 10s or 500ms")
    unit = (found.group(2) or "s").lower()
    return float(found.group(1)) * _SECONDS_PER[unit]


def tier_of(priority: int) -> str:
    """The tier a job's priority stands for: plus (and staff), free, or background."""
    if priority > 0:
        return "plus"
    return "free" if priority == 0 else "background"


def configured_slots(settings: Settings) -> int:
    """The slots the settings give: every configured backend's, else the embedded model's."""
    from personae.llm.factory import configured_backends

    specs = configured_backends(settings)
    return sum(spec.slots for spec in specs) if specs else settings.embedded_slots


def fleet_slots(router: Router, settings: Settings) -> int:
    """The slots of the backends a running process routes to (the configured ones
    when it holds none, as a process that generates nothing)."""
    return sum(b.spec.slots for b in router.backends) or configured_slots(settings)


def observed_seconds_by_hour(start: datetime, end: datetime) -> list[float]:
    """How many seconds of each hour of the day (UTC) lie between `start` and `end`."""
    seconds = [0.0] * 24
    moment = start
    while moment < end:
        next_hour = moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        until = min(next_hour, end)
        seconds[moment.hour] += (until - moment).total_seconds()
        moment = until
    return seconds


async def plan_capacity(
    database: Database,
    *,
    days: float,
    slots: int,
    monthly_growth: float,
    months: int,
    target_wait_s: float,
) -> CapacityPlan:
    """Read the last `days` of backend jobs and size the busiest hour (see build_plan)."""
    if days <= 0:
        raise ValidationFailed("the window must be longer than 0 days")
    since = utcnow() - timedelta(days=days)
    async with database.read() as tx:
        window = await repo.traffic_by_hour(tx, kinds=BACKEND_JOB_KINDS, since=since)
    return build_plan(
        window,
        since=since,
        days=days,
        slots=slots,
        monthly_growth=monthly_growth,
        months=months,
        target_wait_s=target_wait_s,
    )


@dataclass(frozen=True)
class _Hour:
    hour: int
    arrival_rate: float
    mean_service_s: float
    rows: list[HourlyJobs]


def build_plan(
    window: TrafficWindow,
    *,
    since: datetime,
    days: float,
    slots: int,
    monthly_growth: float,
    months: int,
    target_wait_s: float,
) -> CapacityPlan:
    """Size the hour of the day with the highest offered load as M/M/c, now and for
    each of `months` ahead, traffic growing by `monthly_growth` a month."""
    base = CapacityPlan(
        days=days,
        first_arrival=window.first_arrival,
        last_arrival=window.last_arrival,
        target_wait_s=target_wait_s,
        monthly_growth=monthly_growth,
        slots=slots,
        busiest_hour=None,
        arrivals_per_hour=0.0,
        mean_service_s=None,
        utilisation=0.0,
        average_utilisation=0.0,
        tiers=[],
        months=[],
        short_from_month=None,
    )
    if window.first_arrival is None or window.last_arrival is None:
        return replace(base, note="no backend jobs were recorded in the window")
    overall_service_s = _mean_service_s(window.hours)
    if overall_service_s is None:
        return replace(base, note="no job finished in the window: no service time to measure")
    observed = _observed(window, since)
    hours = _hours(window.hours, observed, overall_service_s)
    busiest = max(hours, key=lambda h: h.arrival_rate * h.mean_service_s)
    service_rate = 1.0 / busiest.mean_service_s
    monthly = [
        _month(
            m,
            busiest.arrival_rate * (1.0 + monthly_growth) ** m,
            service_rate,
            slots,
            target_wait_s,
        )
        for m in range(months + 1)
    ]
    total_rate = sum(row.arrivals for row in window.hours) / sum(observed)
    return replace(
        base,
        busiest_hour=busiest.hour,
        arrivals_per_hour=busiest.arrival_rate * 3600.0,
        mean_service_s=busiest.mean_service_s,
        utilisation=busiest.arrival_rate * busiest.mean_service_s / slots,
        average_utilisation=total_rate * overall_service_s / slots,
        tiers=_tiers(busiest.rows, observed[busiest.hour]),
        months=monthly,
        short_from_month=_short_from(
            busiest.arrival_rate, service_rate, slots, monthly_growth, target_wait_s
        ),
    )


def _mean_service_s(rows: Sequence[HourlyJobs]) -> float | None:
    served = sum(row.served for row in rows)
    return sum(row.service_s_total for row in rows) / served if served else None


def _observed(window: TrafficWindow, since: datetime) -> list[float]:
    """Seconds of each hour of the day the traffic was recorded over: from the first
    arrival to the last arrival or finish, whichever is later (the server was taking
    work all that time; a window that began before it did is not counted idle)."""
    assert window.first_arrival is not None and window.last_arrival is not None
    end = max(window.last_arrival, window.last_finish or window.last_arrival)
    start = max(since, min(window.first_arrival, end - timedelta(seconds=_MIN_OBSERVED_S)))
    return observed_seconds_by_hour(start, end)


def _hours(rows: Sequence[HourlyJobs], observed: list[float], fallback_s: float) -> list[_Hour]:
    """Each hour of the day with traffic: its arrival rate and mean service time (the
    window's mean where none of its jobs finished)."""
    by_hour: dict[int, list[HourlyJobs]] = {}
    for row in rows:
        by_hour.setdefault(row.hour, []).append(row)
    return [
        _Hour(
            hour=hour,
            arrival_rate=sum(r.arrivals for r in found) / max(observed[hour], 1.0),
            mean_service_s=_mean_service_s(found) or fallback_s,
            rows=found,
        )
        for hour, found in sorted(by_hour.items())
    ]


def _tiers(rows: Sequence[HourlyJobs], observed_s: float) -> list[TierLoad]:
    by_tier: dict[str, list[HourlyJobs]] = {}
    for row in rows:
        by_tier.setdefault(tier_of(row.priority), []).append(row)
    return [
        TierLoad(
            tier=tier,
            arrivals_per_hour=sum(r.arrivals for r in found) * 3600.0 / max(observed_s, 1.0),
            mean_service_s=_mean_service_s(found),
        )
        for tier, found in sorted(by_tier.items(), key=lambda item: _TIER_ORDER[item[0]])
    ]


def _month(
    month: int, arrival_rate: float, service_rate: float, slots: int, target_wait_s: float
) -> MonthPlan:
    wait_s = wait_quantile_s(slots, arrival_rate, service_rate, P95)
    return MonthPlan(
        month=month,
        arrivals_per_hour=arrival_rate * 3600.0,
        slots_needed=servers_needed(arrival_rate, service_rate, target_wait_s, P95),
        utilisation=arrival_rate / (service_rate * slots),
        p95_wait_s=None if math.isinf(wait_s) else wait_s,
    )


def _short_from(
    arrival_rate: float, service_rate: float, slots: int, growth: float, target_wait_s: float
) -> int | None:
    """The first month whose p95 wait on today's slots passes the target."""
    for month in range(_SHORTFALL_SEARCH_MONTHS + 1):
        rate = arrival_rate * (1.0 + growth) ** month
        if wait_quantile_s(slots, rate, service_rate, P95) > target_wait_s:
            return month
        if growth <= 0.0:
            return None  # traffic that does not grow never outgrows what suffices now
    return None
