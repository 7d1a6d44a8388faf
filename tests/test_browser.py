"""The chat page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A small real index (HashEmbedder over the two seed articles and a few test
articles) is served by uvicorn in a background thread. Screenshots are saved
to artifacts/ (git-ignored) for a person to look at. Every page also fails its
test on any Content-Security-Policy violation: the page must work under the
strict policy the server sends.

Accessibility (issue 12): axe-core (from npm, in tests/axe, installed by
scripts/install_browser.sh) is run in the page in each of its states and must
find no serious or critical violation; a keyboard-only test asks, opens a
citation, closes it and asks again with key presses alone. The fake model has
no calibration, so the states with a verdict and relevance are made by
rewriting the server's real answer on its way to the page (Playwright routes);
one slow test serves the default model, whose answers carry them for real.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from qa.embed import HashEmbedder
from qa.index import Index
from qa.ingest import iter_articles
from qa.records import ReadReport
from qa.server import create_app, serve_in_thread
from qa.terminal import relevance_label

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is missing: QA_INSTALL_BROWSER=1 bash scripts/test.sh installs Debian's "
                "chromium (as root; or apt-get install chromium chromium-driver fonts-noto-cjk)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
SEEDS = (ROOT / "examples/articles/000_9ab89037dc83bcbe.md", ROOT / "examples/articles/001_ce7fc6476a78629f.md")
SEED_QUESTION = "2020年破获了多少电信网络诈骗案件？"
SEED_000_TITLE = "习近平指示打击电信网络诈骗：推进国际执法合作"
SEED_000_URL = "https://www.zaobao.com/realtime/china/story20210410-1138397"
TOKEN = "browser-Token_7"
# Every violation of the page's CSP, as the page itself sees them (and the console shows them).
RECORD_CSP = """window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));"""
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip

EVIL = """---
title: "<img src=x onerror=window.__pwned=4> 恶意标题"
date: 2021-05-01
author: Evil Times
from: "javascript:window.__pwned=3"
---
<p>第一段：这是一段与问题无关的开头，讲的是天气和交通的情况。</p>
<p>这段文字包含 &lt;script&gt;window.__pwned=1&lt;/script&gt; 和 &lt;img src=x onerror="window.__pwned=2"&gt; 恶意脚本的字样，以及 1 &lt; 2 &amp;&amp; 3 &gt; 2 的比较。</p>
<p>第三段：这是一段与问题无关的结尾，讲的是体育比赛的结果和观众。</p>
"""


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    extra = base / "extra"
    extra.mkdir()
    (extra / "evil.md").write_text(EVIL, encoding="utf-8")
    index_dir = base / "index"
    report = ReadReport()
    Index.update(index_dir, iter_articles([*SEEDS, extra], report), HashEmbedder(), progress=False)
    return index_dir


@pytest.fixture(scope="module")
def server(index_dir):
    with serve_in_thread(create_app(index_dir, embedder=HashEmbedder())) as url:
        yield url


@pytest.fixture(scope="module")
def guarded_server(index_dir):
    """The same index behind a token (qa serve --token)."""
    with serve_in_thread(create_app(index_dir, embedder=HashEmbedder(), token=TOKEN)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def watched_page(context) -> tuple[sync_api.Page, list[str]]:
    """A new page whose script errors, alert() dialogs and CSP violations are collected."""
    pg = context.new_page()
    errors: list[str] = []
    pg.add_init_script(RECORD_CSP)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    pg.on("console", lambda m: "Content Security Policy" in m.text and errors.append(f"console: {m.text}"))
    return pg, errors


def csp_violations(pg) -> list[str]:
    return pg.evaluate("window.__csp")


@pytest.fixture
def page(browser, server, request):
    viewport, locale = getattr(request, "param", ({"width": 1200, "height": 900}, "zh-CN"))
    context = browser.new_context(viewport=viewport, locale=locale)
    pg, errors = watched_page(context)
    pg.goto(server + "/")
    pg.wait_for_selector("#index-info:not(:empty)")
    yield pg
    errors += csp_violations(pg)
    context.close()
    assert errors == [], errors


def ask(page, question: str, answers_before: int | None = None):
    """Type a question, press Enter, wait for its answer; returns the answer element."""
    n = page.locator(".answer").count() if answers_before is None else answers_before
    page.fill("#question", question)
    page.press("#question", "Enter")
    page.wait_for_function(
        "n => document.querySelectorAll('.answer').length > n && !document.querySelector('.answer:last-child .loading')",
        arg=n,
    )
    return page.locator(".answer").nth(n)


def test_ask_shows_a_cited_passage_from_the_expected_article(page):
    assert page.locator("h1").inner_text() == "新闻问答"
    answer = ask(page, SEED_QUESTION)
    assert page.locator(".question").last.inner_text() == SEED_QUESTION
    card = answer.locator(".card", has=page.locator(f"a.title:text-is('{SEED_000_TITLE}')")).first
    card.wait_for()
    link = card.locator("a.title")
    assert link.get_attribute("href") == SEED_000_URL
    assert link.get_attribute("rel") == "noopener noreferrer"
    meta = card.locator(".meta").inner_text()
    assert "联合早报" in meta and "2021-04-10" in meta and "¶" in meta
    assert card.locator(".num").inner_text().startswith("[")
    assert answer.locator(".card mark").count() > 0  # matched terms highlighted
    texts = answer.locator(".passage").all_inner_texts()
    assert any("32.2万起" in t for t in texts), texts
    assert page.input_value("#question") == ""
    page.screenshot(path=str(ARTIFACTS / "chat-desktop.png"))


def test_follow_up_shows_what_was_searched(page):
    ask(page, SEED_QUESTION)
    answer = ask(page, "那2021年呢？")
    searched = answer.locator(".searched").inner_text()
    assert "2021年破获了多少电信网络诈骗案件？" in searched
    assert answer.locator(".card").count() > 0
    assert any("诈骗" in t for t in answer.locator(".passage").all_inner_texts())
    page.wait_for_timeout(800)  # let the smooth scroll to the new answer finish
    page.screenshot(path=str(ARTIFACTS / "chat-follow-up.png"))


def test_article_text_is_never_run_as_html(page):
    answer = ask(page, "恶意脚本的字样 script onerror")
    card = answer.locator(".card", has_text="恶意脚本的字样").first
    card.wait_for()
    # (the cleaner drops markup left as text; what is left of "<", "&" and ">" is shown as text)
    assert "1 < 2 && 3 > 2" in card.locator(".passage").inner_text()
    assert page.locator(".cards script, .cards img").count() == 0
    # a javascript: URL is not made into a link; the title opens the article in the page instead
    title = card.locator(".title")
    assert title.evaluate("el => el.tagName") == "BUTTON"
    assert title.inner_text().startswith("<img src=x onerror=")
    title.click()
    cited = page.locator("#article .para.cited")
    cited.wait_for()
    assert "1 < 2 && 3 > 2" in cited.inner_text()
    assert page.locator("#article .para").count() == 3 and cited.get_attribute("data-n") == "2"
    assert page.locator("#article script, #article img").count() == 0
    assert page.locator("#article-title").inner_text().startswith("<img")
    page.screenshot(path=str(ARTIFACTS / "chat-article-panel.png"))
    page.click("#article-close")
    assert page.evaluate("window.__pwned") is None


def test_citation_without_url_opens_the_article_with_the_paragraph_marked(page):
    answer = ask(page, SEED_QUESTION)
    card = answer.locator(".card").first
    card.locator("button.read").click()
    page.locator("#article .para.cited").first.wait_for()
    assert page.locator("#article-title").inner_text() == card.locator(".title").inner_text()
    cited = page.locator("#article .para.cited").first.inner_text()
    assert card.locator(".passage").inner_text().strip() in cited
    assert page.locator("#article").evaluate("el => el.open")


def test_nothing_found_and_errors_are_stated_plainly(page):
    page.click("#filters summary")
    page.fill("#date-to", "2000-01-01")
    answer = ask(page, SEED_QUESTION)
    assert answer.locator(".nothing").is_visible()
    assert "筛选" in answer.locator(".nothing").inner_text()
    page.fill("#date-from", "2021-01-01")
    answer = ask(page, SEED_QUESTION)
    error = answer.locator(".error")
    assert error.is_visible() and "after" in error.inner_text()
    page.click("#clear-filters")
    assert page.input_value("#date-to") == ""


def test_source_filter_is_populated_from_stats(page):
    page.click("#filters summary")
    boxes = page.locator("#source-list input[type=checkbox]")
    assert sorted(boxes.evaluate_all("els => els.map(e => e.value)")) == sorted(["联合早报", "新浪财经", "Evil Times"])
    page.locator("#source-list label", has_text="新浪财经").locator("input").check()
    assert page.locator("#filter-count").inner_text() == "1"
    answer = ask(page, "电信网络诈骗")
    metas = answer.locator(".card .meta").all_inner_texts()
    assert metas and all(m.startswith("新浪财经") for m in metas)


def test_shift_enter_is_a_new_line_and_the_language_toggles(page):
    page.fill("#question", "第一行")
    page.press("#question", "Shift+Enter")
    page.type("#question", "第二行")
    assert page.input_value("#question") == "第一行\n第二行"
    assert page.locator(".answer").count() == 0
    page.click("#lang")
    assert page.locator("h1").inner_text() == "News Q&A"
    assert page.locator("#send").inner_text() == "Send"
    page.click("#lang")
    assert page.locator("#send").inner_text() == "发送"


@pytest.mark.parametrize("page", [({"width": 390, "height": 844}, "en-US")], indirect=True)
def test_phone_width_english(page):
    assert page.locator("#send").inner_text() == "Send"  # from navigator.language
    page.screenshot(path=str(ARTIFACTS / "chat-phone-empty.png"))
    answer = ask(page, SEED_QUESTION)
    assert answer.locator(".card").count() > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "chat-phone.png"))


def test_passages_found_by_meaning_alone_are_described_not_judged(page):
    """No passage shares a word with the question: the page says so, and that the passages
    were found by meaning, without claiming they do not answer it (issue 13, item 4)."""
    answer = ask(page, "zyzzyva quixotic")  # no word of it occurs in any article
    assert answer.locator(".card").count() > 0  # the closest in meaning are still shown
    assert answer.locator(".card mark").count() == 0
    notice = answer.locator(".by-meaning")
    assert notice.is_visible()
    text = notice.inner_text()
    assert "按意思" in text and "词语" in text
    assert not any(claim in text for claim in ("未必", "不能回答", "没有答案")), text
    page.click("#lang")
    answer = ask(page, "zyzzyva quixotic")
    text = answer.locator(".by-meaning").inner_text()
    assert "found by meaning" in text and "word" in text
    assert not any(claim in text for claim in ("may not answer", "no answer", "not answer")), text
    answer = ask(page, SEED_QUESTION)
    assert answer.locator(".by-meaning").count() == 0


@pytest.fixture
def english_browser_chinese_page(browser, server):
    """An English-language browser showing the page in Chinese (the page's language switch)."""
    context = browser.new_context(locale="en-US", viewport={"width": 1200, "height": 900})
    context.add_init_script("localStorage.setItem('qa-lang', 'zh')")
    pg, errors = watched_page(context)
    pg.goto(server + "/")
    pg.wait_for_selector("#index-info:not(:empty)")
    yield pg
    errors += csp_violations(pg)
    context.close()
    assert errors == [], errors


def test_dates_are_year_month_day_whatever_the_browser_locale(english_browser_chinese_page):
    """The date filters take and show YYYY-MM-DD, not the browser's mm/dd/yyyy (item 8)."""
    pg = english_browser_chinese_page
    assert pg.locator("h1").inner_text() == "新闻问答"
    pg.click("#filters summary")
    for box in ("#date-from", "#date-to"):
        assert pg.get_attribute(box, "type") == "text"  # a native date input shows the browser's format
        assert pg.get_attribute(box, "placeholder") == "年-月-日"
    pg.fill("#date-from", "2021-04-01")
    pg.fill("#date-to", "2021-04-30")
    pg.screenshot(path=str(ARTIFACTS / "chat-date-filters.png"))
    assert pg.input_value("#date-from") == "2021-04-01"  # shown as typed
    answer = ask(pg, SEED_QUESTION)
    metas = answer.locator(".card .meta").all_inner_texts()
    assert metas and all("2021-04-10" in m for m in metas), metas
    pg.fill("#date-from", "04/01/2021")  # the browser's own format is refused, with the rule
    assert pg.locator("#date-from:invalid").count() == 1
    error = ask(pg, SEED_QUESTION).locator(".error")
    assert error.is_visible() and "YYYY-MM-DD" in error.inner_text()


@pytest.mark.parametrize("page", [({"width": 360, "height": 740}, "zh-CN")], indirect=True)
def test_the_article_panel_close_button_stays_on_one_line_on_a_phone(page):
    """关闭 is one line however long the title (item 8)."""
    answer = ask(page, SEED_QUESTION)
    answer.locator(".card button.read").first.click()
    page.locator("#article .para.cited").first.wait_for()
    close = page.locator("#article-close")
    assert close.inner_text() == "关闭"
    lines = close.evaluate("el => { const r = document.createRange(); r.selectNodeContents(el); "
                           "return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size; }")
    assert lines == 1, f"关闭 is broken over {lines} lines"
    box, panel = close.bounding_box(), page.locator("#article").bounding_box()
    assert box["x"] + box["width"] <= panel["x"] + panel["width"]  # inside the panel
    page.screenshot(path=str(ARTIFACTS / "chat-phone-article.png"))


# --- the page under its Content-Security-Policy, and with a token -------------------------


def test_the_page_works_under_a_strict_csp(browser, server):
    """Everything the page does (ask, follow up, filter, open an article, switch language)
    runs under the policy the server sends, with no violation."""
    context = browser.new_context(locale="zh-CN")
    pg, errors = watched_page(context)
    response = pg.goto(server + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    pg.wait_for_selector("#index-info:not(:empty)")
    ask(pg, SEED_QUESTION)
    answer = ask(pg, "那2021年呢？")
    answer.locator("button.read").first.click()
    pg.locator("#article .para.cited").first.wait_for()
    pg.click("#article-close")
    pg.click("#filters summary")
    pg.locator("#source-list input").first.check()
    ask(pg, "电信网络诈骗")
    pg.click("#lang")
    assert pg.locator("#send").inner_text() == "Send"
    assert errors + csp_violations(pg) == [], errors
    # and the policy is enforced: an inline script is refused, and would have been seen
    pg.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1'; "
                "document.body.append(s); }")  # fmt: skip
    assert pg.evaluate("window.__ran") is None
    assert csp_violations(pg) == ["script-src-elem inline"]
    for _ in range(50):  # the console message arrives on its own
        if errors:
            break
        pg.wait_for_timeout(40)
    assert len(errors) == 1 and "Content Security Policy" in errors[0], errors
    context.close()


def test_the_api_docs_work_under_their_csp(browser, server):
    context = browser.new_context()
    pg, errors = watched_page(context)
    response = pg.goto(server + "/docs")
    assert "script-src 'self' 'sha256-" in response.headers["content-security-policy"]  # its one inline script
    pg.locator(".opblock-summary-path", has_text="/api/ask").first.wait_for()
    assert pg.locator(".opblock").count() >= 5
    assert errors + csp_violations(pg) == []
    context.close()


def test_with_a_token_the_page_asks_once_and_keeps_it_for_the_tab(browser, guarded_server):
    context = browser.new_context(locale="en-US")
    pg, errors = watched_page(context)
    pg.goto(guarded_server + "/")
    dialog = pg.locator("#token-dialog")
    dialog.wait_for(state="visible")
    assert pg.locator("#token-wrong").is_hidden()
    pg.screenshot(path=str(ARTIFACTS / "chat-token.png"))
    pg.fill("#token-input", "not-the-token")
    pg.click("#token-ok")
    pg.locator("#token-wrong").wait_for(state="visible")  # asked again, saying why
    pg.fill("#token-input", TOKEN)
    pg.click("#token-ok")
    pg.wait_for_selector("#index-info:not(:empty)")
    assert dialog.is_hidden() and "articles" in pg.inner_text("#index-info")
    answer = ask(pg, SEED_QUESTION)
    answer.locator("button.read").first.click()
    pg.locator("#article .para.cited").first.wait_for()
    pg.click("#article-close")
    pg.reload()  # the same tab: no second prompt
    pg.wait_for_selector("#index-info:not(:empty)")
    assert dialog.is_hidden()
    assert pg.evaluate("sessionStorage.getItem('qa-token')") == TOKEN
    assert errors + csp_violations(pg) == [], errors
    context.close()


def test_with_a_token_a_cancelled_prompt_says_what_is_needed(browser, guarded_server):
    context = browser.new_context(locale="en-US")
    pg, errors = watched_page(context)
    pg.goto(guarded_server + "/")
    pg.locator("#token-dialog").wait_for(state="visible")
    pg.click("#token-cancel")
    pg.wait_for_selector("#index-info:not(:empty)")
    assert "token" in pg.inner_text("#index-info")
    assert errors + csp_violations(pg) == []
    context.close()


def test_a_token_in_the_url_fragment_is_taken_and_hidden(browser, guarded_server):
    context = browser.new_context(locale="zh-CN")
    pg, errors = watched_page(context)
    pg.goto(guarded_server + "/#token=" + TOKEN)
    pg.wait_for_selector("#index-info:not(:empty)")
    assert pg.locator("#token-dialog").is_hidden()
    assert pg.evaluate("location.hash") == "" and pg.url == guarded_server + "/"
    answer = ask(pg, SEED_QUESTION)
    assert answer.locator(".card").count() > 0
    assert errors + csp_violations(pg) == []
    context.close()



# --- the verdict and relevance (issue 12) ------------------------------------------------


def judged(page, answerable: bool | None, relevances: list[float | None], languages: list[str] | None = None):
    """Answers from now on carry this verdict, and passages with these relevances (and languages):
    the server's real answer, its first passage repeated once per relevance. The index's fake
    model has no calibration, so its own answers carry none."""

    def rewrite(route):
        response = route.fetch()
        body = response.json()
        first = body["passages"][0]
        body["answerable"] = answerable
        body["passages"] = [dict(first, rank=i + 1, relevance=r) for i, r in enumerate(relevances)]
        for passage, language in zip(body["passages"], languages or ()):
            passage["language"] = language
        route.fulfill(response=response, json=body)

    page.unroute("**/api/ask")
    page.route("**/api/ask", rewrite)


BOUNDARIES = [0.0, 0.004, 0.005, 0.194, 0.195, 0.2, 0.5949, 0.595, 0.6, 0.915, 0.999, 1.0]


@pytest.mark.parametrize("page", [({"width": 1200, "height": 900}, "en-US")], indirect=True)
def test_each_passage_shows_its_relevance_as_the_terminal_does(page):
    """The page's levels and percentages are qa.terminal's (one definition, repeated in app.js),
    value by value across the cut-offs."""
    judged(page, True, BOUNDARIES)
    answer = ask(page, SEED_QUESTION)
    shown = answer.locator(".card .relevance").all_inner_texts()
    assert shown == [relevance_label(r) for r in BOUNDARIES]
    levels = answer.locator(".card .relevance").evaluate_all("els => els.map(e => e.dataset.level)")
    assert levels == [relevance_label(r).split(" ")[0] for r in BOUNDARIES]
    assert answer.locator(".verdict").count() == 0 and answer.locator(".card .score").count() == 0
    page.click("#lang")
    answer = ask(page, SEED_QUESTION)
    assert answer.locator(".card .relevance").first.inner_text() == "不太可能相关 · 0%"
    assert answer.locator(".card .relevance").last.inner_text() == "很可能相关 · 100%"
    page.screenshot(path=str(ARTIFACTS / "chat-relevance.png"))


def test_without_a_calibration_each_passage_shows_its_score(page):
    answer = ask(page, SEED_QUESTION)  # the fake model: relevance and answerable are null
    assert answer.locator(".card .relevance").count() == 0 and answer.locator(".verdict").count() == 0
    scores = answer.locator(".card .score").all_inner_texts()
    assert scores and all(s.startswith("得分 0.") or s.startswith("得分 1.") for s in scores), scores


def test_when_nothing_answers_the_page_says_so_and_keeps_the_nearest_passages_at_hand(page):
    judged(page, False, [0.03, 0.12, 0.25])
    answer = ask(page, "zxqv blorp")
    verdict = answer.locator(".verdict")
    assert verdict.is_visible()
    assert "没有找到相关内容" in verdict.inner_text() and "没有能回答这个问题的段落" in verdict.inner_text()
    assert answer.locator(".by-meaning").count() == 0  # the verdict says enough
    nearest = answer.locator("details.nearest")
    assert "最接近的 3 个段落" in nearest.locator("summary").inner_text()
    assert not nearest.evaluate("el => el.open") and not answer.locator(".card").first.is_visible()
    nearest.locator("summary").click()  # the nearest passages, still there
    assert answer.locator(".card").count() == 3 and answer.locator(".card").first.is_visible()
    assert answer.locator(".card .relevance").all_inner_texts() == [
        "不太可能相关 · 3%", "不太可能相关 · 12%", "可能相关 · 25%"]  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "chat-not-answered.png"))
    assert "没有找到相关内容" in page.inner_text("#announcer")
    judged(page, True, [0.9])
    answer = ask(page, SEED_QUESTION)
    assert answer.locator(".verdict").count() == 0 and answer.locator(".card").first.is_visible()
    page.click("#lang")
    judged(page, False, [0.03])
    answer = ask(page, "zxqv blorp")
    assert answer.locator(".verdict").inner_text().startswith("Nothing relevant was found")
    assert answer.locator("details.nearest summary").inner_text().startswith("Show the 1 nearest passage anyway")


