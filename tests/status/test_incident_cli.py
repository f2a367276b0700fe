"""`personae incident open|update|resolve|list`, run as a real process on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import NO_BACKEND, REDIS_URL


def _personae(*args: str, database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PERSONAE_")}
    env.update(
        PERSONAE_ENVIRONMENT="development",
        PERSONAE_DATA_DIR=str(data_dir),
        PERSONAE_DATABASE_URL=database_url,
        PERSONAE_BACKEND_URL=NO_BACKEND,
        PERSONAE_LOG_JSON="false",
        PERSONAE_SEED_DEMO="false",
    )
    if REDIS_URL:
        env["PERSONAE_REDIS_URL"] = REDIS_URL
    return subprocess.run(
        [sys.executable, "-m", "personae.cli", "incident", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_operator_opens_updates_resolves_and_lists_incidents(
    database_url: str, tmp_path: Path
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _personae(*args, database_url=database_url, data_dir=tmp_path / "data")

    opened = run(
        "open", "Logins fail", "--body", "Some logins fail; we are on it.", "--impact", "major",
        "--component", "api",
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    incident_id = opened.stdout.strip()
    assert len(incident_id) == 26

    updated = run("update", incident_id, "identified", "--body", "A bad deploy.")
    assert updated.returncode == 0, updated.stderr
    assert "identified" in updated.stdout and "Logins fail" in updated.stdout
    assert incident_id in run("list").stdout

    resolved = run("resolve", incident_id)
    assert resolved.returncode == 0, resolved.stderr
    assert "resolved" in resolved.stdout
    assert incident_id not in run("list").stdout
    assert incident_id in run("list", "--all").stdout

    refused = run("update", incident_id, "investigating", "--body", "Back again?")
    assert refused.returncode == 2
    assert "resolved" in refused.stderr and "postmortem" in refused.stderr
    missing = run("resolve", "00000000000000000000000000")
    assert missing.returncode == 2 and "No incident" in missing.stderr
    invalid = run("open", "x", "--body", "y", "--impact", "huge")
    assert invalid.returncode == 2 and "impact" in invalid.stderr
