"""Indexing on a Ray cluster: files read, parsed, chunked and embedded by Ray Data; the index written here.

:func:`index_on_ray` is what ``qa index FOLDER... --ray [ADDRESS]`` runs. It
is :func:`qa.index.sync_folders`, the very run ``qa index`` makes, with the
expensive part handed to the cluster:

1. the files whose size or time changed since the last run (the others are
   not read at all, as in a local run) become a Ray dataset of paths;
   ``map_batches`` reads, hashes, parses, chunks and BM25-tokenises them
   (:func:`qa.index.sync.load_files`, what a local run's readers do) and a
   pool of actors embeds the chunks, each actor loading the model once
   (``num_gpus=1`` per actor on a cluster with GPUs, ``--device cuda``);
2. the results stream back, in the files' order, to this process: the one
   :class:`~qa.index.Writer` places each article exactly as a local run
   would (duplicates, changed and removed files) and commits in steps, so an
   interrupted run keeps what it committed. The vectors reach the writer
   through its model: :class:`ClusterVectors` answers the writer's
   ``embed_passages`` with the vectors the cluster computed, found by the
   hash of the text, and embeds here only what the cluster did not (the rare
   duplicate file that takes over a removed article's place).

The index is the one a local run writes: the same chunks, citations and
search results, vectors within float rounding (tests/test_cluster.py).
Every node needs qa installed (the same version), the article files at the
same paths (a shared file system) and the model at the same place; this
process needs the model too (for the model's name and dimension, and for
what it embeds itself). Nothing outside this module imports Ray: a run
without ``--ray`` never does. Records cross the cluster as JSON text and
float32 bytes, never as pickled objects of ours.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qa.embed import Embedder
from qa.errors import ModelNotAvailable, QAError, ReadError
from qa.index.catalog import text_hash
from qa.index.sync import Loaded, load_files, sync_folders
from qa.index.writer import STEP_CHUNKS, Timings, UpdateReport, prepare
from qa.ingest import MAX_FILE_BYTES, FileEntry
from qa.records import Article, ReadReport

INSTALL = 'pip install -e ".[cluster]"  (Ray Data, on this machine and on every node)'
FILES_PER_BATCH = 16
"""Files per call of a CPU actor: ~170 chunks, a few seconds of embedding on one core, small
enough that two actors share a 300-file folder evenly."""
GPU_FILES_PER_BATCH = 256
"""Files per call of a GPU actor: ~2,700 chunks, several full batches of 64k tokens per call."""


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class ClusterPlan:
    """How the work is spread: a pool of ``actors`` embedding actors, each holding one model,
    with ``cpus_per_actor`` cores (its torch threads) and ``gpus_per_actor`` GPUs. ``split``:
    files are read and parsed by separate Ray tasks (``read_cpus`` each) feeding the actors
    (GPU actors must never wait on parsing); else each actor reads its own files (on CPUs
    embedding is ~95% of the work, and one stage moves no data between stages)."""

    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    split: bool
    read_cpus: float
    files_per_batch: int


def plan_for(resources: dict, device: str = "cpu", *, cpus_per_actor: int = 1) -> ClusterPlan:
    """The plan for a cluster with ``resources`` (``ray.cluster_resources()``: {"CPU": 32, "GPU": 4, ...}).

    ``device`` "cpu": one actor per ``cpus_per_actor`` cores of the cluster (with one thread each,
    torch uses the cores best; each actor holds a copy of the model: ~0.6 GB for the default
    one). "cuda": one actor per GPU, the files read by tasks on the other cores. Raises
    ModelNotAvailable when the cluster has no GPU for "cuda".
    """
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if device.startswith("cuda"):
        if gpus < 1:
            raise ModelNotAvailable(
                f"device {device!r} was asked for but the Ray cluster has no GPU ({cpus} CPUs): "
                "use --device cpu, or start the nodes with GPUs (ray start ... --num-gpus N)"
            )
        return ClusterPlan(actors=gpus, cpus_per_actor=1, gpus_per_actor=1, split=True, read_cpus=1,
                           files_per_batch=GPU_FILES_PER_BATCH)  # fmt: skip
    if device != "cpu":
        raise ModelNotAvailable(f"unknown device {device!r}: use cpu or cuda")
    if cpus < 1:
        raise QAError("the Ray cluster has no CPU to run on")
    per = max(1, min(int(cpus_per_actor), cpus))
    return ClusterPlan(actors=max(1, cpus // per), cpus_per_actor=per, gpus_per_actor=0, split=False,
                       read_cpus=0, files_per_batch=FILES_PER_BATCH)  # fmt: skip


# ------------------------------------------------------- vectors to the writer


class ClusterVectors(Embedder):
    """The model as the index writer sees it during a cluster run.

    :meth:`offer` hands it the vectors the cluster computed for a file's
    chunks, just before the file is given to the writer; when the writer
    commits a step it asks :meth:`embed_passages` for the texts it does not
    have (not in the index yet, not left by a killed run) and gets those
    vectors, found by text hash. A text the cluster did not embed is embedded
    here by ``local``. Memory stays bounded: a commit asks for the vectors of
    everything given to the writer before it, so the first offer after a
    commit drops what was offered before (the vectors of chunks the index
    already had, or of files that turned out to be duplicates).
    """

    def __init__(self, local: Embedder):
        self.local = local
        self.model, self.backend, self.dimension = local.model, local.backend, local.dimension
        self._vectors: dict[str, np.ndarray] = {}
        self._asked = False
        self.from_cluster = 0  # passages the writer got from the cluster
        self.embedded_here = 0  # passages embedded by ``local``

    def offer(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        if self._asked:
            self._vectors.clear()
            self._asked = False
        self._vectors.update(zip(hashes, vectors))

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self._asked = True
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            vector = self._vectors.pop(text_hash(text), None)
            if vector is None:
                missing.append(i)
            else:
                out[i] = vector
        if missing:
            out[missing] = self.local.embed_passages([texts[i] for i in missing])
        self.from_cluster += len(texts) - len(missing)
        self.embedded_here += len(missing)
        return out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.local.embed_queries(texts)


# --------------------------------------------------- what runs on the cluster


def _article_json(article: Article) -> str:
    from dataclasses import asdict

    return json.dumps(asdict(article), ensure_ascii=False)


def _article_from_json(text: str) -> Article:
    fields = json.loads(text)
    return Article(**{**fields, "tags": tuple(fields["tags"]), "paragraphs": tuple(fields["paragraphs"])})


def read_files(batch: dict[str, np.ndarray], max_bytes: int = MAX_FILE_BYTES) -> dict[str, np.ndarray]:
    """A Ray Data batch of changed files (path, root, rel, size, mtime_ns, old: the SHA-256 of
    the last run or "") read, hashed, parsed, chunked and tokenised for BM25: adds sha256 (""
    when unreadable), article (JSON, or ""), error (JSON [path, reason, detail], or ""), texts
    (JSON list of the chunks' embed texts) and tokens (JSON list of each chunk's BM25 tokens),
    so that the writer's process does none of that work."""
    files = [(FileEntry(path=Path(path), root=Path(root), rel=str(rel), size=int(size), mtime_ns=int(mtime_ns)),
              str(old) or None)
             for path, root, rel, size, mtime_ns, old in zip(batch["path"], batch["root"], batch["rel"],
                                                             batch["size"], batch["mtime_ns"], batch["old"])]  # fmt: skip
    sha256, articles, errors, texts, tokens = [], [], [], [], []
    for loaded in load_files(files, max_bytes)[0]:  # what a reader of sync_folders does
        sha256.append(loaded.sha256 or "")
        articles.append(_article_json(loaded.article) if loaded.article is not None else "")
        errors.append(json.dumps([loaded.error.path, loaded.error.reason, loaded.error.detail], ensure_ascii=False)
                      if loaded.error is not None else "")  # fmt: skip
        prepared = loaded.prepared
        texts.append(json.dumps([c.embed_text for c in prepared.chunks] if prepared else [], ensure_ascii=False))
        tokens.append(json.dumps(prepared.tokens if prepared else [], ensure_ascii=False))
    out = dict(batch)
    out.update(sha256=np.array(sha256, dtype=object), article=np.array(articles, dtype=object),
               error=np.array(errors, dtype=object), texts=np.array(texts, dtype=object),
               tokens=np.array(tokens, dtype=object))  # fmt: skip
    return out