def test_each_passage_is_declared_in_its_own_language(page):
    """lang on every passage from the answer's Passage.language ("mixed" is declared Chinese,
    "und" inherits the page's); the page's own lang follows its language switch."""
    assert page.evaluate("document.documentElement.lang") == "zh-Hans"
    answer = ask(page, SEED_QUESTION)  # the server's own languages
    got = answer.locator(".card .passage").evaluate_all("els => els.map(e => e.lang)")
    assert got and set(got) == {"zh-Hans"}, got
    languages = ["zh-Hans", "zh-Hant", "en", "mixed", "und"]
    judged(page, None, [None] * 5, languages)
    answer = ask(page, SEED_QUESTION)
    got = answer.locator(".card .passage").evaluate_all("els => els.map(e => e.getAttribute('lang'))")
    assert got == ["zh-Hans", "zh-Hant", "en", "zh", None]
    titles = answer.locator(".card .title").evaluate_all("els => els.map(e => e.getAttribute('lang'))")
    assert titles == got
    page.click("#lang")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.locator("#lang").get_attribute("lang") == "zh-Hans"  # the switch names 中文 in Chinese


def test_only_the_newest_answer_is_announced(page):
    """One live region (#announcer) says the newest answer; the conversation is not live, so
    earlier answers are never read out again."""
    live = page.evaluate("Array.from(document.querySelectorAll('[aria-live], [role=status], [role=alert], "
                         "[role=log]')).map(e => e.id)")  # fmt: skip
    assert live == ["announcer"]
    assert page.get_attribute("#announcer", "aria-live") == "polite"
    first = ask(page, SEED_QUESTION)
    said = page.inner_text("#announcer")
    assert said.startswith("找到 ") and first.locator(".card .passage").first.inner_text().strip()[:8] in said
    ask(page, "恶意脚本的字样 script onerror")
    said = page.inner_text("#announcer")
    assert "恶意脚本的字样" in said and "32.2万起" not in said
    assert page.locator("#announcer > span").get_attribute("lang") == "zh-Hans"
    assert page.locator("#log").get_attribute("aria-live") is None
    label = page.locator(".answer").last.get_attribute("aria-labelledby")
    assert page.locator(f"#{label}").inner_text() == "恶意脚本的字样 script onerror"  # each answer named by its question


