"""Rebuild the small real-trace slices from ``data/public/``.

They live in ``hierarchy/scenarios/traces/`` (package data); ``data/traces/`` links to them.

Developer tool (reads only ``--data``)::

    python scripts/make_trace_slices.py [--data DIR]   # DIR: data/public

Writes, in hierarchy's formats (``docs/traces.md``):

* ``bitbrains_rnd_vm01-25_2days.csv.gz``: the 25 Bitbrains VMs, samples of the first
  ``--days`` days of each VM;
* ``alibaba2022_callgraphs_40.jsonl``: the most frequent graph of each of the first
  ``--services`` services that has at most ``--max-containers`` containers;
* ``azure_v1_arrivals_6h.csv.gz``: Azure V1 VM arrivals of the first ``--hours`` hours, times
  shifted so that the first bin starts at 0.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

from hierarchy.traces import (
    CallGraph,
    UsageRow,
    iter_arrivals,
    iter_callgraphs,
    iter_usage,
    write_arrivals,
    write_callgraphs,
    write_usage,
)
from hierarchy.traces.convert import convert
from hierarchy.traces.public_data import PUBLIC_DATA_DIR


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=PUBLIC_DATA_DIR,
                   help="folder of the public trace slices (default: data/public)")
    p.add_argument("--out", type=Path, default=Path("hierarchy/scenarios/traces"))
    p.add_argument("--days", type=float, default=2.0)
    p.add_argument("--services", type=int, default=40)
    p.add_argument("--max-containers", type=int, default=8)
    p.add_argument("--hours", type=float, default=6.0)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        convert("bitbrains", a.data / "bitbrains/bitbrains_rnd_2013-7_vm01-25_first7days.csv.gz",
                t / "bb.csv")
        first: dict[str, float] = {}

        def early(row: UsageRow) -> bool:
            t0 = first.setdefault(row.container_id, row.t_s)
            return row.t_s - t0 < a.days * 86400.0

        n = write_usage(a.out / "bitbrains_rnd_vm01-25_2days.csv.gz",
                        (r for r in iter_usage(t / "bb.csv") if early(r)))
        print(f"bitbrains: {n} rows", file=sys.stderr)

        convert("alibaba2022-callgraph",
                a.data / "alibaba_v2022_callgraphs/alibaba_v2022_callgraphs_A.jsonl.gz",
                t / "cg.jsonl")
        best: dict[str, CallGraph] = {}
        for g in iter_callgraphs(t / "cg.jsonl"):
            if len(g.containers) <= a.max_containers and g.service not in best:
                if len(best) >= a.services:
                    break
                best[g.service] = g  # the file lists a service's graphs by frequency
        n = write_callgraphs(a.out / f"alibaba2022_callgraphs_{a.services}.jsonl",
                             best.values())
        print(f"call graphs: {n}", file=sys.stderr)

        convert("azure-v1", a.data / "azure_v1_vm_arrivals", t / "az.csv")
        rows = iter_arrivals(t / "az.csv")
        head = next(rows)
        t0 = head.t_s
        keep = (r._replace(t_s=r.t_s - t0) for r in itertools.chain([head], rows)
                if r.t_s - t0 < a.hours * 3600.0)
        n = write_arrivals(a.out / f"azure_v1_arrivals_{a.hours:g}h.csv.gz", keep)
        print(f"arrivals: {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
