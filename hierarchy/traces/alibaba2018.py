"""Alibaba cluster-trace-v2018 ``container_usage.csv`` (+ ``container_meta.csv``) -> usage.

``container_usage.csv`` has no header: ``container_id,machine_id,time_stamp,cpu_util_percent,
mem_util_percent,cpi,mem_gps,mpki,net_in,net_out,disk_io_percent``. ``container_meta.csv`` has
no header either: ``container_id,machine_id,time_stamp,app_du,status,cpu_request,cpu_limit,
mem_size`` (``cpu_request``: 100 = one core; ``mem_size``: memory normalised so that a machine
has 100). Mapping (see ``docs/traces.md``): ``cpu_cores = cpu_util_percent / 100`` (100 = one
core, the trace's convention) or, with ``cpu_basis="request"``, that fraction of the request;
``mem_gib = mem_util_percent / 100 * mem_size / 100 * machine_mem_gib`` when the caller says how
much memory a machine has (the trace does not publish it), else empty. Rows whose CPU or memory
is -1 or 101 (the trace's "invalid" marks) are dropped and counted. ``net_in``/``net_out`` and
``disk_io_percent`` are normalised without a published scale and are not converted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.textio import csv_rows, parse_float
from hierarchy.traces.usage import TimeOrder, UsageRow

INVALID = (-1.0, 101.0)
"""Sentinels the trace uses for invalid utilisation values."""

USAGE_FIELDS = 11
META_FIELDS = 8
OPTIONAL_COLUMNS = ("cpu_request_cores", "mem_request_gib")


def read_meta(path: str | Path, bad: BadRows) -> dict[str, tuple[float, float]]:
    """``{container_id: (cpu_request_cores, mem_size_normalised)}`` from the row with the
    latest ``time_stamp`` of each container. Memory: one entry per container."""
    out: dict[str, tuple[float, float, float]] = {}
    for line, f in csv_rows(path):
        if len(f) != META_FIELDS:
            bad(path, line, f"container_meta: expected {META_FIELDS} fields, got {len(f)}")
            continue
        try:
            ts = parse_float(f[2], "time_stamp")
            req = parse_float(f[5], "cpu_request", minimum=0.0, empty_ok=True) / 100.0
            mem = parse_float(f[7], "mem_size", minimum=0.0, empty_ok=True)
        except ValueError as exc:
            bad(path, line, str(exc))
            continue
        cid = f[0].strip()
        if cid and (cid not in out or ts >= out[cid][0]):
            out[cid] = (ts, req, mem)
    return {k: (v[1], v[2]) for k, v in out.items()}


def iter_alibaba2018(src: str | Path, bad: BadRows, stats: ConvertStats, *,
                     meta: str | Path | None = None, machine_mem_gib: float | None = None,
                     cpu_basis: str = "core") -> Iterator[UsageRow]:
    """Stream usage rows from ``container_usage.csv`` (see the module docstring).

    Args:
        src: ``container_usage.csv`` (gzip if ``*.gz``).
        meta: ``container_meta.csv``; default: ``container_meta.csv[.gz]`` beside ``src`` if
            present. Needed for memory in GiB, for the requests and for ``cpu_basis="request"``.
        machine_mem_gib: GiB of one machine (normalised memory 100); None leaves memory empty.
        cpu_basis: ``"core"`` (100 = one core) or ``"request"`` (100 = the container's request).
    """
    if cpu_basis not in ("core", "request"):
        raise ValueError(f"cpu_basis must be 'core' or 'request', got {cpu_basis!r}")
    src = Path(src)
    if meta is None:
        for name in ("container_meta.csv", "container_meta.csv.gz"):
            if (src.parent / name).is_file():
                meta = src.parent / name
                break
    info = read_meta(meta, bad) if meta is not None else {}
    if meta is None:
        stats.notes.append("no container_meta.csv: requests and memory left empty")
    if machine_mem_gib is None:
        stats.notes.append("memory left empty: pass machine_mem_gib (--machine-mem-gib) to "
                           "convert the trace's normalised memory to GiB")
    if cpu_basis == "request" and meta is None:
        raise ValueError("cpu_basis='request' needs container_meta.csv (meta=...)")
    order = TimeOrder()
    seen: set[str] = set()
    no_meta = 0
    for line, f in csv_rows(src):
        stats.rows_read += 1
        if len(f) != USAGE_FIELDS:
            bad(src, line, f"container_usage: expected {USAGE_FIELDS} fields, got {len(f)}")
            continue
        cid = f[0].strip()
        try:
            if not cid:
                raise ValueError("container_id is empty")
            ts = parse_float(f[2], "time_stamp")
            cpu = parse_float(f[3], "cpu_util_percent", empty_ok=True)
            mem = parse_float(f[4], "mem_util_percent", empty_ok=True)
        except ValueError as exc:
            bad(src, line, str(exc))
            continue
        if cpu in INVALID or mem in INVALID or math.isnan(cpu) or cpu < 0 or mem < 0:
            stats.dropped["invalid cpu/mem value (-1, 101 or empty)"] += 1
            continue
        req, mem_size = info.get(cid, (math.nan, math.nan))
        if cid not in info and meta is not None:
            no_meta += 1
        if cpu_basis == "request":
            if not req > 0:
                stats.dropped["no cpu_request for cpu_basis=request"] += 1
                continue
            cores = cpu / 100.0 * req
        else:
            cores = cpu / 100.0
        scale = math.nan if machine_mem_gib is None else machine_mem_gib / 100.0
        why = order.problem(cid, ts)
        if why:
            bad(src, line, why)
            continue
        if cid not in seen:
            seen.add(cid)
            stats.entities += 1
        yield UsageRow(cid, ts, cores, mem / 100.0 * mem_size * scale, cpu_request_cores=req,
                       mem_request_gib=mem_size * scale)
    if no_meta:
        stats.notes.append(f"{no_meta} rows of containers absent from container_meta kept "
                           "without requests or memory")
