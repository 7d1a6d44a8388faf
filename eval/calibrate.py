"""Fit the relevance model and the "answerable" threshold; report them on held-out questions.

    python eval/calibrate.py [--shared ../shared] [--cache /tmp/qa_tune_cache] [--write]
    python eval/calibrate.py --stored OLD_RELEVANCE_JSON   # an earlier fit, on today's questions

Labelled questions, in Chinese, Traditional Chinese and English:

- answerable: XQuAD questions over its 240 paragraphs (zh, en, and the zh
  questions in Traditional script), the hand-written news paraphrase
  questions (zh and Traditional) over the paragraphs of 500 real articles,
  and the news questions of the scale evaluation (``eval/data/news_questions.jsonl``:
  zh, Traditional and English, their 151 articles added to the 500; their
  tuning half fits, their reporting half reports);
- unanswerable, built so that the archive truly has no answer:
  the same questions with their whole article removed from the collection
  (and BM25 statistics recomputed without it); questions of one collection
  asked of the other (Wikipedia questions of the news articles, news questions
  of the Wikipedia paragraphs); and nonsense strings (random characters and
  syllables).

Search is the product's: dense top 100 over the collection, BM25 real matches
(the index's formula), and for an English question its words in Chinese
(``qa.crosslingual``, a weighted BM25 leg of its own, scored per article as the reader scores it, and
half of the vector hybrid ranks by), fused by ``qa.fusion.fuse`` after the language offset
(``qa.fusion.language_adjusted``); relevance reads the question's own cosines, as the reader reports them;
every one of a question's top 5 passages is a labelled example (relevant: from the gold article of an
answerable question). A logistic model per mode is fitted on the FIT half
(XQuAD articles 0-23, even-numbered news and nonsense questions) and the
threshold set so that at most 5% of the fit half's answerable questions have
their best passage under it. Everything is reported on the other half.
``--write`` stores the models in ``qa/relevance.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

from tune_fusion import Encoder, news_pool, squad  # noqa: E402

from qa import fusion  # noqa: E402
from qa.default_model import DEFAULT_MODEL_ID  # noqa: E402
from qa.lexical import LexicalIndex, tokenize  # noqa: E402
from qa.crosslingual import Translator, mixed_query, words_text  # noqa: E402
from qa.ingest import read_file  # noqa: E402
from qa.lang import script_family  # noqa: E402
from qa.relevance import FEATURES, Pool, features  # noqa: E402

TOP = 5
DEPTH = 100
# Features per mode: chosen on the FIT half among every combination of qa.relevance.FEATURES
# (by the share of the fit half's unanswerable questions caught at 5% false flags).
MODES = {
    "hybrid": ("cosine_z", "pool_std", "lexical_share", "latin"),
    "dense": ("cosine_z", "pool_std", "latin"),
    "lexical": ("lexical_share", "latin"),
}
MAX_FALSE_FLAGS = 0.05


@dataclass
class Collection:
    name: str
    vectors: np.ndarray  # passages
    tokens: list[list[str]]
    article: np.ndarray  # per passage
    families: list[str]  # per passage: its script family (qa.lang.script_family), for the language offset
    _lexical: dict

    def lexical_without(self, removed: int | None) -> tuple[LexicalIndex, np.ndarray]:
        """BM25 over the collection without one article (statistics recomputed), and its passage rows."""
        if removed not in self._lexical:
            rows = np.flatnonzero(self.article != removed) if removed is not None else np.arange(len(self.article))
            self._lexical[removed] = (LexicalIndex.build([self.tokens[i] for i in rows]), rows)
        return self._lexical[removed]


@dataclass
class Question:
    text: str
    vector: np.ndarray
    language: str  # zh | zh-Hant | en
    gold: int | None  # the answering article in the collection asked, None: unanswerable
    kind: str  # answerable | article removed | other collection | nonsense
    collection: Collection
    removed: int | None  # the article taken out of the collection for this question
    fit: bool  # in the fitting half


def translations(questions: list[Question], translator: Translator) -> list[dict[str, float]]:
    """Each question's words in Chinese, as the reader looks them up over the collection asked
    (empty for a question that is not English)."""
    return [translator.tokens(q.text, known=q.collection.lexical_without(q.removed)[0].known) for q in questions]


def words_vectors(translated: list[dict[str, float]], encoder: Encoder, cache: Path) -> dict[str, np.ndarray]:
    """The Chinese words of every English question, as one text each (qa.crosslingual.words_text),
    embedded as queries: hybrid search mixes them into the question's dense vector."""
    texts = list(dict.fromkeys(words_text(t) for t in translated if t))
    return dict(zip(texts, encoder.encode(texts, "query", cache, "calib_words"))) if texts else {}


