"""The M/M/c math of the capacity planner against a case worked out by hand, and
the plan built from recorded figures (no database)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from personae.errors import ValidationFailed
from personae.services.capacity import (
    CapacityPlan,
    build_plan,
    observed_seconds_by_hour,
    parse_duration,
    parse_growth,
)
from personae.services.erlang import (
    erlang_c,
    servers_needed,
    wait_exceeds_probability,
    wait_quantile_s,
)
from personae.storage.repos.capacity import HourlyJobs, TrafficWindow


def _erlang_c_by_the_formula(c: int, a: float) -> float:
    """C(c, a) = (a^c/c! · c/(c-a)) / (Σ_{k<c} a^k/k! + a^c/c! · c/(c-a))."""
    waiting = a**c / math.factorial(c) * c / (c - a)
    return waiting / (sum(a**k / math.factorial(k) for k in range(c)) + waiting)


def test_erlang_c_matches_the_case_worked_by_hand() -> None:
    # λ = 6/s, μ = 1/s, c = 8: a = 6.
    # Σ_{k=0..7} 6^k/k! = 1 + 6 + 18 + 36 + 54 + 64.8 + 64.8 + 55.542857 = 300.142857
    # 6^8/8! = 1679616/40320 = 41.657143; times c/(c-a) = 8/2 = 4: 166.628571
    # C(8, 6) = 166.628571 / (300.142857 + 166.628571) = 0.356981
    assert erlang_c(8, 6.0) == pytest.approx(166.628571 / 466.771428, rel=1e-6)
    assert erlang_c(8, 6.0) == pytest.approx(0.356981, abs=1e-6)
    for c, a in ((1, 0.5), (3, 2.9), (20, 15.0), (50, 48.0)):
        assert erlang_c(c, a) == pytest.approx(_erlang_c_by_the_formula(c, a), rel=1e-9)


def test_the_p95_wait_and_the_slots_a_target_needs_match_the_hand_case() -> None:
    # P(W > t) = C · exp(-(cμ - λ)·t) = 0.356981 · exp(-2t)
    assert wait_exceeds_probability(8, 6.0, 1.0, 0.5) == pytest.approx(
        0.356981 * math.exp(-1.0), rel=1e-5
    )
    # p95: 0.356981 · exp(-2t) = 0.05, so t = ln(0.356981 / 0.05) / 2 = ln(7.13962) / 2
    p95 = wait_quantile_s(8, 6.0, 1.0)
    assert p95 == pytest.approx(math.log(0.356981 / 0.05) / 2, rel=1e-5)
    assert p95 == pytest.approx(0.98283, abs=1e-5)
    assert wait_exceeds_probability(8, 6.0, 1.0, p95) == pytest.approx(0.05)
    # With 9: C(9, 6) = 0.195981 by the formula, t = ln(0.195981 / 0.05) / 3 = 0.455 s.
    assert _erlang_c_by_the_formula(9, 6.0) == pytest.approx(0.195981, abs=1e-6)
    assert wait_quantile_s(9, 6.0, 1.0) == pytest.approx(math.log(0.195981 / 0.05) / 3, rel=1e-5)
    # So a 0.5 s target needs 9 slots, a 1 s target 8; a 0 s target needs C <= 0.05:
    # C(10, 6) = 0.1013 > 0.05 and C(11, 6) = 0.0492, so 11.
    assert servers_needed(6.0, 1.0, 1.0) == 8
    assert servers_needed(6.0, 1.0, 0.5) == 9
    assert _erlang_c_by_the_formula(10, 6.0) > 0.05 > _erlang_c_by_the_formula(11, 6.0)
    assert servers_needed(6.0, 1.0, 0.0) == 11


def test_no_traffic_needs_no_slot_and_never_waits() -> None:
    assert erlang_c(4, 0.0) == 0.0
    assert wait_quantile_s(4, 0.0, 1.0) == 0.0
    assert servers_needed(0.0, 1.0, 10.0) == 0


def test_a_load_at_or_above_the_slots_never_keeps_up_and_needs_more() -> None:
    assert erlang_c(4, 4.0) == 1.0
    assert erlang_c(4, 6.0) == 1.0
    assert wait_quantile_s(4, 4.0, 1.0) == math.inf
    assert wait_exceeds_probability(4, 6.0, 1.0, 1000.0) == 1.0
    assert servers_needed(4.0, 1.0, 10.0) >= 5
    # Even a generous target needs more slots than the load, never as many.
    assert servers_needed(40.0, 1.0, 3600.0) == 41


def test_growth_and_durations_are_read_from_plain_words() -> None:
    assert parse_growth("15%/month") == pytest.approx(0.15)
    assert parse_growth("15%") == pytest.approx(0.15)
    assert parse_growth("0") == 0.0
    assert parse_growth("-10%/month") == pytest.approx(-0.10)
    assert parse_duration("10s") == 10.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120.0
    assert parse_duration("7") == 7.0
    for wrong in ("fast", "-100%", "15%/year"):
        with pytest.raises(ValidationFailed):
            parse_growth(wrong)
    with pytest.raises(ValidationFailed):
        parse_duration("soon")


def test_observed_seconds_split_a_span_over_the_hours_of_the_day() -> None:
    start = datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    seconds = observed_seconds_by_hour(start, start + timedelta(hours=1, minutes=45))
    assert seconds[13] == 1800 and seconds[14] == 3600 and seconds[15] == 900
    assert sum(seconds) == 6300
    whole_days = observed_seconds_by_hour(start, start + timedelta(days=2))
    assert whole_days == [7200.0] * 24


_DAY = datetime(2024, 5, 1, tzinfo=UTC)


def _window(*hours: HourlyJobs) -> TrafficWindow:
    return TrafficWindow(list(hours), _DAY, _DAY + timedelta(days=1))


def _plan(window: TrafficWindow, *, slots: int = 8, monthly_growth: float = 0.15) -> CapacityPlan:
    return build_plan(
        window,
        since=_DAY - timedelta(days=6),
        days=7.0,
        slots=slots,
        monthly_growth=monthly_growth,
        months=6,
        target_wait_s=1.0,
    )


def test_the_busiest_hour_is_sized_now_and_as_traffic_compounds() -> None:
    # One whole day recorded: hour 14 saw 6 arrivals a second of 1 s each (the hand
    # case), hour 3 a tenth of that.
    busy = HourlyJobs(14, 0, 6 * 3600, 6 * 3600, 6 * 3600.0)
    quiet = HourlyJobs(3, 10, 2160, 2160, 2160.0)
    plan = _plan(_window(busy, quiet))
    assert plan.busiest_hour == 14
    assert plan.arrivals_per_hour == pytest.approx(21600)
    assert plan.mean_service_s == pytest.approx(1.0)
    assert plan.utilisation == pytest.approx(6 / 8)
    # Over the day: 23760 arrivals of 1 s in 86400 s on 8 slots.
    assert plan.average_utilisation == pytest.approx(23760 / 86400 / 8)
    months = plan.months
    assert [m.month for m in months] == list(range(7))
    assert months[0].slots_needed == 8 and months[0].p95_wait_s == pytest.approx(0.98283, abs=1e-5)
    for m in months:
        rate = 6.0 * 1.15**m.month
        assert m.arrivals_per_hour == pytest.approx(rate * 3600)
        assert m.slots_needed == servers_needed(rate, 1.0, 1.0)
        assert m.utilisation == pytest.approx(rate / 8)
    # 6.9/s on 8 slots already waits past 1 s at p95.
    assert wait_quantile_s(8, 6.9, 1.0) > 1.0
    assert plan.short_from_month == 1
    assert months[2].p95_wait_s is not None and months[3].p95_wait_s is None  # 9.1/s > 8


def test_without_growth_every_month_needs_what_today_needs() -> None:
    plan = _plan(_window(HourlyJobs(14, 0, 6 * 3600, 6 * 3600, 6 * 3600.0)), monthly_growth=0.0)
    needs = {m.slots_needed for m in plan.months}
    assert needs == {8}
    assert plan.short_from_month is None
    short = _plan(
        _window(HourlyJobs(14, 0, 6 * 3600, 6 * 3600, 6 * 3600.0)),
        monthly_growth=0.0,
        slots=7,
    )
    assert short.short_from_month == 0
    assert short.utilisation == pytest.approx(6 / 7)


def test_nothing_recorded_or_nothing_finished_is_said_not_sized() -> None:
    empty = _plan(TrafficWindow([], None, None))
    assert empty.busiest_hour is None and empty.months == []
    assert empty.note is not None and "no backend jobs" in empty.note
    unfinished = _plan(_window(HourlyJobs(9, 0, 5, 0, 0.0)))
    assert unfinished.busiest_hour is None
    assert unfinished.note is not None and "no job finished" in unfinished.note
