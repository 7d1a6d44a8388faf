"""Embedding models behind one small interface.

An :class:`Embedder` turns questions and passages into L2-normalised float32
vectors. Real models run through sentence-transformers (any model name or
local path); :class:`HashEmbedder` is a fake, deterministic one for testing
plumbing only.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


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
