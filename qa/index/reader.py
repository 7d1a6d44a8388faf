"""An open index version: search, articles, statistics, staleness.

:meth:`Index.open` reads one committed version: the catalog's segment list
and tombstones (in one read transaction), then the segments' files (memory
mapped). :meth:`Index.reopen` opens the newest version *sharing* every
segment the two versions have in common, so a reload costs what changed and
holds barely more memory than one index. Nothing here takes a lock around a
search: segment arrays are immutable, the catalog gives each thread its own
read connection, and the model (loaded on the first dense query) is safe to
call from many threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

import qa.index.bm25 as bm25
from qa import relevance
from qa.embed import Embedder
from qa.errors import IndexCorrupt, InvalidQuery, QAError
from qa.crosslingual import Translator, mixed_query, words_text
from qa.fusion import TRANSLATED_WEIGHT, Fused, LexicalLeg, fuse, language_adjusted
from qa.highlight import highlight
from qa.index.ann import AnnParams, SegmentVectors, load_ann, top
from qa.index.catalog import Catalog, SegmentRecord
from qa.index.filters import FilterPlan, plan
from qa.index.manifest import (
    FORMAT_VERSION, SEGMENTS_DIR, STORE_FILE, check_embedder, not_found, read_manifest,
)  # fmt: skip
from qa.index.models import embedder_for
from qa.index.segment import read_segment
from qa.lang import script_family
from qa.lexical import tokenize
from qa.records import Hit, SearchFilters, SearchResult

MODES = ("dense", "lexical", "hybrid")
MAX_QUESTION_CHARS = 1000
MAX_K = 100


def check_question(question: str) -> str:
    """The question stripped, or InvalidQuery when it is not text, empty, too long or not valid text."""
    if not isinstance(question, str):
        raise InvalidQuery("the question must be text")
    question = question.strip()
    if not question:
        raise InvalidQuery("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQuery(
            f"the question is too long ({len(question)} characters; at most {MAX_QUESTION_CHARS})"
        )
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidQuery("the question is not valid text (it holds a lone surrogate)") from None
    return question


@dataclass(frozen=True)
class IndexStats:
    """What an open index holds."""

    path: str
    version: int
    index_id: str
    format_version: int
    articles: int
    chunks: int
    sources: int
    segments: int
    deleted: int  # tombstoned chunks still in segment files (dropped by merges)
    date_from: str | None  # earliest publication time
    date_to: str | None  # latest
    model: str
    backend: str
    dimension: int
    ann: str
    built_at: str
    size_bytes: int


class LoadedSegment:
    """One segment's files, opened (shared by every version that has it)."""

    def __init__(self, record: SegmentRecord, folder: Path, params: AnnParams):
        self.id = record.id
        self.name = record.name
        info, self.data = read_segment(folder)
        ann = None
        if record.ann in ("hnsw", "ivf"):
            try:
                ann = load_ann(folder)
            except RuntimeError as exc:
                raise IndexCorrupt(f"the vector index of segment {folder} is unreadable: {exc}") from exc
        self.vectors = SegmentVectors(self.data.vectors, self.data.keys, record.ann, ann, params)
        self.total_length = int(np.asarray(self.data.doclen, dtype=np.int64).sum())

    def __len__(self) -> int:
        return len(self.data)


class _Version:
    """The segments of one version and which of their positions are live."""

    def __init__(self, segments: list[LoadedSegment], tombstones: dict[int, list[int]]):
        self.segments = segments
        self.live: dict[int, np.ndarray | None] = {}
        n_docs = total = deleted = 0
        for seg in segments:
            dead = tombstones.get(seg.id)
            if dead:
                mask = np.ones(len(seg), dtype=bool)
                positions = np.searchsorted(np.asarray(seg.data.rows), np.asarray(dead, dtype=np.int64))
                positions = positions[positions < len(seg)]
                mask[positions] = False
                self.live[seg.id] = mask
                gone_len = int(np.asarray(seg.data.doclen, dtype=np.int64)[~mask].sum())
                n_docs += int(mask.sum())
                total += seg.total_length - gone_len
                deleted += len(seg) - int(mask.sum())
            else:
                self.live[seg.id] = None
                n_docs += len(seg)
                total += seg.total_length
        self.corpus = bm25.Corpus(n_docs=n_docs, total_length=total)
        self.deleted = deleted


