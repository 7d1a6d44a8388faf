"""Indexing throughput on a GPU, through the project's own code, with a model of the default
model's shape and random weights (throughput does not depend on the weights).

    # here: the default model's shape without its weights (~17 MB, the tokenizer mostly)
    python eval/bench_gpu.py --write-shape /tmp/shape
    # there (a GPU machine): build the random-weight model, then measure
    python eval/bench_gpu.py --shape /tmp/shape --folder CORPUS [--device cuda] [--passages 20000]

The default model's 470 MB of weights do not travel well to a lent machine;
its shape does: ``--write-shape`` copies the model folder without
``model.safetensors`` (config, tokenizer, pooling, normalisation). There,
``--shape`` builds ``transformers.AutoModel.from_config`` with a fixed seed
next to it, so that sentence-transformers loads it like the real model, and
the script prints, for the same corpus passages (chunked by ``qa.chunk`` from
``--folder``, in a seeded shuffle, as eval/bench_embed.py takes them):

* the embedding stage: passages/s of ``SentenceTransformerEmbedder`` on
  ``--device``, one call per ``passages_per_call`` passages (4,096 on a GPU)
  as the index writer makes them, after a warm-up, median of ``--rounds``:
  for each precision (fp16, bf16, fp32 on a GPU; fp32 on a CPU) with one
  call at a time and with ``calls_in_flight`` calls at once (two on a GPU,
  as the writer runs them: the next call is tokenised while the model runs);
* where a call's time goes (fp16): tokenising alone, and the model alone on
  texts tokenised beforehand;
* batch shapes (fp16, calls in flight): token budgets per batch and
  passages per call other than the defaults;
* the whole pipeline: ``sync_folders`` of ``--folder`` into a new index
  (read, parse, chunk, BM25 tokens, embed, commit), with
  ``default_readers(device)`` reader processes, its passages/s and where
  the time went (``UpdateReport.timings``);
* with ``--profile PATH``: the pipeline again under cProfile (the writer's
  thread, which the pipeline waits on), its statistics written to PATH;
* with ``--switch-intervals 0.005 0.0005``: all of it again under each
  ``sys.setswitchinterval`` (two threads feeding one GPU were seen waiting for
  the GIL: eval/README.md);
* with ``--compile``, last: the fp16 model under ``torch.compile(dynamic=True)``,
  an experiment the product does not ship.

A table of every row is printed last; ``--json PATH`` writes the rows too.
Not part of CI. Needs a CUDA build of torch for ``--device cuda``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass
class Row:
    """One measured line: what ran, passages per second (median), and the rounds behind it."""

    what: str
    rate: float
    rounds: list[float]
    note: str = ""


def write_shape(target: Path) -> None:
    """The default model's folder without its weights (nor its ONNX exports)."""
    from qa.default_model import default_model_dir

    source = default_model_dir()
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*WEIGHTS, "onnx"))
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"shape of {source.name} written to {target} ({size / 1e6:.1f} MB)")


def random_model(shape: Path, target: Path, seed: int = 0) -> Path:
    """A sentence-transformers folder: ``shape``'s files plus random weights of its config."""
    import torch
    from transformers import AutoConfig, AutoModel

    shutil.copytree(shape, target, ignore=shutil.ignore_patterns(*WEIGHTS))
    torch.manual_seed(seed)
    model = AutoModel.from_config(AutoConfig.from_pretrained(shape))
    model.save_pretrained(target)
    params = sum(p.numel() for p in model.parameters())
    print(f"random-weight model of {params / 1e6:.0f}M parameters at {target}", flush=True)
    return target


def _calls(texts: list[str], per_call: int) -> list[list[str]]:
    return [texts[start : start + per_call] for start in range(0, len(texts), per_call)]


def timed_rounds(work, count: int, rounds: int) -> list[float]:
    """``count`` / seconds of ``work()`` for each of ``rounds`` runs."""
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        rates.append(count / (time.perf_counter() - started))
    return rates


def stage(embedder, texts: list[str], rounds: int, in_flight: int) -> list[float]:
    """The embedding stage as the writer drives it: calls of ``passages_per_call`` passages,
    ``in_flight`` of them at once (results taken in order)."""
    calls = _calls(texts, embedder.passages_per_call or 128)
    embedder.embed_passages(calls[0])  # warm-up: kernels chosen, memory pools grown

    def run() -> None:
        if in_flight == 1:
            for call in calls:
                embedder.embed_passages(call)
            return
        with ThreadPoolExecutor(in_flight) as pool:
            for _ in pool.map(embedder.embed_passages, calls):
                pass

    return timed_rounds(run, len(texts), rounds)


