"""Keeping the fleet current: active health probes and hot reload of the backends file."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from personae.errors import ConfigurationError
from personae.llm.factory import configured_backends, open_backend
from personae.llm.router import Router
from personae.settings import Settings

log = logging.getLogger("personae.fleet")
_RELOAD_CHECK_S = 2.0
# A backend that is down is asked again this often, so replies waiting for it start
# within about a second of its return (a healthy one waits for the full interval).
_DOWN_PROBE_S = 1.0


class FleetKeeper:
    """Probes every backend on a schedule and reloads the backends file when it changes."""

    def __init__(self, router: Router, settings: Settings) -> None:
        self._router = router
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self._file_mtime = self._mtime()

    def _mtime(self) -> float | None:
        path = self._settings.backends_file
        try:
            return path.stat().st_mtime if path is not None else None
        except OSError:
            return None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="personae-fleet")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reload(self) -> None:
        """Read the configured backends again and swap them in without a restart."""
        try:
            specs = configured_backends(self._settings)
        except ConfigurationError as error:
            log.error("the backends file is not valid; keeping the current list: %s", error)
            return
        if not specs:
            log.error("the backends file lists no backend; keeping the current list")
            return
        await self._router.replace([open_backend(spec, self._settings) for spec in specs])
        log.info("backends reloaded", extra={"backends": [spec.name for spec in specs]})

    async def _run(self) -> None:
        interval = self._settings.backend_probe_interval_s
        loop = asyncio.get_running_loop()
        next_probe = loop.time()
        next_reload_check = loop.time()
        while True:
            if interval and loop.time() >= next_probe:
                next_probe = loop.time() + interval
                await self._router.probe()
            elif interval and self._router.any_down():
                await self._router.probe(only_down=True)
            if loop.time() >= next_reload_check:
                next_reload_check = loop.time() + _RELOAD_CHECK_S
                mtime = self._mtime()
                if mtime != self._file_mtime:
                    self._file_mtime = mtime
                    await self.reload()
            await asyncio.sleep(_DOWN_PROBE_S if not interval else min(interval, _DOWN_PROBE_S))
