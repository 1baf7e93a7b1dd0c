"""Alibaba microservice call graphs -> hierarchy call-graph JSON lines.

* 2021 (``cluster-trace-microservices-v2021`` ``MSCallGraph``/``Callgraph.csv``: ``traceid,
  timestamp,rpcid,um,rpctype,dm,interface,rt``, with or without pandas' leading index column):
  each trace (one user request) is rebuilt into one graph from its ``rpcid`` tree.
* 2022 (the DGG extraction of ``cluster-trace-microservices-v2022``: JSON lines with
  ``service``, ``graph_file``, ``num``, ``nodes``, ``edges``): checked and normalised.

The 2021 rebuild, in order (see ``docs/traces.md`` for the full mapping):

1. rows are grouped by ``traceid``; a trace is complete when no row of it came for
   ``idle_ms`` of trace time, or when more than ``max_open`` traces are open (oldest first);
2. the (usually two: caller- and callee-side) rows of one ``rpcid`` are merged;
3. an unknown caller ``um`` (``(?)``, empty, ``UNKNOWN``, ``UNAVAILABLE``) is taken from the
   callee of the parent ``rpcid`` (``0.1.3`` is the parent of ``0.1.3.2``); an unknown callee
   ``dm`` from the caller of a child ``rpcid``;
4. the shallowest calls whose caller is still unknown are the user's calls: ``USER -> dm``;
5. an edge's weight is the number of calls (distinct ``rpcid``) between the two services in
   the trace, i.e. calls per user request; calls whose callee stays unknown and calls of a
   service to itself (local ``userDefined`` calls) are dropped and counted.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hierarchy.traces.callgraph import USER, CallGraph, parse_callgraph
from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.textio import csv_rows, open_text, parse_float

UNKNOWN = frozenset({"", "(?)", "?", "UNKNOWN", "UNAVAILABLE", "nan", "NaN"})
COLS_2021 = ("traceid", "timestamp", "rpcid", "um", "rpctype", "dm")
IDLE_MS = 60_000.0
"""A trace with no new row for this much trace time (ms) is complete."""
NO_ROOT = "trace without its root call"
MAX_OPEN = 100_000
"""At most this many traces are buffered; beyond it the least recently active is flushed."""


@dataclass
class _Trace:
    last_ms: float
    first_ms: float
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # rpcid, um, type, dm


def _known(name: str) -> bool:
    return name not in UNKNOWN


def _parent(rpcid: str) -> str:
    return rpcid.rsplit(".", 1)[0] if "." in rpcid else ""


def build_trace_graph(traceid: str, tr: _Trace, drops: Counter[str]) -> CallGraph | None:
    """Rebuild one trace's call graph (steps 2-5 of the module docstring); None if empty."""
    calls: dict[str, list[str]] = {}  # rpcid -> [um, rpctype, dm]
    dms: dict[str, list[str]] = {}
    for rpcid, um, rpctype, dm in tr.rows:
        c = calls.setdefault(rpcid, ["", "", ""])
        if not _known(c[0]) and _known(um):
            c[0] = um
        if not c[1] and rpctype:
            c[1] = rpctype
        if _known(dm):
            dms.setdefault(rpcid, []).append(dm)
    for rpcid, c in calls.items():
        cand = dms.get(rpcid, [])
        c[2] = next((d for d in cand if d != c[0]), cand[0] if cand else "")
    children: dict[str, list[str]] = {}
    for rpcid in calls:
        children.setdefault(_parent(rpcid), []).append(rpcid)
    for rpcid, c in calls.items():
        if not _known(c[2]):
            c[2] = next((calls[k][0] for k in children.get(rpcid, ()) if _known(calls[k][0])),
                        "")
    for rpcid, c in calls.items():
        p = calls.get(_parent(rpcid))
        if not _known(c[0]) and p is not None and _known(p[2]):
            c[0] = p[2]
    min_depth = min(r.count(".") for r in calls)
    weight: dict[tuple[str, str], float] = {}
    types: dict[tuple[str, str], str] = {}
    for rpcid, (um, rpctype, dm) in calls.items():
        if not _known(um):
            if rpcid.count(".") != min_depth:
                drops["call with unknown caller (not the trace root)"] += 1
                continue
            um = USER
        if not _known(dm):
            drops["call with unknown callee"] += 1
            continue
        if um == dm:
            drops["call of a service to itself (local call)"] += 1
            continue
        weight[(um, dm)] = weight.get((um, dm), 0.0) + 1.0
        types.setdefault((um, dm), rpctype)
    if not weight:
        drops["trace with no resolvable call"] += 1
        return None
    if not any(s == USER for s, _ in weight):
        # The root call is missing (a cut trace): its caller of the shallowest call is the entry.
        shallow = min(calls, key=lambda r: (r.count("."), r))
        entry = calls[shallow][0] if _known(calls[shallow][0]) else next(iter(weight))[0]
        weight = {(USER, entry): 1.0, **weight}
        types[(USER, entry)] = ""
        drops[NO_ROOT] += 1
    nodes = [USER]
    for s, t in weight:
        for n in (s, t):
            if n not in nodes:
                nodes.append(n)
    entry = next(t for s, t in weight if s == USER)
    rec: dict[str, Any] = {
        "app": traceid, "service": entry, "num": 1, "t0_ms": tr.first_ms,
        "nodes": nodes,
        "edges": [{"source": s, "target": t, "weight": w, "rpctype": types[(s, t)]}
                  for (s, t), w in weight.items()],
    }
    return parse_callgraph(rec)