def breakdown(embedder, texts: list[str], rounds: int) -> tuple[list[float], list[float]]:
    """Tokenising alone, and the model alone on calls tokenised beforehand (what one call
    spends in each; through the embedder's own steps: qa.fast_tokens where the model has it)."""
    st = embedder._st
    prompt = st.prompts.get(embedder._passage_prompt) if embedder._passage_prompt else None
    calls = _calls(texts, embedder.passages_per_call or 128)

    def tokenise(call: list[str]) -> dict:
        fast = embedder.fast_tokens()
        return (fast and fast.features(call, prompt)) or st.preprocess(call, prompt=prompt)

    tokenising = timed_rounds(lambda: [tokenise(call) for call in calls], len(texts), rounds)
    features = [tokenise(call) for call in calls]
    embedder._encode_sorted(features[0], False)

    def model() -> None:
        for feature in features:
            embedder._encode_sorted(feature, False)  # ends with a copy to the host: synchronised

    return tokenising, timed_rounds(model, len(texts), rounds)


def whole_pipeline(model_dir: Path, device: str, folder: Path, readers: int) -> Row:
    from qa.embed import SentenceTransformerEmbedder
    from qa.index import sync_folders
    from qa.records import ReadReport

    embedder = SentenceTransformerEmbedder(model_dir, device=device)
    embedder.embed_passages(["warm-up"])
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
        started = time.perf_counter()
        result = sync_folders(Path(work) / "index", [folder], embedder, ReadReport(), progress=False,
                              readers=readers)  # fmt: skip
        seconds = time.perf_counter() - started
    rate = result.chunks / seconds
    note = (f"{result.articles:,} articles, {result.chunks:,} passages in {seconds:.1f} s; "
            f"{result.timings.summary()}")  # fmt: skip
    return Row(f"whole pipeline, {readers} reader{'s' if readers > 1 else ''}", rate, [rate], note)


def measure(model_dir: Path, args, texts: list[str]) -> list[Row]:
    import torch

    from qa.embed import SentenceTransformerEmbedder

    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        rounds = ", ".join(f"{r:,.0f}" for r in row.rounds)
        print(f"{row.what}: {row.rate:,.0f} passages/s (rounds: {rounds}){'; ' + row.note if row.note else ''}",
              flush=True)  # fmt: skip

    def embedder(precision: str = "auto", batch_tokens: int | None = None, per_call: int | None = None,
                 fast_tokens: bool = True):  # fmt: skip
        made = SentenceTransformerEmbedder(model_dir, device=args.device, precision=precision,
                                           batch_tokens=batch_tokens, fast_tokens=fast_tokens)  # fmt: skip
        if per_call:
            made.passages_per_call = per_call
        return made

    gpu = args.device.startswith("cuda")
    for precision in ("fp16", "bf16", "fp32") if gpu else ("fp32",):
        model = embedder(precision)
        shape = f"{model.passages_per_call or 128} passages per call, {model.batch_tokens:,} tokens per batch"
        for in_flight in sorted({1, model.calls_in_flight}):
            rates = stage(model, texts, args.rounds, in_flight)
            add(Row(f"embedding stage, {precision}, {in_flight} call{'s' if in_flight > 1 else ''} in flight",
                    statistics.median(rates), rates, shape))  # fmt: skip
        if precision == ("fp16" if gpu else "fp32"):
            tokenise, model_only = breakdown(model, texts, args.rounds)
            add(Row("  tokenising alone", statistics.median(tokenise), tokenise,
                    "qa.fast_tokens" if model.fast_tokens() else "st.preprocess"))  # fmt: skip
            add(Row(f"  the model alone, {precision}", statistics.median(model_only), model_only,
                    "calls tokenised beforehand"))  # fmt: skip
            slow = embedder(precision, fast_tokens=False)  # before qa.fast_tokens: transformers' tokenising
            rates = stage(slow, texts, args.rounds, slow.calls_in_flight)
            add(Row(f"embedding stage, {precision}, tokenised by st.preprocess", statistics.median(rates), rates,
                    f"{slow.calls_in_flight} call{'s' if slow.calls_in_flight > 1 else ''} in flight"))  # fmt: skip
            del slow
        del model
        if gpu:
            torch.cuda.empty_cache()

    precision = "fp16" if gpu else "fp32"
    for batch_tokens, per_call in args.shapes:
        model = embedder(precision, batch_tokens, per_call)
        rates = stage(model, texts, args.rounds, model.calls_in_flight)
        add(Row(f"embedding stage, {precision}, {batch_tokens:,} tokens per batch, {per_call:,} per call",
                statistics.median(rates), rates,
                f"{model.calls_in_flight} call{'s' if model.calls_in_flight > 1 else ''} in flight"))  # fmt: skip
        del model

    if not args.no_pipeline:
        from qa.index.sync import default_readers

        readers = args.readers if args.readers is not None else default_readers(args.device)
        add(whole_pipeline(model_dir, args.device, args.folder, max(1, readers)))
        if args.profile:
            import cProfile
            import io
            import pstats

            profile = cProfile.Profile()  # the writer's thread: what the pipeline waits on
            profile.enable()
            row = whole_pipeline(model_dir, args.device, args.folder, max(1, readers))
            profile.disable()
            add(Row(row.what + ", profiled", row.rate, row.rounds, row.note))
            text = io.StringIO()
            for order in ("tottime", "cumulative"):
                pstats.Stats(profile, stream=text).sort_stats(order).print_stats(45)
            args.profile.write_text(text.getvalue())

    if args.compile:
        model = embedder(precision)
        st_module = model._st[0]
        st_module.auto_model = torch.compile(st_module.auto_model, dynamic=True)
        started = time.perf_counter()
        for call in _calls(texts, model.passages_per_call or 128)[:2]:
            model.embed_passages(call)  # compiles for the shapes it meets
        warm = time.perf_counter() - started
        rates = stage(model, texts, args.rounds, model.calls_in_flight)
        add(Row(f"embedding stage, {precision}, torch.compile(dynamic=True)", statistics.median(rates), rates,
                f"{warm:.0f} s to compile on the first two calls"))  # fmt: skip
    return rows


