"""The admin's web pages: an incident every page's banner shows, featured characters
on the discover page, and changing a user's role."""

from __future__ import annotations

from typing import Any

from browser.helpers import DESKTOP, new_page, public_character, register, screenshot, wait_until


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
        await wait_until(page, "document.getElementById('notice').hidden")
        assert page.js_errors == []


async def test_an_admin_features_a_character_and_changes_a_role(
    browser: Any, start_web: Any
) -> None:
    async with start_web() as web:
        character = await public_character(web)
        await public_character(web, name="Juniper", tagline="A lighthouse keeper")
        carol = await web.api.user("carol", display_name="Carol Reed")
        page = await new_page(browser, web, DESKTOP)
        await register(page, "root")
        await web.api.container.accounts.set_role("root", "admin")
        # Staff's session reads the new role on the next page.
        await page.goto("/")
        assert await page.get_by_role("heading", name="Featured").count() == 0

        # Featured from the character's page, shown first on the discover page.
        await page.goto(f"/c/{character['id']}")
        await page.get_by_role("button", name="Feature", exact=True).click()
        await page.get_by_role("button", name="Unfeature").wait_for()
        await page.get_by_role("link", name="Discover").click()
        featured = page.locator("section.featured")
        await featured.get_by_role("heading", name="Featured").wait_for()
        assert await featured.locator(".char-name").all_inner_texts() == ["BrambleFeatured"]
        await screenshot(page, "discover-featured-desktop")

        # Users: search, then make carol a moderator.
        await page.goto("/admin")
        users = page.locator("#users")
        await users.get_by_role("heading", name="Users").wait_for()
        await users.get_by_label("Search users").fill("reed")
        await users.get_by_role("button", name="Search").click()
        await wait_until(page, "document.querySelectorAll('#users .user-row').length === 1")
        await users.get_by_label("Role of carol", exact=True).select_option("moderator")
        await users.get_by_role("button", name="Change role of carol").click()
        await users.get_by_text("carol is now moderator.").wait_for()
        assert (await carol.get("/api/v1/me")).json()["role"] == "moderator"
        await users.scroll_into_view_if_needed()
        await screenshot(page, "admin-users-desktop")

        # Taking away one's own admin role is refused, in plain words.
        await users.get_by_label("Search users").fill("root")
        await users.get_by_role("button", name="Search").click()
        await users.get_by_label("Role of root", exact=True).wait_for()
        await users.get_by_label("Role of root", exact=True).select_option("user")
        await users.get_by_role("button", name="Change role of root").click()
        await users.locator(".error-box").wait_for()
        assert "own admin role" in await users.locator(".error-box").inner_text()
        assert (await web.api.container.accounts.get_user_by_username("root")).role == "admin"

        # Unfeatured again: the row goes away.
        await page.goto(f"/c/{character['id']}")
        await page.get_by_role("button", name="Unfeature").click()
        await page.get_by_role("button", name="Feature", exact=True).wait_for()
        await page.get_by_role("link", name="Discover").click()
        await page.get_by_role("heading", name="All characters").wait_for()
        assert await page.get_by_role("heading", name="Featured").count() == 0
        assert page.js_errors == []
