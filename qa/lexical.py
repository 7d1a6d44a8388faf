"""Lexical retrieval: jieba + OpenCC tokenization and an in-memory BM25.

:func:`tokenize` turns any text (a chunk or a question) into search tokens:

1. NFKC (full-width Latin letters and digits become ASCII),
2. Traditional -> Simplified Chinese with OpenCC ``t2s`` (the corpus mixes both
   scripts; a Traditional question must find a Simplified paragraph),
3. lowercase,
4. jieba search-mode segmentation (``cut_for_search``: a long word also yields
   its shorter dictionary words, so 中华人民共和国 matches 共和国),
5. punctuation, whitespace, single Latin letters and stopwords dropped; English
   words kept whole with a light plural strip (Harman's "S" stemmer).

:class:`LexicalIndex` is BM25 over those tokens in memory, for the evaluation
scripts: the same postings and formula as the on-disk index
(:mod:`qa.index.bm25`), saved as plain ``.npy`` and JSON files.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from qa.errors import IndexCorrupt

# A small stopword list: function words and question words, which carry no
# topic. Everything here is compared after t2s + lowercase. Deliberately left
# out: "us" (U.S.), "it" (IT), numbers, and content-bearing single characters.
STOPWORDS_ZH = frozenset(
    """
    的 地 得 了 着 过 是 在 和 与 及 或 也 都 就 而 且 并 把 被 对 从 向 到 以 为 于 之 其 则
    这 那 这个 那个 这些 那些 这样 那样 此 该 一个 一些 有 没有 没 不 吗 呢 吧 啊 呀 么 嘛
    很 还 又 再 等 等等 将 会 能 可 可以 要 让 给 使 由 因 因为 所以 但 但是 如果 虽然 以及
    我 你 您 他 她 它 我们 你们 他们 她们 它们 自己 其中 之一
    什么 多少 哪些 哪个 哪里 哪儿 哪 如何 怎么 怎样 怎么样 为什么 为何 何 何时 何地 几 谁
    是否 是不是 有没有 请问 请 多久 多大 多长 什么样 啥
    """.split()
)
STOPWORDS_EN = frozenset(
    """
    a an the of to in on at for from by with about as into onto than then so if
    is are was were be been being am do does did done have has had having
    its this that these those and or but not no nor there their theirs they them
    he she his her hers him i you we our ours your yours me my mine
    can could would should will shall may might must
    what which who whom whose when where why how much many
    """.split()
)
STOPWORDS = STOPWORDS_ZH | STOPWORDS_EN


@functools.lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


_JIEBA_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _jieba_tokenizer():
    import jieba

    with _JIEBA_LOCK:
        jieba.setLogLevel(logging.WARNING)  # silences "Building prefix dict..." on stderr
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()  # loads the dictionary now, under the lock, not mid-query
    return tokenizer


def normalize(text: str) -> str:
    """NFKC, Traditional -> Simplified, lowercase: what both sides are matched on."""
    return _t2s().convert(unicodedata.normalize("NFKC", text)).lower()


def _is_word(token: str) -> bool:
    """True when the token holds at least one letter, digit or CJK character."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in token)


