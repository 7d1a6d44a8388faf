"""Embedding speed and quality of the default model's CPU paths, in one run.

    python eval/bench_embed.py [--chunks 2000] [--rounds 3] [--paths st,onnx,...] [--index-articles 300]

The corpus mix: ``--chunks`` chunks (what ``qa index`` embeds: the title and
the passage) of the articles of ../shared/corpus in a seeded shuffle,
chunked by the project's own code (falls back to examples/articles when the
corpus is absent). Each path embeds all of them once per round; the rounds
interleave the paths, so a load that comes and goes falls on all of them.
Printed per path: the median over rounds of

* chunks/s: wall clock, on this machine as loaded (the load average is
  printed with every round);
* chunks/s per 2 cores: chunks per second of the process's own CPU time,
  times 2: what two idle cores would do if nothing else ran. On a shared
  machine this is the steadier ratio; it is not a measurement of an idle
  machine (cache and memory bandwidth are shared with the other load);

and beside it the quality against fp32 (sentence-transformers): the cosine
of each chunk's vector to fp32's (minimum and median), and dense Recall@1 on
all of XQuAD (1,190 questions, zh→zh and en→zh, over the 240 Chinese
paragraphs; ../shared/datasets/xquad) with its difference to fp32.

Paths: ``st`` (sentence-transformers fp32, batches of 32: what ``qa index``
ran before), ``onnx`` (fp32), ``onnx-int8-mixed``, ``onnx-int8-pc``,
``onnx-int8`` (see qa/onnx_embed.py); a path with ``/rows32`` runs in
batches of 32 texts instead of the token budget, one with ``/t512`` under
a budget of 512 tokens. ``--index-articles N``
also times the whole pipeline (read, parse, chunk, embed, write: the
library's ``sync_folders``, as ``qa index``) on N corpus articles into a new
index, per path, alternating, with where each build's time went;
``--serial-reading`` adds each path with the files read one by one between
the model's steps (no reader thread), to show what the overlap gains. Not
part of CI.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DEFAULT_PATHS = "st,onnx,onnx-int8-mixed,onnx-int8-mixed/t256,onnx-int8-mixed/rows32,onnx-int8-pc,onnx-int8"
QUESTIONS = [
    "2020年破获了多少电信网络诈骗案件？",
    "What share of telecom fraud is committed from abroad?",
    "香港特首办如何回应学生的见面要求？",
    "高雄輕軌何時全線通車？",
]


def corpus_files(seed: int = 0, root: Path | None = None) -> list[Path]:
    """The article files under ``root`` (default: the corpus, else examples/articles) in a seeded shuffle."""
    root = root or (CORPUS if CORPUS.is_dir() else ROOT / "examples" / "articles")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".md", ".html", ".htm", ".txt"))
    random.Random(seed).shuffle(files)
    return files


def corpus_chunks(n: int, seed: int = 0, root: Path | None = None) -> list[str]:
    """The first ``n`` chunks' embedded texts (title + passage) of the shuffled corpus (or ``root``)."""
    from qa.chunk import chunk_article
    from qa.errors import ReadError
    from qa.ingest import read_file

    texts: list[str] = []
    for path in corpus_files(seed, root):
        try:
            texts.extend(c.embed_text for c in chunk_article(read_file(path, path.parent)))
        except ReadError:
            continue
        if len(texts) >= n:
            break
    return texts[:n]


def load(path: str):
    """The embedder for a path name (see the module docstring)."""
    from qa.loader import load_embedder

    backend, _, batching = path.partition("/")
    if backend == "st":
        return load_embedder(None, backend="sentence-transformers", batch_size=32)
    from qa.default_model import default_model_dir
    from qa.onnx_embed import OnnxEmbedder

    if batching == "rows32":
        return OnnxEmbedder.for_default_model(default_model_dir(), backend=backend, batch_size=32, batch_tokens=10**9)
    if batching.startswith("t"):  # another token budget: onnx/t512
        return OnnxEmbedder.for_default_model(default_model_dir(), backend=backend, batch_tokens=int(batching[1:]))
    return OnnxEmbedder.for_default_model(default_model_dir(), backend=backend)


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def xquad_quality(embedders: dict, reference: str) -> dict[str, dict[str, float]]:
    sys.path.insert(0, str(ROOT / "eval"))
    from embed_quality import XQUAD, load_xquad, recall

    if not XQUAD.is_dir():
        print(f"(XQuAD absent at {XQUAD}: no Recall@1)")
        return {}
    paragraphs, q_zh, q_en, gold = load_xquad()
    out = {}
    for name, emb in embedders.items():
        p = emb.embed_passages(paragraphs)
        out[name] = {"zh": recall(emb.embed_queries(q_zh), p, gold, 1), "en": recall(emb.embed_queries(q_en), p, gold, 1)}
    return out


def serial_loader(files):
    """Reading as before the reader thread: each file read, parsed and prepared when the writer asks."""
    from qa.index.sync import load_file

    for entry, old in files:
        yield entry, load_file(entry, old)


