"""qa_tools.evaluation: metrics (hand-computed and differential against
sentence-transformers and scikit-learn), dataset loaders, and a whole run
through the real Index with the fake HashEmbedder."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from qa_tools.evaluation import (
    DatasetError,
    RetrievalDataset,
    load_beir,
    load_dataset,
    load_squad,
    ndcg_at_k,
    reciprocal_rank,
    recall_at_k,
    score_rankings,
)

# ---------------------------------------------------------------- metrics by hand


def test_recall_by_hand():
    ranked = ["a", "b", "c", "d"]
    rel = {"b": 1, "d": 1, "z": 1}
    assert recall_at_k(ranked, rel, 1) == 0.0
    assert recall_at_k(ranked, rel, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, rel, 4) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, rel, 100) == pytest.approx(2 / 3)  # z never retrieved


def test_reciprocal_rank_by_hand():
    assert reciprocal_rank(["a", "b", "c"], {"c": 1}, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(["a", "b", "c"], {"c": 1, "b": 1}, 10) == pytest.approx(1 / 2)
    assert reciprocal_rank(["a", "b", "c"], {"c": 1}, 2) == 0.0  # beyond the cut-off
    assert reciprocal_rank([], {"c": 1}, 10) == 0.0


def test_ndcg_binary_by_hand():
    # relevant at ranks 2 and 3, two relevant documents in all:
    # DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3)
    got = ndcg_at_k(["x", "a", "b"], {"a": 1, "b": 1}, 10)
    want = (1 / math.log2(3) + 1 / 2) / (1 + 1 / math.log2(3))
    assert got == pytest.approx(want)
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], {"a": 1}, 10) == 0.0


def test_ndcg_graded_by_hand():
    # grades 3 (doc a) and 1 (doc b); ranking b, x, a:
    # DCG = 1/1 + 3/log2(4) = 2.5 ; IDCG = 3/1 + 1/log2(3)
    got = ndcg_at_k(["b", "x", "a"], {"a": 3, "b": 1}, 10)
    assert got == pytest.approx(2.5 / (3 + 1 / math.log2(3)))
    # the cut-off truncates both the ranking and the ideal ranking
    assert ndcg_at_k(["b", "a"], {"a": 3, "b": 1}, 1) == pytest.approx(1 / 3)


def test_score_rankings_by_hand():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 1}}
    rankings = {"q1": ["a", "b"], "q2": ["a", "b"]}  # q3 unanswered: counts as nothing found
    m = score_rankings(rankings, qrels, depth=3)
    assert m.questions == 3
    assert m.recall[1] == pytest.approx(1 / 3)
    assert m.recall[2] == pytest.approx(2 / 3)
    assert m.recall[3] == pytest.approx(2 / 3)
    assert m.mrr_at_10 == pytest.approx((1 + 1 / 2) / 3)
    d = m.as_dict()
    assert set(d) == {"recall@1", "mrr@10", "ndcg@10"}  # depth 3: no recall@5..100


def test_score_rankings_counts_an_article_once_at_its_best_rank():
    # an article hit twice (two of its chunks) must not push others down
    m = score_rankings({"q": ["a", "a", "b"]}, {"q": {"b": 1}}, depth=2)
    assert m.recall[2] == 1.0
    assert m.mrr_at_10 == pytest.approx(1 / 2)


def test_score_rankings_refuses_empty_qrels():
    with pytest.raises(DatasetError):
        score_rankings({}, {"q": {"a": 0}})


# ---------------------------------------------------------------- differential


def _random_task(seed: int, queries: int = 40, docs: int = 60):
    rng = random.Random(seed)
    corpus = [f"d{i}" for i in range(docs)]
    qrels, rankings = {}, {}
    for q in range(queries):
        qid = f"q{q}"
        qrels[qid] = {d: rng.randint(1, 3) for d in rng.sample(corpus, rng.randint(1, 4))}
        ranked = rng.sample(corpus, rng.randint(0, docs))
        # make early hits likely so the metrics are not all near zero
        for d in qrels[qid]:
            if rng.random() < 0.6 and d in ranked:
                ranked.remove(d)
                ranked.insert(rng.randint(0, min(5, len(ranked))), d)
        rankings[qid] = ranked
    return corpus, qrels, rankings


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sentence_transformers(seed):
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    corpus, qrels, rankings = _random_task(seed)
    binary = {q: {d: 1 for d in rel} for q, rel in qrels.items()}
    ks = [1, 5, 10, 50]
    evaluator = InformationRetrievalEvaluator(
        queries={q: q for q in qrels},
        corpus={d: d for d in corpus},
        relevant_docs={q: set(rel) for q, rel in qrels.items()},
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=ks,
        precision_recall_at_k=ks,
        map_at_k=[10],
        write_csv=False,
    )
    results = [
        [{"corpus_id": d, "score": float(len(rankings[q]) - i)} for i, d in enumerate(rankings[q])]
        for q in evaluator.queries_ids
    ]
    theirs = evaluator.compute_metrics(results)
    ours = score_rankings(rankings, binary, depth=50)
    for k in ks:
        assert ours.recall[k] == pytest.approx(theirs["recall@k"][k])
    assert ours.mrr_at_10 == pytest.approx(theirs["mrr@k"][10])
    assert ours.ndcg_at_10 == pytest.approx(theirs["ndcg@k"][10])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_graded_ndcg_equals_scikit_learn(seed):
    from sklearn.metrics import ndcg_score

    corpus, qrels, rankings = _random_task(seed)
    compared = 0
    for qid, rel in qrels.items():
        ranked = rankings[qid]
        # scikit-learn wants a score for every document: rank order, unranked last (score 0)
        scores = np.zeros(len(corpus))
        for i, d in enumerate(ranked):
            scores[corpus.index(d)] = len(corpus) * 2 - i
        true = np.array([rel.get(d, 0) for d in corpus], dtype=float)
        # unranked documents tie at score 0; sklearn averages ties, so only
        # compare where every relevant document in the top 10 is ranked
        ours = ndcg_at_k(ranked, rel, 10)
        if len(ranked) >= 10:
            theirs = ndcg_score(true[None, :], scores[None, :], k=10)
            assert ours == pytest.approx(theirs), qid
            compared += 1
    assert compared >= 20


# ---------------------------------------------------------------- loaders


def _squad(path: Path, paragraphs: list[tuple[str, list[str]]], titles=("A",)) -> Path:
    """A SQuAD v1.1 file: paragraphs spread over the given article titles."""
    data = [{"title": t, "paragraphs": []} for t in titles]
    for n, (context, questions) in enumerate(paragraphs):
        data[n % len(titles)]["paragraphs"].append(
            {
                "context": context,
                "qas": [
                    {"id": f"id{n}-{i}", "question": q, "answers": [{"answer_start": 0, "text": context[:3]}]}
                    for i, q in enumerate(questions)
                ],
            }
        )
    path.write_text(json.dumps({"version": "1.1", "data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_squad(tmp_path):
    f = _squad(
        tmp_path / "zh.json",
        [("黑豹队的防守只丢了308分。", ["黑豹队丢了多少分？", "防守如何？"]), ("野马队赢得了超级碗。", ["谁赢了？"])],
    )
    ds = load_squad(f)
    assert [a.paragraphs for a in ds.articles] == [("黑豹队的防守只丢了308分。",), ("野马队赢得了超级碗。",)]
    assert all(a.title == "" for a in ds.articles)  # no title in the embedded text
    assert ds.articles[0].language == "zh-Hans"
    assert [q.text for q in ds.queries] == ["黑豹队丢了多少分？", "防守如何？", "谁赢了？"]
    assert [dict(ds.qrels[q.id]) for q in ds.queries] == [
        {ds.articles[0].id: 1},
        {ds.articles[0].id: 1},
        {ds.articles[1].id: 1},
    ]
    assert len({a.id for a in ds.articles}) == 2


def test_load_squad_cross_lingual(tmp_path):
    zh = _squad(tmp_path / "zh.json", [("甲段。", ["问一？", "问二？"]), ("乙段。", ["问三？"])])
    en = _squad(tmp_path / "en.json", [("Para A.", ["Q one?", "Q two?"]), ("Para B.", ["Q three?"])])
    ds = load_squad(zh, questions=en)
    assert [a.paragraphs[0] for a in ds.articles] == ["甲段。", "乙段。"]  # documents from the first file
    assert [q.text for q in ds.queries] == ["Q one?", "Q two?", "Q three?"]  # questions from the second
    assert dict(ds.qrels[ds.queries[2].id]) == {ds.articles[1].id: 1}
    # same question ids in both directions: the zh and en runs are comparable question by question
    assert [q.id for q in ds.queries] == [q.id for q in load_squad(zh).queries]
    assert "en.json" in ds.name and "zh.json" in ds.name


def test_load_squad_refuses_misaligned_files(tmp_path):
    zh = _squad(tmp_path / "zh.json", [("甲段。", ["问一？", "问二？"]), ("乙段。", ["问三？"])])
    fewer = _squad(tmp_path / "p.json", [("Para A.", ["Q one?", "Q two?"])])
    with pytest.raises(DatasetError, match="1 paragraphs against 2"):
        load_squad(zh, questions=fewer)
    other_counts = _squad(tmp_path / "q.json", [("Para A.", ["Q one?"]), ("Para B.", ["Q two?", "Q three?"])])
    with pytest.raises(DatasetError, match="1 questions against 2"):
        load_squad(zh, questions=other_counts)


def test_load_squad_refuses_other_json(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(DatasetError, match="not SQuAD"):
        load_squad(f)
    f.write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetError, match="not JSON"):
        load_squad(f)
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "missing.json")


def _beir(root: Path, qrels: dict[str, str]) -> Path:
    root.mkdir()
    (root / "qrels").mkdir()
    corpus = [
        {"_id": "d1", "title": "Telecom fraud", "text": "Police solved 322,000 cases."},
        {"_id": "d2", "title": "", "text": "The weather was fine."},
        {"_id": "d3", "title": "Only a title", "text": ""},
    ]
    queries = [
        {"_id": "q1", "text": "How many fraud cases?"},
        {"_id": "q2", "text": "Weather?"},
        {"_id": "q3", "text": "A query nobody judged"},
        {"_id": "q4", "text": "judged irrelevant only"},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus) + "\n", encoding="utf-8")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8")
    for name, text in qrels.items():
        (root / "qrels" / name).write_text(text, encoding="utf-8")
    return root


def test_load_beir(tmp_path):
    root = _beir(
        tmp_path / "set",
        {
            "test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\nq2\td2\t1\nq4\td1\t0\n",
            "dev.tsv": "query-id\tcorpus-id\tscore\nq3\td2\t1\n",
        },
    )
    ds = load_dataset(root)
    assert isinstance(ds, RetrievalDataset)
    assert [q.id for q in ds.queries] == ["q1", "q2"]  # unjudged and zero-graded-only queries dropped
    assert dict(ds.qrels["q1"]) == {"d1": 2, "d3": 1}  # grades kept for nDCG
    by_id = {a.id: a for a in ds.articles}
    assert by_id["d1"].title == "Telecom fraud" and by_id["d1"].paragraphs == ("Police solved 322,000 cases.",)
    assert by_id["d3"].paragraphs == ("Only a title",)
    dev = load_beir(root, split="dev")
    assert [q.id for q in dev.queries] == ["q3"]
    with pytest.raises(DatasetError, match="no qrels/train.tsv"):
        load_beir(root, split="train")


def test_load_beir_needs_a_choice_between_qrels_files(tmp_path):
    root = _beir(tmp_path / "set", {"dev.tsv": "q1\td1\t1\n", "train.tsv": "q2\td2\t1\n"})
    with pytest.raises(DatasetError, match="--split"):
        load_beir(root)
    assert [q.id for q in load_beir(root, split="dev").queries] == ["q1"]  # no header line is fine


def test_load_beir_refuses_incomplete_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="corpus.jsonl"):
        load_beir(tmp_path / "empty")


def test_limit_keeps_the_whole_corpus(tmp_path):
    f = _squad(tmp_path / "zh.json", [("甲段。", ["问一？", "问二？"]), ("乙段。", ["问三？"])])
    ds = load_squad(f).limited(2)
    assert len(ds.queries) == 2 and len(ds.articles) == 2
    assert set(ds.qrels) == {q.id for q in ds.queries}
    with pytest.raises(DatasetError):
        load_squad(f).limited(0)


# ---------------------------------------------------------------- news proxy


def _jekyll(folder: Path, name: str, title: str, url: str, paragraphs: list[str]) -> None:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    folder.joinpath(name).write_text(
        f'---\nlayout: post\ntitle: "{title}"\ndate: 2021-01-02T00:00:00.000Z\n'
        f"author: 联合早报\nfrom: {url}\n---\n\n<div>{body}</div>\n",
        encoding="utf-8",
    )


def _news_folder(root: Path) -> Path:
    root.mkdir()
    _jekyll(root, "a.md", "国际油价大涨", "http://x.com/a", ["国际油价大涨", "国际油价周一上涨百分之三。", "分析师认为需求回升。"])
    _jekyll(root, "b.md", "疫苗接种开始", "http://x.com/b", ["多国周一开始接种新冠疫苗。"])
    _jekyll(root, "b-copy.md", "疫苗接种开始", "http://x.com/b", ["多国周一开始接种新冠疫苗。"])  # same URL
    _jekyll(root, "c.md", "股市", "http://x.com/c", ["标题太短的文章不作为问题。"])  # title too short
    _jekyll(root, "d.md", "台风登陆广东沿海", "http://x.com/d", ["强台风周二在广东沿海登陆。"])
    root.joinpath("e.md").write_bytes(b"\x00\x01binary")  # unreadable: passed over
    return root


def test_title_proxy_dataset(tmp_path):
    from qa_tools.evaluation import title_proxy_dataset

    root = _news_folder(tmp_path / "news")
    ds = title_proxy_dataset(root, 10, seed=3)
    assert sorted(q.text for q in ds.queries) == ["台风登陆广东沿海", "国际油价大涨", "疫苗接种开始"]
    assert all(a.title == "" for a in ds.articles)  # indexed without the title
    by_id = {a.id: a for a in ds.articles}
    for q in ds.queries:
        (doc,) = ds.qrels[q.id]
        assert q.text not in by_id[doc].paragraphs  # a paragraph repeating the title is dropped
    oil = next(a for a in ds.articles if "油价" in a.text)
    assert oil.paragraphs == ("国际油价周一上涨百分之三。", "分析师认为需求回升。")
    assert ds.notes and "PROXY" in ds.notes[0]
    # seeded: the same seed draws the same sample
    two = title_proxy_dataset(root, 2, seed=3)
    assert [q.text for q in two.queries] == [q.text for q in title_proxy_dataset(root, 2, seed=3).queries]
    assert len(two.articles) == 2


def test_lead_paragraphs_keeps_what_the_first_chunks_cover():
    from qa.chunk import chunk_article
    from qa_tools.evaluation import document_article, lead_paragraphs

    paragraphs = [f"第{i}段。" + "新闻内容很丰富，" * 8 + "结束。" for i in range(1, 8)]
    article = document_article("doc", "\n\n".join(paragraphs))
    full = chunk_article(article)
    assert len(full) == 7  # one chunk per paragraph here
    cut = lead_paragraphs(article, 3)
    assert cut.paragraphs == article.paragraphs[:3]
    assert [c.text for c in chunk_article(cut)] == [c.text for c in full[:3]]
    assert lead_paragraphs(article, 10) is article
    # a paragraph split into several chunks by the cut is left out (but the first always stays)
    long = document_article("long", "长句子的内容，" * 200 + "\n\n" + "第二段。" * 10)
    assert len(chunk_article(long)) > 2
    assert lead_paragraphs(long, 1).paragraphs == long.paragraphs[:1]


def test_spread_takes_evenly_spaced_questions(tmp_path):
    f = _squad(tmp_path / "zh.json", [(f"第{i}段。", [f"问{i}甲？", f"问{i}乙？"]) for i in range(5)])
    ds = load_squad(f)
    sub = ds.spread(5)
    assert [q.text for q in sub.queries] == ["问0甲？", "问1甲？", "问2甲？", "问3甲？", "问4甲？"]
    assert len(sub.articles) == 5 and set(sub.qrels) == {q.id for q in sub.queries}
    assert ds.spread(100) is ds


# ---------------------------------------------------------------- whole runs (fake model)

EVAL_DIR = Path(__file__).resolve().parents[1] / "eval"

_PARAGRAPHS = [
    ("2020年全国公安机关破获电信网络诈骗案件32.2万起，抓获犯罪嫌疑人36.1万名。", ["2020年破获了多少电信网络诈骗案件？"]),
    ("国际油价周一大幅上涨百分之三，布伦特原油期货收于每桶五十美元。", ["布伦特原油期货收于多少？"]),
    ("强台风周二在广东沿海登陆，数万居民被紧急疏散。", ["台风在哪里登陆？", "多少居民被疏散？"]),
    ("The central bank kept interest rates unchanged on Thursday.", ["Did the central bank change interest rates?"]),
    ("多国周一开始为医护人员接种新冠疫苗。", ["谁先接种疫苗？"]),
]


def _run_module(name: str):
    import importlib.util
    import sys

    sys.path.insert(0, str(EVAL_DIR))  # news_proxy.py imports run.py beside it
    try:
        spec = importlib.util.spec_from_file_location(f"eval_{name}", EVAL_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EVAL_DIR))
    return module


def test_evaluate_scores_what_index_search_returns(tmp_path):
    from qa.embed import HashEmbedder
    from qa_tools.evaluation import MODES, build_index, evaluate_index
    from qa.records import SearchFilters

    ds = load_squad(_squad(tmp_path / "zh.json", _PARAGRAPHS))
    embedder = HashEmbedder()
    built = build_index(ds, embedder, tmp_path / "index", progress=False)
    try:
        assert (built.documents, built.chunks) == (5, 5)
        report = evaluate_index(built, ds, embedder, MODES, progress=False)
        # differential: the report's metrics are those of Index.search's own rankings
        for mode_report in report.modes:
            rankings = {
                q.id: [
                    h.citation.article_id
                    for h in built.index.search(
                        q.text, k=100, mode=mode_report.mode, filters=SearchFilters(max_per_article=1)
                    ).hits
                ]
                for q in ds.queries
            }
            assert mode_report.metrics == score_rankings(rankings, ds.qrels)
            assert mode_report.failed_queries == 0
            assert mode_report.query_ms_median > 0
    finally:
        built.index.close()
    lexical = next(m for m in report.modes if m.mode == "lexical")
    assert lexical.metrics.recall[1] >= 0.8  # the questions reuse their paragraph's words
    assert all(m.metrics.recall[100] == 1.0 for m in report.modes)  # 5 documents: all retrieved
    data = report.as_dict()
    for mode in MODES:
        assert {"recall@1", "recall@5", "recall@10", "recall@100", "mrr@10", "ndcg@10"} <= set(data[mode])
        assert all(0.0 <= data[mode][key] <= 1.0 for key in ("recall@1", "mrr@10", "ndcg@10"))
        assert data[mode]["index_seconds"] > 0 and data[mode]["query_ms_median"] > 0
    assert data["_meta"]["documents"] == 5 and data["_meta"]["model"] == embedder.model


def test_runner_writes_json_markdown_and_plot(tmp_path, capsys):
    run = _run_module("run")
    dataset = _squad(tmp_path / "zh.json", _PARAGRAPHS)
    out = tmp_path / "out"
    code = run.main(
        [
            "--dataset", str(dataset), "--mode", "all", "--model", "hash", "--limit", "4", "--quiet",
            "--json", str(out / "r.json"), "--markdown", str(out / "r.md"), "--plot", str(out / "r.png"),
            "--workdir", str(tmp_path),
        ]
    )
    assert code == 0
    data = json.loads((out / "r.json").read_text(encoding="utf-8"))
    assert set(data) == {"dense", "lexical", "hybrid", "_meta"}
    assert data["hybrid"]["questions"] == 4 and data["_meta"]["documents"] == 5  # corpus stays whole
    assert len(data["dense"]["recall_curve"]) == 100
    table = (out / "r.md").read_text(encoding="utf-8")
    assert table.count("\n| dense |") == 1 and "| lexical |" in table and "| hybrid |" in table
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| hybrid |" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("qa-eval-")] == []  # index removed


def test_runner_one_mode_and_clear_errors(tmp_path, capsys):
    run = _run_module("run")
    zh = _squad(tmp_path / "zh.json", _PARAGRAPHS)
    code = run.main(["--dataset", str(zh), "--mode", "lexical", "--model", "hash", "--quiet",
                     "--json", str(tmp_path / "l.json")])
    assert code == 0
    assert set(json.loads((tmp_path / "l.json").read_text(encoding="utf-8"))) == {"lexical", "_meta"}
    short = _squad(tmp_path / "en.json", _PARAGRAPHS[:2])
    assert run.main(["--dataset", str(zh), "--questions", str(short), "--model", "hash", "--quiet"]) == 2
    assert "does not align" in capsys.readouterr().err
    assert run.main(["--dataset", str(tmp_path / "none.json"), "--model", "hash"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_news_proxy_runner(tmp_path, capsys):
    proxy = _run_module("news_proxy")
    root = _news_folder(tmp_path / "news")
    code = proxy.main(["--corpus", str(root), "--articles", "3", "--model", "hash", "--quiet",
                       "--json", str(tmp_path / "p.json"), "--markdown", str(tmp_path / "p.md")])
    assert code == 0
    data = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert data["_meta"]["proxy"] is True and data["_meta"]["documents"] == 3
    assert data["hybrid"]["questions"] == 3
    assert "PROXY" in (tmp_path / "p.md").read_text(encoding="utf-8")
    assert "PROXY" in capsys.readouterr().err
