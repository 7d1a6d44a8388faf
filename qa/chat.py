"""``qa chat``: a conversation with an index, in a terminal.

Questions are searched as in the chat page: a short follow-up ("那2021年呢？",
"and in Hong Kong?") is searched together with the earlier questions
(:func:`qa.conversation.analyze`, through :func:`qa.answer.ask` or the server),
and the searched form is shown when it differs. Every passage is printed with
its citation and link. The model is loaded once, when the chat starts (or not
at all with ``--server``: the server has it).

Lines starting with ``:`` are commands (:data:`HELP`); everything else is a
question. Line editing and history come from readline when the input is a
terminal, the history kept in a file between sessions.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from qa.errors import QAError
from qa.terminal import dim, format_passages, summary

MODES = ("hybrid", "dense", "lexical")
MAX_HISTORY = 10  # earlier questions sent with a follow-up, as the page does
HISTORY_LINES = 1000  # lines kept in the readline history file
PROMPT = "? "

HELP = """Ask a question in Chinese or English; a short follow-up ("那2021年呢？") is searched with the
questions before it. Commands:
  :sources            the outlets in the index, with their article counts
  :source NAME        only passages from NAME (repeat for several); ":source" alone: any outlet
  :from DATE          only articles published on or after DATE (YYYY, YYYY-MM or YYYY-MM-DD); ":from" alone: no bound
  :to DATE            only articles published on or before DATE (a year, month or day: all of it)
  :mode MODE          hybrid (words and meaning, the default), dense (meaning) or lexical (words)
  :k N                passages per answer (1 to 100; default 5)
  :settings           what the next question is searched with
  :clear              start a new conversation (earlier questions are forgotten; settings stay)
  :help               this list
  :quit               leave (Ctrl-D too)"""


@dataclass
class Settings:
    """What the next question is searched with."""

    k: int = 5
    mode: str = "hybrid"
    date_from: str | None = None
    date_to: str | None = None
    sources: list[str] = field(default_factory=list)

    def filters(self) -> dict[str, Any]:
        return {"date_from": self.date_from, "date_to": self.date_to, "sources": list(self.sources)}

    def describe(self) -> str:
        parts = [f"mode {self.mode}", f"{self.k} passages"]
        if self.date_from or self.date_to:
            parts.append(f"dates {self.date_from or '…'} to {self.date_to or '…'}")
        parts.append("sources: " + (", ".join(self.sources) if self.sources else "all"))
        return "; ".join(parts)


class Chat:
    """One conversation: takes lines (questions and commands), writes answers to ``out``.

    ``search`` is a :class:`qa.client.LocalSearch` or :class:`qa.client.RemoteSearch`.
    """

    def __init__(self, search: Any, *, settings: Settings | None = None, color: bool = False,
                 out: TextIO | None = None):  # fmt: skip
        self.search = search
        self.settings = settings or Settings()
        self.color = color
        self.out = out or sys.stdout
        self.history: list[str] = []  # questions answered in this conversation, oldest first
        self.commands: dict[str, Callable[[str], None]] = {
            "sources": self.cmd_sources, "source": self.cmd_source, "from": self.cmd_from, "to": self.cmd_to,
            "mode": self.cmd_mode, "k": self.cmd_k, "settings": self.cmd_settings, "clear": self.cmd_clear,
            "help": self.cmd_help,
        }  # fmt: skip

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def handle(self, line: str) -> bool:
        """Answer a question or run a command; False when the chat should end."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith(":"):
            self.ask(line)
            return True
        name, _, rest = line[1:].partition(" ")
        name = name.lower()
        if name in ("quit", "q", "exit"):
            return False
        command = self.commands.get(name)
        if command is None:
            self.say(f"unknown command :{name}; :help lists the commands")
        else:
            command(rest.strip())
        return True

    # -- questions ---------------------------------------------------------

    def ask(self, question: str) -> None:
        s = self.settings
        try:
            answer = self.search.ask(question, history=self.history[-MAX_HISTORY:], k=s.k, mode=s.mode,
                                     filters=s.filters())  # fmt: skip
        except QAError as exc:
            self.say(f"error: {exc}")
            return
        self.history.append(answer["question"])
        self.print_answer(answer)

    def print_answer(self, answer: dict[str, Any]) -> None:
        if answer.get("follow_up") or answer["searched"] != answer["question"]:
            self.say(dim(f"searched: {answer['searched']}", self.color))
        if not answer["passages"]:
            filtered = self.settings.date_from or self.settings.date_to or self.settings.sources
            self.say("no passages found" + (" (try fewer filters: :settings shows them)" if filtered else ""))
            return
        self.say(format_passages(answer, self.color))
        self.say(dim(summary(answer), self.color))
        if answer.get("answerable") is not False and not any(p.get("highlights") for p in answer["passages"]):
            # a fact about the words, not a verdict; where the verdict is that none answers, it says enough
            self.say(dim("No passage shares a word with your question: these were found by meaning.", self.color))
        self.say()

    # -- commands ----------------------------------------------------------

    def cmd_help(self, _: str) -> None:
        self.say(HELP)

    def cmd_settings(self, _: str) -> None:
        self.say(self.settings.describe())

    def cmd_clear(self, _: str) -> None:
        self.history.clear()
        self.say("new conversation; " + self.settings.describe())

    def cmd_sources(self, _: str) -> None:
        try:
            sources = self.search.stats()["sources"]
        except QAError as exc:
            self.say(f"error: {exc}")
            return
        if not sources:
            self.say("the index names no outlets")
        for s in sources:
            self.say(f"{s['articles']:>6}  {s['name'] or '(no outlet)'}")

    def cmd_source(self, arg: str) -> None:
        if not arg:
            self.settings.sources.clear()
        else:
            name = self._known_source(_unquote(arg))
            if name is None:
                return
            if name not in self.settings.sources:
                self.settings.sources.append(name)
        self.say(self.settings.describe())

    def _known_source(self, name: str) -> str | None:
        """The index's own spelling of ``name`` (case aside), or None after saying there is none."""
        try:
            names = [s["name"] for s in self.search.stats()["sources"]]
        except QAError as exc:
            self.say(f"error: {exc}")
            return None
        if name in names:
            return name
        same = [n for n in names if n.casefold() == name.casefold()]
        if len(same) == 1:
            return same[0]
        self.say(f"error: no outlet named {name!r} in the index; :sources lists them")
        return None

    def cmd_from(self, arg: str) -> None:
        self._set_date("date_from", arg)

    def cmd_to(self, arg: str) -> None:
        self._set_date("date_to", arg)

    def _set_date(self, which: str, arg: str) -> None:
        """Set (or, without a date, clear) one bound, checked by the library's one date rule."""
        from qa.answer import check_date
        from qa.index.filters import check_filters
        from qa.records import SearchFilters

        value = arg or None
        try:
            if value is not None:
                check_date(which, value)
            bounds = {"date_from": self.settings.date_from, "date_to": self.settings.date_to, which: value}
            check_filters(SearchFilters(**bounds))
        except QAError as exc:
            self.say(f"error: {exc}")
            return
        setattr(self.settings, which, value)
        self.say(self.settings.describe())

    def cmd_mode(self, arg: str) -> None:
        if arg.lower() not in MODES:
            self.say(f"error: the mode is one of {', '.join(MODES)}")
            return
        self.settings.mode = arg.lower()
        self.say(self.settings.describe())

    def cmd_k(self, arg: str) -> None:
        from qa.index import MAX_K

        if not (arg.isascii() and arg.isdigit() and 1 <= int(arg) <= MAX_K):
            self.say(f"error: k must be a whole number from 1 to {MAX_K}, not {arg!r}")
            return
        self.settings.k = int(arg)
        self.say(self.settings.describe())


