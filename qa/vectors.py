"""Nearest-neighbour search over chunk vectors, behind one small interface.

Every backend maps *ids* (the chunk row ids of the store, int64) to
L2-normalised float32 vectors and ranks them by inner product (= cosine).

- :class:`FaissFlat`: exact search (FAISS ``IndexFlatIP`` in an ``IndexIDMap2``,
  so ids are the store's row ids and deletions work). The default.
- :class:`FaissHNSW`: approximate graph search for large collections. HNSW
  cannot delete vectors, so ``supports_remove`` is False and the caller
  rebuilds it from the stored vectors instead.
- :class:`NumpyBrute`: the plain numpy reference the FAISS ones are tested
  against.

``search(queries, k, allowed)`` takes an optional array of the ids that may be
returned (the search filters) and returns ``(ids, scores)``, both of shape
``(len(queries), k)``, best first, padded with id -1 and score -inf.
Files are written with ``faiss.write_index`` or ``numpy.savez`` (no pickle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import faiss
import numpy as np


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _as_vectors(vectors, dimension: int) -> np.ndarray:
    vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if vectors.ndim != 2 or vectors.shape[1] != dimension:
        raise ValueError(f"expected vectors of shape (n, {dimension}), got {vectors.shape}")
    return vectors


def _pad(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (n, m) results to (n, k) with id -1 / score -inf."""
    n, m = ids.shape
    if m >= k:
        return ids[:, :k], scores[:, :k]
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf, dtype=np.float32)
    out_ids[:, :m] = ids
    out_scores[:, :m] = scores
    return out_ids, out_scores


