"""The main journey in a real browser: register, create, chat, stream, swipe, rate."""

from __future__ import annotations

from typing import Any

from browser.helpers import (
    DESKTOP,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    server_messages,
    tiny_png,
)

LAST_REPLY = ".msg-reply >> nth=-1"


async def test_register_create_chat_stream_swipe_and_rate(browser: Any, start_web: Any) -> None:
    async with start_web(tokens_per_second=12, max_reply_tokens=16) as web:
        await public_character(web, name="Juniper", tagline="A lighthouse keeper")
        page = await new_page(browser, web, DESKTOP)
        await register(page, "alice")
        await screenshot(page, "discover-desktop")

        # Create a character with every kind of field, and an avatar picture.
        await page.get_by_role("link", name="Create", exact=True).click()
        await page.get_by_label("Name", exact=True).fill("Bramble")
        await page.get_by_label("Tagline").fill("A fox who keeps a tea shop by the river")
        await page.get_by_label("Description / persona").fill("Bramble is warm and curious.")
        await page.get_by_label("Greeting", exact=True).fill("Welcome in! The kettle is on.")
        await page.get_by_label("Alternate greetings").fill("Oh, hello!\n---\nBack again?")
        await page.get_by_label("Tags").fill("fox, cozy")
        await page.get_by_label("Avatar picture").set_input_files(
            {"name": "fox.png", "mimeType": "image/png", "buffer": tiny_png()}
        )
        await page.locator(".avatar-preview img").wait_for()
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "editor-desktop")
        await page.get_by_role("button", name="Create", exact=True).click()
        await page.get_by_role("heading", name="Bramble").wait_for()
        assert await page.locator(".char-head img.avatar").get_attribute("src") is not None
        assert "by alice" in await page.locator(".char-meta").first.inner_text()
        await screenshot(page, "character-desktop")

        # Start a chat: the greeting is there, with its alternates as swipes.
        await page.get_by_role("button", name="Start a chat").click()
        await page.locator(".msg-reply").first.wait_for()
        assert "kettle" in await page.locator(".msg-reply .msg-text").first.inner_text()

        await send(page, "Hello Bramble, what tea do you have?")
        await page.locator(".msg-user", has_text="what tea").wait_for()
        # The reply streams: seen while being written, with some text, then complete.
        await page.locator(".msg-reply.status-generating .msg-text:not(:empty)").wait_for()
        partial = await page.locator(LAST_REPLY).locator(".msg-text").inner_text()
        await page.locator(".msg-reply.status-complete >> nth=-1").wait_for()
        await page.wait_for_function(
            "document.querySelectorAll('.msg-reply').length >= 2 && "
            "document.querySelector('.msg-reply:last-of-type')?.classList.contains('status-complete')"
        )
        final = await page.locator(LAST_REPLY).locator(".msg-text").inner_text()
        assert final.startswith(partial.strip()) and len(final) > len(partial)
        history = await server_messages(page)
        assert history[-1]["content"] == final
        assert not composer_text(await page.locator("#composer").input_value())

        # Swipe: another reply beside it, then back to the first.
        reply = page.locator(LAST_REPLY)
        await reply.get_by_role("button", name="Write another reply").click()
        await page.locator(".msg-reply >> nth=-1 >> .swipe-count", has_text="2/2").wait_for()
        await page.locator(".msg-reply.status-complete >> nth=-1").wait_for()
        await page.wait_for_function(
            "document.querySelector('.msg-reply:last-of-type .swipe-count')?.textContent === '2/2'"
            " && document.querySelector('.msg-reply:last-of-type')"
            "?.classList.contains('status-complete')"
        )
        await page.locator(LAST_REPLY).get_by_role("button", name="Previous reply").click()
        await page.wait_for_function(
            "document.querySelector('.msg-reply:last-of-type .swipe-count')?.textContent === '1/2'"
        )
        assert await page.locator(LAST_REPLY).locator(".msg-text").inner_text() == final

        # Rate it three stars.
        await page.locator(LAST_REPLY).get_by_role("button", name="3 stars").click()
        await page.wait_for_function(
            "document.querySelectorAll('.msg-reply:last-of-type .star[aria-pressed=true]')"
            ".length === 3"
        )
        history = await server_messages(page)
        assert history[-1]["rating"] == 3 and history[-1]["swipe_index"] == 0
        await screenshot(page, "chat-desktop")

        # My chats lists it; the account page shows this device.
        await page.get_by_role("link", name="Chats", exact=True).click()
        await page.get_by_role("link", name="Bramble").first.wait_for()
        await page.get_by_role("link", name="alice").click()
        await page.get_by_text("this device").wait_for()
        await page.get_by_label("Token name").fill("my script")
        await page.get_by_role("button", name="Create token").click()
        await page.locator("code.token").wait_for()
        assert (await page.locator("code.token").inner_text()).startswith("pk_")
        await screenshot(page, "account-desktop")
        assert page.js_errors == []


def composer_text(value: str) -> str:
    return value.strip()


async def test_reload_mid_reply_and_see_it_finish(browser: Any, start_web: Any) -> None:
    async with start_web(tokens_per_second=6, max_reply_tokens=30) as web:
        character = await public_character(web)
        page = await new_page(browser, web, DESKTOP)
        await register(page, "bob")
        await open_chat(page, character["id"])
        await send(page, "Tell me a long story about the river.")
        await page.wait_for_function(
            "(document.querySelector('.msg-reply.status-generating .msg-text')?.textContent"
            " || '').split(' ').length >= 4"
        )
        await page.reload()
        # After the reload the reply is still being written, with its text so far.
        await page.locator(".msg-reply.status-generating .msg-text:not(:empty)").wait_for()
        await page.wait_for_function(
            "document.querySelector('.msg-reply:last-of-type')?.classList.contains("
            "'status-complete')",
            timeout=30_000,
        )
        shown = await page.locator(LAST_REPLY).locator(".msg-text").inner_text()
        history = await server_messages(page)
        assert history[-1]["status"] == "complete"
        assert history[-1]["content"] == shown
        assert [m["content"] for m in history].count("Tell me a long story about the river.") == 1
        assert page.js_errors == []
