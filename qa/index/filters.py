"""Search filters: one date rule, and masks computed from segment columns.

:func:`date_bound` is the one parser of filter dates (the CLI and the HTTP
server use it too): a year (``2020``), a month (``2020-03``), a day
(``2020-03-01``) or an ISO 8601 date-time with or without an offset. As an end
bound a year, month or day means its whole span, to its last second.
Date-times without an offset are UTC. Dates at the edges of the calendar
(``0001-01-01T00:00:00+05:00``) are fine: bounds are computed as seconds
since 1970, never as datetimes that could overflow.

A filter is *planned* once per query (:func:`plan`: dates to seconds, source
and tag names to ids) and turned into a boolean mask per segment from its
columns (``published``, ``source``, tags), memory-mapped arrays compared at
memory speed: ~1 ms per million chunks, no table scan, no lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from qa.errors import InvalidQuery
from qa.index.segment import NO_DATE, SegmentData
from qa.records import SearchFilters

_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_EPOCH = datetime(1970, 1, 1)
_DAY_S = 86_400


def _seconds(naive: datetime) -> int:
    return int((naive - _EPOCH) // timedelta(seconds=1))


def _invalid(value: object) -> InvalidQuery:
    return InvalidQuery(
        f"invalid date {str(value)[:60]!r}: use YYYY-MM-DD (or YYYY, YYYY-MM, or an ISO 8601 date-time)"
    )


def date_bound(value: object, *, end: bool) -> int:
    """A filter bound in seconds since 1970-01-01 UTC. Raises InvalidQuery."""
    if not isinstance(value, str):
        raise _invalid(value)
    text = value.strip()
    try:
        if m := _YEAR.match(text):
            start, stop = datetime(int(m[1]), 1, 1), datetime(int(m[1]), 12, 31)
            return _seconds(stop) + _DAY_S - 1 if end else _seconds(start)
        if m := _MONTH.match(text):
            year, month = int(m[1]), int(m[2])
            first = datetime(year, month, 1)
            days = ((first.replace(day=28) + timedelta(days=4)).replace(day=1) - first).days
            return _seconds(first) + days * _DAY_S - 1 if end else _seconds(first)
        if m := _DAY.match(text):
            day = _seconds(datetime(int(m[1]), int(m[2]), int(m[3])))
            return day + _DAY_S - 1 if end else day
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise _invalid(value) from None
    seconds = _seconds(moment.replace(tzinfo=None, microsecond=0))
    offset = moment.utcoffset()
    if offset is not None:
        seconds -= int(offset // timedelta(seconds=1))
    return seconds


def published_seconds(published: str | None) -> int:
    """A stored publication time (ISO UTC) in seconds, or NO_DATE."""
    if not published:
        return int(NO_DATE)
    try:
        return date_bound(published, end=False)
    except InvalidQuery:
        return int(NO_DATE)


@dataclass(frozen=True)
class FilterPlan:
    """A filter ready to apply: None fields do not restrict."""

    date_from: int | None = None
    date_to: int | None = None
    source_ids: np.ndarray | None = None  # int32; empty: nothing matches
    tag_ids: np.ndarray | None = None

    @property
    def restricts(self) -> bool:
        return any(x is not None for x in (self.date_from, self.date_to, self.source_ids, self.tag_ids))

    def mask(self, data: SegmentData, live: np.ndarray | None) -> np.ndarray | None:
        """Allowed positions of a segment (None: all of them)."""
        mask = None if live is None else live.copy()

        def both(m: np.ndarray) -> None:
            nonlocal mask
            mask = m if mask is None else (mask & m)

        published = np.asarray(data.published)
        if self.date_from is not None:
            both(published >= self.date_from)
        if self.date_to is not None:
            both((published <= self.date_to) & (published != NO_DATE))
        if self.source_ids is not None:
            both(np.isin(np.asarray(data.source), self.source_ids))
        if self.tag_ids is not None:
            indptr = np.asarray(data.tag_indptr)
            hit = np.isin(np.asarray(data.tag_ids), self.tag_ids)
            rows = np.repeat(np.arange(len(data)), np.diff(indptr))[hit]
            m = np.zeros(len(data), dtype=bool)
            m[rows] = True
            both(m)
        return mask


def check_filters(filters: SearchFilters) -> tuple[int | None, int | None]:
    """The date bounds in seconds; InvalidQuery for a bad date or an empty range."""
    lo = date_bound(filters.date_from, end=False) if filters.date_from else None
    hi = date_bound(filters.date_to, end=True) if filters.date_to else None
    if lo is not None and hi is not None and lo > hi:
        raise InvalidQuery(f"the date range is empty: {filters.date_from} is after {filters.date_to}")
    return lo, hi


def plan(filters: SearchFilters | None, ids_for) -> FilterPlan:
    """``ids_for(table, names)``: the catalog's name -> id lookup (unknown names are absent)."""
    if filters is None:
        return FilterPlan()
    lo, hi = check_filters(filters)
    source_ids = tag_ids = None
    sources = [s for s in filters.sources if isinstance(s, str)]
    if len(sources) != len(filters.sources):
        raise InvalidQuery("sources must be text")
    if sources:
        source_ids = np.array(sorted(ids_for("sources", sources).values()), dtype=np.int32)
    tags = [t for t in filters.tags if isinstance(t, str)]
    if len(tags) != len(filters.tags):
        raise InvalidQuery("tags must be text")
    if tags:
        tag_ids = np.array(sorted(ids_for("tags", tags).values()), dtype=np.int32)
    return FilterPlan(date_from=lo, date_to=hi, source_ids=source_ids, tag_ids=tag_ids)
