"""Nearest-neighbour search over one segment's vectors (FAISS and BLAS).

Every segment keeps its exact float32 vectors (``vectors.npy``, memory
mapped). Large segments also get an approximate index, one of:

- ``hnsw``: an HNSW graph over 8-bit scalar-quantised copies of the vectors
  (FAISS ``IndexHNSWSQ``): ~0.7 KB per chunk in memory, ~1 ms per query.
- ``ivf``: an inverted file over 8-bit codes (FAISS ``IndexIVFScalarQuantizer``,
  ``nlist`` ~ 4·sqrt(n) lists, ``nprobe`` of them searched): ~0.4 KB per chunk,
  trained in seconds, built by assignment only.

An approximate index only proposes candidates: their exact cosines are
computed from the float32 vectors, so scores are always exact and hybrid
fusion sees true cosines. Segments below :data:`ANN_MIN_ROWS` rows (the
small segments daily updates make) and ``flat`` indexes are searched exactly
(BLAS matrix-vector product).

Filters come as a boolean mask over the segment's positions (tombstones
included). The plan: a mask allowing few positions is searched exactly over
just those vectors; a broad one is passed to FAISS as a bitmap
(``IDSelectorBitmap``) so the graph or list walk skips what is not allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

ANN_KINDS = ("flat", "hnsw", "ivf")
ANN_MIN_ROWS = 20_000
"""Segments smaller than this are searched exactly (a scan of 20k vectors takes ~2 ms)."""
EXACT_MAX_ALLOWED = 20_000
"""A filter allowing at most this many positions of a segment is searched exactly over them."""
GATHER_FRACTION = 0.25
"""Exact search gathers the allowed vectors when they are under this share of the segment; else it scans all and masks."""
ANN_FILE = "ann.faiss"
MARGIN = 8
"""Extra candidates taken from a fast kernel before exact re-scoring (see SegmentVectors._rescored)."""
SCORE_NOISE = 1e-5


def exact_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosines computed row by row, the same bits for a vector wherever it is stored."""
    return np.einsum("ij,j->i", vectors, query, optimize=False).astype(np.float32)


@dataclass(frozen=True)
class AnnParams:
    """Build and search settings of the approximate indexes (recorded in the manifest)."""

    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    ivf_lists_per_sqrt: float = 4.0  # nlist = this * sqrt(rows)
    ivf_nprobe: int = 48  # lists searched: at least this many,
    ivf_probe_share: float = 0.03  # and at least this share of them (recall that holds as lists multiply)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict | None) -> AnnParams:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (data or {}).items() if k in fields})


def segment_ann_kind(kind: str, rows: int) -> str:
    """The vector index a segment of ``rows`` rows gets in an index of ``kind``."""
    return kind if kind in ("hnsw", "ivf") and rows >= ANN_MIN_ROWS else "flat"


