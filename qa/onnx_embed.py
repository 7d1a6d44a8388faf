"""Faster CPU paths for the default model: ONNX Runtime, fp32 and int8.

:func:`export_onnx` exports the rebuilt multilingual-e5-small (transformer,
mean pooling and L2 normalisation in one graph) to ONNX, and writes the
quantised copies that are asked for next to it, into the model directory's
``onnx/`` folder, on first use. :class:`OnnxEmbedder` runs them with the
model's own tokenizer (``tokenizer.json``) and the E5 prompts, in batches
sized by tokens.

The paths (:data:`VARIANTS`, one backend name each):

``onnx``
    fp32: the same vectors as sentence-transformers (to float rounding),
    recorded under the same model id.
``onnx-int8-mixed``
    passages through a copy whose attention (q, k, v, output) and first
    feed-forward layer are int8 with one scale per output channel (dynamic
    quantisation: activations are quantised per batch as they come); the
    second feed-forward layer, whose input after GELU has the outliers that
    cost most of int8's error, stays fp32. Questions go through the fp32
    graph. Passage vectors have cosine >= 0.998 to fp32's; measured speed and
    Recall@1 are in ``eval/README.md`` (embedding).
``onnx-int8-pc``
    like ``onnx-int8-mixed`` with every linear layer in int8: faster, and
    further from fp32 (cosine ~0.995); an option with its cost printed by
    ``eval/bench_embed.py``.
``onnx-int8``
    the first int8 path, kept so the indexes built with it still load:
    every MatMul and the embedding tables quantised with one scale per
    tensor, questions in int8 too (cosine ~0.98, about 1 point of Recall@1).

Every int8 path records its own model id (the fp32 id plus ``+`` and its
name): an index never mixes its vectors with another path's.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.default_model import DEFAULT_MODEL_ID, PASSAGE_PROMPT, QUERY_PROMPT
from qa.embed import Embedder, normalize_rows
from qa.errors import ModelNotAvailable
from qa.fileio import replace_atomically

OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
INT8_MODEL_ID = DEFAULT_MODEL_ID + "+onnx-int8"

#: Padded tokens per model run (rows x the longest row). Measured on 2 cores
#: (int8-mixed on 800 corpus chunks): 512
#: ran 4% faster than 256 on idle cores, and under a heavy load a few hundred
#: tokens (a layer's activations within a core's 1 MB L2 cache) ran ~1.2-1.5x
#: faster than 32 rows of ~80 tokens.
BATCH_TOKENS = 512
#: At most this many texts per run, however short.
BATCH_ROWS = 32

# The linear layers of the exported encoder, by the names torch.onnx gives
# their MatMul nodes ("/encoder/encoder/layer.3/intermediate/dense/MatMul"):
# q, k, v and the attention output; fc1 and fc2, the feed-forward pair (fc2
# reads fc1's output after GELU). Attention's own products are not among them.
_LINEAR_NODE = re.compile(r"/layer\.\d+/(.+)/MatMul$")
_LINEAR_KIND = {
    "attention/self/query": "qkv", "attention/self/key": "qkv", "attention/self/value": "qkv",
    "attention/output/dense": "o", "intermediate/dense": "fc1", "output/dense": "fc2",
}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One ONNX path of the default model."""

    backend: str  # the name load_embedder and --backend take
    file: str  # in the model's onnx/ folder
    model_id: str  # recorded in an index's manifest
    int8_layers: tuple[str, ...] = ()  # linear layers in int8: "qkv", "o", "fc1", "fc2"
    per_channel: bool = False  # one weight scale per output channel (else per tensor)
    whole_model: bool = False  # quantize_dynamic's defaults: every MatMul and Gather, per tensor
    fp32_queries: bool = False  # questions through the fp32 graph


VARIANTS: dict[str, Variant] = {
    v.backend: v
    for v in (
        Variant("onnx", FP32_FILE, DEFAULT_MODEL_ID),
        Variant("onnx-int8-mixed", "model_int8_mixed.onnx", DEFAULT_MODEL_ID + "+onnx-int8-mixed",
                int8_layers=("qkv", "o", "fc1"), per_channel=True, fp32_queries=True),  # fmt: skip
        Variant("onnx-int8-pc", "model_int8_pc.onnx", DEFAULT_MODEL_ID + "+onnx-int8-pc",
                int8_layers=("qkv", "o", "fc1", "fc2"), per_channel=True, fp32_queries=True),  # fmt: skip
        Variant("onnx-int8", INT8_FILE, INT8_MODEL_ID, whole_model=True),
    )
}
#: Every ONNX backend name, for load_embedder and the command line.
ONNX_BACKENDS = tuple(VARIANTS)
#: The fastest path that meets the quality bar (XQuAD Recall@1 within 0.005
#: of fp32 both ways; measured -0.0008 zh→zh, +0.0050 en→zh): what ``qa index``
#: embeds a new index of the default model with on a CPU (eval/README.md).
CPU_INDEX_BACKEND = "onnx-int8-mixed"


