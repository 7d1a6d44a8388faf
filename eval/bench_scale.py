"""Scale benchmark: the index at 100k and 1M chunks, and the real corpus folder.

    python eval/bench_scale.py                                  # everything (~1 h on 2 cores)
    python eval/bench_scale.py --sizes 100000 --kinds flat ivf  # a part
    python eval/bench_scale.py --phases corpus                  # only the 20k-file folder runs

Chunks are the real corpus's paragraphs (``../shared/corpus``), cycled with
distinct article ids, titles and URLs to reach each size (every cycle is a
near-duplicate of the archive, as news archives hold). Vectors are not from
the real model, which would take hours to embed a million chunks here: they
are 384-d bag-of-hashed-bigram vectors of each chunk's real text
(:class:`qa.embed.HashEmbedder`), so neighbours are real near-texts and an
approximate index faces structured data rather than uniform noise. Every
query is nonetheless embedded by the real default model (ONNX, the serving
path) so its cost is in the latencies; the search then uses the question's
hashed vector.

Each phase runs in its own process, whose peak RSS is read from ``wait4``.
Printed as a table and written to ``eval/results/bench_scale.json``.
Timings are medians or percentiles of one run, on whatever else the machine
was doing: the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.embed import Embedder, HashEmbedder  # noqa: E402
from qa.records import Article, SearchFilters  # noqa: E402

RESULTS = ROOT / "eval" / "results"
MODES = ("dense", "lexical", "hybrid")


# --- data ----------------------------------------------------------------------------


def corpus_articles(corpus: Path, cache: Path) -> list[tuple[Article, int]]:
    """Every article of the corpus with its chunk count (cached as JSON lines after the first read)."""
    if cache.is_file():
        out = []
        with open(cache, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                n = d.pop("_chunks")
                d["tags"], d["paragraphs"] = tuple(d["tags"]), tuple(d["paragraphs"])
                out.append((Article(**d), n))
        return out
    from qa.chunk import chunk_article
    from qa.ingest import iter_articles
    from qa.records import ReadReport, to_dict

    out = []
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".tmp"), "w", encoding="utf-8") as f:
        for a in iter_articles([corpus], ReadReport()):
            n = len(chunk_article(a))
            out.append((a, n))
            f.write(json.dumps({**to_dict(a), "_chunks": n}, ensure_ascii=False) + "\n")
    cache.with_suffix(".tmp").replace(cache)
    return out


def copy_of(a: Article, c: int) -> Article:
    """The c-th copy of an article: another id, URL and title (so other vectors), same paragraphs."""
    if c == 0:
        return a
    return replace(a, id=f"{a.id}~{c}", title=f"{a.title}（{c}）", url=(a.url or a.path) + f"#copy{c}")


def generate(base: list[tuple[Article, int]], chunks: int) -> list[Article]:
    out, total = [], 0
    for c in itertools.count():
        for a, n in base:
            if total >= chunks:
                return out
            out.append(copy_of(a, c))
            total += n
    return out


class BenchEmbedder(Embedder):
    """Hashed-bigram vectors of the real text; queries also run through the real model
    (when ``real``), so a query costs what it costs in production."""

    backend = "hash"

    def __init__(self, real: Embedder | None = None):
        self._hash = HashEmbedder(384)
        self.model, self.dimension = self._hash.model, 384
        self.real = real

    def embed_queries(self, texts):
        if self.real is not None:
            self.real.embed_queries(texts)
        return self._hash.embed_queries(texts)

    def embed_passages(self, texts, progress=False):
        return self._hash.embed_passages(texts)


def real_query_model() -> Embedder:
    """The default model on the serving path: ONNX, concurrent questions batched."""
    from qa.embed import BatchingEmbedder
    from qa.loader import load_embedder

    return BatchingEmbedder(load_embedder(None, backend="onnx"))


# --- phases (each runs in a child process) ------------------------------------------------


def phase_build(args: dict) -> dict:
    from qa.index import Writer

    base = corpus_articles(Path(args["corpus"]), Path(args["cache"]))
    articles = generate(base, args["size"])
    started = time.perf_counter()
    with Writer(args["root"], BenchEmbedder(), ann=args["kind"], progress=False) as writer:
        for a in articles:
            writer.add(a, changed=False)
        report = writer.finish()
    return {
        "seconds": time.perf_counter() - started, "articles": report.articles, "chunks": report.chunks,
        "segments": report.segments, "commits": report.commits, "merges": report.merges,
        "embed_seconds": report.embed_seconds, "disk_bytes": _du(Path(args["root"])),
    }


def phase_convert(args: dict) -> dict:
    from qa.index import Writer

    shutil.copytree(args["source"], args["root"])
    started = time.perf_counter()
    with Writer(args["root"], BenchEmbedder(), ann=args["kind"], progress=False) as writer:
        report = writer.finish()
    return {"seconds": time.perf_counter() - started, "segments": report.segments,
            "disk_bytes": _du(Path(args["root"]))}  # fmt: skip


def phase_open(args: dict) -> dict:
    from qa.index import Index

    started = time.perf_counter()
    index = Index.open(args["root"], BenchEmbedder())
    opened = time.perf_counter() - started
    index.search("港口", k=5, mode="lexical")
    first = time.perf_counter() - started - opened
    stats = index.stats()
    return {"open_seconds": opened, "first_lexical_seconds": first, "chunks": stats.chunks, "segments": stats.segments}


def date_filters(index) -> dict[str, SearchFilters]:
    """Date windows allowing about 1% and 50% of the chunks."""
    from qa.index.segment import NO_DATE

    published = np.concatenate([np.asarray(s.data.published) for s in index._version.segments])
    published = np.sort(published[published != NO_DATE])
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))  # noqa: E731
    lo = published[int(0.60 * len(published))]
    hi = published[min(len(published) - 1, int(0.61 * len(published)))]
    return {
        "none": None,
        "date~1%": SearchFilters(date_from=iso(lo), date_to=iso(hi)),
        "date~50%": SearchFilters(date_from=iso(published[len(published) // 2])),
    }


def questions(base_cache: Path, n: int, seed: int = 7) -> list[str]:
    with open(base_cache, encoding="utf-8") as f:
        titles = [json.loads(line)["title"] for line in f]
    rng = random.Random(seed)
    return [t for t in rng.sample(titles, min(n, len(titles))) if len(t) >= 4][:n]


def phase_queries(args: dict) -> dict:
    from threadpoolctl import threadpool_limits

    from qa.index import Index

    threadpool_limits(limits=1)  # as `qa serve` runs searches (see qa.server)
    index = Index.open(args["root"], BenchEmbedder(real_query_model()))
    qs = questions(Path(args["cache"]), args["queries"])
    filters = date_filters(index)
    index.search(qs[0], k=5, mode="hybrid")  # warm-up: model, dictionary
    out: dict = {"latency_ms": {}, "allowed_share": {}}
    total = index.stats().chunks
    for name, f in filters.items():
        if f is not None:
            masks = index._masks(__import__("qa.index.filters", fromlist=["plan"]).plan(
                f, lambda t, names: index.catalog.ids_for(t, names, create=False)))  # fmt: skip
            out["allowed_share"][name] = sum(int(np.count_nonzero(m)) for m in masks.values()) / total
        for mode in MODES:
            times = []
            for q in qs:
                started = time.perf_counter()
                index.search(q, k=5, mode=mode, filters=f)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            out["latency_ms"][f"{mode}/{name}"] = {"p50": _pct(times, 50), "p99": _pct(times, 99)}
    # recall@10 of the index's own vector search against exact search over the same vectors
    plain = Index.open(args["root"], BenchEmbedder())
    version = plain._version
    if any(seg.vectors.ann is not None for seg in version.segments):
        hits = []
        for q in qs:
            vector = plain.embedder.embed_queries([q])[0]
            _rows, _scores, keys = plain._dense(vector, 10, version.live)
            exact_keys, exact_scores = [], []
            for seg in version.segments:
                live = version.live[seg.id]
                allowed = len(seg) if live is None else int(np.count_nonzero(live))
                positions, scores = seg.vectors.exact(vector, 10, live, allowed)
                exact_keys.append(np.asarray(seg.data.keys)[positions])
                exact_scores.append(scores)
            order = np.lexsort((np.concatenate(exact_keys), -np.concatenate(exact_scores)))[:10]
            truth = set(np.concatenate(exact_keys)[order].tolist())
            hits.append(len(truth & set(keys.tolist())) / max(1, len(truth)))
        out["recall@10_vs_exact"] = statistics.mean(hits)
    return out


def new_articles(base, count: int, tag: int) -> list[Article]:
    rng = random.Random(tag)
    return [copy_of(a, 1000 + tag * 10_000 + i) for i, (a, _) in enumerate(rng.sample(base, count))]


def phase_updates(args: dict) -> dict:
    from qa.index import Writer

    base = corpus_articles(Path(args["corpus"]), Path(args["cache"]))
    out = {}
    for n in args.get("adds", [1, 100, 1000]):
        batch = new_articles(base, n, n)
        started = time.perf_counter()
        with Writer(args["root"], BenchEmbedder(), progress=False) as writer:
            for a in batch:
                writer.add(a, changed=False)
            report = writer.finish(merge=False)
        total = time.perf_counter() - started
        out[f"add {n}"] = {"seconds": total - report.embed_seconds, "embed_seconds": report.embed_seconds,
                           "chunks": report.chunks_embedded + report.chunks_reused}  # fmt: skip
    if args.get("delete", True):
        victim = new_articles(base, 1, 1)[0].id
        started = time.perf_counter()
        with Writer(args["root"], BenchEmbedder(), progress=False) as writer:
            writer.delete(victim)
            writer.finish(merge=False)
        out["delete 1"] = {"seconds": time.perf_counter() - started}
        started = time.perf_counter()
        with Writer(args["root"], BenchEmbedder(), progress=False) as writer:
            report = writer.finish()
        out["merge policy"] = {"seconds": time.perf_counter() - started, "merges": report.merges,
                               "segments": report.segments}  # fmt: skip
    return out


def phase_serve(args: dict) -> None:
    """The server process: the app on a port, the bench embedder with the real query model."""
    import uvicorn

    from qa.server import create_app

    app = create_app(args["root"], embedder=BenchEmbedder(real_query_model()), reload_interval_s=1.0)
    uvicorn.run(app, host="127.0.0.1", port=args["port"], log_level="warning", access_log=False)


def phase_corpus(args: dict) -> dict:
    """The real 20k-file folder through `qa index`'s code path: build, no-op, add one, delete one."""
    from qa.index import sync_folders
    from qa.records import ReadReport

    folder, root = Path(args["folder"]), Path(args["root"])
    out = {}

    def run(name: str) -> None:
        report = ReadReport()
        started = time.perf_counter()
        result = sync_folders(root, [folder], BenchEmbedder(), report, progress=False)
        out[name] = {"seconds": time.perf_counter() - started, "files": report.files_seen,
                     "read": report.articles + report.duplicates + len(report.skipped),
                     "articles": result.articles, "chunks": result.chunks, "segments": result.segments,
                     "embed_seconds": result.embed_seconds}  # fmt: skip

    if args.get("build", True):
        run("build")
    run("no-op")
    new = folder / "zz-bench-new-article.md"
    new.write_text("---\ntitle: 基准测试新增文章\ndate: 2021-01-02T00:00:00Z\nfrom: https://example.com/bench-new\n"
                   "author: 测试日报\n---\n<p>基准测试新增的一篇文章，用来测量增加一篇文章的时间。</p>\n",
                   encoding="utf-8")  # fmt: skip
    run("add one file")
    new.unlink()
    run("delete one file")
    return out


