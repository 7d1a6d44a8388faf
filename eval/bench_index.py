"""Benchmark the index: build time, query latency per mode, size on disk, peak memory.

    python eval/bench_index.py                      # 1,000 articles, 10k and 100k chunks
    python eval/bench_index.py --articles 100 --sizes 10000

1. Build: ``Index.update`` over the first N articles of ../shared/corpus/waimei
   with the default model (real embeddings: the slow part, ~10 chunks/s on
   2 cores), then a second run over the same files (nothing to embed).
2. Query latency at each size (chunks): an index over real corpus chunk text
   (chunking, jieba/BM25, SQLite, citations, highlights all real) whose
   *passage* vectors are random unit vectors (embedding 100k passages would take
   hours here); questions are embedded by the real default model, so a dense or
   hybrid query pays its real cost. Questions: titles of indexed articles.
   Reports p50/p95 of ``Index.search`` per mode, of the FAISS search alone
   (flat and HNSW), and HNSW recall@10 against flat.
3. Index size on disk and the process's peak resident memory after each step.
Prints medians/percentiles; nothing is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.chunk import chunk_article  # noqa: E402
from qa.embed import Embedder, load_embedder, normalize_rows  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.ingest import iter_articles  # noqa: E402
from qa.records import ReadReport  # noqa: E402
from qa.vectors import FaissFlat, FaissHNSW  # noqa: E402

SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "waimei"


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def corpus_files(n: int | None) -> list[Path]:
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    return files if n is None else files[:n]


class RandomPassages(Embedder):
    """Random unit vectors for passages, the real model for questions (see the docstring)."""

    backend = "bench"

    def __init__(self, real: Embedder, seed: int = 0):
        self.real, self.dimension = real, real.dimension
        self.model = f"random-passages+{real.model}"
        self._rng = np.random.default_rng(seed)

    def embed_queries(self, texts):
        return self.real.embed_queries(texts)

    def embed_passages(self, texts, progress=False):
        return normalize_rows(self._rng.standard_normal((len(texts), self.dimension)))


def bench_build(n_articles: int, embedder: Embedder, work: Path) -> None:
    path = work / "build"
    report = ReadReport()
    started = time.perf_counter()
    result = Index.update(path, iter_articles(corpus_files(n_articles), report), embedder, progress=True)
    seconds = time.perf_counter() - started
    print(f"\n## build: {n_articles} files of {CORPUS} with {embedder.model}")
    print(f"articles {result.articles}, chunks {result.chunks} (skipped {len(report.skipped)}, "
          f"duplicates {report.duplicates})")  # fmt: skip
    print(f"build time {seconds:.1f} s  ({result.chunks / seconds:.1f} chunks/s overall)")
    print(f"index size on disk {dir_mib(path):.1f} MiB; peak RSS so far {peak_mib():.0f} MiB")
    hnsw_recall_on_real_vectors(path, embedder, n_articles)
    started = time.perf_counter()
    again = Index.update(path, iter_articles(corpus_files(n_articles), ReadReport()), embedder, progress=False)
    print(f"second run over the same files: {time.perf_counter() - started:.1f} s, "
          f"{again.chunks_embedded} chunks embedded")  # fmt: skip
    shutil.rmtree(path)


def hnsw_recall_on_real_vectors(path: Path, embedder: Embedder, n_articles: int) -> None:
    """HNSW against exact search over the real passage vectors just built, real questions (titles)."""
    from qa.index import read_manifest
    from qa.store import Store

    manifest = read_manifest(path)
    store = Store(path / manifest["directory"] / manifest["files"]["store"], readonly=True)
    rows, vectors = map(np.concatenate, zip(*store.embeddings(embedder.dimension)))
    titles = [store.article(a).title for a in list(store.article_hashes())[:200]]
    store.close()
    queries = embedder.embed_queries(titles)
    truth, _ = FaissFlat.build(embedder.dimension, rows, vectors).search(queries, 10)
    found, _ = FaissHNSW.build(embedder.dimension, rows, vectors).search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    print(f"HNSW recall@10 vs exact on these {len(rows)} real vectors, {len(titles)} title questions: {recall:.3f}")


def articles_for_chunks(n_chunks: int):
    """Corpus articles, in file order, until they hold at least n_chunks chunks."""
    total = 0
    for article in iter_articles(corpus_files(None), ReadReport()):
        if total >= n_chunks:
            return
        total += len(chunk_article(article))
        yield article


def bench_queries(size: int, real: Embedder, work: Path, n_questions: int) -> None:
    path = work / f"q{size}"
    started = time.perf_counter()
    articles = list(articles_for_chunks(size))
    Index.update(path, articles, RandomPassages(real), progress=True)
    built = time.perf_counter() - started
    questions = [a.title for a in articles[:: max(1, len(articles) // n_questions)]][:n_questions]
    with Index.open(path, RandomPassages(real)) as index:
        stats = index.stats()
        print(f"\n## {stats.chunks} chunks ({stats.articles} articles; built in {built:.0f} s without "
              f"real passage embeddings; {dir_mib(path):.0f} MiB on disk)")  # fmt: skip
        for q in questions[:3]:  # warm up: model, jieba, caches
            index.search(q)
        for mode in ("dense", "lexical", "hybrid"):
            times = []
            for q in questions:
                t = time.perf_counter()
                index.search(q, k=5, mode=mode)
                times.append(time.perf_counter() - t)
            print(f"Index.search {mode:8s} p50 {pct(times, 50):7.1f} ms  p95 {pct(times, 95):7.1f} ms")
        t = []
        for q in questions:
            s = time.perf_counter()
            real.embed_queries([q])
            t.append(time.perf_counter() - s)
        print(f"  (of which question embedding p50 {pct(t, 50):.1f} ms)")
    print(f"peak RSS so far {peak_mib():.0f} MiB")
    shutil.rmtree(path)

    # FAISS alone on random vectors of this size: flat vs HNSW
    rng = np.random.default_rng(1)
    vectors = normalize_rows(rng.standard_normal((size, real.dimension)))
    queries = normalize_rows(rng.standard_normal((200, real.dimension)))
    ids = np.arange(size, dtype=np.int64)
    flat = FaissFlat.build(real.dimension, ids, vectors)
    started = time.perf_counter()
    hnsw = FaissHNSW.build(real.dimension, ids, vectors)
    hnsw_build = time.perf_counter() - started
    truth, _ = flat.search(queries, 10)
    for name, index in (("flat", flat), ("hnsw", hnsw)):
        times = []
        for q in queries:
            s = time.perf_counter()
            index.search(q[None], 100)
            times.append(time.perf_counter() - s)
        print(f"FAISS {name:4s} top-100 p50 {pct(times, 50):6.2f} ms  p95 {pct(times, 95):6.2f} ms")
    found, _ = hnsw.search(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
    print(f"HNSW build {hnsw_build:.1f} s, recall@10 vs exact {recall:.3f} (random vectors: the hard case)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000, help="articles for the build benchmark (0: skip)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000], help="chunk counts for latency")
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--model", default=None, help="embedding model (default: the default model)")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)  # skipped files are counted, not listed
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    if not CORPUS.is_dir():
        print(f"skipped: {CORPUS} is not here", file=sys.stderr)
        return 0
    real = load_embedder(args.model)
    print(f"model {real.model} ({real.backend}, {real.dimension} dims); peak RSS {peak_mib():.0f} MiB")
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        work = Path(tmp)
        if args.articles:
            bench_build(args.articles, real, work)
        for size in args.sizes:
            bench_queries(size, real, work, args.questions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