def backend_for_model_id(model_id: str) -> str | None:
    """The ONNX backend an int8 model id (as an index records it) names; None for any other id."""
    for variant in VARIANTS.values():
        if variant.model_id == model_id and variant.model_id != DEFAULT_MODEL_ID:
            return variant.backend
    return None


def fp32_equivalent(model_id: str) -> str:
    """The fp32 model id whose scores ``model_id``'s stand for: the default model's for
    ``onnx-int8-mixed`` (passage vectors with cosine >= 0.998 to fp32's and fp32 questions,
    so what was fitted on fp32 scores, such as :mod:`qa.relevance`'s calibration,
    holds), else ``model_id`` itself."""
    return DEFAULT_MODEL_ID if model_id == VARIANTS[CPU_INDEX_BACKEND].model_id else model_id


def onnx_available() -> bool:
    """Whether ONNX Runtime can be imported here (the onnx extra)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- export


def export_onnx(model_dir: Path, backends: Sequence[str] = ("onnx", "onnx-int8"), *, quiet: bool = False) -> Path:
    """Export ``model_dir`` (a sentence-transformers directory whose root
    holds the transformers model) to ``model_dir/onnx`` in fp32, plus the
    quantised copy of each of ``backends``; returns that folder. Files
    already there are kept."""
    unknown = [b for b in backends if b not in VARIANTS]
    if unknown:
        raise ModelNotAvailable(f"unknown ONNX backend {unknown[0]!r}: use one of {', '.join(ONNX_BACKENDS)}")
    onnx_dir = Path(model_dir) / "onnx"
    wanted = [FP32_FILE] + [VARIANTS[b].file for b in backends]
    if all((onnx_dir / f).is_file() for f in wanted):
        return onnx_dir
    onnx_dir.mkdir(exist_ok=True)
    started = time.perf_counter()
    if not quiet:
        print(f"qa: exporting the default model to ONNX ({', '.join(dict.fromkeys(['onnx', *backends]))}) "
              f"into {onnx_dir}...", file=sys.stderr, flush=True)  # fmt: skip

    with warnings.catch_warnings():
        # the tracer's notes on shape-dependent Python branches (constant for
        # an encoder fed an attention mask) and onnxruntime's hint to
        # pre-process before quantising are not actionable here
        warnings.simplefilter("ignore")
        previous = logging.root.level
        logging.root.setLevel(logging.ERROR)
        try:
            fp32 = onnx_dir / FP32_FILE
            if not fp32.is_file():
                replace_atomically(fp32, lambda path: _export_fp32(Path(model_dir), path))
            for backend in backends:
                variant = VARIANTS[backend]
                target = onnx_dir / variant.file
                if not target.is_file():
                    replace_atomically(target, lambda path, v=variant: quantize(fp32, path, v))
        finally:
            logging.root.setLevel(previous)
    if not quiet:
        print(f"qa: ONNX export done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return onnx_dir


def _export_fp32(model_dir: Path, path: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    class Pooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    progress_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        encoder = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    finally:
        if progress_was_on:
            hf_logging.enable_progress_bar()
    ids = torch.tensor([[0, 1000, 2000, 2], [0, 3000, 2, 1]], dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            Pooled(encoder),
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                          "attention_mask": {0: "batch", 1: "seq"},
                          "sentence_embedding": {0: "batch"}},  # fmt: skip
            opset_version=OPSET,
            dynamo=False,
        )


def linear_layers(model) -> dict[str, list[str]]:
    """The MatMul nodes of the encoder's linear layers in an ONNX ``model``, by kind
    ("qkv", "o", "fc1", "fc2")."""
    groups: dict[str, list[str]] = {"qkv": [], "o": [], "fc1": [], "fc2": []}
    for node in model.graph.node:
        match = _LINEAR_NODE.search(node.name) if node.op_type == "MatMul" else None
        kind = _LINEAR_KIND.get(match.group(1)) if match else None
        if kind:
            groups[kind].append(node.name)
    return groups


def quantize(fp32: Path, target: Path, variant: Variant) -> None:
    """Write ``variant``'s int8 copy of the fp32 graph ``fp32`` to ``target``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if variant.whole_model:
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8)
        return
    groups = linear_layers(onnx.load(str(fp32), load_external_data=False))
    layers = len(groups["fc1"])
    if layers == 0 or any(len(groups[k]) != n * layers for k, n in (("qkv", 3), ("o", 1), ("fc2", 1))):
        raise ModelNotAvailable(
            f"{fp32}: the encoder's linear layers were not found by name "
            f"({ {k: len(v) for k, v in groups.items()} }); delete the onnx/ folder and run `qa model --onnx`"
        )
    nodes = [name for kind in variant.int8_layers for name in groups[kind]]
    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                     nodes_to_quantize=nodes, per_channel=variant.per_channel)  # fmt: skip


