"""The ONNX Runtime path of the default model against sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.default_model import DEFAULT_MODEL_ID
from qa.loader import load_embedder

pytest.importorskip("onnxruntime")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "articles"


@pytest.fixture(scope="module")
def texts() -> list[str]:
    from qa.chunk import chunk_article
    from qa.ingest import read_file

    chunks = [c.text for p in sorted(EXAMPLES.iterdir()) if p.is_file() for c in chunk_article(read_file(p, EXAMPLES))]
    return chunks + ["短", "x", "A longer English sentence about heat pumps and the port of Rotterdam. " * 4]


@pytest.fixture(scope="module")
def st():
    return load_embedder(None)


@pytest.fixture(scope="module")
def onnx_fp32():
    return load_embedder(None, backend="onnx")


@pytest.fixture(scope="module")
def onnx_int8():
    return load_embedder(None, backend="onnx-int8")


QUESTIONS = ["2020年破获了多少电信网络诈骗案件？", "What share of telecom fraud is committed from abroad?"]


def test_fp32_equals_sentence_transformers(st, onnx_fp32, texts):
    assert onnx_fp32.backend == "onnx" and onnx_fp32.model == DEFAULT_MODEL_ID and onnx_fp32.dimension == 384
    a, b = st.embed_passages(texts), onnx_fp32.embed_passages(texts, progress=True)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert (a * b).sum(axis=1).min() >= 0.9999
    q = (st.embed_queries(QUESTIONS) * onnx_fp32.embed_queries(QUESTIONS)).sum(axis=1)
    assert q.min() >= 0.9999


def test_int8_is_close_and_recorded_as_its_own_model(st, onnx_int8, texts):
    assert onnx_int8.model == DEFAULT_MODEL_ID + "+onnx-int8"
    assert load_embedder(onnx_int8.model).model == onnx_int8.model  # the manifest's id loads it back
    a, b = st.embed_passages(texts), onnx_int8.embed_passages(texts)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() >= 0.98
    assert (st.embed_queries(QUESTIONS) * onnx_int8.embed_queries(QUESTIONS)).sum(axis=1).min() >= 0.98


def test_batches_keep_input_order(onnx_fp32, texts):
    from qa.default_model import default_model_dir
    from qa.onnx_embed import OnnxEmbedder

    small = OnnxEmbedder.for_default_model(default_model_dir(), batch_size=2)
    together = small.embed_passages(texts)
    alone = np.stack([onnx_fp32.embed_passages([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    assert small.embed_queries([]).shape == (0, 384)


def test_onnx_is_for_the_default_model_only():
    from qa.errors import ModelNotAvailable

    with pytest.raises(ModelNotAvailable, match="default model only"):
        load_embedder("/some/other/model", backend="onnx")
