"""hierarchy's usage-series CSV: one row per (container, sample).

Header (required columns first, optional ones in any order after them)::

    container_id,t_s,cpu_cores,mem_gib[,net_rx_mbps,net_tx_mbps,disk_mbps,
                                       cpu_request_cores,mem_request_gib]

Units: ``t_s`` seconds on the trace's own clock, ``cpu_cores`` cores in use (1.0 = one core
busy), ``mem_gib`` GiB in use, ``*_mbps`` megabits per second (10^6 bit/s), requests in cores
and GiB. An empty cell means "not measured" (NaN in arrays); ``container_id``, ``t_s`` and
``cpu_cores`` are never empty. Rows of one container are in strictly increasing ``t_s``;
rows of different containers may interleave. See ``docs/traces.md``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hierarchy.traces.errors import BadRows, ConvertStats, TraceFormatError
from hierarchy.traces.textio import csv_rows, fmt_num, open_output, parse_float

REQUIRED = ("container_id", "t_s", "cpu_cores", "mem_gib")
OPTIONAL = ("net_rx_mbps", "net_tx_mbps", "disk_mbps", "cpu_request_cores", "mem_request_gib")
COLUMNS = REQUIRED + OPTIONAL
"""Every column the format knows, in the order ``UsageRow`` holds them."""


class UsageRow(NamedTuple):
    """One sample of one container (NaN = not measured)."""

    container_id: str
    t_s: float
    cpu_cores: float
    mem_gib: float = math.nan
    net_rx_mbps: float = math.nan
    net_tx_mbps: float = math.nan
    disk_mbps: float = math.nan
    cpu_request_cores: float = math.nan
    mem_request_gib: float = math.nan


@dataclass(frozen=True)
class UsageSeries:
    """One container's samples as float64 arrays of equal length (NaN = not measured)."""

    container_id: str
    t_s: np.ndarray
    cpu_cores: np.ndarray
    mem_gib: np.ndarray
    net_rx_mbps: np.ndarray
    net_tx_mbps: np.ndarray
    disk_mbps: np.ndarray
    cpu_request_cores: np.ndarray
    mem_request_gib: np.ndarray

    def __len__(self) -> int:
        return int(self.t_s.size)

    @classmethod
    def from_rows(cls, container_id: str, rows: Sequence[UsageRow]) -> UsageSeries:
        """Stack rows of one container (already in time order) into arrays."""
        arr = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), 8)
        return cls(container_id, *(arr[:, j].copy() for j in range(8)))


class TimeOrder:
    """Checks that each container's samples come in strictly increasing time.

    Remembers one float per container: memory grows with the number of containers, never with
    the number of rows.
    """

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def problem(self, container_id: str, t_s: float) -> str | None:
        """Record ``t_s`` for the container and return a reason string if it goes backwards."""
        prev = self.last.get(container_id)
        if prev is not None and t_s <= prev:
            return (f"container {container_id!r}: t_s {fmt_num(t_s, 3)} is not after its "
                    f"previous sample at {fmt_num(prev, 3)} (rows of a container must be in "
                    "increasing time; sort the file by container and time first)")
        self.last[container_id] = t_s
        return None


def _header(path: str | Path, fields: list[str]) -> list[int]:
    """Map the file's header to positions in ``COLUMNS``; raise on a bad header."""
    names = [f.strip() for f in fields]
    if tuple(names[:4]) != REQUIRED:
        raise TraceFormatError(path, 1, f"header must start with {','.join(REQUIRED)}; got "
                                        f"{','.join(names[:4])!r}")
    pos = []
    for name in names:
        if name not in COLUMNS:
            raise TraceFormatError(path, 1, f"unknown column {name!r}; known: "
                                            f"{', '.join(COLUMNS)}")
        if COLUMNS.index(name) in pos:
            raise TraceFormatError(path, 1, f"column {name!r} appears twice")
        pos.append(COLUMNS.index(name))
    return pos


def iter_usage(path: str | Path, *, skip_bad: bool = False,
               stats: ConvertStats | None = None) -> Iterator[UsageRow]:
    """Stream the rows of a usage-series CSV (gzip if ``*.gz``), validated, in file order.

    Raises ``TraceFormatError`` (file, line, reason) on a malformed row, or skips and counts it
    in ``stats`` when ``skip_bad``. Memory: one float per container (the time-order check).
    """
    st = stats if stats is not None else ConvertStats(fmt="usage")
    bad = BadRows(skip_bad, st)
    order = TimeOrder()
    rows = csv_rows(path)
    first = next(rows, None)
    if first is None:
        raise TraceFormatError(path, 0, "empty file: expected a header "
                                        f"{','.join(REQUIRED)}")
    pos = _header(path, first[1])
    seen: set[str] = set()
    for line, fields in rows:
        st.rows_read += 1
        if len(fields) != len(pos):
            bad(path, line, f"expected {len(pos)} fields, got {len(fields)}")
            continue
        vals: list[object] = [""] + [math.nan] * (len(COLUMNS) - 1)
        try:
            for j, text in zip(pos, fields, strict=True):
                if j == 0:
                    vals[0] = text.strip()
                    if not vals[0]:
                        raise ValueError("container_id is empty")
                else:
                    vals[j] = parse_float(text, COLUMNS[j], minimum=None if j == 1 else 0.0,
                                          empty_ok=j > 2)
        except ValueError as exc:
            bad(path, line, str(exc))
            continue
        row = UsageRow(*vals)  # type: ignore[arg-type]
        why = order.problem(row.container_id, row.t_s)
        if why:
            bad(path, line, why)
            continue
        st.written += 1
        if row.container_id not in seen:
            seen.add(row.container_id)
            st.entities += 1
        yield row


