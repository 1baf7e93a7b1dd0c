"""Fit the synthetic workload generator's parameters to public trace slices.

This is a *developer tool*, not product code: the simulator never calls it at run time and it
only reads the folder passed with ``--data``. Run it as::

    python -m sim.fitting [--data DIR] [--out FILE]    # DIR defaults to data/public

It prints (and with ``--out`` writes) a YAML fragment ``workload: {arrivals, apps, containers,
usage, lifetimes}`` in which every group carries a ``source:`` string naming the file(s), the
statistic and the number of rows / graphs / VMs it was fitted to. Diagnostics that are not part
of the generator's parameters (alternative weightings, cross-checks) go to stderr.

Layout: small *parsers* (``parse_*``/``read_*``: text -> NumPy arrays or small records, gzip
files streamed line by line) are kept apart from pure *statistics* functions (arrays -> numbers)
so that the latter can be unit-tested on synthetic inputs (``tests/test_fitting.py``).

Units: times in seconds (``_s``), hours of day in [0, 24), CPU in cores (vCPU), memory in GiB,
utilisations as fractions of the allocation (request), probabilities in [0, 1].
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from hierarchy.traces.arrival_sources import parse_azure_line
from hierarchy.traces.public_data import PUBLIC_DATA_DIR

# ---------------------------------------------------------------------------------------------
# Constants (documented modelling choices)
# ---------------------------------------------------------------------------------------------

BIN_S = 300.0
"""Width of an Azure V1 arrival bin and of a Bitbrains sample, seconds."""

DAY_H = 24.0
"""Period of the daily profile, hours."""

BURST_MAD_K = 3.0
"""A bin is "burst" when its ratio to the daily curve exceeds median + K * 1.4826 * MAD."""

MAX_APP_SIZE = 8
"""Apps have 1..MAX_APP_SIZE containers; larger call graphs are clipped to this size."""

DATA_RPCTYPES = frozenset({"db", "mc"})
"""RPC types that count as stateful data access (database, memcached)."""

STAR_GRID = np.linspace(0.0, 1.0, 51)
"""star_prob candidates for the joint grid search (step 0.02)."""

CHAIN_GRID = np.linspace(0.0, 1.0, 51)
"""chain_prob candidates for the joint grid search (step 0.02)."""

NEAR_LOSS_TOL = 1e-4
"""Grid points whose loss is within this of the minimum are reported as "near-optimal" (1e-4 is
a 1% relative error on one of the two statistics; with N_TREES trees the Monte Carlo noise of
the loss is of that order, so these points are not distinguishable from the optimum)."""

N_TREES = 20_000
"""Trees simulated per (star_prob, chain_prob) candidate (common random numbers across the grid)."""

EDGE_SCALE = 0.25
"""Edge containers are EDGE_SCALE times the size of an Azure VM (CPU; memory per core is kept)."""

RARE_FRAC = 0.01
"""Request values rarer than this are merged into their nearest (log-scale) neighbour."""

MAX_CPU_VALUES = 6
"""At most this many distinct CPU request values are emitted."""

UTIL_EPS = 1e-3
"""Added to utilisations before taking logs."""

LEVEL_CLIP = (0.005, 0.95)
"""Per-VM mean utilisations are clipped to this range before the Beta fit."""

IDLE_UTIL = 1e-3
"""VMs whose mean CPU utilisation is below this are idle: their log-noise, AR(1) and relative
amplitude are dominated by UTIL_EPS or a near-zero denominator, so they are left out of those
three statistics (they still count in the level Beta, clipped to LEVEL_CLIP)."""

SAMPLE_TOL_S = 30.0
"""Two Bitbrains samples are consecutive when their gap is BIN_S +- SAMPLE_TOL_S seconds."""

LIFETIME_MIN_S = 60.0
"""Lower clip of generated lifetimes, seconds."""

SCALAR_SIG = 4
"""Significant digits of emitted floats."""


# ---------------------------------------------------------------------------------------------
# Generic helpers
# ---------------------------------------------------------------------------------------------


def sig(x: float, digits: int = SCALAR_SIG) -> float:
    """Round ``x`` to ``digits`` significant digits and return a plain Python float."""
    x = float(x)
    if x == 0.0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def round_pmf(p: Sequence[float] | np.ndarray, digits: int = SCALAR_SIG) -> list[float]:
    """Normalise ``p``, round each entry to ``digits`` significant digits, and make it sum to 1.

    The residual of rounding is absorbed by the largest entry, so the result sums to 1 within
    float precision (< 1e-9) and every entry still has at most ``digits`` + 1 significant digits.
    """
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1 or arr.size == 0 or np.any(arr < 0) or arr.sum() <= 0:
        raise ValueError(f"not a pmf: {p!r}")
    arr = arr / arr.sum()
    out = [sig(v, digits) for v in arr]
    big = int(np.argmax(arr))
    out[big] = round(1.0 - sum(v for i, v in enumerate(out) if i != big), 10)
    return out


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently gunzipping ``*.gz`` (streamed, never read whole)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _sinusoid_design(hour: np.ndarray) -> np.ndarray:
    """Design matrix ``[1, cos(w h), sin(w h)]`` with ``w = 2 pi / 24`` per hour."""
    h = np.asarray(hour, dtype=float)
    w = 2.0 * np.pi / DAY_H
    return np.column_stack([np.ones_like(h), np.cos(w * h), np.sin(w * h)])


def fit_daily_sinusoid(hour: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares fit ``y ~ m * (1 + amp * cos(2 pi (hour - peak) / 24))`` for positive y.

    Solved linearly as ``y = m + a cos(w h) + b sin(w h)`` with ``w = 2 pi / 24``.

    Args:
        hour: hour of day of each sample, in [0, 24) (any real is fine, taken modulo 24).
        y: observed values (same length), expected to have a positive mean.

    Returns:
        ``(m, amp, peak_hour)``: the mean level (units of ``y``), the *relative* amplitude
        ``sqrt(a^2 + b^2) / m`` (dimensionless, >= 0; 0 when m <= 0) and the hour of the
        maximum of ``a cos + b sin`` in [0, 24).
    """
    (m, a, b), *_ = np.linalg.lstsq(_sinusoid_design(hour), np.asarray(y, dtype=float),
                                    rcond=None)
    amp = float(np.hypot(a, b) / m) if m > 0 else 0.0
    peak = float((np.arctan2(b, a) / (2.0 * np.pi / DAY_H)) % DAY_H)
    return float(m), amp, peak


def daily_curve(hour: np.ndarray, m: float, amp: float, peak_hour: float) -> np.ndarray:
    """Evaluate ``m * (1 + amp * cos(2 pi (hour - peak_hour) / 24))`` (units of ``m``)."""
    h = np.asarray(hour, dtype=float)
    return m * (1.0 + amp * np.cos(2.0 * np.pi * (h - peak_hour) / DAY_H))


