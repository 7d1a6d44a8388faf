"""Lexical retrieval: jieba + OpenCC tokenization and BM25 (bm25s).

:func:`tokenize` turns any text (a chunk or a question) into search tokens:

1. NFKC (full-width Latin letters and digits become ASCII),
2. Traditional -> Simplified Chinese with OpenCC ``t2s`` (the corpus mixes both
   scripts; a Traditional question must find a Simplified paragraph),
3. lowercase,
4. jieba search-mode segmentation (``cut_for_search``: a long word also yields
   its shorter dictionary words, so 中华人民共和国 matches 共和国),
5. punctuation, whitespace, single Latin letters and stopwords dropped; English
   words kept whole with a light plural strip (Harman's "S" stemmer).

:class:`LexicalIndex` is BM25 over those tokens. bm25s builds the (documents x
vocabulary) score matrix once, as a scipy-compatible CSC matrix; a query sums
the columns of its tokens, so a search over 100k chunks takes a few ms. It is
saved as plain ``.npy`` (``allow_pickle=False``) and JSON files.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import unicodedata
from collections.abc import Sequence
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
_FORMAT = 1


class LexicalIndex:
    """BM25 over token lists. Rows are positions in the list given to :meth:`build`."""

    METHOD = "lucene"
    K1 = 1.5
    B = 0.75

    def __init__(self, retriever, n_docs: int):
        # Use build() or load(); the retriever is a fitted bm25s.BM25.
        self._bm25 = retriever
        self._n_docs = n_docs
        scores = retriever.scores
        self._data = np.asarray(scores["data"], dtype=np.float32)
        self._indices = np.asarray(scores["indices"], dtype=np.int64)
        self._indptr = np.asarray(scores["indptr"], dtype=np.int64)
        self._vocab: dict[str, int] = retriever.vocab_dict

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25(
            k1=cls.K1, b=cls.B, method=cls.METHOD, backend="numpy", csc_backend="scipy"
        )
        docs = [list(tokens) for tokens in token_lists]
        if docs:
            retriever.index(docs, show_progress=False)
        else:  # bm25s cannot fit zero documents; an empty matrix is the right answer
            retriever.scores = {
                "data": np.zeros(0, dtype=np.float32),
                "indices": np.zeros(0, dtype=np.int32),
                "indptr": np.zeros(2, dtype=np.int64),
                "num_docs": 0,
            }
            retriever.vocab_dict = {"": 0}
            retriever.nonoccurrence_array = None
        return cls(retriever, len(docs))

    def __len__(self) -> int:
        return self._n_docs

    @property
    def vocabulary_size(self) -> int:
        return len(self._vocab)

    def save(self, directory: Path) -> None:
        """Write the index as .npy + JSON files into ``directory`` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._bm25.save(directory, allow_pickle=False, show_progress=False)
        meta = {
            "format": _FORMAT,
            "num_docs": self._n_docs,
            "method": self.METHOD,
            "k1": self.K1,
            "b": self.B,
        }
        (directory / _PARAMS_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        """Open an index written by :meth:`save`. Raises IndexCorrupt if it is unreadable."""
        import bm25s

        directory = Path(directory)
        try:
            meta = json.loads((directory / _PARAMS_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != _FORMAT:
                raise IndexCorrupt(
                    f"lexical index in {directory} has format {meta.get('format')!r}, "
                    f"expected {_FORMAT}: rebuild the index"
                )
            retriever = bm25s.BM25.load(
                directory, allow_pickle=False, mmap=False, show_progress=False, verbosity=0
            )
            n_docs = int(meta["num_docs"])
        except IndexCorrupt:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"lexical index in {directory} is unreadable: {exc}") from exc
        index = cls(retriever, n_docs)
        if n_docs > 0 and (len(index._indptr) < 2 or int(index._indptr[-1]) != len(index._data)):
            raise IndexCorrupt(f"lexical index in {directory} is inconsistent: rebuild it")
        return index

    def token_ids(self, query_tokens: Sequence[str]) -> np.ndarray:
        """Vocabulary ids of the known query tokens (unknown ones are dropped)."""
        n_columns = len(self._indptr) - 1  # bm25s adds "" to the vocabulary, not the matrix
        ids = [self._vocab.get(t, n_columns) for t in query_tokens if t]
        return np.asarray([i for i in ids if i < n_columns], dtype=np.int64)

    def max_score(self, query_tokens: Sequence[str]) -> float:
        """An upper bound of the BM25 score any row can reach for this query.

        With bm25s' Lucene variant a token contributes idf * tf / (tf + k1 * norm) <
        idf, so the bound is the sum of the query tokens' idf. A token the index
        has never seen counts with the idf of a token in no document: the bound
        then says how much of the query the collection could match at all (an
        English question over Chinese text scores a small fraction of it).
        """
        n = self._n_docs
        if n == 0:
            return 0.0
        n_columns = len(self._indptr) - 1
        total = 0.0
        for token in query_tokens:
            if not token:
                continue
            i = self._vocab.get(token, n_columns)
            df = int(self._indptr[i + 1] - self._indptr[i]) if i < n_columns else 0
            total += float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
        return total

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every row for the query, float32 of length len(self)."""
        ids = self.token_ids(query_tokens)
        if len(ids) == 0 or self._n_docs == 0:
            return np.zeros(self._n_docs, dtype=np.float32)
        starts, ends = self._indptr[ids], self._indptr[ids + 1]
        if len(ids) == 1:
            rows = self._indices[starts[0] : ends[0]]
            weights = self._data[starts[0] : ends[0]]
        else:
            rows = np.concatenate([self._indices[s:e] for s, e in zip(starts, ends)])
            weights = np.concatenate([self._data[s:e] for s, e in zip(starts, ends)])
        return np.bincount(rows, weights=weights, minlength=self._n_docs).astype(np.float32)

    def search(
        self, query_tokens: Sequence[str], k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` rows that match at least one query token, best first.

        Returns (rows int64, BM25 scores float32); ties are broken by row, so the
        order is deterministic. ``allowed`` is an optional boolean mask over rows.
        """
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        if k <= 0:
            return empty
        scores = self.scores(query_tokens)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (self._n_docs,):
                raise ValueError(f"allowed mask has shape {allowed.shape}, expected ({self._n_docs},)")
            scores = np.where(allowed, scores, 0.0)
        rows = np.flatnonzero(scores > 0)
        if len(rows) == 0:
            return empty
        if len(rows) > k:
            # Keep everything tied with the k-th score, so ties break by row below.
            kth = np.partition(scores[rows], len(rows) - k)[len(rows) - k]
            rows = rows[scores[rows] >= kth]
        order = np.lexsort((rows, -scores[rows]))[:k]
        rows = rows[order].astype(np.int64)
        return rows, scores[rows].astype(np.float32)
