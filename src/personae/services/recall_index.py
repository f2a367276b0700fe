"""An inverted-file (IVF) index of one chat's message vectors, for recall.

Below `EXACT_BELOW` vectors a search scans them all (exact, and cheap). From
there the vectors are grouped into about sqrt(n) cells by spherical k-means
(built on a worker thread, never on the event loop); a search compares the
query with the cells' centroids and scans only the nearest few cells, so its
cost grows with sqrt(n), not n. Vectors read later are put in their nearest
cell as they come; when the chat has doubled since the cells were made, they
are made anew (the centroids would drift from what the cells hold).
A vector not yet in any cell (read while the cells were being made) is scanned
exactly, so nothing read is ever missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]

# Below this many vectors a search scans them all (about 1 MB of floats with MiniLM).
EXACT_BELOW = 2048
# The cells are made anew once the chat has this many times the vectors they were made of.
REBUILD_GROWTH = 2.0
# A search scores the vectors of the sqrt(cells) nearest cells, and of at least
# _MIN_PROBES: about n^0.75 of n vectors (1,000 of 10,000; 32,000 of a million). On
# clustered chat-like texts its top 5 agree with the exact scan's 0.9 and more.
_MIN_PROBES = 10
# No cell holds more than this many times the mean (bigger ones are split).
_CELL_SIZE_LIMIT = 2.0
# Rows scored in one product (256 x 512 floats: well under OpenBLAS' threading threshold).
_BLOCK_ROWS = 256
# k-means: rounds, and vectors sampled per cell to train on (the rest are only assigned).
_KMEANS_ROUNDS = 10
_SAMPLE_PER_CELL = 48


@dataclass(frozen=True)
class Cells:
    """Cells of the first `rows` vectors of a chat: centroids, and each cell's row
    numbers and vectors (contiguous, so a probed cell is one matrix product).
    Never changed once made: adding vectors makes a new `Cells` sharing the
    untouched cells' arrays, so a search on another thread sees one whole state."""

    centroids: Matrix
    members: tuple[Rows, ...]
    vectors: tuple[Matrix, ...]
    rows: int
    # How many vectors the k-means was run on (the chat doubling from it: rebuild).
    built_from: int

    @property
    def probes(self) -> int:
        count = len(self.members)
        return min(count, max(_MIN_PROBES, math.ceil(math.sqrt(count))))


def score(matrix: Matrix, query: Matrix) -> Matrix:
    """`matrix @ query`, a block of rows at a time: OpenBLAS splits a product of more
    than about a million floats across its threads, and on a busy machine waiting for
    them took 8 to 24 ms where one thread takes 0.05 (measured on 2,400 x 512)."""
    if matrix.shape[0] <= _BLOCK_ROWS:
        return np.asarray(matrix @ query, dtype=np.float32)
    blocks = [matrix[i : i + _BLOCK_ROWS] @ query for i in range(0, matrix.shape[0], _BLOCK_ROWS)]
    return np.concatenate(blocks).astype(np.float32, copy=False)


def cell_count(vectors: int) -> int:
    return max(16, round(math.sqrt(vectors)))


