"""The admin page names the model that answers and what a bigger one would give."""

from __future__ import annotations

from typing import Any

from browser.helpers import DESKTOP, new_page, register, screenshot


async def test_the_admin_page_suggests_a_bigger_model_for_the_embedded_one(
    browser: Any, start_web: Any
) -> None:
    # An api process with no fleet: its workers run the embedded default model.
    async with start_web(role="api", backends=[]) as web:
        page = await new_page(browser, web, DESKTOP)
        await register(page, "root")
        await web.api.container.accounts.set_role("root", "admin")
        await page.goto("/admin")
        block = page.locator("#models")
        await block.get_by_role("list", name="Models answering").wait_for()
        assert "SmolLM2-135M-Instruct (embedded, 135M)" in await block.inner_text()
        note = block.get_by_role("note")
        assert "needs ~" in await note.inner_text()
        assert (await note.locator("code").first.inner_text()).startswith("personae models pull ")
        await block.scroll_into_view_if_needed()
        await screenshot(page, "admin-models")


async def test_the_admin_page_names_a_remote_backends_model(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        page = await new_page(browser, web, DESKTOP)
        await register(page, "root")
        await web.api.container.accounts.set_role("root", "admin")
        await page.goto("/admin")
        block = page.locator("#models")
        await block.get_by_role("list", name="Models answering").wait_for()
        assert "(backend sim)" in await block.inner_text()
        assert await block.get_by_role("note").count() == 0
