"""Offline retrieval evaluation: datasets, metrics, and one evaluation run.

The eval scripts in ``eval/`` are thin layers over this module. A run builds
a throw-away index with :meth:`qa.index.Index.update` from the dataset's
documents (each one an :class:`~qa.records.Article`) and asks every question
with :meth:`qa.index.Index.search`: the same code the server uses, so the
numbers measure the product, not a parallel reimplementation.

Datasets
- SQuAD v1.1 JSON (:func:`load_squad`): every paragraph is a document, every
  question's relevant document is its paragraph. A second SQuAD file in
  another language, aligned by position (XQuAD), may supply the questions:
  cross-lingual retrieval.
- BEIR layout (:func:`load_beir`): ``corpus.jsonl``, ``queries.jsonl``,
  ``qrels/<split>.tsv`` (graded relevance allowed).
- The news-archive proxy (:func:`title_proxy_dataset`): a sample of real
  articles, each article's title asked against the articles indexed without
  their titles. Titles are not real questions: it is a proxy.

Metrics follow the sentence-transformers ``InformationRetrievalEvaluator``
contract (queries, corpus, qrels): Recall@k is the share of a question's
relevant documents found in the top k, MRR@k the reciprocal rank of the
first relevant document within k, nDCG@k uses the qrels' grades as linear
gains (binary relevance gives exactly sentence-transformers' figure, graded
qrels give trec_eval's). Rankings are at the document (article) level: a
question's hits are mapped to their articles, each article counted at its
best rank.
"""

from __future__ import annotations

import csv
import json
import math
import random
import statistics
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from qa.errors import InvalidQuery, QAError, ReadError
from qa.lang import detect_language
from qa.records import Article, SearchFilters

MODES = ("dense", "lexical", "hybrid")
RECALL_KS = (1, 5, 10, 100)
DEPTH = 100  # documents ranked per question: enough for Recall@100


class DatasetError(QAError):
    """A dataset file or folder that cannot be read as the format it claims."""


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Query:
    id: str
    text: str


