"""A group room in the web app: two people in two browser contexts (a desktop and a
phone) and two characters, against a real server with a SIMULATED backend.

The owner makes the room and an invite link; the second person opens the link while
logged out, creates an account and lands in the room; both see each other's messages
and both characters' replies in one order; typing shows on the other side; auto-mode
runs and stops; a removed member is told so."""

from __future__ import annotations

from typing import Any

from browser.helpers import (
    PHONE,
    new_page,
    public_character,
    register,
    screenshot,
    send,
    wait_until,
)
from conftest import PASSWORD

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"
# Every message on the screen as (id, who, text): the same ids in the same order for
# everybody; "who" differs only in "You".
MESSAGES = (
    "[...document.querySelectorAll('.messages .msg:not(.pending)')].map((el) => ["
    "el.dataset.id, el.querySelector('.msg-who').firstChild.textContent,"
    "el.classList.contains('status-complete') || el.classList.contains('msg-user')])"
)
ALL_DONE = (
    "document.querySelectorAll('.messages .msg-reply').length >= {n} && "
    "[...document.querySelectorAll('.messages .msg-reply')].every("
    "(el) => el.classList.contains('status-complete'))"
)


async def _replies(page: Any) -> int:
    count: int = await page.evaluate("document.querySelectorAll('.messages .msg-reply').length")
    return count


async def _settled(page: Any, replies: int) -> None:
    await wait_until(page, ALL_DONE.replace("{n}", str(replies)), timeout_s=60)


