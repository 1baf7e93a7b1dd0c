"""Trace files of a scenario's `workload.trace`, turned into tables the simulator replays.

- usage series -> per-series CPU and memory use as fractions of the request, resampled to a
  uniform grid (`usage_step_s`, trace seconds; a gap repeats the last sample), replayed by the
  tick kernel from a random phase per app instance;
- call graphs -> service templates (a tree from the `USER` entry, calls per parent call,
  bytes per call, pinned data at a db/memcached callee) and their popularity (`num`);
- arrivals (optional) -> a rate modulation per `arrival_bin_s` (counts / mean count) for every
  site, the empirical lifetimes and the requested (cores, GiB) pairs of containers.

Files are read once per process (they are small); a bad file raises ScenarioError naming
the scenario file and the field.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hierarchy.scenario import ScenarioError, TraceWorkload
from hierarchy.traces.arrivals import read_arrivals
from hierarchy.traces.callgraph import CallGraph, read_callgraphs
from hierarchy.traces.errors import TraceFormatError
from hierarchy.traces.usage import read_usage

USER = "USER"
CPU_FRAC_MAX = 4.0  # a few samples above the provisioned size (turbo, accounting) at most
MEM_FRAC_UNKNOWN = 0.1  # memory use when a series has none: the fitted mean level (about 8%)


@dataclass(frozen=True)
class ServiceGraph:
    """One call graph as a tree of at most K containers, entry first (parent[k] < k)."""

    size: int
    parent: np.ndarray  # (size,) -1 for the entry
    calls: np.ndarray  # (size,) calls per parent call
    bytes_per_call: np.ndarray  # (size,) NaN when the trace has none
    data_k: int  # container behind a db / memcached call, -1 when none
    num: float  # how often the graph was seen (popularity)


@dataclass(frozen=True)
class TraceTables:
    cpu_frac: np.ndarray  # (n_series, T) CPU used / requested, wrapped by length
    mem_frac: np.ndarray  # (n_series, T)
    length: np.ndarray  # (n_series,) grid points of each series
    step_s: float  # trace seconds per grid point
    series_mean: np.ndarray  # (n_series,) mean CPU fraction
    graphs: tuple[ServiceGraph, ...]
    arrival_mod: np.ndarray  # (n_bins,) rate multiplier per bin (mean 1); empty: no arrivals
    lifetimes_s: np.ndarray  # (n,) known lifetimes, trace s (may be empty)
    requests: np.ndarray  # (n, 2) requested (cores, GiB) of arrivals (may be empty)


def load_trace_tables(trace: TraceWorkload, max_app_size: int) -> TraceTables:
    return _load(trace.usage, trace.callgraphs, trace.arrivals, trace.usage_step_s,
                 trace.arrival_bin_s, max_app_size, trace.defined_in)


@functools.lru_cache(maxsize=8)
def _load(usage: str, callgraphs: str, arrivals: str | None, step_s: float, bin_s: float,
          k_max: int, origin: str) -> TraceTables:
    cpu, mem, length = _usage_tables(_read(read_usage, usage, "usage", origin), step_s, usage,
                                     origin)
    graphs = tuple(
        _tree(g, k_max) for g in _read(read_callgraphs, callgraphs, "callgraphs", origin)
    )
    graphs = tuple(g for g in graphs if g is not None)
    if not graphs:
        raise ScenarioError(f"{origin}: field workload.trace.callgraphs: {callgraphs}: no "
                            f"application with an entry (an edge from {USER})")
    mod = np.zeros(0)
    lifetimes = np.zeros(0)
    requests = np.zeros((0, 2))
    if arrivals is not None:
        arr = _read(read_arrivals, arrivals, "arrivals", origin)
        if len(arr) == 0:
            raise ScenarioError(f"{origin}: field workload.trace.arrivals: {arrivals}: empty")
        bins = np.floor((arr.t_s - arr.t_s[0]) / bin_s).astype(np.int64)
        counts = np.bincount(bins).astype(np.float64)
        mod = counts / counts.mean()
        lifetimes = arr.lifetime_s[np.isfinite(arr.lifetime_s) & (arr.lifetime_s > 0)]
        ok = (arr.cpu_cores > 0) & (arr.mem_gib > 0)
        requests = np.stack([arr.cpu_cores[ok], arr.mem_gib[ok]], axis=1)
    mean = np.array([cpu[i, : length[i]].mean() for i in range(length.size)])
    return TraceTables(cpu, mem, length, step_s, mean, graphs, mod, lifetimes, requests)


def _read(reader, path: str, field: str, origin: str):  # noqa: ANN001, ANN202
    try:
        return reader(path)
    except (TraceFormatError, OSError, ValueError) as exc:
        raise ScenarioError(f"{origin}: field workload.trace.{field}: {exc}") from None


def _usage_tables(series: dict, step_s: float, path: str, origin: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grids = []
    for s in series.values():
        if len(s) == 0:
            continue
        req = s.cpu_request_cores
        known = np.isfinite(req) & (req > 0)
        # Without a recorded request, the container's own peak stands for its size.
        cpu_req = np.where(known, req, max(float(np.nanmax(s.cpu_cores)), 1e-3))
        cpu = np.clip(s.cpu_cores / cpu_req, 0.0, CPU_FRAC_MAX)
        mreq = s.mem_request_gib
        mem = np.where(np.isfinite(s.mem_gib) & np.isfinite(mreq) & (mreq > 0),
                       s.mem_gib / np.where(mreq > 0, mreq, 1.0), MEM_FRAC_UNKNOWN)
        idx = np.floor((s.t_s - s.t_s[0]) / step_s).astype(np.int64)
        n = int(idx[-1]) + 1
        grid_cpu = np.full(n, np.nan)
        grid_mem = np.full(n, np.nan)
        grid_cpu[idx] = cpu  # the last sample of a grid step wins
        grid_mem[idx] = np.clip(mem, 0.0, CPU_FRAC_MAX)
        grids.append((_fill_forward(grid_cpu), _fill_forward(grid_mem)))
    if not grids:
        raise ScenarioError(f"{origin}: field workload.trace.usage: {path}: no samples")
    length = np.array([g[0].size for g in grids], dtype=np.int64)
    cpu_tab = np.zeros((len(grids), int(length.max())))
    mem_tab = np.zeros_like(cpu_tab)
    for i, (c, m) in enumerate(grids):
        cpu_tab[i, : c.size] = c
        mem_tab[i, : m.size] = m
    return cpu_tab, mem_tab, length


def _fill_forward(x: np.ndarray) -> np.ndarray:
    idx = np.where(np.isfinite(x), np.arange(x.size), 0)
    np.maximum.accumulate(idx, out=idx)
    return x[idx]


def _tree(g: CallGraph, k_max: int) -> ServiceGraph | None:
    """The graph's breadth-first tree from its entry (the USER callee with the most calls),
    truncated to k_max containers; nodes the entry does not reach are left out."""
    if USER not in g.nodes:
        return None
    user = g.index(USER)
    entries = [(g.weight[e], g.dst[e]) for e in range(g.src.size) if g.src[e] == user]
    if not entries:
        return None
    entry = int(max(entries)[1])
    order, parent, via = [entry], [-1], [-1]
    seen = {entry}
    i = 0
    while i < len(order) and len(order) < k_max:
        node = order[i]
        for e in range(g.src.size):
            if g.src[e] == node and g.dst[e] not in seen and g.dst[e] != user:
                seen.add(int(g.dst[e]))
                order.append(int(g.dst[e]))
                parent.append(i)
                via.append(e)
                if len(order) >= k_max:
                    break
        i += 1
    size = len(order)
    invocations = np.ones(size)
    calls = np.ones(size)
    bytes_per_call = np.full(size, np.nan)
    data_k = -1
    for k in range(1, size):
        e = via[k]
        # Edge weights are calls per user request; the tree wants calls per parent call.
        invocations[k] = g.weight[e]
        calls[k] = max(g.weight[e] / invocations[parent[k]], 1e-3)
        bytes_per_call[k] = g.bytes_per_call[e]
        if data_k < 0 and g.rpctype[e] in ("db", "mc"):
            data_k = k
    return ServiceGraph(size, np.array(parent), calls, bytes_per_call, data_k, float(g.num))