@dataclass(frozen=True)
class RetrievalDataset:
    """Documents to index, questions to ask, and which documents answer which.

    ``qrels[query_id][article_id]`` is a relevance grade (> 0 is relevant).
    Every query has at least one relevant document.
    """

    name: str
    articles: tuple[Article, ...]
    queries: tuple[Query, ...]
    qrels: Mapping[str, Mapping[str, int]]
    notes: tuple[str, ...] = ()  # caveats to print with the results

    def spread(self, n: int) -> RetrievalDataset:
        """``n`` questions evenly spaced over the whole set (a quick subset
        that touches every part of the corpus, unlike the first ``n``)."""
        if n <= 0:
            raise DatasetError(f"a subset needs a positive number of questions, got {n}")
        if n >= len(self.queries):
            return self
        queries = tuple(self.queries[i * len(self.queries) // n] for i in range(n))
        return replace(
            self,
            name=f"{self.name} ({n} questions spread over {len(self.queries)})",
            queries=queries,
            qrels={q.id: self.qrels[q.id] for q in queries},
        )

    def limited(self, n: int | None) -> RetrievalDataset:
        """The first ``n`` questions; the documents stay whole, so the task
        is as hard as the full one."""
        if n is None or n >= len(self.queries):
            return self
        if n <= 0:
            raise DatasetError(f"--limit must be a positive number of questions, got {n}")
        queries = self.queries[:n]
        return replace(
            self,
            name=f"{self.name} (first {n} questions)",
            queries=queries,
            qrels={q.id: self.qrels[q.id] for q in queries},
        )


def document_article(doc_id: str, text: str, *, title: str = "", source: str = "") -> Article:
    """A dataset document as an Article: one paragraph per blank-line-separated
    block (chunking may split long ones). ``title`` "" keeps the chunk text
    free of any title."""
    paragraphs = tuple(p.strip() for p in text.split("\n\n") if p.strip())
    if not paragraphs:
        raise DatasetError(f"document {doc_id!r} has no text")
    return Article(
        id=doc_id,
        title=title,
        source=source,
        url=None,
        published=None,
        tags=(),
        language=detect_language(title + "\n" + text),
        path=doc_id,
        paragraphs=paragraphs,
        format="record",
    )


def _read_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON ({exc})") from exc


def _squad_paragraphs(path: Path) -> list[tuple[str, str, list[dict]]]:
    """(document id, context, qas) for every paragraph, in file order."""
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetError(f"{path}: not SQuAD v1.1 JSON (expected an object with a 'data' list)")
    out = []
    try:
        for a, article in enumerate(data["data"]):
            for p, paragraph in enumerate(article["paragraphs"]):
                out.append((f"squad:{a}:{p}", paragraph["context"], list(paragraph["qas"])))
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not SQuAD v1.1 JSON (missing {exc})") from exc
    return out


def load_squad(path: str | Path, questions: str | Path | None = None) -> RetrievalDataset:
    """SQuAD v1.1 JSON: each paragraph a document, each question relevant to
    its paragraph. ``questions``: a second SQuAD file (another language, same
    paragraphs and questions in the same order, as XQuAD) whose questions are
    asked instead: cross-lingual. Refuses files that do not align."""
    path = Path(path)
    paragraphs = _squad_paragraphs(path)
    name = path.name
    asked = paragraphs
    if questions is not None:
        questions = Path(questions)
        asked = _squad_paragraphs(questions)
        if len(asked) != len(paragraphs):
            raise DatasetError(
                f"{questions} does not align with {path}: {len(asked)} paragraphs against "
                f"{len(paragraphs)} (the questions file must hold the same paragraphs in the same order)"
            )
        for (doc_id, _, qas_a), (_, _, qas_b) in zip(asked, paragraphs):
            if len(qas_a) != len(qas_b):
                a, p = doc_id.split(":")[1:]
                raise DatasetError(
                    f"{questions} does not align with {path}: article {a} paragraph {p} has "
                    f"{len(qas_a)} questions against {len(qas_b)}"
                )
        name = f"{questions.name} → {path.name}"
    articles = tuple(document_article(doc_id, context, source=path.name) for doc_id, context, _ in paragraphs)
    queries: list[Query] = []
    qrels: dict[str, dict[str, int]] = {}
    for (_, _, qas), (doc_id, _, _) in zip(asked, paragraphs):  # aligned by position
        for n, qa in enumerate(qas):
            try:
                text = qa["question"].strip()
            except (KeyError, TypeError, AttributeError) as exc:
                raise DatasetError(f"{questions or path}: a question without text in {doc_id}") from exc
            qid = f"{doc_id}:{n}"  # positional: the same question in both files has one id
            queries.append(Query(qid, text))
            qrels[qid] = {doc_id: 1}
    if not queries:
        raise DatasetError(f"{questions or path}: no questions")
    return RetrievalDataset(name, articles, tuple(queries), qrels)


def _read_jsonl(path: Path) -> Iterable[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(f"{path}:{n}: not JSON ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def _beir_qrels_file(directory: Path, split: str | None) -> Path:
    qrels_dir = directory / "qrels"
    if split is not None:
        chosen = qrels_dir / f"{split}.tsv"
        if not chosen.is_file():
            raise DatasetError(f"{directory}: no qrels/{split}.tsv")
        return chosen
    files = sorted(qrels_dir.glob("*.tsv"))
    if not files:
        raise DatasetError(f"{directory}: no qrels/*.tsv (BEIR layout: corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    test = qrels_dir / "test.tsv"
    if test in files:
        return test
    if len(files) > 1:
        names = ", ".join(f.stem for f in files)
        raise DatasetError(f"{directory}: several qrels files ({names}) and no test.tsv: choose one with --split")
    return files[0]


def load_beir(directory: str | Path, split: str | None = None) -> RetrievalDataset:
    """A BEIR dataset folder: ``corpus.jsonl`` ({"_id", "title", "text"}),
    ``queries.jsonl`` ({"_id", "text"}), ``qrels/<split>.tsv`` (query-id,
    corpus-id, score, with a header line). ``split`` None: test.tsv, or the
    only qrels file. Only queries with a relevant document are asked."""
    directory = Path(directory)
    for needed in ("corpus.jsonl", "queries.jsonl"):
        if not (directory / needed).is_file():
            raise DatasetError(f"{directory}: no {needed} (BEIR layout: corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    qrels_path = _beir_qrels_file(directory, split)
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (n == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue  # blank line or header
            if len(row) != 3:
                raise DatasetError(f"{qrels_path}:{n}: expected query-id, corpus-id, score")
            qid, doc_id, score = (c.strip() for c in row)
            try:
                grade = int(float(score))
            except ValueError as exc:
                raise DatasetError(f"{qrels_path}:{n}: score {score!r} is not a number") from exc
            if grade > 0:
                qrels.setdefault(qid, {})[doc_id] = grade
    articles = []
    for n, record in enumerate(_read_jsonl(directory / "corpus.jsonl"), 1):
        try:
            doc_id, text = str(record["_id"]), record.get("text") or ""
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{directory / 'corpus.jsonl'}:{n}: a document without _id") from exc
        title = record.get("title") or ""
        if text.strip() or title.strip():
            articles.append(document_article(doc_id, text or title, title=title if text else "", source=directory.name))
    known = {a.id for a in articles}
    queries = []
    for n, record in enumerate(_read_jsonl(directory / "queries.jsonl"), 1):
        try:
            qid, text = str(record["_id"]), record["text"]
        except (KeyError, TypeError) as exc:
            raise DatasetError(f"{directory / 'queries.jsonl'}:{n}: a query without _id or text") from exc
        if qid in qrels and text.strip():
            queries.append(Query(qid, text.strip()))
    qrels = {q.id: {d: g for d, g in qrels[q.id].items() if d in known} for q in queries}
    queries = [q for q in queries if qrels[q.id]]
    if not queries:
        raise DatasetError(f"{directory}: no query has a relevant document in the corpus")
    name = f"{directory.name} ({qrels_path.stem})"
    return RetrievalDataset(name, tuple(articles), tuple(queries), {q.id: qrels[q.id] for q in queries})


def load_dataset(path: str | Path, questions: str | Path | None = None, split: str | None = None) -> RetrievalDataset:
    """A folder is read as BEIR, a file as SQuAD v1.1 JSON."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        if questions is not None:
            raise DatasetError("--questions is for SQuAD files; a BEIR folder carries its own queries")
        return load_beir(path, split)
    return load_squad(path, questions)


def lead_paragraphs(article: Article, max_chunks: int) -> Article:
    """The article cut to its first paragraphs: those the first ``max_chunks``
    chunks cover (at least the first paragraph). Chunking is the library's
    own (:func:`qa.chunk.chunk_article`), so the cut matches what is indexed."""
    from qa.chunk import chunk_article

    chunks = chunk_article(article)
    if len(chunks) <= max_chunks:
        return article
    last_end = chunks[max_chunks - 1].para_end
    # a paragraph split across the cut (the next chunk continues it) is dropped
    keep = last_end if chunks[max_chunks].para_start > last_end else last_end - 1
    return replace(article, paragraphs=article.paragraphs[: max(keep, 1)])


PROXY_NOTE = (
    "PROXY: each article's title is asked as the question against the sampled articles indexed "
    "without their titles. Titles are not real questions; they often reuse the article's own "
    "words, which favours lexical (BM25) retrieval. Read these numbers as a sanity check on real "
    "news, not as question-answering quality."
)


def title_proxy_dataset(
    corpus: str | Path,
    articles: int,
    *,
    seed: int = 0,
    max_chunks_per_article: int | None = None,
    min_title_chars: int = 4,
) -> RetrievalDataset:
    """The news-archive proxy: a seeded random sample of ``articles`` real
    articles read with :mod:`qa.ingest`; each one's title is a question whose
    relevant document is the article, indexed with title "" (and without a
    paragraph that merely repeats the title). Files that cannot be read,
    duplicates (same id or text) and titles shorter than ``min_title_chars``
    are passed over. ``max_chunks_per_article`` keeps only the lead
    paragraphs (CPU cost: embedding is the slow part)."""
    from qa.ingest import iter_files, read_file

    corpus = Path(corpus)
    try:
        files = list(iter_files([corpus]))
    except ReadError as exc:
        raise DatasetError(str(exc)) from exc
    random.Random(seed).shuffle(files)
    chosen: list[Article] = []
    queries: list[Query] = []
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    seen_titles: set[str] = set()
    for path, root in files:
        if len(chosen) >= articles:
            break
        try:
            article = read_file(path, root)
        except ReadError:
            continue
        title = " ".join(article.title.split())
        paragraphs = tuple(p for p in article.paragraphs if " ".join(p.split()) != title)
        if len(title) < min_title_chars or not paragraphs:
            continue
        text = "\n\n".join(paragraphs)
        if article.id in seen_ids or text in seen_texts or title in seen_titles:
            continue
        seen_ids.add(article.id)
        seen_texts.add(text)
        seen_titles.add(title)
        doc = replace(article, title="", paragraphs=paragraphs)
        if max_chunks_per_article is not None:
            doc = lead_paragraphs(doc, max_chunks_per_article)
        chosen.append(doc)
        queries.append(Query(f"title:{article.id}", title))
    if not chosen:
        raise DatasetError(f"{corpus}: no readable article with a title")
    name = f"{corpus.name}: titles → articles ({len(chosen)} articles, seed {seed}"
    name += f", first {max_chunks_per_article} chunks)" if max_chunks_per_article else ")"
    qrels = {q.id: {a.id: 1} for q, a in zip(queries, chosen)}
    return RetrievalDataset(name, tuple(chosen), tuple(queries), qrels, notes=(PROXY_NOTE,))


# ---------------------------------------------------------------- metrics


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top ``k``."""
    found = sum(1 for doc in ranked[:k] if relevant.get(doc, 0) > 0)
    return found / sum(1 for g in relevant.values() if g > 0)


def reciprocal_rank(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """1 / rank of the first relevant document within the top ``k``, else 0."""
    for rank, doc in enumerate(ranked[:k], 1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain with linear gains (the grade) and
    a log2(rank + 1) discount, as trec_eval and sentence-transformers."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], 1))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg / idcg


@dataclass(frozen=True)
class Metrics:
    """Mean scores over the questions (fractions 0..1)."""

    questions: int
    recall: Mapping[int, float]  # k -> Recall@k, for k in 1..depth
    mrr_at_10: float
    ndcg_at_10: float

    def as_dict(self) -> dict[str, float]:
        out = {f"recall@{k}": self.recall[k] for k in RECALL_KS if k in self.recall}
        out["mrr@10"] = self.mrr_at_10
        out["ndcg@10"] = self.ndcg_at_10
        return out


def score_rankings(
    rankings: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], depth: int = DEPTH
) -> Metrics:
    """Metrics of ranked document ids per query against the qrels. Every query
    in ``qrels`` with a relevant document counts; a query missing from
    ``rankings`` counts as finding nothing."""
    judged = [q for q, rel in qrels.items() if any(g > 0 for g in rel.values())]
    if not judged:
        raise DatasetError("no query has a relevant document")
    recall = {k: 0.0 for k in range(1, depth + 1)}
    mrr = ndcg = 0.0
    for qid in judged:
        ranked = _dedupe(rankings.get(qid, ()))
        relevant = qrels[qid]
        for k in recall:
            recall[k] += recall_at_k(ranked, relevant, k)
        mrr += reciprocal_rank(ranked, relevant, 10)
        ndcg += ndcg_at_k(ranked, relevant, 10)
    n = len(judged)
    return Metrics(n, {k: v / n for k, v in recall.items()}, mrr / n, ndcg / n)


def _dedupe(ids: Iterable[str]) -> list[str]:
    """Each id once, at its best (first) rank."""
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


# ---------------------------------------------------------------- runs


@dataclass(frozen=True)
class ModeReport:
    mode: str
    metrics: Metrics
    query_ms_median: float
    query_ms_p95: float
    failed_queries: int  # refused by Index.search (InvalidQuery): counted as finding nothing

    def as_dict(self) -> dict:
        out: dict = self.metrics.as_dict()
        out["questions"] = self.metrics.questions
        out["query_ms_median"] = self.query_ms_median
        out["query_ms_p95"] = self.query_ms_p95
        out["failed_queries"] = self.failed_queries
        out["recall_curve"] = [self.metrics.recall[k] for k in sorted(self.metrics.recall)]
        return out


@dataclass(frozen=True)
class EvalReport:
    dataset: str
    model: str
    backend: str
    documents: int
    chunks: int
    index_seconds: float  # Index.update: chunking, embedding, FAISS + BM25
    modes: tuple[ModeReport, ...]
    notes: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The JSON form: one key per mode (recall@1/5/10/100, mrr@10,
        ndcg@10, timings) plus ``_meta``."""
        out: dict = {}
        for m in self.modes:
            out[m.mode] = m.as_dict()
            out[m.mode]["index_seconds"] = self.index_seconds
        out["_meta"] = {
            "dataset": self.dataset,
            "model": self.model,
            "backend": self.backend,
            "documents": self.documents,
            "chunks": self.chunks,
            "questions": self.modes[0].metrics.questions if self.modes else 0,
            "index_seconds": self.index_seconds,
            "notes": list(self.notes),
            **self.extra,
        }
        return out


@dataclass(frozen=True)
class BuiltIndex:
    index: object  # qa.index.Index
    documents: int
    chunks: int
    seconds: float


def build_index(dataset: RetrievalDataset, embedder, directory: str | Path, *, progress: bool = True) -> BuiltIndex:
    """Index the dataset's documents into ``directory`` with the library's
    own :meth:`Index.update`, and open it for searching."""
    from qa.index import Index

    start = time.perf_counter()
    Index.update(directory, dataset.articles, embedder, progress=progress)
    seconds = time.perf_counter() - start
    index = Index.open(directory, embedder)
    stats = index.stats()
    return BuiltIndex(index, stats.articles, stats.chunks, seconds)


def rank_documents(index, question: str, mode: str, depth: int = DEPTH) -> list[str]:
    """Article ids for one question, best first, each article once."""
    result = index.search(question, k=depth, mode=mode, filters=SearchFilters(max_per_article=1))
    return _dedupe(hit.citation.article_id for hit in result.hits)


TIMING_K = 10  # latency is measured as a person searches: 10 hits, highlighted
TIMING_QUESTIONS = 300  # at most this many questions timed, spread over the set


def evaluate_mode(
    index,
    dataset: RetrievalDataset,
    mode: str,
    *,
    depth: int = DEPTH,
    progress: bool = True,
    timing_questions: int = TIMING_QUESTIONS,
) -> ModeReport:
    """Ask every question in one mode and score the rankings.

    Rankings come from a search for ``depth`` hits, at most one per article.
    Latency is timed apart, on a search for TIMING_K hits (what a person asks
    for; highlighting 100 hits would dominate the time otherwise), over at
    most ``timing_questions`` questions spread over the set (0: no timing,
    the latencies are NaN)."""
    from tqdm import tqdm

    rankings: dict[str, list[str]] = {}
    times: list[float] = []
    failed = 0
    step = max(1, math.ceil(len(dataset.queries) / timing_questions)) if timing_questions > 0 else 0
    for n, query in enumerate(tqdm(dataset.queries, desc=f"{mode:>7} questions", unit="q", disable=not progress)):
        try:
            rankings[query.id] = rank_documents(index, query.text, mode, depth)
        except InvalidQuery:
            failed += 1
            continue
        if step and n % step == 0:
            start = time.perf_counter()
            index.search(query.text, k=TIMING_K, mode=mode)
            times.append((time.perf_counter() - start) * 1000)
    metrics = score_rankings(rankings, dataset.qrels, depth)
    return ModeReport(
        mode,
        metrics,
        statistics.median(times) if times else float("nan"),
        _percentile(times, 95),
        failed,
    )


def _percentile(values: Sequence[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1)]


def evaluate_index(
    built: BuiltIndex,
    dataset: RetrievalDataset,
    embedder,
    modes: Sequence[str] = MODES,
    *,
    depth: int = DEPTH,
    progress: bool = True,
    timing_questions: int = TIMING_QUESTIONS,
    extra: Mapping[str, object] | None = None,
) -> EvalReport:
    """Evaluate an index already built (one embedding pass may serve several
    question sets over the same documents, e.g. zh→zh and en→zh)."""
    for mode in modes:
        if mode not in MODES:
            raise DatasetError(f"unknown mode {mode!r}: choose from {', '.join(MODES)}")
    reports = tuple(
        evaluate_mode(built.index, dataset, m, depth=depth, progress=progress, timing_questions=timing_questions)
        for m in modes
    )
    return EvalReport(
        dataset=dataset.name,
        model=embedder.model,
        backend=embedder.backend,
        documents=built.documents,
        chunks=built.chunks,
        index_seconds=built.seconds,
        modes=reports,
        notes=dataset.notes,
        extra=dict(extra or {}),
    )


def evaluate(
    dataset: RetrievalDataset,
    embedder,
    modes: Sequence[str] = MODES,
    *,
    workdir: str | Path | None = None,
    depth: int = DEPTH,
    progress: bool = True,
    extra: Mapping[str, object] | None = None,
) -> EvalReport:
    """Build a throw-away index of the dataset (in ``workdir`` or a temporary
    folder removed afterwards) and evaluate every mode on it."""
    with tempfile.TemporaryDirectory(prefix="qa-eval-", dir=workdir) as tmp:
        built = build_index(dataset, embedder, Path(tmp) / "index", progress=progress)
        try:
            return evaluate_index(built, dataset, embedder, modes, depth=depth, progress=progress, extra=extra)
        finally:
            built.index.close()


# ---------------------------------------------------------------- output


def markdown_table(report: EvalReport) -> str:
    """One Markdown table: a row per mode."""
    lines = [
        f"**{report.dataset}**: {report.modes[0].metrics.questions if report.modes else 0} questions, "
        f"{report.documents} documents ({report.chunks} chunks), model `{report.model}` ({report.backend}), "
        f"index built in {report.index_seconds:.1f} s",
        "",
        f"| mode | R@1 | R@5 | R@10 | R@100 | MRR@10 | nDCG@10 | query ms (median, k={TIMING_K}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in report.modes:
        d = m.metrics.as_dict()
        cells = [f"{d[key]:.3f}" for key in ("recall@1", "recall@5", "recall@10", "recall@100", "mrr@10", "ndcg@10")]
        ms = "–" if math.isnan(m.query_ms_median) else f"{m.query_ms_median:.1f}"
        lines.append(f"| {m.mode} | " + " | ".join(cells) + f" | {ms} |")
    for m in report.modes:
        if m.failed_queries:
            lines.append(f"\n{m.mode}: {m.failed_queries} questions refused by the index (counted as not found).")
    for note in report.notes:
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"


def plot_recall_curves(report: EvalReport, path: str | Path) -> None:
    """A PNG of Recall@k against k (1..depth, log scale), one line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for m in report.modes:
            ks = sorted(m.metrics.recall)
            ax.plot(ks, [m.metrics.recall[k] for k in ks], label=f"{m.mode} (R@1 {m.metrics.recall[1]:.3f})")
        ax.set_xscale("log")
        ticks = [k for k in (1, 2, 5, 10, 20, 50, 100) if k <= max((max(m.metrics.recall) for m in report.modes), default=1)]
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_xlabel("k (documents retrieved)")
        ax.set_ylabel("Recall@k")
        lowest = min((m.metrics.recall[1] for m in report.modes), default=0.0)
        ax.set_ylim(max(0.0, math.floor((lowest - 0.05) * 10) / 10), 1.005)  # zoom in where the curves are
        ax.grid(True, which="both", alpha=0.3)
        title = report.dataset + (" — proxy" if report.notes else "")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def write_json(report: EvalReport | Sequence[EvalReport], path: str | Path) -> None:
    data = report.as_dict() if isinstance(report, EvalReport) else [r.as_dict() for r in report]
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

