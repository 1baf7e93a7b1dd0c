"""hierarchy's arrivals CSV: one row per container (or VM, or pod) that arrives.

Header: ``t_s,cpu_cores,mem_gib`` required, then optionally ``lifetime_s``, ``id``, ``group``
(in that order, any subset)::

    t_s,cpu_cores,mem_gib,lifetime_s,id,group
    2100000,2,3.5,1050,azure-0,2100000-0
    2100000,2,3.5,,azure-1,2100000-0

``t_s``: arrival time in seconds on the trace's clock; ``cpu_cores``/``mem_gib``: the size
requested; ``lifetime_s``: how long it ran (empty = not known, e.g. still running when the
trace ends); ``id``: an identifier; ``group``: arrivals submitted together (one tenant's batch).
Rows may come in any order; ``read_arrivals`` sorts them by time (stable).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hierarchy.traces.errors import BadRows, ConvertStats, TraceFormatError
from hierarchy.traces.textio import csv_rows, fmt_num, open_output, parse_float

REQUIRED = ("t_s", "cpu_cores", "mem_gib")
OPTIONAL = ("lifetime_s", "id", "group")
COLUMNS = REQUIRED + OPTIONAL


class ArrivalRow(NamedTuple):
    """One arrival (NaN lifetime = unknown; ``""`` id/group = none)."""

    t_s: float
    cpu_cores: float
    mem_gib: float
    lifetime_s: float = math.nan
    id: str = ""
    group: str = ""


@dataclass(frozen=True)
class Arrivals:
    """Arrivals as arrays sorted by ``t_s`` (stable): float64 arrays plus id/group lists."""

    t_s: np.ndarray
    cpu_cores: np.ndarray
    mem_gib: np.ndarray
    lifetime_s: np.ndarray
    ids: tuple[str, ...]
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.t_s.size)


def iter_arrivals(path: str | Path, *, skip_bad: bool = False,
                  stats: ConvertStats | None = None) -> Iterator[ArrivalRow]:
    """Stream the validated rows of an arrivals CSV (gzip if ``*.gz``) in file order."""
    st = stats if stats is not None else ConvertStats(fmt="arrivals")
    bad = BadRows(skip_bad, st)
    rows = csv_rows(path)
    first = next(rows, None)
    if first is None:
        raise TraceFormatError(path, 0, f"empty file: expected a header {','.join(REQUIRED)}")
    names = tuple(f.strip() for f in first[1])
    if names[:3] != REQUIRED or any(n not in OPTIONAL for n in names[3:]) \
            or len(set(names)) != len(names):
        raise TraceFormatError(path, 1, f"header must be {','.join(REQUIRED)} followed by any "
                                        f"of {','.join(OPTIONAL)}; got {','.join(names)!r}")
    pos = [COLUMNS.index(n) for n in names]
    for line, fields in rows:
        st.rows_read += 1
        if len(fields) != len(pos):
            bad(path, line, f"expected {len(pos)} fields, got {len(fields)}")
            continue
        vals: list[object] = [math.nan] * 4 + ["", ""]
        try:
            for j, text in zip(pos, fields, strict=True):
                if j >= 4:
                    vals[j] = text.strip()
                else:
                    vals[j] = parse_float(text, COLUMNS[j], minimum=None if j == 0 else 0.0,
                                          empty_ok=j == 3)
        except ValueError as exc:
            bad(path, line, str(exc))
            continue
        st.written += 1
        st.entities += 1
        yield ArrivalRow(*vals)  # type: ignore[arg-type]


def read_arrivals(path: str | Path, *, skip_bad: bool = False,
                  stats: ConvertStats | None = None) -> Arrivals:
    """Load an arrivals CSV into arrays sorted by arrival time."""
    rows = list(iter_arrivals(path, skip_bad=skip_bad, stats=stats))
    num = np.array([r[:4] for r in rows], dtype=np.float64).reshape(len(rows), 4)
    order = np.argsort(num[:, 0], kind="stable")
    num = num[order]
    return Arrivals(t_s=num[:, 0].copy(), cpu_cores=num[:, 1].copy(), mem_gib=num[:, 2].copy(),
                    lifetime_s=num[:, 3].copy(), ids=tuple(rows[i].id for i in order),
                    groups=tuple(rows[i].group for i in order))


class ArrivalsWriter:
    """Write arrivals to a CSV (gzip if ``*.gz``), atomically, with the given optional columns."""

    def __init__(self, path: str | Path, optional: Iterable[str] = OPTIONAL) -> None:
        opt = tuple(optional)
        if any(c not in OPTIONAL for c in opt):
            raise ValueError(f"unknown optional columns {opt}; known: {OPTIONAL}")
        self.path = Path(path)
        self.columns = REQUIRED + tuple(c for c in OPTIONAL if c in opt)
        self._idx = [COLUMNS.index(c) for c in self.columns]
        self.rows = 0

    def __enter__(self) -> ArrivalsWriter:
        self._cm = open_output(self.path)
        self._w = csv.writer(self._cm.__enter__(), lineterminator="\n")
        self._w.writerow(self.columns)
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)  # type: ignore[arg-type]

    def write(self, row: ArrivalRow) -> None:
        """Append one arrival."""
        self._w.writerow([row[j] if j >= 4 else fmt_num(row[j], 3 if j in (0, 3) else 6)
                          for j in self._idx])
        self.rows += 1


def write_arrivals(path: str | Path, rows: Iterable[ArrivalRow],
                   optional: Iterable[str] = OPTIONAL) -> int:
    """Write arrivals (consumed lazily) to ``path``; return how many were written."""
    with ArrivalsWriter(path, optional) as w:
        for r in rows:
            w.write(r)
    return w.rows