PHASES = {
    "build": phase_build, "convert": phase_convert, "open": phase_open, "queries": phase_queries,
    "updates": phase_updates, "serve": phase_serve, "corpus": phase_corpus,
}


# --- the parent: runs phases in child processes, load clients, the table ----------------------


def child(phase: str, args: dict, *, timeout: float = 7200) -> tuple[dict, float]:
    """Run a phase in a new process; (its JSON result, its peak RSS in GiB)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--phase", phase, "--args", json.dumps(args)],
        stdout=subprocess.PIPE, text=True,
    )
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"phase {phase} failed ({status}); output: {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024**2


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def _load(url: str, clients: int, seconds: float, qs: list[str]) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one(i: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for q in itertools.islice(itertools.cycle(qs), i * 7, None):
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                try:
                    r = await http.post("/api/ask", json={"question": q, "top_k": 5, "mode": "hybrid"})
                    if r.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99), "errors": errors}  # fmt: skip


WRK_SCRIPT = """
local questions = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/api/ask?k=5&mode=hybrid&q=" .. questions[(i %% #questions) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK {\\"requests\\": %%d, \\"errors\\": %%d, \\"non2xx\\": %%d, \\"seconds\\": %%f, \\"p50_ms\\": %%f, \\"p99_ms\\": %%f}\\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _load_wrk(url: str, clients: int, seconds: float, qs: list[str]) -> dict:
    """The same load from wrk (C, two threads): the client costs the shared cores far less than Python."""
    from urllib.parse import quote

    script = Path(RESULTS / "bench_scale_wrk.lua")
    script.write_text(WRK_SCRIPT % ", ".join(json.dumps(quote(q, safe="")) for q in qs), encoding="utf-8")
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{max(1, int(seconds))}s", "--timeout", "30s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    stats = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    return {"clients": clients, "requests": stats["requests"], "rps": stats["requests"] / stats["seconds"],
            "p50_ms": stats["p50_ms"], "p99_ms": stats["p99_ms"], "errors": stats["errors"] + stats["non2xx"],
            "client": "wrk"}  # fmt: skip


