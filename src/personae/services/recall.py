"""Recall of older messages by meaning: message vectors in the database, cosine search.

`Embedder` turns texts into unit vectors. `MiniLMEmbedder` (services/minilm.py)
is the semantic one, used when the files of all-MiniLM-L6-v2 are there (`serve`
and `personae models pull` fetch them, see docs/memory.md).
`HashedLexicalEmbedder` is a lexical stand-in (hashed bag of word stems, so it
finds messages that share words, not paraphrases) that needs no model. Both
store float16 vectors in `message_vectors`; a chat's vectors are kept in memory
once read and only the new ones are read on later turns, a reply embeds only
its query, and a big chat is searched through an index of its vectors
(recall_index.py: the nearest cells, not every vector), so a turn costs about
the same in a chat of 1,000 messages or 10,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from personae.errors import ConfigurationError
from personae.llm.embedding_files import find_embedding_dir
from personae.services.lexical_embedder import HashedLexicalEmbedder as HashedLexicalEmbedder
from personae.services.minilm import MiniLMEmbedder
from personae.services.recall_index import (
    Cells,
    Rows,
    add_rows,
    build_cells,
    candidates,
    needs_build,
    score,
)
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


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of `dimensions` floats."""

    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@dataclass
class _ChatVectors:
    last_position: int = -1
    message_ids: list[str] = field(default_factory=list)
    positions: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    matrix: Matrix | None = None
    # Every message before this position is known to have a vector (or none is due).
    covered_before: int = 0
    # The IVF cells of the first rows (None: scanned whole), and whether they are being made.
    cells: Cells | None = None
    building: bool = False
    # Rows found deleted, unselected or edited since their vector was made: never recalled.
    dropped: Rows = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass(frozen=True)
