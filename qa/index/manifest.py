"""``manifest.json``: what an index is, in a file a person can read.

The manifest names the format version, the embedding model and dimension,
the ANN kind, the counts and the segments of the last commit, and the index's
identity: ``index_id`` (a random id given when the index is created, so an
index deleted and rebuilt in the same folder is a different index) and
``version`` (one more at every commit). The catalog (``store.sqlite``) holds
the same facts transactionally and is the truth; the manifest is rewritten
atomically after every commit, and a reader uses it to refuse, with a clear
message, an index it cannot read (another format version, another model).

Format history:

- 1: ``gen-NNNNNN/`` folders, each a full copy of the index; rewritten on
  every update. Upgraded in place by ``qa index`` (no re-embedding).
- 2: one catalog updated in place (SQLite, WAL) plus immutable segments
  (``segments/sNNNNNN/``) with deletion markers and merges.
"""

from __future__ import annotations

import json
from pathlib import Path

from qa.embed import Embedder
from qa.errors import IndexCorrupt, IndexMismatch, IndexNotFound
from qa.fileio import write_json_atomically

FORMAT = "qa-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
STORE_FILE = "store.sqlite"
SEGMENTS_DIR = "segments"


def not_found(root: Path) -> IndexNotFound:
    return IndexNotFound(
        f"no index at {root}: build one with `qa index PATH --index {root}` "
        "(PATH: the folder of articles)"
    )


def read_manifest(root: Path) -> dict:
    """The manifest of the index at ``root``, checked.

    Raises IndexNotFound (nothing there), IndexMismatch (format 1: needs the
    upgrade ``qa index`` does; a newer format), IndexCorrupt (unreadable).
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir() or not path.is_file():
        raise not_found(root)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{path} is unreadable ({exc}); rebuild with `qa index PATH --index {root}`") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorrupt(f"{path} is not a qa index manifest")
    version = manifest.get("format_version")
    if version == 1:
        raise IndexMismatch(
            f"the index at {root} has the old format 1; run `qa index PATH --index {root}` once "
            "to upgrade it in place (nothing is embedded again)"
        )
    if version != FORMAT_VERSION:
        raise IndexMismatch(
            f"the index at {root} has format version {version!r}; this program reads version "
            f"{FORMAT_VERSION}: use the qa version that wrote it, or rebuild it with "
            f"`qa index PATH --index {root}` in another folder"
        )
    try:
        for key in ("index_id", "version", "embedding", "ann"):
            manifest[key]  # noqa: B018 (presence check)
        for key in ("model", "backend", "dimension"):
            manifest["embedding"][key]  # noqa: B018
    except (KeyError, TypeError) as exc:
        raise IndexCorrupt(f"{path} lacks {exc}; rebuild with `qa index PATH --index {root}`") from exc
    return manifest


def raw_format_version(root: Path) -> int | None:
    """The format version the manifest claims, without checks (None: no manifest)."""
    try:
        return json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8")).get("format_version")
    except (OSError, ValueError, AttributeError):
        return None


def write_manifest(root: Path, manifest: dict) -> None:
    write_json_atomically(Path(root) / MANIFEST, manifest)


def check_embedder(embedding: dict, embedder: Embedder, root: Path) -> None:
    """Refuse to search or update an index with a model other than the one it was built with."""
    if embedding["model"] != embedder.model or int(embedding["dimension"]) != embedder.dimension:
        raise IndexMismatch(
            f"the index at {root} was built with the model {embedding['model']!r} "
            f"({embedding['dimension']} dimensions, {embedding['backend']}), not with {embedder.model!r} "
            f"({embedder.dimension} dimensions): search it with that model, or build a new index "
            "for this model in another directory (--index DIR)"
        )
