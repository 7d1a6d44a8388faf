"""Upgrading an index of format 1 (``gen-NNNNNN/`` copies) to format 2, in place.

Run by the :class:`~qa.index.writer.Writer` when it finds a format-1
manifest: every stored vector is copied into the pending-embeddings cache,
every stored article is added again in one commit (chunked and tokenised
anew; no chunk is embedded again when the chunker gives the same text), the
format-2 manifest replaces the old one, and the old generation folders are
deleted. Killed midway, the format-1 manifest is still there and the next
run starts the upgrade over (the vectors already copied are kept).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qa.errors import IndexCorrupt, IndexMismatch
import qa.index.files as fs
from qa.index.manifest import MANIFEST
from qa.records import Article

log = logging.getLogger(__name__)


def read_v1_manifest(root: Path) -> dict:
    try:
        manifest = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
        manifest["directory"], manifest["embedding"]["model"]  # noqa: B018
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorrupt(f"the format-1 index at {root} is unreadable ({exc}); delete it and rebuild") from exc
    return manifest


def _v1_store(root: Path, manifest: dict) -> sqlite3.Connection:
    path = Path(root) / manifest["directory"] / manifest.get("files", {}).get("store", "store.sqlite")
    if not path.is_file():
        raise IndexCorrupt(f"the format-1 index at {root} lacks {path}; delete it and rebuild")
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def v1_articles(db: sqlite3.Connection) -> Iterator[Article]:
    for aid, title, source, url, published, tags, language, path, paragraphs, editor, fmt in db.execute(
        "SELECT id, title, source, url, published, tags, language, path, paragraphs, editor, format"
        " FROM articles ORDER BY id"
    ):
        yield Article(
            id=aid, title=title, source=source, url=url, published=published, tags=tuple(json.loads(tags)),
            language=language, path=path, paragraphs=tuple(json.loads(paragraphs)), editor=editor, format=fmt,
        )


def v1_vectors(db: sqlite3.Connection, dimension: int) -> Iterator[tuple[list[str], np.ndarray]]:
    cursor = db.execute("SELECT embed_hash, embedding FROM chunks")
    while batch := cursor.fetchmany(5000):
        hashes = [h for h, _ in batch]
        vectors = np.frombuffer(b"".join(b for _, b in batch), dtype="<f4").reshape(len(batch), dimension)
        yield hashes, vectors


def ann_of(manifest: dict) -> str:
    return manifest.get("ann") if manifest.get("ann") in ("flat", "hnsw") else "flat"


def upgrade_v1(writer, manifest: dict) -> int:
    """Load the format-1 index into ``writer`` (a new format-2 catalog) and commit; returns articles."""
    root = writer.root
    built = manifest["embedding"]
    if built["model"] != writer.embedder.model or int(built["dimension"]) != writer.embedder.dimension:
        raise IndexMismatch(
            f"the index at {root} was built with the model {built['model']!r}, not {writer.embedder.model!r}: "
            "upgrade it with that model (leave --model out), or build a new index in another directory"
        )
    log.warning("upgrading the index at %s from format 1 to format 2 (nothing is embedded again)", root)
    db = _v1_store(root, manifest)
    try:
        for hashes, vectors in v1_vectors(db, writer.embedder.dimension):
            writer._pending.put(hashes, vectors)
        step, writer.step_chunks = writer.step_chunks, 1 << 62  # one commit: all or nothing
        n = 0
        for article in v1_articles(db):
            writer.add(article)
            n += 1
        writer.commit()
        writer.step_chunks = step
    finally:
        db.close()
    writer.write_manifest()
    for path in Path(root).iterdir():
        if path.is_dir() and path.name.startswith("gen-"):
            fs.remove_tree(path)
    return n