def _unquote(text: str) -> str:
    """A name as typed, quotes allowed ('New York Times' or "联合早报")."""
    try:
        parts = shlex.split(text)
    except ValueError:
        return text
    return " ".join(parts) if parts else text


def _readline(history_file: Path | None):
    """readline with the history file loaded, or None when the input is not a terminal."""
    if not sys.stdin.isatty():
        return None
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return None
    readline.set_history_length(HISTORY_LINES)
    if history_file is not None and history_file.exists():
        try:
            readline.read_history_file(history_file)
        except OSError:
            pass
    return readline


def _save_history(readline: Any, history_file: Path | None) -> None:
    if readline is None or history_file is None:
        return
    try:
        history_file.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(history_file)
    except OSError as exc:
        print(f"qa chat: the history could not be saved to {history_file}: {exc.strerror}", file=sys.stderr)


def run(chat: Chat, history_file: Path | None = None) -> None:
    """Read lines until :quit or end of input; the readline history is saved on the way out."""
    readline = _readline(history_file)
    try:
        while True:
            try:
                if not chat.handle(input(PROMPT)):
                    break
            except KeyboardInterrupt:  # Ctrl-C drops the line being typed (or the search), as a shell does
                chat.say()
    except EOFError:
        chat.say()
    finally:
        _save_history(readline, history_file)
