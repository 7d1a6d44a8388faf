"""Load test: N concurrent clients asking questions of a running `qa serve`.

    qa serve --index index &                      # in another terminal
    python eval/load.py --clients 8 --seconds 20 --url http://127.0.0.1:8000

Each client is a thread with its own HTTP connection that asks questions from
a small built-in list (Chinese and English, some follow-ups with history) back
to back, for a bounded time, then stops. Prints requests/s, latency
percentiles (p50/p95/p99, milliseconds) and errors by kind. Not part of CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import threading
import time
from collections import Counter

import httpx

QUESTIONS: list[dict] = [
    {"question": "2020年破获了多少电信网络诈骗案件？"},
    {"question": "那2021年呢？", "history": ["2020年破获了多少电信网络诈骗案件？"]},
    {"question": "公安部如何推进国际执法合作？"},
    {"question": "習近平對打擊電信網絡詐騙作出了什麼指示？"},
    {"question": "电信网络诈骗犯罪有哪些新特点？"},
    {"question": "他们怎么说？", "history": ["公安部如何推进国际执法合作？"]},
    {"question": "How many telecom fraud cases did Chinese police solve in 2020?"},
    {"question": "How does China cooperate with other countries against telecom fraud?"},
    {"question": "What did Li Keqiang say about fraud?"},
    {"question": "and in Myanmar?", "history": ["Where are the overseas fraud gangs based?"]},
]


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def client(url: str, deadline: float, offset: int, mode: str, latencies: list, errors: Counter, lock) -> None:
    questions = itertools.islice(itertools.cycle(QUESTIONS), offset, None)
    with httpx.Client(base_url=url, timeout=60.0) as http:
        for body in questions:
            if time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            try:
                response = http.post("/api/ask", json={**body, "mode": mode, "top_k": 5})
                ok = response.status_code == 200 and "passages" in response.json()
                kind = None if ok else f"HTTP {response.status_code}"
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                kind = type(exc).__name__
            elapsed = time.perf_counter() - started
            with lock:
                if kind is None:
                    latencies.append(elapsed)
                else:
                    errors[kind] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "lexical"])
    args = parser.parse_args(argv)

    try:
        stats = httpx.get(args.url + "/api/stats", timeout=30).json()
        print(f"index: {stats['articles']} articles, {stats['chunks']} chunks, model {stats['model']}")
    except (httpx.HTTPError, KeyError, json.JSONDecodeError) as exc:
        print(f"load: cannot read {args.url}/api/stats ({exc}): is `qa serve` running?", file=sys.stderr)
        return 2

    with httpx.Client(base_url=args.url, timeout=60) as http:  # warm-up, not timed
        for body in QUESTIONS:
            http.post("/api/ask", json={**body, "mode": args.mode})

    latencies: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + args.seconds
    threads = [
        threading.Thread(target=client, args=(args.url, deadline, i, args.mode, latencies, errors, lock), daemon=True)
        for i in range(args.clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started

    ms = sorted(x * 1000 for x in latencies)
    n_err = sum(errors.values())
    print(
        f"clients {args.clients}  mode {args.mode}  {wall:.1f} s  requests {len(ms)}  "
        f"req/s {len(ms) / wall:.1f}  latency ms p50 {percentile(ms, 50):.0f}  p95 {percentile(ms, 95):.0f}  "
        f"p99 {percentile(ms, 99):.0f}  mean {statistics.fmean(ms) if ms else float('nan'):.0f}  "
        f"errors {n_err}" + (f" ({dict(errors)})" if n_err else "")
    )
    return 0 if n_err == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
