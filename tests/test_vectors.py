"""FAISS backends against the numpy brute force, on random unit vectors (differential)."""

from __future__ import annotations

import numpy as np
import pytest

from qa.embed import normalize_rows
from qa.vectors import FaissFlat, FaissHNSW, NumpyBrute, vector_index_class

DIM = 32


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = normalize_rows(rng.standard_normal((n, DIM)))
    # sparse, shuffled ids, as row ids look after deletions
    ids = rng.choice(10 * n, size=n, replace=False).astype(np.int64)
    queries = normalize_rows(rng.standard_normal((25, DIM)))
    return ids, vectors, queries


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, sum((t >= 0).sum() for t in truth))


@pytest.fixture(scope="module")
def data():
    return _data(2000)


def test_flat_equals_numpy(data):
    ids, vectors, queries = data
    flat, ref = FaissFlat.build(DIM, ids, vectors), NumpyBrute.build(DIM, ids, vectors)
    f_ids, f_scores = flat.search(queries, 10)
    r_ids, r_scores = ref.search(queries, 10)
    assert f_ids.shape == (25, 10) and f_ids.dtype == np.int64
    np.testing.assert_array_equal(f_ids, r_ids)
    np.testing.assert_allclose(f_scores, r_scores, rtol=1e-5, atol=1e-5)
    # scores are the inner products of the returned vectors, best first
    row = {int(i): v for i, v in zip(ids, vectors)}
    np.testing.assert_allclose(f_scores[0], [queries[0] @ row[int(i)] for i in f_ids[0]], atol=1e-5)
    assert (np.diff(f_scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("fraction", [0.5, 0.02, 0.002])
def test_flat_with_filter_equals_numpy(data, fraction):
    ids, vectors, queries = data
    rng = np.random.default_rng(1)
    allowed = rng.choice(ids, size=max(1, int(len(ids) * fraction)), replace=False)
    # ids that are not in the index must not matter
    allowed_plus = np.concatenate([allowed, [10 * len(ids) + 5, 3 * 10**6]])
    flat, ref = FaissFlat.build(DIM, ids, vectors), NumpyBrute.build(DIM, ids, vectors)
    f_ids, f_scores = flat.search(queries, 10, allowed_plus)
    r_ids, r_scores = ref.search(queries, 10, allowed)
    np.testing.assert_array_equal(f_ids, r_ids)
    np.testing.assert_allclose(f_scores, r_scores, rtol=1e-5, atol=1e-5)
    assert set(f_ids[f_ids >= 0].tolist()) <= set(allowed.tolist())
    if len(allowed) < 10:  # fewer allowed than k: padded
        assert (f_ids[:, len(allowed):] == -1).all()
        assert np.isneginf(f_scores[:, len(allowed):]).all()


def test_flat_remove_and_add_equals_numpy(data):
    ids, vectors, queries = data
    flat, ref = FaissFlat.build(DIM, ids, vectors), NumpyBrute.build(DIM, ids, vectors)
    gone = ids[::3]
    flat.remove(gone)
    ref.remove(gone)
    assert len(flat) == len(ref) == len(ids) - len(gone)
    new_ids, new_vectors, _ = _data(100, seed=7)
    new_ids = new_ids + 10**7
    flat.add(new_ids, new_vectors)
    ref.add(new_ids, new_vectors)
    f_ids, f_scores = flat.search(queries, 20)
    r_ids, r_scores = ref.search(queries, 20)
    np.testing.assert_array_equal(f_ids, r_ids)
    np.testing.assert_allclose(f_scores, r_scores, atol=1e-5)
    assert not set(f_ids.ravel().tolist()) & set(gone.tolist())


def test_hnsw_recall_against_exact(data):
    ids, vectors, queries = data
    hnsw, ref = FaissHNSW.build(DIM, ids, vectors), NumpyBrute.build(DIM, ids, vectors)
    h_ids, h_scores = hnsw.search(queries, 10)
    r_ids, _ = ref.search(queries, 10)
    assert _recall(h_ids, r_ids) >= 0.95
    assert (np.diff(h_scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize("fraction,exact_below", [(0.5, 100), (0.01, 100), (0.5, 10_000)])
def test_hnsw_with_filter_recall(data, fraction, exact_below):
    """A wide filter walks the graph with a selector; a narrow one is searched exactly."""
    ids, vectors, queries = data
    rng = np.random.default_rng(2)
    allowed = rng.choice(ids, size=int(len(ids) * fraction), replace=False)
    hnsw, ref = FaissHNSW.build(DIM, ids, vectors), NumpyBrute.build(DIM, ids, vectors)
    hnsw.exact_below = exact_below
    h_ids, _ = hnsw.search(queries, 10, allowed)
    r_ids, _ = ref.search(queries, 10, allowed)
    assert set(h_ids[h_ids >= 0].tolist()) <= set(allowed.tolist())
    assert _recall(h_ids, r_ids) >= 0.95
    assert ((h_ids >= 0).sum(axis=1) == min(10, len(allowed))).all()


def test_hnsw_cannot_remove(data):
    ids, vectors, _ = data
    hnsw = FaissHNSW.build(DIM, ids[:10], vectors[:10])
    assert not hnsw.supports_remove
    with pytest.raises(NotImplementedError):
        hnsw.remove(ids[:1])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "numpy"])
def test_save_load_round_trip(tmp_path, data, kind):
    ids, vectors, queries = data
    cls = vector_index_class(kind)
    index = cls.build(DIM, ids, vectors)
    path = tmp_path / f"vectors.{kind}"
    index.save(path)
    loaded = cls.load(path)
    assert type(loaded) is cls and loaded.kind == kind
    assert len(loaded) == len(ids) and loaded.dimension == DIM
    a_ids, a_scores = index.search(queries, 10)
    b_ids, b_scores = loaded.search(queries, 10)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_allclose(a_scores, b_scores)
    assert b"pickle" not in path.read_bytes()[:200]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "numpy"])
def test_empty_index_and_empty_filter(kind):
    cls = vector_index_class(kind)
    q = normalize_rows(np.ones((2, DIM)))
    ids, scores = cls(DIM).search(q, 3)
    assert ids.shape == (2, 3) and (ids == -1).all() and np.isneginf(scores).all()
    ids_, vectors, _ = _data(50)
    ids, _ = cls.build(DIM, ids_, vectors).search(q, 3, np.zeros(0, dtype=np.int64))
    assert (ids == -1).all()


def test_unknown_kind():
    with pytest.raises(ValueError, match="flat"):
        vector_index_class("ivf-magic")


def test_wrong_dimension_refused():
    with pytest.raises(ValueError):
        FaissFlat(DIM).add([1], np.zeros((1, DIM + 1), np.float32))
