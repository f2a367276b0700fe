"""The settings page on a phone and on a desktop: display name, password, personas and
a chat's persona, devices, and deleting the account after the export is offered."""

from __future__ import annotations

import asyncio
from typing import Any

from browser.helpers import (
    DESKTOP,
    PHONE,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    wait_until,
)
from conftest import PASSWORD

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"
NEW_PASSWORD = "a new and longer passphrase"


async def test_settings_on_a_phone(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        character = await public_character(web)
        page = await new_page(browser, web, PHONE)
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await register(page, "grace")
        await open_chat(page, character["id"])

        await page.goto("/settings")
        await page.get_by_role("heading", name="Settings").wait_for()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)

        # Display name: saved, and the menu shows it.
        await page.get_by_label("Display name").fill("Grace H.")
        await page.get_by_role("button", name="Save name").click()
        await page.locator("#profile").get_by_text("Saved.").wait_for()
        await page.locator("#nav-links a", has_text="Grace H.").wait_for()

        # Personas: add one, edit it, then use it in the chat started above.
        await page.get_by_label("Persona name").fill("Captain Reed")
        await page.get_by_role("button", name="Add persona").click()
        await page.locator("li", has_text="Captain Reed").first.wait_for()
        await page.get_by_text("Edit Captain Reed").click()
        await page.get_by_label("About this persona").first.fill("A retired sea captain.")
        await page.get_by_role("button", name="Save persona").click()
        await page.locator("li", has_text="A retired sea captain.").first.wait_for()
        await page.get_by_label("Persona in Bramble", exact=False).select_option(
            label="Captain Reed"
        )
        await page.get_by_text("persona changed").wait_for()
        chats = await page.evaluate("async () => (await (await fetch('/api/v1/chats')).json())")
        assert chats["items"][0]["persona_name"] == "Captain Reed"

        # Password: a mismatch is caught here, a wrong current one by the server.
        await page.get_by_label("Current password").fill("not my password")
        await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        await page.get_by_label("New password again").fill(NEW_PASSWORD + "x")
        await page.get_by_role("button", name="Change password").click()
        await page.get_by_text("The two new passwords differ").wait_for()
        await page.get_by_label("New password again").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Change password").click()
        await page.get_by_text("Your current password is not right.").wait_for()
        await page.get_by_label("Current password").fill(PASSWORD)
        await page.get_by_role("button", name="Change password").click()
        await page.get_by_text("Password changed.").wait_for()

        # Devices: readable names; this one stays.
        await page.get_by_text("this device").wait_for()
        await page.get_by_text("Chrome on Linux").first.wait_for()
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "settings-phone")

        # Deleting: the export is offered first; a wrong password deletes nothing.
        delete = page.locator("#delete-account")
        await delete.get_by_role("link", name="download your data").wait_for()
        await delete.get_by_label("Your password").fill("not my password")
        await delete.get_by_role("button", name="Delete my account").click()
        await delete.get_by_text("Your current password is not right.").wait_for()
        await delete.get_by_label("Your password").fill(NEW_PASSWORD)
        await delete.get_by_role("button", name="Delete my account").click()
        await page.get_by_role("heading", name="Your account was deleted").wait_for()
        await page.locator("#nav-links a", has_text="Log in").wait_for()
        status = await page.evaluate("async () => (await fetch('/api/v1/me')).status")
        assert status == 401
        assert page.js_errors == []


async def test_settings_on_a_desktop_log_out_other_devices(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        page = await new_page(browser, web, DESKTOP)
        await register(page, "henry")
        other = await new_page(browser, web, PHONE)
        await other.goto("/login")
        await other.get_by_label("Username").fill("henry")
        await other.get_by_label("Password").fill(PASSWORD)
        await other.get_by_role("button", name="Log in").click()
        await other.get_by_role("heading", name="Discover").wait_for()

        await page.goto("/settings")
        await page.get_by_role("heading", name="Devices logged in").wait_for()
        await wait_until(page, "document.querySelectorAll('#devices li').length === 2")
        await screenshot(page, "settings-desktop")
        await page.get_by_role("button", name="Log out all other devices").click()
        await page.get_by_text("1 other device was logged out.").wait_for()
        assert await page.locator("#devices li").count() == 1
        status = await other.evaluate("async () => (await fetch('/api/v1/me')).status")
        assert status == 401
        assert page.js_errors == []
