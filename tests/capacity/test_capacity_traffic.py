"""The planner's reading of recorded jobs, on the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from capacity_helpers import BUSY_START, record_busy_hour

from personae.services.capacity import plan_capacity
from personae.storage.db import Database
from personae.storage.repos.capacity import HourlyJobs, traffic_by_hour
from personae.storage.types import utcnow


async def test_jobs_are_counted_by_hour_of_day_and_priority(database_url: str) -> None:
    database = Database(database_url)
    try:
        await record_busy_hour(database)
        async with database.read() as tx:
            window = await traffic_by_hour(
                tx, kinds=("reply", "summary"), since=utcnow() - timedelta(days=7)
            )
    finally:
        await database.dispose()
    # Recall indexing and the job 9 days old are left out; the queued reply is an
    # arrival without a service time.
    assert window.hours == [
        HourlyJobs(
            hour=14, priority=-10, arrivals=1, served=1, service_s_total=pytest.approx(10, abs=1e-3)
        ),
        HourlyJobs(
            hour=14, priority=0, arrivals=7, served=6, service_s_total=pytest.approx(12, abs=1e-3)
        ),
        HourlyJobs(
            hour=14, priority=10, arrivals=3, served=3, service_s_total=pytest.approx(12, abs=1e-3)
        ),
    ]
    assert window.first_arrival == BUSY_START
    assert window.last_arrival == BUSY_START + timedelta(minutes=10)
    # The summary created at 14:19 started a second later and ran 10 s.
    assert window.last_finish == BUSY_START + timedelta(minutes=9, seconds=11)


async def test_the_plan_sizes_the_recorded_busy_hour(database_url: str) -> None:
    database = Database(database_url)
    try:
        await record_busy_hour(database)
        plan = await plan_capacity(
            database, days=7, slots=2, monthly_growth=0.15, months=3, target_wait_s=10
        )
    finally:
        await database.dispose()
    # 11 arrivals over the 600 s from 14:10 to 14:20: 66 an hour; 34 s of service
    # over the 10 jobs that finished: 3.4 s each.
    assert plan.busiest_hour == 14
    assert plan.arrivals_per_hour == pytest.approx(66, abs=1e-3)
    assert plan.mean_service_s == pytest.approx(3.4, abs=1e-3)
    assert plan.utilisation == pytest.approx(11 / 600 * 3.4 / 2, abs=1e-6)
    assert [(t.tier, t.arrivals_per_hour, t.mean_service_s) for t in plan.tiers] == [
        ("plus", pytest.approx(18, abs=1e-3), pytest.approx(4, abs=1e-3)),
        ("free", pytest.approx(42, abs=1e-3), pytest.approx(2, abs=1e-3)),
        ("background", pytest.approx(6, abs=1e-3), pytest.approx(10, abs=1e-3)),
    ]
    assert [m.slots_needed for m in plan.months] == [1, 1, 1, 1]
    assert plan.months[3].arrivals_per_hour == pytest.approx(66 * 1.15**3)


async def test_an_empty_database_gives_a_plan_that_says_so(database_url: str) -> None:
    database = Database(database_url)
    try:
        plan = await plan_capacity(
            database, days=7, slots=4, monthly_growth=0.15, months=6, target_wait_s=10
        )
    finally:
        await database.dispose()
    assert plan.busiest_hour is None and plan.months == [] and plan.short_from_month is None
    assert plan.note == "no backend jobs were recorded in the window"
