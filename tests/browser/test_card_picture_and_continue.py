"""A person imports a real-sized PNG card and its picture stays; a reply the length
limit cut says so, and Continue goes on from its end in the same message."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from browser.helpers import (
    DESKTOP,
    PHONE,
    new_page,
    register,
    screenshot,
    send,
    server_messages,
    wait_until,
)
from personae.cards import png

CARD = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "data": {
        "name": "Maren",
        "description": "Maren keeps the lighthouse at Saltmere and talks to ships.",
        "personality": "patient, dry",
        "scenario": "A stormy night at the lighthouse.",
        "first_mes": "*lifts the lantern* You made it up the stairs. Sit by the fire.",
        "mes_example": "",
        "creator_notes": "",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": [],
        "tags": ["lighthouse"],
        "creator": "someone",
        "character_version": "1",
        "extensions": {},
        "group_only_greetings": [],
    },
}


def _card_with_a_large_picture(folder: Path) -> Path:
    """A PNG card whose picture (random pixels compress badly: about 1.3 MB) was past
    the old data-URL limit, as most real cards' pictures are."""
    # A gradient under noise in the low bits: it looks like a picture and stays large.
    noise = np.frombuffer(os.urandom(700 * 600 * 3), dtype=np.uint8).reshape(700, 600, 3) >> 2
    rows, columns = np.mgrid[0:700, 0:600]
    gradient = np.stack([columns * 190 // 600, rows * 120 // 700 + 40, 200 - rows * 150 // 700], -1)
    image = Image.fromarray((gradient + noise).clip(0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    chunk = base64.b64encode(json.dumps(CARD).encode()).decode()
    path = folder / "maren.png"
    path.write_bytes(png.with_text(buffer.getvalue(), {"ccv3": chunk}))
    return path


async def _picture_loaded(page: Any, selector: str) -> None:
    await wait_until(
        page,
        f"(() => {{ const img = document.querySelector({json.dumps(selector)});"
        " return !!img && img.complete && img.naturalWidth > 0"
        " && img.getAttribute('src').startsWith('/api/v1/images/'); })()",
    )


async def test_an_imported_card_keeps_its_picture_and_continue_goes_on(
    browser: Any, start_web: Any, tmp_path: Path
) -> None:
    async with start_web(tokens_per_second=200) as web:
        page = await new_page(browser, web, DESKTOP)
        await register(page, "nora")
        await page.goto("/create")
        await page.get_by_label("Character card (PNG, JSON or CHARX)").set_input_files(
            str(_card_with_a_large_picture(tmp_path))
        )
        await page.get_by_role("button", name="Import").click()
        await page.get_by_role("heading", name="Maren").wait_for()
        await _picture_loaded(page, "main img.avatar")
        # The greeting's *action* reads in italics here too.
        await page.locator("blockquote.greeting em", has_text="lifts the lantern").wait_for()
        await screenshot(page, "card-import-picture-desktop")

        await page.get_by_role("button", name="Start a chat").click()
        await page.locator("#composer").wait_for()
        await _picture_loaded(page, "li.msg-reply img.avatar")
        await send(page, "What ship is that?")
        # The simulated backend's replies run to the token limit: trimmed and marked.
        reply = page.locator("li.msg-reply").last
        await reply.locator(".label-cut").wait_for()
        await wait_until(
            page, "!document.querySelector('li.msg-reply:last-child .typing')", timeout_s=30
        )
        [before] = [m for m in await server_messages(page) if m["position"] == 2]
        assert before["finish_reason"] == "length" and before["cut_short"] is True
        await screenshot(page, "chat-cut-short-desktop")

        await reply.get_by_role("button", name="Continue this reply from where it ends").click()
        # The same message grows from its end, and ends again.
        try:
            await wait_until(
                page,
                "(async () => { const id = location.pathname.split('/').pop();"
                " const items = (await (await fetch(`/api/v1/chats/${id}/messages`)).json())"
                ".items;"
                " const reply = items.find((m) => m.position === 2);"
                f" return reply.content.length > {len(before['content'])}"
                " && ['complete', 'stopped', 'failed'].includes(reply.status); })()",
                timeout_s=60,
            )
        except AssertionError as error:
            # Say where the continuation stood, and what the page told the user.
            now = [m for m in await server_messages(page) if m["position"] == 2]
            alerts = await page.get_by_role("alert").all_text_contents()
            raise AssertionError(
                f"{error}\nbefore: {before}\nnow: {now}\nalerts: {alerts}"
            ) from None
        [after] = [m for m in await server_messages(page) if m["position"] == 2]
        assert after["id"] == before["id"] and after["swipe_index"] == before["swipe_index"]
        assert after["content"].startswith(before["content"].rstrip())
        assert after["finish_reason"] in {"stop", "length"}
        await wait_until(
            page,
            f"document.querySelector('li.msg-reply:last-child .msg-text').textContent.length"
            f" > {len(before['content'])}",
        )
        assert page.js_errors == []


async def test_the_imported_picture_on_a_phone(
    browser: Any, start_web: Any, tmp_path: Path
) -> None:
    async with start_web() as web:
        page = await new_page(browser, web, PHONE)
        await register(page, "omar")
        await page.goto("/create")
        await page.get_by_label("Character card (PNG, JSON or CHARX)").set_input_files(
            str(_card_with_a_large_picture(tmp_path))
        )
        await page.get_by_role("button", name="Import").click()
        await page.get_by_role("heading", name="Maren").wait_for()
        await _picture_loaded(page, "main img.avatar")
        await screenshot(page, "card-import-picture-phone")
        assert page.js_errors == []