def search(q: Question, translated: dict[str, float], translator: Translator,
           words: dict[str, np.ndarray]) -> dict[str, list[tuple[dict, bool]]]:  # fmt: skip
    """Per mode, the top passages' features and whether each is relevant. ``translated``: the
    question's words in Chinese (:func:`translations`); ``words``: :func:`words_vectors`."""
    col = q.collection
    lexical, rows = col.lexical_without(q.removed)
    own = col.vectors[rows] @ q.vector  # the question's own cosines: what relevance reads, in every mode
    order = np.argsort(-own, kind="stable")[:DEPTH]
    own_rows, own_scores = rows[order], own[order]
    own_of = dict(zip(rows.tolist(), own.tolist()))
    # an English question's words in Chinese: a lexical leg of their own, and half of the vector hybrid
    # ranks by, as the index's reader does (dense mode keeps to the question's own vector)
    dense_rows, dense_scores = own_rows, own_scores
    if translated and translator.question_share < 1.0:
        mixed = col.vectors[rows] @ mixed_query(q.vector, words[words_text(translated)], translator.question_share)
        order = np.argsort(-mixed, kind="stable")[:DEPTH]
        dense_rows, dense_scores = rows[order], mixed[order]
    tokens = tokenize(q.text)
    lex_local, lex_scores = lexical.search(tokens, DEPTH)
    lex_rows = rows[lex_local]
    lexical_max = lexical.max_score(tokens)
    pool = Pool.of(own_scores, lexical_max, q.text)
    lex_of = dict(zip(lex_rows.tolist(), lex_scores.tolist()))
    legs = []
    if translated:
        # scored per article, as the reader does (Index._article_bm25): every candidate passage
        # gets its article's BM25 for the translated words
        leg_local, _ = lexical.search(list(translated), DEPTH, weights=translated)
        leg_max = lexical.max_score(list(translated), weights=translated)
        per_article = lexical.group_scores(translated, col.article[rows])
        candidates = np.unique(np.concatenate([dense_rows, lex_rows, rows[leg_local]]))
        legs.append(fusion.LexicalLeg(candidates, per_article[col.article[candidates]], leg_max,
                                      fusion.TRANSLATED_WEIGHT))  # fmt: skip
    # ranked by cosines adjusted for the pull of the question's own language, as the reader ranks them
    family = script_family(q.text)
    adjusted = fusion.language_adjusted(dense_scores, [col.families[r] for r in dense_rows.tolist()], family)
    own_adjusted = fusion.language_adjusted(own_scores, [col.families[r] for r in own_rows.tolist()], family)
    fused = fusion.fuse(dense_rows, adjusted, lex_rows, lex_scores, n_query_tokens=len(tokens),
                        lexical_max=lexical_max, legs=legs)  # fmt: skip
    listed = {"hybrid": set(dense_rows.tolist()), "dense": set(own_rows.tolist()), "lexical": set()}
    out = {}
    for mode, ranked in (
        ("hybrid", [f.row for f in fused]),
        ("dense", own_rows[np.argsort(-own_adjusted, kind="stable")].tolist()),
        ("lexical", lex_rows.tolist()),
    ):
        hits = []
        for row in ranked[:TOP]:
            dense = own_of[row] if row in listed[mode] else None  # the reader reports the question's own cosine
            lex = lex_of.get(row) if mode != "dense" else None
            hits.append((features(pool, dense, lex), q.gold is not None and int(col.article[row]) == q.gold))
        out[mode] = hits
    return out


def nonsense(n: int, seed: int = 11) -> list[tuple[str, str]]:
    """Strings no archive answers: random common Chinese characters, random Latin syllables."""
    rng = random.Random(seed)
    hanzi = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
    syllables = ["zx", "qv", "blor", "kra", "mip", "tuv", "grel", "sno", "wab", "fyx", "pleo", "drun", "vosk"]
    out = []
    for i in range(n):
        if i % 2:
            words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(2, 5))]
            out.append((" ".join(words), "en"))
        else:
            out.append(("".join(rng.choice(hanzi) for _ in range(rng.randint(4, 14))) + rng.choice(["？", "", "吗？"]), "zh"))
    return out