def iter_alibaba2021(src: str | Path, bad: BadRows, stats: ConvertStats, *,
                     idle_ms: float = IDLE_MS, max_open: int = MAX_OPEN) -> Iterator[CallGraph]:
    """Stream graphs rebuilt from a 2021 ``Callgraph.csv`` (bounded by ``max_open`` traces)."""
    rows = csv_rows(src)
    first = next(rows, None)
    if first is None:
        return
    head = [c.strip() for c in first[1]]
    if "traceid" in head:
        idx = [head.index(c) if c in head else -1 for c in COLS_2021]
        if -1 in idx:
            bad(src, first[0], f"header lacks one of {', '.join(COLS_2021)}")
            return
        width = len(head)
        pending: list[tuple[int, list[str]]] = []
    else:  # no header: traceid,timestamp,rpcid,um,rpctype,dm,interface,rt (+ leading index)
        width = len(first[1])
        off = 1 if width == 9 else 0
        idx = [off + k for k in range(6)]
        pending = [first]
    open_: OrderedDict[str, _Trace] = OrderedDict()
    closed: OrderedDict[str, None] = OrderedDict()
    drops: Counter[str] = Counter()
    max_ms = float("-inf")

    def flush(tid: str) -> Iterator[CallGraph]:
        g = build_trace_graph(tid, open_.pop(tid), drops)
        closed[tid] = None
        if len(closed) > max_open:
            closed.popitem(last=False)
        if g is not None:
            stats.entities += 1
            yield g

    def all_rows() -> Iterator[tuple[int, list[str]]]:
        yield from pending
        yield from rows

    for line, f in all_rows():
        stats.rows_read += 1
        if len(f) != width:
            bad(src, line, f"expected {width} fields, got {len(f)}")
            continue
        tid, ts_s, rpcid, um, rpctype, dm = (f[k].strip() for k in idx)
        try:
            ts = parse_float(ts_s, "timestamp")
            if not tid or not rpcid or not all(p.isdigit() for p in rpcid.split(".")):
                raise ValueError(f"traceid must be set and rpcid dotted digits, got {rpcid!r}")
        except ValueError as exc:
            bad(src, line, str(exc))
            continue
        if tid in closed:
            drops["row of a trace already written (raise idle_ms)"] += 1
            continue
        tr = open_.get(tid)
        if tr is None:
            tr = open_[tid] = _Trace(ts, ts)
        else:
            open_.move_to_end(tid)
            tr.last_ms = max(tr.last_ms, ts)
            tr.first_ms = min(tr.first_ms, ts)
        tr.rows.append((rpcid, um, rpctype, dm))
        max_ms = max(max_ms, ts)
        while open_:
            oldest, o = next(iter(open_.items()))
            if len(open_) > max_open or o.last_ms < max_ms - idle_ms:
                yield from flush(oldest)
            else:
                break
    for tid in list(open_):
        yield from flush(tid)
    cut = drops.pop(NO_ROOT, 0)
    if cut:
        stats.notes.append(f"{cut} traces lacked their root call: USER was linked to the caller "
                           "of their shallowest call")
    stats.dropped.update(drops)


def _tidy_2022(rec: dict[str, Any], stats: ConvertStats) -> tuple[list[Any], list[Any]]:
    """Dedupe nodes, add missing endpoints, merge parallel edges, drop self-loops (counted)."""
    nodes: list[Any] = []
    names: set[str] = set()
    for n in rec.get("nodes", []):
        name = n.get("node") if isinstance(n, dict) else n
        if name in names:
            stats.dropped["duplicate node entry"] += 1
            continue
        names.add(name)
        nodes.append(n)
    merged: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for e in rec.get("edges", []):
        s, t = e.get("source"), e.get("target")
        for end in (s, t):
            if isinstance(end, str) and end not in names:
                names.add(end)
                nodes.append({"node": end})
                stats.dropped["edge endpoint missing from nodes (node added)"] += 1
        if s == t:
            stats.dropped["self-loop edge"] += 1
            continue
        key = (s, t, e.get("rpctype"))
        if key in merged:
            merged[key]["weight"] += e.get("weight", 0)
            stats.dropped["parallel edge (weights summed)"] += 1
        else:
            merged[key] = dict(e)
    return nodes, list(merged.values())


def iter_alibaba2022(src: str | Path, bad: BadRows, stats: ConvertStats) -> Iterator[CallGraph]:
    """Stream the DGG-extracted 2022 graphs, checked; ``app`` = ``service/graph_file``.

    Duplicate node entries are merged, parallel edges (same caller, callee and rpctype) merged
    with their weights summed, self-loops dropped; all counted in ``stats.dropped``.
    """
    with open_text(src) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            stats.rows_read += 1
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                rec["nodes"], rec["edges"] = _tidy_2022(rec, stats)
                if "app" not in rec:
                    rec["app"] = f"{rec.get('service', '')}/{rec.get('graph_file', line_no)}"
                g = parse_callgraph(rec)
            except (ValueError, AttributeError, TypeError) as exc:
                bad(src, line_no, f"invalid call graph: {exc}")
                continue
            stats.entities += 1
            yield g
