"""Errors and counters shared by every trace reader, writer and converter.

A malformed row is either fatal (``TraceFormatError`` naming the file, the 1-based line and the
reason) or, when the caller passes ``skip_bad=True``, skipped and counted in a ``ConvertStats``.
Rows that are well formed but carry a documented "no value" sentinel (Alibaba's ``-1``/``101``,
an unresolvable callee, ...) are not errors: they are *dropped* and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAX_EXAMPLES = 5
"""How many skipped-row messages a ``ConvertStats`` keeps verbatim (the rest are only counted)."""


class TraceFormatError(ValueError):
    """A trace file is malformed at a given line.

    Attributes:
        path: the file (as given by the caller).
        line: 1-based line number in that file (0 when the problem is not tied to a line,
            e.g. a missing file or an empty file).
        reason: what was wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = int(line)
        self.reason = reason
        where = f"{self.path}:{self.line}" if self.line > 0 else self.path
        super().__init__(f"{where}: {reason}")

    @property
    def file(self) -> str:
        """The file (an alias of ``path``)."""
        return self.path


@dataclass
class ConvertStats:
    """What a read or a conversion did.

    Attributes:
        fmt: the source format name (``"usage"``, ``"bitbrains"``, ...).
        rows_read: data rows (or JSON lines) read from the source(s), header lines excluded.
        written: records produced (usage rows, call graphs or arrivals).
        skipped_bad: malformed rows skipped because ``skip_bad=True``.
        dropped: well-formed rows (or edges) left out on purpose, by reason (documented per
            converter in ``docs/traces.md``).
        entities: distinct containers / applications / arrivals written.
        examples: the first ``MAX_EXAMPLES`` skipped-row messages (``file:line: reason``).
        notes: remarks about the conversion as a whole (e.g. a unit assumption that was used).
    """

    fmt: str = ""
    rows_read: int = 0
    written: int = 0
    skipped_bad: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    entities: int = 0
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few human-readable lines (what ``hierarchy workload convert`` prints)."""
        lines = [
            f"format: {self.fmt}",
            f"rows read: {self.rows_read}",
            f"records written: {self.written} ({self.entities} distinct)",
            f"malformed rows skipped: {self.skipped_bad}",
        ]
        for reason, n in sorted(self.dropped.items()):
            lines.append(f"dropped ({reason}): {n}")
        lines += [f"  e.g. {m}" for m in self.examples]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class BadRows:
    """Raise or count malformed rows, as the caller asked."""

    def __init__(self, skip_bad: bool, stats: ConvertStats) -> None:
        self.skip_bad = skip_bad
        self.stats = stats

    def __call__(self, path: str | Path, line: int, reason: str) -> None:
        """Report a malformed row: raise ``TraceFormatError`` unless skipping, else count it."""
        err = TraceFormatError(path, line, reason)
        if not self.skip_bad:
            raise err
        self.stats.skipped_bad += 1
        if len(self.stats.examples) < MAX_EXAMPLES:
            self.stats.examples.append(str(err))
