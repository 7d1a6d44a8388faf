"""Every example in README.md and eval/README.md works as written (issue 13, item 1).

Each fenced block is one of these kinds, and a block of no known kind fails the test
(so a new example cannot go unchecked):

- **server**: shell lines that talk to a running server (curl, ``qa ask --server``, or
  a ``qa serve`` they start themselves). Run as written by bash, in a fresh copy of the
  project's examples with an index built by the fake model, against a live ``qa serve``
  on a free port. The only changes are to the network: connections to port 8000 of the
  README's hosts go to that server (curl's ``--connect-to``, so the URL and Host header
  stay as written), and a ``qa serve`` line runs in the background, as in a second
  terminal. curl runs with ``--fail-with-body``: an HTTP error fails the example.
- **library**: Python run as written in such a copy; the one that loads the default
  model is marked slow, and otherwise only its imports are run.
- **json**: a documented answer, which must be one :class:`qa.answer.Answer`.
- **synopsis**: ``qa COMMAND [--option ...]`` lines: every option exists, every command
  is listed.
- **long-running** (set-up, the test suite, benchmarks, evaluations of hours): the
  scripts and files they name exist and take the options shown.
- **layout**: a block with no language (a folder tree): not a command.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa.cli import _build_parser
from qa.embed import HashEmbedder
from qa.index import sync_folders
from qa.records import ReadReport

ROOT = Path(__file__).resolve().parents[1]
READMES = ("README.md", "eval/README.md")
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Example:
    file: str
    line: int
    lang: str
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def kind(self) -> str:
        t = self.text
        if not self.lang:
            return "layout"
        if self.lang == "json":
            return "json"
        if self.lang == "python":
            return "library (default model)" if "load_embedder(" in t else "library"
        if self.lang in ("sh", "bash", "shell"):
            if "[--" in t:
                return "synopsis"
            if re.search(r"scripts/(start|test)\.sh|eval/|pytest", t):
                return "long-running"
            if re.search(r"\bcurl\b|--server|\bqa serve\b", t):
                return "server"
        return "unknown"


def examples() -> list[Example]:
    found = []
    for name in READMES:
        text = (ROOT / name).read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(name, line, match.group(1), match.group(2)))
    return found


def of_kind(*kinds: str) -> list[Example]:
    return [e for e in examples() if e.kind in kinds]


def commands(text: str) -> list[str]:
    """The block's command lines, continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_every_example_is_of_a_known_kind():
    found = examples()
    assert len(found) >= 10  # the READMEs were read
    unknown = [f"{e} ({e.lang or 'no language'}): {e.text[:60]!r}" for e in found if e.kind == "unknown"]
    assert not unknown, "examples this test does not know how to check:\n" + "\n".join(unknown)
    kinds = {e.kind for e in found}
    assert {"server", "library", "library (default model)", "json", "synopsis", "long-running"} <= kinds


# --- a fresh copy of the project to run examples in --------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_copy(base: Path, *, with_index: bool) -> Path:
    """What a fresh clone holds that the examples use: examples/articles and .venv (and,
    for examples that need one, the index `bash scripts/start.sh` builds, with the fake model:
    built by the library, as `qa index` builds it, since the CLI does not offer that model)."""
    base.mkdir(parents=True)
    shutil.copytree(ROOT / "examples" / "articles", base / "examples" / "articles")
    (base / ".venv").symlink_to(ROOT / ".venv")
    if with_index:
        sync_folders(base / "index", [base / "examples" / "articles"], HashEmbedder(), ReadReport(), progress=False)
    return base


def environment(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_") and k != "NO_COLOR"}
    env.update(QA_PORT=str(port), PATH=f"{VENV_BIN}:{env['PATH']}", NO_COLOR="1")
    return env


# The network, rerouted: port 8000 of any host named in an example is the test's server.
PRELUDE = r"""
set -eo pipefail
curl() { command curl --connect-to "::127.0.0.1:$QA_PORT" --fail-with-body --max-time 120 "$@"; echo; }
qa() {
    if [ "$1" = serve ]; then  # as in a second terminal
        command qa "$@" --log-level warning > serve.log 2>&1 &
        for _ in $(seq 600); do
            command curl -s -o /dev/null "http://127.0.0.1:$QA_PORT/api/health" && return 0
            sleep 0.1
        done
        cat serve.log >&2; return 1
    fi
    local args=()
    for a in "$@"; do args+=("$(printf '%s' "$a" | sed -E "s#^https?://[^/]+:8000#http://127.0.0.1:$QA_PORT#")"); done
    command qa "${args[@]}"
}
"""


def start_server(where: Path, env: dict[str, str]) -> subprocess.Popen:
    """`qa serve` on the copy's index, as `bash scripts/start.sh` leaves it running."""
    proc = subprocess.Popen([str(VENV_BIN / "qa"), "serve", "--index", "index", "--log-level", "warning"],
                            cwd=where, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{env['QA_PORT']}/api/health"
    deadline = time.monotonic() + 60
    while subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=False).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.1)
    return proc


