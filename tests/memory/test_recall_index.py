"""Recall's IVF index: its top-k agrees with the exact scan, small chats are scanned
exactly, vectors added later are found, and deleted or edited messages are never
recalled."""

from __future__ import annotations

from typing import Any

import numpy as np
from memory_helpers import fill_history, start_chat

from conftest import Api
from personae.services.memory import HistoryWindow, MemoryService
from personae.services.recall import HashedLexicalEmbedder, Recall
from personae.services.recall_index import (
    EXACT_BELOW,
    add_rows,
    build_cells,
    candidates,
    cell_count,
    needs_build,
)

TOPICS = [
    "harbour boats quay fishing nets tide sailors rope anchor gulls",
    "kitchen bread soup onions garlic oven recipe supper pepper salt",
    "letters sister lisbon tram postcard travel train station ticket",
    "storm thunder rain lighthouse lamp keeper wind waves night",
    "market coins prices merchant silk spices bargain stall crowd",
    "school lessons teacher books reading maths history exam",
    "garden roses tomatoes soil seeds watering spring blossom",
    "music fiddle dance song tavern singer melody evening",
]


def _chat_texts(count: int, seed: int) -> list[str]:
    """Chat-like lines: each mostly about one topic, with words from others and
    from a long tail (names, numbers) as real messages have."""
    rng = np.random.default_rng(seed)
    vocab = [topic.split() for topic in TOPICS]
    texts = []
    for index in range(count):
        main = vocab[int(rng.integers(len(vocab)))]
        words = list(rng.choice(main, size=int(rng.integers(3, 8))))
        words += list(rng.choice(vocab[int(rng.integers(len(vocab)))], size=2))
        words += [f"name{int(rng.zipf(1.5)) % 500}", f"thing{index % 97}"]
        texts.append(" ".join(str(w) for w in words))
    return texts


