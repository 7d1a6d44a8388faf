"""A model's inputs straight from its Rust tokenizer, for sentence-transformers models.

sentence-transformers' ``preprocess`` tokenises through transformers' Python
wrapper. That wrapper pads every text of a call to the call's longest and turns
each row into Python lists while it holds the GIL. On an H100 machine's 16 cores
it ran at ~3,900 passages/s, while the default model alone ran at ~29,000: the
tokenizer, not the GPU, set the pace of indexing.

The `tokenizers` library underneath encodes a batch on every core with the GIL
released. :class:`FastTokens` asks it directly (no padding, truncated at the
model's limit) and pads with numpy. A call that another thread tokenises then
truly runs beside the model.

It is used for a model only where it gives exactly what ``preprocess`` gives.
:meth:`FastTokens.for_model` compares the two on probe texts, for every prompt
the embedder uses: long texts cut at the model's limit, whitespace, CJK, emoji,
case and full-width forms. On any difference it returns None, and that model
keeps the sentence-transformers path. The features are the same, so the vectors
are the same.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PROBES = (
    "The Ministry of Finance said on Tuesday that it would cut taxes.",
    "国务院新闻办公室今天举行发布会，介绍2020年前三季度经济运行情况。",
    "  leading and trailing spaces  ",
    "line one\nline two\ttabbed",
    "ＦＵＬＬ－ＷＩＤＴＨ，全角标点！ MiXeD CaSe Ünïcödé",
    "emoji 👍🏽 and symbols ©®™ №5",
    "x",
    "",
    "   \n\n",
    "Ⅻ ﬁ ｶﾀｶﾅ ㈱ " + "a" * 3000,  # compatibility forms; one long word
    "新闻 " * 700 + "the end is cut",  # longer than any model's limit: truncation
    "word " * 600,
)
"""Texts :meth:`FastTokens.for_model` checks the fast path on (besides the caller's own)."""

_PER_TEXT = {"input_ids": "ids", "attention_mask": None, "token_type_ids": "type_ids"}
"""The per-text features this path can build: from an encoding's attribute, or (None) the mask."""


class FastTokens:
    """Tokenises texts like a sentence-transformers model's ``preprocess``, on every core.

    Build it with :meth:`for_model`, which checks it against the model. The
    tokenizer is a private copy, set up once, so threads may share it.
    """

    def __init__(self, tokenizer: Any, pad_id: int, keys: Sequence[str], extras: dict[str | None, dict]):
        self._tokenizer = tokenizer
        self._encode = getattr(tokenizer, "encode_batch_fast", None) or tokenizer.encode_batch
        self._pad_id = pad_id
        self._keys = tuple(keys)
        self._extras = extras  # prompt -> the call-wide features preprocess adds (modality, prompt length)

    @classmethod
    def for_model(cls, st: Any, prompts: Iterable[str | None] = (None,),
                  probes: Sequence[str] = ()) -> FastTokens | None:  # fmt: skip
        """The fast path for the SentenceTransformer ``st``, or None where it would not give
        exactly what ``st.preprocess`` gives for ``prompts`` on :data:`PROBES` (and ``probes``)."""
        import torch

        hf = getattr(st, "tokenizer", None)
        backend = getattr(hf, "backend_tokenizer", None)
        pad_id = getattr(hf, "pad_token_id", None)
        limit = int(getattr(st, "max_seq_length", 0) or 0)
        if backend is None or pad_id is None or limit <= 0 or getattr(hf, "padding_side", "right") != "right":
            return None
        tokenizer = copy.deepcopy(backend)
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=limit)
        texts = [*PROBES, *probes]
        extras: dict[str | None, dict] = {}
        fast = None
        for prompt in dict.fromkeys(prompts):
            try:
                reference = st.preprocess(texts, prompt=prompt)
            except Exception:  # noqa: BLE001 - a model preprocess cannot run on plain texts: not ours to speed up
                return None
            tensors = {k: v for k, v in reference.items() if isinstance(v, torch.Tensor)}
            if not tensors or any(k not in _PER_TEXT for k in tensors):
                return None
            fast = fast or cls(tokenizer, int(pad_id), tuple(tensors), extras)
            if tuple(tensors) != fast._keys:
                return None
            extras[prompt] = {k: v for k, v in reference.items() if k not in tensors}
            ours = fast.features(texts, prompt)
            if any(not torch.equal(ours[k], v) for k, v in tensors.items()):
                return None
        return fast

    def features(self, texts: Sequence[str], prompt: str | None = None) -> dict | None:
        """The model's features for ``texts`` with ``prompt`` prepended, padded to the longest
        text; None for a prompt :meth:`for_model` did not check."""
        import torch

        if prompt not in self._extras:
            return None
        encodings = self._encode([prompt + text for text in texts] if prompt else list(texts))
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        width = int(lengths.max()) if len(encodings) else 0
        features: dict = {}
        for key in self._keys:
            attribute = _PER_TEXT[key]
            if attribute is None:
                features[key] = torch.from_numpy((np.arange(width)[None, :] < lengths[:, None]).astype(np.int64))
                continue
            array = np.full((len(encodings), width), self._pad_id if key == "input_ids" else 0, dtype=np.int64)
            for row, encoding in enumerate(encodings):
                array[row, : lengths[row]] = getattr(encoding, attribute)
            features[key] = torch.from_numpy(array)
        features.update(self._extras[prompt])
        return features
