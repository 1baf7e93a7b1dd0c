"""hierarchy's call-graph JSON lines: one application (one call graph) per line.

Each line is a JSON object::

    {"app": "shop", "service": "shop", "num": 1,
     "nodes": [{"node": "USER"}, {"node": "front"}, {"node": "db"}],
     "edges": [{"source": "USER", "target": "front", "weight": 1, "rpctype": "http"},
               {"source": "front", "target": "db", "weight": 2.5, "rpctype": "db",
                "bytes": 4096}]}

``nodes`` and ``edges`` are required; ``app`` (an id, default ``"<file>:<line>"``),
``service``, ``num`` (how often the graph occurred, default 1) are optional; a node object may
carry a ``label`` (its kind, e.g. ``"Memcached"``). ``weight`` is
calls per user request (> 0); ``rpctype`` and ``bytes`` (bytes per call, request plus
response) are optional. The node ``USER`` marks the entry. A node may be a string or an object
with a ``node`` key. Unknown keys are kept in ``CallGraph.extra`` and ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.textio import open_output, open_text

USER = "USER"
"""The pseudo-node that stands for the application's users (the entry's caller)."""


@dataclass(frozen=True)
class CallGraph:
    """One application's call graph as arrays.

    Attributes:
        app: application id.
        nodes: node names (``USER`` included when present), in file order.
        labels: each node's ``label`` (e.g. ``"Memcached"``, ``"database"``), ``""`` if none.
        src, dst: int64 node indices of each edge.
        weight: float64 calls per user request of each edge.
        rpctype: each edge's RPC type (``""`` when unknown).
        bytes_per_call: float64 bytes per call of each edge (NaN when unknown).
        service: the service the graph belongs to (``""`` when unknown).
        num: how often this graph occurred in its source trace.
        extra: other top-level keys of the record, kept as they were.
    """

    app: str
    nodes: tuple[str, ...]
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    rpctype: tuple[str, ...]
    bytes_per_call: np.ndarray
    labels: tuple[str, ...] = ()
    service: str = ""
    num: float = 1.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def index(self, node: str) -> int:
        """Position of ``node`` in ``nodes`` (``ValueError`` if absent)."""
        return self.nodes.index(node)

    @property
    def containers(self) -> tuple[str, ...]:
        """The nodes that are containers (every node but ``USER``)."""
        return tuple(n for n in self.nodes if n != USER)

    def adjacency(self) -> np.ndarray:
        """``(n, n)`` float64 matrix of calls per user request, ``[caller, callee]``."""
        n = len(self.nodes)
        a = np.zeros((n, n))
        np.add.at(a, (self.src, self.dst), self.weight)
        return a

    def to_record(self) -> dict[str, Any]:
        """The JSON object of this graph (the inverse of ``parse_callgraph``)."""
        edges = []
        for k in range(self.src.size):
            e: dict[str, Any] = {"source": self.nodes[self.src[k]],
                                 "target": self.nodes[self.dst[k]],
                                 "weight": _num(self.weight[k])}
            if self.rpctype[k]:
                e["rpctype"] = self.rpctype[k]
            if not math.isnan(self.bytes_per_call[k]):
                e["bytes"] = _num(self.bytes_per_call[k])
            edges.append(e)
        rec: dict[str, Any] = {"app": self.app}
        if self.service:
            rec["service"] = self.service
        rec["num"] = _num(self.num)
        rec.update({k: v for k, v in self.extra.items() if k not in rec})
        labels = self.labels or ("",) * len(self.nodes)
        rec["nodes"] = [{"node": n, "label": lab} if lab else {"node": n}
                        for n, lab in zip(self.nodes, labels, strict=True)]
        rec["edges"] = edges
        return rec


def _num(x: float) -> float | int:
    x = float(x)
    return int(x) if x == int(x) and abs(x) < 1e15 else x


def _pos_number(v: Any, what: str, minimum: float, strict: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number, got {v!r}")
    if v < minimum or (strict and v == minimum):
        raise ValueError(f"{what} must be {'>' if strict else '>='} {minimum:g}, got {v!r}")
    return float(v)


def parse_callgraph(rec: Any, default_app: str = "") -> CallGraph:
    """Validate one decoded JSON object and build a ``CallGraph``; ``ValueError`` if invalid."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    raw_nodes, raw_edges = rec.get("nodes"), rec.get("edges")
    if not isinstance(raw_nodes, list) or not isinstance(raw_edges, list):
        raise ValueError("'nodes' and 'edges' must both be lists")
    names: list[str] = []
    labels: list[str] = []
    for n in raw_nodes:
        name = n.get("node") if isinstance(n, dict) else n
        if not isinstance(name, str) or not name:
            raise ValueError(f"a node must be a non-empty string or {{'node': name}}, got {n!r}")
        names.append(name)
        label = n.get("label", "") if isinstance(n, dict) else ""
        labels.append(label if isinstance(label, str) else str(label))
    pos = {n: i for i, n in enumerate(names)}
    if len(pos) != len(names):
        raise ValueError("a node name appears twice in 'nodes'")
    src, dst, w, types, nbytes = [], [], [], [], []
    for k, e in enumerate(raw_edges):
        if not isinstance(e, dict):
            raise ValueError(f"edge {k} is not an object")
        s, t = e.get("source"), e.get("target")
        for end, what in ((s, "source"), (t, "target")):
            if end not in pos:
                raise ValueError(f"edge {k}: {what} {end!r} is not in 'nodes'")
        src.append(pos[s])
        dst.append(pos[t])
        w.append(_pos_number(e.get("weight", None), f"edge {k} weight", 0.0, strict=True))
        rt = e.get("rpctype", "")
        if not isinstance(rt, str):
            raise ValueError(f"edge {k}: rpctype must be a string, got {rt!r}")
        types.append(rt)
        b = e.get("bytes")
        nbytes.append(math.nan if b is None else _pos_number(b, f"edge {k} bytes", 0.0, False))
    app = rec.get("app", default_app)
    num = rec.get("num", 1)
    known = {"app", "service", "num", "nodes", "edges"}
    return CallGraph(
        app=str(app), nodes=tuple(names), src=np.array(src, dtype=np.int64),
        dst=np.array(dst, dtype=np.int64), weight=np.array(w, dtype=np.float64),
        rpctype=tuple(types), bytes_per_call=np.array(nbytes, dtype=np.float64),
        labels=tuple(labels), service=str(rec.get("service", "")),
        num=_pos_number(num, "num", 0.0, False),
        extra={k: v for k, v in rec.items() if k not in known})


