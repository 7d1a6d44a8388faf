"""Segments: immutable folders of plain ``.npy`` files, one per batch of chunks.

Every commit that adds chunks writes one new segment; a merge writes one
segment from several and retires them. A segment is never changed after it
is written (deletions are tombstones in the catalog), so readers can memory
map it and share it between index versions. ``segments/s000012/``::

    segment.json      counts, dimension, ANN kind, format
    rows.npy          int64, ascending: the chunk rows (catalog ``chunks.row``)
    keys.npy          int64 from the chunk id: breaks ties between equal scores the
                      same way in every build (row numbers depend on update order)
    vectors.npy       float32 (n, dimension), L2-normalised: the embeddings
    published.npy     int64 seconds since 1970 UTC (NO_DATE when unknown)
    source.npy        int32 source id (catalog ``sources``)
    tag_indptr.npy    int64 (n + 1) and tag_ids.npy int32: the tags of row i
                      are tag_ids[tag_indptr[i]:tag_indptr[i+1]]
    doclen.npy        int32 BM25 tokens per row
    terms.npy         int64 ascending term ids (catalog ``terms``) present here
    term_indptr.npy   int64: the postings of terms[j] are j's slice of
    post_docs.npy     int32 row positions (ascending within a term) and
    post_tf.npy       uint16 term frequencies
    ann.faiss         the approximate index over vectors.npy (hnsw / ivf only)

Positions (0..n-1) index every per-row array; ``rows[pos]`` is the catalog row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.errors import IndexCorrupt

SEGMENT_FORMAT = 1
NO_DATE = np.iinfo(np.int64).min
_FILES = (
    "rows", "keys", "vectors", "published", "source", "tag_indptr", "tag_ids", "doclen",
    "terms", "term_indptr", "post_docs", "post_tf",
)


@dataclass
class SegmentData:
    """The arrays of a segment, in memory (for writing) or memory-mapped (for reading)."""

    rows: np.ndarray  # int64 (n,)
    keys: np.ndarray  # int64 (n,)
    vectors: np.ndarray  # float32 (n, d)
    published: np.ndarray  # int64 (n,)
    source: np.ndarray  # int32 (n,)
    tag_indptr: np.ndarray  # int64 (n + 1,)
    tag_ids: np.ndarray  # int32
    doclen: np.ndarray  # int32 (n,)
    terms: np.ndarray  # int64 (t,)
    term_indptr: np.ndarray  # int64 (t + 1,)
    post_docs: np.ndarray  # int32
    post_tf: np.ndarray  # uint16

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, term frequencies) of one term; empty when absent."""
        j = int(np.searchsorted(self.terms, term_id))
        if j == len(self.terms) or int(self.terms[j]) != term_id:
            return _EMPTY_DOCS, _EMPTY_TF
        start, end = int(self.term_indptr[j]), int(self.term_indptr[j + 1])
        return self.post_docs[start:end], self.post_tf[start:end]


_EMPTY_DOCS = np.zeros(0, dtype=np.int32)
_EMPTY_TF = np.zeros(0, dtype=np.uint16)


def build_postings(token_ids: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(doclen, terms, term_indptr, post_docs, post_tf) from each row's term ids (duplicates = frequency)."""
    n = len(token_ids)
    doclen = np.array([len(t) for t in token_ids], dtype=np.int32)
    if n == 0 or int(doclen.sum()) == 0:
        return doclen, np.zeros(0, np.int64), np.zeros(1, np.int64), _EMPTY_DOCS.copy(), _EMPTY_TF.copy()
    all_terms = np.concatenate([np.asarray(t, dtype=np.int64) for t in token_ids])
    docs = np.repeat(np.arange(n, dtype=np.int64), doclen)
    key = all_terms * n + docs  # sorted by term, then by position
    pairs, tf = np.unique(key, return_counts=True)
    return (doclen, *_postings_from_pairs(pairs // n, pairs % n, tf))


def _postings_from_pairs(terms_per_posting: np.ndarray, docs: np.ndarray, tf: np.ndarray):
    """Postings arrays from (term, doc, tf) triples sorted by (term, doc)."""
    if len(terms_per_posting) == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64), _EMPTY_DOCS.copy(), _EMPTY_TF.copy()
    starts = np.flatnonzero(np.diff(terms_per_posting)) + 1
    indptr = np.concatenate(([0], starts, [len(terms_per_posting)])).astype(np.int64)
    return (
        np.asarray(terms_per_posting)[indptr[:-1]].astype(np.int64),
        indptr,
        docs.astype(np.int32),
        np.minimum(tf, np.iinfo(np.uint16).max).astype(np.uint16),
    )


def chunk_key(chunk_id: str) -> int:
    """A chunk's tie-break key: 60 bits of its (content-derived) id."""
    return int(chunk_id[:15], 16) if len(chunk_id) >= 15 else int.from_bytes(chunk_id.encode()[:7], "big")


def tag_arrays(tag_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    counts = np.array([len(t) for t in tag_lists], dtype=np.int64)
    indptr = np.zeros(len(tag_lists) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    ids = np.array([i for t in tag_lists for i in t], dtype=np.int32)
    return indptr, ids


def merge_arrays(parts: Sequence[tuple[SegmentData, np.ndarray]]) -> tuple[SegmentData, list[np.ndarray]]:
    """The arrays of one segment made of the ``keep`` positions (ascending) of
    each part, ordered by row, postings renumbered; for merges.

    Vectors are not copied here (at a million rows they are the bulk): the
    result's ``vectors`` is None, and for each part the destination position
    of every kept row is returned, so the caller can stream vectors into the
    new segment's file (:func:`copy_vectors`).
    """
    rows = np.concatenate([np.asarray(d.rows)[k] for d, k in parts])
    order = np.argsort(rows, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))  # concatenated position -> new position
    destinations, offset = [], 0
    for _, keep in parts:
        destinations.append(rank[offset : offset + len(keep)])
        offset += len(keep)

    def column(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(d, name))[k] for d, k in parts])[order]

    tag_counts, tag_ids, post_terms, post_docs, post_tf = [], [], [], [], []
    for (data, keep), dest in zip(parts, destinations):
        indptr = np.asarray(data.tag_indptr)
        counts = np.diff(indptr)
        kept = np.zeros(len(data), dtype=bool)
        kept[keep] = True
        entry_rows = np.repeat(np.arange(len(data)), counts)
        tag_counts.append(counts[keep])
        entry_keep = kept[entry_rows]
        tag_ids.append(np.asarray(data.tag_ids)[entry_keep])
        new_pos = np.full(len(data), -1, dtype=np.int64)
        new_pos[keep] = dest
        docs = new_pos[np.asarray(data.post_docs)]
        live = docs >= 0
        post_terms.append(np.repeat(np.asarray(data.terms), np.diff(np.asarray(data.term_indptr)))[live])
        post_docs.append(docs[live])
        post_tf.append(np.asarray(data.post_tf)[live])
    counts = np.concatenate(tag_counts)
    tag_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts[order], out=tag_indptr[1:])
    entry_rank = rank[np.repeat(np.arange(len(rows)), counts)]  # each tag entry's new row position
    merged_tags = np.concatenate(tag_ids)[np.argsort(entry_rank, kind="stable")]

    terms_all = np.concatenate(post_terms)
    docs_all = np.concatenate(post_docs)
    by = np.lexsort((docs_all, terms_all))
    terms, indptr, docs, tf = _postings_from_pairs(terms_all[by], docs_all[by], np.concatenate(post_tf)[by])
    del terms_all, docs_all, by
    data = SegmentData(
        rows=rows[order], keys=column("keys"), vectors=None, published=column("published"),
        source=column("source"), tag_indptr=tag_indptr, tag_ids=merged_tags.astype(np.int32),
        doclen=column("doclen"), terms=terms, term_indptr=indptr, post_docs=docs, post_tf=tf,
    )
    return data, destinations