# --- clicking two citations quickly (issue 12, item 4) ------------------------------------


def test_a_late_article_never_mixes_into_the_next_one(page, index_dir):
    """The first article's response is held back until the second article is shown: the panel
    then shows the second article only, whatever the first one's response does."""
    answer = ask(page, SEED_QUESTION)
    cards = answer.locator(".card")
    ids = cards.evaluate_all("els => els.map(e => e.dataset.articleId)")
    first_id = ids[0]
    second = next(i for i, x in enumerate(ids) if x != first_id)  # a card from another article
    held, done = [], []
    page.route("**/api/articles/**", lambda route: held.append(route) if not held else route.continue_())
    page.on("requestfinished", lambda r: "/api/articles/" in r.url and done.append(r.url))
    page.on("requestfailed", lambda r: "/api/articles/" in r.url and done.append(r.url))
    cards.nth(0).locator("button.read, button.title").first.click()
    page.locator("#article").wait_for(state="visible")
    page.keyboard.press("Escape")  # closed while the first article is still on its way
    cards.nth(second).locator("button.read, button.title").first.click()
    page.locator("#article .para").first.wait_for()
    assert len(held) == 1
    try:
        held[0].continue_()  # the first article's response comes now, late
    except sync_api.Error:
        pass  # the page gave up on it already (aborted): as good
    for _ in range(100):
        if len(done) >= 2:
            break
        page.wait_for_timeout(50)
    assert len(done) == 2, done
    page.evaluate("() => new Promise(r => setTimeout(r, 300))")  # time for a late response to be used, if it were
    with Index.open(index_dir, HashEmbedder()) as index:
        wanted = index.article(ids[second])
    assert page.locator("#article-title").inner_text() == wanted.title
    assert page.locator("#article .para").all_inner_texts() == list(wanted.paragraphs)
    assert page.locator("#article").evaluate("el => el.open")