def iter_callgraphs(path: str | Path, *, skip_bad: bool = False,
                    stats: ConvertStats | None = None) -> Iterator[CallGraph]:
    """Stream the call graphs of a JSON-lines file (gzip if ``*.gz``), one line at a time.

    A line that is not valid JSON or not a valid graph raises ``TraceFormatError`` naming the
    file and line, or is skipped and counted when ``skip_bad``.
    """
    st = stats if stats is not None else ConvertStats(fmt="callgraphs")
    bad = BadRows(skip_bad, st)
    name = Path(path).name
    with open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            st.rows_read += 1
            try:
                g = parse_callgraph(json.loads(line), default_app=f"{name}:{line_no}")
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                bad(path, line_no, f"invalid call graph: {exc}")
                continue
            st.written += 1
            st.entities += 1
            yield g


def read_callgraphs(path: str | Path, *, skip_bad: bool = False,
                    stats: ConvertStats | None = None) -> list[CallGraph]:
    """Load every call graph of a JSON-lines file."""
    return list(iter_callgraphs(path, skip_bad=skip_bad, stats=stats))


class CallGraphWriter:
    """Write call graphs (``CallGraph`` or already-valid records) as JSON lines, atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = 0

    def __enter__(self) -> CallGraphWriter:
        self._cm = open_output(self.path)
        self._fh = self._cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)  # type: ignore[arg-type]

    def write(self, graph: CallGraph | Mapping[str, Any]) -> None:
        """Append one graph; a mapping is validated first (``ValueError`` if invalid)."""
        g = graph if isinstance(graph, CallGraph) else parse_callgraph(dict(graph))
        self._fh.write(json.dumps(g.to_record(), separators=(",", ":")) + "\n")
        self.rows += 1


def write_callgraphs(path: str | Path, graphs: Iterable[CallGraph | Mapping[str, Any]]) -> int:
    """Write graphs (consumed lazily) to ``path``; return how many were written."""
    with CallGraphWriter(path) as w:
        for g in graphs:
            w.write(g)
    return w.rows

