"""Count chunks that still carry boilerplate, over a folder of articles (default ../shared/corpus).

    python eval/check_boilerplate.py [FOLDER ...] [--examples N] [--limit ARTICLES]

Reads the folder as indexing does (qa.ingest.iter_articles, then
qa.chunk.chunk_article) and looks in every chunk for what cleaning should
have removed: staff credit and editor lines (standing alone or trailing a
paragraph), editor e-mail lines, paragraphs that are only an e-mail address,
HTML tags or entities left as text, feed footers, copyright notices, "read
more" links. Prints, per pattern, how many chunks match and a few examples
(article path and the text around the match). The target is 0; the exit
status is 1 when any chunk matches.

The patterns are written from the leftovers seen in the corpus, not copied
from qa.clean, so that a rule that misses (or a new source) shows up here.
Each pattern names a form of boilerplate precisely enough that ordinary
prose does not match it ("总编辑胡锡进" is not a credit line).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from qa.chunk import chunk_article
from qa.ingest import iter_articles
from qa.records import ReadReport

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"

_EMAIL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"

# name -> pattern searched in each paragraph of a chunk (re.MULTILINE: ^ and $ are paragraph ends)
PATTERNS: dict[str, re.Pattern] = {
    # 责任编辑：高静 / 责编：萧尔 / 网编 瑞哲 / 核稿：刘学源 / 审校 孙茉莉 / 文字整理：李洁思
    "credit line": re.compile(r"(?:责任编辑|責任編輯|责编|責編|网编|網編|文字整理|核稿|审校|審校)\s*[:：;；]"
                              r"|(?:责编|責編|网编|網編|审校|審校)\s+\S|编译 \S+ 发稿"),  # fmt: skip
    # 中央社: …。（編輯：郭無患）1090909
    "editor in brackets": re.compile(r"[（(]\s*(?:实习|實習)?(?:编辑|編輯|编译|編譯)\s*[:：]"),
    # 编辑：杨真心 / 翻译：晋其角 / 编辑｜李合子 as a paragraph of its own
    "credit paragraph": re.compile(r"^(?:编辑|編輯|编译|編譯|翻译|翻譯)\s*[:：｜|]\s*\S{1,20}$", re.MULTILINE),
    "editor e-mail": re.compile(r"(?:编辑|編輯|责编|責編)(?:邮箱|郵箱)"),
    # a reporter's address under the byline (a labelled address in a notice, "电子邮箱：…", is content)
    "e-mail paragraph": re.compile(rf"^{_EMAIL}$", re.MULTILINE),
    "HTML tag as text": re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s+[\w:-]+\s*=|\s*/?>)"),
    "HTML entity as text": re.compile(r"&(?:lt|gt|amp|quot|apos|nbsp|#\d+|#x[0-9a-fA-F]+);"),
    "feed footer": re.compile(r"获取更多RSS|feedx\.(?:net|xyz)|(?:first appeared|appeared first) on", re.IGNORECASE),
    "app footer": re.compile(r"海量资讯、精准解读|尽在新浪财经APP"),
    "copyright notice": re.compile(r"©\s*\d{4}|版[权權][声聲]明|Copyright\s*©", re.IGNORECASE),
    "read-more link": re.compile(r"(?:阅读|閱讀)全文\s*>>|^\s*(?:\.\.\.|…)?more\s*$", re.MULTILINE | re.IGNORECASE),
}


def leaks(text: str) -> list[tuple[str, re.Match]]:
    """(pattern name, first match) for every pattern found in ``text``."""
    return [(name, match) for name, pattern in PATTERNS.items() if (match := pattern.search(text))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, default=[DEFAULT])
    parser.add_argument("--examples", type=int, default=5, help="examples printed per pattern")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many articles")
    args = parser.parse_args()
    missing = [f for f in args.folders if not f.exists()]
    if missing:
        print(f"check_boilerplate: no such folder {missing[0]}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)  # skipped files are counted below, not listed

    report, started = ReadReport(), time.perf_counter()
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    leaking = 0
    for article in itertools.islice(iter_articles(args.folders, report), args.limit):
        for chunk in chunk_article(article):
            report.chunks += 1
            found = leaks(chunk.text)
            leaking += bool(found)
            for name, match in found:
                counts[name] += 1
                if len(examples[name]) < args.examples:
                    around = chunk.text[max(0, match.start() - 40) : match.end() + 40].replace("\n", " ⏎ ")
                    examples[name].append(f"{article.path} ¶{chunk.para_start}: …{around}…")

    seconds = time.perf_counter() - started
    print(f"{report.articles:,} articles, {report.chunks:,} chunks, {len(report.skipped)} files skipped; {seconds:.0f} s")
    print(f"chunks with boilerplate left: {leaking:,}")
    for name in PATTERNS:
        print(f"  {name:<22} {counts[name]:>6,}")
    for name in PATTERNS:
        for example in examples[name]:
            print(f"[{name}] {example}")
    return 1 if leaking else 0


if __name__ == "__main__":
    sys.exit(main())
