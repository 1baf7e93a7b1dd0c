"""Text files in and out: gzip by file name, CSV rows with line numbers, atomic writes."""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from hierarchy.traces.errors import TraceFormatError


def open_text(path: str | Path) -> IO[str]:
    """Open a text file for reading, gunzipping ``*.gz`` on the fly (streamed, never whole)."""
    p = Path(path)
    if not p.exists():
        raise TraceFormatError(p, 0, "no such file")
    if p.is_dir():
        raise TraceFormatError(p, 0, "is a directory, expected a file")
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8", newline="")
    return open(p, encoding="utf-8", newline="")


@contextmanager
def open_output(path: str | Path) -> Iterator[IO[str]]:
    """Write a text file atomically: to a sibling temporary file, renamed on success.

    ``*.gz`` names are gzip-compressed. On an exception the temporary file is removed and
    ``path`` is left as it was, so a failed conversion never leaves half a file behind.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    fh: IO[str]
    base: IO[bytes] | None = None
    if p.suffix == ".gz":
        # mtime=0 and no file name in the header: the same rows give the same bytes.
        base = open(tmp, "wb")
        raw = gzip.GzipFile(filename="", mode="wb", fileobj=base, mtime=0)
        fh = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    else:
        fh = open(tmp, "w", encoding="utf-8", newline="")
    try:
        try:
            with fh:
                yield fh
        finally:
            if base is not None:
                base.close()
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def csv_rows(path: str | Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for every non-blank CSV row of ``path`` (1-based line numbers)."""
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            for fields in reader:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                yield reader.line_num, fields
        except csv.Error as exc:
            raise TraceFormatError(path, reader.line_num, f"unreadable CSV: {exc}") from exc
        except (UnicodeDecodeError, EOFError, OSError) as exc:
            raise TraceFormatError(path, reader.line_num, f"unreadable file: {exc}") from exc


def parse_float(text: str, what: str, *, minimum: float | None = None,
                empty_ok: bool = False) -> float:
    """Parse a finite float; ``""`` gives NaN when ``empty_ok``. Raises ``ValueError`` (message
    names ``what``) on anything else, including values below ``minimum``."""
    s = text.strip()
    if not s:
        if empty_ok:
            return math.nan
        raise ValueError(f"{what} is empty")
    try:
        x = float(s)
    except ValueError:
        raise ValueError(f"{what} is not a number: {s!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} is not finite: {s!r}")
    if minimum is not None and x < minimum:
        raise ValueError(f"{what} must be >= {minimum:g}, got {s}")
    return x


def fmt_num(x: float, decimals: int = 6) -> str:
    """Format a float compactly for CSV: ``""`` for NaN, integers without a point, else at most
    ``decimals`` decimals with trailing zeros stripped."""
    if math.isnan(x):
        return ""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    s = f"{x:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s
