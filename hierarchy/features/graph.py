"""Call-graph features of one container within its application's call graph."""

from __future__ import annotations

from collections import deque

import numpy as np

from hierarchy.features.spec import GRAPH_FEATURE_NAMES
from hierarchy.traces.callgraph import USER, CallGraph


def depths(graph: CallGraph) -> np.ndarray:
    """Hops from ``USER`` to each node on a shortest path (``USER`` 0, entries 1, unreachable
    -1), int64, in ``graph.nodes`` order."""
    n = len(graph.nodes)
    d = np.full(n, -1, dtype=np.int64)
    if USER not in graph.nodes:
        return d
    children: list[list[int]] = [[] for _ in range(n)]
    for s, t in zip(graph.src.tolist(), graph.dst.tolist(), strict=True):
        if s != t:
            children[s].append(t)
    root = graph.index(USER)
    d[root] = 0
    queue = deque([root])
    while queue:
        u = queue.popleft()
        for v in children[u]:
            if d[v] < 0:
                d[v] = d[u] + 1
                queue.append(v)
    return d


def graph_features(graph: CallGraph, node: str) -> np.ndarray:
    """The call-graph part of the feature vector (``GRAPH_FEATURE_NAMES`` order) for ``node``.

    ``cg_bytes_per_request`` counts edges whose ``bytes`` is unknown as 0. Raises
    ``ValueError`` if ``node`` is not in the graph.
    """
    i = graph.index(node)
    src, dst, w = graph.src, graph.dst, graph.weight
    not_self = src != dst
    into = not_self & (dst == i)
    out = not_self & (src == i)
    nbytes = np.nan_to_num(graph.bytes_per_call)
    d = depths(graph)
    containers = [k for k, name in enumerate(graph.nodes) if name != USER]
    f = np.array([
        len(set(src[into].tolist())),
        len(set(dst[out].tolist())),
        max(int(d[i]), 0),
        float(w[into].sum()),
        float((w[into | out] * nbytes[into | out]).sum()),
        len(containers),
        max((int(d[k]) for k in containers), default=0),
    ], dtype=np.float64)
    assert f.size == len(GRAPH_FEATURE_NAMES)
    return f


def app_graph_features(graph: CallGraph) -> dict[str, np.ndarray]:
    """``graph_features`` of every container of the application, by node name."""
    return {name: graph_features(graph, name) for name in graph.containers}
