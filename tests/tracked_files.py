"""Tests never rewrite tracked files: the run fails when one changed while it ran.

The state of the checkout's tracked files (git's diff against HEAD, staged or not)
is read when the session starts and again when it ends. Screenshots under
docs/screenshots may change only when asked for (PERSONAE_SCREENSHOTS_DIR or
PERSONAE_UPDATE_SCREENSHOTS=1). Outside a git checkout (an sdist) nothing is checked.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = "docs/screenshots/"
_KEY = pytest.StashKey[dict[str, str]]()


def tracked_changes() -> dict[str, str] | None:
    """{path: digest of its diff against HEAD} for every changed tracked file, or None
    when this is not a git checkout (or git is missing)."""
    try:
        names = subprocess.run(
            ["git", "-C", str(ROOT), "diff", "HEAD", "--name-only", "-z"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    changes: dict[str, str] = {}
    for name in filter(None, names.decode().split("\0")):
        path = ROOT / name
        content = path.read_bytes() if path.is_file() else b"(deleted)"
        changes[name] = hashlib.sha256(content).hexdigest()
    return changes


def rewritten(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Tracked files whose content differs between the two readings."""
    screenshots_asked = bool(
        os.environ.get("PERSONAE_SCREENSHOTS_DIR") or os.environ.get("PERSONAE_UPDATE_SCREENSHOTS")
    )
    return sorted(
        name
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name)
        and not (screenshots_asked and name.startswith(SCREENSHOTS))
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # pytest-xdist: the controller checks once for all workers
    changes = tracked_changes()
    if changes is not None:
        session.config.stash[_KEY] = changes


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_KEY, None)
    if before is None:
        return
    after = tracked_changes()
    if after is None:
        return
    changed = rewritten(before, after)
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "tests rewrote tracked files (tests must not): " + ", ".join(changed)
        if reporter is not None:
            reporter.write_line(message, red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
