"""The chat screen: *actions* in italics and a minimal Markdown that no text can turn
into HTML, avatars beside messages, the actions behind one menu (a click, the keyboard,
a long press on a phone), and the list of chats with avatars, last messages and times."""

from __future__ import annotations

import base64
from typing import Any

from browser.helpers import (
    DESKTOP,
    PHONE,
    new_page,
    open_chat,
    public_character,
    register,
    screenshot,
    send,
    tiny_png,
    wait_until,
)

AVATAR = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
GREETING = "*waves a paw* Welcome **in**! Try the `jasmine` tea.\n> The kettle hums."
HOSTILE = (
    '<img src=x onerror="window.pwned=1"> **<b>bold</b>** *open `<script>window.pwned=2'
    "</script>` *a *b **c"
)


async def _replies_done(page: Any, count: int) -> None:
    await wait_until(
        page,
        f"document.querySelectorAll('.msg-reply').length >= {count} && "
        "document.querySelector('.msg-reply:last-of-type')?.classList.contains('status-complete')",
    )


async def test_actions_in_italics_and_hostile_markdown_stays_text(
    browser: Any, start_web: Any
) -> None:
    async with start_web(tokens_per_second=200) as web:
        character = await public_character(web, avatar=AVATAR, first_message=GREETING)
        page = await new_page(browser, web, DESKTOP)
        await register(page, "iris")
        await open_chat(page, character["id"])
        greeting = page.locator("li.msg-reply").first
        await greeting.locator("em", has_text="waves a paw").wait_for()
        assert await greeting.locator(".msg-text strong").inner_text() == "in"
        assert await greeting.locator(".msg-text code").inner_text() == "jasmine"
        assert await greeting.locator(".msg-text blockquote").inner_text() == "The kettle hums."
        assert "*" not in await greeting.locator(".msg-text").inner_text()
        # The character's avatar beside its reply; the user's initial beside theirs.
        # (The uploaded picture is stored and served in sizes: the small one, loaded.)
        picture = greeting.locator("img.avatar")
        assert await picture.get_attribute("src") == character["avatar_urls"]["64"]
        await wait_until(
            page,
            "(() => { const img = document.querySelector('li.msg-reply img.avatar');"
            " return img.complete && img.naturalWidth > 0; })()",
        )

        await send(page, HOSTILE)
        mine = page.locator("li.msg-user").last
        await mine.wait_for()
        await _replies_done(page, 2)
        assert await mine.locator(".avatar-letter").inner_text() == "I"
        text = mine.locator(".msg-text")
        assert await text.locator("img, b, script").count() == 0
        shown = await text.inner_text()
        assert '<img src=x onerror="window.pwned=1">' in shown and "<b>bold</b>" in shown
        assert await text.locator("strong").inner_text() == "<b>bold</b>"
        assert await text.locator("code").inner_text() == "<script>window.pwned=2</script>"
        assert shown.endswith("*a *b **c")  # unbalanced stars stay as typed
        assert await page.evaluate("window.pwned") is None
        await screenshot(page, "chat-markdown-desktop")

        # The tokenizer is linear: pathological inputs of 200,000 characters take
        # milliseconds (a quadratic one would take minutes), and nothing becomes HTML.
        timings = await page.evaluate(
            """async () => {
              const { renderMarkdown } = await import("/js/markdown.js");
              const out = {};
              const units = ["*a ", "**a ", "`", "*a **b ", "> *x\\n", "<img src=x onerror=1>*"];
              for (const unit of units) {
                const text = unit.repeat(Math.ceil(200000 / unit.length));
                const start = performance.now();
                const holder = document.createElement("div");
                holder.append(...renderMarkdown(text));
                out[unit] = [performance.now() - start, holder.querySelectorAll("img").length];
              }
              return out;
            }"""
        )
        for unit, (elapsed_ms, images) in timings.items():
            assert images == 0, unit
            assert elapsed_ms < 3000, (unit, elapsed_ms)
        assert page.js_errors == []