def build(shared: Path, cache: Path, encoder: Encoder) -> list[Question]:
    from opencc import OpenCC

    s2t = OpenCC("s2t")
    xq = shared / "datasets" / "xquad"
    contexts, zh = squad(xq / "xquad.zh.json")
    _, en = squad(xq / "xquad.en.json")
    article_of_context = np.zeros(len(contexts), dtype=np.int64)
    for _, ctx, art in zh:
        article_of_context[ctx] = art
    wiki = Collection("XQuAD", encoder.encode(contexts, "passage", cache, "xquad_zh_p"),
                      [tokenize(c) for c in contexts], article_of_context,
                      [script_family(c) for c in contexts], {})  # fmt: skip
    pool = news_pool(shared / "corpus" / "waimei")
    scale = [json.loads(line) for line in (ROOT / "eval" / "data" / "news_questions.jsonl").read_text().splitlines()
             if line.strip()]  # fmt: skip
    for name in dict.fromkeys(d["file"] for d in scale):  # their articles join the collection
        article = read_file(shared / "corpus" / name, shared / "corpus")
        pool.append((name, [p for p in article.paragraphs if len(p) >= 15]))
    paragraphs = [p for _, paras in pool for p in paras]
    news = Collection("news", encoder.encode(paragraphs, "passage", cache, "news_p"), [tokenize(p) for p in paragraphs],
                      np.array([i for i, (_, paras) in enumerate(pool) for _ in paras]),
                      [script_family(p) for p in paragraphs], {})  # fmt: skip
    items = [json.loads(line) for line in (ROOT / "eval" / "data" / "news_paraphrase.jsonl").read_text().splitlines() if line.strip()]
    article_index = {name: i for i, (name, _) in enumerate(pool)}

    questions: list[Question] = []

    def add(texts_langs, golds, collection, fits, kind_present="answerable"):
        texts = [t for t, _ in texts_langs]
        vectors = encoder.encode(texts, "query", cache, f"calib_{collection.name}")
        for (text, lang), v, gold, fit in zip(texts_langs, vectors, golds, fits):
            other = news if collection is wiki else wiki
            questions.append(Question(text, v, lang, gold, kind_present, collection, None, fit))
            questions.append(Question(text, v, lang, None, "article removed", collection, gold, fit))
            questions.append(Question(text, v, lang, None, "other collection", other, None, fit))

    for lang, qs in (("zh", zh), ("en", en), ("zh-Hant", [(s2t.convert(q), c, a) for q, c, a in zh])):
        add([(q, lang) for q, _, _ in qs], [a for _, _, a in qs], wiki, [a < 24 for _, _, a in qs])
    for lang, convert in (("zh", lambda t: t), ("zh-Hant", s2t.convert)):
        add([(convert(it["question"]), lang) for it in items], [article_index[it["file"]] for it in items], news,
            [i % 2 == 0 for i in range(len(items))])  # fmt: skip
    for lang in ("zh-Hans", "zh-Hant", "en"):
        mine = [d for d in scale if d["lang"] == lang]
        add([(d["question"], "zh" if lang == "zh-Hans" else lang) for d in mine], [article_index[d["file"]] for d in mine],
            news, [d["split"] == "tune" for d in mine])  # fmt: skip
    junk = nonsense(300)
    vectors = encoder.encode([t for t, _ in junk], "query", cache, "calib_nonsense")
    for i, ((text, lang), v) in enumerate(zip(junk, vectors)):
        for col in (wiki, news):
            questions.append(Question(text, v, lang, None, "nonsense", col, None, (i // 2) % 2 == 0))
    return questions


def fit(rows: list[tuple[dict, bool]], names: tuple[str, ...]) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.array([[r[0][f] for f in names] for r in rows])
    y = np.array([r[1] for r in rows])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def best_relevance(hits, coef, intercept, names) -> float:
    if not hits:
        return -1.0  # below any threshold: nothing was found
    z = np.array([[h[0][f] for f in names] for h in hits]) @ coef + intercept
    return float(1 / (1 + np.exp(-z.max())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/qa_tune_cache"))
    parser.add_argument("--write", action="store_true", help="store the fitted models in qa/relevance.json")
    parser.add_argument("--stored", type=Path, metavar="JSON",
                        help="report the calibrations of this file (a qa/relevance.json) instead of fitting")
    parser.add_argument("--plot", type=Path, default=ROOT / "eval" / "results" / "calibration.png")
    args = parser.parse_args()
    encoder = Encoder("qa")
    questions = build(args.shared, args.cache, encoder)
    translator = Translator()
    translated = translations(questions, translator)
    words = words_vectors(translated, encoder, args.cache)
    results = [search(q, t, translator, words) for q, t in zip(questions, translated)]
    print(f"{len(questions)} questions: " + ", ".join(
        f"{k} {sum(q.kind == k for q in questions)}" for k in ("answerable", "article removed", "other collection", "nonsense")))  # fmt: skip
    out = {"model": DEFAULT_MODEL_ID, "calibrations": []}
    curves = {}
    stored = {} if args.stored is None else {c["mode"]: c for c in json.loads(args.stored.read_text())["calibrations"]}
    for mode, names in MODES.items():
        answerable = np.array([q.gold is not None for q in questions])
        fit_mask = np.array([q.fit for q in questions])
        found = np.array([bool(r[mode]) for r in results])  # no passage at all is "nothing found" anyway
        if mode in stored:  # a calibration fitted before, reported on today's questions and search
            names, coef = tuple(stored[mode]["features"]), np.array(stored[mode]["coefficients"])
            intercept = float(stored[mode]["intercept"])
        else:
            coef, intercept = fit([h for q, r in zip(questions, results) if q.fit for h in r[mode]], names)
        best = np.array([best_relevance(r[mode], coef, intercept, names) for r in results])
        if mode in stored:
            threshold = float(stored[mode]["threshold"])
        else:
            threshold = float(np.quantile(best[fit_mask & answerable & found], MAX_FALSE_FLAGS))
        report = ~fit_mask
        false_flags = float(np.mean(best[report & answerable] < threshold))
        caught = float(np.mean(best[report & ~answerable] < threshold))
        # the trade-off read off the report half itself, at exactly 5% false flags (optimistic: for comparison)
        t5 = float(np.quantile(best[report & answerable], MAX_FALSE_FLAGS))
        caught_at_5 = float(np.mean(best[report & ~answerable] < t5))
        print(f"\n## {mode}: relevance = sigmoid({intercept:+.2f} " + " ".join(
            f"{c:+.2f}·{n}" for c, n in zip(coef, names)) + f"); threshold {threshold:.3f}")  # fmt: skip
        print(f"report half, threshold from the fit half: answerable wrongly flagged {false_flags:.1%}; "
              f"unanswerable flagged {caught:.1%}  (on the report half's own curve at 5%: {caught_at_5:.1%})")  # fmt: skip
        print("| report half | collection asked | questions | flagged as unanswerable |")
        print("|---|---|---|---|")
        for kind in ("answerable", "article removed", "other collection", "nonsense"):
            for lang in ("zh", "zh-Hant", "en"):
                for name in ("XQuAD", "news"):
                    m = report & np.array([q.kind == kind and q.language == lang and q.collection.name == name
                                           for q in questions])  # fmt: skip
                    if m.any():
                        print(f"| {kind}, {lang} | {name} | {int(m.sum())} | {np.mean(best[m] < threshold):.1%} |")
        # relevance as a probability: how often a passage of a given relevance is relevant (report half)
        rel_rows = [(best_relevance([h], coef, intercept, names), h[1]) for q, r in zip(questions, results)
                    if not q.fit for h in r[mode]]  # fmt: skip
        bins = np.linspace(0, 1, 6)
        print("| relevance of a passage | passages | share relevant |")
        print("|---|---|---|")
        for lo, hi in zip(bins[:-1], bins[1:]):
            inside = [y for p, y in rel_rows if lo <= p < hi or (hi == 1 and p == 1)]
            if inside:
                print(f"| {lo:.1f}–{hi:.1f} | {len(inside)} | {np.mean(inside):.2f} |")
        print("| answerable wrongly flagged (report half's own curve) | unanswerable flagged |")
        print("|---|---|")
        for rate in (0.01, 0.02, 0.05, 0.10, 0.20):
            t = float(np.quantile(best[report & answerable], rate))
            print(f"| {rate:.0%} | {np.mean(best[report & ~answerable] < t):.1%} |")
        grid = np.linspace(0, 1, 201)
        curves[mode] = [(float(np.mean(best[report & answerable] < t)), float(np.mean(best[report & ~answerable] < t)))
                        for t in grid]  # fmt: skip
        out["calibrations"].append({
            "model": DEFAULT_MODEL_ID, "mode": mode, "features": list(names),
            "coefficients": [round(float(c), 6) for c in coef], "intercept": round(intercept, 6),
            "threshold": round(threshold, 6),
            "report_half": {"answerable_wrongly_flagged": round(false_flags, 4), "unanswerable_flagged": round(caught, 4),
                            "unanswerable_flagged_at_5pct_on_its_own_curve": round(caught_at_5, 4)},
        })  # fmt: skip
    if args.write and stored:
        parser.error("--write stores what was fitted: not with --stored")
    if args.write:
        path = ROOT / "qa" / "relevance.json"
        path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwritten: {path}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for mode, points in curves.items():
            ax.plot([p[0] for p in points], [p[1] for p in points], label=mode)
        ax.axvline(MAX_FALSE_FLAGS, color="grey", linestyle=":", label="5% answerable flagged")
        ax.set_xlabel("answerable questions wrongly flagged")
        ax.set_ylabel("unanswerable questions flagged")
        ax.set_xlim(0, 0.3)
        ax.legend()
        ax.set_title("'Nothing answers this': report half")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