def read_usage(path: str | Path, *, skip_bad: bool = False,
               stats: ConvertStats | None = None) -> dict[str, UsageSeries]:
    """Load a whole usage-series CSV into ``{container_id: UsageSeries}`` (first-seen order).

    For files too large for memory use ``iter_usage`` (rows) or ``iter_usage_series`` (one
    container at a time, for files grouped by container).
    """
    per: dict[str, list[UsageRow]] = {}
    for row in iter_usage(path, skip_bad=skip_bad, stats=stats):
        per.setdefault(row.container_id, []).append(row)
    return {cid: UsageSeries.from_rows(cid, rows) for cid, rows in per.items()}


def iter_usage_series(path: str | Path, *, skip_bad: bool = False,
                      stats: ConvertStats | None = None) -> Iterator[UsageSeries]:
    """Yield one ``UsageSeries`` at a time from a file whose rows are grouped by container.

    Memory is bounded by the longest series. Raises ``TraceFormatError`` if a container's rows
    resume after another container's (the file is not grouped: use ``read_usage``).
    """
    done: set[str] = set()
    cur: list[UsageRow] = []
    for row in iter_usage(path, skip_bad=skip_bad, stats=stats):
        if cur and row.container_id != cur[0].container_id:
            done.add(cur[0].container_id)
            yield UsageSeries.from_rows(cur[0].container_id, cur)
            cur = []
        if not cur and row.container_id in done:
            raise TraceFormatError(path, 0, f"container {row.container_id!r} appears again "
                                            "after other containers: the file is not grouped "
                                            "by container (use read_usage)")
        cur.append(row)
    if cur:
        yield UsageSeries.from_rows(cur[0].container_id, cur)


class UsageWriter:
    """Write usage rows to a CSV (gzip if ``*.gz``), atomically, with the given columns.

    Use as a context manager: ``with UsageWriter(path, optional=("net_rx_mbps",)) as w:
    w.write(row)``. Columns not listed in ``optional`` are not written.
    """

    def __init__(self, path: str | Path, optional: Iterable[str] = ()) -> None:
        opt = tuple(optional)
        unknown = [c for c in opt if c not in OPTIONAL]
        if unknown:
            raise ValueError(f"unknown optional columns {unknown}; known: {OPTIONAL}")
        self.path = Path(path)
        self.columns = REQUIRED + tuple(c for c in OPTIONAL if c in opt)
        self._idx = [COLUMNS.index(c) for c in self.columns]
        self._order = TimeOrder()
        self.rows = 0

    def __enter__(self) -> UsageWriter:
        self._cm = open_output(self.path)
        fh = self._cm.__enter__()
        self._w = csv.writer(fh, lineterminator="\n")
        self._w.writerow(self.columns)
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)  # type: ignore[arg-type]

    def write(self, row: UsageRow) -> None:
        """Append one row; raises ``ValueError`` if it breaks the container's time order."""
        why = self._order.problem(row.container_id, row.t_s)
        if why:
            raise ValueError(why)
        self._w.writerow([row[0] if j == 0 else fmt_num(row[j], 3 if j == 1 else 6)
                          for j in self._idx])
        self.rows += 1


def write_usage(path: str | Path, rows: Iterable[UsageRow],
                optional: Iterable[str] = OPTIONAL) -> int:
    """Write rows (any iterable, consumed lazily) to ``path``; return how many were written."""
    with UsageWriter(path, optional) as w:
        for r in rows:
            w.write(r)
    return w.rows


def series_rows(series: UsageSeries) -> Iterator[UsageRow]:
    """The rows of one ``UsageSeries`` (for writing arrays back to CSV)."""
    cols = [series.t_s, series.cpu_cores, series.mem_gib, series.net_rx_mbps,
            series.net_tx_mbps, series.disk_mbps, series.cpu_request_cores,
            series.mem_request_gib]
    for i in range(len(series)):
        yield UsageRow(series.container_id, *(float(c[i]) for c in cols))
