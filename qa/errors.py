"""Domain errors. Library code raises these; the edges (CLI, HTTP server,
eval scripts) turn them into exit codes or HTTP statuses with the message,
which is always written for a person: what went wrong and what to do."""

from __future__ import annotations


class QAError(Exception):
    """Base class of every error this package raises on purpose."""


class ReadError(QAError):
    """A file could not be read as an article (binary, encoding, front matter, no text)."""

    def __init__(self, path: str, reason: str, detail: str = ""):
        self.path = path
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # so that a reader process can hand one over
        return type(self), (self.path, self.reason, self.detail)


class ModelNotAvailable(QAError):
    """The embedding model cannot be loaded here (not installed, no hub access...)."""


class IndexNotFound(QAError):
    """There is no index at the given directory yet."""


class IndexMismatch(QAError):
    """The index was built with another model, dimension or format version."""


class IndexCorrupt(QAError):
    """The index directory exists but its files are unreadable or inconsistent."""


class IndexBusy(QAError):
    """Another process is updating the index."""


class IndexWriteError(QAError):
    """Writing the index failed (disk full, permissions...); the last committed state is intact."""


class InvalidQuery(QAError):
    """A question or search parameter that cannot be searched (empty, too long, bad filter...)."""


class ArticleNotFound(QAError):
    """No article with that id in the index."""


class GlossaryError(QAError):
    """A glossary file (English -> Chinese words for English questions) is missing or malformed."""
