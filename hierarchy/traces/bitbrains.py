"""Bitbrains GWA-T-12 -> usage series.

Accepts the joined CSV of ``data/public/bitbrains`` (header ``vm_id,timestamp_s,...``), an
original per-VM file (``Timestamp [ms];<TAB>CPU cores;<TAB>...``, one VM per file, named by VM
id), or a folder of such files. Mapping (see ``docs/traces.md``): CPU in use is
``usage MHz / (capacity MHz / cores)`` cores; memory KB are KiB; throughputs KB/s (KiB/s) become
Mbit/s; disk read and write are summed; the provisioned cores and memory become the requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.sources_common import column_index, data_files, stem
from hierarchy.traces.textio import csv_rows, open_text, parse_float
from hierarchy.traces.usage import TimeOrder, UsageRow

KIB_PER_GIB = 1024.0**2
KIBPS_TO_MBPS = 1024.0 * 8.0 / 1e6
"""KiB/s -> Mbit/s (10^6 bit/s)."""

MS_THRESHOLD = 1e11
"""Timestamps above this are milliseconds (1e11 s is year 5138); the original files say
``[ms]`` in their header but hold Unix seconds."""

JOINED = ("vm_id", "timestamp_s", "cpu_cores", "cpu_capacity_mhz", "cpu_usage_mhz",
          "cpu_usage_pct", "mem_capacity_kb", "mem_usage_kb", "disk_read_kbps",
          "disk_write_kbps", "net_rx_kbps", "net_tx_kbps")
ORIGINAL = ("Timestamp [ms]", "CPU cores", "CPU capacity provisioned [MHZ]", "CPU usage [MHZ]",
            "CPU usage [%]", "Memory capacity provisioned [KB]", "Memory usage [KB]",
            "Disk read throughput [KB/s]", "Disk write throughput [KB/s]",
            "Network received throughput [KB/s]", "Network transmitted throughput [KB/s]")
OPTIONAL_COLUMNS = ("net_rx_mbps", "net_tx_mbps", "disk_mbps", "cpu_request_cores",
                    "mem_request_gib")


def _row(cid: str, v: list[float]) -> UsageRow | None:
    """Map the 11 numeric fields (original order) to a row; None for an unprovisioned VM."""
    ts, cores, cap_mhz, use_mhz, pct, mem_cap, mem_use, d_r, d_w, n_rx, n_tx = v
    if cores <= 0 and cap_mhz <= 0:
        return None
    if ts > MS_THRESHOLD:
        ts /= 1000.0
    cpu = use_mhz / (cap_mhz / cores) if cap_mhz > 0 and cores > 0 else pct / 100.0 * cores
    return UsageRow(cid, ts, cpu, mem_use / KIB_PER_GIB, n_rx * KIBPS_TO_MBPS,
                    n_tx * KIBPS_TO_MBPS, (d_r + d_w) * KIBPS_TO_MBPS, cores,
                    mem_cap / KIB_PER_GIB)


def iter_bitbrains(src: str | Path, bad: BadRows, stats: ConvertStats, *,
                   id_prefix: str = "") -> Iterator[UsageRow]:
    """Stream usage rows from Bitbrains file(s); see the module docstring for the mapping."""
    order = TimeOrder()
    seen: set[str] = set()
    for path in data_files(src, ("*.csv", "*.csv.gz")):
        with open_text(path) as fh:
            first = fh.readline()
        joined = first.lstrip().startswith("vm_id")
        names = JOINED if joined else ORIGINAL
        rows = csv_rows(path, delimiter="," if joined else ";")
        head = next(rows, None)
        if head is None:
            continue
        idx = column_index(path, head[1], names)
        width = len(head[1])
        for line, fields in rows:
            stats.rows_read += 1
            if len(fields) != width:
                bad(path, line, f"expected {width} fields, got {len(fields)}")
                continue
            try:
                start = 1 if joined else 0
                v = [parse_float(fields[idx[j]], names[j], minimum=0.0)
                     for j in range(start, len(names))]
                cid = id_prefix + (fields[idx[0]].strip() if joined else stem(path))
                if not cid:
                    raise ValueError("vm_id is empty")
            except ValueError as exc:
                bad(path, line, str(exc))
                continue
            row = _row(cid, v)
            if row is None:
                stats.dropped["vm not provisioned (0 cores, 0 MHz)"] += 1
                continue
            if not math.isfinite(row.cpu_cores):
                bad(path, line, "CPU usage is not finite")
                continue
            why = order.problem(cid, row.t_s)
            if why:
                bad(path, line, why)
                continue
            if cid not in seen:
                seen.add(cid)
                stats.entities += 1
            yield row
