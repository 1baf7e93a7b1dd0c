"""Arrival traces -> hierarchy arrivals CSV: Azure V1 VM arrivals and Alibaba 2023 pods.

* Azure V1 (as binned by huaweicloud/trace_generation_rnn): ``<t_s> <flavour>,...,|,...`` per
  300-s bin, ``|`` ending one tenant's batch; ``flav_map.txt`` maps a flavour letter to
  ``<vCPU>,<GiB>``; the optional lifetime file (``v1.test.c<cut>.txt[.gz]``, same layout with
  ``U<bin>``/``C<bin>`` tokens) and ``v1.interval_map.txt`` (``<seconds> <bin>``) give
  lifetimes. An arrival's ``t_s`` is its bin start; ``lifetime_s`` is the mid-point of its
  lifetime bin for finished VMs (``U``) and empty for VMs still running at the cut (``C``);
  ``group`` is ``<t_s>-<batch>``.
* Alibaba cluster-trace-gpu-v2023 pod lists (``openb_pod_list_*.csv``): ``t_s =
  creation_time``, ``cpu_cores = cpu_milli / 1000``, ``mem_gib = memory_mib / 1024``,
  ``lifetime_s = deletion_time - scheduled_time`` for pods that were scheduled (empty for
  pods that never were); GPU fields, ``qos`` and ``pod_phase`` are dropped.

``scale`` multiplies CPU and memory (e.g. 0.25 to shrink cloud VMs to edge containers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from hierarchy.traces.arrivals import ArrivalRow
from hierarchy.traces.errors import BadRows, ConvertStats, TraceFormatError
from hierarchy.traces.sources_common import column_index
from hierarchy.traces.textio import csv_rows, open_text, parse_float

BIN_S = 300.0
"""Width of an Azure V1 arrival bin, seconds."""
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "creation_time", "deletion_time",
               "scheduled_time")


def parse_azure_line(line: str) -> tuple[float, list[list[str]]]:
    """``"<t_s> a,b,|,c,|,"`` -> ``(t_s, [["a", "b"], ["c"]])``; ``ValueError`` if malformed."""
    head, _, rest = line.strip().partition(" ")
    t_s = parse_float(head, "bin time")
    batches: list[list[str]] = []
    cur: list[str] = []
    for tok in rest.split(","):
        tok = tok.strip()
        if tok == "|":
            if cur:
                batches.append(cur)
            cur = []
        elif tok:
            cur.append(tok)
    if cur:
        batches.append(cur)
    return t_s, batches


def read_flavours(path: Path) -> dict[str, tuple[float, float]]:
    """``flav_map.txt``: ``{letter: (vcpu, gib)}``."""
    out: dict[str, tuple[float, float]] = {}
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                size, letter = line.split()
                cpu, mem = size.split(",")
                out[letter] = (parse_float(cpu, "vCPU", minimum=0.0),
                               parse_float(mem, "GiB", minimum=0.0))
            except ValueError as exc:
                raise TraceFormatError(path, line_no, f"expected '<vCPU>,<GiB> <letter>': "
                                                      f"{exc}") from None
    return out


def read_interval_map(path: Path, bin_s: float = BIN_S) -> dict[str, float]:
    """``v1.interval_map.txt``: mid-point (s) of each lifetime bin [min key, max key + bin)."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise TraceFormatError(path, line_no, "expected '<seconds> <bin>'")
            s = parse_float(parts[0], "seconds")
            lo[parts[1]] = min(lo.get(parts[1], s), s)
            hi[parts[1]] = max(hi.get(parts[1], s), s)
    return {b: (lo[b] + hi[b] + bin_s) / 2 for b in lo}


def _sibling(src: Path, pattern: str) -> Path | None:
    found = sorted(src.parent.glob(pattern))
    return found[0] if found else None


