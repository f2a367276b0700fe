"""Checks that do not rot: every benchmark has the --smoke CI runs, and a test run
that rewrites a tracked file fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI = (ROOT / ".ci" / "run").read_text()


def _benchmarks() -> list[Path]:
    """bench/*.py but the helper modules .ci/run skips by name."""
    helpers = set(re.findall(r'basename "\$script"\)" = (\S+) \] && continue', CI))
    return [path for path in sorted((ROOT / "bench").glob("*.py")) if path.name not in helpers]


def test_ci_runs_every_benchmark_in_its_smoke_mode() -> None:
    assert re.search(r"for script in bench/\*\.py; do", CI)
    assert re.search(r'python3 "\$script" --smoke \|\|', CI)
    assert {p.name for p in _benchmarks()} >= {"prompt_build.py", "load.py", "chaos.py"}


def test_every_benchmark_takes_smoke() -> None:
    """Each script's own parser knows --smoke (its --help says so): a script without
    it would fail CI's loop only when CI runs, far from the change that broke it."""
    running = {
        path.name: subprocess.Popen(
            [sys.executable, str(path), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
        for path in _benchmarks()
    }
    for name, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, (name, output.decode()[-2000:])
        assert "--smoke" in output.decode(), name


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
@pytest.mark.parametrize("screenshots_asked", [False, True])
def test_a_run_that_rewrites_a_tracked_file_fails(tmp_path: Path, screenshots_asked: bool) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "docs" / "screenshots").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "tracked_files.py", tmp_path / "tests")
    (tmp_path / "tests" / "conftest.py").write_text(
        "from tracked_files import pytest_sessionfinish, pytest_sessionstart  # noqa: F401\n"
    )
    (tmp_path / "notes.md").write_text("already changed before the run\n")
    (tmp_path / "docs" / "screenshots" / "home.png").write_bytes(b"old picture")
    (tmp_path / "tests" / "test_writes.py").write_text(
        "from pathlib import Path\n"
        "ROOT = Path(__file__).parent.parent\n"
        "def test_writes():\n"
        "    (ROOT / 'docs' / 'screenshots' / 'home.png').write_bytes(b'new picture')\n"
        "def test_writes_more():\n"
        "    (ROOT / 'notes.md').write_text('changed again by a test')\n"
        "    (ROOT / 'untracked.txt').write_text('not tracked: allowed')\n"
    )
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x")
    (tmp_path / "notes.md").write_text("a change of the developer's, before the run\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if screenshots_asked:
        env["PERSONAE_UPDATE_SCREENSHOTS"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    expected = "notes.md" if screenshots_asked else "docs/screenshots/home.png, notes.md"
    assert f"tests rewrote tracked files (tests must not): {expected}" in run.stdout


def test_screenshots_go_to_docs_only_when_asked() -> None:
    """The browser tests' screenshot folder, in a fresh interpreter for each setting."""
    code = (
        "import sys; sys.path.insert(0, 'tests')\n"
        "from browser.helpers import SCREENSHOTS; print(SCREENSHOTS)"
    )
    docs = str(ROOT / "docs" / "screenshots")
    for asked, inside_docs in (({}, False), ({"PERSONAE_UPDATE_SCREENSHOTS": "1"}, True)):
        env = {k: v for k, v in os.environ.items() if "SCREENSHOTS" not in k}
        shown = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env={**env, **asked},
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout.strip()  # fmt: skip
        assert (shown == docs) is inside_docs, (asked, shown)
