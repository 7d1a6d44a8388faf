"""Check eval/data/news_questions.jsonl against the rules it was written under (eval/data/README.md).

    python eval/check_questions.py [--corpus ../shared/corpus] [--file eval/data/news_questions.jsonl]

Prints each problem on a line and exits 1 when there is any: a missing field,
a file the corpus lacks, a ``paragraph`` that starts none of the article's
paragraphs, a source that is not the article's, a type or language outside
the lists, a zh-Hant question not in Traditional script (or a zh-Hans one in
it), a Chinese question sharing a run of 6 characters with its article (raw,
and with both sides in Simplified and in Traditional), an English one sharing
a run of 4 words, an article with more than two questions or in both splits,
an article of ``news_paraphrase.jsonl``. Then the counts by split and language.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.ingest import read_file  # noqa: E402

FIELDS = ("question", "lang", "file", "source", "paragraph", "type", "split")
TYPES = frozenset({"number", "date", "person", "place", "organisation", "cause", "event", "quote", "other"})
LANGS = frozenset({"zh-Hans", "zh-Hant", "en"})
_PUNCT = re.compile(r"[\s\W_]+")
_EN_WORD = re.compile(r"[a-z0-9]+")


def _runs(text: str, n: int) -> set[str]:
    text = _PUNCT.sub("", text)
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def check(questions: list[dict], corpus: Path, paraphrase_files: set[str]) -> list[str]:
    """Every problem found, one line each (empty: the file keeps its rules)."""
    from opencc import OpenCC

    t2s, s2t = OpenCC("t2s"), OpenCC("s2t")
    problems: list[str] = []
    articles: dict = {}
    splits: dict[str, set[str]] = collections.defaultdict(set)
    per_article: collections.Counter = collections.Counter()
    for number, q in enumerate(questions, 1):
        where = f"line {number} ({str(q.get('question', ''))[:30]})"
        missing = [k for k in FIELDS if k not in q]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        if q["file"] not in articles:
            try:
                articles[q["file"]] = read_file(corpus / q["file"], corpus)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                articles[q["file"]] = None
                problems.append(f"{where}: {q['file']} cannot be read ({exc})")
        article = articles[q["file"]]
        splits[q["file"]].add(q["split"])
        per_article[q["file"]] += 1
        if Path(q["file"]).name in paraphrase_files:
            problems.append(f"{where}: its article is one of news_paraphrase.jsonl's")
        if q["type"] not in TYPES:
            problems.append(f"{where}: type {q['type']!r} is not one of {sorted(TYPES)}")
        if q["split"] not in ("tune", "report"):
            problems.append(f"{where}: split {q['split']!r} is not tune or report")
        if article is None:
            continue
        if q["source"] != article.source:
            problems.append(f"{where}: source {q['source']!r} is not the article's {article.source!r}")
        if not any(p.startswith(q["paragraph"]) for p in article.paragraphs) or not q["paragraph"].strip():
            problems.append(f"{where}: paragraph starts none of the article's paragraphs")
        text = article.title + "\n" + "\n".join(article.paragraphs)
        question = q["question"]
        if q["lang"] in ("zh-Hans", "zh-Hant"):
            if q["lang"] == "zh-Hant" and t2s.convert(question) == question:
                problems.append(f"{where}: a zh-Hant question in Simplified script")
            if q["lang"] == "zh-Hans" and t2s.convert(question) != question:
                problems.append(f"{where}: a zh-Hans question in Traditional script")
            shared = set()
            for convert in (str, t2s.convert, s2t.convert):
                shared |= _runs(convert(question), 6) & _runs(convert(text), 6)
            if shared:
                problems.append(f"{where}: shares 6-character runs with its article: {sorted(shared)[:3]}")
        elif q["lang"] == "en":
            words = _EN_WORD.findall(question.lower())
            body = f" {' '.join(_EN_WORD.findall(text.lower()))} "
            shared = [" ".join(words[i : i + 4]) for i in range(len(words) - 3) if f" {' '.join(words[i:i + 4])} " in body]
            if shared:
                problems.append(f"{where}: shares 4-word runs with its article: {shared[:3]}")
        else:
            problems.append(f"{where}: lang {q['lang']!r} is not one of {sorted(LANGS)}")
    for name, count in per_article.items():
        if count > 2:
            problems.append(f"{name}: {count} questions (at most 2 an article)")
        if len(splits[name]) > 1:
            problems.append(f"{name}: in both splits")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--file", type=Path, default=ROOT / "eval" / "data" / "news_questions.jsonl")
    args = parser.parse_args()
    questions = [json.loads(line) for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    paraphrase = ROOT / "eval" / "data" / "news_paraphrase.jsonl"
    paraphrase_files = {json.loads(line)["file"] for line in paraphrase.read_text(encoding="utf-8").splitlines() if line.strip()}
    problems = check(questions, args.corpus, paraphrase_files)
    print("\n".join(problems))
    counts = collections.Counter((q.get("split"), q.get("lang")) for q in questions)
    print(f"{len(questions)} questions, {len({q.get('file') for q in questions})} articles, {len(problems)} problems")
    for split in ("tune", "report"):
        print(f"  {split}: " + ", ".join(f"{lang} {counts[split, lang]}" for lang in sorted(LANGS)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
