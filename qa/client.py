"""Where ``qa ask`` and ``qa chat`` search: an index opened here, or a running ``qa serve``.

Both answer with the JSON form of :mod:`qa.answer`, so what is printed does
not depend on where the search ran:

- :class:`LocalSearch` opens the index in this process. Its model is loaded
  on the first dense search (seconds): worth it for a chat, which loads it
  once, and what a single ``qa ask`` pays every time.
- :class:`RemoteSearch` asks a running ``qa serve`` over HTTP, whose model is
  loaded already: a question costs the search, not the start-up. Standard
  library only, so the client starts in a tenth of a second.

A refusal keeps the server's code and message (:class:`ServerError`), so
``qa ask --server`` reports exactly what ``qa ask`` would.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.errors import QAError

Filters = dict[str, Any]  # the API's filters: date_from, date_to, sources, tags, max_per_article


class ServerError(QAError):
    """A running server refused a request or could not be reached; ``code`` as the API names it."""

    def __init__(self, message: str, code: str = "unreachable", status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class LocalSearch:
    """An index opened in this process (``embedder`` None: the model the index was built with)."""

    def __init__(self, index_dir: Path | str, embedder: Any = None, translator: Any = None):
        from qa.index import Index

        self.where = str(index_dir)
        self.index = Index.open(index_dir, embedder, translator=translator)

    def ask(self, question: str, *, history: Sequence[str] = (), k: int = 5, mode: str = "hybrid",
            filters: Filters | None = None) -> dict[str, Any]:  # fmt: skip
        """The answer's JSON form; QAError (InvalidQuery...) for what the library refuses."""
        from qa.answer import ask

        return ask(self.index, question, history=history, k=k, mode=mode,
                   filters=_search_filters(filters or {})).to_json()  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """What the index holds, as /api/stats names it (articles, chunks, sources)."""
        s = self.index.stats()
        sources = [{"name": name, "articles": n} for name, n in self.index.sources()]
        return {"articles": s.articles, "chunks": s.chunks, "sources": sources}

    def warm_up(self, mode: str = "hybrid") -> None:
        """Load what ``mode`` needs now (the tokenizer; the model unless lexical), not during a question."""
        self.index.search("warm-up 预热", k=1, mode=mode)

    def close(self) -> None:
        self.index.close()


def _search_filters(filters: Filters):
    from qa.records import SearchFilters

    return SearchFilters(
        date_from=filters.get("date_from"), date_to=filters.get("date_to"),
        sources=tuple(filters.get("sources") or ()), tags=tuple(filters.get("tags") or ()),
        max_per_article=filters.get("max_per_article"),
    )  # fmt: skip


class RemoteSearch:
    """A running ``qa serve`` at ``url`` (with its token, if it was started with one)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 120.0):
        self.where = url.rstrip("/")
        self._token = token
        self._timeout = timeout_s

    def ask(self, question: str, *, history: Sequence[str] = (), k: int = 5, mode: str = "hybrid",
            filters: Filters | None = None) -> dict[str, Any]:  # fmt: skip
        """POST /api/ask; the answer's JSON form as the server sent it."""
        body = {"question": question, "top_k": k, "mode": mode, "history": list(history),
                "filters": {key: value for key, value in (filters or {}).items() if value}}  # fmt: skip
        return self._request("/api/ask", body)

    def stats(self) -> dict[str, Any]:
        return self._request("/api/stats")

    def warm_up(self, mode: str = "hybrid") -> None:
        """Nothing to load here: the server has its model. Checks it answers (and takes the token)."""
        self.stats()

    def close(self) -> None:
        pass

    def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.where + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310 (http/https only)
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerError(f"cannot reach the server at {self.where} ({reason}): is `qa serve` running there?") from None
        except ValueError as exc:  # not JSON, or an unknown URL scheme
            raise ServerError(f"{self.where} did not answer as `qa serve` does ({exc})") from None


def _refusal(exc: urllib.error.HTTPError) -> ServerError:
    """The server's own {"error": {"code", "message"}}, or a line saying what came back instead."""
    try:
        error = json.loads(exc.read().decode("utf-8"))["error"]
        return ServerError(str(error["message"]), str(error["code"]), exc.code)
    except (ValueError, KeyError, TypeError, OSError):
        return ServerError(f"the server answered HTTP {exc.code} {exc.reason}", "http_error", exc.code)


def check_server_url(url: str) -> str:
    """The URL if it is an http(s) URL with a host; ValueError saying what is expected otherwise."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--server wants the URL of a running `qa serve`, e.g. http://127.0.0.1:8000, not {url!r}")
    return url