# --- keyboard only ----------------------------------------------------------------------

FOCUSED = """() => { const e = document.activeElement;
  return e ? {id: e.id, cls: e.className, tag: e.tagName, inDialog: Boolean(e.closest('dialog')),
              article: (e.closest('.card') || {dataset: {}}).dataset.articleId || null,
              outline: getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth} : null; }"""


def tab_until(page, predicate, key="Tab", most=60) -> dict:
    """Press key until the focused element satisfies predicate; that element's description."""
    for _ in range(most):
        page.keyboard.press(key)
        focused = page.evaluate(FOCUSED)
        if predicate(focused):
            return focused
    raise AssertionError(f"{key} pressed {most} times never reached the control; last: {focused}")


def test_keyboard_only_ask_open_a_citation_close_it_and_go_on(page):
    page.keyboard.press("Tab")  # from wherever focus starts: the question box is reachable
    tab_until(page, lambda f: f["id"] == "question")
    page.keyboard.type(SEED_QUESTION)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.answer .card').length > 0")
    assert page.evaluate(FOCUSED)["id"] == "question"  # back in the question box
    opener = tab_until(page, lambda f: f["article"] and f["tag"] == "BUTTON", key="Shift+Tab")
    page.keyboard.press("Enter")
    page.locator("#article .para.cited").first.wait_for()
    dialog = page.locator("#article")
    assert dialog.get_attribute("role") == "dialog" and dialog.get_attribute("aria-modal") == "true"
    title = page.locator("#" + dialog.get_attribute("aria-labelledby")).inner_text()
    assert title and title == page.inner_text("#article-title")
    assert page.evaluate(FOCUSED)["inDialog"]  # focus moved in
    for key in ["Tab"] * 5 + ["Shift+Tab"] * 5:  # and stays in
        page.keyboard.press(key)
        assert page.evaluate(FOCUSED)["inDialog"], key
    page.screenshot(path=str(ARTIFACTS / "chat-keyboard-article.png"))
    page.keyboard.press("Escape")
    assert not dialog.evaluate("el => el.open")
    back = page.evaluate(FOCUSED)
    assert (back["article"], back["cls"]) == (opener["article"], opener["cls"])  # focus returned to the citation
    tab_until(page, lambda f: f["id"] == "question")  # and on: the next question
    page.keyboard.type("那2021年呢？")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.answer').length === 2 && !document.querySelector('.loading')")
    assert "2021年" in page.locator(".answer").nth(1).locator(".searched").inner_text()
    # the filters, by keyboard too: open them, choose an outlet, ask
    tab_until(page, lambda f: f["tag"] == "SUMMARY", key="Shift+Tab")
    page.keyboard.press("Enter")
    assert page.locator("#filters").evaluate("el => el.open")
    tab_until(page, lambda f: f["tag"] == "INPUT" and f["cls"] == "" and f["id"] == "", most=10)  # a source box
    page.keyboard.press("Space")
    assert page.inner_text("#filter-count") == "1"
    tab_until(page, lambda f: f["id"] == "question")
    page.keyboard.type("电信网络诈骗")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('.answer').length === 3 && !document.querySelector('.loading')")
    assert page.locator(".answer").nth(2).locator(".card").count() > 0