class EmbedActor:
    """A Ray Data actor: loads the model once, then embeds each batch's chunk texts in one call
    (length-sorted token batches inside), adding hashes (JSON list of text hashes) and vectors
    (float32 bytes, row after row) to each file's row and dropping the texts. ``read``: the actor
    reads its files first (:func:`read_files`)."""

    def __init__(self, model: str | None, device: str, backend: str, cache_dir: str | None, threads: int,
                 read: bool = False, max_bytes: int = MAX_FILE_BYTES):  # fmt: skip
        if device == "cpu":
            import torch

            torch.set_num_threads(max(1, int(threads)))
        from qa.loader import load_embedder

        self.embedder = load_embedder(model, device=device, backend=backend,
                                      cache_dir=Path(cache_dir) if cache_dir else None)  # fmt: skip
        self.read, self.max_bytes = read, max_bytes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.read:
            batch = read_files(batch, self.max_bytes)
        per_file = [json.loads(t) for t in batch["texts"]]
        flat = [t for texts in per_file for t in texts]
        vectors = self.embedder.embed_passages(flat) if flat else np.zeros((0, self.embedder.dimension))
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        hashes, blobs, start = [], [], 0
        for texts in per_file:
            hashes.append(json.dumps([text_hash(t) for t in texts]))
            blobs.append(vectors[start : start + len(texts)].tobytes())
            start += len(texts)
        out = {k: v for k, v in batch.items() if k != "texts"}
        out.update(hashes=np.array(hashes, dtype=object), vectors=np.array(blobs, dtype=object))
        return out


