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
Recall@1, Recall@5, MRR@10 per mode and size, on the chosen split.

Near-duplicates: news archives carry the same story from several outlets
(a Reuters or CNA dispatch reprinted by Zaobao, RFI and others). Strict
figures, the headline ones, count only the gold article. "Same facts" figures
also count an article that carries the gold answer paragraph: one of its
paragraphs holds at least 60% of that paragraph's character bigrams (after
Traditional->Simplified and NFKC, letters, digits and Han characters only).
A person checking the citation would find the answer there too, so the
difference between the two is the share of misses that are reprints, not
wrong answers.
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

from qa.crosslingual import Translator  # noqa: E402
from qa.default_model import DEFAULT_MODEL_ID  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.index.manifest import SEGMENTS_DIR  # noqa: E402
from qa.ingest import read_file  # noqa: E402
from qa.records import Article, SearchFilters  # noqa: E402

MODES = ("dense", "lexical", "hybrid")
DEPTH = 10
SAME_FACTS_SHARE = 0.6  # of the gold paragraph's character bigrams found in one paragraph


@dataclass(frozen=True)
class Question:
    text: str
    lang: str
    file: str  # relative to the corpus folder
    split: str  # tune | report
    kind: str
    paragraph: str  # the gold article's paragraph that answers it


def load_questions(data: Path) -> list[Question]:
    out = []
    new = data / "news_questions.jsonl"
    if new.is_file():
        for line in new.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                out.append(Question(d["question"], d["lang"], d["file"], d["split"], d.get("type", "other"),
                                    d.get("paragraph", "")))  # fmt: skip
    old = data / "news_paraphrase.jsonl"  # used in development (fusion, calibration): tuning only
    for line in old.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Question(d["question"], "zh-Hans", "waimei/" + d["file"], "tune", "other", d.get("paragraph", "")))
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


def _bigrams(text: str) -> set[str]:
    from qa.lexical import normalize

    kept = "".join(ch for ch in normalize(text) if ch.isalnum())
    return {kept[i : i + 2] for i in range(len(kept) - 1)}


def carries(article: Article, paragraph: str) -> bool:
    """Whether one of the article's paragraphs holds the answer paragraph's facts (SAME_FACTS_SHARE)."""
    wanted = _bigrams(paragraph)
    if not wanted:
        return False
    return any(len(wanted & _bigrams(p)) >= SAME_FACTS_SHARE * len(wanted) for p in article.paragraphs)


def answer_paragraph(article: Article, paragraph: str) -> int | None:
    """Index of the article's paragraph that best holds the answer paragraph (None if none shares half)."""
    wanted = _bigrams(paragraph)
    shares = [len(wanted & _bigrams(p)) / max(1, len(wanted)) for p in article.paragraphs]
    best = int(np.argmax(shares)) if shares else 0
    return best if shares and shares[best] >= 0.5 else None


LATE_PARAGRAPH = 8  # an answer from the 9th paragraph on is "late"


def causes(miss: dict, gold: Article, top: Article | None) -> list[str]:
    """Why the gold article was not first, as far as the records tell (several may apply)."""
    out = []
    if miss["top_carries_answer"]:
        out.append("a reprint carrying the answer came first")
    elif top is not None and _same_story(gold, top):
        out.append("the same story from another outlet came first")
    if miss["lang"] == "en":
        out.append("English question, Chinese article")
    if miss["answer_paragraph"] is not None and miss["answer_paragraph"] >= LATE_PARAGRAPH:
        out.append("answer late in a long article")
    if all(r is None for r in miss["ranks"].values()):
        out.append("not in any mode's top 10")
    if not out:  # nothing above: another article on the same subject ranked higher
        out.append("a related article ranked higher" + (" (gold in the top 5)" if miss["rank"] and miss["rank"] <= 5 else ""))
    return out