def test_when_nothing_answers_the_nearest_passages_open_by_keyboard(page):
    judged(page, False, [0.05, 0.04])
    ask(page, "zxqv blorp")
    tab_until(page, lambda f: f["tag"] == "SUMMARY" and f["id"] == "", key="Shift+Tab")
    page.keyboard.press("Enter")
    assert page.locator(".answer .card").first.is_visible()


def test_every_control_is_reached_by_tab_and_shows_where_focus_is(page):
    """Tab from the top of the page reaches every visible control, in the page and then in the
    open article, and each shows a focus ring (an outline of 2px or more)."""
    page.click("#filters summary")
    ask(page, SEED_QUESTION)
    controls = "a[href], button, input, select, textarea, summary"
    count = page.evaluate(f"""() => {{ let n = 0; for (const e of document.querySelectorAll('{controls}'))
        if (!e.closest('dialog') && !e.disabled && e.getClientRects().length) e.dataset.k = n++; return n; }}""")
    page.evaluate("document.activeElement.blur()")
    reached, rings = set(), {}
    for _ in range(count + 5):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => [document.activeElement.dataset.k, getComputedStyle(document.activeElement)"
                                ".outlineStyle, parseFloat(getComputedStyle(document.activeElement).outlineWidth)]")
        if focused[0] is not None:
            reached.add(focused[0])
            rings[focused[0]] = focused[1:]
    missing = page.evaluate(f"ks => Array.from(document.querySelectorAll('[data-k]')).filter(e => !ks.includes("
                            f"e.dataset.k)).map(e => e.outerHTML.slice(0, 120))", list(reached))  # fmt: skip
    assert not missing, f"never reached by Tab: {missing}"
    faint = {k: v for k, v in rings.items() if v[0] == "none" or v[1] < 2}
    assert not faint, f"no visible focus ring: {faint}"