def _s_stem(word: str) -> str:
    """Harman's "S" stemmer: policies -> policy, vaccines -> vaccine, cases -> case."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def _clean_token(token: str) -> str | None:
    token = token.strip()
    if not token or not _is_word(token):
        return None
    if token.isascii() and token.isalpha():
        if len(token) == 1:
            return None  # "u" "s" from "U.S.", "e" from "e-mail": noise
        if token in STOPWORDS:
            return None
        return _s_stem(token)
    if token in STOPWORDS:
        return None
    return token


def tokenize(text: str) -> list[str]:
    """Search tokens of ``text``, in order (duplicates kept: they are term frequency)."""
    if not text:
        return []
    out: list[str] = []
    for raw in _jieba_tokenizer().cut_for_search(normalize(text)):
        token = _clean_token(raw)
        if token is not None:
            out.append(token)
    return out


_PARAMS_FILE = "lexical.json"
_VOCAB_FILE = "vocab.json"
_ARRAYS = ("doclen", "terms", "term_indptr", "post_docs", "post_tf")
_FORMAT = 2


class LexicalIndex:
    """BM25 over token lists, in memory (evaluation scripts and experiments).

    Rows are positions in the list given to :meth:`build`. The postings and the
    formula are the on-disk index's own (:func:`qa.index.segment.build_postings`,
    :mod:`qa.index.bm25`: Lucene's BM25, k1 = 1.5, b = 0.75), so a score here is
    the score the index gives the same passage among the same passages. Saved as
    plain ``.npy`` and JSON files.
    """

    def __init__(self, vocabulary: list[str], arrays: dict[str, np.ndarray]):
        self._vocabulary = vocabulary
        self._ids = {t: i for i, t in enumerate(vocabulary)}
        self._doclen = np.asarray(arrays["doclen"], dtype=np.int32)
        self._terms = np.asarray(arrays["terms"], dtype=np.int64)
        self._indptr = np.asarray(arrays["term_indptr"], dtype=np.int64)
        self._docs = np.asarray(arrays["post_docs"], dtype=np.int32)
        self._tf = np.asarray(arrays["post_tf"], dtype=np.uint16)
        from qa.index.bm25 import Corpus

        self._corpus = Corpus(n_docs=len(self._doclen), total_length=int(self._doclen.astype(np.int64).sum()))

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> LexicalIndex:
        from qa.index.segment import build_postings

        vocabulary: dict[str, int] = {}
        ids = [np.array([vocabulary.setdefault(t, len(vocabulary)) for t in tokens], dtype=np.int64)
               for tokens in token_lists]  # fmt: skip
        doclen, terms, indptr, docs, tf = build_postings(ids)
        arrays = {"doclen": doclen, "terms": terms, "term_indptr": indptr, "post_docs": docs, "post_tf": tf}
        return cls(list(vocabulary), arrays)

    def __len__(self) -> int:
        return len(self._doclen)

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocabulary)

    def save(self, directory: Path) -> None:
        """Write the index as .npy + JSON files into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"doclen": self._doclen, "terms": self._terms, "term_indptr": self._indptr,
                  "post_docs": self._docs, "post_tf": self._tf}  # fmt: skip
        for name, array in arrays.items():
            with open(directory / f"{name}.npy", "wb") as f:
                np.save(f, array, allow_pickle=False)
        (directory / _VOCAB_FILE).write_text(json.dumps(self._vocabulary, ensure_ascii=False), encoding="utf-8")
        meta = {"format": _FORMAT, "num_docs": len(self), "method": "lucene", "k1": _k1(), "b": _b()}
        (directory / _PARAMS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """Open an index written by :meth:`save`. Raises IndexCorrupt if it is unreadable."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / _PARAMS_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != _FORMAT:
                raise IndexCorrupt(
                    f"lexical index in {directory} has format {meta.get('format')!r}, expected {_FORMAT}: rebuild it"
                )
            vocabulary = json.loads((directory / _VOCAB_FILE).read_text(encoding="utf-8"))
            arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
        except IndexCorrupt:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"lexical index in {directory} is unreadable: {exc}") from exc
        if not isinstance(vocabulary, list) or len(arrays["doclen"]) != meta.get("num_docs") or (
            len(arrays["term_indptr"]) != len(arrays["terms"]) + 1
        ):
            raise IndexCorrupt(f"lexical index in {directory} is inconsistent: rebuild it")
        return cls(vocabulary, arrays)

    def known(self, tokens: Iterable[str]) -> set[str]:
        """Which of ``tokens`` the index holds (a translator keeps only names spelled this way)."""
        return {t for t in tokens if t in self._ids}

    def _postings(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, term frequencies) of a token; empty when the index never saw it."""
        term_id = self._ids.get(token)
        j = int(np.searchsorted(self._terms, term_id)) if term_id is not None else len(self._terms)
        if j == len(self._terms) or int(self._terms[j]) != term_id:
            return self._docs[:0], self._tf[:0]
        start, end = int(self._indptr[j]), int(self._indptr[j + 1])
        return self._docs[start:end], self._tf[start:end]

    def _df(self, term_id: int) -> int:
        j = int(np.searchsorted(self._terms, term_id))
        if j == len(self._terms) or int(self._terms[j]) != term_id:
            return 0
        return int(self._indptr[j + 1] - self._indptr[j])

    def max_score(self, query_tokens: Sequence[str], weights: dict[str, float] | None = None) -> float:
        """An upper bound of the BM25 score any row can reach for this query
        (:func:`qa.index.bm25.max_score`: tokens never seen count with df 0). ``weights``: a
        weighted query (a translated question, :mod:`qa.crosslingual`): each distinct token
        counts its weight, and tokens never seen count not at all, as in the index's reader."""
        from qa.index.bm25 import max_score

        if weights is None:
            return max_score([self._df(self._ids[t]) if t in self._ids else 0 for t in query_tokens if t],
                             len(self))  # fmt: skip
        known = [t for t in dict.fromkeys(query_tokens) if t in self._ids]
        return max_score([self._df(self._ids[t]) for t in known], len(self), [weights[t] for t in known])

    def scores(self, query_tokens: Sequence[str], weights: dict[str, float] | None = None) -> np.ndarray:
        """BM25 score of every row for the query, float32 of length len(self); ``weights``:
        each distinct token's weight (default: a token counts as often as the query repeats it)."""
        from qa.index.bm25 import idf, term_weights

        n = len(self)
        total = np.zeros(n, dtype=np.float64)
        tokens = list(query_tokens) if weights is None else list(dict.fromkeys(query_tokens))
        for token in tokens:
            docs, tf = self._postings(token)
            if not len(docs):
                continue
            weight = idf(len(docs), n) * (1.0 if weights is None else weights[token])
            total += np.bincount(docs, weights=term_weights(tf, self._doclen[docs], weight, self._corpus), minlength=n)
        return total.astype(np.float32)

    def group_scores(self, weights: dict[str, float], groups: np.ndarray) -> np.ndarray:
        """BM25 of each group of rows read as one text (an article of passages), as the
        index's reader scores an English question's translated words per article
        (:meth:`qa.index.Index._article_bm25`): a token's frequency summed over the group, the
        group's length the sum of its rows', against the mean group length; idf over rows.
        ``groups``: a group number per row (0..G-1; -1: in none). Returns G scores."""
        from qa.index.bm25 import B, K1, idf

        groups = np.asarray(groups, dtype=np.int64)
        if groups.shape != (len(self),):
            raise ValueError(f"groups has shape {groups.shape}, expected ({len(self)},)")
        member = groups >= 0
        n_groups = int(groups.max()) + 1 if member.any() else 0
        length = np.bincount(groups[member], weights=self._doclen[member], minlength=n_groups)
        present = int(np.count_nonzero(np.bincount(groups[member], minlength=n_groups)))
        mean = float(length.sum()) / max(1, present)
        norm = K1 * (1.0 - B + B * length / max(mean, 1e-9))
        total = np.zeros(n_groups, dtype=np.float64)
        for token in dict.fromkeys(weights):
            docs, tf = self._postings(token)
            if not len(docs):
                continue
            inside = member[docs]
            summed = np.bincount(groups[docs[inside]], weights=tf[inside], minlength=n_groups)
            total += idf(len(docs), len(self)) * weights[token] * summed / (summed + norm + 1e-12)
        return total

    def search(
        self, query_tokens: Sequence[str], k: int, allowed: np.ndarray | None = None,
        weights: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows that match at least one query token, best first.

        Returns (rows int64, BM25 scores float32); ties are broken by row, so the
        order is deterministic. ``allowed`` is an optional boolean mask over rows;
        ``weights`` as for :meth:`scores`.
        """
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if k <= 0:
            return empty
        scores = self.scores(query_tokens, weights)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (len(self),):
                raise ValueError(f"allowed mask has shape {allowed.shape}, expected ({len(self)},)")
            scores = np.where(allowed, scores, 0.0).astype(np.float32)
        rows = np.flatnonzero(scores > 0)
        if len(rows) == 0:
            return empty
        if len(rows) > k:
            kth = np.partition(scores[rows], len(rows) - k)[len(rows) - k]
            rows = rows[scores[rows] >= kth]
        order = np.lexsort((rows, -scores[rows]))[:k]
        rows = rows[order].astype(np.int64)
        return rows, scores[rows].astype(np.float32)


def _k1() -> float:
    from qa.index.bm25 import K1

    return K1


def _b() -> float:
    from qa.index.bm25 import B

    return B