def iter_azure_v1(src: str | Path, bad: BadRows, stats: ConvertStats, *,
                  flavours: str | Path | None = None, lifetimes: str | Path | None = None,
                  intervals: str | Path | None = None, scale: float = 1.0,
                  id_prefix: str = "azure-") -> Iterator[ArrivalRow]:
    """Stream arrivals from Azure V1 files (see the module docstring).

    Args:
        src: the arrivals file (``v1.test.txt.gz``) or its folder (then ``v1.test.txt*``).
        flavours, lifetimes, intervals: default to ``flav_map.txt``, ``<stem>.c*.txt*`` and
            ``v1.interval_map.txt`` beside ``src``; without lifetimes ``lifetime_s`` is empty.
    """
    p = Path(src)
    if p.is_dir():
        found = _sibling(p / "x", "v1.test.txt*")
        if found is None:
            raise TraceFormatError(p, 0, "no v1.test.txt[.gz] in this folder")
        p = found
    base = p.name.split(".txt")[0]
    flav_path = Path(flavours) if flavours else p.parent / "flav_map.txt"
    flav = read_flavours(flav_path)
    life_path = Path(lifetimes) if lifetimes else _sibling(p, f"{base}.c*.txt*")
    int_path = Path(intervals) if intervals else _sibling(p, "*interval_map.txt")
    if life_path is None or int_path is None:
        stats.notes.append("no lifetime file or interval map found: lifetime_s left empty")
        life_path = None
    mids = read_interval_map(int_path) if life_path is not None and int_path else {}
    life_fh = open_text(life_path) if life_path is not None else None
    n = 0
    try:
        with open_text(p) as fh:
            for line_no, line in enumerate(fh, start=1):
                life_line = life_fh.readline() if life_fh is not None else ""
                if not line.strip():
                    continue
                stats.rows_read += 1
                try:
                    t_s, batches = parse_azure_line(line)
                    sizes = [[flav[f] for f in b] for b in batches]
                except KeyError as exc:
                    bad(p, line_no, f"unknown flavour {exc.args[0]!r} (not in {flav_path.name})")
                    continue
                except ValueError as exc:
                    bad(p, line_no, str(exc))
                    continue
                lives: list[list[float]] = [[math.nan] * len(b) for b in batches]
                if life_fh is not None:
                    try:
                        lt, lb = parse_azure_line(life_line)
                        if lt != t_s or [len(b) for b in lb] != [len(b) for b in batches]:
                            raise ValueError("does not match the arrivals file line by line")
                        lives = [[mids[tok[1:]] if tok[0] == "U" else math.nan for tok in b]
                                 for b in lb]
                    except (ValueError, KeyError, IndexError) as exc:
                        bad(life_path, line_no, f"lifetime line: {exc}")
                        continue
                for k, (b, lv) in enumerate(zip(sizes, lives, strict=True)):
                    for (cpu, mem), life in zip(b, lv, strict=True):
                        yield ArrivalRow(t_s, cpu * scale, mem * scale, life, f"{id_prefix}{n}",
                                         f"{t_s:.0f}-{k}")
                        n += 1
                        stats.entities += 1
    finally:
        if life_fh is not None:
            life_fh.close()


def iter_alibaba2023_pods(src: str | Path, bad: BadRows, stats: ConvertStats, *,
                          scale: float = 1.0, drop_gpu_pods: bool = False
                          ) -> Iterator[ArrivalRow]:
    """Stream arrivals from an ``openb_pod_list_*.csv`` (see the module docstring)."""
    rows = csv_rows(src)
    head = next(rows, None)
    if head is None:
        raise TraceFormatError(src, 0, "empty file")
    idx = column_index(src, head[1], POD_COLUMNS)
    width = len(head[1])
    for line, f in rows:
        stats.rows_read += 1
        if len(f) != width:
            bad(src, line, f"expected {width} fields, got {len(f)}")
            continue
        name, cpu_s, mem_s, gpu_s, c_s, d_s, s_s = (f[k] for k in idx)
        try:
            cpu = parse_float(cpu_s, "cpu_milli", minimum=0.0) / 1000.0
            mem = parse_float(mem_s, "memory_mib", minimum=0.0) / 1024.0
            gpu = parse_float(gpu_s, "num_gpu", minimum=0.0, empty_ok=True)
            created = parse_float(c_s, "creation_time")
            deleted = parse_float(d_s, "deletion_time", empty_ok=True)
            sched = parse_float(s_s, "scheduled_time", empty_ok=True)
        except ValueError as exc:
            bad(src, line, str(exc))
            continue
        if drop_gpu_pods and gpu > 0:
            stats.dropped["pod requests a GPU (drop_gpu_pods)"] += 1
            continue
        life = deleted - sched if deleted >= sched else math.nan  # NaN compares False
        stats.entities += 1
        yield ArrivalRow(created, cpu * scale, mem * scale, life, name.strip(), "")