class Index:
    """One committed version of the index at ``root``. Use :meth:`open`."""

    def __init__(self, root: Path, meta: dict, embedder: Embedder, catalog: Catalog,
                 version: _Version, identity: tuple[str, int], store_id: tuple[int, int],
                 translator: Translator | None = None):  # fmt: skip
        self.root = root
        self.meta = meta
        self.embedder = embedder
        self.translator = translator if translator is not None else Translator()
        self.catalog = catalog
        self._version = version
        self._identity = identity
        self._store_id = store_id
        self._terms: OrderedDict[str, int | None] = OrderedDict()
        self._terms_lock = threading.Lock()
        self._stats: IndexStats | None = None
        self._articles: int | None = None
        self.ann_params = AnnParams.from_dict(_json(meta.get("ann_params")))

    # --- opening ---

    @classmethod
    def open(cls, path, embedder: Embedder | None = None, *, reuse: Index | None = None,
             translator: Translator | None = None) -> Index:  # fmt: skip
        """Open the newest committed version of the index at ``path``.

        Raises IndexNotFound, IndexMismatch (another format version, model or
        dimension), IndexCorrupt. Without ``embedder`` the model the index was
        built with is loaded on the first dense query. ``reuse``: an open
        version of the same index whose loaded segments (and model, and
        translator) may be shared. ``translator``: how hybrid search puts an
        English question's words into Chinese (:mod:`qa.crosslingual`; by
        default CC-CEDICT, loaded on the first English question;
        ``Translator(enabled=False)`` turns it off).
        """
        root = Path(path)
        read_manifest(root)  # refuses other formats with a clear message
        store = root / STORE_FILE
        if not store.is_file():
            raise not_found(root)
        for attempt in range(5):
            catalog = Catalog(store, readonly=True)
            try:
                return cls._open_version(root, catalog, embedder, reuse, translator)
            except IndexCorrupt:
                catalog.close()
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))  # a merge may have retired a segment meanwhile
            except BaseException:
                catalog.close()
                raise
        raise AssertionError("unreachable")

    @classmethod
    def _open_version(cls, root: Path, catalog: Catalog, embedder: Embedder | None, reuse: Index | None,
                      translator: Translator | None) -> Index:  # fmt: skip
        st = os.stat(catalog.path)
        with catalog.snapshot():
            meta = catalog.meta()
            if not meta:
                raise IndexCorrupt(f"{catalog.path} holds no index yet; run `qa index PATH --index {root}`")
            identity = (meta.get("index_id", ""), int(meta.get("version", 0)))
            records = catalog.segments()
            tombstones = catalog.tombstones()
            summary = {
                "articles": catalog.counts(chunks=False)["articles"],
                "date_range": catalog.date_range(),
                "sources": catalog.sources(),
            }
        if int(meta.get("format_version", 0)) != FORMAT_VERSION:
            raise IndexCorrupt(f"{catalog.path} has format version {meta.get('format_version')!r}")
        embedding = {"model": meta["model"], "backend": meta["backend"], "dimension": int(meta["dimension"])}
        if embedder is None:
            embedder = reuse.embedder if reuse is not None and reuse.meta.get("model") == meta["model"] else None
        if embedder is None:
            embedder = embedder_for(embedding, queries=True)
        check_embedder(embedding, embedder, root)
        params = AnnParams.from_dict(_json(meta.get("ann_params")))
        shared = {}
        if reuse is not None and reuse._identity[0] == identity[0]:
            shared = {s.name: s for s in reuse._version.segments}
        segments = []
        for record in records:
            seg = shared.get(record.name)
            if seg is None:
                seg = LoadedSegment(record, root / SEGMENTS_DIR / record.name, params)
                if seg.data.dimension != embedding["dimension"]:
                    raise IndexCorrupt(f"segment {record.name} has {seg.data.dimension}-dimensional vectors")
            segments.append(seg)
        if translator is None and reuse is not None:
            translator = reuse.translator
        index = cls(root, meta, embedder, catalog, _Version(segments, tombstones), identity, (st.st_dev, st.st_ino),
                    translator)  # fmt: skip
        index._summary = summary
        return index

    @staticmethod
    def update(path, articles, embedder: Embedder, **options):
        """Build or update the index at ``path`` from ``articles``: see
        :func:`qa.index.writer.update_articles` (``remove_missing``, ``progress``,
        ``ann``, ``step_chunks``, ``merge``). Returns an UpdateReport."""
        from qa.index.writer import update_articles

        return update_articles(path, articles, embedder, **options)

    def reopen(self, embedder: Embedder | None = None) -> Index:
        """The newest version of this index: a new Index sharing the segments
        both versions have (and this one's model, if the model is the same)."""
        return Index.open(self.root, embedder, reuse=self)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- identity ---

    @property
    def version(self) -> int:
        return self._identity[1]

    @property
    def index_id(self) -> str:
        return self._identity[0]

    def generation(self) -> int:
        """The commit version (kept under its old name for callers that show it)."""
        return self.version

    def current_identity(self) -> tuple[str, int] | None:
        """(index id, version) of the newest commit on disk, or None when there is none readable."""
        store = self.root / STORE_FILE
        try:
            st = os.stat(store)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) != self._store_id:  # deleted and rebuilt in place
            try:
                fresh = Catalog(store, readonly=True)
            except QAError:
                return None
            try:
                return fresh.version()
            except QAError:
                return None
            finally:
                fresh.close()
        try:
            return self.catalog.version()
        except QAError:
            return None

    def is_stale(self) -> bool:
        """True when a newer commit (or a rebuilt index) is on disk."""
        current = self.current_identity()
        return current is not None and current != self._identity

    # --- reading ---

    def article(self, article_id: str):
        return self.catalog.article(article_id)

    def sources(self) -> list[tuple[str, int]]:
        """Each source with its number of articles, most first (as of this version)."""
        return list(self._summary["sources"])

    def stats(self) -> IndexStats:
        """What this version holds (counted when it was opened)."""
        if self._stats is None:
            from qa.index.files import dir_size

            first, last = self._summary["date_range"]
            meta = self.meta
            self._stats = IndexStats(
                path=str(self.root), version=self.version, index_id=self.index_id,
                format_version=FORMAT_VERSION, articles=self._summary["articles"],
                chunks=self._version.corpus.n_docs,
                sources=sum(1 for name, _ in self._summary["sources"] if name),
                segments=len(self._version.segments),
                deleted=self._version.deleted, date_from=first, date_to=last, model=meta["model"],
                backend=meta["backend"], dimension=int(meta["dimension"]), ann=meta.get("ann", "flat"),
                built_at=meta.get("committed_at", ""), size_bytes=dir_size(self.root),
            )
        return self._stats

    # --- searching ---

    def search(
        self, question: str, k: int = 5, mode: str = "hybrid", filters: SearchFilters | None = None
    ) -> SearchResult:
        """The ``k`` best passages for ``question``, at most one per paragraph.

        Raises InvalidQuery for an empty or too long question, an unknown
        mode, k outside 1..100, or bad filters.
        """
        started = time.perf_counter()
        question = check_question(question)
        if mode not in MODES:
            raise InvalidQuery(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise InvalidQuery(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        filters = filters or SearchFilters()
        cap = filters.max_per_article
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidQuery(f"max_per_article must be a whole number of at least 1, not {cap!r}")
        filter_plan = plan(filters, lambda table, names: self.catalog.ids_for(table, names, create=False))
        masks = self._masks(filter_plan)
        translated: dict[str, float] = {}  # an English question's words in Chinese (qa.crosslingual)
        if mode == "hybrid":
            translated = self.translator.tokens(question, known=lambda tokens: set(self._term_ids(tokens)))
        candidates, rows_by_key, pool, stored = self._candidates(question, mode, max(100, 5 * k), masks, translated)
        hits = self._hits(question, candidates, rows_by_key, k, cap, stored, translated)
        hits, answerable = self._judge(hits, mode, pool)
        return SearchResult(question=question, mode=mode, hits=hits, seconds=time.perf_counter() - started,
                            answerable=answerable)  # fmt: skip

    def _judge(self, hits: tuple[Hit, ...], mode: str, pool: relevance.Pool) -> tuple[tuple[Hit, ...], bool | None]:
        """Each hit's calibrated relevance, and whether the best reaches the answerable threshold."""
        calibration = relevance.find(self.meta.get("model", ""), mode)
        if calibration is None:
            return hits, None
        judged = tuple(
            replace(h, relevance=round(calibration.relevance(relevance.features(pool, h.dense_score, h.lexical_score)), 4))
            for h in hits
        )  # fmt: skip
        return judged, any(h.relevance >= calibration.threshold for h in judged)

    def _masks(self, filter_plan: FilterPlan) -> dict[int, np.ndarray | None]:
        live = self._version.live
        if not filter_plan.restricts:
            return live
        return {seg.id: filter_plan.mask(seg.data, live[seg.id]) for seg in self._version.segments}

    def _candidates(self, question: str, mode: str, n: int, masks: dict,
                    translated: dict[str, float]) -> tuple[list[Fused], dict[int, int], relevance.Pool, dict]:  # fmt: skip
        """Fused candidates, identified by chunk key; key -> row; what the candidates say of
        one another; the stored chunks already read (row -> ChunkRow). ``translated``: weighted
        Chinese tokens of an English question, searched as a lexical leg of their own and
        embedded into half of its dense query (:func:`qa.crosslingual.mixed_query`)."""
        dense = lex = None
        tokens: list[str] = []
        lexical_max = 0.0
        stored: dict = {}
        judged = None  # the question's own nearest cosines: what the relevance model was calibrated on
        if mode in ("dense", "hybrid"):
            share = self.translator.question_share
            if translated and share < 1.0:  # an English question in hybrid: ranked by its vector mixed with its words'
                own, words = self.embedder.embed_queries([question, words_text(translated)])
                dense = self._dense(mixed_query(own, words, share), n, masks)
                judged = self._dense(own, n, masks)
            else:
                own = self.embedder.embed_queries([question])[0]
                dense = judged = self._dense(own, n, masks)
        leg = None
        if mode in ("lexical", "hybrid"):
            tokens = tokenize(question)
            *lex, lexical_max = self._lexical(tokens, n, masks)
        if translated:
            *leg, leg_max = self._lexical(list(translated), n, masks, translated)
        rows_by_key = {}
        for found in (dense, lex, leg):
            if found is not None:
                rows_by_key.update(zip(found[2].tolist(), found[0].tolist()))
        pool = relevance.Pool.of(judged[1] if judged is not None else None, lexical_max, question)
        if mode == "lexical":
            return [Fused(int(key), float(s), None, float(s)) for key, s in zip(lex[2], lex[1])], rows_by_key, pool, stored
        # Rank by cosines adjusted for the pull of the question's own language; report the raw ones.
        stored = self.catalog.chunk_rows(dense[0].tolist())
        families = [script_family(stored[r].text) if r in stored else "und" for r in dense[0].tolist()]
        adjusted = language_adjusted(dense[1], families, script_family(question))
        if mode == "dense":
            order = np.lexsort((dense[2], -adjusted))  # best first, ties by key
            fused = [Fused(int(dense[2][i]), float(adjusted[i]), float(dense[1][i]), None) for i in order]
            return fused, rows_by_key, pool, stored
        legs = []
        if leg is not None:
            legs.append(self._article_leg(translated, (dense, lex, leg), leg_max, rows_by_key, stored))
        fused = fuse(
            dense[2], adjusted, lex[2], lex[1], n_query_tokens=len(tokens), lexical_max=lexical_max, legs=legs,
        )  # candidates are named by their keys, so ties break alike in every build
        if judged is dense:
            raw = dict(zip(dense[2].tolist(), dense[1].tolist()))
        else:  # report, and judge, the question's own cosine, not that of the mix that ranked
            raw = self._cosines(own, dense[0], dense[2])
        fused = [replace(f, dense=raw[f.row]) if f.dense is not None else f for f in fused]
        return fused, rows_by_key, pool, stored

    def _cosines(self, query: np.ndarray, rows: np.ndarray, keys: np.ndarray) -> dict[int, float]:
        """Exact cosines of ``query`` with the passages at ``rows`` (named by ``keys``)."""
        rows = np.asarray(rows, dtype=np.int64)
        keys = np.asarray(keys, dtype=np.int64)
        out: dict[int, float] = {}
        for seg in self._version.segments:
            here, inside = _locate(seg, rows)
            if len(here):
                vectors = np.asarray(seg.vectors.vectors[here], dtype=np.float32)
                out.update(zip(keys[inside].tolist(), (vectors @ np.asarray(query, dtype=np.float32)).tolist()))
        return out

    def _article_leg(self, weights: dict[str, float], lists: tuple, bound: float, rows_by_key: dict[int, int],
                     stored: dict) -> LexicalLeg:  # fmt: skip
        """The translated leg, scored per article: every candidate passage (of the dense,
        lexical and translated lists) gets the BM25 of its whole article for the translated
        words, over the leg's own bound. An English question's names and words are often
        spread over an article's paragraphs (the university in one, the economist's name and
        "unemployment" in the next): per passage, the answer's article matched a third of
        them; per article, all. Reads the candidates' chunks into ``stored``."""
        keys = list(dict.fromkeys(int(k) for found in lists if found is not None for k in found[2].tolist()))
        missing = [rows_by_key[k] for k in keys if rows_by_key[k] not in stored]
        if missing:
            stored.update(self.catalog.chunk_rows(missing))
        owner = {k: stored[rows_by_key[k]].article_id for k in keys if rows_by_key[k] in stored}
        scores = self._article_bm25(weights, self.catalog.article_rows(set(owner.values())))
        kept = [k for k in keys if k in owner]
        return LexicalLeg(np.array(kept, dtype=np.int64), np.array([scores.get(owner[k], 0.0) for k in kept]),
                          bound, TRANSLATED_WEIGHT)  # fmt: skip

    def _article_bm25(self, weights: dict[str, float], articles: dict[str, list[int]]) -> dict[str, float]:
        """BM25 of each article as one text: a token's frequency summed over the article's
        live passages, its length their total, against the mean article length; idf and
        formula as :meth:`_lexical`'s (so the leg's bound holds). ``weights``: per token."""
        version = self._version
        ids = self._term_ids(list(weights))
        tokens = [t for t in weights if t in ids]
        names = [a for a, rows in articles.items() if rows]
        if not tokens or not names:
            return {}
        rows = np.concatenate([np.asarray(articles[a], dtype=np.int64) for a in names])
        owner = np.repeat(np.arange(len(names)), [len(articles[a]) for a in names])
        tf = np.zeros((len(tokens), len(names)))
        length = np.zeros(len(names))
        df = np.zeros(len(tokens), dtype=np.int64)
        for seg in version.segments:
            live = version.live[seg.id]
            here, inside = _locate(seg, rows)
            who = owner[inside]
            if live is not None:
                keep = live[here]
                here, who = here[keep], who[keep]
            length += np.bincount(who, weights=np.asarray(seg.data.doclen)[here], minlength=len(names))
            for j, t in enumerate(tokens):
                docs, freq = seg.data.postings(ids[t])
                df[j] += len(docs) if live is None else int(live[docs].sum())
                if not len(docs) or not len(here):
                    continue
                at = np.minimum(np.searchsorted(docs, here), len(docs) - 1)
                match = docs[at] == here
                tf[j] += np.bincount(who[match], weights=freq[at[match]], minlength=len(names))
        corpus = version.corpus
        mean_length = corpus.total_length / max(1, self._live_articles())
        idf = np.array([bm25.idf(int(x), corpus.n_docs) for x in df]) * np.array([weights[t] for t in tokens])
        norm = bm25.K1 * (1.0 - bm25.B + bm25.B * length / max(mean_length, 1e-9))
        scores = (idf[:, None] * tf / (tf + norm[None, :] + 1e-12)).sum(axis=0)
        return {a: float(x) for a, x in zip(names, scores.tolist()) if x > 0}

    def _live_articles(self) -> int:
        """How many articles this version holds (read once)."""
        if self._articles is None:
            self._articles = self.catalog.counts(chunks=False)["articles"]
        return self._articles

    def _dense(self, query: np.ndarray, n: int, masks: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``n`` nearest (rows, cosines, keys) over every segment."""
        rows, scores, keys = [], [], []
        for seg in self._version.segments:
            positions, found = seg.vectors.search(query, n, masks[seg.id])
            rows.append(np.asarray(seg.data.rows)[positions])
            keys.append(np.asarray(seg.data.keys)[positions])
            scores.append(found)
        return _merge(rows, scores, keys, n)

    def _term_ids(self, tokens: Sequence[str]) -> dict[str, int]:
        """Term ids of the tokens the index knows (a small cache: ids never change)."""
        out: dict[str, int] = {}
        missing = []
        with self._terms_lock:
            for t in dict.fromkeys(tokens):
                if t in self._terms:
                    self._terms.move_to_end(t)
                    if self._terms[t] is not None:
                        out[t] = self._terms[t]
                else:
                    missing.append(t)
        if missing:
            found = self.catalog.ids_for("terms", missing, create=False)
            with self._terms_lock:
                for t in missing:
                    self._terms[t] = found.get(t)
                    if t in found:
                        out[t] = found[t]
                while len(self._terms) > 50_000:
                    self._terms.popitem(last=False)
        return out

    def _lexical(self, tokens: list[str], n: int, masks: dict,
                 weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:  # fmt: skip
        """BM25 top ``n`` (rows, scores, keys), real matches only, and the query's score bound.
        ``weights``: each token's weight (a translated question, whose words the index has
        never seen are no part of its bound); default: how often the question repeats it,
        every token in the bound."""
        version = self._version
        ids = self._term_ids(tokens)
        distinct = [t for t in dict.fromkeys(tokens) if t in ids]
        if weights is None:
            repeats = np.array([tokens.count(t) for t in distinct], dtype=np.float64)  # a repeated word counts again
        else:
            repeats = np.array([weights[t] for t in distinct], dtype=np.float64)
        df = np.zeros(len(distinct), dtype=np.int64)
        found = []  # per segment: (segment, term numbers, positions, term frequencies) of live postings
        for seg in version.segments:
            live = version.live[seg.id]
            which, docs, tfs = [], [], []
            for j, t in enumerate(distinct):
                d, tf = seg.data.postings(ids[t])
                if live is not None and len(d):
                    keep = live[d]
                    d, tf = d[keep], tf[keep]
                if len(d):
                    which.append((j, len(d)))
                    docs.append(d)
                    tfs.append(tf)
                    df[j] += len(d)
            if docs:
                terms = np.repeat([j for j, _ in which], [m for _, m in which])
                found.append((seg, terms, np.concatenate(docs), np.concatenate(tfs)))
        corpus = version.corpus
        dfs = dict(zip(distinct, df.tolist()))
        if weights is None:
            lexical_max = bm25.max_score([dfs.get(t, 0) for t in tokens], corpus.n_docs)
        else:
            bounded = [t for t in dict.fromkeys(tokens) if dfs.get(t, 0) > 0]
            lexical_max = bm25.max_score([dfs.get(t, 0) for t in bounded], corpus.n_docs, [weights[t] for t in bounded])
        weights = np.array([bm25.idf(int(x), corpus.n_docs) for x in df], dtype=np.float64) * repeats
        rows, scores, keys = [], [], []
        for seg, which, docs, tf in found:
            w = bm25.term_weights(tf, np.asarray(seg.data.doclen)[docs], weights[which], corpus)
            summed = np.bincount(docs, weights=w)
            mask = masks[seg.id]
            if mask is not None:
                summed = np.where(mask[: len(summed)], summed, 0.0)
            positions = np.flatnonzero(summed > 0)
            if not len(positions):
                continue
            positions, best = top(positions, summed[positions], n, seg.data.keys)
            rows.append(np.asarray(seg.data.rows)[positions])
            keys.append(np.asarray(seg.data.keys)[positions])
            scores.append(best)
        return (*_merge(rows, scores, keys, n), lexical_max)

    def _hits(self, question: str, candidates: list[Fused], rows_by_key: dict[int, int], k: int,
              cap: int | None, stored: dict, translated: dict[str, float]) -> tuple[Hit, ...]:  # fmt: skip
        fetched = 0  # stored: the rows _candidates read already; more are added as needed
        taken: dict[str, list[tuple[int, int]]] = {}  # article id -> paragraph ranges already hit
        hits: list[Hit] = []
        for i, cand in enumerate(candidates):
            if i == fetched:  # fetch candidates' rows a few at a time: most searches need only the first
                batch = candidates[fetched : fetched + max(2 * k, 20)]
                stored.update(self.catalog.chunk_rows(rows_by_key[c.row] for c in batch if rows_by_key[c.row] not in stored))
                fetched += len(batch)
            row = stored.get(rows_by_key[cand.row])
            if row is None:
                continue  # deleted by a commit newer than this version
            ranges = taken.setdefault(row.article_id, [])
            if cap is not None and len(ranges) >= cap:
                continue
            if any(row.para_start <= end and start <= row.para_end for start, end in ranges):
                continue  # at most one hit per paragraph
            ranges.append((row.para_start, row.para_end))
            spans, best = highlight(row.text, question, translated)  # the Chinese words found, marked too
            hits.append(
                Hit(
                    rank=len(hits) + 1, score=float(cand.score), chunk_id=row.chunk_id,
                    text=row.text, highlights=spans, best_sentence=best, citation=row.citation,
                    dense_score=cand.dense, lexical_score=cand.lexical,
                )
            )
            if len(hits) == k:
                break
        return tuple(hits)


def _locate(seg: LoadedSegment, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where ``rows`` lie in a segment: the positions of those it holds, and which of ``rows`` those are."""
    seg_rows = np.asarray(seg.data.rows)  # sorted
    pos = np.searchsorted(seg_rows, rows)
    inside = pos < len(seg_rows)
    inside[inside] = seg_rows[pos[inside]] == rows[inside]
    return pos[inside], inside


def _merge(rows: list[np.ndarray], scores: list[np.ndarray], keys: list[np.ndarray],
           n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The ``n`` best of several segments' (rows, scores, keys), ties by key."""
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    all_rows = np.concatenate(rows).astype(np.int64)
    all_scores = np.concatenate(scores).astype(np.float32)
    all_keys = np.concatenate(keys).astype(np.int64)
    order = np.lexsort((all_keys, -all_scores))[:n]
    return all_rows[order], all_scores[order], all_keys[order]


def _json(text: str | None) -> dict | None:
    import json

    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