def daily_residual(hour: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` minus its least-squares 24-h sinusoid (mean included); any sign of y, same units."""
    design = _sinusoid_design(hour)
    y = np.asarray(y, dtype=float)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def hour_of_day(t_s: np.ndarray) -> np.ndarray:
    """Hour of day in [0, 24) of Unix-like timestamps, assuming t = 0 is midnight UTC."""
    return (np.asarray(t_s, dtype=float) % 86_400.0) / 3_600.0


def run_lengths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lengths (in samples) of the maximal runs of True and of False in a boolean series.

    Runs cut by the start or end of the series are included as they are.
    """
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    change = np.flatnonzero(np.diff(m.astype(np.int8))) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [m.size]]))
    values = m[starts]
    return lengths[values], lengths[~values]


def robust_high_mask(x: np.ndarray, k: float = BURST_MAD_K) -> np.ndarray:
    """True where ``x > median(x) + k * 1.4826 * MAD(x)`` (a robust z-score above ``k``)."""
    x = np.asarray(x, dtype=float)
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med))
    return x > med + k * mad


def index_of_dispersion(counts: np.ndarray) -> float:
    """Variance (ddof=1) over mean of a count series (1 for Poisson, > 1 over-dispersed)."""
    c = np.asarray(counts, dtype=float)
    return float(c.var(ddof=1) / c.mean())


# ---------------------------------------------------------------------------------------------
# 1. Arrivals (Azure V1, per 300-s bin)
# ---------------------------------------------------------------------------------------------


def parse_arrival_line(line: str) -> tuple[int, list[list[str]]]:
    """Parse ``"<t_s> a,b,|,c,|,"`` into ``(t_s, [[flavours of batch 1], [batch 2], ...])``.

    ``|`` ends one tenant's batch; a trailing batch without ``|`` is kept too (the parser is
    the trace converters', hierarchy.traces).
    """
    t_s, batches = parse_azure_line(line)
    return int(t_s), batches


@dataclass
class ArrivalSeries:
    """VM arrivals per bin: bin start times (s), VMs per bin, batches per bin, flavour counts."""

    t_s: np.ndarray
    counts: np.ndarray
    batches: np.ndarray
    flavour_counts: Counter[str]


def read_azure_arrivals(path: Path, bin_s: float = BIN_S) -> ArrivalSeries:
    """Stream ``v1.test.txt.gz`` into a contiguous per-bin series (missing bins count 0 VMs)."""
    per_bin: dict[int, tuple[int, int]] = {}
    flav: Counter[str] = Counter()
    with open_text(path) as fh:
        for line in fh:
            if not line.strip():
                continue
            t, batches = parse_arrival_line(line)
            n_vm = sum(len(b) for b in batches)
            old = per_bin.get(t, (0, 0))
            per_bin[t] = (old[0] + n_vm, old[1] + len(batches))
            for b in batches:
                flav.update(b)
    if not per_bin:
        raise ValueError(f"no arrival rows in {path}")
    t0, t1 = min(per_bin), max(per_bin)
    t_s = np.arange(t0, t1 + bin_s / 2, bin_s)
    counts = np.array([per_bin.get(int(t), (0, 0))[0] for t in t_s], dtype=float)
    batches = np.array([per_bin.get(int(t), (0, 0))[1] for t in t_s], dtype=float)
    return ArrivalSeries(t_s=t_s, counts=counts, batches=batches, flavour_counts=flav)


def fit_arrivals(t_s: np.ndarray, counts: np.ndarray, bin_s: float = BIN_S,
                 k: float = BURST_MAD_K) -> dict[str, float]:
    """Fit the daily sinusoid and the on/off burst process to a per-bin count series.

    Args:
        t_s: bin start times, seconds (t = 0 assumed to be 00:00 UTC; the bin mid-point is used).
        counts: arrivals per bin.
        bin_s: bin width, seconds.
        k: robust z-score threshold of a burst bin (see ``robust_high_mask``).

    Returns:
        dict with ``base_per_bin`` (mean arrivals per bin), ``daily_amplitude`` (relative),
        ``peak_hour`` (hour of day), ``burst_factor`` (mean ratio in burst bins / outside),
        ``burst_on_s``, ``burst_off_s`` (mean run lengths x bin_s), ``burst_fraction`` and
        ``index_of_dispersion`` of the raw counts.
    """
    c = np.asarray(counts, dtype=float)
    hour = hour_of_day(np.asarray(t_s, dtype=float) + bin_s / 2)
    base, amp, peak = fit_daily_sinusoid(hour, c)
    curve = np.maximum(daily_curve(hour, base, amp, peak), 1e-9)
    ratio = c / curve
    burst = robust_high_mask(ratio, k)
    on, off = run_lengths(burst)
    if burst.any() and (~burst).any():
        factor = float(ratio[burst].mean() / ratio[~burst].mean())
    else:
        factor = 1.0
    return {
        "base_per_bin": base,
        "daily_amplitude": amp,
        "peak_hour": peak,
        "burst_factor": factor,
        "burst_on_s": float(on.mean() * bin_s) if on.size else 0.0,
        "burst_off_s": float(off.mean() * bin_s) if off.size else float(c.size * bin_s),
        "burst_fraction": float(burst.mean()),
        "index_of_dispersion": index_of_dispersion(c),
    }


def simulate_arrival_counts(t_s: np.ndarray, fit: Mapping[str, float], seed: int = 0,
                            bin_s: float = BIN_S) -> np.ndarray:
    """Poisson counts per bin from the generator model with fitted parameters (diagnostic).

    The burst state is a two-state Markov chain sampled per bin with exit probabilities
    ``bin_s / burst_on_s`` and ``bin_s / burst_off_s``; the base rate is renormalised so the
    long-run mean equals ``fit['base_per_bin']``.
    """
    rng = np.random.default_rng(seed)
    hour = hour_of_day(np.asarray(t_s, dtype=float) + bin_s / 2)
    p_exit_on = min(1.0, bin_s / max(fit["burst_on_s"], bin_s))
    p_exit_off = min(1.0, bin_s / max(fit["burst_off_s"], bin_s))
    state = np.zeros(hour.size, dtype=bool)
    s = False
    for i in range(hour.size):
        u = rng.random()
        s = (u >= p_exit_on) if s else (u < p_exit_off)
        state[i] = s
    frac_on = p_exit_off / (p_exit_on + p_exit_off)
    base = fit["base_per_bin"] / (1.0 + frac_on * (fit["burst_factor"] - 1.0))
    rate = daily_curve(hour, base, fit["daily_amplitude"], fit["peak_hour"])
    rate = rate * np.where(state, fit["burst_factor"], 1.0)
    return rng.poisson(np.maximum(rate, 0.0)).astype(float)


# ---------------------------------------------------------------------------------------------
# 2. Applications (Alibaba v2022 call graphs)
# ---------------------------------------------------------------------------------------------


@dataclass
class GraphStats:
    """Per-call-graph statistics (containers = non-USER nodes).

    Attributes:
        service: the service the graph belongs to.
        num: how often the graph occurred in the trace.
        size: distinct non-USER nodes.
        depth: max shortest-path distance (edges) from the entry node(s) over non-USER nodes.
        out_degrees: distinct non-USER callees of each non-leaf non-USER node (self-loops
            excluded).
        call_ratios: for each non-USER -> non-USER edge (self-loops excluded), its weight divided
            by the parent's total incoming weight (calls per parent call).
        has_data: the graph has an edge whose rpctype is in DATA_RPCTYPES.
        unreachable: non-USER nodes not reachable from the entries.
        self_loops: self-loop edges dropped.
        is_tree: every non-entry node has exactly one non-self-loop caller.
    """

    service: str
    num: float
    size: int
    depth: int
    out_degrees: list[int]
    call_ratios: list[float]
    has_data: bool
    unreachable: int
    self_loops: int
    is_tree: bool


def bfs_depth(children: Mapping[str, Iterable[str]], entries: Iterable[str]) -> tuple[int, int]:
    """Shortest-path depth of a directed graph from a set of entry nodes.

    Args:
        children: adjacency ``node -> callees``.
        entries: the start nodes (depth 0).

    Returns:
        ``(depth, n_reached)``: the largest BFS distance (number of edges) of any reached node,
        and how many distinct nodes were reached (entries included).
    """
    dist: dict[str, int] = {}
    queue: deque[str] = deque()
    for e in entries:
        if e not in dist:
            dist[e] = 0
            queue.append(e)
    while queue:
        u = queue.popleft()
        for v in children.get(u, ()):
            if v not in dist:
                dist[v] = dist[u] + 1
                queue.append(v)
    return (max(dist.values()) if dist else 0), len(dist)


def graph_stats(rec: Mapping[str, Any], user: str = "USER") -> GraphStats:
    """Compute ``GraphStats`` from one parsed JSON-lines record of the call-graph file."""
    nodes = {n["node"] for n in rec.get("nodes", [])}
    edges = rec.get("edges", [])
    for e in edges:
        nodes.update((e["source"], e["target"]))
    containers = nodes - {user}
    children: dict[str, set[str]] = {}
    in_weight: Counter[str] = Counter()
    callers: dict[str, set[str]] = {}
    entries: set[str] = set()
    self_loops = 0
    has_data = False
    for e in edges:
        s, t, w = e["source"], e["target"], float(e.get("weight", 1))
        if e.get("rpctype") in DATA_RPCTYPES:
            has_data = True
        if s == t:
            self_loops += 1
            continue
        in_weight[t] += w
        callers.setdefault(t, set()).add(s)
        if s == user:
            entries.add(t)
        elif t != user:
            children.setdefault(s, set()).add(t)
    ratios = []
    for e in edges:
        s, t = e["source"], e["target"]
        if s == t or s == user or t == user:
            continue
        parent_in = in_weight.get(s, 0.0)
        w = float(e.get("weight", 1))
        ratios.append(w / parent_in if parent_in > 0 else w)
    depth, reached = bfs_depth(children, entries)
    is_tree = all(len(callers.get(n, ())) == 1 for n in containers)
    return GraphStats(
        service=str(rec.get("service", "")),
        num=float(rec.get("num", 1)),
        size=len(containers),
        depth=depth,
        out_degrees=[len(v) for v in children.values() if v],
        call_ratios=ratios,
        has_data=has_data,
        unreachable=len(containers) - reached,
        self_loops=self_loops,
        is_tree=is_tree,
    )


def read_callgraphs(path: Path) -> Iterator[GraphStats]:
    """Stream a call-graph JSON-lines file (optionally gzipped), yielding ``GraphStats``."""
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                yield graph_stats(json.loads(line))


def graph_weights(stats: Sequence[GraphStats], scheme: str = "service") -> np.ndarray:
    """Weight of each graph in the app population.

    Schemes: ``"service"`` (default): ``num / total num of its service``, so every service counts
    once and its graphs by their frequency; ``"graph"``: 1 per graph; ``"num"``: raw ``num``
    (dominated by a handful of very busy services).
    """
    if scheme == "graph":
        return np.ones(len(stats))
    num = np.array([max(g.num, 0.0) for g in stats], dtype=float)
    if scheme == "num":
        return num
    if scheme != "service":
        raise ValueError(f"unknown weighting scheme {scheme!r}")
    total: Counter[str] = Counter()
    for g, n in zip(stats, num, strict=True):
        total[g.service] += n
    return np.array([n / total[g.service] if total[g.service] > 0 else 0.0
                     for g, n in zip(stats, num, strict=True)])


def size_pmf(sizes: np.ndarray, weights: np.ndarray,
             max_size: int = MAX_APP_SIZE) -> tuple[np.ndarray, float]:
    """Weighted pmf of app sizes 1..max_size (larger clipped), and the clipped weight fraction."""
    s = np.asarray(sizes, dtype=int)
    w = np.asarray(weights, dtype=float)
    keep = s >= 1
    clipped = float(w[keep & (s > max_size)].sum() / w[keep].sum())
    pmf = np.bincount(np.minimum(s[keep], max_size) - 1, weights=w[keep], minlength=max_size)
    return pmf / pmf.sum(), clipped


def calls_bucket_pmf(ratios: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """pmf of calls per parent call over buckets 1, 2, 3, 4+.

    Each ratio is rounded half-up to an integer and clipped to [1, 4] (a ratio below 1, i.e. a
    callee reached on only some of the parent's calls, counts as 1 call).
    """
    r = np.asarray(ratios, dtype=float)
    w = np.ones_like(r) if weights is None else np.asarray(weights, dtype=float)
    k = np.clip(np.floor(r + 0.5), 1, 4).astype(int)
    pmf = np.bincount(k - 1, weights=w, minlength=4)
    return pmf / pmf.sum()


def sample_tree_parents(n: int, star_prob: float, chain_prob: float,
                        rng: np.random.Generator) -> np.ndarray:
    """One random tree over containers 0..n-1 (the simulator's rule; parent[0] = -1).

    For k >= 1 draw ``u ~ U(0, 1)``: if ``u < star_prob`` then ``parent[k] = 0`` (the entry);
    elif ``u < star_prob + (1 - star_prob) * chain_prob`` then ``parent[k] = k - 1``; else
    ``parent[k]`` is uniform on 0..k-1. ``star_prob = 0`` is the one-parameter chain/uniform
    model.
    """
    cut = star_prob + (1.0 - star_prob) * chain_prob
    parents = np.full(n, -1, dtype=int)
    for k in range(1, n):
        u = rng.random()
        if u < star_prob:
            parents[k] = 0
        elif u < cut:
            parents[k] = k - 1
        else:
            parents[k] = int(rng.integers(0, k))
    return parents


@dataclass
class _SortedTrees:
    """Trees sorted by decreasing size with their uniforms (see ``_sort_trees``)."""

    sizes: np.ndarray
    u_branch: np.ndarray
    u_parent: np.ndarray
    order: np.ndarray
    n_alive: list[int]


def _sort_trees(sizes: np.ndarray, u_branch: np.ndarray, u_parent: np.ndarray) -> _SortedTrees:
    """Sort trees by decreasing size so that the trees with more than k nodes are a prefix
    (of length ``n_alive[k]``) of the arrays; ``order`` maps sorted rows to input rows."""
    sizes = np.asarray(sizes, dtype=int)
    kmax = u_branch.shape[1]
    if kmax > 64:
        raise ValueError("trees of more than 64 nodes are not supported")
    order = np.argsort(-sizes, kind="stable")
    sz = sizes[order]
    return _SortedTrees(sizes=sz, u_branch=u_branch[order], u_parent=u_parent[order],
                        order=order, n_alive=[int(np.count_nonzero(sz > k)) for k in range(kmax)])


def _tree_stats(trees: _SortedTrees, star_prob: np.ndarray,
                chain_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth and number of non-leaf nodes of sorted trees under C parameter pairs at once.

    ``star_prob`` and ``chain_prob`` are (C,) arrays; every pair uses the same uniforms (row i,
    column k of ``u_branch`` / ``u_parent`` decides node k of tree i). Returns ``(depth,
    n_parents)``, both (C, M) for the first M = ``n_alive[1]`` sorted trees (those with at least
    two nodes; the others have depth 0 and no parent). At step k only the prefix of trees with
    more than k nodes is touched; which nodes already have a child is kept as a bit mask, so a
    node is counted once, when it gets its first child.
    """
    kmax = trees.u_branch.shape[1]
    m1 = trees.n_alive[1] if kmax > 1 else 0
    star = np.asarray(star_prob, dtype=float).reshape(-1, 1)
    cut = star + (1.0 - star) * np.asarray(chain_prob, dtype=float).reshape(-1, 1)
    n_cand = star.shape[0]
    bit_t = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64)
                 if np.iinfo(t).bits >= kmax)
    depth_node = np.zeros((kmax, n_cand, m1), dtype=np.int8)
    depth = np.zeros((n_cand, m1), dtype=np.int8)
    n_parents = np.zeros((n_cand, m1), dtype=np.int8)
    bits = np.zeros((n_cand, m1), dtype=bit_t)
    for k in range(1, kmax):
        m = trees.n_alive[k]
        if m == 0:
            break
        uniform_parent = np.minimum((trees.u_parent[:m, k] * k).astype(np.intp), k - 1)
        u = trees.u_branch[:m, k]
        parent = np.where(u < star, 0, np.where(u < cut, k - 1, uniform_parent))
        d = np.take_along_axis(depth_node[:k, :, :m], parent[None], axis=0)[0] + 1
        depth_node[k, :, :m] = d
        np.maximum(depth[:, :m], d, out=depth[:, :m])
        pbit = np.left_shift(bit_t(1), parent.astype(bit_t))
        n_parents[:, :m] += (bits[:, :m] & pbit) == 0
        bits[:, :m] |= pbit
    return depth, n_parents


def tree_depths_fanouts(sizes: np.ndarray, star_prob: float, chain_prob: float,
                        u_branch: np.ndarray, u_parent: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised version of ``sample_tree_parents`` for many trees at once.

    Args:
        sizes: (N,) tree sizes in 1..K (K <= 64).
        star_prob: probability of attaching node k to the entry (node 0).
        chain_prob: otherwise, probability of attaching node k to k-1 (else uniform on 0..k-1).
        u_branch, u_parent: (N, K) uniforms in [0, 1): ``u_branch`` picks the rule (star if
            ``u < star_prob``, chain if ``u < star_prob + (1 - star_prob) * chain_prob``, else
            uniform), ``u_parent`` the uniform parent ``floor(u * k)``. They are fixed across
            the grid's candidates (common random numbers), which makes the search smooth.

    Returns:
        ``(depth, n_edges, n_parents)`` per tree: max distance from node 0, edges (= size - 1),
        and the number of distinct nodes with at least one child.
    """
    sizes = np.asarray(sizes, dtype=int)
    trees = _sort_trees(sizes, u_branch, u_parent)
    d, p = _tree_stats(trees, np.array([star_prob]), np.array([chain_prob]))
    m1 = d.shape[1]
    depth = np.zeros(sizes.size, dtype=int)
    n_parents = np.zeros(sizes.size, dtype=int)
    depth[trees.order[:m1]] = d[0]
    n_parents[trees.order[:m1]] = p[0]
    return depth, sizes - 1, n_parents


def _rel_err(value: np.ndarray, target: float) -> np.ndarray:
    """``(value - target) / target``; the absolute error when ``target`` is 0."""
    return (value - target) / target if target != 0 else value - target


@dataclass
class TreeFit:
    """Result of ``fit_tree_params``: the optimum, the generated statistics there, the loss grid.

    Attributes:
        star_prob, chain_prob: the grid point with the smallest loss.
        mean_depth: generated mean depth (edges from the entry) at the optimum.
        mean_fanout: generated fan-out at the optimum, pooled over non-leaf nodes (total edges /
            total nodes with a child).
        loss: sum of the squared relative errors of mean depth and fan-out at the optimum.
        star_grid, chain_grid: the candidates searched.
        losses: (len(star_grid), len(chain_grid)) loss of every candidate.
    """

    star_prob: float
    chain_prob: float
    mean_depth: float
    mean_fanout: float
    loss: float
    star_grid: np.ndarray
    chain_grid: np.ndarray
    losses: np.ndarray

    def near_optimal(self, tol: float = NEAR_LOSS_TOL) -> tuple[float, float, float, float]:
        """``(star_lo, star_hi, chain_lo, chain_hi)`` spanned by the candidates whose loss is at
        most ``loss + tol`` (how well the two parameters are identified)."""
        i, j = np.nonzero(self.losses <= self.loss + tol)
        return (float(self.star_grid[i].min()), float(self.star_grid[i].max()),
                float(self.chain_grid[j].min()), float(self.chain_grid[j].max()))


def fit_tree_params(pmf: np.ndarray, target_depth: float, target_fanout: float,
                    n_trees: int = N_TREES, star_grid: np.ndarray = STAR_GRID,
                    chain_grid: np.ndarray = CHAIN_GRID, seed: int = 0) -> TreeFit:
    """Joint grid search of ``(star_prob, chain_prob)`` matching mean depth and fan-out.

    The loss is ``((depth - target_depth) / target_depth)^2 + ((fanout - target_fanout) /
    target_fanout)^2`` (a target of 0 contributes its absolute error instead), with ``depth``
    the mean depth of the simulated trees and ``fanout`` their pooled fan-out of non-leaf nodes
    (total edges / total nodes with a child). Ties keep the first candidate in (star_grid,
    chain_grid) order, i.e. the smallest parameters; at ``star_prob = 1`` chain_prob has no
    effect, so the tie there resolves to its first value.

    Args:
        pmf: size pmf over 1..K.
        target_depth: real mean depth (edges from the entry).
        target_fanout: real fan-out of non-leaf nodes (pooled).
        n_trees: trees simulated per candidate.
        star_grid, chain_grid: candidate values (ascending).
        seed: RNG seed (sizes and uniforms are drawn once and reused for every candidate).
    """
    rng = np.random.default_rng(seed)
    kmax = len(pmf)
    sizes = rng.choice(np.arange(1, kmax + 1), size=n_trees, p=np.asarray(pmf) / np.sum(pmf))
    u_branch = rng.random((n_trees, kmax))
    u_parent = rng.random((n_trees, kmax))
    trees = _sort_trees(sizes, u_branch, u_parent)
    n_edges_total = float(np.sum(sizes - 1))
    stars = np.asarray(star_grid, dtype=float)
    chain = np.asarray(chain_grid, dtype=float)
    depths = np.empty((stars.size, chain.size))
    fans = np.empty((stars.size, chain.size))
    for i, ps in enumerate(stars):  # one row of the grid at a time: all chain_prob vectorised
        depth, n_par = _tree_stats(trees, np.full(chain.size, ps), chain)
        depths[i] = depth.sum(axis=1, dtype=np.int64) / n_trees
        fans[i] = n_edges_total / np.maximum(n_par.sum(axis=1, dtype=np.int64), 1)
    losses = _rel_err(depths, target_depth) ** 2 + _rel_err(fans, target_fanout) ** 2
    i, j = np.unravel_index(int(np.argmin(losses)), losses.shape)  # first minimum in C order
    return TreeFit(star_prob=float(stars[i]), chain_prob=float(chain[j]),
                   mean_depth=float(depths[i, j]), mean_fanout=float(fans[i, j]),
                   loss=float(losses[i, j]), star_grid=stars, chain_grid=chain, losses=losses)


def fit_apps(stats: Sequence[GraphStats], scheme: str = "service", n_trees: int = N_TREES,
             seed: int = 0) -> dict[str, Any]:
    """Fit size_pmf, star_prob, chain_prob, calls_pmf and data_prob to call-graph statistics.

    The real depth of a graph larger than MAX_APP_SIZE is capped at MAX_APP_SIZE - 1 (the
    deepest tree a clipped app can have).
    """
    w = graph_weights(stats, scheme)
    sizes = np.array([g.size for g in stats])
    pmf, clipped = size_pmf(sizes, w)
    ok = sizes >= 1
    depths = np.minimum([g.depth for g in stats], MAX_APP_SIZE - 1).astype(float)
    real_depth = float(np.average(depths[ok], weights=w[ok]))
    fan_edges = sum(wi * sum(g.out_degrees) for g, wi in zip(stats, w, strict=True))
    fan_nodes = sum(wi * len(g.out_degrees) for g, wi in zip(stats, w, strict=True))
    real_fan = float(fan_edges / fan_nodes) if fan_nodes > 0 else 0.0
    ratios = np.array([r for g in stats for r in g.call_ratios], dtype=float)
    rw = np.array([wi for g, wi in zip(stats, w, strict=True) for _ in g.call_ratios])
    calls = calls_bucket_pmf(ratios, rw)
    data_prob = float(np.average([g.has_data for g in stats], weights=w))
    tree = fit_tree_params(pmf, real_depth, real_fan, n_trees=n_trees, seed=seed)
    return {
        "size_pmf": pmf,
        "clipped_fraction": clipped,
        "star_prob": tree.star_prob,
        "chain_prob": tree.chain_prob,
        "tree_loss": tree.loss,
        "tree_near": tree.near_optimal(),
        "calls_pmf": calls,
        "data_prob": data_prob,
        "real_mean_depth": real_depth,
        "real_mean_fanout": real_fan,
        "gen_mean_depth": tree.mean_depth,
        "gen_mean_fanout": tree.mean_fanout,
        "n_graphs": len(stats),
        "n_services": len({g.service for g in stats}),
        "n_edges": int(ratios.size),
        "ratio_below_1": float(np.mean(ratios < 0.999)) if ratios.size else 0.0,
        "n_non_tree": int(sum(not g.is_tree for g in stats)),
        "n_unreachable": int(sum(g.unreachable for g in stats)),
        "n_self_loops": int(sum(g.self_loops for g in stats)),
    }


# ---------------------------------------------------------------------------------------------
# 3. Container requests (Azure flavours, cross-checked with Alibaba openb pods)
# ---------------------------------------------------------------------------------------------


def parse_flavour_map(lines: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Parse ``flav_map.txt`` lines ``"<vCPU>,<GiB> <letter>"`` into ``letter -> (vCPU, GiB)``."""
    out: dict[str, tuple[float, float]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            continue
        cpu, mem = parts[0].split(",")
        out[parts[1]] = (float(cpu), float(mem))
    return out


def merge_rare(values: np.ndarray, weights: np.ndarray, min_frac: float = RARE_FRAC,
               max_values: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Collapse a weighted discrete distribution to its common values.

    Distinct values are collected; then, repeatedly, the least probable value is merged into
    its nearest neighbour on a log scale while it is rarer than ``min_frac`` or there are more
    than ``max_values`` values. Returns ``(sorted values, pmf)``.
    """
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    uniq = np.unique(v)
    mass = np.array([w[v == u].sum() for u in uniq])
    vals, probs = list(uniq), list(mass / mass.sum())
    while len(vals) > 1:
        i = int(np.argmin(probs))
        if probs[i] >= min_frac and (max_values is None or len(vals) <= max_values):
            break
        cands = [j for j in (i - 1, i + 1) if 0 <= j < len(vals)]
        j = min(cands, key=lambda j: (abs(math.log(vals[j] / vals[i])), -vals[j]))
        probs[j] += probs[i]
        del vals[i], probs[i]
    return np.array(vals), np.array(probs)


def fit_containers(flavours: Mapping[str, tuple[float, float]], counts: Mapping[str, int],
                   scale: float = EDGE_SCALE) -> dict[str, Any]:
    """CPU request (cores, scaled) and memory-per-core (GiB/vCPU) pmfs from flavour counts."""
    letters = [f for f in counts if f in flavours]
    w = np.array([counts[f] for f in letters], dtype=float)
    cpu = np.array([flavours[f][0] for f in letters])
    mem = np.array([flavours[f][1] for f in letters])
    cpu_vals, cpu_pmf = merge_rare(cpu * scale, w, max_values=MAX_CPU_VALUES)
    mpc_vals, mpc_pmf = merge_rare(mem / cpu, w)
    return {
        "cpu_request_cores": cpu_vals,
        "cpu_request_pmf": cpu_pmf,
        "mem_gib_per_core": mpc_vals,
        "mem_gib_per_core_pmf": mpc_pmf,
        "n_vms": int(w.sum()),
        "unknown_vms": int(sum(n for f, n in counts.items() if f not in flavours)),
        "mean_vcpu": float(np.average(cpu, weights=w)),
        "mean_gib_per_core": float(np.average(mem / cpu, weights=w)),
    }


@dataclass
class PodTable:
    """Alibaba openb pods: requests (milli-cores, MiB), times (s), whether it was scheduled."""

    cpu_milli: np.ndarray
    memory_mib: np.ndarray
    creation_s: np.ndarray
    deletion_s: np.ndarray
    scheduled: np.ndarray


def read_openb_pods(path: Path) -> PodTable:
    """Stream ``openb_pod_list_*.csv``; missing times become NaN."""

    def num(s: str | None) -> float:
        return float(s) if s not in (None, "") else math.nan

    cols: dict[str, list[float]] = {k: [] for k in ("c", "m", "cr", "de", "sc")}
    with open_text(path) as fh:
        for row in csv.DictReader(fh):
            cols["c"].append(num(row.get("cpu_milli")))
            cols["m"].append(num(row.get("memory_mib")))
            cols["cr"].append(num(row.get("creation_time")))
            cols["de"].append(num(row.get("deletion_time")))
            cols["sc"].append(0.0 if row.get("scheduled_time", "") in ("", None) else 1.0)
    return PodTable(*(np.array(cols[k]) for k in ("c", "m", "cr", "de")),
                    scheduled=np.array(cols["sc"], dtype=bool))


def pod_request_summary(pods: PodTable, scale: float = EDGE_SCALE) -> dict[str, float]:
    """Cross-check figures: pod count, median/mean scaled cores, median GiB per core."""
    ok = (pods.cpu_milli > 0) & (pods.memory_mib > 0)
    cores = pods.cpu_milli[ok] / 1000.0
    gib_per_core = pods.memory_mib[ok] / 1024.0 / cores
    return {
        "n_pods": int(ok.sum()),
        "median_cores_scaled": float(np.median(cores) * scale),
        "mean_cores_scaled": float(np.mean(cores) * scale),
        "median_gib_per_core": float(np.median(gib_per_core)),
        "mean_gib_per_core": float(np.mean(gib_per_core)),
    }


# ---------------------------------------------------------------------------------------------
# 4. Usage (Bitbrains rnd, 25 VMs, 5-min samples)
# ---------------------------------------------------------------------------------------------


@dataclass
class VmTrace:
    """One VM's samples: time (s), CPU and memory utilisation (fractions of the allocation)."""

    t_s: np.ndarray
    cpu_util: np.ndarray
    mem_util: np.ndarray


def read_bitbrains(path: Path) -> dict[int, VmTrace]:
    """Stream the joined Bitbrains CSV into per-VM utilisation series.

    CPU utilisation = ``cpu_usage_mhz / cpu_capacity_mhz``; memory = ``mem_usage_kb /
    mem_capacity_kb``; a sample with a non-positive capacity gets NaN for that resource.
    """
    acc: dict[int, tuple[list[float], list[float], list[float]]] = {}
    with open_text(path) as fh:
        for row in csv.DictReader(fh):
            vm = int(row["vm_id"])
            cap, use = float(row["cpu_capacity_mhz"]), float(row["cpu_usage_mhz"])
            mcap, muse = float(row["mem_capacity_kb"]), float(row["mem_usage_kb"])
            t, c, m = acc.setdefault(vm, ([], [], []))
            t.append(float(row["timestamp_s"]))
            c.append(use / cap if cap > 0 else math.nan)
            m.append(muse / mcap if mcap > 0 else math.nan)
    out = {}
    for vm, (t, c, m) in acc.items():
        order = np.argsort(t, kind="stable")
        out[vm] = VmTrace(np.array(t)[order], np.array(c)[order], np.array(m)[order])
    return out


def lag1_autocorr(x: np.ndarray, pair_ok: np.ndarray | None = None) -> float:
    """Lag-1 autocorrelation of ``x`` using only the consecutive pairs where ``pair_ok`` holds.

    ``pair_ok`` has length ``len(x) - 1`` (True when samples i and i+1 are one step apart).
    """
    x = np.asarray(x, dtype=float)
    d = x - x.mean()
    ok = np.ones(x.size - 1, dtype=bool) if pair_ok is None else np.asarray(pair_ok, dtype=bool)
    var = float(np.mean(d * d))
    if var <= 0 or not ok.any():
        return 0.0
    return float(np.mean(d[:-1][ok] * d[1:][ok]) / var)


def phi_per_step(phi_lag: float, steps: float) -> float:
    """Convert an AR(1) coefficient over ``steps`` base steps to one base step (phi**(1/steps)).

    A non-positive coefficient has no real root of this kind and maps to 0.
    """
    return float(phi_lag ** (1.0 / steps)) if phi_lag > 0 else 0.0


def beta_mom(x: np.ndarray) -> tuple[float, float]:
    """Method-of-moments Beta(a, b) for samples in (0, 1) (sample variance, ddof=1).

    Raises ValueError when the variance is not below mean * (1 - mean).
    """
    x = np.asarray(x, dtype=float)
    m, v = float(x.mean()), float(x.var(ddof=1))
    if not 0 < v < m * (1 - m):
        raise ValueError(f"no Beta with mean {m} and variance {v}")
    common = m * (1 - m) / v - 1
    return m * common, (1 - m) * common


def slope_per_hour(t_s: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` against time, in units of y per hour."""
    t_h = (np.asarray(t_s, dtype=float) - float(np.min(t_s))) / 3600.0
    return float(np.polyfit(t_h, np.asarray(y, dtype=float), 1)[0])


@dataclass
class VmUsageStats:
    """Per-VM usage statistics (utilisations are fractions of the request)."""

    cpu_mean: float
    cpu_amp: float
    cpu_peak_hour: float
    cpu_sigma: float
    cpu_phi_step: float
    cpu_peak_to_mean: float
    mem_mean: float
    mem_slope_per_hour: float
    n_samples: int


def vm_usage_stats(tr: VmTrace, step_s: float = BIN_S, eps: float = UTIL_EPS,
                   tol_s: float = SAMPLE_TOL_S) -> VmUsageStats:
    """Fit one VM's level, daily profile, log-noise and AR(1) coefficient.

    * level, relative daily amplitude and peak hour: 24-h sinusoid fitted to u by least squares
      (its mean is the model's ``level``, since the lognormal noise has mean 1);
    * sigma: std of the residual of ``log(u + eps)`` after removing its own 24-h sinusoid;
    * phi: lag-1 autocorrelation of that residual over consecutive samples (gap step_s +- tol_s).
    """
    ok = np.isfinite(tr.cpu_util)
    t, u = tr.t_s[ok], np.clip(tr.cpu_util[ok], 0.0, None)
    hour = hour_of_day(t)
    level, amp, peak = fit_daily_sinusoid(hour, u)
    resid = daily_residual(hour, np.log(u + eps))
    pair_ok = np.abs(np.diff(t) - step_s) <= tol_s
    mok = np.isfinite(tr.mem_util)
    mu = np.clip(tr.mem_util[mok], 0.0, None)
    return VmUsageStats(
        cpu_mean=float(u.mean()),
        cpu_amp=amp,
        cpu_peak_hour=peak,
        cpu_sigma=float(resid.std()),
        cpu_phi_step=lag1_autocorr(resid, pair_ok),
        cpu_peak_to_mean=float(u.max() / u.mean()) if u.mean() > 0 else math.inf,
        mem_mean=float(mu.mean()),
        mem_slope_per_hour=slope_per_hour(tr.t_s[mok], mu),
        n_samples=int(ok.sum()),
    )


def fit_usage(per_vm: Sequence[VmUsageStats], step_s: float = BIN_S) -> dict[str, Any]:
    """Aggregate per-VM statistics into the generator's usage parameters.

    Levels (Beta fits), memory growth and peak-to-mean use every VM; sigma, AR(1) and daily
    amplitude use the non-idle VMs only (mean CPU >= IDLE_UTIL). The daily amplitude of each VM
    is capped at 1 (the model's demand must stay >= 0).
    """
    active = [s for s in per_vm if s.cpu_mean >= IDLE_UTIL]
    cpu_means = np.clip([s.cpu_mean for s in per_vm], *LEVEL_CLIP)
    mem_means = np.clip([s.mem_mean for s in per_vm], *LEVEL_CLIP)
    sigmas = np.array([s.cpu_sigma for s in active])
    phi_step = float(np.median([s.cpu_phi_step for s in active]))
    amps = np.array([s.cpu_amp for s in active])
    slopes = np.array([s.mem_slope_per_hour for s in per_vm])
    ptm = np.array([s.cpu_peak_to_mean for s in per_vm])
    return {
        "cpu_level_beta": beta_mom(cpu_means),
        "cpu_sigma_mean": float(sigmas.mean()),
        "cpu_sigma_std": float(sigmas.std(ddof=1)),
        "ar1_phi_5min": phi_step,
        "ar1_phi_per_min": phi_per_step(phi_step, step_s / 60.0),
        "cpu_daily_amp_mean": float(np.minimum(amps, 1.0).mean()),
        "n_amp_capped": int((amps > 1.0).sum()),
        "mem_level_beta": beta_mom(mem_means),
        "mem_growth_per_hour_mean": float(slopes.mean()),
        "mem_growth_per_hour_std": float(slopes.std(ddof=1)),
        "cpu_peak_to_mean_median": float(np.median(ptm)),
        "cpu_peak_to_mean_min": float(ptm.min()),
        "cpu_peak_to_mean_max": float(ptm.max()),
        "n_vms": len(per_vm),
        "n_active": len(active),
        "n_samples": int(sum(s.n_samples for s in per_vm)),
        "n_cpu_mean_clipped": int(sum(not LEVEL_CLIP[0] <= s.cpu_mean <= LEVEL_CLIP[1]
                                      for s in per_vm)),
        "n_mem_mean_clipped": int(sum(not LEVEL_CLIP[0] <= s.mem_mean <= LEVEL_CLIP[1]
                                      for s in per_vm)),
    }


# ---------------------------------------------------------------------------------------------
# 5. Lifetimes (Alibaba openb pods; cross-check with Azure lifetime bins)
# ---------------------------------------------------------------------------------------------


def lognormal_mle(x: np.ndarray) -> tuple[float, float]:
    """MLE of a lognormal on positive samples: ``(median = exp(mean log x), sigma = std log x)``.

    ``sigma`` is the MLE (ddof=0) standard deviation of ``log x``; units of median = units of x.
    """
    lx = np.log(np.asarray(x, dtype=float))
    return float(np.exp(lx.mean())), float(lx.std())


def pod_lifetimes(pods: PodTable, scheduled_only: bool = True) -> np.ndarray:
    """``deletion - creation`` (s) of pods with both times, positive, and (optionally) scheduled."""
    life = pods.deletion_s - pods.creation_s
    ok = np.isfinite(life) & (life > 0)
    if scheduled_only:
        ok &= pods.scheduled
    return life[ok]


def fit_lifetimes(life_s: np.ndarray, min_s: float = LIFETIME_MIN_S) -> dict[str, float]:
    """Lognormal (median_s, sigma) by MLE, ``min_s`` and ``max_s`` = empirical 99th percentile."""
    med, s = lognormal_mle(life_s)
    return {"median_s": med, "sigma": s, "min_s": float(min_s),
            "max_s": float(np.percentile(life_s, 99)), "n": int(np.size(life_s)),
            "empirical_median_s": float(np.median(life_s))}


def parse_interval_map(lines: Iterable[str], bin_s: float = BIN_S) -> dict[str, float]:
    """Representative lifetime (s) of each Azure lifetime bin: mid-point of its second range.

    ``v1.interval_map.txt`` maps ``<seconds> <bin>``; bin k covers [min key, max key + bin_s).
    """
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            continue
        s, b = float(parts[0]), parts[1]
        lo[b] = min(lo.get(b, s), s)
        hi[b] = max(hi.get(b, s), s)
    return {b: (lo[b] + hi[b] + bin_s) / 2 for b in lo}


def read_azure_lifetimes(path: Path, bin_mid_s: Mapping[str, float]) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Stream ``v1.test.c*.txt.gz``: per VM its bin mid-point (s) and whether it finished (U)."""
    life: list[float] = []
    done: list[bool] = []
    with open_text(path) as fh:
        for line in fh:
            if not line.strip():
                continue
            _, batches = parse_arrival_line(line)
            for b in batches:
                for tok in b:
                    if tok[1:] in bin_mid_s:
                        life.append(bin_mid_s[tok[1:]])
                        done.append(tok[0] == "U")
    return np.array(life), np.array(done, dtype=bool)


# ---------------------------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------------------------

ARRIVALS = Path("azure_v1_vm_arrivals/v1.test.txt.gz")
FLAVOURS = Path("azure_v1_vm_arrivals/flav_map.txt")
AZ_LIFE = Path("azure_v1_vm_arrivals/v1.test.c2591400.txt.gz")
AZ_BINS = Path("azure_v1_vm_arrivals/v1.interval_map.txt")
CALLGRAPHS = Path("alibaba_v2022_callgraphs/alibaba_v2022_callgraphs_A.jsonl.gz")
PODS = Path("alibaba_gpu_v2023/openb_pod_list_default.csv")
BITBRAINS = Path("bitbrains/bitbrains_rnd_2013-7_vm01-25_first7days.csv.gz")


def _floats(xs: Iterable[float]) -> list[float]:
    return [sig(x) for x in xs]


def fit_all(data: Path, seed: int = 0, n_trees: int = N_TREES,
            log: IO[str] | None = None) -> dict[str, Any]:
    """Fit every group from the trace folder ``data``; return the YAML document as a dict.

    Diagnostics (alternative weightings, cross-checks, per-VM figures) are written to ``log``.
    """

    def say(msg: str) -> None:
        if log is not None:
            print(msg, file=log)

    # 1. arrivals
    series = read_azure_arrivals(data / ARRIVALS)
    arr = fit_arrivals(series.t_s, series.counts)
    sim_iod = index_of_dispersion(simulate_arrival_counts(series.t_s, arr, seed=seed))
    say(f"arrivals: {arr}; mean VMs per tenant batch "
        f"{series.counts.sum() / max(series.batches.sum(), 1):.2f}; index of dispersion of the "
        f"fitted model (Poisson, same bins, seed {seed}): {sim_iod:.2f}")
    arrivals = {
        "daily_amplitude": sig(arr["daily_amplitude"]),
        "peak_hour": sig(arr["peak_hour"]),
        "burst_factor": sig(arr["burst_factor"]),
        "burst_on_s": sig(arr["burst_on_s"]),
        "burst_off_s": sig(arr["burst_off_s"]),
        "source": (
            f"{ARRIVALS}: VMs per 300-s bin ({series.counts.size} bins, "
            f"{int(series.counts.sum())} VMs, mean {arr['base_per_bin']:.4g}/bin); least-squares "
            "24-h sinusoid on counts vs hour = (t mod 86400)/3600 at bin mid-point (t = 0 assumed "
            "00:00 UTC); burst bin = count/daily-curve ratio > median + 3*1.4826*MAD "
            f"({100 * arr['burst_fraction']:.3g}% of bins); burst_factor = mean ratio in burst / "
            "outside; on/off = mean run lengths x 300 s; for the record (not a generator "
            "parameter): index of dispersion var(ddof=1)/mean of raw counts "
            f"{sig(arr['index_of_dispersion']):g} (fitted on/off Poisson model, same bins, seed "
            f"{seed}: {sig(sim_iod):g})"
        ),
    }

    # 2. apps
    stats = list(read_callgraphs(data / CALLGRAPHS))
    app = fit_apps(stats, "service", n_trees=n_trees, seed=seed)
    for alt in ("graph", "num"):
        a = fit_apps(stats, alt, n_trees=min(n_trees, 5000), seed=seed)
        say(f"apps weighted by {alt}: size_pmf {_floats(a['size_pmf'])} clipped "
            f"{a['clipped_fraction']:.4g} depth {a['real_mean_depth']:.4g} fanout "
            f"{a['real_mean_fanout']:.4g} star_prob {a['star_prob']:.3g} chain_prob "
            f"{a['chain_prob']:.3g} (generated depth {a['gen_mean_depth']:.4g} fanout "
            f"{a['gen_mean_fanout']:.4g}) calls "
            f"{_floats(a['calls_pmf'])} data_prob {a['data_prob']:.4g}")
    s_lo, s_hi, c_lo, c_hi = app["tree_near"]
    say(f"apps (service-weighted): star_prob {app['star_prob']:.3g} chain_prob "
        f"{app['chain_prob']:.3g}, loss {app['tree_loss']:.3g}; generated mean depth "
        f"{app['gen_mean_depth']:.4g} (real {app['real_mean_depth']:.4g}), generated mean fan-out "
        f"{app['gen_mean_fanout']:.4g} (real {app['real_mean_fanout']:.4g}); grid points within "
        f"{NEAR_LOSS_TOL:g} of the minimum loss span star_prob {s_lo:.3g}..{s_hi:.3g}, "
        f"chain_prob {c_lo:.3g}..{c_hi:.3g}; {app['n_non_tree']} non-tree graphs, "
        f"{app['n_unreachable']} unreachable nodes, {app['n_self_loops']} self-loops dropped, "
        f"{100 * app['ratio_below_1']:.3g}% of edges below 1 call per parent call")
    apps = {
        "size_pmf": round_pmf(app["size_pmf"]),
        "star_prob": sig(app["star_prob"]),
        "chain_prob": sig(app["chain_prob"]),
        "calls_pmf": round_pmf(app["calls_pmf"]),
        "data_prob": sig(app["data_prob"]),
        "source": (
            f"{CALLGRAPHS}: {app['n_graphs']} graphs of {app['n_services']} services, each graph "
            "weighted by num / (total num of its service) so every service counts once; "
            "size = distinct non-USER nodes, clipped to 8 "
            f"({100 * app['clipped_fraction']:.3g}% of weight clipped); depth = BFS shortest-path "
            "depth from USER's callees over non-USER nodes (self-loops dropped, capped at 7), "
            f"real mean depth {sig(app['real_mean_depth']):g}; fan-out = distinct callees per "
            f"non-leaf node, pooled, real mean fan-out {sig(app['real_mean_fanout']):g}; "
            "star_prob and chain_prob = joint grid 0..1 step 0.02 minimising the sum of squared "
            "relative errors of mean depth and mean fan-out over "
            f"{n_trees} simulated trees (seed {seed}, sizes from size_pmf; generated mean depth "
            f"{app['gen_mean_depth']:.4g}, generated mean fan-out {app['gen_mean_fanout']:.4g}, "
            f"loss {sig(app['tree_loss'], 2):g}; weakly identified: grid points within "
            f"{NEAR_LOSS_TOL:g} of the minimum loss span star_prob {s_lo:.3g}..{s_hi:.3g}, "
            f"chain_prob {c_lo:.3g}..{c_hi:.3g}); calls_pmf over "
            f"{app['n_edges']} non-USER edges of weight / parent's total incoming weight, rounded "
            "half-up and clipped to 1..4; data_prob = weight of graphs with an rpctype db or mc "
            "edge"
        ),
    }

    # 3. containers
    with open_text(data / FLAVOURS) as fh:
        flav = parse_flavour_map(fh)
    cont = fit_containers(flav, series.flavour_counts)
    pods = read_openb_pods(data / PODS)
    pod_sum = pod_request_summary(pods)
    say(f"containers: {cont['n_vms']} VMs ({cont['unknown_vms']} unknown flavour), mean vCPU "
        f"{cont['mean_vcpu']:.4g}, mean GiB/core {cont['mean_gib_per_core']:.4g}; openb pods "
        f"cross-check: {pod_sum}")
    containers = {
        "cpu_request_cores": _floats(cont["cpu_request_cores"]),
        "cpu_request_pmf": round_pmf(cont["cpu_request_pmf"]),
        "mem_gib_per_core": _floats(cont["mem_gib_per_core"]),
        "mem_gib_per_core_pmf": round_pmf(cont["mem_gib_per_core_pmf"]),
        "source": (
            f"{FLAVOURS} (vCPU, GiB) weighted by arrivals of each flavour in {ARRIVALS} "
            f"({cont['n_vms']} VMs); cpu = vCPU x scale {EDGE_SCALE} (edge containers are a "
            "quarter of an Azure VM), mem_gib_per_core = GiB / vCPU (unscaled ratio); values "
            f"with < {RARE_FRAC:.0%} of VMs merged into the nearest value (log scale); "
            f"marginals only (cpu and mem/core drawn independently); cross-check {PODS} "
            f"({pod_sum['n_pods']} pods): median cpu_milli/1000 x {EDGE_SCALE} = "
            f"{pod_sum['median_cores_scaled']:.4g} cores vs Azure mean "
            f"{cont['mean_vcpu'] * EDGE_SCALE:.4g}, median GiB/core "
            f"{pod_sum['median_gib_per_core']:.4g} vs Azure mean "
            f"{cont['mean_gib_per_core']:.4g}"
        ),
    }

    # 4. usage
    vms = read_bitbrains(data / BITBRAINS)
    per_vm = [vm_usage_stats(vms[k]) for k in sorted(vms)]
    use = fit_usage(per_vm)
    for k, s in zip(sorted(vms), per_vm, strict=True):
        say(f"  vm {k:2d}: n {s.n_samples} cpu mean {s.cpu_mean:.4f} amp {s.cpu_amp:.3f} peak "
            f"{s.cpu_peak_hour:.1f}h sigma {s.cpu_sigma:.3f} phi5 {s.cpu_phi_step:.3f} "
            f"peak/mean {s.cpu_peak_to_mean:.3g} mem mean {s.mem_mean:.4f} slope/h "
            f"{s.mem_slope_per_hour:.2e}")
    say(f"usage: {use}")
    usage = {
        "cpu_level_beta": _floats(use["cpu_level_beta"]),
        "cpu_sigma_mean": sig(use["cpu_sigma_mean"]),
        "cpu_sigma_std": sig(use["cpu_sigma_std"]),
        "ar1_phi_per_min": sig(use["ar1_phi_per_min"]),
        "cpu_daily_amp_mean": sig(use["cpu_daily_amp_mean"]),
        "mem_level_beta": _floats(use["mem_level_beta"]),
        "mem_growth_per_hour_mean": sig(use["mem_growth_per_hour_mean"]),
        "mem_growth_per_hour_std": sig(use["mem_growth_per_hour_std"]),
        "source": (
            f"{BITBRAINS}: {use['n_vms']} VMs, {use['n_samples']} 5-min samples; "
            "u = cpu_usage_mhz / cpu_capacity_mhz, mem = mem_usage_kb / mem_capacity_kb; "
            "per VM: least-squares 24-h sinusoid on u (hour = UTC) gives level and relative "
            "amplitude; amplitude, sigma and phi over the "
            f"{use['n_active']} non-idle VMs (mean u >= {IDLE_UTIL:g}; amplitude capped at 1: "
            f"{use['n_amp_capped']} VM(s)); sigma = std of log(u + 1e-3) "
            "minus its own 24-h sinusoid; phi = lag-1 autocorrelation of that residual at 5 min, "
            f"median over VMs {use['ar1_phi_5min']:.4g} -> per min = phi**(1/5); Beta by "
            "method of moments (ddof=1) over per-VM means clipped to [0.005, 0.95] "
            f"(cpu: {use['n_cpu_mean_clipped']} VMs clipped, mem: {use['n_mem_mean_clipped']}); "
            "memory growth = least-squares slope of mem utilisation per hour, mean and std "
            "(ddof=1) over VMs; cpu peak-to-mean per VM median "
            f"{use['cpu_peak_to_mean_median']:.4g} (range {use['cpu_peak_to_mean_min']:.4g}.."
            f"{use['cpu_peak_to_mean_max']:.4g})"
        ),
    }

    # 5. lifetimes
    life = pod_lifetimes(pods)
    lt = fit_lifetimes(life)
    all_life = pod_lifetimes(pods, scheduled_only=False)
    alt_med, alt_sigma = lognormal_mle(all_life)
    with open_text(data / AZ_BINS) as fh:
        mids = parse_interval_map(fh)
    az_life, az_done = read_azure_lifetimes(data / AZ_LIFE, mids)
    az_med, az_sigma = lognormal_mle(az_life[az_done])
    say(f"lifetimes: {lt}; all pods incl. never-scheduled ({all_life.size}): median "
        f"{alt_med:.4g} s sigma {alt_sigma:.4g}; Azure bins: {az_life.size} VMs, "
        f"{100 * (1 - az_done.mean()):.3g}% still running at the cut; finished VMs lognormal "
        f"median {az_med:.4g} s sigma {az_sigma:.4g}; median over all VMs (running ones at their "
        f"bin) {np.median(az_life):.4g} s")
    lifetimes = {
        "median_s": sig(lt["median_s"]),
        "sigma": sig(lt["sigma"]),
        "min_s": sig(lt["min_s"]),
        "max_s": sig(lt["max_s"]),
        "source": (
            f"{PODS}: deletion_time - creation_time of {lt['n']} pods with both times, positive, "
            "and a scheduled_time (never-scheduled Pending pods dropped); lognormal MLE on log "
            f"lifetimes (empirical median {lt['empirical_median_s']:.4g} s); min_s fixed at 60, "
            "max_s = empirical 99th percentile; cross-check "
            f"{AZ_LIFE} + {AZ_BINS.name}: {int(az_done.sum())} finished VMs, bin mid-points, "
            f"lognormal median {az_med:.4g} s sigma {az_sigma:.4g} "
            f"({100 * (1 - az_done.mean()):.3g}% of VMs censored, not used)"
        ),
    }

    return {"workload": {"arrivals": arrivals, "apps": apps, "containers": containers,
                         "usage": usage, "lifetimes": lifetimes}}


class _FlowListDumper(yaml.SafeDumper):
    """YAML dumper that writes lists in flow style ``[a, b]`` and mappings in block style."""


_FlowListDumper.add_representer(
    list, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def to_yaml(doc: Mapping[str, Any]) -> str:
    """Serialise the fitted document (key order kept, lists inline)."""
    return yaml.dump(dict(doc), Dumper=_FlowListDumper, sort_keys=False, width=100,
                     default_flow_style=False, allow_unicode=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: ``python -m sim.fitting --data DIR [--out FILE]``."""
    ap = argparse.ArgumentParser(prog="python -m sim.fitting", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=PUBLIC_DATA_DIR,
                    help="folder of the public trace slices (default: data/public)")
    ap.add_argument("--out", type=Path, help="also write the YAML fragment here")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the tree simulation (star_prob, chain_prob)")
    ap.add_argument("--quiet", action="store_true", help="no diagnostics on stderr")
    args = ap.parse_args(argv)
    doc = fit_all(args.data, seed=args.seed, log=None if args.quiet else sys.stderr)
    text = "# Generated by: python -m sim.fitting (data/public)\n" + to_yaml(doc)
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
