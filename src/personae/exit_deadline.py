"""The last resort of a stop: once it begins, the process ends within its bound.

A graceful stop can hang on anything: a task that swallows its cancellation, a
thread stuck in a library, an event loop busy with CPU work. None of them may
keep a stopping server alive (an orchestrator would wait, then SIGKILL it with
no word of why).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("personae.exit")

# The status of a stop that had to be forced: not 0, which says the stop was clean.
FORCED_EXIT_STATUS = 70
# The kernel's timer is the backstop of the thread, a moment after it.
_KERNEL_BACKSTOP_S = 0.5


class ExitDeadline:
    """Ends the process `bound_s` after `arm()` unless it has ended by itself.

    A daemon thread watches, so a loop blocked by Python code cannot stop it. Code
    that never lets that thread run (C code holding the GIL) is ended by the
    kernel: an interval timer whose SIGALRM, left at its default, ends the process
    without running any Python.
    """

    def __init__(self, bound_s: float) -> None:
        self._bound_s = bound_s
        self._armed = threading.Event()
        self._armed_at = 0.0
        self._thread = threading.Thread(
            target=self._watch, name="personae-exit-deadline", daemon=True
        )

    def start(self) -> None:
        """Start watching (from the main thread, before serving); nothing happens until armed."""
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        self._thread.start()

    def arm(self) -> None:
        """Begin the countdown. Safe in a signal handler: it starts no thread and
        takes no lock the interrupted code could hold."""
        if self._armed.is_set():
            return
        self._armed_at = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, self._bound_s + _KERNEL_BACKSTOP_S)
        self._armed.set()

    def _watch(self) -> None:
        self._armed.wait()
        time.sleep(max(0.0, self._armed_at + self._bound_s - time.monotonic()))
        log.error(
            "the stop did not finish in %.1f s: ending the process (stacks follow)", self._bound_s
        )
        try:  # where every thread was stuck, for whoever reads the log afterwards
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        finally:
            os._exit(FORCED_EXIT_STATUS)
