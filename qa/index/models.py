"""The model an index was built with, loaded only when something must be embedded.

An open index holds a :class:`LazyEmbedder`: it knows the model's name and
dimension from the catalog and loads the model on the first dense query, so
lexical-only use never imports torch or reads model weights. For the default
model, queries run on ONNX Runtime when it is installed (the fp32 export:
the same vectors, ~3x faster per query than PyTorch on a CPU), and questions
asked at the same time by several threads are embedded in one batch
(:class:`qa.embed.BatchingEmbedder`); passages are embedded with whatever
the update was given.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from qa.embed import Embedder
from qa.errors import IndexMismatch, ModelNotAvailable

log = logging.getLogger(__name__)


class LazyEmbedder(Embedder):
    """Stands for a model, known by name and dimension, until it must embed."""

    def __init__(self, model: str, backend: str, dimension: int, load: Callable[[], Embedder]):
        self.model, self.backend, self.dimension = model, backend, dimension
        self._load = load
        self._inner: Embedder | None = None
        self._lock = threading.Lock()  # taken only while loading, never around embedding

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def embedder(self) -> Embedder:
        inner = self._inner
        if inner is None:
            with self._lock:
                if self._inner is None:
                    loaded = self._load()
                    if (loaded.model, loaded.dimension) != (self.model, self.dimension):
                        raise IndexMismatch(
                            f"loading {self.model!r} gave {loaded.model!r} ({loaded.dimension} dimensions)"
                        )
                    self._inner = loaded
                inner = self._inner
        return inner

    @property
    def passages_per_call(self) -> int | None:  # the model's own (asked only when passages are embedded)
        return self.embedder().passages_per_call

    @property
    def calls_in_flight(self) -> int:  # the model's own once loaded; asking does not load it
        inner = self._inner
        return inner.calls_in_flight if inner is not None else 1

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder().embed_queries(texts)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self.embedder().embed_passages(texts, progress=progress)


def _fast_query_backend(model: str) -> str:
    """"onnx" for the default model when ONNX Runtime is installed, else "auto"."""
    from qa.default_model import DEFAULT_MODEL_ID

    if model != DEFAULT_MODEL_ID:
        return "auto"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "auto"
    return "onnx"


def embedder_for(embedding: dict, device: str = "cpu", *, queries: bool = False,
                 cache_dir: Path | None = None) -> LazyEmbedder:  # fmt: skip
    """A lazy embedder for the model an index records (``{"model", "backend", "dimension"}``).

    ``queries``: it will embed questions only, so the fastest CPU path giving
    the same vectors is taken (ONNX for the default model), falling back to
    sentence-transformers if that path cannot load.
    """
    model, backend = embedding["model"], embedding["backend"]
    wanted = backend if backend in ("onnx", "hash") else "auto"
    if queries and device == "cpu" and wanted == "auto":
        wanted = _fast_query_backend(model)

    def load_model() -> Embedder:
        from qa.loader import load_embedder  # real models: heavy imports, only now

        if wanted == "onnx" and backend != "onnx":
            try:
                return load_embedder(model, device=device, backend="onnx", cache_dir=cache_dir)
            except (ModelNotAvailable, ImportError, OSError, RuntimeError) as exc:
                log.warning("ONNX query path unavailable (%s): using sentence-transformers", exc)
                return load_embedder(model, device=device, backend="auto", cache_dir=cache_dir)
        return load_embedder(model, device=device, backend=wanted, cache_dir=cache_dir)

    def load() -> Embedder:
        from qa.embed import BatchingEmbedder, HashEmbedder

        loaded = load_model()
        if queries and not isinstance(loaded, HashEmbedder):
            return BatchingEmbedder(loaded)  # concurrent questions share model runs
        return loaded

    return LazyEmbedder(model, backend, int(embedding["dimension"]), load)
