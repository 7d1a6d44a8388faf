"""English questions over Chinese paragraphs: hybrid search with and without the dictionary.

    python eval/crosslingual.py [--shared ../shared] [--workdir /tmp/qa-crosslingual]

XQuAD's English questions asked against its Chinese paragraphs (1,190
questions, 240 paragraphs), in an index built by the library with the
default model. Recall@1 per half: articles 0-23 (where the dictionary leg's
weight was chosen, together with the tune half of the English news
questions) and articles 24-47 (held out), for dense, hybrid without the
dictionary (``Translator(enabled=False)``) and hybrid as shipped
(:mod:`qa.crosslingual`). The news questions' figures come from
``eval/scale_eval.py`` (``--no-dictionary`` for the baseline).

    python eval/crosslingual.py --verdicts /tmp/qa-scale-eval/archive-3000

With ``--verdicts INDEX`` (a news archive built by ``eval/scale_eval.py``) it
reports instead how often hybrid search calls an English question
answerable there, with and without the dictionary: the 54 English news
questions of the report half (their articles are in every archive; the tune
half helps fit the calibration, ``eval/calibrate.py``) and 199 XQuAD English
questions (every sixth), which no news archive answers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from qa.crosslingual import Translator  # noqa: E402
from qa.default_model import DEFAULT_MODEL_ID  # noqa: E402
from qa.index import Index  # noqa: E402
from qa.index.models import embedder_for  # noqa: E402
from qa_tools.evaluation import build_index, load_squad, rank_documents  # noqa: E402

SETTINGS = (
    ("dense", "dense", False),
    ("hybrid, no dictionary", "hybrid", False),
    ("hybrid (shipped: with the dictionary)", "hybrid", True),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qa-crosslingual"))
    parser.add_argument("--verdicts", type=Path, metavar="INDEX", help="a news archive: the answerable verdicts")
    args = parser.parse_args()
    xquad = args.shared / "datasets" / "xquad"
    dataset = load_squad(xquad / "xquad.zh.json", xquad / "xquad.en.json")
    if args.verdicts:
        return verdicts(args.verdicts, [q.text for q in dataset.queries][::6])
    root = args.workdir / "xquad-index"
    if not (root / "manifest.json").is_file():
        model = embedder_for({"model": DEFAULT_MODEL_ID, "backend": "sentence-transformers", "dimension": 384})
        build_index(dataset, model, root, progress=True).index.close()
    index = Index.open(root)
    halves = {
        "articles 0-23 (tune)": [q for q in dataset.queries if int(q.id.split(":")[1]) < 24],
        "articles 24-47 (held out)": [q for q in dataset.queries if int(q.id.split(":")[1]) >= 24],
    }
    print("| XQuAD en->zh, Recall@1 | " + " | ".join(f"{h} ({len(qs)})" for h, qs in halves.items()) + " |")
    print("|---|" + "---|" * len(halves))
    for name, mode, dictionary in SETTINGS:
        index.translator = Translator(enabled=dictionary)
        cells = []
        for questions in halves.values():
            first = sum(rank_documents(index, q.text, mode)[:1] == [next(iter(dataset.qrels[q.id]))] for q in questions)
            cells.append(f"{first / len(questions):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    index.close()
    return 0


def verdicts(root: Path, unanswerable: list[str]) -> int:
    from scale_eval import load_questions

    # the report half: the tuning half's questions help fit the calibration (eval/calibrate.py)
    answerable = [q.text for q in load_questions(ROOT / "eval" / "data") if q.lang == "en" and q.split == "report"]
    index = Index.open(root)
    print(f"| judged answerable, hybrid, {root.name} | English news questions, report half ({len(answerable)}) |"
          f" XQuAD English questions, no answer here ({len(unanswerable)}) |")  # fmt: skip
    print("|---|---|---|")
    for name, dictionary in (("without the dictionary", False), ("with the dictionary (as shipped)", True)):
        index.translator = Translator(enabled=dictionary)
        shares = [sum(bool(index.search(q, k=5, mode="hybrid").answerable) for q in qs) / len(qs)
                  for qs in (answerable, unanswerable)]  # fmt: skip
        print(f"| {name} | {shares[0]:.3f} | {shares[1]:.3f} |", flush=True)
    index.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
