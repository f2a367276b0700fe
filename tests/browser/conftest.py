"""Browser tests: Playwright drives Debian's Chromium against a real HTTP server.

Replies come from a SIMULATED backend (fast, controllable). Without
/usr/bin/chromium or the playwright package these tests are skipped, with the
reason; `.ci/run` installs Chromium so CI always runs them.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from browser.helpers import CHROMIUM, web_app
from personae.settings import Settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        reason = "Chromium is not installed: apt-get install -y chromium (.ci/run does it)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing: pip install -e '.[test]'"
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        await launched.close()


@pytest.fixture
def start_web(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    def _start(**options: Any) -> Any:
        return web_app(make_settings, **options)

    return _start
