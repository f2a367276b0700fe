"""Reports in the web app: a user reports a character from its page, a moderator
finds it on the moderators' page and hides the character, and the reporter reads the
outcome among their reports; a reply reported from the chat and removed leaves it."""

from __future__ import annotations

from typing import Any

from browser.helpers import (
    DESKTOP,
    message_action,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    wait_until,
)


async def test_a_moderator_acts_on_a_report_from_the_moderators_page(
    browser: Any, start_web: Any
) -> None:
    async with start_web() as web:
        character = await public_character(web, name="Thorn")
        reporter = await new_page(browser, web, DESKTOP)
        await register(reporter, "bob")
        await reporter.goto(f"/c/{character['id']}")
        await reporter.get_by_role("button", name="Report character: report this character").click()
        form = reporter.locator("form.report-form")
        await form.get_by_label("Why?").select_option("hate")
        await form.get_by_label("Anything a moderator should know (optional)").fill(
            "Slurs in the greeting"
        )
        await form.get_by_role("button", name="Send report").click()
        await reporter.get_by_text("Thank you: a moderator will look at it.").wait_for()

        moderator = await new_page(browser, web, DESKTOP)
        await register(moderator, "mod")
        await web.api.container.accounts.set_role("mod", "moderator")
        await moderator.goto("/")  # the session reads the new role on the next page
        await moderator.get_by_role("link", name="Moderation").click()
        await moderator.get_by_role("heading", name="Moderation").wait_for()
        case = moderator.locator("li.case", has_text="Report of a character: hate")
        await case.get_by_text("Slurs in the greeting").wait_for()
        await case.get_by_role("link", name="Thorn").wait_for()
        await screenshot(moderator, "moderation-queue-desktop")
        await case.get_by_label("Note for the audit log").fill("Hateful greeting")
        await case.get_by_role("button", name="Hide character").click()
        await moderator.get_by_text("Done: hide_character.").wait_for()
        assert await moderator.locator("li.case").count() == 0
        audit = moderator.locator("#audit li", has_text="hide_character")
        await audit.get_by_text("Hateful greeting").wait_for()

        # The character is gone for the reporter, who sees what was decided.
        await reporter.goto(f"/c/{character['id']}")
        await reporter.get_by_text("We could not find this.").wait_for()
        await reporter.goto("/reports")
        outcome = reporter.locator(".my-reports li", has_text="A character")
        await outcome.get_by_text("Looked at: action taken (the character was hidden)").wait_for()
        await wait_until(
            reporter, "document.querySelector('.my-reports li').dataset.status === 'actioned'"
        )
        assert reporter.js_errors == [] and moderator.js_errors == []


async def test_a_reply_is_reported_from_the_chat_and_a_removed_one_leaves_it(
    browser: Any, start_web: Any
) -> None:
    async with start_web() as web:
        character = await public_character(web, name="Moss")
        page = await new_page(browser, web, DESKTOP)
        await register(page, "dana")
        await open_chat(page, character["id"])
        greeting = page.locator("li.msg-reply", has_text="Welcome in!")
        await message_action(greeting, "Report")
        form = greeting.locator("form.report-form")
        await form.get_by_label("Why?").select_option("violence")
        await form.get_by_role("button", name="Send report").click()
        await greeting.get_by_text("Thank you: a moderator will look at it.").wait_for()
        await greeting.get_by_role("link", name="See your reports").wait_for()

        moderator = await web.api.user("mod")
        await web.api.container.accounts.set_role("mod", "moderator")
        queue = (await moderator.get("/api/v1/moderation/queue")).json()["items"]
        assert [item["target_kind"] for item in queue] == ["message"]
        acted = await moderator.post(
            f"/api/v1/moderation/reports/{queue[0]['id']}/actions",
            json={"action": "remove_message", "note": "threat"},
        )
        assert acted.status_code == 200, acted.text
        await page.reload()
        await page.locator("#composer").wait_for()
        await wait_until(page, "!document.body.innerText.includes('Welcome in!')")
        await page.goto("/reports")
        await page.get_by_text("Looked at: action taken (the message was removed)").wait_for()
        assert page.js_errors == []