# ----------------------------------------------------------------- the driver


def require_ray():
    """The ``ray`` module (Ray Data imported); QAError with the install command where it is missing."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise QAError(f"--ray needs Ray Data, which is not installed: {INSTALL}") from None
    return ray


@dataclass
class _RayLoader:
    """The :data:`qa.index.sync.Loader` of a cluster run: the changed files go to Ray Data and
    come back, in order, as Loaded records, their vectors offered to ``vectors``."""

    vectors: ClusterVectors
    model: str | None
    device: str
    backend: str
    cache_dir: str | None
    address: str | None
    cpus_per_actor: int
    max_bytes: int
    progress: bool
    plan: ClusterPlan | None = None
    waited: float = 0.0  # seconds this process waited for the cluster's results
    prepare_seconds: float = 0.0  # seconds this process spent rebuilding the prepared articles
    started_ray: bool = False

    def connect(self):
        """Ray, connected (or started), and the plan for its resources."""
        ray = require_ray()
        if not ray.is_initialized():
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False,
                     include_dashboard=False)  # fmt: skip
            self.started_ray = True
        if self.plan is None:
            self.plan = plan_for(ray.cluster_resources(), self.device, cpus_per_actor=self.cpus_per_actor)
        return ray

    def __call__(self, changed: Iterable[tuple[FileEntry, str | None]]) -> Iterator[tuple[FileEntry, Loaded]]:
        files = list(changed)
        if not files:
            return
        ray = self.connect()
        context = ray.data.DataContext.get_current()
        saved = (context.execution_options.preserve_order, context.enable_progress_bars,
                 context.print_on_execution_start)  # fmt: skip
        context.execution_options.preserve_order = True  # results in the files' order: duplicates resolve as here
        context.enable_progress_bars = self.progress
        context.print_on_execution_start = False
        try:
            yield from self._run(ray, files)
        except ray.exceptions.RayError as exc:
            raise _cluster_error(exc) from None
        finally:
            (context.execution_options.preserve_order, context.enable_progress_bars,
             context.print_on_execution_start) = saved  # fmt: skip

    def _run(self, ray, files: list[tuple[FileEntry, str | None]]) -> Iterator[tuple[FileEntry, Loaded]]:
        plan = self.plan
        rows = [{"path": str(e.path), "root": str(e.root), "rel": e.rel, "size": e.size, "mtime_ns": e.mtime_ns,
                 "old": old or ""} for e, old in files]  # fmt: skip
        # a few files: smaller batches, so that every actor gets a share (four calls each at least)
        per_call = max(1, min(plan.files_per_batch, math.ceil(len(rows) / (4 * plan.actors))))
        read_batch = min(FILES_PER_BATCH, per_call) if plan.split else per_call
        dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / read_batch))
        model = dict(model=self.model, device=self.device, backend=self.backend, cache_dir=self.cache_dir,
                     threads=int(plan.cpus_per_actor))  # fmt: skip
        actors = dict(compute=ray.data.ActorPoolStrategy(size=max(1, min(plan.actors, len(rows)))),  # no idle model
                      num_cpus=plan.cpus_per_actor, num_gpus=plan.gpus_per_actor, batch_format="numpy",
                      batch_size=per_call)  # fmt: skip
        if plan.split:
            dataset = dataset.map_batches(read_files, fn_kwargs={"max_bytes": self.max_bytes}, batch_size=read_batch,
                                          batch_format="numpy", num_cpus=plan.read_cpus)  # fmt: skip
            dataset = dataset.map_batches(EmbedActor, fn_constructor_kwargs=model, **actors)
        else:
            dataset = dataset.map_batches(EmbedActor, fn_constructor_kwargs={**model, "read": True,
                                                                             "max_bytes": self.max_bytes}, **actors)
        position = 0
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        while True:
            started = time.perf_counter()
            batch = next(batches, None)
            self.waited += time.perf_counter() - started
            if batch is None:
                break
            for i in range(len(batch["path"])):
                entry, _old = files[position]
                position += 1
                if str(batch["path"][i]) != str(entry.path):
                    raise QAError(f"the Ray cluster returned {batch['path'][i]} where {entry.path} was expected")
                yield entry, self._loaded(batch, i)
        if position != len(files):
            raise QAError(f"the Ray cluster returned {position} of {len(files)} files")

    def _loaded(self, batch: dict[str, np.ndarray], i: int) -> Loaded:
        hashes = json.loads(batch["hashes"][i])
        if hashes:
            self.vectors.offer(hashes, np.frombuffer(batch["vectors"][i], dtype="<f4").reshape(len(hashes), -1))
        error = json.loads(batch["error"][i]) if batch["error"][i] else None
        article = _article_from_json(batch["article"][i]) if batch["article"][i] else None
        started = time.perf_counter()
        prepared = None
        if article is not None:  # chunked again here (cheap), tokenised there (not cheap)
            prepared = prepare(article, None, json.loads(batch["tokens"][i]))
        self.prepare_seconds += time.perf_counter() - started
        return Loaded(sha256=str(batch["sha256"][i]) or None, article=article,
                      error=ReadError(*error) if error else None, prepared=prepared)  # fmt: skip


def _cluster_error(exc: Exception) -> QAError:
    """A failure on the cluster as one line: the domain error a worker raised (a model it
    cannot load there), else the first line of Ray's message."""
    import re

    import qa.errors

    seen: BaseException | None = exc
    for _ in range(10):  # Ray wraps a worker's exception (a task's error carries it as its cause)
        if isinstance(seen, QAError) and not isinstance(seen, ReadError):
            return type(seen)(f"on a Ray worker: {seen}")
        seen = getattr(seen, "cause", None) or getattr(seen, "__cause__", None)
        if seen is None:
            break
    # an actor that failed to start carries only the text of the worker's traceback
    found = re.findall(r"^qa\.errors\.(\w+): (.+)$", str(exc), re.M)
    if found:
        name, message = found[-1]
        kind = getattr(qa.errors, name, QAError)
        if isinstance(kind, type) and issubclass(kind, QAError) and kind is not ReadError:
            return kind(f"on a Ray worker: {message}")
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return QAError(f"the Ray cluster failed: {first}")


