"""An admin opens an incident from the web app; every page's banner shows it."""

from __future__ import annotations

from typing import Any

from browser.helpers import DESKTOP, new_page, register, screenshot


async def test_an_admin_opens_an_incident_and_the_banner_shows_it(
    browser: Any, start_web: Any
) -> None:
    async with start_web() as web:
        page = await new_page(browser, web, DESKTOP)
        await register(page, "root")
        await web.api.container.accounts.set_role("root", "admin")
        await page.goto("/admin")
        await page.get_by_role("heading", name="Admin", exact=True).wait_for()
        form = page.locator("form", has_text="Open an incident")
        await form.get_by_label("Title").fill("Replies are slow")
        await form.get_by_label("What users should know").fill("We are looking into it.")
        await form.get_by_role("button", name="Open incident").click()
        await page.locator("li.card", has_text="Replies are slow").wait_for()

        # Another page: the banner says so, with a link to the status page.
        await page.get_by_role("link", name="Discover").click()
        banner = page.locator("#notice")
        await banner.get_by_text("Replies are slow").wait_for()
        await screenshot(page, "discover-incident-desktop")

        # Resolved from the same page: the banner goes away.
        await page.goto("/admin")
        item = page.locator("li.card", has_text="Replies are slow")
        await item.get_by_label("New state").select_option("resolved")
        await item.get_by_label("Update for users").fill("All good again.")
        await item.get_by_role("button", name="Post update").click()
        await page.get_by_text("None.").first.wait_for()
        await page.get_by_role("link", name="Discover").click()
        await page.get_by_role("heading", name="Discover").wait_for()
        await page.wait_for_function("document.getElementById('notice').hidden")
        assert page.js_errors == []
