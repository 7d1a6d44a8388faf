"""The chat page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A small real index (HashEmbedder over the two seed articles and a few test
articles) is served by uvicorn in a background thread. Screenshots are saved
to artifacts/ (git-ignored) for a person to look at. Every page also fails its
test on any Content-Security-Policy violation: the page must work under the
strict policy the server sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.embed import HashEmbedder
from qa.index import Index
from qa.ingest import iter_articles
from qa.records import ReadReport
from qa.server import create_app, serve_in_thread

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