# --- axe-core ------------------------------------------------------------------------------

AXE = ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_MISSING = ("axe-core is not installed (tests/axe/node_modules): `bash scripts/install_browser.sh` installs it "
               "with npm, or run `npm ci --prefix tests/axe` (Node.js and npm needed: apt-get install npm)")  # fmt: skip
AXE_RUN = """async () => { const r = await axe.run(document, {resultTypes: ["violations"]});
  const brief = v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\\s+/g, " "))});
  return {violations: r.violations.map(brief), incomplete: r.incomplete.map(brief), version: axe.version}; }"""


def axe(page, state: str) -> list[dict]:
    """axe-core's violations in the page as it is now; everything it found (violations and what
    it could not decide) is kept in artifacts/axe/STATE.json."""
    if not AXE.exists():
        pytest.skip(AXE_MISSING)
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated, not a <script>: the page's CSP stays strict
    found = page.evaluate(AXE_RUN)
    (ARTIFACTS / "axe").mkdir(exist_ok=True)
    (ARTIFACTS / "axe" / f"{state}.json").write_text(json.dumps(found, ensure_ascii=False, indent=1), encoding="utf-8")
    return found["violations"]


def assert_accessible(page, state: str) -> None:
    violations = axe(page, state)
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    listed = "\n".join(f"  {v['impact']}: {v['id']} ({v['help']}): " + "; ".join(v["nodes"][:6]) for v in violations)
    assert not serious, f"axe-core finds {len(serious)} serious or critical violations with the page {state}:\n{listed}"


