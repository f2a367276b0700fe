"""A sent message is scored against its chat's vectors at send; its reply's search
uses those scores only while they are of the vectors it searches."""

from __future__ import annotations

import asyncio

from memory_helpers import fill_history, start_chat

from conftest import Api
from personae.services.recall import HashedLexicalEmbedder, Recall

FILLER = "We walked along the quay and watched the boats come in"


async def test_scores_made_at_send_give_the_search_its_answer(api: Api) -> None:
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    texts = [f"{FILLER} ({index})" for index in range(40)]
    texts[5] = "The harbour master's cat is called Pepper."
    texts[35] = "The lighthouse lamp is green on Sundays."
    await fill_history(api.container, chat_id, texts)
    recall = Recall(api.container.database, HashedLexicalEmbedder())
    await recall.index(chat_id, before_position=30)
    async with api.container.database.read() as tx:
        assert await recall.refresh(tx, chat_id) == 30

    async def search(query: str) -> list[int]:
        found = await recall.search(chat_id, query, before_position=41, limit=1, min_score=0.1)
        return [f.position for f in found]

    # Scored at send against the 30 vectors read: the search finds the cat (position 6).
    scoring = recall.prepare(chat_id, "What is the cat called, Pepper?")
    assert scoring is not None
    await asyncio.wrap_future(scoring)
    assert await search("What is the cat called, Pepper?") == [6]
    recall.forget_queries()
    assert await search("What is the cat called, Pepper?") == [6]  # the same, scanned here

    # Scored at send, then ten more vectors read before the search: the lamp, among them,
    # is found (scores of the 30 alone could not find it).
    question = "Which colour is the lighthouse lamp?"
    scoring = recall.prepare(chat_id, question)
    assert scoring is not None
    await asyncio.wrap_future(scoring)
    await recall.index(chat_id, before_position=41)
    async with api.container.database.read() as tx:
        assert await recall.refresh(tx, chat_id) == 11
    assert await search(question) == [36]


async def test_a_chat_without_vectors_is_not_scored(api: Api) -> None:
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    recall = Recall(api.container.database, HashedLexicalEmbedder())
    assert recall.prepare(chat_id, "Anything?") is None
