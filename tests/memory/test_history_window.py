"""A chat's history window is read again only past its finished messages, while the
chat's prompt version stays the same; an edit, or a reply still being written, makes
it read again."""

from __future__ import annotations

from typing import Any

import pytest
from memory_helpers import fill_history, start_chat

from conftest import Api
from personae.services.memory import HistoryWindow
from personae.storage.repos import chats as chat_repo

BUDGET = 2048


async def _version(api: Api, chat_id: str) -> Any:
    async with api.container.database.read() as tx:
        chat = await chat_repo.get_chat(tx, chat_id)
    assert chat is not None
    return chat.prompt_version


def _seen(window: HistoryWindow) -> list[tuple[str, str, str]]:
    return [(m.id, m.content, m.status) for m in window.messages]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first position of each history read."""
    positions: list[int] = []
    read = chat_repo.list_history_between

    async def counted(tx: Any, chat_id: str, *, from_position: int, before_position: int) -> Any:
        positions.append(from_position)
        return await read(tx, chat_id, from_position=from_position, before_position=before_position)

    monkeypatch.setattr(chat_repo, "list_history_between", counted)
    return positions


async def test_only_what_came_after_the_finished_messages_is_read_again(
    api: Api, reads: list[int]
) -> None:
    memory = api.container.memory
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    await fill_history(api.container, chat_id, [f"Turn {n} by the quay." for n in range(300)])
    version = await _version(api, chat_id)
    first = await memory.history_window(chat_id, 301, BUDGET, version=version)
    assert first.start_position > 0  # read a page at a time, back from the end
    await fill_history(api.container, chat_id, ["A new question?", "A new answer."])
    assert await _version(api, chat_id) == version  # new messages do not change it
    reads.clear()
    second = await memory.history_window(chat_id, 303, BUDGET, version=version)
    assert reads == [301]
    assert _seen(second) == _seen(await memory.history_window(chat_id, 303, BUDGET))

    # An edit changes the version: the window is read whole, with the edit.
    edited = second.messages[5]
    response = await alice.patch(f"/api/v1/messages/{edited.id}", json={"content": "Changed."})
    assert response.status_code == 200, response.text
    changed = await _version(api, chat_id)
    assert changed != version
    reads.clear()
    third = await memory.history_window(chat_id, 303, BUDGET, version=changed)
    assert reads == [third.start_position]
    assert [m.content for m in third.messages if m.id == edited.id] == ["Changed."]
    # Asked with the version it had before, nothing kept under the new one is used.
    reads.clear()
    await memory.history_window(chat_id, 303, BUDGET, version=version)
    assert reads == [third.start_position]


async def test_a_reply_still_being_written_is_read_again_when_finished(
    api: Api, reads: list[int]
) -> None:
    memory = api.container.memory
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    await fill_history(api.container, chat_id, [f"Turn {n}." for n in range(9)])
    async with api.container.database.write() as tx:
        chat = await chat_repo.lock_chat(tx, chat_id)
        assert chat is not None
        position = await chat_repo.reserve_positions(tx, chat, 1)
        writing = await chat_repo.insert_message(
            tx,
            chat_id=chat_id,
            role="assistant",
            position=position,
            content="Half",
            status="generating",
        )
    version = await _version(api, chat_id)
    window = await memory.history_window(chat_id, position + 1, BUDGET, version=version)
    assert window.messages[-1].status == "generating"
    # Finished as a reply job finishes it (the prompt version does not change).
    async with api.container.database.write() as tx:
        await chat_repo.update_message(tx, writing.id, content="Half and whole.", status="complete")
    assert await _version(api, chat_id) == version
    reads.clear()
    window = await memory.history_window(chat_id, position + 1, BUDGET, version=version)
    assert reads == [position]
    assert (window.messages[-1].content, window.messages[-1].status) == (
        "Half and whole.",
        "complete",
    )