@pytest.fixture(params=["light", "dark"])
def scheme_page(request, browser, server):
    context = browser.new_context(locale="zh-CN", color_scheme=request.param, viewport={"width": 1200, "height": 900})
    pg, errors = watched_page(context)
    pg.goto(server + "/")
    pg.wait_for_selector("#index-info:not(:empty)")
    yield pg, request.param
    errors += csp_violations(pg)
    context.close()
    assert errors == [], errors


def test_axe_finds_no_serious_violation_in_any_state_of_the_page(scheme_page):
    page, scheme = scheme_page
    assert_accessible(page, f"{scheme}-empty")
    page.click("#filters summary")
    page.locator("#source-list input").first.check()
    assert_accessible(page, f"{scheme}-filters-open")
    page.locator("#source-list input").first.uncheck()
    ask(page, SEED_QUESTION)
    ask(page, "那2021年呢？")
    assert_accessible(page, f"{scheme}-answers")
    judged(page, True, [0.92, 0.45, 0.05])  # every relevance level on show
    ask(page, SEED_QUESTION)
    assert_accessible(page, f"{scheme}-relevance")
    judged(page, False, [0.08, 0.03])
    answer = ask(page, "zxqv blorp")
    assert_accessible(page, f"{scheme}-not-answered")
    answer.locator("details.nearest summary").click()
    assert_accessible(page, f"{scheme}-not-answered-nearest-open")
    page.unroute("**/api/ask")
    answer = ask(page, SEED_QUESTION)
    answer.locator(".card").locator("button.read, button.title").first.click()
    page.locator("#article .para.cited").first.wait_for()
    assert_accessible(page, f"{scheme}-article-open")
    page.keyboard.press("Escape")
    page.fill("#date-to", "2000-01-01")
    ask(page, SEED_QUESTION)  # nothing found
    page.fill("#date-from", "2021-01-01")
    ask(page, SEED_QUESTION)  # an error
    assert_accessible(page, f"{scheme}-nothing-and-error")
    page.click("#lang")
    assert_accessible(page, f"{scheme}-english")
    counts = Counter(v["impact"] for f in (ARTIFACTS / "axe").glob(f"{scheme}-*.json")
                     for v in json.loads(f.read_text(encoding="utf-8"))["violations"])  # fmt: skip
    print(f"axe-core, {scheme}: violations by impact over every state: {dict(counts)}")


