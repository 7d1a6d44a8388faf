"""The hand-written news questions keep the rules they were written under (eval/check_questions.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
DATA = ROOT / "eval" / "data"
sys.path.insert(0, str(ROOT / "eval"))

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not here")


def _load(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _paraphrase_files() -> set[str]:
    return {d["file"] for d in _load("news_paraphrase.jsonl")}


def test_the_committed_questions_keep_every_rule():
    from check_questions import check

    questions = _load("news_questions.jsonl")
    assert check(questions, CORPUS, _paraphrase_files()) == []
    assert len(questions) == 300 and sum(q["split"] == "report" for q in questions) == 150


def test_the_checks_catch_copies_wrong_paragraphs_and_scripts():
    from check_questions import check
    from qa.ingest import read_file

    good = next(q for q in _load("news_questions.jsonl") if q["lang"] == "zh-Hans")
    article = read_file(CORPUS / good["file"], CORPUS)
    copied = dict(good, question=article.paragraphs[1][:12] + "？")
    hant_in_simplified = dict(good, lang="zh-Hant")
    wrong_paragraph = dict(good, paragraph="这一段并不在文章里")
    english_copy = dict(good, lang="en", question="Why " + " ".join(["the"] * 3) + " x?")  # no 4-word run: fine
    problems = check([copied, hant_in_simplified, wrong_paragraph, english_copy, dict(good, type="gossip")],
                     CORPUS, _paraphrase_files())  # fmt: skip
    text = "\n".join(problems)
    assert "line 1" in text and "6-character runs" in text
    assert "line 2" in text and "zh-Hant question in Simplified" in text
    assert "line 3" in text and "paragraph starts none" in text
    assert "line 4" not in text
    assert "line 5" in text and "type 'gossip'" in text
    assert f"{good['file']}: 5 questions" in text
