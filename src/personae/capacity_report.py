"""`personae capacity`: the plan read from the settings' database, printed as a few
lines and a table, or as the admin API's JSON."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from personae.api.schemas.capacity import CapacityPlanPublic
from personae.errors import NotFound
from personae.services import capacity as planner
from personae.services.capacity import CapacityPlan, MonthPlan
from personae.settings import Settings
from personae.storage import migrate
from personae.storage.db import Database
from personae.words import plural


def _existing_database_url(settings: Settings) -> str:
    url = settings.resolved_database_url
    # Opening a SQLite path that does not exist would leave a new empty file behind.
    if settings.is_sqlite and not Path(make_url(url).database or "").exists():
        raise NotFound(f"no database at {url}")
    return url


async def read_plan(
    settings: Settings,
    *,
    growth: str,
    target_wait: str,
    days: float,
    months: int,
    slots: int | None,
) -> CapacityPlan:
    """The plan over the settings' database, with today's slots the configured ones
    unless `slots` is given; AppError for words it cannot read or no database."""
    monthly_growth = planner.parse_growth(growth)
    target_wait_s = planner.parse_duration(target_wait)
    today_slots = slots or planner.configured_slots(settings)
    url = _existing_database_url(settings)
    database = Database(url)
    try:
        if await migrate.current_revision(database) is None:
            raise NotFound(f"no Personae database at {url}")
        return await planner.plan_capacity(
            database,
            days=days,
            slots=today_slots,
            monthly_growth=monthly_growth,
            months=months,
            target_wait_s=target_wait_s,
        )
    finally:
        await database.dispose()


def plan_as_json(plan: CapacityPlan) -> str:
    """The plan in the shape GET /api/v1/admin/capacity answers."""
    return CapacityPlanPublic.model_validate(plan).model_dump_json(indent=2)


def _seconds(value: float | None) -> str:
    if value is None:
        return "unbounded"
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.0f} min"


def _percent(share: float) -> str:
    return f"{share * 100:.0f}%"


def _growth(share: float) -> str:
    return f"{share * 100:g}%/month"


def _month_row(month: MonthPlan, slots: int) -> str:
    label = "now" if month.month == 0 else f"+{month.month}"
    return (
        f"{label:>5}  {month.arrivals_per_hour:>11.1f}  {month.slots_needed:>12}  "
        f"{_seconds(month.p95_wait_s):>16}  {_percent(month.utilisation):>11}"
    )


def _slots(count: int) -> str:
    return plural(count, "slot")


def _verb(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _shortfall(plan: CapacityPlan) -> str:
    if plan.short_from_month is None:
        horizon = "at this growth" if plan.monthly_growth > 0 else "while traffic does not grow"
        return (
            f"Today's {_slots(plan.slots)} {_verb(plan.slots, 'stays', 'stay')} enough {horizon}."
        )
    if plan.short_from_month == 0:
        return (
            f"Today's {_slots(plan.slots)} {_verb(plan.slots, 'is', 'are')} already not enough "
            "at the busiest hour."
        )
    return (
        f"Today's {_slots(plan.slots)} {_verb(plan.slots, 'stops', 'stop')} being enough in "
        f"month {plan.short_from_month}."
    )


def render_plan(plan: CapacityPlan) -> list[str]:
    """The plan in words and a table, one line per string."""
    lines = [
        f"Backend jobs of the last {plan.days:g} days, p95 wait under "
        f"{_seconds(plan.target_wait_s)}, growth {_growth(plan.monthly_growth)}, "
        f"{_slots(plan.slots)} today."
    ]
    if plan.busiest_hour is None:
        return [*lines, f"Nothing to size: {plan.note}."]
    if plan.first_arrival is not None and plan.last_arrival is not None:
        lines.append(
            f"Recorded from {plan.first_arrival:%Y-%m-%d %H:%M:%S} to "
            f"{plan.last_arrival:%Y-%m-%d %H:%M:%S} UTC."
        )
    lines += [
        f"Busiest hour {plan.busiest_hour:02d}:00-{(plan.busiest_hour + 1) % 24:02d}:00 UTC: "
        f"{plan.arrivals_per_hour:.1f} jobs/hour, {_seconds(plan.mean_service_s)} each "
        f"on a backend; utilisation {_percent(plan.utilisation)} "
        f"({_percent(plan.average_utilisation)} over the whole window).",
        "",
        "tier        jobs/hour  mean service",
        *(
            f"{tier.tier:<10} {tier.arrivals_per_hour:>10.1f}  {_seconds(tier.mean_service_s):>12}"
            for tier in plan.tiers
        ),
        "",
        f"month    jobs/hour  slots needed  p95 wait, {plan.slots:>3} slots  utilisation",
        *(_month_row(month, plan.slots) for month in plan.months),
        "",
        _shortfall(plan),
    ]
    return lines
