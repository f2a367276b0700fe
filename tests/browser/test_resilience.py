"""The moments that matter: a full waiting room, an expired session, maintenance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from browser.helpers import (
    PHONE,
    login,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    server_messages,
    wait_until,
)
from conftest import wait_for_reply
from personae.storage.tables import sessions


async def test_queue_position_while_the_backend_is_saturated(browser: Any, start_web: Any) -> None:
    async with start_web(slots=1, tokens_per_second=4, max_reply_tokens=40) as web:
        character = await public_character(web)
        # Someone else's long reply holds the only slot.
        other = await web.api.user()
        chat = (await other.post("/api/v1/chats", json={"character_id": character["id"]})).json()
        sent = await other.put(
            f"/api/v1/chats/{chat['id']}/messages/blocker", json={"content": "A long one, please."}
        )
        blocker = sent.json()["reply"]["id"]
        await wait_for_reply(other, chat["id"], blocker, statuses={"generating"})

        page = await new_page(browser, web, PHONE)
        await register(page, "carol")
        await open_chat(page, character["id"])
        await send(page, "Is there room for me?")
        # The place comes with the 202 or the next queue event, whichever is first.
        await page.locator(".queue-state", has_text="position 1").wait_for()
        await screenshot(page, "chat-queued-phone")

        # The slot frees up: the waiting reply starts, and the place disappears.
        await other.post(f"/api/v1/messages/{blocker}/stop")
        await page.locator(".queue-state").wait_for(state="detached")
        await (
            page.locator(".msg-reply")
            .last.and_(page.locator(".status-generating, .status-complete"))
            .wait_for()
        )
        assert page.js_errors == []


async def test_a_draft_survives_an_expired_session(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        character = await public_character(web)
        page = await new_page(browser, web, PHONE)
        await register(page, "dave")
        await open_chat(page, character["id"])
        chat_path = page.url.split(web.url, 1)[1]
        text = "I wrote this before my session ran out."

        async with web.api.container.database.write() as tx:
            await tx.execute(sessions.update().values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
        await send(page, text)

        alert = page.get_by_role("alert")
        await alert.wait_for()
        words = await alert.inner_text()
        assert "Your session has ended" in words and "Nothing was lost" in words
        assert "Reference:" in words
        assert await page.locator("#composer").input_value() == text  # the typed text stays
        await screenshot(page, "chat-session-expired-phone")

        # A reload, then logging in again: the message goes out once, with its first client_id.
        await page.reload()
        await page.get_by_role("heading", name="Log in").wait_for()
        await login(page, "dave")
        await page.wait_for_url(f"**{chat_path}")
        await page.locator(".msg-user", has_text=text).wait_for()
        await wait_until(
            page,
            "document.querySelector('.msg-reply:last-of-type')?.classList.contains("
            "'status-complete')",
        )
        assert await page.locator("#composer").input_value() == ""
        history = await server_messages(page)
        assert [m["content"] for m in history].count(text) == 1
        pending = await page.evaluate("localStorage.getItem('personae.pending')")
        assert pending in (None, "[]")
        assert page.js_errors == []


async def test_the_maintenance_banner(browser: Any, start_web: Any) -> None:
    async with start_web(maintenance_mode=True) as web:
        page = await new_page(browser, web, PHONE)
        await page.goto("/")
        banner = page.locator("#notice")
        await banner.wait_for()
        assert "aintenance" in await banner.inner_text()
        assert await banner.get_by_role("link", name="Status page").count() == 1
        await screenshot(page, "discover-maintenance-phone")

        # A write refused during maintenance says so in plain words, with a reference.
        await page.goto("/register")
        await page.get_by_label("Username").fill("erin")
        await page.get_by_label("Password").fill("a long enough passphrase")
        await page.get_by_role("button", name="Create account").click()
        alert = page.get_by_role("alert")
        await alert.wait_for()
        words = await alert.inner_text()
        assert "planned maintenance" in words and "Reference:" in words
        assert page.js_errors == []


async def test_a_send_whose_answer_was_lost_is_stored_once(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        character = await public_character(web)
        page = await new_page(browser, web, PHONE)
        await register(page, "gina")
        await open_chat(page, character["id"])

        async def lose_the_answer(route: Any) -> None:
            await route.fetch()  # the server stores the message...
            await route.abort()  # ...but its answer never reaches the page

        await page.route("**/api/v1/chats/*/messages/*", lose_the_answer)
        text = "Did this arrive?"
        await send(page, text)
        alert = page.get_by_role("alert")
        await alert.wait_for()
        assert "could not reach the server" in await alert.inner_text()
        assert await page.locator("#composer").input_value() == text

        await page.unroute("**/api/v1/chats/*/messages/*")
        await alert.get_by_role("button", name="Retry").click()
        await wait_until(
            page,
            "document.querySelector('.msg-reply:last-of-type')?.classList.contains("
            "'status-complete') && document.querySelectorAll('.msg-user').length === 1",
        )
        assert await page.locator("#composer").input_value() == ""
        history = await server_messages(page)
        assert [m["content"] for m in history].count(text) == 1
        assert page.js_errors == []


@asynccontextmanager
async def _slow_reply_chat(browser: Any, start_web: Any, username: str) -> AsyncIterator[Any]:
    """A phone's page of a new user's chat, whose replies stream at 8 tokens a second."""
    async with start_web(tokens_per_second=8, max_reply_tokens=12) as web:
        character = await public_character(web)
        page = await new_page(browser, web, PHONE)
        await register(page, username)
        await open_chat(page, character["id"])
        yield page


async def _answer_sends_once_shown(page: Any, selector: str) -> asyncio.Event:
    """Hold each send's answer (read on the server at once) until `selector` is shown on
    the page; the event is set once an answer was given."""
    answered = asyncio.Event()

    async def answer_late(route: Any) -> None:
        response = await route.fetch()
        await page.locator(selector).wait_for()
        await route.fulfill(response=response)
        answered.set()

    await page.route("**/api/v1/chats/*/messages/*", answer_late)
    return answered


async def test_an_answer_older_than_the_stream_does_not_undo_it(
    browser: Any, start_web: Any
) -> None:
    # A retried send's answer is read while the reply is being written, and reaches the
    # page only after the stream said the reply was complete: the page keeps "complete".
    async with _slow_reply_chat(browser, start_web, "hana") as page:
        complete = ".msg-reply.status-complete[data-position='2']"
        answered = await _answer_sends_once_shown(page, complete)
        await send(page, "Slowly, please.")
        await asyncio.wait_for(answered.wait(), timeout=15)
        await wait_until(page, "document.querySelector('#composer').value === ''")
        reply = page.locator(".msg-reply").last
        assert "status-complete" in (await reply.get_attribute("class") or "")
        history = await server_messages(page)
        assert [m["status"] for m in history if m["role"] == "assistant"][-1] == "complete"
        assert page.js_errors == []


async def test_an_answer_that_comes_after_the_first_tokens_keeps_them(
    browser: Any, start_web: Any
) -> None:
    # The send's answer (the reply as stored: queued, no text) reaches the page after
    # the stream has begun the reply: the streamed text stays and keeps growing.
    async with _slow_reply_chat(browser, start_web, "ines") as page:
        await page.evaluate(
            """() => {
              window.replyShrank = false;
              let longest = 0;
              new MutationObserver(() => {
                const text = document.querySelector(".msg-reply[data-position='2'] .msg-text");
                const length = text ? text.textContent.length : 0;
                if (length < longest) window.replyShrank = true;
                longest = Math.max(longest, length);
              }).observe(document.body, { subtree: true, childList: true, characterData: true });
            }"""
        )
        streamed = ".msg-reply.status-generating[data-position='2'] .msg-text:not(:empty)"
        answered = await _answer_sends_once_shown(page, streamed)
        await send(page, "Tell me a story.")
        await asyncio.wait_for(answered.wait(), timeout=15)
        await page.locator(".msg-reply.status-complete[data-position='2']").wait_for()
        history = await server_messages(page)
        reply = [m for m in history if m["role"] == "assistant"][-1]
        shown = await page.locator(".msg-reply[data-position='2'] .msg-text").inner_text()
        assert shown.strip() == reply["content"].strip()
        assert await page.evaluate("window.replyShrank") is False
        assert page.js_errors == []
