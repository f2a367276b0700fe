"""GET /api/v1/admin/capacity: the planner's figures for the admin page (admins only)."""

from __future__ import annotations

import pytest
from capacity_helpers import record_busy_hour

from conftest import Api, assert_problem


async def test_an_admin_reads_the_plan_with_the_fleets_slots(api: Api) -> None:
    admin = await api.user("root")
    await api.container.accounts.set_role("root", "admin")
    await record_busy_hour(api.container.database)

    response = await admin.get(
        "/api/v1/admin/capacity", params={"growth_percent": 15, "months": 2, "target_wait_s": 10}
    )
    assert response.status_code == 200, response.text
    plan = response.json()
    # The test app's one remote backend has the default 4 slots.
    assert plan["slots"] == 4 and plan["busiest_hour"] == 14
    assert plan["arrivals_per_hour"] == pytest.approx(66)
    assert plan["monthly_growth"] == pytest.approx(0.15)
    assert [m["slots_needed"] for m in plan["months"]] == [1, 1, 1]
    assert set(plan) >= {"utilisation", "average_utilisation", "tiers", "short_from_month"}

    override = await admin.get("/api/v1/admin/capacity", params={"slots": 1, "months": 0})
    assert override.json()["slots"] == 1 and len(override.json()["months"]) == 1
    assert_problem(
        await admin.get("/api/v1/admin/capacity", params={"months": 99}), 422, "validation_error"
    )


async def test_moderators_and_users_are_refused(api: Api) -> None:
    moderator = await api.user("mod")
    await api.container.accounts.set_role("mod", "moderator")
    assert_problem(await moderator.get("/api/v1/admin/capacity"), 403, "forbidden")
    user = await api.user("someone")
    assert_problem(await user.get("/api/v1/admin/capacity"), 403, "forbidden")
    assert_problem(await api.client().get("/api/v1/admin/capacity"), 401, "not_authenticated")
