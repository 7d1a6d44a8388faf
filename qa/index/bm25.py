"""BM25 over segment postings, with statistics of the whole live index.

Each segment stores, per term, the positions holding it and how often
(:mod:`qa.index.segment`); nothing in a segment depends on the rest of the
index. Scores are computed at query time from *global* statistics of the
live chunks of the version being searched: the number of chunks ``N``, their
mean length, and each query term's document frequency (its live postings in
every segment, tombstones excluded). So an index grown by many small
commits scores exactly like one built at once, and a deletion changes
scores as it should.

The formula is BM25 in Lucene's form (as :mod:`bm25s` ``method="lucene"``,
which the fusion weight was tuned with)::

    idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))
    score(d) = sum over query tokens t of idf(t) * tf / (tf + k1 * (1 - b + b * len(d) / avglen))

Query tokens are counted with repetition, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

K1 = 1.5
B = 0.75


@dataclass(frozen=True)
class Corpus:
    """The global statistics of one searched version."""

    n_docs: int
    total_length: int

    @property
    def mean_length(self) -> float:
        return self.total_length / self.n_docs if self.n_docs else 0.0


def idf(df: int, n_docs: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def max_score(dfs: Sequence[int], n_docs: int, weights: Sequence[float] | None = None) -> float:
    """An upper bound of any chunk's score for a query whose tokens have these
    document frequencies (0 for a token the index has never seen): each token
    contributes less than its idf (times its weight, when the query weighs its
    tokens). Fusion uses it to say how much of the query the best passage could match."""
    if n_docs == 0:
        return 0.0
    if weights is None:
        return float(sum(idf(df, n_docs) for df in dfs))
    return float(sum(w * idf(df, n_docs) for df, w in zip(dfs, weights, strict=True)))


def term_weights(tf: np.ndarray, doclen: np.ndarray, weight, corpus: Corpus) -> np.ndarray:
    """BM25 scores of postings with these tf and document lengths, times ``weight``
    (the term's idf, times how often the query repeats it; a number or one per posting)."""
    tf = tf.astype(np.float32)
    norm = np.float32(K1 * (1.0 - B)) + np.float32(K1 * B / corpus.mean_length) * doclen.astype(np.float32)
    return np.asarray(weight, dtype=np.float32) * tf / (tf + norm)