def pipeline(paths: list[str], embedders: dict, articles: int, rounds: int,
             serial: bool = False) -> tuple[dict, dict, dict]:  # fmt: skip
    """Chunks/s of sync_folders (read to committed index) on ``articles`` corpus articles, per path
    (and, with ``serial``, per path with serial reading: "PATH serial"), the share of each build's
    time spent embedding, and the last build's stage timings."""
    from qa.index import sync_folders
    from qa.records import ReadReport

    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    try:
        folder = work / "articles"
        folder.mkdir()
        for i, path in enumerate(corpus_files(seed=1)[:articles]):
            shutil.copyfile(path, folder / f"{i:05d}{path.suffix}")
        runs = [(p, False) for p in paths] + ([(p, True) for p in paths] if serial else [])
        names = [f"{p} serial" if one_by_one else p for p, one_by_one in runs]
        rates: dict[str, list[float]] = {n: [] for n in names}
        embedding: dict[str, list[float]] = {n: [] for n in names}
        stages: dict[str, str] = {}
        for r in range(rounds):
            for name, (path, one_by_one) in zip(names, runs):
                target = work / "index"
                shutil.rmtree(target, ignore_errors=True)
                started = time.perf_counter()
                result = sync_folders(target, [folder], embedders[path], ReadReport(), progress=False,
                                      load=serial_loader if one_by_one else None)  # fmt: skip
                seconds = time.perf_counter() - started
                rates[name].append(result.chunks_embedded / seconds)
                embedding[name].append(result.embed_seconds / seconds)
                stages[name] = f"{seconds:.1f} s: {result.timings.summary()}"
            print(f"  pipeline round {r + 1}: {result.chunks_embedded} chunks per build; {load_text()}", flush=True)
        return rates, embedding, stages
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per path, interleaved (median)")
    parser.add_argument("--paths", default=DEFAULT_PATHS, help=f"comma-separated (default {DEFAULT_PATHS})")
    parser.add_argument("--index-articles", type=int, default=0, help="also time sync_folders on this many articles")
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    parser.add_argument("--serial-reading", action="store_true",
                        help="also time the whole pipeline with files read one by one between the model's "
                             "steps (no reader thread): the overlap's gain")  # fmt: skip
    args = parser.parse_args(argv)

    from tokenizers import Tokenizer

    from qa.default_model import PASSAGE_PROMPT, default_model_dir

    paths = args.paths.split(",")
    texts = corpus_chunks(args.chunks)
    tokenizer = Tokenizer.from_file(str(default_model_dir() / "tokenizer.json"))
    tokens = [len(e.ids) for e in tokenizer.encode_batch([PASSAGE_PROMPT + t for t in texts])]
    print(f"corpus mix: {len(texts)} chunks, {statistics.mean(tokens):.1f} tokens on average (median "
          f"{statistics.median(tokens):.0f}, max {max(tokens)}); {os.cpu_count()} CPUs; {load_text()}")  # fmt: skip

    embedders = {p: load(p) for p in paths}
    for emb in embedders.values():  # warm-up: sessions created, first runs done
        emb.embed_passages(texts[:64])
        emb.embed_queries(QUESTIONS)
    wall: dict[str, list[float]] = {p: [] for p in paths}
    cpu: dict[str, list[float]] = {p: [] for p in paths}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for path in paths:
            holder = {}
            seconds, cpu_seconds = timed(lambda: holder.setdefault("v", embedders[path].embed_passages(texts)))
            vectors[path] = holder["v"]
            wall[path].append(len(texts) / seconds)
            cpu[path].append(2 * len(texts) / cpu_seconds)
        print(f"  round {r + 1}/{args.rounds}: {load_text()}", flush=True)

    reference = "st" if "st" in paths else paths[0]
    recall = {} if args.no_quality else xquad_quality(embedders, reference)
    base_wall, base_cpu = statistics.median(wall[reference]), statistics.median(cpu[reference])
    print(f"\nquality and speed against {reference} (cosine per chunk; XQuAD dense Recall@1, 1,190 questions)")
    print("| path | chunks/s | x | chunks/s per 2 cores (CPU time) | x | cosine min | cosine median "
          "| R@1 zh→zh | Δ | R@1 en→zh | Δ |\n|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for path in paths:
        w, c = statistics.median(wall[path]), statistics.median(cpu[path])
        cos = (vectors[path] * vectors[reference]).sum(axis=1)
        row = (f"| {path} | {w:.1f} | {w / base_wall:.2f} | {c:.1f} | {c / base_cpu:.2f} "
               f"| {cos.min():.4f} | {np.median(cos):.4f}")  # fmt: skip
        if path in recall:
            zh, en = recall[path]["zh"], recall[path]["en"]
            row += (f" | {zh:.4f} | {zh - recall[reference]['zh']:+.4f} | {en:.4f} "
                    f"| {en - recall[reference]['en']:+.4f} |")  # fmt: skip
        else:
            row += " | | | | |"
        print(row, flush=True)

    if args.index_articles:
        print(f"\nwhole pipeline (sync_folders: read, parse, chunk, embed, write) on {args.index_articles} articles")
        pipe_paths = [p for p in paths if "/" not in p]
        logging.getLogger("qa").setLevel(logging.ERROR)  # the corpus's few empty files are not news here
        rates, embedding, stages = pipeline(pipe_paths, embedders, args.index_articles, args.rounds,
                                            serial=args.serial_reading)  # fmt: skip
        base = statistics.median(rates[pipe_paths[0]])
        for path in rates:
            m = statistics.median(rates[path])
            print(f"| {path} | {m:.1f} chunks/s | x{m / base:.2f} | {', '.join(f'{x:.1f}' for x in rates[path])} "
                  f"| embedding {statistics.median(embedding[path]):.0%} of the time | last build {stages[path]} |")
    print(f"done; {load_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
