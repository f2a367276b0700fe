"""The main journey in a real browser: register, create, chat, stream, swipe, rate,
pin a memory, see a reply's prompt, and download one's data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from browser.helpers import (
    DESKTOP,
    message_action,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    server_messages,
    tiny_png,
    wait_until,
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
        await page.get_by_label("Show the definition to others").check()
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
        shown = await page.evaluate(
            "fetch(location.pathname.replace('/c/', '/api/v1/characters/'))"
            ".then((r) => r.json()).then((c) => c.definition_visible)"
        )
        assert shown is True
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
        await wait_until(
            page,
            "document.querySelectorAll('.msg-reply').length >= 2 && "
            "document.querySelector('.msg-reply:last-of-type')?.classList.contains('status-complete')",
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
        await wait_until(
            page,
            "document.querySelector('.msg-reply:last-of-type .swipe-count')?.textContent === '2/2'"
            " && document.querySelector('.msg-reply:last-of-type')"
            "?.classList.contains('status-complete')",
        )
        await page.locator(LAST_REPLY).get_by_role("button", name="Previous reply").click()
        await wait_until(
            page,
            "document.querySelector('.msg-reply:last-of-type .swipe-count')?.textContent === '1/2'",
        )
        assert await page.locator(LAST_REPLY).locator(".msg-text").inner_text() == final

        # Rate it three stars.
        await page.locator(LAST_REPLY).get_by_role("button", name="3 stars").click()
        await wait_until(
            page,
            "document.querySelectorAll('.msg-reply:last-of-type .star[aria-pressed=true]')"
            ".length === 3",
        )
        history = await server_messages(page)
        assert history[-1]["rating"] == 3 and history[-1]["swipe_index"] == 0
        await screenshot(page, "chat-desktop")

        # Rename the chat; pin the reply to memory and see it in the panel.
        await page.get_by_role("button", name="Rename this chat").click()
        await page.get_by_label("Chat title").fill("Tea with Bramble")
        await page.get_by_role("button", name="Save title").click()
        await page.locator(".chat-title", has_text="Tea with Bramble").wait_for()
        await message_action(page.locator(LAST_REPLY), "Pin to memory")
        panel = page.locator(".memory-panel")
        pinned = panel.get_by_role("list", name="Pinned facts").locator("li")
        await pinned.first.wait_for()
        assert await pinned.count() == 1
        assert await pinned.first.locator(".memory-text").inner_text() == final.strip()
        await panel.get_by_label("Add a fact to remember").fill("Alice likes jasmine tea.")
        await panel.get_by_role("button", name="Pin fact").click()
        await pinned.nth(1).wait_for()
        assert "2 pinned" in await panel.locator("summary").inner_text()
        await screenshot(page, "chat-memory-desktop")
        await panel.get_by_role("button", name="Unpin: Alice likes").click()
        await wait_until(page, "document.querySelectorAll('.memory-list li').length === 1")

        # What went into the reply: the prompt, part by part, in a dialog.
        await message_action(page.locator(LAST_REPLY), "What went into this reply")
        dialog = page.get_by_role("dialog", name="What went into this reply")
        await dialog.wait_for()
        parts = dialog.get_by_role("list", name="Parts of the prompt").locator("li")
        assert "what tea do you have" in await parts.nth(-1).inner_text()
        assert "system" in await parts.first.inner_text()
        await screenshot(page, "chat-prompt-desktop")
        await dialog.get_by_role("button", name="Close").click()
        await dialog.wait_for(state="detached")

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

        # Download my data: one JSON file with the chat, both swipes and the pinned memory.
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Download my data").click()
        download = await download_info.value
        assert download.suggested_filename.startswith("personae-alice-")
        saved = Path(await download.path())
        document = json.loads(await asyncio.to_thread(saved.read_text, encoding="utf-8"))
        assert document["account"]["username"] == "alice"
        assert [c["card"]["data"]["name"] for c in document["characters"]] == ["Bramble"]
        [chat] = document["chats"]
        assert chat["chat"]["title"] == "Tea with Bramble"
        last_position = chat["messages"][-1]["position"]
        swipes = [m for m in chat["messages"] if m["position"] == last_position]
        assert [(m["swipe_index"], m["selected"]) for m in swipes] == [(0, True), (1, False)]
        assert [m["content"] for m in chat["pinned_memories"]] == [final.strip()]
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
        await wait_until(
            page,
            "(document.querySelector('.msg-reply.status-generating .msg-text')?.textContent"
            " || '').split(' ').length >= 4",
        )
        await page.reload()
        # After the reload the reply is still being written, with its text so far.
        await page.locator(".msg-reply.status-generating .msg-text:not(:empty)").wait_for()
        await wait_until(
            page,
            "document.querySelector('.msg-reply:last-of-type')?.classList.contains("
            "'status-complete')",
            timeout_s=30,
        )
        shown = await page.locator(LAST_REPLY).locator(".msg-text").inner_text()
        history = await server_messages(page)
        assert history[-1]["status"] == "complete"
        assert history[-1]["content"] == shown
        assert [m["content"] for m in history].count("Tell me a long story about the river.") == 1
        assert page.js_errors == []