def _load_any(url: str, clients: int, seconds: float, qs: list[str]) -> dict:
    if shutil.which("wrk"):
        return _load_wrk(url, clients, seconds, qs)
    return {**asyncio.run(_load(url, clients, seconds, qs)), "client": "python"}


def serve_bench(root: Path, corpus: str, cache: str, qs: list[str], seconds: float, port: int) -> dict:
    import httpx

    server = subprocess.Popen([sys.executable, __file__, "--phase", "serve", "--args",
                               json.dumps({"root": str(root), "port": port})])  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        out = {}
        _load_any(url, 8, 3, qs)  # warm-up
        for clients in (8, 32):
            out[f"idle {clients}"] = _load_any(url, clients, seconds, qs)
        updater = subprocess.Popen([sys.executable, __file__, "--phase", "updates", "--args", json.dumps(
            {"root": str(root), "corpus": corpus, "cache": cache, "adds": [1000], "delete": False})],
            stdout=subprocess.DEVNULL)  # fmt: skip
        during = []
        while updater.poll() is None:
            during.append(_load_any(url, 32, 5, qs))
        out["during 1000-article update 32"] = {
            "rps": statistics.mean(d["rps"] for d in during) if during else float("nan"),
            "p50_ms": statistics.median(d["p50_ms"] for d in during) if during else float("nan"),
            "p99_ms": max(d["p99_ms"] for d in during) if during else float("nan"),
            "errors": sum(d["errors"] for d in during), "windows": len(during),
        }
        out["after update 32"] = _load_any(url, 32, seconds / 2, qs)
        status = Path(f"/proc/{server.pid}/status").read_text()
        field = lambda name: int(next(l for l in status.splitlines() if l.startswith(name)).split()[1]) / 1024**2  # noqa: E731,E741
        out["server_rss_gib"] = field("VmRSS:")
        out["server_peak_rss_gib"] = field("VmHWM:")
        return out
    finally:
        server.terminate()
        server.wait(timeout=60)


