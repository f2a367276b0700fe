"""Helpers for the browser tests: a served app, pages, and what a user does."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import PASSWORD, Api, serve_app, simulated_backend
from personae.app import create_app
from personae.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
# Tests never rewrite tracked files: screenshots go to a temporary folder unless
# PERSONAE_UPDATE_SCREENSHOTS=1 (docs/screenshots, to refresh the docs' pictures) or
# PERSONAE_SCREENSHOTS_DIR names one.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOTS = Path(
    os.environ.get("PERSONAE_SCREENSHOTS_DIR")
    or (DOCS_SCREENSHOTS if os.environ.get("PERSONAE_UPDATE_SCREENSHOTS") == "1" else None)
    or Path(tempfile.gettempdir()) / "personae-screenshots"
)
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


@dataclass
class WebApp:
    url: str
    api: Api
    backend_url: str  # the SIMULATED backend's, to arm a scripted reply
    # Closed before the server stops: uvicorn waits for open event streams.
    contexts: list[Any] = field(default_factory=list)


@asynccontextmanager
async def web_app(
    make_settings: Callable[..., Settings],
    *,
    slots: int = 2,
    tokens_per_second: float = 40.0,
    **settings: Any,
) -> AsyncIterator[WebApp]:
    """The whole server over real HTTP, its replies from a SIMULATED backend."""
    async with simulated_backend(
        slots=slots, tokens_per_second=tokens_per_second, first_token_ms=50
    ) as backend:
        values: dict[str, Any] = {
            "backend_url": None,
            "backends": [f"sim={backend},slots={slots}"],
            "backend_probe_interval_s": 0,
            "probe_interval_s": 0,
            "max_reply_tokens": 12,
            "job_retry_base_s": 0.05,
        }
        values.update(settings)
        app = create_app(make_settings(**values))
        async with serve_app(app) as url:
            web = WebApp(url, Api(app), backend)
            try:
                yield web
            finally:
                for context in web.contexts:
                    await context.close()
                await web.api.aclose()


def chromium_executable() -> str | None:
    return str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium")


@asynccontextmanager
async def microphone_browser(wav: Path) -> AsyncIterator[Any]:
    """Chromium that grants the microphone, hears `wav` in it (in a loop), and plays
    sound without a gesture (a headless page's clicks count, but the first sound must
    not wait)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_executable(),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Any, web: WebApp, viewport: dict[str, int] = DESKTOP) -> Any:
    context = await browser.new_context(viewport=viewport, base_url=web.url)
    web.contexts.append(context)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # checked by tests: the app must not throw
    return page


async def register(page: Any, username: str) -> None:
    await page.goto("/register")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.get_by_role("heading", name="Discover").wait_for()


async def login(page: Any, username: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()


async def public_character(web: WebApp, **fields: Any) -> dict[str, Any]:
    """A public character made by another account, through the API."""
    creator = await web.api.user()
    body = {
        "name": "Bramble",
        "tagline": "A fox who keeps a tea shop by the river",
        "description": "Bramble is a warm, curious fox.",
        "first_message": "Welcome in! The kettle is on. What brings you here?",
        "tags": ["fox", "cozy"],
        **fields,
    }
    response = await creator.post("/api/v1/characters", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def open_chat(page: Any, character_id: str) -> None:
    """Start a chat with the character and wait until its page has read the history
    (the list is no longer aria-busy): a request the test makes fail before that would
    fail the page's own loading instead."""
    await page.goto(f"/c/{character_id}")
    await page.get_by_role("button", name="Start a chat").click()
    await page.locator("#composer").wait_for()
    await page.locator("ol.messages:not([aria-busy])").wait_for()


async def message_action(message: Any, name: str) -> None:
    """Choose `name` in a message's "⋯" menu (its actions other than swipes, stars, Stop)."""
    await message.get_by_role("button", name="More actions").click()
    await message.get_by_role("menuitem", name=name).click()


async def send(page: Any, text: str) -> None:
    await page.locator("#composer").fill(text)
    await page.locator("#composer").press("Enter")


async def server_messages(page: Any) -> list[dict[str, Any]]:
    """The chat's history as the server has it, read with the page's own session."""
    chat_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    items: list[dict[str, Any]] = await page.evaluate(
        "async (id) => (await (await fetch("
        "`/api/v1/chats/${id}/messages?limit=200`)).json()).items",
        chat_id,
    )
    return items


async def screenshot(page: Any, name: str) -> None:
    await asyncio.to_thread(SCREENSHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def tiny_png(size: int = 64) -> bytes:
    """A small orange PNG, for the avatar upload."""
    row = b"\x00" + bytes((230, 120, 40)) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


async def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll `expression` in the page until it is true. (Playwright's wait_for_function
    evaluates its text with eval, which the app's Content-Security-Policy forbids.)"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await page.evaluate(expression):
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s:g} s: {expression}")
        await asyncio.sleep(0.05)
