// The chat page. Plain JavaScript, no build step, no external resources.
// Rule: article text (passages, titles, sources, paragraphs) is only ever put
// into the page with textContent / createTextNode, never parsed as HTML.
"use strict";

(function () {
  const STRINGS = {
    zh: {
      title: "新闻问答",
      tagline: "向新闻文章提问，查看带出处的原文段落",
      newChat: "新对话",
      filters: "筛选",
      dateFrom: "起始日期",
      dateTo: "截止日期",
      mode: "检索方式",
      modeHybrid: "混合（推荐）",
      modeDense: "语义",
      modeLexical: "关键词",
      sources: "来源",
      noSources: "（索引中没有来源信息）",
      clearFilters: "清除筛选",
      welcome: "输入问题，按 Enter 发送（Shift+Enter 换行）。答案是文章中的原文段落，每段都附有出处。",
      indexInfo: (s) => `已索引 ${s.articles} 篇文章、${s.chunks} 个段落` + (s.date_from ? `，${day(s.date_from)} 至 ${day(s.date_to)}` : "") + "。",
      placeholder: "输入问题…",
      send: "发送",
      close: "关闭",
      searching: "正在检索…",
      searched: "检索内容：",
      nothing: "没有找到相关内容。可以换个说法，或放宽筛选条件。",
      nothingFiltered: "在当前筛选条件下没有找到相关内容。可以放宽日期或来源再试。",
      error: "出错了：",
      network: "无法连接服务器。请确认 qa serve 仍在运行。",
      readArticle: "阅读原文",
      openLink: "打开链接",
      loadingArticle: "正在载入文章…",
      paragraph: (n) => `第 ${n} 段`,
      score: "得分",
      likely: "很可能相关",
      possibly: "可能相关",
      unlikely: "不太可能相关",
      relevanceHelp: "相关度：估计这个段落能回答问题的概率",
      results: (n) => `找到 ${n} 个段落`,
      byMeaning: "没有一个段落含有问题中的词语：这些段落是按意思检索到的。",
      notAnswered: "没有找到相关内容：档案里没有能回答这个问题的段落。",
      notAnsweredHint: "可以换个说法再问，或放宽筛选条件。",
      showNearest: (n) => `仍然查看最接近的 ${n} 个段落（仅供参考）`,
      announceResults: (n) => `找到 ${n} 个段落。第 1 段：`,
      skip: "跳到提问框",
      conversation: "对话",
      questionLabel: "提问",
      questionHelp: "按 Enter 发送，Shift+Enter 换行。",
      datePlaceholder: "年-月-日",
      examples: ["2020年破获了多少电信网络诈骗案件？", "公安部如何推进国际执法合作？", "李克强对打击电信诈骗有什么批示？"],
      noIndex: "索引还没有建好。",
      tokenTitle: "需要访问令牌",
      tokenHelp: "这个服务器设置了访问令牌（qa serve --token）。请输入令牌，它只保存在本标签页中。",
      tokenWrong: "令牌不正确，请重新输入。",
      tokenPlaceholder: "令牌",
      tokenOk: "确定",
      cancel: "取消",
      tokenNeeded: "需要访问令牌才能检索。刷新页面后输入令牌。",
    },
    en: {
      title: "News Q&A",
      tagline: "Ask the news articles; get source passages with citations",
      newChat: "New chat",
      filters: "Filters",
      dateFrom: "From",
      dateTo: "To",
      mode: "Search",
      modeHybrid: "Hybrid (recommended)",
      modeDense: "Meaning",
      modeLexical: "Keywords",
      sources: "Sources",
      noSources: "(the index lists no sources)",
      clearFilters: "Clear filters",
      welcome: "Type a question and press Enter (Shift+Enter for a new line). Answers are passages from the articles, each with its source.",
      indexInfo: (s) => `${s.articles} articles, ${s.chunks} passages indexed` + (s.date_from ? `, ${day(s.date_from)} to ${day(s.date_to)}` : "") + ".",
      placeholder: "Ask a question…",
      send: "Send",
      close: "Close",
      searching: "Searching…",
      searched: "Searched: ",
      nothing: "Nothing relevant was found. Try other words, or loosen the filters.",
      nothingFiltered: "Nothing relevant was found with these filters. Try a wider date range or more sources.",
      error: "Something went wrong: ",
      network: "Cannot reach the server. Is qa serve still running?",
      readArticle: "Read article",
      openLink: "Open link",
      loadingArticle: "Loading the article…",
      paragraph: (n) => `paragraph ${n}`,
      score: "score",
      likely: "likely relevant",
      possibly: "possibly relevant",
      unlikely: "unlikely relevant",
      relevanceHelp: "Relevance: the estimated chance that this passage answers the question",
      results: (n) => `${n} passage${n === 1 ? "" : "s"} found`,
      byMeaning: "No passage shares a word with your question: these passages were found by meaning.",
      notAnswered: "Nothing relevant was found: no passage in the archive answers this question.",
      notAnsweredHint: "Try other words, or loosen the filters.",
      showNearest: (n) => `Show the ${n} nearest passage${n === 1 ? "" : "s"} anyway (for reference only)`,
      announceResults: (n) => `${n} passage${n === 1 ? "" : "s"} found. Passage 1: `,
      skip: "Skip to the question box",
      conversation: "Conversation",
      questionLabel: "Question",
      questionHelp: "Enter sends; Shift+Enter starts a new line.",
      datePlaceholder: "YYYY-MM-DD",
      examples: ["2020年破获了多少电信网络诈骗案件？", "How does China fight telecom fraud across borders?", "What did Li Keqiang say about fraud?"],
      noIndex: "The index is not built yet.",
      tokenTitle: "Access token needed",
      tokenHelp: "This server was started with an access token (qa serve --token). Enter it; it is kept in this tab only.",
      tokenWrong: "That token is not right: try again.",
      tokenPlaceholder: "Token",
      tokenOk: "OK",
      cancel: "Cancel",
      tokenNeeded: "An access token is needed to search. Reload the page to enter it.",
    },
  };

  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const form = $("ask");
  const input = $("question");
  const sendButton = $("send");
  const dialog = $("article");
  const announcer = $("announcer");
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  // Relevance as a person reads it. The one definition is qa/terminal.py (RELEVANCE_LEVELS and
  // relevance_label, where the cut-offs are explained): the calibrated chance as a whole
  // percentage, rounded half up, and the level read from that percentage: 60% and over
  // "likely", 20% and over "possibly", below that "unlikely". Repeated here because the page
  // has no build step; tests/test_browser.py holds this copy to the Python one, value by value.
  const RELEVANCE_LEVELS = [
    [60, "likely"],
    [20, "possibly"],
    [0, "unlikely"],
  ];

  function relevanceLevel(relevance) {
    const percent = Math.floor(relevance * 100 + 0.5);
    return { percent, level: RELEVANCE_LEVELS.find(([cut]) => percent >= cut)[1] };
  }

  // The lang a piece of text is declared in. Passages come with their language (qa.lang's
  // rule, Passage.language); "mixed" (Chinese with English words) is declared Chinese, whose
  // voices read the Latin words too, and "und" declares nothing (the page's language holds).
  const LANG_ATTRIBUTE = { "zh-Hans": "zh-Hans", "zh-Hant": "zh-Hant", zh: "zh", en: "en", mixed: "zh" };

  function setLang(node, language) {
    const value = LANG_ATTRIBUTE[language];
    if (value) node.lang = value;
    return node;
  }

  // What the page types itself (questions, outlets): the first step of qa.lang's rule, a count
  // of Han characters against Latin words; Simplified and Traditional are not told apart here.
  function scriptLanguage(text) {
    const han = (String(text).match(/[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]/g) || []).length;
    const latin = (String(text).match(/[A-Za-z]{2,}/g) || []).length;
    if (han + latin === 0) return "und";
    const share = han / (han + latin);
    return share < 0.25 ? "en" : share < 0.75 ? "mixed" : "zh";
  }

  let lang = pickLanguage();
  let history = []; // questions asked in this conversation, oldest first
  let busy = false;
  let stats = null;

  function pickLanguage() {
    const saved = localStorage.getItem("qa-lang");
    if (saved === "zh" || saved === "en") return saved;
    return (navigator.language || "zh").toLowerCase().startsWith("zh") ? "zh" : "en";
  }

  function t(key, ...args) {
    const value = STRINGS[lang][key];
    return typeof value === "function" ? value(...args) : value;
  }

  function day(iso) {
    return iso ? String(iso).slice(0, 10) : "";
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeHttpUrl(url) {
    if (!url) return null;
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  // ---- language ---------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === "zh" ? "zh-Hans" : "en";
    document.title = lang === "zh" ? "新闻问答 · News Q&A" : "News Q&A · 新闻问答";
    for (const node of document.querySelectorAll("[data-i18n]")) {
      node.textContent = t(node.dataset.i18n);
    }
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    // the other language, named in itself (and declared so): what a speaker of it looks for
    $("lang").textContent = lang === "zh" ? "English" : "中文";
    $("lang").lang = lang === "zh" ? "en" : "zh-Hans";
    renderExamples();
    renderIndexInfo();
    renderSources();
  }

  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("qa-lang", lang);
    applyLanguage();
  });

  function renderExamples() {
    const box = $("examples");
    box.replaceChildren();
    for (const example of t("examples")) {
      const chip = setLang(el("button", "chip", example), scriptLanguage(example));
      chip.type = "button";
      chip.addEventListener("click", () => {
        input.value = example;
        ask();
      });
      box.append(chip);
    }
  }

  // ---- the access token (qa serve --token) -------------------------------
  // A server started with a token answers 401 to API requests without it. The page asks
  // for it once, keeps it in sessionStorage (this tab only, gone when the tab closes) and
  // sends it as "Authorization: Bearer ...". Opening the page as URL#token=... gives it
  // without asking: a fragment never reaches any server, and it is taken out of the
  // address bar at once.

  const TOKEN_KEY = "qa-token";
  const TOKEN_TEXT = /^[\x21-\x7e]+$/; // what a header can carry (the server's rule too)
  let tokenPrompt = null; // the open prompt, shared by requests refused meanwhile

  function takeTokenFromFragment() {
    const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (!match) return;
    let token = "";
    try {
      token = decodeURIComponent(match[1]);
    } catch (e) {
      token = "";
    }
    if (TOKEN_TEXT.test(token)) sessionStorage.setItem(TOKEN_KEY, token);
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function askForToken(wrong) {
    if (tokenPrompt) return tokenPrompt;
    const box = $("token-dialog");
    tokenPrompt = new Promise((resolve) => {
      $("token-wrong").hidden = !wrong;
      $("token-input").value = "";
      box.returnValue = "";
      box.addEventListener(
        "close",
        () => {
          const token = $("token-input").value.trim();
          const given = box.returnValue === "ok" && TOKEN_TEXT.test(token);
          if (given) sessionStorage.setItem(TOKEN_KEY, token);
          tokenPrompt = null;
          resolve(given);
        },
        { once: true }
      );
      box.showModal();
      $("token-input").focus();
    });
    return tokenPrompt;
  }

  $("token-form").addEventListener("submit", (event) => {
    if (!TOKEN_TEXT.test($("token-input").value.trim())) {
      event.preventDefault(); // nothing a header could carry: keep asking
      $("token-wrong").hidden = false;
    }
  });
  $("token-cancel").addEventListener("click", () => $("token-dialog").close(""));

  // fetch() for the API: sends the token when there is one, asks for it on 401 and tries again.
  async function api(path, options = {}) {
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = Object.assign({}, options.headers || {});
      if (token) headers.Authorization = "Bearer " + token;
      const response = await fetch(path, Object.assign({}, options, { headers }));
      if (response.status !== 401) return response;
      if (!(await askForToken(Boolean(token)))) return response;
    }
  }

  // ---- index info and the source filter ---------------------------------

  async function loadStats() {
    try {
      const response = await api("/api/stats");
      const body = await response.json();
      if (!response.ok) {
        const message = (body.error && body.error.message) || "";
        $("index-info").textContent = response.status === 401 ? t("tokenNeeded") : t("noIndex") + " " + message;
        return;
      }
      stats = body;
      renderIndexInfo();
      renderSources();
    } catch (e) {
      $("index-info").textContent = t("network");
    }
  }

  function renderIndexInfo() {
    if (stats) $("index-info").textContent = t("indexInfo", stats);
  }

  function renderSources() {
    const box = $("source-list");
    const checked = new Set(selectedSources());
    box.replaceChildren();
    const sources = (stats && stats.sources) || [];
    if (!sources.length) {
      box.append(el("span", "muted", t("noSources")));
      return;
    }
    for (const source of sources) {
      const label = el("label", "source");
      const box_ = document.createElement("input");
      box_.type = "checkbox";
      box_.value = source.name;
      box_.checked = checked.has(source.name);
      box_.addEventListener("change", updateFilterCount);
      label.append(box_, document.createTextNode(" " + source.name + " "), el("span", "muted", `(${source.articles})`));
      box.append(label);
    }
  }

  function selectedSources() {
    return Array.from(document.querySelectorAll("#source-list input:checked")).map((x) => x.value);
  }

  function currentFilters() {
    const filters = {};
    // Dates are typed as YYYY-MM-DD (or YYYY, YYYY-MM) in every language: a native date
    // picker would show the browser's format (mm/dd/yyyy in an English browser), not the page's.
    const from = $("date-from").value.trim();
    const to = $("date-to").value.trim();
    if (from) filters.date_from = from;
    if (to) filters.date_to = to;
    const sources = selectedSources();
    if (sources.length) filters.sources = sources;
    return filters;
  }

  function updateFilterCount() {
    const n = Object.keys(currentFilters()).length + ($("mode").value !== "hybrid" ? 1 : 0);
    const badge = $("filter-count");
    badge.hidden = n === 0;
    badge.textContent = String(n);
  }

  for (const id of ["date-from", "date-to", "mode"]) $(id).addEventListener("change", updateFilterCount);
  $("clear-filters").addEventListener("click", () => {
    $("date-from").value = "";
    $("date-to").value = "";
    $("mode").value = "hybrid";
    for (const box of document.querySelectorAll("#source-list input")) box.checked = false;
    updateFilterCount();
  });

  // ---- the conversation ---------------------------------------------------

  function scrollToEnd() {
    window.scrollTo({ top: document.body.scrollHeight, behavior: reducedMotion.matches ? "auto" : "smooth" });
  }

  // Screen readers hear the newest answer (or error) from one live region, #announcer; the
  // conversation itself is not live, so earlier answers are never read out again.
  function announce(...parts) {
    announcer.replaceChildren(...parts.map((x) => (typeof x === "string" ? document.createTextNode(x) : x)));
  }

  function addQuestion(text) {
    $("welcome").hidden = true;
    const bubble = setLang(el("h3", "turn question", text), scriptLanguage(text));
    bubble.id = "question-" + (log.querySelectorAll(".question").length + 1);
    log.append(bubble);
    return bubble;
  }

  function addAnswerShell(bubble) {
    const answer = el("article", "turn answer");
    answer.setAttribute("aria-labelledby", bubble.id); // each answer is named by its question
    const loading = el("div", "loading");
    loading.append(el("span", "dots"), document.createTextNode(" " + t("searching")));
    answer.append(loading);
    log.append(answer);
    announce(t("searching"));
    scrollToEnd();
    return answer;
  }

  async function ask() {
    const question = input.value.trim();
    if (!question || busy) return;
    busy = true;
    sendButton.disabled = true;
    input.value = "";
    autosize();
    const answer = addAnswerShell(addQuestion(question));
    const filters = currentFilters();
    const payload = {
      question,
      top_k: 5,
      mode: $("mode").value,
      filters,
      history: history.slice(-10),
    };
    try {
      const response = await api("/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      let body = null;
      try {
        body = await response.json();
      } catch (e) {
        body = null;
      }
      if (!response.ok) {
        const message = (body && body.error && body.error.message) || `HTTP ${response.status}`;
        renderError(answer, message);
      } else {
        history.push(question);
        renderAnswer(answer, body, Object.keys(filters).length > 0);
      }
    } catch (e) {
      renderError(answer, t("network"));
    } finally {
      busy = false;
      sendButton.disabled = false;
      input.focus();
    }
  }

  function renderError(answer, message) {
    answer.replaceChildren();
    const box = el("div", "error");
    box.append(el("strong", null, t("error")), document.createTextNode(message));
    answer.append(box);
    announce(t("error") + message);
    scrollToEnd();
  }

  function renderAnswer(answer, body, filtered) {
    answer.replaceChildren();
    if (body.follow_up || body.searched !== body.question) {
      const note = el("p", "searched");
      const searched = setLang(el("q", null, body.searched), scriptLanguage(body.searched));
      note.append(el("span", "muted", t("searched")), searched);
      answer.append(note);
    }
    const passages = body.passages || [];
    if (!passages.length) {
      const nothing = t(filtered ? "nothingFiltered" : "nothing");
      answer.append(el("p", "nothing", nothing));
      announce(nothing);
      scrollToEnd();
      return;
    }
    const list = el("ol", "cards");
    for (const passage of passages) list.append(renderCard(passage));
    if (body.answerable === false) {
      // The verdict first, in words; the nearest passages stay one step away, for reference.
      const verdict = el("div", "verdict");
      verdict.append(el("p", "verdict-text", t("notAnswered")), el("p", "verdict-hint", t("notAnsweredHint")));
      const nearest = el("details", "nearest");
      nearest.append(el("summary", null, t("showNearest", passages.length)), list);
      answer.append(verdict, nearest);
      announce(t("notAnswered"));
    } else {
      answer.append(el("p", "summary muted", `${t("results", passages.length)} · ${Math.round(body.took_ms)} ms`));
      // A fact about the words, not a verdict on the answer: passages found by meaning alone
      // (an English question over Chinese articles) can answer it well. Where the verdict is
      // that none answers, the verdict says enough (qa chat does the same).
      if (passages.every((p) => !(p.highlights && p.highlights.length))) {
        answer.append(el("p", "by-meaning", t("byMeaning")));
      }
      answer.append(list);
      const first = setLang(el("span", null, bestText(passages[0])), passages[0].language);
      announce(t("announceResults", passages.length), first);
    }
    // keep the question in view, the first card just below it
    const behavior = reducedMotion.matches ? "auto" : "smooth";
    answer.previousElementSibling.scrollIntoView({ behavior, block: "start" });
  }

  // What is read out of the first passage: the sentence that best answers, else all of it.
  function bestText(passage) {
    const best = passage.best_sentence;
    return best && best[0] < best[1] ? passage.text.slice(best[0], best[1]) : passage.text;
  }

  // Split text at every highlight and best-sentence boundary; each piece is a text node,
  // wrapped in <mark> when highlighted and inside <span class="best"> when in the best sentence.
  function renderPassageText(text, highlights, best) {
    const container = el("p", "passage");
    const cuts = new Set([0, text.length]);
    const spans = (highlights || [])
      .map(([a, b]) => [Math.max(0, a), Math.min(text.length, b)])
      .filter(([a, b]) => a < b);
    for (const [a, b] of spans) {
      cuts.add(a);
      cuts.add(b);
    }
    const bestSpan = best && best[0] < best[1] ? [Math.max(0, best[0]), Math.min(text.length, best[1])] : null;
    if (bestSpan) {
      cuts.add(bestSpan[0]);
      cuts.add(bestSpan[1]);
    }
    const points = Array.from(cuts).sort((x, y) => x - y);
    let bestNode = null;
    for (let i = 0; i + 1 < points.length; i++) {
      const [a, b] = [points[i], points[i + 1]];
      const piece = document.createTextNode(text.slice(a, b));
      const marked = spans.some(([s, e]) => s <= a && b <= e);
      const node = marked ? el("mark") : piece;
      if (marked) node.append(piece);
      const inBest = bestSpan && bestSpan[0] <= a && b <= bestSpan[1];
      if (inBest) {
        if (!bestNode) {
          bestNode = el("span", "best");
          container.append(bestNode);
        }
        bestNode.append(node);
      } else {
        bestNode = null;
        container.append(node);
      }
    }
    return container;
  }

  // The passage's relevance, as a level and a percentage (calibrated), or its score when the
  // index's model has no calibration (relevance null).
  function renderRelevance(passage) {
    if (passage.relevance === null || passage.relevance === undefined) {
      return el("span", "score muted", `${t("score")} ${Number(passage.score).toFixed(3)}`);
    }
    const { percent, level } = relevanceLevel(passage.relevance);
    const badge = el("span", "relevance level-" + level, `${t(level)} · ${percent}%`);
    badge.dataset.level = level;
    badge.title = t("relevanceHelp");
    return badge;
  }

  function renderCard(passage) {
    const c = passage.citation;
    const card = el("li", "card");
    card.dataset.articleId = c.article_id;
    const text = renderPassageText(passage.text, passage.highlights, passage.best_sentence);
    card.append(setLang(text, passage.language));

    const cite = el("div", "citation");
    cite.append(el("span", "num", `[${passage.rank}]`));
    const url = safeHttpUrl(c.url);
    let title;
    if (url) {
      title = el("a", "title", c.title || c.article_id);
      title.href = url;
      title.target = "_blank";
      title.rel = "noopener noreferrer";
    } else {
      title = el("button", "title linklike", c.title || c.article_id);
      title.type = "button";
      title.addEventListener("click", () => openArticle(c, title));
    }
    cite.append(setLang(title, passage.language)); // a title is in its article's language, as its passages
    const meta = [c.source, day(c.published), c.paragraphs].filter(Boolean).join(" · ");
    cite.append(setLang(el("span", "meta", meta), scriptLanguage(c.source || "")));
    const actions = el("span", "actions");
    if (url) {
      const read = el("button", "ghost small read", t("readArticle"));
      read.type = "button";
      read.addEventListener("click", () => openArticle(c, read));
      actions.append(read);
    }
    actions.append(renderRelevance(passage));
    cite.append(actions);
    card.append(cite);
    return card;
  }

  // ---- the article panel ---------------------------------------------------
  // A modal dialog labelled by the article's title. Focus moves into it when it opens and stays
  // in it (Tab and Shift+Tab go round), Escape closes it, and focus then returns to the citation
  // that opened it. Only the newest article asked for may fill it: opening another one, or
  // closing the panel, aborts the request before, and a response that comes anyway is dropped.

  let articleRequest = null; // the AbortController of the article loading now
  let opener = null; // the control that opened the panel

  async function openArticle(citation, from) {
    if (articleRequest) articleRequest.abort();
    const request = new AbortController();
    articleRequest = request;
    opener = from || document.activeElement;
    const title = $("article-title");
    const body = $("article-body");
    title.textContent = citation.title || citation.article_id;
    title.removeAttribute("lang");
    $("article-meta").textContent = t("loadingArticle");
    body.replaceChildren();
    body.removeAttribute("lang");
    if (!dialog.open) dialog.showModal();
    $("article-close").focus();
    try {
      const path = "/api/articles/" + encodeURIComponent(citation.article_id);
      const response = await api(path, { signal: request.signal });
      const article = await response.json();
      if (request !== articleRequest) return; // a newer article owns the panel, or it was closed
      articleRequest = null;
      if (!response.ok) {
        $("article-meta").textContent = t("error") + ((article.error && article.error.message) || response.status);
        return;
      }
      setLang(title, article.language).textContent = article.title;
      const meta = [article.source, day(article.published), citation.paragraphs].filter(Boolean).join(" · ");
      $("article-meta").replaceChildren(document.createTextNode(meta));
      const url = safeHttpUrl(article.url);
      if (url) {
        const link = el("a", null, t("openLink"));
        link.href = url;
        link.target = "_blank";
        link.rel = "noopener noreferrer";
        $("article-meta").append(document.createTextNode(" · "), link);
      }
      setLang(body, article.language);
      let first = null;
      article.paragraphs.forEach((text, i) => {
        const n = i + 1;
        const p = el("p", "para", text);
        p.dataset.n = String(n);
        p.title = t("paragraph", n);
        if (n >= citation.para_start && n <= citation.para_end) {
          p.classList.add("cited");
          if (!first) first = p;
        }
        body.append(p);
      });
      if (first) first.scrollIntoView({ block: "center" });
    } catch (e) {
      if (request !== articleRequest) return; // aborted: nothing to say
      articleRequest = null;
      $("article-meta").textContent = t("network");
    }
  }

  // Tab and Shift+Tab go round a dialog's controls instead of leaving it.
  function keepFocusIn(event) {
    if (event.key !== "Tab") return;
    const box = event.currentTarget;
    const controls = Array.from(
      box.querySelectorAll("a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex]")
    ).filter((x) => x.tabIndex >= 0 && x.getClientRects().length > 0);
    if (!controls.length) return;
    const first = controls[0];
    const last = controls[controls.length - 1];
    const inside = box.contains(document.activeElement) && document.activeElement !== box;
    if (event.shiftKey && (!inside || document.activeElement === first)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (!inside || document.activeElement === last)) {
      event.preventDefault();
      first.focus();
    }
  }

  dialog.addEventListener("keydown", keepFocusIn);
  $("token-dialog").addEventListener("keydown", keepFocusIn);
  $("article-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close(); // a click on the backdrop
  });
  dialog.addEventListener("close", () => {
    if (articleRequest) articleRequest.abort();
    articleRequest = null;
    const back = opener;
    opener = null;
    (back && back.isConnected ? back : input).focus();
  });

  // ---- the composer ----------------------------------------------------------

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 200) + "px";
  }

  input.addEventListener("input", autosize);
  input.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME candidate does nothing.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      ask();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });

  $("new-chat").addEventListener("click", () => {
    history = [];
    for (const turn of Array.from(log.querySelectorAll(".turn"))) turn.remove();
    $("welcome").hidden = false;
    announce("");
    input.focus();
  });

  // The skip link moves focus to the question box without touching the address bar.
  $("skip").addEventListener("click", (event) => {
    event.preventDefault();
    input.focus();
  });

  takeTokenFromFragment();
  applyLanguage();
  loadStats();
  input.focus();
})();