class _Scores:
    """A query's scores against the rows worth scoring of one state of a chat's
    vectors (its matrix and cells), best first."""

    matrix: Matrix
    cells: Cells | None
    rows: Rows
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
        # Cells are made on their own low-priority thread (see recall_index.py).
        self._builder: ThreadPoolExecutor | None = None
        self._building: dict[str, asyncio.Future[Cells]] = {}

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
        self._update_cells(chat_id, cached)
        return len(fresh)

    def _update_cells(self, chat_id: str, cached: _ChatVectors) -> None:
        """Put vectors just read in their cells; make the cells (anew) on the builder
        thread when the chat is big enough or has doubled. Until they are made, the
        vectors they do not hold are scanned exactly."""
        assert cached.matrix is not None
        if cached.cells is not None:
            cached.cells = add_rows(cached.cells, cached.matrix)
        if cached.building or not needs_build(cached.cells, cached.matrix.shape[0]):
            return
        if self._builder is None:
            self._builder = ThreadPoolExecutor(
                1, thread_name_prefix="personae-recall-cells", initializer=_lower_priority
            )
        cached.building = True
        made = asyncio.get_running_loop().run_in_executor(self._builder, build_cells, cached.matrix)

        def done(future: asyncio.Future[Cells]) -> None:
            cached.building = False
            if self._building.get(chat_id) is future:
                del self._building[chat_id]
            if future.cancelled() or future.exception() is not None:
                return  # scanned whole meanwhile; the next read tries again
            if self._chats.get(chat_id) is cached and cached.matrix is not None:
                cached.cells = add_rows(future.result(), cached.matrix)

        made.add_done_callback(done)
        self._building[chat_id] = made

    async def cells_made(self, chat_id: str) -> None:
        """Wait until the chat's cells being made (if any) are in use."""
        building = self._building.get(chat_id)
        if building is not None:
            with contextlib.suppress(Exception):
                await building
            await asyncio.sleep(0)  # its done-callback runs first

    def vectors_and_cells(self, chat_id: str) -> tuple[int, Cells | None]:
        """How many of the chat's vectors are read, and the cells of its index (None:
        scanned whole)."""
        cached = self._chats.get(chat_id)
        if cached is None or cached.matrix is None:
            return 0, None
        return cached.matrix.shape[0], cached.cells

    def drop(self, chat_id: str, message_ids: Sequence[str]) -> None:
        """Never recall these messages again (found deleted, unselected or edited)."""
        cached = self._chats.get(chat_id)
        if cached is None or not message_ids:
            return
        wanted = set(message_ids)
        rows = [row for row, known in enumerate(cached.message_ids) if known in wanted]
        cached.dropped = np.union1d(cached.dropped, np.asarray(rows, np.int64))

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
        the vectors read so far (see `refresh`): all of them scanned in a small chat,
        the nearest cells' in a big one (recall_index.py).

        The query is embedded (unless `prepare` began it, and its scores) on a worker
        thread (numpy lets go of the GIL), so the event loop keeps streaming and the
        caller can read the database meanwhile. Scoring is done here up to a fraction
        of a millisecond's worth (a thread would wait longer for the GIL), on a worker
        thread beyond.
        """
        cached = self._chats.get(chat_id)
        if cached is None or cached.matrix is None or limit <= 0 or not query.strip():
            return []
        # One state of the chat: `refresh` replaces these and only appends to the ids.
        matrix, positions, message_ids = cached.matrix, cached.positions, cached.message_ids
        cells, dropped = cached.cells, cached.dropped
        eligible = int(np.searchsorted(positions, before_position))
        if eligible == 0:
            return []
        vector = await self.query_vector(query)
        prepared = self._prepared_scores(chat_id, query, matrix, cells)

        def scan() -> list[Recalled]:
            if prepared is not None:
                rows, scores = prepared
                best = _first_eligible(rows, scores, eligible, dropped, limit)
            else:
                rows, scores = candidates(cells, matrix, vector)
                best = _best(rows, scores, eligible, dropped, limit)
            if cells is not None and len(best) < limit and len(rows) < eligible:
                # The probed cells hold too few messages before the position: scan all.
                every = np.arange(eligible)
                best = _best(every, score(matrix[:eligible], vector), eligible, dropped, limit)
            return [
                Recalled(message_ids[i], int(positions[i]), float(s))
                for i, s in best
                if s >= min_score
            ]

        scanned = eligible if cells is None else matrix.shape[0] - cells.rows + eligible // 8
        if prepared is not None or scanned * matrix.shape[1] <= _SCAN_HERE_FLOATS:
            return scan()
        return await asyncio.to_thread(scan)

    def _prepared_scores(
        self, chat_id: str, query: str, matrix: Matrix, cells: Cells | None
    ) -> tuple[Rows, npt.NDArray[np.float32]] | None:
        """The scores `prepare` made for this query against this very state of the
        chat's vectors, if done (vectors read since make another, which is scored
        instead)."""
        future = self._scores.get((chat_id, query))
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        made = future.result()
        if made.matrix is not matrix or made.cells is not cells:
            return None
        return made.rows, made.scores

    def prepare(self, chat_id: str, query: str) -> Future[_Scores] | None:
        """Begin embedding `query` (a message being sent to a chat) on a worker thread
        now, when the chat has vectors to search, and scoring the chat's vectors (those
        of the nearest cells, in a big chat) against it: its reply's search finds both
        made, or being made, meanwhile. Returns the scoring's future (None when there
        is nothing to search)."""
        cached = self._chats.get(chat_id)
        if cached is None or cached.matrix is None or not query.strip():
            return None
        vector = self._query_future(query)
        matrix, cells = cached.matrix, cached.cells
        assert self._query_thread is not None

        def scored() -> _Scores:
            # Queued behind the embedding on the same single thread: the vector is made.
            rows, scores = candidates(cells, matrix, vector.result())
            best_first = np.argsort(-scores, kind="stable")  # the reply's search only picks
            return _Scores(matrix, cells, rows[best_first], scores[best_first])

        scoring = self._query_thread.submit(scored)
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


def _best(
    rows: Rows, scores: npt.NDArray[np.float32], eligible: int, dropped: Rows, limit: int
) -> list[tuple[int, float]]:
    """The `limit` best (row, score) among `rows` before row `eligible` (rows are in
    position order) and not dropped, best first."""
    keep = rows < eligible
    if dropped.size:
        keep &= ~np.isin(rows, dropped)
    rows, scores = rows[keep], scores[keep]
    top = np.arange(len(rows))
    if len(rows) > limit:
        top = np.argpartition(scores, len(rows) - limit)[len(rows) - limit :]
    top = top[np.argsort(-scores[top])]
    return [(int(rows[i]), float(scores[i])) for i in top]


def _first_eligible(
    rows: Rows, scores: npt.NDArray[np.float32], eligible: int, dropped: Rows, limit: int
) -> list[tuple[int, float]]:
    """Like `_best`, for rows already in order of score (best first): only the first
    few are looked at, unless too many of them are not eligible."""
    for end in (limit * 8, len(rows)):
        head, head_scores = rows[:end], scores[:end]
        keep = head < eligible
        if dropped.size:
            keep &= ~np.isin(head, dropped)
        if int(keep.sum()) >= limit or end >= len(rows):
            picked = np.flatnonzero(keep)[:limit]
            return [(int(head[i]), float(head_scores[i])) for i in picked]
    return []


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
