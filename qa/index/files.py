"""File-system primitives of the index: fsync of new segments, the update lock,
and (from :mod:`qa.fileio`) the project's one atomic file replacement."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa.errors import IndexBusy
from qa.fileio import fsync_dir, fsync_file

LOCK_FILE = ".update.lock"


def fsync_tree(path: Path) -> None:
    """fsync every file and folder under ``path`` (a new segment, before it is committed)."""
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            fsync_file(Path(dirpath) / name)
        fsync_dir(Path(dirpath))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def update_lock(root: Path) -> Iterator[None]:
    """One writer at a time per index. The lock dies with its process, even on kill -9."""
    with open(Path(root) / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusy(
                f"another update of the index at {root} is running; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