# ---------------------------------------------------------------- batches


def plan_batches(lengths: Sequence[int], max_tokens: int = BATCH_TOKENS, max_rows: int = BATCH_ROWS) -> list[np.ndarray]:
    """Indexes of ``lengths`` (token counts) cut into model runs, longest first.

    Each run holds texts of similar length, as many as fit in ``max_tokens``
    padded tokens (rows x the run's longest) and at most ``max_rows``; a text
    longer than the budget runs alone. Every index appears in exactly one run.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = max(1, int(lengths[order[start]]))
        rows = max(1, min(max_rows, max_tokens // width))
        batches.append(order[start : start + rows])
        start += rows
    return batches


# ---------------------------------------------------------------- embedder


class OnnxEmbedder(Embedder):
    """The default model under ONNX Runtime on the CPU.

    Texts are tokenised with the model's ``tokenizer.json`` (prompt
    prepended), sorted by token length, cut into runs of at most
    ``batch_tokens`` padded tokens and ``batch_size`` texts
    (:func:`plan_batches`), and put back in input order. Passages run
    through ``onnx_file``, questions through ``query_file`` (the same file
    unless given); each session is created on first use, so a build loads
    only the passage graph and a server only the question graph. The
    passage session's idle threads spin between runs (ONNX Runtime's
    default: ~9% faster on 2 idle cores), the question session's sleep (a
    server shares its cores with searches). Safe to
    call from many threads at once: an ONNX Runtime session may run
    concurrently, and the tokenizer's settings are fixed once here.
    """

    backend = "onnx"

    def __init__(self, onnx_file: Path, tokenizer_file: Path, *, model_id: str, dimension: int,
                 max_tokens: int = 512, batch_size: int = BATCH_ROWS, batch_tokens: int = BATCH_TOKENS,
                 threads: int | None = None, query_file: Path | None = None):  # fmt: skip
        from tokenizers import Tokenizer

        self._files = {"passage": Path(onnx_file), "query": Path(query_file or onnx_file)}
        for path in self._files.values():
            if not path.is_file():
                raise ModelNotAvailable(f"ONNX model file {path} is missing: run `qa model --onnx`")
        self._threads = threads
        self._sessions: dict[str, object] = {}  # by role
        self._session_lock = threading.Lock()  # taken only to create a session
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self.model = model_id
        self.dimension = dimension
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens

    @classmethod
    def for_default_model(cls, model_dir: Path, *, backend: str = "onnx", quantized: bool = False,
                          **kwargs) -> "OnnxEmbedder":  # fmt: skip
        """The default model through ``backend`` (one of :data:`ONNX_BACKENDS`;
        ``quantized=True`` is the older spelling of ``backend="onnx-int8"``)."""
        variant = VARIANTS.get("onnx-int8" if quantized else backend)
        if variant is None:
            raise ModelNotAvailable(f"unknown ONNX backend {backend!r}: use one of {', '.join(ONNX_BACKENDS)}")
        onnx_dir = export_onnx(Path(model_dir), (variant.backend,))
        config = json.loads((Path(model_dir) / "config.json").read_text())
        return cls(
            onnx_dir / variant.file,
            Path(model_dir) / "tokenizer.json",
            model_id=variant.model_id,
            dimension=int(config["hidden_size"]),
            max_tokens=int(config["max_position_embeddings"]) - 2,
            query_file=onnx_dir / (FP32_FILE if variant.fp32_queries else variant.file),
            **kwargs,
        )

    def _session(self, role: str):
        session = self._sessions.get(role)
        if session is None:
            with self._session_lock:
                session = self._sessions.get(role)
                if session is None:
                    session = self._sessions[role] = self._open(self._files[role], spinning=role == "passage")
        return session

    def _open(self, path: Path, *, spinning: bool):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self._threads:
            options.intra_op_num_threads = self._threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:  # idle pool threads sleep: a server shares its cores with searches
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _encode(self, texts: Sequence[str], role: str, progress: bool) -> np.ndarray:
        from tqdm import tqdm

        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        session = self._session(role)
        prompt = QUERY_PROMPT if role == "query" else PASSAGE_PROMPT
        encodings = [e.ids for e in self._tokenizer.encode_batch([prompt + t for t in texts])]
        batches = plan_batches([len(e) for e in encodings], self.batch_tokens, self.batch_size)
        for batch in tqdm(batches, desc="Batches", disable=not progress):
            width = len(encodings[batch[0]])  # the longest: batches run longest first
            ids = np.ones((len(batch), width), dtype=np.int64)  # <pad> = 1
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i])
                ids[row, :n] = encodings[i]
                mask[row, :n] = 1
            (vectors,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[batch] = vectors
        return normalize_rows(out)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query", progress=False)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, "passage", progress=progress)