def copy_vectors(target: np.ndarray, parts: Sequence[tuple[SegmentData, np.ndarray]],
                 destinations: Sequence[np.ndarray], block: int = 65_536) -> None:  # fmt: skip
    """Copy each part's kept vectors to their destinations in ``target``, a block at a time."""
    for (data, keep), dest in zip(parts, destinations):
        for start in range(0, len(keep), block):
            positions = keep[start : start + block]
            where = dest[start : start + block]
            if len(positions) and positions[-1] - positions[0] == len(positions) - 1 and \
                    where[-1] - where[0] == len(where) - 1:  # fmt: skip
                target[where[0] : where[-1] + 1] = data.vectors[positions[0] : positions[-1] + 1]
            else:
                target[where] = np.asarray(data.vectors[positions])


def open_vectors(folder: Path, rows: int, dimension: int) -> np.ndarray:
    """A new segment folder with an empty ``vectors.npy`` to fill (memory-mapped, written in place)."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    return np.lib.format.open_memmap(folder / "vectors.npy", mode="w+", dtype=np.float32, shape=(rows, dimension))


def write_segment(folder: Path, data: SegmentData, *, ann: str, extra: dict | None = None) -> None:
    """Write ``data`` as the files of a new segment folder (not fsynced: the caller does).
    A folder made by :func:`open_vectors` already holds the vectors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=(folder / "vectors.npy").exists())
    for name in _FILES:
        if name == "vectors" and (folder / "vectors.npy").exists():
            continue
        with open(folder / f"{name}.npy", "wb") as f:
            np.save(f, np.ascontiguousarray(getattr(data, name)), allow_pickle=False)
    info = {
        "format": SEGMENT_FORMAT,
        "rows": len(data),
        "dimension": data.dimension,
        "ann": ann,
        "postings": int(len(data.post_docs)),
        **(extra or {}),
    }
    (folder / "segment.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_segment(folder: Path) -> tuple[dict, SegmentData]:
    """(segment.json, memory-mapped arrays). Raises IndexCorrupt."""
    folder = Path(folder)
    try:
        info = json.loads((folder / "segment.json").read_text(encoding="utf-8"))
        if info.get("format") != SEGMENT_FORMAT:
            raise IndexCorrupt(f"segment {folder} has format {info.get('format')!r}, expected {SEGMENT_FORMAT}")
        arrays = {}
        for name in _FILES:
            path = folder / f"{name}.npy"
            # tiny files are read; others mapped (shared page cache, nothing copied)
            mode = "r" if os.path.getsize(path) > 1 << 16 else None
            # a plain ndarray view of the mapping: no np.memmap subclass overhead on every slice
            arrays[name] = np.asarray(np.load(path, mmap_mode=mode, allow_pickle=False))
        data = SegmentData(**arrays)
    except IndexCorrupt:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"segment {folder} is unreadable: {exc}") from exc
    n = len(data.rows)
    if data.vectors.shape[0] != n or len(data.keys) != n or len(data.published) != n or len(data.doclen) != n or info.get("rows") != n:
        raise IndexCorrupt(f"segment {folder} is inconsistent (row counts differ)")
    return info, data