def _exact_top(matrix: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    return {int(i) for i in np.argsort(-(matrix @ query))[:k]}


def _index_top(cells: object, matrix: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    rows, scores = candidates(cells, matrix, query)  # type: ignore[arg-type]
    return {int(rows[i]) for i in np.argsort(-scores)[:k]}


def test_the_index_top_5_agrees_with_the_exact_scan() -> None:
    embedder = HashedLexicalEmbedder()
    matrix = embedder.embed(_chat_texts(4000, seed=1))
    cells = build_cells(matrix)
    assert len(cells.members) == 63  # about sqrt(4000)
    assert sorted(np.concatenate(cells.members).tolist()) == list(range(4000))
    queries = embedder.embed(_chat_texts(100, seed=2))
    found = [len(_exact_top(matrix, q, 5) & _index_top(cells, matrix, q, 5)) / 5 for q in queries]
    assert np.mean(found) >= 0.9, np.mean(found)
    # It scans a fraction of the vectors, not all of them.
    rows, _scores = candidates(cells, matrix, queries[0])
    assert len(rows) < 4000 * 0.3


def test_vectors_added_after_the_cells_were_made_are_found() -> None:
    embedder = HashedLexicalEmbedder()
    texts = _chat_texts(3000, seed=3)
    matrix = embedder.embed(texts)
    cells = build_cells(matrix[:2500])
    # Not yet in a cell: scanned exactly.
    query = matrix[2900]
    rows, scores = candidates(cells, matrix, query)
    assert int(rows[int(np.argmax(scores))]) == 2900
    # Put in their nearest cells: found there.
    grown = add_rows(cells, matrix)
    assert grown.rows == 3000 and grown.centroids is cells.centroids
    assert sum(len(m) for m in grown.members) == 3000
    rows, scores = candidates(grown, matrix, query)
    assert int(rows[int(np.argmax(scores))]) == 2900


async def _recall_with(api: Api, texts: list[str]) -> tuple[Any, str, Recall, MemoryService]:
    """A chat of the greeting (position 0) and `texts`, all indexed and read."""
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    await fill_history(api.container, chat_id, texts)
    recall = Recall(api.container.database, HashedLexicalEmbedder())
    await recall.index(chat_id, before_position=len(texts) + 1)
    async with api.container.database.read() as tx:
        assert await recall.refresh(tx, chat_id) == len(texts) + 1
    await recall.cells_made(chat_id)
    return (
        alice,
        chat_id,
        recall,
        MemoryService(api.container.database, api.container.settings, recall),
    )


async def test_a_big_chat_is_searched_through_cells_and_agrees_with_the_scan(api: Api) -> None:
    texts = _chat_texts(EXACT_BELOW + 500, seed=4)
    texts[123] = "My sister Marguerite lives in Lisbon near the old tram stop."
    _alice, chat_id, recall, _memory = await _recall_with(api, texts)
    cached = recall._chats[chat_id]
    assert cached.cells is not None and cached.cells.rows == len(texts) + 1
    found = await recall.search(
        chat_id,
        "Where does Marguerite live, Lisbon?",
        before_position=10**6,
        limit=3,
        min_score=0.1,
    )
    assert found[0].position == 124  # positions start after the greeting (0)
    # Top 5 of the index against the exact scan, for queries from the chat itself.
    assert cached.matrix is not None
    agree = []
    for query in _chat_texts(40, seed=5):
        got = await recall.search(chat_id, query, before_position=10**6, limit=5, min_score=-1)
        vector = recall.embedder.embed([query])[0]
        exact = _exact_top(cached.matrix, vector, 5)
        agree.append(len(exact & {cached.message_ids.index(f.message_id) for f in got}) / 5)
    assert np.mean(agree) >= 0.9, np.mean(agree)


async def test_a_small_chat_is_scanned_exactly(api: Api) -> None:
    texts = _chat_texts(300, seed=6)
    _alice, chat_id, recall, _memory = await _recall_with(api, texts)
    cached = recall._chats[chat_id]
    assert cached.cells is None and cached.matrix is not None
    for query in _chat_texts(20, seed=7):
        got = await recall.search(chat_id, query, before_position=10**6, limit=5, min_score=-1)
        scores = cached.matrix @ recall.embedder.embed([query])[0]
        best = np.sort(scores)[::-1][:5]
        assert [round(f.score, 4) for f in got] == [round(float(s), 4) for s in best]


async def test_deleted_and_edited_messages_are_never_recalled(api: Api) -> None:
    texts = [f"We watched the boats at the quay ({index})" for index in range(60)]
    texts[10] = "The harbour master's cat is called Pepper."
    texts[20] = "Pepper the cat sleeps on the harbour master's boat."
    texts[30] = "The cat Pepper caught a fish at the harbour."
    alice, chat_id, recall, memory = await _recall_with(api, texts)
    window = HistoryWindow([], 61)
    question = "What is the harbour master's cat called?"

    async def recalled() -> list[str]:
        found = await memory.prompt_memory(chat_id, window, question)
        return [m.content for m in found.recalled]

    assert set(await recalled()) == {texts[10], texts[20], texts[30]}
    ids = {
        f.position: f.message_id
        for f in await recall.search(chat_id, question, before_position=61, limit=3, min_score=0.1)
    }
    deleted = await alice.delete(f"/api/v1/messages/{ids[11]}")
    assert deleted.status_code == 204, deleted.text
    edited = await alice.patch(
        f"/api/v1/messages/{ids[21]}", json={"content": "We sold the old rowing boat."}
    )
    assert edited.status_code == 200, edited.text
    # Neither the deleted message nor the edited one (found by its old text's vector).
    after = await recalled()
    assert texts[10] not in after and "We sold the old rowing boat." not in after
    assert texts[30] in after
    # Known to the chat's vectors as dropped: not even found any more.
    found = await recall.search(chat_id, question, before_position=61, limit=5, min_score=0.1)
    assert {ids[11], ids[21]}.isdisjoint(f.message_id for f in found)


def test_cells_are_made_from_2048_vectors_and_anew_when_the_chat_doubles() -> None:
    matrix = HashedLexicalEmbedder().embed(_chat_texts(EXACT_BELOW, seed=8))
    assert not needs_build(None, EXACT_BELOW - 1)
    assert needs_build(None, EXACT_BELOW)
    cells = build_cells(matrix)
    assert not needs_build(cells, 2 * EXACT_BELOW - 1)
    assert needs_build(cells, 2 * EXACT_BELOW)
    # No cell holds more than twice the mean, even for a chat that repeats one line.
    same = HashedLexicalEmbedder().embed(["We watched the boats."] * EXACT_BELOW)
    repeated = build_cells(same)
    assert max(len(m) for m in repeated.members) <= 2 * EXACT_BELOW / cell_count(EXACT_BELOW) + 1
