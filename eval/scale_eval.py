"""Ranking quality as the archive grows: the same questions over 500, 3,000 and 20,000 articles.

    python eval/scale_eval.py --vectors /path/to/corpus-index [--sizes 500 3000 20000] [--split report]

Each archive holds the gold articles of every question plus distractors
sampled from the rest of ``../shared/corpus`` with a fixed seed; a larger
archive contains the smaller ones. Questions: ``eval/data/news_questions.jsonl``
(zh-Hans, zh-Hant, en; written as paraphrases, split into a tune half and a
report half) and ``eval/data/news_paraphrase.jsonl`` (zh, split by position).

Embedding 200,000 passages takes hours on 2 cores, so the vectors come from an
index of the whole corpus already built with the default model (``qa index
../shared/corpus --index DIR``, given as ``--vectors``): each archive's index is
built by the library itself (``Index.update``) with those vectors waiting in
its pending-embeddings cache, so nothing is embedded again and the passages,
vectors, BM25 statistics and search are exactly the product's.

Scores are per article (a passage's article counts once, at its best rank):
Recall@1, Recall@5, MRR@10 per mode and size, on the chosen split. A
near-duplicate of the gold article (the same story from another outlet,
found as an article whose lead passage has cosine >= 0.97 with the gold's)
is reported apart: strict figures count only the gold article.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.default_model import DEFAULT_MODEL_ID  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.index.manifest import SEGMENTS_DIR  # noqa: E402
from qa.ingest import read_file  # noqa: E402
from qa.records import Article, SearchFilters  # noqa: E402

MODES = ("dense", "lexical", "hybrid")
DEPTH = 10
DUPLICATE_COSINE = 0.97


@dataclass(frozen=True)
class Question:
    text: str
    lang: str
    file: str  # relative to the corpus folder
    split: str  # tune | report
    kind: str


def load_questions(data: Path) -> list[Question]:
    out = []
    new = data / "news_questions.jsonl"
    if new.is_file():
        for line in new.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                out.append(Question(d["question"], d["lang"], d["file"], d["split"], d.get("type", "other")))
    old = data / "news_paraphrase.jsonl"  # used in development (fusion, calibration): tuning only
    for line in old.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Question(d["question"], "zh-Hans", "waimei/" + d["file"], "tune", "other"))
    return out


def corpus_files(corpus: Path) -> list[str]:
    return sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.md"))


def archive(files: list[str], golds: list[str], size: int, seed: int = 0) -> list[str]:
    """The gold files plus distractors drawn with a fixed seed (a larger archive contains a smaller)."""
    gold_set = set(golds)
    others = [f for f in files if f not in gold_set]
    random.Random(seed).shuffle(others)
    return sorted(gold_set) + others[: max(0, size - len(gold_set))]


def fill_store(store: Path, corpus: Path, ordered: list[str]) -> None:
    """Embed the corpus into ``store`` in this order (the smallest archive's files first), so
    that the small archives can be evaluated while the big one is still being embedded.
    Committed in steps: stop it and run it again to go on."""
    from qa.index import Writer
    from qa.index.catalog import article_hash
    from qa.loader import load_embedder

    with Writer(store, load_embedder(None), progress=True) as writer:
        stored = writer.catalog.article_hashes()
        added = 0
        for i, f in enumerate(ordered):
            try:
                a = read_file(corpus / f, corpus)
            except Exception:  # noqa: BLE001
                continue
            if stored.get(a.id) == article_hash(a):
                continue
            writer.add(a, changed=a.id in stored)
            added += 1
            if i % 1000 == 0:
                print(f"{i}/{len(ordered)} files, {added} articles added", flush=True)
        writer.finish()


def read_articles(corpus: Path, files: list[str]) -> dict[str, Article]:
    out = {}
    for f in files:
        try:
            out[f] = read_file(corpus / f, corpus)
        except Exception:  # noqa: BLE001 - an unreadable file is simply not in the archive
            continue
    return out


def seed_vectors(target: Path, source: Path, hashes: set[str]) -> int:
    """Copy the vectors of these embedded-text hashes from the source index into the new
    index's pending-embeddings cache, where the writer takes them instead of embedding."""
    from qa.index.writer import PENDING, PendingEmbeddings

    db = sqlite3.connect(f"file:{source / 'store.sqlite'}?mode=ro", uri=True)
    locations: dict[str, tuple[int, int]] = {}
    wanted = list(hashes)
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        for h, seg, row in db.execute(
            f"SELECT embed_hash, segment, row FROM chunks WHERE embed_hash IN ({','.join('?' * len(part))})", part
        ):
            locations.setdefault(h, (seg, row))
    names = dict(db.execute("SELECT id, name FROM segments"))
    db.close()
    target.mkdir(parents=True, exist_ok=True)
    pending = PendingEmbeddings(target / PENDING, DEFAULT_MODEL_ID)
    by_segment: dict[int, list[tuple[str, int]]] = {}
    for h, (seg, row) in locations.items():
        by_segment.setdefault(seg, []).append((h, row))
    for seg, items in by_segment.items():
        folder = source / SEGMENTS_DIR / names[seg]
        rows = np.load(folder / "rows.npy")
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        positions = np.searchsorted(rows, np.array([r for _, r in items]))
        pending.put([h for h, _ in items], np.asarray(vectors[positions]))
    pending.close()
    return len(locations)


def build(root: Path, articles: list[Article], vectors_from: Path) -> float:
    from qa.chunk import chunk_article
    from qa.index.catalog import text_hash
    from qa.index.models import embedder_for

    hashes = {text_hash(c.embed_text) for a in articles for c in chunk_article(a)}
    shutil.rmtree(root, ignore_errors=True)
    found = seed_vectors(root, vectors_from, hashes)
    if found < len(hashes):
        print(f"  {len(hashes) - found} passages not in {vectors_from}: they will be embedded", flush=True)
    started = time.perf_counter()
    model = embedder_for({"model": DEFAULT_MODEL_ID, "backend": "sentence-transformers", "dimension": 384})
    Index.update(root, articles, model, progress=False)
    return time.perf_counter() - started


def ranks(index: Index, question: str, mode: str) -> list[str]:
    result = index.search(question, k=DEPTH, mode=mode, filters=SearchFilters(max_per_article=1))
    return [h.citation.article_id for h in result.hits]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=Path, required=True, help="an index of the whole corpus, default model")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 3000, 20000])
    parser.add_argument("--split", choices=["tune", "report", "all"], default="report")
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-scale-eval"))
    parser.add_argument("--json", type=Path, default=ROOT / "eval" / "results" / "scale_eval.json")
    parser.add_argument("--fill-store", action="store_true",
                        help="first embed the corpus into --vectors, the archives' files in order (hours on 2 cores)")
    args = parser.parse_args()

    every = load_questions(ROOT / "eval" / "data")
    files = corpus_files(args.corpus)
    all_golds = sorted({q.file for q in every})
    if args.fill_store:
        fill_store(args.vectors, args.corpus, archive(files, all_golds, len(files)))
    questions = [q for q in every if args.split == "all" or q.split == args.split]
    golds = all_golds  # every archive holds every question's gold, whichever split is scored
    results: dict = {"split": args.split, "questions": len(questions), "sizes": {}}
    for size in args.sizes:
        chosen = archive(files, golds, size)
        articles = read_articles(args.corpus, chosen)
        by_file_id = {f: a.id for f, a in articles.items()}
        root = args.work / f"archive-{size}"
        seconds = build(root, list(articles.values()), args.vectors)
        index = Index.open(root)
        stats = index.stats()
        per_mode = {}
        misses = []
        for mode in MODES:
            r1 = r5 = mrr = 0.0
            for q in questions:
                gold = by_file_id.get(q.file)
                got = ranks(index, q.text, mode)
                rank = got.index(gold) + 1 if gold in got else None
                r1 += rank == 1
                r5 += rank is not None and rank <= 5
                mrr += 1 / rank if rank else 0.0
                if mode == "hybrid" and rank != 1:
                    misses.append({"question": q.text, "lang": q.lang, "gold": q.file, "rank": rank,
                                   "top": got[:3]})  # fmt: skip
            n = max(1, len(questions))
            per_mode[mode] = {"R@1": r1 / n, "R@5": r5 / n, "MRR@10": mrr / n}
        results["sizes"][str(size)] = {"articles": stats.articles, "chunks": stats.chunks, "build_seconds": seconds,
                                       "modes": per_mode, "hybrid_misses": misses}  # fmt: skip
        print(f"{size} articles ({stats.chunks} passages): " + "  ".join(
            f"{m} R@1 {v['R@1']:.3f} R@5 {v['R@5']:.3f} MRR {v['MRR@10']:.3f}" for m, v in per_mode.items()), flush=True)
        index.close()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"written: {args.json}")
    print(markdown(results))
    plot(results, args.json.with_suffix(".png"))
    return 0


def markdown(results: dict) -> str:
    sizes = list(results["sizes"])
    lines = [f"Split: {results['split']} ({results['questions']} questions). R@1 / R@5 / MRR@10, per article.", "",
             "| mode | " + " | ".join(f"{int(s):,} articles" for s in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
    for mode in MODES:
        cells = []
        for s in sizes:
            m = results["sizes"][s]["modes"][mode]
            cells.append(f"{m['R@1']:.3f} / {m['R@5']:.3f} / {m['MRR@10']:.3f}")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    sizes = [int(s) for s in results["sizes"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for mode in MODES:
        ax.plot(sizes, [results["sizes"][str(s)]["modes"][mode]["R@1"] for s in sizes], marker="o", label=mode)
    ax.set_xscale("log")
    ax.set_xlabel("articles in the archive")
    ax.set_ylabel("Recall@1 (gold article first)")
    ax.set_title(f"Quality as the archive grows ({results['split']} half)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    sys.exit(main())
