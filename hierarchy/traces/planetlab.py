"""PlanetLab-style CPU series -> usage series.

A file holds one integer CPU utilisation (percent) per line, samples ``step_s`` (300 s) apart,
one file per VM (the file name is the VM id); the source is such a file or a folder of them.
Mapping: ``t_s = t0_s + i * step_s``; ``cpu_cores = percent / 100 * cores_per_vm``; memory is
not measured (empty). Blank lines are ignored; a line that is not a number in [0, 100] is
malformed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.sources_common import data_files, stem
from hierarchy.traces.textio import open_text, parse_float
from hierarchy.traces.usage import UsageRow

STEP_S = 300.0
"""PlanetLab (CoMon) sampling interval, seconds."""


def iter_planetlab(src: str | Path, bad: BadRows, stats: ConvertStats, *,
                   step_s: float = STEP_S, t0_s: float = 0.0, cores_per_vm: float = 1.0,
                   id_prefix: str = "") -> Iterator[UsageRow]:
    """Stream usage rows from PlanetLab-style file(s) (see the module docstring)."""
    if step_s <= 0 or cores_per_vm <= 0:
        raise ValueError("step_s and cores_per_vm must be > 0")
    for path in data_files(src, ("*",)):
        if path.name.startswith("."):
            continue
        cid = id_prefix + stem(path) if "." in path.name else id_prefix + path.name
        i = 0
        counted = False
        with open_text(path) as fh:
            for line_no, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                stats.rows_read += 1
                try:
                    pct = parse_float(line, "CPU percent", minimum=0.0)
                    if pct > 100.0:
                        raise ValueError(f"CPU percent must be <= 100, got {line.strip()}")
                except ValueError as exc:
                    bad(path, line_no, str(exc))
                    i += 1  # the sample slot still passed: keep the clock aligned
                    continue
                if not counted:
                    counted = True
                    stats.entities += 1
                yield UsageRow(cid, t0_s + i * step_s, pct / 100.0 * cores_per_vm)
                i += 1
