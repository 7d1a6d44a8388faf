"""Benchmark the BM25 LexicalIndex: build time and query latency (p50/p95) at 10k and 100k chunks.

Documents are real corpus paragraphs (tokenized once), recombined into synthetic
chunks so that the vocabulary and term frequencies stay realistic at any size;
queries are the hand-written questions of eval/data/news_paraphrase.jsonl.

    python eval/bench_lexical.py [--shared ../shared] [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qa.ingest import read_file
from qa.lexical import LexicalIndex, tokenize

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--articles", type=int, default=1500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=5, help="passes over the question set")
    args = parser.parse_args()

    corpus = args.shared / "corpus" / "waimei"
    if not corpus.is_dir():
        print(f"no corpus at {corpus}: nothing to measure")
        return 1
    files = sorted(corpus.iterdir())[: args.articles]
    paragraphs: list[str] = []
    for path in tqdm(files, desc="read"):
        try:
            paragraphs.extend(read_file(path, corpus).paragraphs)
        except Exception:  # noqa: BLE001 - unreadable files do not matter for a benchmark
            continue
    t0 = time.perf_counter()
    token_lists = [tokenize(p) for p in tqdm(paragraphs, desc="tokenize")]
    tok_s = time.perf_counter() - t0
    chars = sum(len(p) for p in paragraphs)
    print(f"tokenize: {len(paragraphs)} paragraphs, {chars / tok_s:,.0f} chars/s")

    questions = [
        tokenize(json.loads(line)["question"])
        for line in (ROOT / "eval" / "data" / "news_paraphrase.jsonl").read_text("utf-8").splitlines()
    ]
    rng = random.Random(0)
    for size in args.sizes:
        docs = []
        for _ in range(size):
            a, b = rng.choice(token_lists), rng.choice(token_lists)
            docs.append(a + b[: len(b) // 2])
        t0 = time.perf_counter()
        index = LexicalIndex.build(docs)
        build_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp))
            size_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6
            t0 = time.perf_counter()
            LexicalIndex.load(Path(tmp))
            load_s = time.perf_counter() - t0
        allowed = np.ones(size, dtype=bool)
        allowed[::3] = False
        for label, mask in (("no filter", None), ("mask", allowed)):
            times = []
            for _ in range(args.repeat):
                for q in questions:
                    t0 = time.perf_counter()
                    index.search(q, 100, allowed=mask)
                    times.append(time.perf_counter() - t0)
            ms = np.array(times) * 1000
            print(
                f"{size:>7} chunks ({label:9}): build {build_s:.1f} s, load {load_s:.2f} s, "
                f"{size_mb:.1f} MB on disk, vocab {index.vocabulary_size:,}; query top-100 "
                f"p50 {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