@pytest.mark.parametrize("example", of_kind("server"), ids=str)
def test_server_examples_run_as_written(example, tmp_path):
    where = fresh_copy(tmp_path / "clone", with_index=True)
    env = environment(free_port())
    server = None if re.search(r"^\s*qa serve\b", example.text, re.M) else start_server(where, env)
    block = subprocess.Popen(["bash", "-c", PRELUDE + example.text], cwd=where, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        out, err = block.communicate(timeout=300)
    finally:
        with_children = [block] + ([server] if server else [])
        for proc in with_children:
            try:
                os.killpg(proc.pid, signal.SIGTERM) if proc is block else proc.terminate()
            except ProcessLookupError:
                pass
        if server:
            server.wait(timeout=30)
    assert block.returncode == 0, f"{example} failed:\n{example.text}\n--- stdout\n{out}\n--- stderr\n{err}"
    for line in commands(example.text):
        if line.startswith("curl"):
            assert '"passages"' in out, out
        if line.startswith("qa ask"):
            assert re.search(r"\d+ passages, hybrid, search \d+ ms on http://", out), out
    assert '"error"' not in out, out


# --- the library ------------------------------------------------------------------------


def run_python(code: str, where: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=where, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if not k.startswith("QA_")})  # fmt: skip


@pytest.mark.parametrize("example", of_kind("library"), ids=str)
def test_library_examples_run_as_written(example, tmp_path):
    done = run_python(example.text, fresh_copy(tmp_path / "clone", with_index=True))
    assert done.returncode == 0, f"{example}:\n{done.stderr}"
    assert done.stdout.strip(), example


@pytest.mark.parametrize("example", of_kind("library", "library (default model)"), ids=str)
def test_library_examples_import_what_exists(example, tmp_path):
    """Their imports at least (the slow run below does the rest with the real model)."""
    tree = ast.parse(example.text)
    imports = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    done = run_python(ast.unparse(imports), ROOT)
    assert done.returncode == 0, f"{example}:\n{done.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize("example", of_kind("library (default model)"), ids=str)
def test_library_examples_with_the_default_model_run_as_written(example, tmp_path):
    done = run_python(example.text, fresh_copy(tmp_path / "clone", with_index=False))
    assert done.returncode == 0, f"{example}:\n{done.stderr}"
    assert "32.2万起" in done.stdout, done.stdout


# --- documented JSON, command synopses, long-running commands -------------------------------


@pytest.mark.parametrize("example", of_kind("json"), ids=str)
def test_documented_answers_have_the_answer_shape(example):
    import json

    from qa.answer import Answer

    document = json.loads(example.text)
    answer = Answer.model_validate(document)
    assert answer.model_dump(mode="json") == document  # every field documented, none invented


def test_the_synopsis_lists_every_command_with_options_that_exist():
    parser = _build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    listed = set()
    for example in of_kind("synopsis"):
        for line in commands(example.text):
            if not line.startswith("qa "):
                continue
            name = line.split()[1]
            listed.add(name)
            known = {opt for action in sub.choices[name]._actions for opt in action.option_strings}
            used = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line.split(" ", 2)[2] if line.count(" ") > 1 else ""))
            assert used <= known, f"qa {name}: {sorted(used - known)} are not options of `qa {name}`"
    assert listed == set(sub.choices), f"commands missing from the README: {sorted(set(sub.choices) - listed)}"


def script_help(script: str) -> str:
    """What ``python SCRIPT --help`` prints (argparse lists every option it takes)."""
    done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script} --help: {done.stderr}"
    return done.stdout


@pytest.mark.parametrize("example", of_kind("long-running"), ids=str)
def test_long_running_commands_name_what_exists(example):
    for line in commands(example.text):
        words = shlex.split(line)
        while words and re.match(r"^[A-Z_]+=", words[0]):  # THREADS=1 cmd, XQ=path
            words = words[1:]
        if not words or words[:1] == ["source"]:
            continue
        if words[0] == "bash":
            assert (ROOT / words[1]).is_file(), line
        elif words[0].startswith(("eval/", "scripts/")):
            assert os.access(ROOT / words[0], os.X_OK), line
        elif words[:3] == ["python", "-m", "pytest"]:
            assert all((ROOT / w).exists() for w in words[3:] if w.startswith("tests/")), line
        elif words[0] == "python" and words[1].endswith(".py"):
            usage = script_help(words[1])
            for option in (w for w in words[2:] if w.startswith("--")):
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", usage), f"{words[1]} takes no {option} ({example})"
        else:
            raise AssertionError(f"{example}: no rule checks {line!r}")
