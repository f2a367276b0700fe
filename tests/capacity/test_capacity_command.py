"""`personae capacity`, run as a real process against the test's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from capacity_helpers import record_busy_hour

from personae.storage.db import Database


def _personae(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_DATABASE_URL=database_url,
        # A remote backend of 3 slots is what the planner counts as today's slots.
        PERSONAE_BACKEND_URL="http://127.0.0.1:9",
        PERSONAE_BACKEND_SLOTS="3",
    )
    return env


async def test_the_command_prints_the_plan_as_a_table_and_as_json(
    database_url: str, tmp_path: Path
) -> None:
    database = Database(database_url)
    try:
        await record_busy_hour(database)
    finally:
        await database.dispose()
    env = _environment(tmp_path, database_url)
    options = ("--growth", "15%/month", "--months", "6", "--target-wait", "10s")

    table = _personae("capacity", *options, env=env)
    assert table.returncode == 0, table.stderr
    text = table.stdout
    assert "growth 15%/month, 3 slots today" in text
    assert "Busiest hour 14:00-15:00 UTC: 66.0 jobs/hour, 3.40 s each" in text
    assert "  now         66.0             1" in text
    assert "   +6        152.7             1" in text  # 66 · 1.15^6 = 152.66
    # Searched past the horizon: 66 · 1.15^26 = 2499 an hour, a load of 2.36 on 3 slots.
    assert "Today's 3 slots stop being enough in month 26." in text

    as_json = _personae("capacity", *options, "--json", "--slots", "1", env=env)
    assert as_json.returncode == 0, as_json.stderr
    plan = json.loads(as_json.stdout)
    assert plan["slots"] == 1 and plan["busiest_hour"] == 14
    assert [m["month"] for m in plan["months"]] == list(range(7))
    assert [t["tier"] for t in plan["tiers"]] == ["plus", "free", "background"]
    # One slot at 66 jobs an hour of 3.4 s (a = 0.062) keeps p95 under 10 s for years
    # at 15% a month, until the load nears the slot: the month is past the horizon.
    assert plan["short_from_month"] is not None and plan["short_from_month"] > 6


def test_words_it_cannot_read_and_a_missing_database_are_refused(tmp_path: Path) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'nothing.db'}"
    env = _environment(tmp_path, missing)
    wrong = _personae("capacity", "--growth", "fast", env=env)
    assert wrong.returncode == 2 and "is not a percentage per month" in wrong.stderr
    absent = _personae("capacity", env=env)
    assert absent.returncode == 2 and "no database at" in absent.stderr
    assert not (tmp_path / "nothing.db").exists()
