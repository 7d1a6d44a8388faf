"""fp16 and bf16 against fp32: the cosine of each passage's two vectors, on the CPU.

    python eval/check_precision.py [--chunks 1000] [--precisions fp16,bf16] [--model NAME]

A GPU runs the model in fp16 (``precision="auto"``); the vectors must stay
those of fp32 (issue 10: cosine >= 0.999 per chunk), or an index built on a
GPU would not match questions embedded on a CPU. torch runs fp16 and bf16 on a
CPU too (slowly), through the same code path as on a GPU
(:class:`qa.embed.SentenceTransformerEmbedder` with ``precision=``), so the
check needs no GPU. Passages: ``--chunks`` chunks of ../shared/corpus/waimei
(files in a seeded random order, as eval/bench_embed.py takes them; the
examples/articles when the corpus is absent), embedded as the index embeds
them (``Chunk.embed_text``). Prints, per precision, the minimum, 0.1st
percentile and mean cosine, the largest 1 - cosine, and how many passages fall
under 0.999 (exit status 1 if any). Not part of CI (tests/test_embed.py checks
a small sample).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "waimei"
FLOOR = 0.999


def passages(n: int) -> list[str]:
    """``n`` chunks' embed texts from the corpus (seeded order), else from examples/articles."""
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
            texts.extend(c.embed_text for c in chunk_article(read_file(path, path.parent)))
        except ReadError:
            continue
        if len(texts) >= n:
            break
    return texts[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1000)
    parser.add_argument("--precisions", default="fp16,bf16")
    parser.add_argument("--model", default=None, help="embedding model (default: the default model)")
    args = parser.parse_args(argv)

    from qa.loader import load_embedder

    texts = passages(args.chunks)
    started = time.perf_counter()
    reference = load_embedder(args.model).embed_passages(texts)
    print(f"{len(texts)} passages ({sum(map(len, texts)) / len(texts):.0f} characters on average); "
          f"fp32 in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    print(f"{'precision':10s} {'min cos':>10s} {'p0.1 cos':>10s} {'mean cos':>10s} {'max 1-cos':>10s} "
          f"{'< ' + str(FLOOR):>8s} {'seconds':>8s}")  # fmt: skip
    worst = 1.0
    for precision in args.precisions.split(","):
        started = time.perf_counter()
        vectors = load_embedder(args.model, precision=precision).embed_passages(texts)
        cosines = (vectors * reference).sum(axis=1)
        worst = min(worst, float(cosines.min()))
        print(f"{precision:10s} {cosines.min():10.7f} {np.percentile(cosines, 0.1):10.7f} {cosines.mean():10.7f} "
              f"{1 - cosines.min():10.1e} {int((cosines < FLOOR).sum()):8d} {time.perf_counter() - started:8.0f}",
              flush=True)  # fmt: skip
    return 0 if worst >= FLOOR else 1


if __name__ == "__main__":
    sys.exit(main())
