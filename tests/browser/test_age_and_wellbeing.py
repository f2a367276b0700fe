"""In a real browser: every chat says the character is an AI; the time-spent notice shows
and goes away; a mature character asks for a confirmed age, given on the account page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from browser.helpers import (
    DESKTOP,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    wait_until,
)

REPLIES_DONE = "document.querySelectorAll('.msg-reply.status-complete').length >= {count}"


async def test_the_chat_shows_the_ai_notice_and_suggests_a_break(
    browser: Any, start_web: Any
) -> None:
    async with start_web(wellbeing_session_minutes=20) as web:
        character = await public_character(web)
        page = await new_page(browser, web, DESKTOP)
        await register(page, "nia")
        await open_chat(page, character["id"])

        notice = page.locator(".ai-notice")
        await notice.wait_for()
        text = await notice.inner_text()
        assert "AI" in text and "not a real person" in text
        assert await page.locator(".wellbeing").is_hidden()

        await send(page, "Hello, Bramble!")
        await wait_until(page, REPLIES_DONE.format(count=2))
        # Still on screen after the chat scrolled (it sits with the composer).
        assert await notice.is_visible()
        assert await page.locator(".wellbeing").is_hidden()

        # Twenty-five minutes later, still chatting: the next send brings the notice.
        wellbeing = web.api.container.wellbeing
        real_clock = wellbeing.clock
        wellbeing.clock = lambda: real_clock() + timedelta(minutes=25)
        try:
            await send(page, "Tell me about the river.")
            banner = page.locator(".wellbeing")
            await banner.wait_for()
            assert "time for a break?" in await banner.inner_text()
            await screenshot(page, "chat-wellbeing-desktop")
            await banner.get_by_role("button", name="Dismiss").click()
            await banner.wait_for(state="hidden")
            status = await page.evaluate("fetch('/api/v1/me/wellbeing').then((r) => r.json())")
            assert status["notice_due"] is False
        finally:
            wellbeing.clock = real_clock
        assert page.js_errors == []


async def test_a_mature_character_asks_for_a_confirmed_age_first(
    browser: Any, start_web: Any
) -> None:
    async with start_web() as web:
        page = await new_page(browser, web, DESKTOP)
        page.on("dialog", lambda dialog: dialog.accept())
        await register(page, "oak")

        # The creator rates the character mature in the editor.
        await page.get_by_role("link", name="Create", exact=True).click()
        await page.get_by_label("Name", exact=True).fill("Nightjar")
        await page.get_by_label("Greeting", exact=True).fill("You came back.")
        await page.get_by_label("Content rating").select_option("mature")
        await page.get_by_role("button", name="Create", exact=True).click()
        await page.get_by_role("heading", name="Nightjar").wait_for()
        assert await page.locator(".char-head .label-mature").inner_text() == "Mature 18+"
        character_url = page.url

        # Not confirmed as an adult: the chat is refused, saying what to do.
        await page.get_by_role("button", name="Start a chat").click()
        refusal = page.locator(".error-box")
        await refusal.wait_for()
        assert "18 or older" in await refusal.inner_text()
        await refusal.get_by_role("link", name="Confirm your age").click()

        await page.get_by_role("heading", name="Age and mature content").wait_for()
        await page.get_by_label("Your birth date").fill("1990-04-12")
        await page.get_by_role("button", name="Confirm my age").click()
        await page.get_by_text("Confirmed: 18 or older.").wait_for()
        await page.get_by_label("Show mature characters in discovery and search").check()
        await wait_until(
            page,
            "fetch('/api/v1/me').then((r) => r.json()).then((me) => me.show_mature)",
        )

        await page.goto(character_url)
        await page.get_by_role("button", name="Start a chat").click()
        await page.locator("#composer").wait_for()
        assert "not a real person" in await page.locator(".ai-notice").inner_text()
        assert await page.locator(".chat-head .label-mature").is_visible()
        assert page.js_errors == []
