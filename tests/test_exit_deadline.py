"""The last resort of a stop ends the process whatever keeps it busy."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

from personae.exit_deadline import FORCED_EXIT_STATUS

BOUND_S = 0.5
# The kernel's backstop comes 0.5 s after the bound; the rest is room for a busy machine.
EXIT_WITHIN_S = BOUND_S + 5.0


def _run_stuck(stuck_code: str) -> tuple[int, str, float]:
    script = textwrap.dedent(
        f"""
        from personae.exit_deadline import ExitDeadline
        deadline = ExitDeadline({BOUND_S})
        deadline.start()
        deadline.arm()
        """
    ) + textwrap.dedent(stuck_code)
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN_S + 10,
    )
    return finished.returncode, finished.stderr, time.monotonic() - started


def test_a_loop_busy_with_python_work_is_ended_with_the_stacks_logged() -> None:
    code, stderr, took = _run_stuck("while True:\n    pass\n")
    assert code == FORCED_EXIT_STATUS, stderr
    assert "the stop did not finish" in stderr
    assert "most recent call first" in stderr  # where each thread was
    assert took < EXIT_WITHIN_S


def test_c_code_that_never_lets_go_of_the_interpreter_is_ended_by_the_kernel() -> None:
    # Catastrophic backtracking in `re` holds the GIL: no Python thread runs again.
    code, stderr, took = _run_stuck("import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')\n")
    assert code == -signal.SIGALRM, stderr
    assert took < EXIT_WITHIN_S


def test_a_process_that_ends_by_itself_is_not_touched() -> None:
    code, stderr, _took = _run_stuck("print('done')\n")
    assert code == 0, stderr
    assert "did not finish" not in stderr