def _same_story(a: Article, b: Article) -> bool:
    """Titles sharing a fifth of their character bigrams, published within three days."""
    ta, tb = _bigrams(a.title), _bigrams(b.title)
    if not ta or not tb or len(ta & tb) < 0.2 * min(len(ta), len(tb)):
        return False
    if a.published and b.published:
        from datetime import datetime

        days = abs((datetime.fromisoformat(a.published[:10]) - datetime.fromisoformat(b.published[:10])).days)
        return days <= 3
    return True


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
    parser.add_argument("--no-dictionary", action="store_true",
                        help="hybrid without the English->Chinese dictionary (qa.crosslingual): the baseline")
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
    results: dict = {"split": args.split, "questions": len(questions), "dictionary": not args.no_dictionary, "sizes": {}}
    for size in args.sizes:
        chosen = archive(files, golds, size)
        articles = read_articles(args.corpus, chosen)
        if len(articles) < len(chosen) // 2:
            print(f"only {len(articles)} of {len(chosen)} articles could be read from {args.corpus}: "
                  "is --corpus the corpus folder?", file=sys.stderr)  # fmt: skip
            return 2
        by_file_id = {f: a.id for f, a in articles.items()}
        root = args.work / f"archive-{size}"
        seconds = build(root, list(articles.values()), args.vectors)
        index = Index.open(root, translator=Translator(enabled=not args.no_dictionary))
        stats = index.stats()
        by_id = {a.id: a for a in articles.values()}
        per_mode = {}
        misses = []
        gold_ranks: dict[tuple[str, str, str], int | None] = {}  # (question, gold file, mode) -> rank
        for mode in MODES:
            r1 = r5 = mrr = same1 = 0.0
            first_by_lang: dict[str, list[bool]] = {}
            for q in questions:
                gold = by_file_id.get(q.file)
                got = ranks(index, q.text, mode)
                rank = got.index(gold) + 1 if gold in got else None
                gold_ranks[q.text, q.file, mode] = rank
                r1 += rank == 1
                first_by_lang.setdefault(q.lang, []).append(rank == 1)
                r5 += rank is not None and rank <= 5
                mrr += 1 / rank if rank else 0.0
                top_carries = bool(got) and got[0] != gold and carries(by_id[got[0]], q.paragraph)
                same1 += rank == 1 or top_carries
                if mode == "hybrid" and rank != 1:
                    misses.append({"question": q.text, "lang": q.lang, "type": q.kind, "gold": q.file, "rank": rank,
                                   "paragraph": q.paragraph,
                                   "top": got[:3], "top_carries_answer": top_carries,
                                   "ranks": {m: None for m in MODES}})  # fmt: skip
            n = max(1, len(questions))
            per_mode[mode] = {"R@1": r1 / n, "R@5": r5 / n, "MRR@10": mrr / n, "R@1 same facts": same1 / n,
                              "R@1 by language": {lang: sum(v) / len(v) for lang, v in sorted(first_by_lang.items())}}  # fmt: skip
        for miss in misses:
            for mode in MODES:  # where the gold landed in each mode
                miss["ranks"][mode] = gold_ranks[miss["question"], miss["gold"], mode]
            gold_article = articles.get(miss["gold"])
            miss["gold_title"] = gold_article.title if gold_article else None
            miss["top_title"] = by_id[miss["top"][0]].title if miss["top"] else None
            miss["answer_paragraph"] = answer_paragraph(gold_article, miss.pop("paragraph")) if gold_article else None
            miss["causes"] = causes(miss, gold_article, by_id.get(miss["top"][0]) if miss["top"] else None)
        results["sizes"][str(size)] = {"articles": stats.articles, "chunks": stats.chunks, "build_seconds": seconds,
                                       "modes": per_mode, "hybrid_misses": misses}  # fmt: skip
        print(f"{size} articles ({stats.chunks} passages): " + "  ".join(
            f"{m} R@1 {v['R@1']:.3f} R@5 {v['R@5']:.3f} MRR {v['MRR@10']:.3f}" for m, v in per_mode.items()), flush=True)
        index.close()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"written: {args.json}")
    print(markdown(results))
    args.json.with_name(args.json.stem + "_misses.md").write_text(misses_markdown(results), encoding="utf-8")
    print(f"misses: {args.json.with_name(args.json.stem + '_misses.md')}")
    plot(results, args.json.with_suffix(".png"))
    return 0


def markdown(results: dict) -> str:
    sizes = list(results["sizes"])
    dictionary = "" if results.get("dictionary", True) else " Hybrid without the English->Chinese dictionary."
    lines = [f"Split: {results['split']} ({results['questions']} questions). R@1 / R@5 / MRR@10 per article, strict"
             f" (the gold article only); in brackets R@1 counting an article with the same facts.{dictionary}", "",
             "| mode | " + " | ".join(f"{int(s):,} articles" for s in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
    for mode in MODES:
        cells = []
        for s in sizes:
            m = results["sizes"][s]["modes"][mode]
            cells.append(f"{m['R@1']:.3f} / {m['R@5']:.3f} / {m['MRR@10']:.3f} ({m['R@1 same facts']:.3f})")
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    langs = sorted(next(iter(results["sizes"].values()))["modes"]["hybrid"]["R@1 by language"])
    lines += ["", "Hybrid R@1 by the question's language:", "", "| language | " + " | ".join(f"{int(s):,}" for s in sizes) + " |",
              "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
    for lang in langs:
        lines.append(f"| {lang} | " + " | ".join(
            f"{results['sizes'][s]['modes']['hybrid']['R@1 by language'].get(lang, float('nan')):.3f}" for s in sizes) + " |")
    return "\n".join(lines)


def misses_markdown(results: dict) -> str:
    """Per size: the causes counted, then every hybrid miss with the gold's rank in each mode."""
    out = []
    for size, r in results["sizes"].items():
        misses = r["hybrid_misses"]
        counted: dict[str, int] = {}
        for m in misses:
            for c in m["causes"]:
                counted[c] = counted.get(c, 0) + 1
        out += [f"### {int(size):,} articles: {len(misses)} hybrid misses of {results['questions']}", "",
                "| cause (a miss may have several) | misses |", "|---|---|"]  # fmt: skip
        out += [f"| {c} | {n} |" for c, n in sorted(counted.items(), key=lambda kv: -kv[1])]
        out += ["", "| question | lang | type | hybrid | dense | lexical | answer ¶ | came first | why |",
                "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for m in misses:
            cells = [m["question"].replace("|", "/"), m["lang"], m["type"]]
            cells += [str(m["ranks"][mode] or "-") for mode in ("hybrid", "dense", "lexical")]
            cells += [str(m["answer_paragraph"] + 1) if m["answer_paragraph"] is not None else "?",
                      (m["top_title"] or "").replace("|", "/")[:40], "; ".join(m["causes"])]  # fmt: skip
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


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
