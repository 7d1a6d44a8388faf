"""Indexing throughput on a GPU, through the project's own code, with a model of the default
model's shape and random weights (throughput does not depend on the weights).

    # here: the default model's shape without its weights (~17 MB, the tokenizer mostly)
    python eval/bench_gpu.py --write-shape /tmp/shape
    # there (a GPU machine): build the random-weight model, then measure
    python eval/bench_gpu.py --shape /tmp/shape --folder CORPUS_SLICE [--device cuda] [--passages 20000]

The default model's 470 MB of weights do not travel well to a lent machine;
its shape does: ``--write-shape`` copies the model folder without
``model.safetensors`` (config, tokenizer, pooling, normalisation). There,
``--shape`` builds ``transformers.AutoModel.from_config`` with a fixed seed
next to it, so that sentence-transformers loads it like the real model, and
the script prints, for the same corpus passages (chunked by ``qa.chunk`` from
``--folder``):

* the embedding stage: passages/s of ``SentenceTransformerEmbedder`` on
  ``--device`` (the passages of ``--folder``'s articles in a seeded shuffle,
  as eval/bench_embed.py takes them) for each precision (fp16, bf16, fp32 on a GPU; fp32 on a CPU),
  one call per 4,096 passages as the index writer makes them, after a
  warm-up;
* the whole pipeline: ``sync_folders`` of ``--folder`` into a new index
  (read, parse, chunk, BM25 tokens, embed, commit), with
  ``default_readers(device)`` reader processes, its passages/s and where
  the time went (``UpdateReport.timings``).

Not part of CI. Needs a CUDA build of torch for ``--device cuda``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

WEIGHTS = ("model.safetensors", "pytorch_model.bin")


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


def embedding_stage(model_dir: Path, device: str, texts: list[str], rounds: int) -> None:
    from qa.embed import SentenceTransformerEmbedder

    precisions = ("fp16", "bf16", "fp32") if device != "cpu" else ("fp32",)
    for precision in precisions:
        embedder = SentenceTransformerEmbedder(model_dir, device=device, precision=precision)
        per_call = embedder.passages_per_call or 128
        embedder.embed_passages(texts[:per_call])  # warm-up: kernels chosen, memory pools grown
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            for start in range(0, len(texts), per_call):
                embedder.embed_passages(texts[start : start + per_call])
            rates.append(len(texts) / (time.perf_counter() - started))
        print(f"embedding stage, {precision}: {statistics.median(rates):,.0f} passages/s "
              f"(rounds: {', '.join(f'{r:,.0f}' for r in rates)}; {per_call} passages per call, "
              f"{embedder.batch_tokens:,} tokens per batch)", flush=True)  # fmt: skip
        del embedder


def whole_pipeline(model_dir: Path, device: str, folder: Path, readers: int) -> None:
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
    print(f"whole pipeline ({readers} reader{'s' if readers > 1 else ''}): {result.articles:,} articles, "
          f"{result.chunks:,} passages in {seconds:.1f} s = {result.chunks / seconds:,.0f} passages/s; "
          f"{result.timings.summary()}", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write-shape", type=Path, metavar="DIR", help="write the default model's shape and stop")
    parser.add_argument("--shape", type=Path, metavar="DIR", help="a model folder without weights (--write-shape)")
    parser.add_argument("--folder", type=Path, metavar="DIR", help="article files to chunk and index")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--passages", type=int, default=20000, help="passages for the embedding stage")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the embedding stage (median)")
    parser.add_argument("--readers", type=int, default=None, help="reader processes (default: every core but two)")
    parser.add_argument("--no-pipeline", action="store_true", help="the embedding stage only")
    args = parser.parse_args(argv)
    if args.write_shape:
        write_shape(args.write_shape)
        return 0
    if not args.shape or not args.folder:
        parser.error("--shape and --folder are needed (or --write-shape)")

    from qa.embed import check_device
    from qa.index.sync import default_readers

    check_device(args.device)
    print(f"{os.cpu_count()} CPUs; device {args.device}", flush=True)
    with tempfile.TemporaryDirectory(prefix="random-model-") as tmp:
        model_dir = random_model(args.shape, Path(tmp) / "model")
        from bench_embed import corpus_chunks  # the corpus mix of eval/bench_embed.py, from --folder

        texts = corpus_chunks(args.passages, root=args.folder)
        print(f"{len(texts):,} passages of {args.folder}", flush=True)
        embedding_stage(model_dir, args.device, texts, args.rounds)
        if not args.no_pipeline:
            readers = args.readers if args.readers is not None else default_readers(args.device)
            whole_pipeline(model_dir, args.device, args.folder, max(1, readers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
