"""Recall by meaning with the real all-MiniLM-L6-v2, and indexing off the reply's path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from memory_helpers import fill_history, start_chat, wait_until_indexed

from conftest import Api, fleet, wait_for_reply
from personae.llm.embedding_files import FILES, default_embedding_dir, find_embedding_dir
from personae.services.memory import RECALL_INDEX_JOB
from personae.services.minilm import MiniLMEmbedder
from personae.services.recall import Embedder, HashedLexicalEmbedder, load_embedder
from personae.settings import Settings
from personae.storage.repos import memories as memory_repo

# The fact and the question share no content word: only meaning links them.
FACT = "My sister moved to Lisbon last spring; she rents a flat near the river."
QUESTION = "Which city is your sibling living in these days?"
FILLER = [
    "We walked along the quay and watched the fishing boats come in.",
    "The tide was low, so the gulls picked at the mud flats all afternoon.",
    "I mended the net while you told me about the storm of last winter.",
    "The lighthouse keeper waved at us from the rocks.",
    "We ate grilled sardines at the tavern by the harbour wall.",
]


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> MiniLMEmbedder:
    return MiniLMEmbedder(minilm_dir)


def _cosines(embedder: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    vectors = embedder.embed(texts)
    return np.asarray(vectors @ vectors.T, dtype=np.float32)


def test_minilm_reproduces_the_sentence_transformers_reference(minilm: MiniLMEmbedder) -> None:
    # The similarity matrix sentence-transformers' documentation prints for this model.
    sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]
    reference = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    vectors = minilm.embed(sentences)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, reference, atol=1e-3)
    # Stable: the same text gives the same vector, alone or among others.
    np.testing.assert_allclose(minilm.embed([sentences[1]])[0], vectors[1], atol=1e-6)


def test_paraphrases_score_clearly_above_unrelated_sentences(minilm: MiniLMEmbedder) -> None:
    pairs = [
        (FACT, QUESTION),
        (
            "The old lighthouse has been dark for ten years.",
            "Nobody has lit that beacon in a decade.",
        ),
        ("I am starving, let's get some food.", "I'm really hungry, we should eat something."),
    ]
    for text, paraphrase in pairs:
        related = _cosines(minilm, [text, paraphrase])[0, 1]
        unrelated = max(_cosines(minilm, [text, other])[0, 1] for other in FILLER)
        assert related > 0.3 and related > unrelated + 0.15, (text, related, unrelated)
    # The lexical stand-in sees nothing in common between the fact and the question.
    assert _cosines(HashedLexicalEmbedder(), [FACT, QUESTION])[0, 1] == 0.0


def test_pulled_files_are_found_and_checked(minilm_dir: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in minilm_dir.iterdir() if p.suffix != ".sha256") == sorted(FILES)
    assert minilm_dir == default_embedding_dir(minilm_dir.parent.parent)
    assert find_embedding_dir(None, minilm_dir.parent.parent) == minilm_dir
    # A damaged copy in a data directory is not used.
    damaged = default_embedding_dir(tmp_path)
    damaged.mkdir(parents=True)
    for name in FILES:
        (damaged / name).write_bytes(b"not the model")
    assert find_embedding_dir(None, tmp_path) != damaged
    # A folder set in the settings is taken as it is.
    assert find_embedding_dir(damaged, tmp_path) == damaged


async def _ask_after_200_messages(api: Api) -> list[dict[str, Any]]:
    alice = await api.user("alice")
    chat = await start_chat(alice)
    texts = [FACT] + [f"{FILLER[index % len(FILLER)]} ({index})" for index in range(199)]
    await fill_history(api.container, chat["id"], texts)
    # A first turn queues the indexing of what left the recent history; the reply
    # does not wait for it.
    sent = await alice.put(
        f"/api/v1/chats/{chat['id']}/messages/first", json={"content": "Shall we walk?"}
    )
    await wait_for_reply(alice, chat["id"], sent.json()["reply"]["id"])
    await wait_until_indexed(api.container, chat["id"])
    sent = await alice.put(
        f"/api/v1/chats/{chat['id']}/messages/question", json={"content": QUESTION}
    )
    reply = await wait_for_reply(alice, chat["id"], sent.json()["reply"]["id"])
    view = (await alice.get(f"/api/v1/messages/{reply['id']}/prompt")).json()
    assert view["left_out"]["history_before_position"] > 100
    return [part for part in view["parts"] if part["source"] == "recalled"]


@pytest.mark.parametrize("embedding", ["lexical", "minilm"])
async def test_a_fact_from_200_messages_back_is_recalled_by_meaning(
    make_settings: Callable[..., Settings], minilm_dir: Path, embedding: str
) -> None:
    async with fleet(
        make_settings,
        {"a": {"tokens_per_second": 2000}},
        embedding_model=embedding,
        embedding_model_dir=minilm_dir,
    ) as (api, _urls):
        recalled = await _ask_after_200_messages(api)
    if embedding == "minilm":
        assert recalled and "Lisbon" in recalled[0]["content"]
    else:  # no shared word: the lexical stand-in cannot find it
        assert not any("Lisbon" in part["content"] for part in recalled)


class _CountingEmbedder:
    """The lexical embedder, counting the texts each call embeds."""

    def __init__(self) -> None:
        self._inner = HashedLexicalEmbedder()
        self.name = self._inner.name
        self.dimensions = self._inner.dimensions
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        return self._inner.embed(texts)


async def test_a_reply_embeds_only_its_query_and_indexing_waits_for_the_job(api: Api) -> None:
    memory = api.container.memory
    assert memory.recall is not None
    counting = _CountingEmbedder()
    memory.recall.embedder = counting
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    texts = ["The harbour master's cat is called Pepper."]
    texts += [f"{FILLER[index % len(FILLER)]} ({index})" for index in range(299)]
    texts += ["What is the harbour master's cat called?"]
    await fill_history(api.container, chat_id, texts)
    end = len(texts) + 1  # the greeting came first

    async def turn() -> list[str]:
        window = await memory.history_window(chat_id, end, 2048)
        assert window.start_position > 0
        found = await memory.prompt_memory(chat_id, window)
        return [m.content for m in found.recalled]

    # Nothing indexed yet: nothing recalled (not even the query embedded: nothing to
    # compare it with), and a job queued.
    assert await turn() == []
    assert counting.calls == []
    async with api.container.database.read() as tx:
        assert await memory_repo.has_open_job(tx, chat_id, RECALL_INDEX_JOB)
        assert await memory_repo.vectors_after(tx, chat_id, counting.name, -1) == []
    # The job's work, run directly here (the scheduler may run the queued job meanwhile:
    # between the two, every message before the window gets exactly one vector).
    window = await memory.history_window(chat_id, end, 2048)
    stored = await memory.recall.index(chat_id, before_position=window.start_position)
    assert 0 <= stored <= window.start_position
    async with api.container.database.read() as tx:
        vectors = await memory_repo.vectors_after(tx, chat_id, counting.name, -1)
    assert sorted(position for _, position, _ in vectors) == list(range(window.start_position))
    assert all(count <= 32 for count in counting.calls[1:])
    counting.calls.clear()
    recalled = await turn()
    assert recalled and "Pepper" in recalled[0]
    assert counting.calls == [1]
    # A message being sent is embedded at once, alongside its send; its reply's search
    # then finds the vector made.
    counting.calls.clear()
    memory.prepare_recall(chat_id, "Who keeps the harbour master's cat?")
    for _ in range(100):
        if counting.calls:
            break
        await asyncio.sleep(0.01)
    assert counting.calls == [1]
    window = await memory.history_window(chat_id, end, 2048)
    found = await memory.prompt_memory(chat_id, window, "Who keeps the harbour master's cat?")
    assert found.recalled and "Pepper" in found.recalled[0].content
    assert counting.calls == [1]
    # A chat with nothing to recall embeds nothing ahead.
    other = (await start_chat(alice))["id"]
    memory.prepare_recall(other, "Anything?")
    await asyncio.sleep(0.05)
    assert counting.calls == [1]


def test_auto_takes_minilm_when_found_and_lexical_otherwise(
    make_settings: Callable[..., Settings], minilm_dir: Path
) -> None:
    assert load_embedder(make_settings(embedding_model_dir=minilm_dir)).name == "all-minilm-l6-v2"
    assert load_embedder(make_settings()).name == HashedLexicalEmbedder.name


async def test_two_indexers_of_one_chat_at_once_both_succeed(api: Api) -> None:
    """The job and a second indexer (another process, or a retried job) may index the
    same messages at once; PostgreSQL does not serialise them, so the store upserts."""
    memory = api.container.memory
    assert memory.recall is not None
    alice = await api.user("alice")
    chat_id = (await start_chat(alice))["id"]
    texts = [f"{FILLER[index % len(FILLER)]} ({index})" for index in range(120)]
    await fill_history(api.container, chat_id, texts)
    stored = await asyncio.gather(
        memory.recall.index(chat_id, before_position=100),
        memory.recall.index(chat_id, before_position=100),
    )
    # Each stored what it found missing (the two may overlap); neither failed.
    assert sum(stored) >= 100 and all(0 <= count <= 100 for count in stored)
    async with api.container.database.read() as tx:
        vectors = await memory_repo.vectors_after(tx, chat_id, memory.recall.embedder.name, -1)
    assert len(vectors) == len({message_id for message_id, _, _ in vectors}) == 100
