"""A faster CPU path for the default model: ONNX Runtime.

:func:`export_onnx` exports the rebuilt multilingual-e5-small (transformer,
mean pooling and L2 normalisation in one graph) to ONNX, and a dynamically
quantised int8 copy next to it (``onnxruntime.quantization``), into the
model directory's ``onnx/`` folder, on first use. :class:`OnnxEmbedder` runs
it with the model's own tokenizer (``tokenizer.json``) and the E5 prompts.

fp32 gives the same vectors as sentence-transformers (to float rounding) and
records the same model id; int8 vectors differ slightly (cosine about 0.98
to fp32), so an index built with int8 records :data:`INT8_MODEL_ID` and is
not mixed with fp32 vectors.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qa.default_model import DEFAULT_MODEL_ID, PASSAGE_PROMPT, QUERY_PROMPT
from qa.embed import Embedder, normalize_rows
from qa.errors import ModelNotAvailable
from qa.fileio import replace_atomically

INT8_MODEL_ID = DEFAULT_MODEL_ID + "+onnx-int8"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
OPSET = 17


def export_onnx(model_dir: Path, *, quiet: bool = False) -> Path:
    """Export ``model_dir`` (a sentence-transformers directory whose root
    holds the transformers model) to ``model_dir/onnx``; returns that folder.
    Files already there are kept."""
    onnx_dir = Path(model_dir) / "onnx"
    fp32, int8 = onnx_dir / FP32_FILE, onnx_dir / INT8_FILE
    if fp32.is_file() and int8.is_file():
        return onnx_dir
    onnx_dir.mkdir(exist_ok=True)
    started = time.perf_counter()
    if not quiet:
        print(f"qa: exporting the default model to ONNX (fp32 and int8) into {onnx_dir}...",
              file=sys.stderr, flush=True)  # fmt: skip

    with warnings.catch_warnings():
        # the tracer's notes on shape-dependent Python branches (constant for
        # an encoder fed an attention mask) and onnxruntime's hint to
        # pre-process before quantising are not actionable here
        warnings.simplefilter("ignore")
        previous = logging.root.level
        logging.root.setLevel(logging.ERROR)
        try:
            _export(model_dir, fp32, int8)
        finally:
            logging.root.setLevel(previous)
    if not quiet:
        print(f"qa: ONNX export done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return onnx_dir


def _export(model_dir: Path, fp32: Path, int8: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    if not fp32.is_file():

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

        def write_fp32(path: Path) -> None:
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

        replace_atomically(fp32, write_fp32)
        del encoder

    if not int8.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        def write_int8(path: Path) -> None:
            quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)

        replace_atomically(int8, write_int8)


class OnnxEmbedder(Embedder):
    """The default model under ONNX Runtime on the CPU.

    Texts are tokenised with the model's ``tokenizer.json`` (prompt
    prepended), sorted by token length, cut into batches of ``batch_size``,
    padded per batch, and put back in input order. Safe to call from many
    threads at once, without a lock: an ONNX Runtime session may run
    concurrently, and the tokenizer's settings are fixed once here and never
    changed by a call.
    """

    backend = "onnx"

    def __init__(self, onnx_file: Path, tokenizer_file: Path, *, model_id: str, dimension: int,
                 max_tokens: int = 512, batch_size: int = 32, threads: int | None = None):  # fmt: skip
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if not Path(onnx_file).is_file():
            raise ModelNotAvailable(f"ONNX model file {onnx_file} is missing: run `qa model`")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle pool threads sleep instead of spinning: a server shares its cores with searches
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self.model = model_id
        self.dimension = dimension
        self.batch_size = batch_size

    @classmethod
    def for_default_model(cls, model_dir: Path, *, quantized: bool = False, **kwargs) -> "OnnxEmbedder":
        onnx_dir = export_onnx(Path(model_dir))
        config = json.loads((Path(model_dir) / "config.json").read_text())
        return cls(
            onnx_dir / (INT8_FILE if quantized else FP32_FILE),
            Path(model_dir) / "tokenizer.json",
            model_id=INT8_MODEL_ID if quantized else DEFAULT_MODEL_ID,
            dimension=int(config["hidden_size"]),
            max_tokens=int(config["max_position_embeddings"]) - 2,
            **kwargs,
        )

    def _encode(self, texts: Sequence[str], prompt: str, progress: bool) -> np.ndarray:
        from tqdm import tqdm

        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch([prompt + t for t in texts])
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="Batches", disable=not progress):
            batch = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.ones((len(batch), width), dtype=np.int64)  # <pad> = 1
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            out[batch] = vectors
        return normalize_rows(out)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, QUERY_PROMPT, progress=False)

    def embed_passages(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        return self._encode(texts, PASSAGE_PROMPT, progress=progress)