async def test_the_message_menu_by_click_keyboard_and_long_press(
    browser: Any, start_web: Any
) -> None:
    # Voice off: read-aloud adds its button and menu item (test_voice_web.py).
    async with start_web(tokens_per_second=200, voice="off") as web:
        character = await public_character(web)
        page = await new_page(browser, web, DESKTOP)
        await register(page, "jules")
        await open_chat(page, character["id"])
        await send(page, "Hello there")
        await _replies_done(page, 2)
        reply = page.locator("li.msg-reply").last
        # Swipe arrows and the stars (and Continue, on a reply the length limit cut:
        # the simulated backend's always is) are all the buttons beside one "⋯".
        assert await reply.locator(".label-cut").count() == 1
        assert await reply.locator(".msg-actions button").count() == 2 + 4 + 1
        assert await reply.locator("button").count() == 2 + 4 + 1 + 1

        more = reply.get_by_role("button", name="More actions")
        await more.click()
        menu = reply.get_by_role("menu")
        await menu.wait_for()
        items = await menu.get_by_role("menuitem").all_inner_texts()
        assert items == [
            "Regenerate",
            "Continue",
            "Copy text",
            "Pin to memory",
            "What went into this reply",
            "Edit",
            "Report",
            "Delete",
        ]
        assert await more.get_attribute("aria-expanded") == "true"
        # The keyboard: the first item has the focus, arrows move it, Escape closes the
        # menu and gives the focus back to the button.
        assert await page.evaluate("document.activeElement.textContent") == "Regenerate"
        await page.keyboard.press("ArrowDown")
        assert await page.evaluate("document.activeElement.textContent") == "Continue"
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("ArrowUp")
        assert await page.evaluate("document.activeElement.textContent") == "Delete"
        await page.keyboard.press("Escape")
        await menu.wait_for(state="detached")
        assert await more.get_attribute("aria-expanded") == "false"
        assert await page.evaluate("document.activeElement.classList.contains('menu-button')")
        # Enter opens it again; a click elsewhere closes it.
        await page.keyboard.press("Enter")
        await menu.wait_for()
        await page.locator(".ai-notice").click()
        await menu.wait_for(state="detached")
        # An action: Pin to memory.
        await more.click()
        await menu.get_by_role("menuitem", name="Pin to memory").click()
        await page.locator(".memory-list li").first.wait_for()
        assert page.js_errors == []

        # On a phone, a long press on the message opens the same menu.
        context = await browser.new_context(
            viewport=PHONE, base_url=web.url, has_touch=True, is_mobile=True
        )
        web.contexts.append(context)
        context.set_default_timeout(15_000)
        phone = await context.new_page()
        phone_errors: list[str] = []
        phone.on("pageerror", lambda error: phone_errors.append(str(error)))
        await register(phone, "kim")
        await open_chat(phone, character["id"])
        greeting = phone.locator("li.msg-reply").first
        await greeting.locator(".msg-text").wait_for()
        box = await greeting.locator(".msg-text").bounding_box()
        assert box is not None
        touch = await context.new_cdp_session(phone)
        point = [{"x": box["x"] + 10, "y": box["y"] + box["height"] / 2}]
        await touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": point})
        phone_menu = greeting.get_by_role("menu")
        await phone_menu.wait_for()  # opens while the finger is still down
        await touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        assert await phone_menu.is_visible()
        await screenshot(phone, "chat-menu-phone")
        await phone_menu.get_by_role("menuitem", name="Edit").tap()
        await greeting.get_by_role("textbox", name="Edit message").wait_for()
        # Nothing is wider than the phone.
        assert await phone.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        assert phone_errors == []


async def test_the_chat_list_shows_avatars_last_messages_and_times(
    browser: Any, start_web: Any
) -> None:
    async with start_web(tokens_per_second=200) as web:
        fox = await public_character(web, avatar=AVATAR)
        owl = await public_character(web, name="Hoot", first_message="*blinks slowly* Hoo.")
        page = await new_page(browser, web, PHONE)
        await register(page, "lena")
        await open_chat(page, fox["id"])
        await send(page, "A pot of jasmine, please")
        await page.locator("li.msg-user", has_text="jasmine").wait_for()
        await _replies_done(page, 2)
        await open_chat(page, owl["id"])

        await page.goto("/chats")
        items = page.locator(".chat-item")
        await items.first.wait_for()
        assert await items.count() == 2
        hoot, bramble = items.nth(0), items.nth(1)  # the latest first
        assert "Hoo." in await hoot.locator(".chat-last").inner_text()
        hoot_letter = hoot.locator(".avatar-letter")
        assert await hoot_letter.inner_text() == "H"
        # Its colour is set (the Content-Security-Policy refuses style attributes).
        assert await hoot_letter.evaluate("(el) => getComputedStyle(el).backgroundColor") not in {
            "rgba(0, 0, 0, 0)",
            "transparent",
        }
        assert await bramble.locator("img.avatar").get_attribute("src") == fox["avatar_urls"]["64"]
        last = await bramble.locator(".chat-last").inner_text()
        assert last and "\n" not in last
        for item in (hoot, bramble):
            assert await item.locator("time").inner_text() in {"just now", "1 min", "2 min"}
        # One line, cut with an ellipsis rather than wrapped.
        assert await bramble.locator(".chat-last").evaluate(
            "(el) => getComputedStyle(el).whiteSpace === 'nowrap' "
            "&& getComputedStyle(el).textOverflow === 'ellipsis'"
        )
        await screenshot(page, "chats-phone")

        # "1 chat", not "1 chats", where a character's chats are counted.
        await page.goto(f"/c/{owl['id']}")
        await page.get_by_text("1 chat ·", exact=False).wait_for()
        await page.goto("/")
        await page.locator(".char-meta", has_text="1 chat").first.wait_for()
        assert await page.locator(".char-meta", has_text="1 chats").count() == 0
        relative = await page.evaluate(
            """async () => {
              const { plural, shortTime } = await import("/js/dom.js");
              const now = new Date(2025, 5, 11, 12, 0);
              const ago = (ms) => shortTime(new Date(now - ms).toISOString(), now);
              return [plural(0, "chat"), plural(1, "chat"), plural(2, "reply", "replies"),
                ago(10e3), ago(5 * 60e3), ago(3 * 3600e3), ago(24 * 3600e3)];
            }"""
        )
        assert relative == [
            *("0 chats", "1 chat", "2 replies"),
            *("just now", "5 min", "3 h", "yesterday"),
        ]
        assert page.js_errors == []
