"""Small helpers shared by the source converters (file discovery, header lookup)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hierarchy.traces.errors import TraceFormatError


def natural_key(p: Path) -> tuple[object, ...]:
    """Sort key that orders ``2.csv`` before ``10.csv``."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name))


def data_files(src: str | Path, patterns: Sequence[str]) -> list[Path]:
    """``src`` itself if it is a file, else the files of directory ``src`` matching any of
    ``patterns`` (not recursive), in natural order. Raises if there are none."""
    p = Path(src)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise TraceFormatError(p, 0, "no such file or directory")
    files = sorted({f for pat in patterns for f in p.glob(pat) if f.is_file()}, key=natural_key)
    if not files:
        raise TraceFormatError(p, 0, f"no files matching {', '.join(patterns)} in this folder")
    return files


def stem(p: Path) -> str:
    """File name without ``.gz`` and one further suffix (``12.csv.gz`` -> ``12``)."""
    name = p.name[:-3] if p.name.endswith(".gz") else p.name
    return name.rsplit(".", 1)[0] if "." in name else name


def column_index(path: str | Path, header: Sequence[str], names: Sequence[str]) -> list[int]:
    """Positions of ``names`` in ``header`` (stripped, case-sensitive); raise naming the
    missing ones."""
    h = [c.strip() for c in header]
    missing = [n for n in names if n not in h]
    if missing:
        raise TraceFormatError(path, 1, f"header lacks column(s) {', '.join(missing)}; "
                                        f"found {', '.join(h)}")
    return [h.index(n) for n in names]
