#!/usr/bin/env python
"""The news-archive proxy: article titles as questions over real news.

    python eval/news_proxy.py --corpus ../shared/corpus --articles 3000 \\
        --max-chunks-per-article 4 --mode all

A seeded random sample of articles is read with qa.ingest; each article is
indexed WITHOUT its title (title "" so no chunk carries it) and its title is
asked as the question; the article is the one relevant document. Reports
article-level Recall@1/5/10/100, MRR@10 and nDCG@10 per mode.

It is a PROXY: titles are not real questions, and they often reuse the
article's own words, which favours lexical (BM25) retrieval.

CPU cost (default model, 2 idle cores): an article has ~9 chunks on average;
--max-chunks-per-article 4 keeps the lead paragraphs (~3.8 chunks). 3,000
articles x 4 chunks = 11,369 chunks, indexed in 227 s, then ~3 min of
questions per mode: ~13 min in all. Whole articles cost ~2.5x the indexing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from run import add_common_arguments, evaluate_and_write, run_guarded

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval/news_proxy.py",
        description="Proxy evaluation on real news: each article's title asked against the articles "
        "indexed without titles.",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"folder of articles (default: {DEFAULT_CORPUS})")
    parser.add_argument("--articles", type=int, default=3000, metavar="N", help="articles sampled (default: 3000)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument(
        "--max-chunks-per-article",
        type=int,
        default=4,
        metavar="N",
        help="index only each article's lead paragraphs, those its first N chunks cover "
        "(default: 4; 0 = whole articles, ~2.5x the embedding time)",
    )
    add_common_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qa_tools.evaluation import PROXY_NOTE, title_proxy_dataset

    def body() -> None:
        start = time.perf_counter()
        dataset = title_proxy_dataset(
            args.corpus,
            args.articles,
            seed=args.seed,
            max_chunks_per_article=args.max_chunks_per_article or None,
        )
        print(f"{dataset.name}: sampled and read in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        print(PROXY_NOTE, file=sys.stderr)
        extra = {
            "articles": len(dataset.articles),
            "seed": args.seed,
            "max_chunks_per_article": args.max_chunks_per_article or None,
            "proxy": True,
        }
        evaluate_and_write(dataset, args, extra)

    return run_guarded("eval/news_proxy.py", body)

if __name__ == "__main__":
    sys.exit(main())
