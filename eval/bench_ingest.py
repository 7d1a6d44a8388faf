"""Parse + chunk throughput over a folder of articles (default ../shared/corpus).

    python eval/bench_ingest.py [FOLDER] [--repeat N] [--limit FILES]

Prints files/s, articles/s and chunks/s (median over the repeats), the
process's peak RSS, and the peak Python memory traced (tracemalloc) over the
first --traced articles (tracing slows parsing ~5x; reading streams one
article at a time, so the peak does not grow with the folder beyond the
dedupe keys).
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from qa.chunk import chunk_article
from qa.ingest import iter_articles
from qa.records import ReadReport

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def one_pass(folder: Path, limit: int | None) -> tuple[ReadReport, float]:
    report, started = ReadReport(), time.perf_counter()
    for article in itertools.islice(iter_articles([folder], report), limit):
        report.chunks += len(chunk_article(article))
    return report, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=3, help="timed passes (median reported)")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many articles")
    parser.add_argument("--traced", type=int, default=1000, help="articles read under tracemalloc")
    args = parser.parse_args()
    if not args.folder.is_dir():
        print(f"bench_ingest: no folder {args.folder}", file=sys.stderr)
        return 2

    times, report = [], None
    for _ in range(args.repeat):
        report, seconds = one_pass(args.folder, args.limit)
        times.append(seconds)
    tracemalloc.start()
    one_pass(args.folder, min(args.traced, args.limit or args.traced))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t = statistics.median(times)
    print(f"folder: {args.folder}")
    print(
        f"files: {report.files_seen}  articles: {report.articles}  duplicates: {report.duplicates}  "
        f"skipped: {len(report.skipped)}  chunks: {report.chunks}"
    )
    print(f"seconds (median of {args.repeat}): {t:.1f}   runs: {', '.join(f'{x:.1f}' for x in times)}")
    print(f"files/s: {report.files_seen / t:.0f}  articles/s: {report.articles / t:.0f}  chunks/s: {report.chunks / t:.0f}")
    print(f"peak RSS: {rss_mib:.0f} MiB   peak traced Python memory ({args.traced} articles): {peak / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