def _shape(text: str) -> tuple[int, int]:
    tokens, _, per_call = text.partition(":")
    return int(tokens), int(per_call or 4096)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-shape", type=Path, metavar="DIR", help="write the default model's shape and stop")
    parser.add_argument("--shape", type=Path, metavar="DIR", help="a model folder without weights (--write-shape)")
    parser.add_argument("--folder", type=Path, metavar="DIR", help="article files to chunk and index")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--passages", type=int, default=20000, help="passages for the embedding stage")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the embedding stage (median)")
    parser.add_argument("--shapes", type=_shape, nargs="*", metavar="TOKENS[:PER_CALL]",
                        default=[_shape(s) for s in ("32768", "131072", "262144", "131072:16384")],
                        help="batch shapes to try beside the default (tokens per batch, passages per call)")  # fmt: skip
    parser.add_argument("--readers", type=int, default=None, help="reader processes (default: every core but two)")
    parser.add_argument("--no-pipeline", action="store_true", help="the embedding stage only")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (an experiment), last")
    parser.add_argument("--profile", type=Path, metavar="PATH",
                        help="run the pipeline again under cProfile (the writer's thread), stats to PATH")
    parser.add_argument("--switch-intervals", type=float, nargs="*", metavar="SECONDS",
                        help="measure everything again under each of these sys.setswitchinterval values "
                             "(default: Python's, 0.005): threads feeding one GPU wait for the GIL")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the rows to PATH as well")
    args = parser.parse_args(argv)
    if args.write_shape:
        write_shape(args.write_shape)
        return 0
    if not args.shape or not args.folder:
        parser.error("--shape and --folder are needed (or --write-shape)")

    import torch

    from qa.embed import check_device

    check_device(args.device)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    print(f"{os.cpu_count()} CPUs; {args.device}: {where}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="random-model-") as tmp:
        model_dir = random_model(args.shape, Path(tmp) / "model")
        from bench_embed import corpus_chunks  # the corpus mix of eval/bench_embed.py, from --folder

        started = time.perf_counter()
        texts = corpus_chunks(args.passages, root=args.folder)
        print(f"{len(texts):,} passages of {args.folder} ({time.perf_counter() - started:.0f} s to read)", flush=True)
        rows = []
        default_interval = sys.getswitchinterval()
        for interval in args.switch_intervals or [default_interval]:
            sys.setswitchinterval(interval)  # how soon a thread waiting for the GIL gets it
            measured = measure(model_dir, args, texts)
            if args.switch_intervals:
                measured = [replace(r, what=f"{r.what} [switch interval {interval * 1000:g} ms]") for r in measured]
            rows += measured
        sys.setswitchinterval(default_interval)
    print(f"\n| {args.device} ({where}) | passages/s | rounds | |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row.what} | {row.rate:,.0f} | {', '.join(f'{r:,.0f}' for r in row.rounds)} | {row.note} |")
    if args.json:
        args.json.write_text(json.dumps({"device": where, "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
