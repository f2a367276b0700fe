"""A 360 x 740 phone: every main page fits the width, and is screenshotted."""

from __future__ import annotations

from typing import Any

from browser.helpers import (
    PHONE,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    wait_until,
)

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


async def test_the_app_on_a_phone(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        character = await public_character(web)
        await public_character(web, name="Juniper", tagline="A lighthouse keeper", tags=["sea"])
        page = await new_page(browser, web, PHONE)
        await register(page, "frank")
        await screenshot(page, "discover-phone")
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)

        await page.goto(f"/c/{character['id']}")
        await page.get_by_role("heading", name="Bramble").wait_for()
        await screenshot(page, "character-phone")
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)

        await open_chat(page, character["id"])
        await send(page, "Good morning! What is the special today?")
        await wait_until(
            page,
            "document.querySelectorAll('.msg-reply').length >= 2 && document.querySelector("
            "'.msg-reply:last-of-type')?.classList.contains('status-complete')",
        )
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        # The composer stays reachable at the bottom of a phone screen.
        box = await page.locator("#composer").bounding_box()
        assert box is not None and box["y"] + box["height"] <= PHONE["height"]
        await screenshot(page, "chat-phone")

        await page.goto("/create")
        await page.get_by_role("heading", name="Create a character").wait_for()
        await screenshot(page, "editor-phone")
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)

        # Personas: made on the account page, chosen when a chat starts.
        await page.goto("/account")
        await page.get_by_text("this device").wait_for()
        await page.get_by_label("Persona name").fill("Captain Reed")
        await page.get_by_role("button", name="Add persona").click()
        await page.locator("li", has_text="Captain Reed").wait_for()
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "account-phone")
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await page.goto(f"/c/{character['id']}")
        await page.get_by_role("button", name="Start a chat").click()
        await page.locator(".chat-head", has_text="as Captain Reed").wait_for()

        # Deep links work from a fresh load. Focus goes to the new page's heading (for
        # screen readers), and Tab goes on to the page's first link.
        await page.goto("/chats")
        await page.get_by_role("heading", name="My chats").wait_for()
        assert await page.evaluate("document.activeElement.textContent") == "My chats"
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.closest('.chat-item') !== null")

        # Installed as a PWA: the service worker keeps the shell and shows the offline page.
        assert await page.evaluate("navigator.serviceWorker.ready.then((r) => !!r.active)")
        await page.reload()  # now the worker controls the page
        await page.context.set_offline(True)
        await page.goto("/chats")
        await page.get_by_role("heading", name="You are offline").wait_for()
        await page.context.set_offline(False)
        assert page.js_errors == []