def build_cells(matrix: Matrix, *, seed: int = 0) -> Cells:
    """Spherical k-means over (a sample of) the rows of `matrix` (unit vectors), then
    every row in its nearest cell. CPU-bound: run it on a worker thread."""
    count = matrix.shape[0]
    cells = min(cell_count(count), count)
    rng = np.random.default_rng(seed)
    sample_size = min(count, cells * _SAMPLE_PER_CELL)
    sample = matrix[np.sort(rng.choice(count, sample_size, replace=False))]
    centroids = sample[rng.choice(sample_size, cells, replace=False)].copy()
    for _ in range(_KMEANS_ROUNDS):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, sample)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        # An empty cell keeps its centroid (it may fill as vectors come).
        sums[empty] = centroids[empty]
        norms[empty] = 1.0
        centroids = np.asarray(sums / norms, dtype=np.float32)
    nearest = _nearest(centroids, matrix)
    order = np.argsort(nearest, kind="stable")
    bounds = np.searchsorted(nearest[order], np.arange(cells + 1))
    groups = [order[bounds[c] : bounds[c + 1]].astype(np.int64) for c in range(cells)]
    # A chat that repeats itself piles into a few cells: split those, so that a probe
    # scores a bounded number of vectors whatever the chat looks like.
    most = max(1, math.ceil(_CELL_SIZE_LIMIT * count / cells))
    members = tuple(part for group in groups for part in _split(matrix, group, most))
    vectors = tuple(matrix[m] for m in members)
    centroids = np.stack([_unit(v.mean(axis=0)) for v in vectors]).astype(np.float32)
    return Cells(centroids, members, vectors, count, count)


def _split(matrix: Matrix, group: Rows, most: int) -> list[Rows]:
    """`group` in parts of at most `most` rows, cut along the direction in which its
    vectors differ most from their mean (roughly: its first principal axis)."""
    if len(group) <= most:
        return [group] if len(group) else []
    vectors = matrix[group]
    centred = vectors - vectors.mean(axis=0)
    far = centred[int(np.argmax(np.einsum("ij,ij->i", centred, centred)))]
    ordered = group[np.argsort(centred @ far, kind="stable")]
    parts = math.ceil(len(group) / most)
    return list(np.array_split(ordered, parts))


def _unit(vector: Matrix) -> Matrix:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _nearest(centroids: Matrix, vectors: Matrix) -> npt.NDArray[np.int64]:
    # In blocks: a 10,000 x 100 score matrix at once is fine, a million rows is not.
    out = np.empty(vectors.shape[0], np.int64)
    for start in range(0, vectors.shape[0], 8192):
        block = vectors[start : start + 8192]
        out[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
    return out


def add_rows(cells: Cells, matrix: Matrix) -> Cells:
    """`cells` with rows `cells.rows` to the end of `matrix` each put in its nearest
    cell (the cells touched are copied; the others are shared)."""
    if matrix.shape[0] <= cells.rows:
        return cells
    added = matrix[cells.rows :]
    nearest = _nearest(cells.centroids, added)
    members, vectors = list(cells.members), list(cells.vectors)
    for cell in np.unique(nearest):
        picked = np.flatnonzero(nearest == cell)
        members[cell] = np.concatenate([members[cell], picked + cells.rows])
        vectors[cell] = np.vstack([vectors[cell], added[picked]])
    return Cells(cells.centroids, tuple(members), tuple(vectors), matrix.shape[0], cells.built_from)


def needs_build(cells: Cells | None, vectors: int) -> bool:
    """Whether a chat of `vectors` vectors should have its cells made (anew)."""
    if vectors < EXACT_BELOW:
        return False
    return cells is None or vectors >= cells.built_from * REBUILD_GROWTH


def candidates(cells: Cells | None, matrix: Matrix, query: Matrix) -> tuple[Rows, Matrix]:
    """Row numbers worth scoring for `query`, and their scores: every row when there
    are no cells, else the rows of the nearest cells and those in no cell yet."""
    if cells is None:
        return np.arange(matrix.shape[0], dtype=np.int64), score(matrix, query)
    near = score(cells.centroids, query)
    probes = cells.probes
    probed = np.argpartition(-near, probes - 1)[:probes] if probes < len(near) else range(len(near))
    rows = [cells.members[c] for c in probed]
    scores = [score(cells.vectors[c], query) for c in probed]
    if matrix.shape[0] > cells.rows:  # read since the cells were made: scanned exactly
        rows.append(np.arange(cells.rows, matrix.shape[0], dtype=np.int64))
        scores.append(score(matrix[cells.rows :], query))
    return np.concatenate(rows), np.concatenate(scores).astype(np.float32, copy=False)