def index_on_ray(
    path,
    folders: Iterable[str | Path],
    embedder: Embedder,
    report: ReadReport,
    *,
    address: str | None = None,
    device: str = "cpu",
    cache_dir: Path | None = None,
    cpus_per_actor: int = 1,
    plan: ClusterPlan | None = None,
    remove_missing: bool = True,
    follow_symlinks: bool = False,
    max_bytes: int = MAX_FILE_BYTES,
    progress: bool = True,
    ann: str | None = None,
    step_chunks: int = STEP_CHUNKS,
    merge: bool = True,
) -> UpdateReport:
    """Build or update the index at ``path`` from the files under ``folders``, on Ray (module docstring).

    ``embedder``: the model, as :func:`qa.index.sync_folders` takes it, here on the CPU (a
    :class:`~qa.index.models.LazyEmbedder` is loaded only if this process must embed); each
    actor loads the same model (``load_embedder(embedder.model, backend=embedder.backend)``)
    on ``device``, from ``cache_dir`` for the default model: "cuda" puts one actor on each GPU
    of the cluster. ``address``: the cluster (``ray.init(address)``: "auto", "HOST:6379",
    "ray://HOST:10001"); None: the Ray this process is connected to already, else a running
    one (``RAY_ADDRESS``, or ``ray start`` on this machine), else a local one started for the
    run and stopped after it. ``plan``: how the work is spread (default: :func:`plan_for` the
    cluster's resources, with ``cpus_per_actor``). The other options are
    :func:`qa.index.sync_folders`'s. The report's ``embed_seconds`` (and ``timings.embed``) is
    the time this process waited for the cluster's results.
    """
    require_ray()  # a missing extra is said before anything is read
    vectors = ClusterVectors(embedder)
    loader = _RayLoader(vectors, model=embedder.model, device=device, backend=embedder.backend,
                        cache_dir=str(cache_dir) if cache_dir else None, address=address,
                        cpus_per_actor=cpus_per_actor, max_bytes=max_bytes, progress=progress, plan=plan)  # fmt: skip
    try:
        if device != "cpu":
            loader.connect()  # a cluster without a GPU is refused before the index is touched
        result = sync_folders(path, folders, vectors, report, remove_missing=remove_missing,
                              follow_symlinks=follow_symlinks, max_bytes=max_bytes, progress=progress, ann=ann,
                              step_chunks=step_chunks, merge=merge, load=loader)  # fmt: skip
    finally:
        if loader.started_ray:
            import ray

            ray.shutdown()
    # reading, parsing and embedding ran on the cluster: here, the wait for it and the rest
    timings = replace(result.timings or Timings(), read=0.0, prepare=loader.prepare_seconds, embed=loader.waited)
    return replace(result, embed_seconds=loader.waited, timings=timings)
