"""Merging segments: few segments to search, deleted chunks dropped for good.

The policy is Lucene's log merge policy, counted in rows: a segment's level
is ``floor(log10(live rows / FLOOR_ROWS))``; when a level holds
``MERGE_FACTOR`` segments they are merged into one (one level up). So each
chunk is rewritten about once per level (a handful of times for millions of
chunks), the cost of merging is amortised over the updates that made the
segments, and an index of N chunks has at most ~``MERGE_FACTOR`` segments per
level. A segment with more than ``EXPUNGE_SHARE`` of its rows deleted is
rewritten on its own, which drops them.

A merge writes the new segment beside the old ones and commits the swap in
one catalog transaction (chunks point at the new segment, the old segments'
tombstones go with them), then deletes the old folders. Killed before the
commit, it leaves the old segments current and a folder the next run
deletes. An approximate index is grown, not rebuilt, when the largest input
segment's graph or lists already hold the merged segment's first rows (no
deletions in it, and all its rows before the others').
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

import qa.index.files as fs
from qa.index.ann import load_ann, segment_ann_kind
from qa.index.catalog import SegmentRecord
from qa.index.manifest import SEGMENTS_DIR
from qa.index.segment import copy_vectors, merge_arrays, open_vectors

log = logging.getLogger(__name__)

MERGE_FACTOR = 10
FLOOR_ROWS = 4096
EXPUNGE_SHARE = 0.3
MAX_MERGED_ROWS = 2_000_000
"""No merge makes a segment larger than this: a merge's memory (its postings are sorted in
memory) stays bounded, and a 10M-chunk archive is a handful of big segments."""


def _level(live_rows: int) -> int:
    return int(math.floor(math.log10(max(live_rows, FLOOR_ROWS) / FLOOR_ROWS)))


def plan_merges(records: list[SegmentRecord], deleted: dict[int, int]) -> list[list[SegmentRecord]]:
    """Groups of segments to merge now (each group becomes one segment)."""
    groups: list[list[SegmentRecord]] = []
    by_level: dict[int, list[SegmentRecord]] = {}
    for r in records:
        live = r.size - deleted.get(r.id, 0)
        if r.size and deleted.get(r.id, 0) / r.size > EXPUNGE_SHARE:
            groups.append([r])
            continue
        by_level.setdefault(_level(live), []).append(r)
    for level in sorted(by_level):
        members = sorted(by_level[level], key=lambda r: r.id)
        while len(members) >= MERGE_FACTOR:
            group, members = members[:MERGE_FACTOR], members[MERGE_FACTOR:]
            if sum(r.size - deleted.get(r.id, 0) for r in group) <= MAX_MERGED_ROWS:
                groups.append(group)
    return groups


def merge_segments(writer, *, force: bool = False) -> int:
    """Apply the merge policy (``force``: merge everything into one segment); returns merges done."""
    merges = 0
    while True:
        records = writer.catalog.segments()
        deleted = {seg: n for seg, n in writer.catalog.query("SELECT segment, count(*) FROM tombstones GROUP BY segment")}
        if force:
            groups = [records] if len(records) > 1 or (records and (deleted or _wrong_ann(writer, records[0]))) else []
            force = False
        else:
            groups = plan_merges(records, deleted)
        if not groups:
            return merges
        for group in groups:
            merge_group(writer, group)
            merges += 1


def _wrong_ann(writer, record: SegmentRecord) -> bool:
    return record.ann != segment_ann_kind(writer.ann, record.size)


def merge_group(writer, group: list[SegmentRecord]) -> None:
    """Merge ``group`` into one new segment and commit the swap (see the module docstring)."""
    started = time.perf_counter()
    catalog = writer.catalog
    tombstones = catalog.tombstones()
    parts = []
    for record in group:
        data = writer.segment_data(record.id)
        dead = tombstones.get(record.id, [])
        keep = np.ones(len(data), dtype=bool)
        if dead:
            keep[np.searchsorted(np.asarray(data.rows), np.asarray(dead, dtype=np.int64))] = False
        parts.append((data, np.flatnonzero(keep)))
    merged, destinations = merge_arrays(parts)
    n = len(merged.rows)
    meta = catalog.meta()
    new_id = int(meta["next_segment"])
    version = int(meta["version"]) + 1
    old_ids = [r.id for r in group]
    folder = None
    if n:
        kind = segment_ann_kind(writer.ann, n)
        base = None
        biggest = max(range(len(group)), key=lambda i: group[i].size)
        big_data, big_keep = parts[biggest]
        if kind != "flat" and group[biggest].ann == kind and len(big_keep) == len(big_data):
            # its rows first in the merged order: the merged segment can grow its graph / lists
            if np.array_equal(destinations[biggest], np.arange(len(big_keep))):
                base = load_ann(writer.root / SEGMENTS_DIR / group[biggest].name)
        tmp = writer.segment_folder(new_id, temporary=True)
        fs.remove_tree(tmp)
        try:
            vectors = open_vectors(tmp, n, writer.embedder.dimension)
            copy_vectors(vectors, parts, destinations)
            vectors.flush()
            merged.vectors = vectors
        except BaseException:
            fs.remove_tree(tmp)
            raise
        folder = writer._write_new_segment(new_id, merged, ann_base=base, prefilled=True)
        del vectors
    try:
        with catalog.transaction():
            catalog.replace_segments(old_ids, new_id)
            if folder is not None:
                catalog.add_segment(new_id, folder.name, n, segment_ann_kind(writer.ann, n), version)
            catalog.set_meta({"version": version, "next_segment": new_id + 1})
    except BaseException:
        if folder is not None:
            fs.remove_tree(folder)
        raise
    for record in group:
        fs.remove_tree(writer.root / SEGMENTS_DIR / record.name)
        writer._segments.pop(record.id, None)
    writer.meta = catalog.meta()
    log.info("merged %d segments (%d live chunks) in %.1f s", len(group), n, time.perf_counter() - started)