def _sample(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if len(vectors) <= n:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    pick = np.sort(np.random.default_rng(seed).choice(len(vectors), n, replace=False))
    return np.ascontiguousarray(np.asarray(vectors)[pick], dtype=np.float32)


def empty_ann(kind: str, vectors: np.ndarray, params: AnnParams) -> faiss.Index:
    """A trained, empty approximate index for vectors like these."""
    d = int(vectors.shape[1])
    if kind == "hnsw":
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.hnsw_ef_construction
        index.train(_sample(vectors, 100_000))
        return index
    if kind == "ivf":
        nlist = max(16, int(params.ivf_lists_per_sqrt * math.sqrt(len(vectors))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.own_fields = True
        quantizer.this.disown()
        index.cp.niter = 10
        index.train(_sample(vectors, min(len(vectors), 40 * nlist)))
        return index
    raise ValueError(f"no approximate index of kind {kind!r}")


def add_in_batches(index: faiss.Index, vectors: np.ndarray, batch: int = 65_536) -> None:
    for start in range(0, len(vectors), batch):
        index.add(np.ascontiguousarray(vectors[start : start + batch], dtype=np.float32))


def build_ann(kind: str, vectors: np.ndarray, params: AnnParams, base: faiss.Index | None = None) -> faiss.Index:
    """An approximate index over ``vectors`` (positions = ids). ``base``: an
    index already holding the first ``base.ntotal`` of them, grown by adding
    the rest instead of being rebuilt."""
    if base is not None and base.ntotal <= len(vectors):
        index = base
        add_in_batches(index, vectors[index.ntotal :])
        return index
    index = empty_ann(kind, vectors, params)
    add_in_batches(index, vectors)
    return index


def save_ann(index: faiss.Index, folder: Path) -> None:
    faiss.write_index(index, str(Path(folder) / ANN_FILE))


def load_ann(folder: Path) -> faiss.Index:
    return faiss.read_index(str(Path(folder) / ANN_FILE))


def _bitmap_selector(mask: np.ndarray):
    bitmap = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
    selector._keep_alive = bitmap  # the selector holds a raw pointer into it
    return selector


def top(positions: np.ndarray, scores: np.ndarray, n: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (position, score), best first; equal scores are ordered
    by ``keys[position]`` (the chunk's key), so every build breaks ties alike."""
    scores = np.asarray(scores, dtype=np.float32)
    if len(scores) > n:
        kth = np.partition(scores, len(scores) - n)[len(scores) - n]
        keep = scores >= kth
        positions, scores = positions[keep], scores[keep]
    order = np.lexsort((np.asarray(keys)[positions], -scores))[:n]
    return positions[order].astype(np.int64), scores[order]


class SegmentVectors:
    """Search one segment: exactly, or through its approximate index, always returning exact cosines."""

    def __init__(self, vectors: np.ndarray, keys: np.ndarray, kind: str, ann: faiss.Index | None,
                 params: AnnParams):  # fmt: skip
        self.vectors = vectors
        self.keys = keys
        self.kind = kind if ann is not None else "flat"
        self.ann = ann
        self.params = params

    def __len__(self) -> int:
        return len(self.vectors)

    def exact(self, query: np.ndarray, n: int, mask: np.ndarray | None, allowed: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``n`` over the allowed positions."""
        if mask is None:
            return self._best(query, n, np.asarray(self.vectors), None)
        if allowed == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        positions = np.flatnonzero(mask)
        if allowed <= GATHER_FRACTION * len(self.vectors):
            return self._best(query, n, np.asarray(self.vectors[positions]), positions)
        fast = np.asarray(self.vectors) @ query  # a broad filter: score all, keep the allowed
        return self._rescored(query, n, positions, fast[positions], np.asarray(self.vectors), None)

    def _best(self, query: np.ndarray, n: int, vectors: np.ndarray, positions: np.ndarray | None):
        """Brute force with FAISS (SIMD and a heap: ~2.5x numpy's product and partition on
        one core), candidates then re-scored exactly."""
        if len(vectors) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        pool = np.arange(len(vectors))
        want = min(len(vectors), n + MARGIN)
        fast, found = faiss.knn(query.reshape(1, -1), np.ascontiguousarray(vectors), want, faiss.METRIC_INNER_PRODUCT)
        return self._rescored(query, n, pool, None, vectors, positions, fast[0], found[0])

    def _rescored(self, query, n, pool, pool_scores, vectors, positions, fast=None, found=None):
        """Top ``n`` of ``pool`` (indexes into ``vectors``) with exact, position-independent scores.

        Fast kernels (BLAS, FAISS) may differ in the last bit for the same vector at
        another position, so the candidates they pick (``n + MARGIN`` of them) are
        scored again row by row; if a candidate beyond the margin could still reach
        the n-th score, everything is scored that way. So an index grown by updates
        and one built at once rank identically.
        """
        if found is None:  # choose candidates from the fast scores of the whole pool
            want = min(len(pool), n + MARGIN)
            if len(pool) > want:
                kth = len(pool) - want
                pick = np.argpartition(pool_scores, kth)[kth:]
                found, fast = pool[pick], pool_scores[pick]
            else:
                found, fast = pool, pool_scores
        found = np.asarray(found, dtype=np.int64)
        scores = exact_scores(vectors[found], query)
        if len(found) < len(pool) and len(scores) >= n:
            nth = np.partition(scores, len(scores) - n)[len(scores) - n]
            if float(np.min(fast)) >= nth - SCORE_NOISE:  # the margin is too thin: score the whole pool
                found = np.asarray(pool, dtype=np.int64)
                scores = exact_scores(vectors[found], query)
        where = found if positions is None else positions[found]
        return top(where, scores, n, self.keys)

    def search(self, query: np.ndarray, n: int, mask: np.ndarray | None = None,
               allowed: int | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The ``n`` nearest allowed positions and their exact cosines, best first.

        ``query``: (d,) float32, unit length. ``mask``: allowed positions
        (None: all); ``allowed``: its count, if the caller knows it.
        """
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if mask is not None and allowed is None:
            allowed = int(np.count_nonzero(mask))
        if self.ann is None or (mask is not None and allowed <= EXACT_MAX_ALLOWED):
            return self.exact(query, n, mask, allowed if allowed is not None else len(self))
        want = min(n, len(self) if mask is None else allowed)
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.params.hnsw_ef_search, want))
        else:
            nprobe = max(self.params.ivf_nprobe, math.ceil(self.params.ivf_probe_share * self.ann.nlist))
            if mask is not None:  # a narrow filter leaves few allowed vectors per list: look in more lists
                share = allowed / len(self)
                nprobe = int(min(self.ann.nlist, math.ceil(nprobe / max(share, 1e-6) ** 0.5)))
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        if mask is not None:
            params.sel = _bitmap_selector(mask)
        _, ids = self.ann.search(query.reshape(1, -1), want, params=params)
        positions = ids[0][ids[0] >= 0]
        if len(positions) < want:  # the walk came back short: be exact instead
            return self.exact(query, n, mask, allowed if allowed is not None else len(self))
        positions = np.sort(positions)
        return top(positions, exact_scores(np.asarray(self.vectors[positions]), query), n, self.keys)