class VectorIndex(ABC):
    """Inner-product search over (id, vector) pairs."""

    kind: str  # "flat" | "hnsw" | "numpy": what the manifest records
    supports_remove: bool = True

    def __init__(self, dimension: int):
        self.dimension = dimension

    @classmethod
    def build(cls, dimension: int, ids, vectors) -> "VectorIndex":
        index = cls(dimension)
        if len(ids):
            index.add(ids, vectors)
        return index

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, ids, vectors) -> None:
        """Add vectors under the given ids (ids must not be present yet)."""

    @abstractmethod
    def remove(self, ids) -> None:
        """Remove the given ids (absent ids are ignored)."""

    @abstractmethod
    def search(self, queries, k: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k ids and scores per query; only ``allowed`` ids when given."""

    @abstractmethod
    def save(self, path: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, path: Path) -> "VectorIndex": ...


class NumpyBrute(VectorIndex):
    """Exact search with numpy: the reference implementation."""

    kind = "numpy"

    def __init__(self, dimension: int):
        super().__init__(dimension)
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dimension), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids, vectors) -> None:
        ids, vectors = _as_ids(ids), _as_vectors(vectors, self.dimension)
        if np.isin(ids, self._ids).any() or len(np.unique(ids)) != len(ids):
            raise ValueError("duplicate vector ids")
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.concatenate([self._vectors, vectors])

    def remove(self, ids) -> None:
        keep = ~np.isin(self._ids, _as_ids(ids))
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]

    def search(self, queries, k: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_vectors(queries, self.dimension)
        ids, vectors = self._ids, self._vectors
        if allowed is not None:
            keep = np.isin(ids, _as_ids(allowed))
            ids, vectors = ids[keep], vectors[keep]
        scores = queries @ vectors.T  # (n, m)
        # best first; ties broken by id so results are deterministic
        order = np.lexsort((np.broadcast_to(ids, scores.shape), -scores), axis=1)[:, :k]
        return _pad(ids[order], np.take_along_axis(scores, order, axis=1), k)

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, ids=self._ids, vectors=self._vectors)

    @classmethod
    def load(cls, path: Path) -> "NumpyBrute":
        with np.load(path, allow_pickle=False) as data:
            index = cls(int(data["vectors"].shape[1]))
            index._ids = data["ids"].astype(np.int64)
            index._vectors = data["vectors"].astype(np.float32)
        return index


class _Faiss(VectorIndex):
    """Shared plumbing of the FAISS backends: an IndexIDMap2 around an index."""

    def __init__(self, dimension: int, index: faiss.Index | None = None):
        super().__init__(dimension)
        self._index = index if index is not None else faiss.IndexIDMap2(self._make_inner())

    @abstractmethod
    def _make_inner(self) -> faiss.Index: ...

    def _params(self, selector, k: int) -> faiss.SearchParameters:
        return faiss.SearchParameters(sel=selector)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids, vectors) -> None:
        ids, vectors = _as_ids(ids), _as_vectors(vectors, self.dimension)
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids) -> None:
        ids = _as_ids(ids)
        if len(ids):
            self._index.remove_ids(faiss.IDSelectorBatch(ids))

    def _selector(self, allowed: np.ndarray):
        """A bitmap selector over the allowed ids (O(1) per test, tiny: one bit per id)."""
        allowed = allowed[allowed >= 0]
        size = int(allowed.max()) + 1 if len(allowed) else 1
        mask = np.zeros(size, dtype=bool)
        mask[allowed] = True
        bitmap = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # n in bytes
        selector._keep_alive = bitmap  # the selector holds a raw pointer into it
        return selector

    def search(self, queries, k: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_vectors(queries, self.dimension)
        n = len(queries)
        if len(self) == 0 or k <= 0:
            return _pad(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), k)
        if allowed is None:
            scores, ids = self._index.search(queries, k)
        else:
            allowed = _as_ids(allowed)
            if len(allowed) == 0:
                return _pad(np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32), k)
            selector = self._selector(allowed)
            scores, ids = self._index.search(queries, k, params=self._params(selector, k))
        scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
        return ids.astype(np.int64), scores

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path) -> "_Faiss":
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{path}: not an id-mapped FAISS index")
        return cls(int(index.d), index)


class FaissFlat(_Faiss):
    """Exact inner-product search (FAISS IndexFlatIP)."""

    kind = "flat"

    def _make_inner(self) -> faiss.Index:
        return faiss.IndexFlatIP(self.dimension)


class FaissHNSW(_Faiss):
    """Approximate search on an HNSW graph (FAISS IndexHNSWFlat, inner product).

    ``ef_search`` trades speed for recall. With a filter, the graph walk only
    returns allowed ids. Narrow filters (at most ``exact_below`` ids), where a
    filtered graph walk loses recall, and walks that come back short of k
    results search the allowed vectors exactly instead.
    """

    kind = "hnsw"
    supports_remove = False
    M = 32
    EF_CONSTRUCTION = 100
    ef_search = 128
    exact_below = 10_000  # a filter allowing at most this many ids is searched exactly

    def _make_inner(self) -> faiss.Index:
        inner = faiss.IndexHNSWFlat(self.dimension, self.M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = self.EF_CONSTRUCTION
        return inner

    def _params(self, selector, k: int) -> faiss.SearchParameters:
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, 2 * k))

    def remove(self, ids) -> None:
        raise NotImplementedError("an HNSW index cannot delete vectors: rebuild it")

    def search(self, queries, k: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_vectors(queries, self.dimension)
        if allowed is None:
            if len(self) == 0:
                return super().search(queries, k)
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, 2 * k))
            scores, ids = self._index.search(queries, k, params=params)
            return ids.astype(np.int64), np.where(ids < 0, -np.inf, scores).astype(np.float32)
        allowed = np.unique(_as_ids(allowed))
        if len(allowed) <= self.exact_below:
            return self._exact(queries, k, allowed)
        ids, scores = super().search(queries, k, allowed)
        if ((ids >= 0).sum(axis=1) < min(k, len(self._present(allowed)))).any():
            return self._exact(queries, k, allowed)
        return ids, scores

    def _present(self, ids: np.ndarray) -> np.ndarray:
        id_map = faiss.vector_to_array(self._index.id_map)
        return ids[np.isin(ids, id_map)]

    def _exact(self, queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        present = self._present(allowed)
        brute = NumpyBrute(self.dimension)
        if len(present):
            brute.add(present, self._index.reconstruct_batch(present))
        return brute.search(queries, k)


VECTOR_INDEXES: dict[str, type[VectorIndex]] = {
    cls.kind: cls for cls in (FaissFlat, FaissHNSW, NumpyBrute)
}


def vector_index_class(kind: str) -> type[VectorIndex]:
    """The backend for a manifest's ``ann`` value ("flat", "hnsw", "numpy")."""
    try:
        return VECTOR_INDEXES[kind]
    except KeyError:
        raise ValueError(
            f"unknown ANN index {kind!r}; choose one of {', '.join(VECTOR_INDEXES)}"
        ) from None
