"""Recall of older messages by meaning: message vectors in the database, cosine search.

`Embedder` turns texts into unit vectors. `MiniLMEmbedder` (services/minilm.py)
is the semantic one, used when the files of all-MiniLM-L6-v2 are there (`serve`
and `personae models pull` fetch them, see docs/memory.md).
`HashedLexicalEmbedder` is a lexical stand-in (hashed bag of word stems, so it
finds messages that share words, not paraphrases) that needs no model. Both
store float16 vectors in `message_vectors`; a chat's vectors are kept in memory
once read and only the new ones are read on later turns, and a reply embeds only
its query, so a turn costs about the same in a chat of 10 messages or 10,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import threading
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from personae.errors import ConfigurationError
from personae.llm.embedding_files import find_embedding_dir
from personae.services.minilm import MiniLMEmbedder
from personae.settings import Settings
from personae.storage.db import Database, Transaction
from personae.storage.repos import memories as memory_repo

Matrix = npt.NDArray[np.float32]
# Messages embedded per step of an index job (each step committed): with MiniLM
# about a few hundred milliseconds of one low-priority thread.
_INDEX_CHUNK = 32
# The most floats scanned on the event loop (about 0.5 ms); more go to a worker thread.
_SCAN_HERE_FLOATS = 6_000_000
# Query vectors kept by text (384 floats each with MiniLM): those sent and not yet answered.
_QUERIES_KEPT = 256

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yes",
        "oh",
        "ok",
        "okay",
    ]
)


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of `dimensions` floats."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class HashedLexicalEmbedder:
    """A lexical fallback: word stems hashed into a fixed vector, weighted 1 + log(tf).

    Not a model of meaning: it recalls messages that share (stemmed) words with
    the query. It is here so recall works with nothing to download.
    """

    name = "hashed-lexical-v1"

    def __init__(self, dimensions: int = 512) -> None:
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
            for word, count in Counter(words).items():
                column = zlib.crc32(word.encode()) % self.dimensions
                matrix[row, column] += 1.0 + math.log(count)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.asarray(matrix / np.maximum(norms, 1e-9), dtype=np.float32)


@dataclass
class _ChatVectors:
    last_position: int = -1
    message_ids: list[str] = field(default_factory=list)
    positions: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    matrix: Matrix | None = None
    # Every message before this position is known to have a vector (or none is due).
    covered_before: int = 0


@dataclass(frozen=True)
class _Scores:
    """A query's cosine scores against one matrix of a chat's vectors (row by row)."""

    matrix: Matrix
    scores: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Recalled:
    message_id: str
    position: int
    score: float


def _lower_priority() -> None:
    """Run this thread at the lowest CPU priority (Linux: per thread), so replies and
    the query's embedding get the cores first; elsewhere it runs as it is."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class Recall:
    """A chat's message vectors and the search among them.

    A reply embeds only its query (`search`) and reads the vectors added since its
    last turn (`refresh`); vectors of older messages are made by a background
    job (`index`, see recall_jobs.py) on one low-priority thread, so a message is
    recallable once that job has reached it.
    """

    def __init__(self, database: Database, embedder: Embedder, *, cached_chats: int = 8) -> None:
        self._db = database
        self.embedder = embedder
        self._cached_chats = cached_chats
        self._chats: OrderedDict[str, _ChatVectors] = OrderedDict()
        self._indexer: ThreadPoolExecutor | None = None
        # By text: the vectors of the latest queries, ready or being made.
        self._queries: OrderedDict[str, Future[npt.NDArray[np.float32]]] = OrderedDict()
        self._query_thread: ThreadPoolExecutor | None = None
        # By (chat, query): a sent message's scores against the chat's vectors as they
        # were at its send, made on the query thread right after its vector.
        self._scores: OrderedDict[tuple[str, str], Future[_Scores]] = OrderedDict()

    def _cached(self, chat_id: str) -> _ChatVectors:
        cached = self._chats.pop(chat_id, None) or _ChatVectors()
        self._chats[chat_id] = cached
        while len(self._chats) > self._cached_chats:
            self._chats.popitem(last=False)
        return cached

    async def refresh(self, tx: Transaction, chat_id: str) -> int:
        """Read the chat's vectors stored since the last read (all of them the first
        time); returns how many were new."""
        cached = self._cached(chat_id)
        fresh = await memory_repo.vectors_after(
            tx, chat_id, self.embedder.name, cached.last_position
        )
        if not fresh:
            return 0
        stored = np.frombuffer(b"".join(v for _i, _p, v in fresh), dtype=np.float16)
        block: Matrix = stored.reshape(len(fresh), self.embedder.dimensions).astype(np.float32)
        cached.matrix = block if cached.matrix is None else np.vstack([cached.matrix, block])
        cached.message_ids += [message_id for message_id, _p, _v in fresh]
        added = np.fromiter((position for _i, position, _v in fresh), np.int64, len(fresh))
        cached.positions = np.concatenate([cached.positions, added])
        cached.last_position = fresh[-1][1]
        return len(fresh)

    async def index_due(self, tx: Transaction, chat_id: str, *, before_position: int) -> bool:
        """Whether messages before a position wait for vectors (after `refresh`). Asks the
        database only when the position moved past what is known to be covered."""
        cached = self._cached(chat_id)
        if before_position <= cached.covered_before:
            return False
        waiting = await memory_repo.unindexed_messages(
            tx,
            chat_id,
            after_position=cached.last_position,
            before_position=before_position,
            limit=1,
        )
        if not waiting:
            cached.covered_before = before_position
        return bool(waiting)

    async def search(
        self, chat_id: str, query: str, *, before_position: int, limit: int, min_score: float
    ) -> list[Recalled]:
        """The `limit` messages before a position closest to `query`, best first, among
        the vectors read so far (see `refresh`).

        The query is embedded (unless `prepare` began it, and its scores) on a worker
        thread (numpy lets go of the GIL), so the event loop keeps streaming and the caller can read
        the database meanwhile. A scan of a chat's vectors is done here up to a
        fraction of a millisecond's worth (a thread would wait longer for the GIL),
        on a worker thread beyond.
        """
        cached = self._chats.get(chat_id)
        if cached is None or cached.matrix is None or limit <= 0 or not query.strip():
            return []
        # What the thread reads: `refresh` replaces these arrays and only appends to the ids.
        matrix, positions, message_ids = cached.matrix, cached.positions, cached.message_ids
        eligible = int(np.searchsorted(positions, before_position))
        if eligible == 0:
            return []

        vector = await self.query_vector(query)
        prepared = self._prepared_scores(chat_id, query, matrix)

        def scan() -> list[Recalled]:
            scores = prepared[:eligible] if prepared is not None else matrix[:eligible] @ vector
            top = np.arange(eligible)
            if eligible > limit:
                top = np.argpartition(scores, eligible - limit)[eligible - limit :]
            best = top[np.argsort(-scores[top])]
            return [
                Recalled(message_ids[i], int(positions[i]), float(scores[i]))
                for i in best
                if scores[i] >= min_score
            ]

        if prepared is not None or eligible * matrix.shape[1] <= _SCAN_HERE_FLOATS:
            return scan()
        return await asyncio.to_thread(scan)

    def _prepared_scores(
        self, chat_id: str, query: str, matrix: Matrix
    ) -> npt.NDArray[np.float32] | None:
        """The scores `prepare` made for this query against this very matrix, if done
        (vectors read since make another matrix, which is scanned instead)."""
        future = self._scores.get((chat_id, query))
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        made = future.result()
        return made.scores if made.matrix is matrix else None

    def prepare(self, chat_id: str, query: str) -> Future[_Scores] | None:
        """Begin embedding `query` (a message being sent to a chat) on a worker thread
        now, when the chat has vectors to search, and scoring the chat's vectors against
        it: its reply's search finds both made, or being made, meanwhile. Returns the
        scoring's future (None when there is nothing to search)."""
        cached = self._chats.get(chat_id)
        if cached is None or cached.matrix is None or not query.strip():
            return None
        vector = self._query_future(query)
        matrix = cached.matrix
        assert self._query_thread is not None

        def score() -> _Scores:
            # Queued behind the embedding on the same single thread: the vector is made.
            return _Scores(matrix, matrix @ vector.result())

        scoring = self._query_thread.submit(score)
        self._scores.pop((chat_id, query), None)
        self._scores[(chat_id, query)] = scoring
        while len(self._scores) > _QUERIES_KEPT:
            self._scores.popitem(last=False)
        return scoring

    def forget_queries(self) -> None:
        """Drop the query vectors and scores kept (the next search of each makes them
        again)."""
        self._queries.clear()
        self._scores.clear()

    async def query_vector(self, query: str) -> npt.NDArray[np.float32]:
        """The query's vector: the one kept or being made, else made now."""
        future = self._query_future(query)
        try:
            # Shielded: a search given up does not cancel a vector another may await.
            return await asyncio.shield(asyncio.wrap_future(future))
        except Exception:
            if self._queries.get(query) is future:  # not kept: the next search tries again
                del self._queries[query]
            raise

    def _query_future(self, query: str) -> Future[npt.NDArray[np.float32]]:
        """The query's vector, ready or being made (a few recent ones are kept: a search
        may run twice in a turn, and a prepared one waits for its reply)."""
        future = self._queries.pop(query, None)
        if future is None or future.cancelled():
            if self._query_thread is None:
                self._query_thread = ThreadPoolExecutor(1, thread_name_prefix="personae-query")
            future = self._query_thread.submit(self._embed_query, query)
        self._queries[query] = future
        while len(self._queries) > _QUERIES_KEPT:
            self._queries.popitem(last=False)
        return future

    def _embed_query(self, query: str) -> npt.NDArray[np.float32]:
        return np.asarray(self.embedder.embed([query])[0], dtype=np.float32)

    async def index(
        self, chat_id: str, *, before_position: int, stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Store vectors of the messages before a position that have none yet, a chunk
        at a time (each chunk committed), until done or `stop()`; returns how many."""
        model = self.embedder.name
        loop = asyncio.get_running_loop()
        if self._indexer is None:
            self._indexer = ThreadPoolExecutor(
                1, thread_name_prefix="personae-recall-index", initializer=_lower_priority
            )
        stored = 0
        while not stop():
            async with self._db.read() as tx:
                after = await memory_repo.last_indexed_position(tx, chat_id, model)
                pending = await memory_repo.unindexed_messages(
                    tx,
                    chat_id,
                    after_position=after,
                    before_position=before_position,
                    limit=_INDEX_CHUNK,
                )
            if not pending:
                cached = self._cached(chat_id)
                cached.covered_before = max(cached.covered_before, before_position)
                break
            texts = [content for _id, _position, content in pending]
            vectors = await loop.run_in_executor(self._indexer, self.embedder.embed, texts)
            rows = [
                (message_id, position, vectors[index].astype(np.float16).tobytes())
                for index, (message_id, position, _content) in enumerate(pending)
            ]
            async with self._db.write() as tx:
                # Another process may have indexed them meanwhile: keep only what is new.
                latest = await memory_repo.last_indexed_position(tx, chat_id, model)
                fresh = [row for row in rows if row[1] > latest]
                await memory_repo.insert_vectors(tx, chat_id, model, fresh)
            stored += len(fresh)
        return stored


def load_embedder(settings: Settings) -> Embedder:
    """MiniLM when asked for or (`auto`) when its files are found, else the lexical one."""
    if settings.embedding_model == "lexical":
        return HashedLexicalEmbedder()
    folder = find_embedding_dir(settings.embedding_model_dir, settings.data_dir)
    if folder is not None:
        return MiniLMEmbedder(folder)
    if settings.embedding_model == "minilm":
        raise ConfigurationError(
            "PERSONAE_EMBEDDING_MODEL=minilm but no all-MiniLM-L6-v2 files were found: run "
            "`personae models pull` or set PERSONAE_EMBEDDING_MODEL_DIR"
        )
    return HashedLexicalEmbedder()
