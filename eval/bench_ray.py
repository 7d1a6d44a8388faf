"""Indexing on a local Ray against one process, on the same folder and cores.

    python eval/bench_ray.py [--articles 300] [--cpus 2] [--repeat 2] [--device cpu|cuda] [--model NAME]

Copies ``--articles`` files of ../shared/corpus/waimei (a seeded random slice,
as eval/bench_embed.py takes them) into a temporary folder and builds a new
index of it twice per round, alternating: with :func:`qa.index.sync_folders`
in this process (torch on all ``--cpus`` cores), and with
:func:`qa.cluster.index_on_ray` on a local Ray started with
``ray.init(num_cpus=--cpus)`` (one actor per core, one torch thread each,
this process writing the index). The model is loaded before each timed run;
what the cluster path adds (actors starting and loading the model, moving
files and vectors, the writer waiting) is inside its time, Ray's own start
(printed apart) is not, as on a cluster that is already running. Prints,
per run, passages/s from the call to the committed index; then the medians,
the Ray path's overhead ((Ray time - one-process time) / one-process time,
target <= 15%), where the Ray run's time went (waiting for the cluster, the
rest in this process), and the largest difference between the two indexes'
vectors of a passage (1 - cosine). ``--device cuda`` runs the Ray path with
one actor per GPU (a machine with GPUs; the one-process run then uses the
GPU too). Not part of CI; the machine should be otherwise idle.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "waimei"


def folder_slice(n: int, target: Path) -> Path:
    """``n`` corpus files (seeded order) copied into ``target`` (the examples when the corpus is absent)."""
    if CORPUS.is_dir():
        files = sorted(CORPUS.iterdir())
        random.Random(0).shuffle(files)
    else:
        files = sorted(p for p in (ROOT / "examples" / "articles").iterdir() if p.is_file())
    target.mkdir(parents=True)
    for i, path in enumerate(files[:n]):
        shutil.copyfile(path, target / f"{i:05d}{path.suffix}")
    return target


def vectors_by_chunk(root: Path) -> dict[str, np.ndarray]:
    import sqlite3

    from qa.index.segment import read_segment

    db = sqlite3.connect(f"file:{root / 'store.sqlite'}?mode=ro", uri=True)
    ids = dict(db.execute("SELECT row, id FROM chunks"))
    names = [name for (name,) in db.execute("SELECT name FROM segments")]
    db.close()
    out = {}
    for name in names:
        _info, data = read_segment(root / "segments" / name)
        for row, vector in zip(np.asarray(data.rows), np.asarray(data.vectors)):
            if int(row) in ids:
                out[ids[int(row)]] = np.array(vector)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2, help="cores for both paths (default 2)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of (one process, Ray), alternating")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--cpus-per-actor", type=int, default=1, help="torch threads per Ray actor (default 1)")
    parser.add_argument("--model", default=None, help="embedding model (default: the default model)")
    args = parser.parse_args(argv)

    import ray
    import torch

    from qa.cluster import index_on_ray, plan_for
    from qa.index import sync_folders
    from qa.loader import load_embedder
    from qa.records import ReadReport

    torch.set_num_threads(args.cpus)
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        folder = folder_slice(args.articles, work / "articles")
        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        print(f"{args.articles} articles; Ray started in {time.perf_counter() - started:.1f} s; "
              f"plan {plan_for(ray.cluster_resources(), args.device, cpus_per_actor=args.cpus_per_actor)}",
              flush=True)  # fmt: skip
        runs: dict[str, list[float]] = {"one process": [], "ray": []}
        waited, chunks = [], 0
        for round_ in range(args.repeat):
            for path in (("one process", "ray") if round_ % 2 == 0 else ("ray", "one process")):
                index = work / f"{path.replace(' ', '-')}-{round_}"
                here = load_embedder(args.model, device=args.device if path == "one process" else "cpu")
                started = time.perf_counter()
                if path == "ray":
                    report = index_on_ray(index, [folder], here, ReadReport(), device=args.device, progress=False,
                                          cpus_per_actor=args.cpus_per_actor)  # fmt: skip
                    waited.append(report.embed_seconds)
                else:
                    report = sync_folders(index, [folder], here, ReadReport(), progress=False)
                seconds = time.perf_counter() - started
                chunks = report.chunks
                runs[path].append(chunks / seconds)
                print(f"round {round_ + 1} {path:12s} {report.chunks} passages in {seconds:6.1f} s: "
                      f"{chunks / seconds:6.1f} passages/s ({report.timings.summary()})", flush=True)  # fmt: skip
        one, on_ray = statistics.median(runs["one process"]), statistics.median(runs["ray"])
        a, b = vectors_by_chunk(work / "one-process-0"), vectors_by_chunk(work / "ray-0")
        worst = max(1.0 - float(a[k] @ b[k]) for k in a)
        ray_seconds = chunks / on_ray
        print(f"\n{'path':12s} {'passages/s':>10s}\n{'one process':12s} {one:10.1f}\n{'ray':12s} {on_ray:10.1f}")
        print(f"Ray overhead: {(one / on_ray - 1) * 100:+.1f}% of the one-process time (target <= 15%)")
        print(f"Ray run: {statistics.median(waited):.1f} s of {ray_seconds:.1f} s waiting for the cluster; "
              f"same {len(a)} passages: {a.keys() == b.keys()}; "
              f"largest 1 - cosine between the two indexes: {worst:.1e}")
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