def test_axe_finds_no_serious_violation_in_the_token_prompt(browser, guarded_server):
    context = browser.new_context(locale="en-US")
    pg, errors = watched_page(context)
    pg.goto(guarded_server + "/")
    pg.locator("#token-dialog").wait_for(state="visible")
    assert_accessible(pg, "token-prompt")
    assert pg.evaluate(FOCUSED)["id"] == "token-input"
    for key in ["Tab"] * 4:
        pg.keyboard.press(key)
        assert pg.evaluate(FOCUSED)["inDialog"], key
    assert errors + csp_violations(pg) == [], errors
    context.close()


# --- the default model: a real verdict, real relevance, real languages ------------------------


@pytest.fixture(scope="module")
def calibrated_server(tmp_path_factory):
    """The sample folder indexed with the default model, whose answers carry relevance and a verdict."""
    from qa.loader import load_embedder

    path = tmp_path_factory.mktemp("calibrated") / "index"
    embedder = load_embedder(None)
    Index.update(path, iter_articles([ROOT / "examples" / "articles"], ReadReport()), embedder, progress=False)
    with serve_in_thread(create_app(path, embedder=embedder)) as url:
        yield url


@pytest.mark.slow
def test_with_the_default_model_the_page_says_when_nothing_answers(browser, calibrated_server):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 900})
    pg, errors = watched_page(context)
    pg.goto(calibrated_server + "/")
    pg.wait_for_selector("#index-info:not(:empty)")
    answer = ask(pg, "2022年世界杯冠军是哪个国家？")
    assert answer.locator(".verdict").is_visible() and not answer.locator(".card").first.is_visible()
    answer.locator("details.nearest summary").click()
    levels = answer.locator(".card .relevance").evaluate_all("els => els.map(e => e.dataset.level)")
    assert levels and set(levels) == {"unlikely"}, levels
    assert_accessible(pg, "default-model-not-answered")
    answer = ask(pg, SEED_QUESTION)
    assert answer.locator(".verdict").count() == 0
    assert answer.locator(".card .relevance").first.inner_text().startswith("很可能相关 · ")
    assert "32.2万起" in answer.locator(".card .passage").first.inner_text()
    answer = ask(pg, "高雄輕軌環狀線何時全線通車？")
    assert answer.locator(".card .passage").first.get_attribute("lang") == "zh-Hant"
    answer = ask(pg, "How will Rotterdam heat homes with river water?")
    assert answer.locator(".card .passage").first.get_attribute("lang") == "en"
    assert_accessible(pg, "default-model-answers")
    pg.screenshot(path=str(ARTIFACTS / "chat-default-model.png"))
    assert errors + csp_violations(pg) == [], errors
    context.close()
