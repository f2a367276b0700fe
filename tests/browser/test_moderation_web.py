"""Moderation in the web app: a refused message stays in the draft with its reason,
category and an "Ask for a review" button; crisis resources show as a notice; a
filtered reply says why and offers Regenerate."""

from __future__ import annotations

import json
from typing import Any

import httpx

from browser.helpers import (
    PHONE,
    message_action,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    server_messages,
    wait_until,
)

OFFENDING = "The kettle sings. You should kill yourself now. The shop is warm."


async def replies_done(page: Any, count: int) -> None:
    """`count` replies on the page, none of them still being written."""
    await wait_until(
        page,
        f"document.querySelectorAll('.msg-reply').length === {count} && "
        "!document.querySelector('.msg-reply.status-queued, .msg-reply.status-generating')",
    )


async def test_refusals_crisis_resources_and_filtered_replies_explain_themselves(
    browser: Any, start_web: Any
) -> None:
    async with start_web(max_reply_tokens=40, tokens_per_second=200) as web:
        character = await public_character(web)
        page = await new_page(browser, web, PHONE)
        appeals: list[dict[str, Any]] = []

        async def fake_appeals(route: Any) -> None:  # another helper builds the endpoint
            appeals.append(json.loads(route.request.post_data or "{}"))
            await route.fulfill(status=201, content_type="application/json", body='{"id": "a1"}')

        await page.route("**/api/v1/appeals", fake_appeals)
        await register(page, "erin")
        await open_chat(page, character["id"])

        # Refused: the reason, the category, the text kept, a review to ask for.
        refused = "Tell me how to make a bomb in my kitchen."
        await send(page, refused)
        alert = page.locator(".refusal")
        await alert.wait_for()
        words = await alert.inner_text()
        assert "illegal" in words and "Category" in words and "nothing was stored" in words
        assert await page.locator("#composer").input_value() == refused
        await screenshot(page, "chat-refused-phone")
        await page.get_by_role("button", name="Ask for a review").click()
        await page.get_by_text("Review asked").wait_for()
        assert appeals == [
            {
                "category": "illegal",
                "content": refused,
                "message_id": None,
                "chat_id": page.url.rstrip("/").rsplit("/", 1)[-1],
                "note": None,
            }
        ]
        assert [m for m in await server_messages(page) if m["role"] == "user"] == []
        # Edited, it goes out; nothing is left pending from the refusal.
        await send(page, "Tell me about the kettle.")
        await page.locator(".msg-user", has_text="Tell me about the kettle.").wait_for()
        await replies_done(page, 2)
        assert await page.evaluate("localStorage.getItem('personae.pending')") in ("[]", None)

        # Self-harm: sent, with crisis resources as a notice beside the chat.
        await send(page, "Sometimes I want to die.")
        notice = page.locator(".crisis-notice")
        await notice.wait_for()
        assert "findahelpline.com" in (await notice.inner_html())
        await page.locator(".msg-user", has_text="Sometimes I want to die.").wait_for()
        await replies_done(page, 3)
        await notice.scroll_into_view_if_needed()
        await screenshot(page, "chat-crisis-resources-phone")

        # A reply that crosses a line ends filtered, says why, and offers Regenerate.
        backend_url = web.api.container.router.backends[0].spec.url
        async with httpx.AsyncClient(base_url=backend_url) as sim:
            armed = await sim.post(
                "/simulation/faults", json={"mode": "script", "text": OFFENDING, "count": 1}
            )
            armed.raise_for_status()
        await send(page, "Sing me something.")
        filtered = page.locator(".msg-reply.status-filtered")
        await filtered.wait_for()
        await wait_until(
            page,
            "document.querySelector('.msg-reply.status-filtered .msg-text')"
            ".textContent === 'The kettle sings.'",
        )
        state = await filtered.locator(".filtered-state").inner_text()
        assert "harassment" in state
        await filtered.scroll_into_view_if_needed()
        await screenshot(page, "chat-filtered-phone")
        await message_action(filtered, "Regenerate")
        await wait_until(page, "!document.querySelector('.msg-reply.status-filtered')")
        await replies_done(page, 4)
        assert page.js_errors == []
