"""Approximate vector search against exact search, on an index's real vectors.

    python eval/bench_ann.py --index /path/to/index [--questions 300] [--json out.json]

Takes every live vector of an index built with a real model (for instance
``qa index ../shared/corpus``), embeds questions with the same model (titles
of random articles of the index, asked as questions, with the query prompt),
and for each approximate setting builds the segment index the product would
build (:func:`qa.index.ann.build_ann`) over all the vectors at once and
searches it through the product's own path (candidates re-scored exactly,
:class:`qa.index.ann.SegmentVectors`). Prints recall@10 against exact search,
median and p99 latency per query (one thread, as ``qa serve`` searches) and
build time, and the same with a date-like filter allowing ~50% and ~5% of
the vectors. Complements ``eval/bench_scale.py``, whose million-chunk
indexes cannot carry real vectors on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.index import Index  # noqa: E402
from qa.index.ann import AnnParams, SegmentVectors, build_ann  # noqa: E402


def live_vectors(index: Index) -> tuple[np.ndarray, np.ndarray]:
    vectors, keys = [], []
    for seg in index._version.segments:
        live = index._version.live[seg.id]
        keep = np.arange(len(seg)) if live is None else np.flatnonzero(live)
        vectors.append(np.asarray(seg.data.vectors)[keep])
        keys.append(np.asarray(seg.data.keys)[keep])
    return np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32), np.concatenate(keys)


def question_texts(index: Index, n: int, seed: int = 3) -> list[str]:
    titles = [t for (t,) in index.catalog.query("SELECT title FROM articles WHERE length(title) >= 6")]
    return random.Random(seed).sample(titles, min(n, len(titles)))


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, min(len(values) - 1, round(q / 100 * len(values) + 0.5) - 1))]


def measure(search: SegmentVectors, exact: SegmentVectors, queries: np.ndarray, mask) -> dict:
    recalls, times = [], []
    for q in queries:
        truth, _ = exact.exact(q, 10, mask, int(mask.sum()) if mask is not None else len(exact))
        started = time.perf_counter()
        found, _ = search.search(q, 100, mask)
        times.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(found[:10].tolist()) & set(truth.tolist())) / max(1, len(truth)))
    return {"recall@10": statistics.mean(recalls), "p50_ms": _pct(times, 50), "p99_ms": _pct(times, 99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    index = Index.open(args.index)
    vectors, keys = live_vectors(index)
    qs = question_texts(index, args.questions)
    queries = index.embedder.embed_queries(qs)
    threadpool_limits(limits=1)
    n = len(vectors)
    print(f"{n:,} vectors of {index.meta['model']}; {len(qs)} questions", flush=True)
    rng = np.random.default_rng(0)
    masks = {"none": None, "50%": rng.random(n) < 0.5, "5%": rng.random(n) < 0.05}
    exact = SegmentVectors(vectors, keys, "flat", None, AnnParams())
    results = {"vectors": n, "model": index.meta["model"], "settings": []}
    settings = [("ivf", AnnParams(ivf_nprobe=p)) for p in (16, 32, 48, 96)]
    settings += [("hnsw", AnnParams(hnsw_ef_search=e)) for e in (64, 128, 256)]
    built: dict = {}
    for kind, params in settings:
        key = (kind, params.hnsw_m, params.hnsw_ef_construction, params.ivf_lists_per_sqrt)
        if key not in built:
            started = time.perf_counter()
            built[key] = (build_ann(kind, vectors, params), time.perf_counter() - started)
        ann, build_s = built[key]
        search = SegmentVectors(vectors, keys, kind, ann, params)
        row = {"kind": kind, "params": params.to_dict(), "build_s": build_s}
        for name, mask in masks.items():
            row[name] = measure(search, exact, queries, mask)
        results["settings"].append(row)
        print(json.dumps(row), flush=True)
    exact_times = []
    for q in queries[:100]:
        started = time.perf_counter()
        exact.exact(q, 100, None, n)
        exact_times.append((time.perf_counter() - started) * 1000)
    results["exact_p50_ms"] = _pct(exact_times, 50)
    print(f"exact: p50 {results['exact_p50_ms']:.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
