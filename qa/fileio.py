"""Durable, atomic file writes: the one way the project replaces a file.

Write a temporary file in the same folder, fsync it, ``os.replace`` it onto
the target, fsync the folder: a crash leaves the old file or the new one,
never a mix (and perhaps a stray ``.*.tmp`` file, which is harmless). Used by
the index (:mod:`qa.index.files`), the ONNX export and the model build.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temporary file beside ``target``, then make it
    ``target`` in one step. A crash leaves either the old file or the new one
    (and perhaps a stray ``.*.tmp`` file, which is harmless)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        fsync_file(Path(tmp))
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomically(target: Path, data: dict) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    replace_atomically(target, write)