def markdown(results: dict) -> str:
    """The tables of eval/README.md from a results file."""
    out = []
    if "corpus" in results:
        c = results["corpus"]
        out += ["| the 20,008-file corpus folder (197,672 chunks) | seconds |", "|---|---|"]
        for name in ("build", "no-op", "add one file", "delete one file"):
            if name in c:
                out.append(f"| {name} | {c[name]['seconds']:.2f} |")
        out += [f"| build peak RSS | {c['peak_rss_gib']:.2f} GiB |", ""]
    for size, per in results.get("sizes", {}).items():
        kinds = [k for k in per if "build" in per[k]]
        if not kinds:
            continue
        out += [f"**{int(size):,} chunks**", "", "| | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]

        def row(label, fn):
            cells = []
            for k in kinds:
                try:
                    cells.append(fn(per[k]))
                except (KeyError, TypeError):
                    cells.append("—")
            out.append(f"| {label} | " + " | ".join(cells) + " |")

        row("build (s)", lambda e: f"{e['build']['seconds']:.0f}" + (
            f" (+{e['build']['plus_exact_build_seconds']:.0f} exact build)" if "converted_from" in e["build"] else ""))
        row("build peak RSS (GiB)", lambda e: f"{e['build']['peak_rss_gib']:.2f}")
        row("disk (GB)", lambda e: f"{e['build']['disk_bytes'] / 1e9:.2f}")
        row("open (s)", lambda e: f"{e['open']['open_seconds']:.2f}")
        for n in ("add 1", "add 100", "add 1000", "delete 1"):
            row(f"{n} article(s), s (no embedding)", lambda e, n=n: f"{e['updates'][n]['seconds']:.2f}")
        for mode in MODES:
            for f in ("none", "date~1%", "date~50%"):
                row(f"{mode}, {f}: p50 / p99 ms", lambda e, m=mode, f=f: "{p50:.1f} / {p99:.1f}".format(
                    **e["queries"]["latency_ms"][f"{m}/{f}"]))
        row("recall@10 vs exact", lambda e: f"{e['queries']['recall@10_vs_exact']:.3f}")
        for name in ("idle 8", "idle 32", "during 1000-article update 32"):
            row(f"serve {name}: req/s, p50 / p99 ms", lambda e, n=name: "{rps:.0f}, {p50_ms:.0f} / {p99_ms:.0f}".format(
                **e["serve"][n]))
        row("serve RSS (GiB)", lambda e: f"{e['serve']['server_rss_gib']:.2f}")
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf"], help="ANN kinds (the first is the exact baseline)")
    parser.add_argument("--phases", nargs="+", default=["corpus", "scale", "serve"],
                        help="corpus, scale (build, open, queries, updates), queries (again, on built indexes), serve")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--work", default="/tmp/qa-bench-scale", help="where the indexes are built (GBs)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--serve-seconds", type=float, default=20)
    parser.add_argument("--json", default=str(RESULTS / "bench_scale.json"))
    parser.add_argument("--table", action="store_true", help="print the Markdown tables of --json and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown(json.loads(Path(args.json).read_text())))
        return 0
    if args.phase:
        result = PHASES[args.phase](json.loads(args.args))
        if result is not None:
            print(json.dumps(result))
        return 0

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "corpus-articles.jsonl"
    corpus_articles(Path(args.corpus), cache)  # read once, here
    out_path = Path(args.json)
    results: dict = {"sizes": {}}
    if out_path.is_file():  # phases run again replace their own entries only
        results = json.loads(out_path.read_text())
    results.update({"load_before": os.getloadavg(), "cpus": os.cpu_count()})
    out_path.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out_path.write_text(json.dumps(results, indent=1, ensure_ascii=False))

    if "corpus" in args.phases:
        folder = work / "corpus-folder"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(args.corpus, folder)
        shutil.rmtree(work / "corpus-index", ignore_errors=True)
        res, rss = child("corpus", {"folder": str(folder), "root": str(work / "corpus-index")})
        results["corpus"] = {**res, "peak_rss_gib": rss}
        print("corpus folder:", json.dumps(results["corpus"]), flush=True)
        save()
    qs = questions(cache, args.queries)
    for size in args.sizes:
        per = results["sizes"].setdefault(str(size), {})
        for i, kind in enumerate(args.kinds):
            root = work / f"{size}-{kind}"
            entry: dict = per.get(kind, {})
            if "scale" in args.phases:
                shutil.rmtree(root, ignore_errors=True)
                if i == 0 or size <= 200_000:
                    res, rss = child("build", {"root": str(root), "size": size, "kind": kind,
                                               "corpus": args.corpus, "cache": str(cache)})  # fmt: skip
                    entry["build"] = {**res, "peak_rss_gib": rss}
                else:  # a large approximate index: the exact one's segments, converted (no tokenising again)
                    res, rss = child("convert", {"source": str(work / f"{size}-{args.kinds[0]}"), "root": str(root),
                                                 "kind": kind})  # fmt: skip
                    entry["build"] = {**res, "peak_rss_gib": rss, "converted_from": args.kinds[0],
                                      "plus_exact_build_seconds": per[args.kinds[0]]["build"]["seconds"]}  # fmt: skip
                print(size, kind, "build:", json.dumps(entry["build"]), flush=True)
            if "scale" in args.phases or "queries" in args.phases:
                res, rss = child("open", {"root": str(root)})
                entry["open"] = {**res, "peak_rss_gib": rss}
                res, rss = child("queries", {"root": str(root), "queries": args.queries, "cache": str(cache)})
                entry["queries"] = {**res, "peak_rss_gib": rss}
                print(size, kind, "queries:", json.dumps(entry["queries"]), flush=True)
            if "scale" in args.phases:
                res, rss = child("updates", {"root": str(root), "corpus": args.corpus, "cache": str(cache)})
                entry["updates"] = {**res, "peak_rss_gib": rss}
                print(size, kind, "updates:", json.dumps(entry["updates"]), flush=True)
            if "serve" in args.phases and kind == args.kinds[-1]:
                entry["serve"] = serve_bench(root, args.corpus, str(cache), qs, args.serve_seconds, 8765)
                print(size, kind, "serve:", json.dumps(entry["serve"]), flush=True)
            per[kind] = entry
            save()
    results["load_after"] = os.getloadavg()
    save()
    print(f"written: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