async def test_two_people_and_two_characters_in_one_room(browser: Any, start_web: Any) -> None:
    # Replies slow enough that auto-mode can be stopped while it runs.
    async with start_web(tokens_per_second=8) as web:
        bramble = await public_character(web, first_message="")
        await public_character(web, name="Juniper", tagline="A lighthouse keeper", tags=["sea"])
        await public_character(web, name="Clover", tagline="A gardener", tags=["garden"])

        owner = await new_page(browser, web)
        await register(owner, "olive")
        # A room from a character's page: Bramble is in it already; Juniper is found.
        await owner.goto(f"/c/{bramble['id']}")
        await owner.get_by_role("link", name="New room with this character").click()
        await owner.get_by_role("heading", name="New room").wait_for()
        await owner.get_by_label("Room title").fill("The riverside")
        await owner.get_by_label("Find a character").fill("Juniper")
        await owner.get_by_role("button", name="Add Juniper").click()
        await owner.locator(".room-chosen li", has_text="Juniper").wait_for()
        # List order: every character answers every message, so the test knows how many.
        await owner.get_by_label("Who speaks next").select_option("list")
        await owner.get_by_role("button", name="Create room").click()
        await owner.get_by_role("heading", name="The riverside").wait_for()
        await owner.locator(".room-characters li", has_text="Juniper").wait_for()
        # The owner adds a character from the panel, and takes it out again.
        await owner.get_by_role("button", name="Add a character").click()
        await owner.get_by_label("Add a character (yours or public)").fill("Clover")
        await owner.get_by_role("button", name="Add Clover").click()
        await owner.locator(".room-characters li", has_text="Clover").wait_for()
        await owner.get_by_role("button", name="Remove Clover from the room").click()
        await owner.locator(".room-characters li", has_text="Clover").wait_for(state="detached")

        # The invite link: made, shown once, copied from the dialog.
        await owner.get_by_role("button", name="Invite people").click()
        await owner.get_by_role("button", name="Create invite link").click()
        link = await owner.locator("#invite-link").input_value()
        assert "/join/" in link
        await owner.locator(".invite-list li", has_text="Member link").wait_for()
        await owner.get_by_role("button", name="Close").click()

        # The second person opens it logged out: log in first (a new account), then in.
        guest = await new_page(browser, web, PHONE)
        await guest.goto(link)
        await guest.get_by_role("heading", name="Log in").wait_for()
        await guest.get_by_role("link", name="Create an account").click()
        await guest.get_by_label("Username").fill("gus")
        await guest.get_by_label("Password").fill(PASSWORD)
        await guest.get_by_role("button", name="Create account").click()
        await guest.get_by_role("heading", name="The riverside").wait_for()
        # Each person is here as themself, not as the room's owner.
        assert await guest.locator(".persona-line").text_content() == "as gus"

        # The room may open with the characters' greetings: counted from here on.
        greetings = await _replies(owner)
        await _settled(owner, greetings)
        opening = {m[0] for m in await owner.evaluate(MESSAGES)}

        # Presence: the owner sees both people here.
        await owner.locator(".room-people .member-here", has_text="gus").wait_for()
        await owner.locator(".room-people .member-here", has_text="olive").wait_for()

        # Typing shows on the other side.
        await guest.locator("#composer").fill("Hello")
        await owner.locator(".typing-line", has_text="is typing").wait_for()
        await send(guest, "Hello from Gus! What is brewing?")
        await (
            owner.locator(".msg-user", has_text="Hello from Gus")
            .locator(".msg-who", has_text="gus")
            .wait_for()
        )
        await _settled(owner, greetings + 2)
        await _settled(guest, greetings + 2)
        await send(owner, "Welcome, Gus. Juniper, tell him about the light.")
        await (
            guest.locator(".msg-user", has_text="Welcome, Gus")
            .locator(".msg-who", has_text="olive")
            .wait_for()
        )
        await _settled(owner, greetings + 4)
        await _settled(guest, greetings + 4)

        seen_by_owner = await owner.evaluate(MESSAGES)
        seen_by_guest = await guest.evaluate(MESSAGES)
        assert [m[0] for m in seen_by_owner] == [m[0] for m in seen_by_guest]

        def replies(seen: list[Any]) -> list[str]:
            return [who for id_, who, _ in seen if id_ not in opening and who != "You"]

        # List order: each message answered by Bramble, then Juniper.
        assert replies(seen_by_owner) == ["gus", "Bramble", "Juniper", "Bramble", "Juniper"]
        assert replies(seen_by_guest) == ["Bramble", "Juniper", "olive", "Bramble", "Juniper"]

        await screenshot(owner, "room-desktop")
        await guest.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await screenshot(guest, "room-phone")
        assert await guest.evaluate(NO_SIDEWAYS_SCROLL)
        # On a phone the members panel is folded; on a desktop it is open beside the chat.
        assert not await guest.locator(".room-panel").evaluate("(el) => el.open")
        assert await owner.locator(".room-panel").evaluate("(el) => el.open")
        await guest.locator(".room-panel summary").click()
        await guest.locator(".room-people li", has_text="olive").wait_for()
        await guest.evaluate("window.scrollTo(0, 0)")
        await screenshot(guest, "room-phone-members")
        assert await guest.evaluate(NO_SIDEWAYS_SCROLL)
        await guest.locator(".room-panel summary").click()

        # Auto-mode: the characters carry on; the other person stops it.
        before = await _replies(owner)
        await owner.get_by_label("Let them talk for").fill("10")
        await owner.get_by_role("button", name="Start auto-mode").click()
        await guest.locator(".auto-state", has_text="Auto-mode").wait_for()
        await wait_until(
            guest,
            f"document.querySelectorAll('.messages .msg-reply.status-complete').length > {before}",
        )
        await guest.get_by_role("button", name="Stop auto-mode").click()
        await owner.get_by_role("button", name="Start auto-mode").wait_for()
        await guest.get_by_role("button", name="Start auto-mode").wait_for()
        await _settled(owner, before + 1)
        await _settled(guest, before + 1)
        after = await _replies(owner)
        assert before < after < before + 10, (before, after)
        assert [m[0] for m in await owner.evaluate(MESSAGES)] == [
            m[0] for m in await guest.evaluate(MESSAGES)
        ]

        # Manual order: a message needs someone picked to answer; then only they do.
        await owner.get_by_label("Turn order", exact=True).select_option("manual")
        await guest.locator("#who-answers option", has_text="Pick who answers").wait_for(
            state="attached"
        )
        await send(guest, "Who keeps the light?")
        await guest.locator(".error-box", has_text="you pick who answers").wait_for()
        assert await guest.locator("#composer").input_value() == "Who keeps the light?"
        await guest.get_by_label("Who answers").select_option(label="Juniper")
        before = await _replies(guest)
        await guest.get_by_role("button", name="Send").click()
        await _settled(guest, before + 1)
        await _settled(owner, before + 1)
        last = await guest.evaluate(MESSAGES)
        assert [who for _id, who, _done in last[-2:]] == ["You", "Juniper"]

        # A person's name in the room is theirs to change; the owner sees it.
        async def new_name(dialog: Any) -> None:
            await dialog.accept("Gus the Brave")

        guest.once("dialog", new_name)
        await guest.locator(".room-panel summary").click()
        await guest.get_by_role("button", name="Change your name in this room").click()
        await guest.locator(".persona-line", has_text="as Gus the Brave").wait_for()
        await owner.locator(".room-people li", has_text="Gus the Brave").wait_for()

        # Made a viewer by the owner: the guest reads along and cannot write.
        await owner.get_by_role("button", name="Make Gus the Brave a viewer").click()
        await guest.locator(".room-note", has_text="viewer").wait_for()
        assert await guest.locator("#composer").is_disabled()
        assert await guest.locator(".messages .star").count() == 0  # nor rate, swipe, stop
        await (
            guest.locator(".messages .msg-reply")
            .last.get_by_role("button", name="More actions")
            .click()
        )
        labels = await guest.get_by_role("menuitem").all_text_contents()
        assert "Delete" not in labels and "Edit" not in labels and "Copy text" in labels
        await guest.keyboard.press("Escape")

        # Removed by the owner: the guest is told at once, and the page stops there.
        owner.on("dialog", lambda dialog: dialog.accept())
        await owner.get_by_role("button", name="Remove Gus the Brave from the room").click()
        await guest.locator(".room-revoked", has_text="no longer in this room").wait_for()
        assert await guest.locator("#composer").is_disabled()

        # My chats lists the room with its group avatars.
        await owner.goto("/chats")
        item = owner.locator(".room-item", has_text="The riverside")
        await item.locator(".chat-character", has_text="1 person · 2 characters").wait_for()
        assert await item.locator(".room-faces .avatar").count() == 2

        # The owner cannot leave; deleting the room is their way out.
        await item.click()
        await owner.get_by_role("button", name="Delete room").click()
        await owner.get_by_role("heading", name="My chats").wait_for()
        assert await owner.locator(".room-item").count() == 0
        assert owner.js_errors == [] and guest.js_errors == []


async def test_a_revoked_or_unknown_invite_says_so(browser: Any, start_web: Any) -> None:
    async with start_web() as web:
        character = await public_character(web)
        owner = await web.api.user()
        room = await owner.post(
            "/api/v1/rooms", json={"title": "Closed", "character_ids": [character["id"]]}
        )
        assert room.status_code == 201, room.text
        base = f"/api/v1/rooms/{room.json()['id']}/invites"
        invite = (await owner.post(base, json={})).json()
        assert (await owner.delete(f"{base}/{invite['id']}")).status_code == 204

        page = await new_page(browser, web)
        await register(page, "ivy")
        await page.goto(invite["url"])
        await page.get_by_role("heading", name="This invite cannot be used").wait_for()
        await page.locator(".error-box", has_text="took this invite link back").wait_for()
        await page.goto("/join/not-a-real-token")
        await page.locator(".error-box", has_text="could not find").wait_for()
        assert page.js_errors == []
