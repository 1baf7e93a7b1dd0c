"""Per-service behaviour statistics, updated online from observed usage only.

A container's behaviour before it runs can only come from earlier instances of the same
service. One row of `N_STATS` floats holds what has been observed of one (service, container
position): the simulator keeps a (copies, services, positions, N_STATS) array and updates it
every tick from each running container's measured usage; the edge agent can keep one row per
service it has seen in its telemetry. Both read predictions through `predict_row`, so a
container's features at placement depend only on samples taken before that instant.

Usage is relative to the container's request (CPU cores used / cores requested, memory in use
/ memory requested). Means and variances are exponentially weighted with weight
max(1/n, 1/`MEMORY_SAMPLES`): an exact running mean over the first samples, then a moving
window of about `MEMORY_SAMPLES` samples (so a service whose behaviour drifts is followed).
The p95 of CPU is taken from the mean and spread of log(u + `LOG_FLOOR`) (usage is close to
lognormal: `docs/workload-fit.md`), the p95 of memory as mean + 1.645 sd.

The behaviour class is the nearest centroid of `models/behaviour_classes.json` in the
clustering features an online monitor can follow over hours: mean CPU (log cores), CV, peak
to mean and burstiness (`ONLINE_CLUSTER_FEATURES`); the autocorrelations, periods and trends
need days of one series and are left out. The loops are plain Python that numba compiles
where it is installed (`hierarchy.jit`).
"""

from __future__ import annotations

import math

import numpy as np

from hierarchy.features.classes import (
    CLASS_NAMES,
    CLUSTER_FEATURES,
    LOG_FLOOR_CORES,
    BehaviourClasses,
    load_classes,
)
from hierarchy.jit import compiled

# Columns of a statistics row.
S_N, S_MEAN, S_M2, S_LOG_MEAN, S_LOG_M2, S_MEM_MEAN, S_MEM_M2, S_PEAK, S_SPIKE, S_TOTAL = range(10)
# The app's response against its SLO, kept in the row of the service's entry (position 0):
# samples and moving mean of response / SLO while some container ran on a slow node, and
# while all ran on nodes at least as fast as the reference core (`update_response`).
S_RESP_SLOW_N, S_RESP_SLOW, S_RESP_FAST_N, S_RESP_FAST = range(10, 14)
N_STATS = 14

SAMPLE_EVERY_S = 300.0
"""The simulator samples usage into the statistics every 5 minutes, as the monitors behind
the traces do (Bitbrains, PlanetLab, Azure), not every tick: it is also 5x cheaper."""
MEMORY_SAMPLES = 240.0
"""Samples after which the statistics become a moving window (20 h of 5-min samples)."""
MIN_SAMPLES = 5
"""A service counts as seen after this many samples of the position."""
LOG_FLOOR = 1e-3
"""Usage floor of the log transform, in units of the request."""
Z95 = 1.6448536269514722
SPIKE_WARMUP = 12
"""A sample can be a spike once this many samples came before it (as in `StreamingFeatures`)."""
HISTORY_HALF = 100.0
"""`history` feature = n / (n + HISTORY_HALF): how much has been seen, in [0, 1)."""

SLOW_SPEED = 1.0
"""A node slower than this (the scenario's reference core) counts as slow for the response
statistics: on `default`, the Raspberry Pis (0.7) are slow, the N100s (1.0) are not."""
RESPONSE_MEMORY = 24.0
"""Samples after which the response statistics become a moving window (2 h of 5-min samples):
an app's response follows its load, which moves over the day."""
RESPONSE_RATIO_CAP = 4.0
"""Response / SLO is capped here before it is averaged: one overloaded sample of a queue near
saturation says "violates", not by how much."""

ONLINE_CLUSTER_FEATURES = ("log_cpu_mean", "cpu_cv", "log_peak_to_mean", "cpu_burstiness")
ONLINE_DIMS = np.array([CLUSTER_FEATURES.index(f) for f in ONLINE_CLUSTER_FEATURES])
UNKNOWN_CLASS = -1


@compiled
def update_row(row, cpu_frac, mem_frac):
    """Add one observed sample (CPU and memory used, as fractions of the request) to `row`."""
    n = row[S_N] + 1.0
    w = max(1.0 / n, 1.0 / MEMORY_SAMPLES)
    # Spikes are judged against the statistics before this sample (causal, as in batch).
    sd = math.sqrt(max(row[S_M2], 0.0))
    spike = row[S_N] >= SPIKE_WARMUP and cpu_frac > row[S_MEAN] + 2.0 * sd
    d = cpu_frac - row[S_MEAN]
    row[S_MEAN] += w * d
    row[S_M2] = (1.0 - w) * (row[S_M2] + w * d * d)
    x = math.log(cpu_frac + LOG_FLOOR)
    d = x - row[S_LOG_MEAN]
    row[S_LOG_MEAN] += w * d
    row[S_LOG_M2] = (1.0 - w) * (row[S_LOG_M2] + w * d * d)
    d = mem_frac - row[S_MEM_MEAN]
    row[S_MEM_MEAN] += w * d
    row[S_MEM_M2] = (1.0 - w) * (row[S_MEM_M2] + w * d * d)
    row[S_PEAK] = max(row[S_PEAK], cpu_frac)
    row[S_SPIKE] = (1.0 - w) * row[S_SPIKE] + (w * cpu_frac if spike else 0.0)
    row[S_TOTAL] = (1.0 - w) * row[S_TOTAL] + w * cpu_frac
    row[S_N] = n


@compiled
def update_response(row, ratio, slow):
    """Add one observed response / SLO of the service's app to `row` (its entry's row):
    `slow` when one of the app's containers ran on a node slower than SLOW_SPEED."""
    n_col = S_RESP_SLOW_N if slow else S_RESP_FAST_N
    n = row[n_col] + 1.0
    w = max(1.0 / n, 1.0 / RESPONSE_MEMORY)
    row[n_col + 1] += w * (min(ratio, RESPONSE_RATIO_CAP) - row[n_col + 1])
    row[n_col] = n


@compiled
def response_of_row(row, out):
    """Fill `out` (4,) with the response statistics of an entry row: (samples on a slow node,
    mean response / SLO there, samples on fast nodes only, mean response / SLO there)."""
    out[0] = row[S_RESP_SLOW_N]
    out[1] = row[S_RESP_SLOW]
    out[2] = row[S_RESP_FAST_N]
    out[3] = row[S_RESP_FAST]


@compiled
def predict_row(row, cpu_req, cls_mean, cls_scale, cls_centroids, cls_names, out):
    """Fill `out` (5,) with (samples, p95 CPU / request, p95 memory / request, CPU CV, class).

    The class is an index into CLASS_NAMES, UNKNOWN_CLASS (-1) with fewer than MIN_SAMPLES
    samples, when everything else is 0 too. `cpu_req` (cores) turns the mean into cores.
    """
    n = row[S_N]
    out[0] = n
    if n < MIN_SAMPLES:
        out[1] = out[2] = out[3] = 0.0
        out[4] = UNKNOWN_CLASS
        return
    mean = max(row[S_MEAN], 0.0)
    sd = math.sqrt(max(row[S_M2], 0.0))
    log_sd = math.sqrt(max(row[S_LOG_M2], 0.0))
    out[1] = max(math.exp(row[S_LOG_MEAN] + Z95 * log_sd) - LOG_FLOOR, 0.0)
    out[2] = max(row[S_MEM_MEAN] + Z95 * math.sqrt(max(row[S_MEM_M2], 0.0)), 0.0)
    cv = sd / mean if mean * cpu_req > 1e-3 else 0.0
    out[3] = cv
    peak_to_mean = row[S_PEAK] / mean if mean * cpu_req > 1e-3 else 1.0
    burst = row[S_SPIKE] / row[S_TOTAL] if mean * cpu_req > 1e-3 and row[S_TOTAL] > 0 else 0.0
    z0 = (math.log10(mean * cpu_req + LOG_FLOOR_CORES) - cls_mean[0]) / cls_scale[0]
    z1 = (min(max(cv, 0.0), 5.0) - cls_mean[1]) / cls_scale[1]
    z2 = (min(max(math.log10(max(peak_to_mean, 1.0)), 0.0), 2.0) - cls_mean[2]) / cls_scale[2]
    z3 = (burst - cls_mean[3]) / cls_scale[3]
    best = 0
    best_d = 1e300
    for c in range(cls_centroids.shape[0]):
        dist = ((z0 - cls_centroids[c, 0]) ** 2 + (z1 - cls_centroids[c, 1]) ** 2
                + (z2 - cls_centroids[c, 2]) ** 2 + (z3 - cls_centroids[c, 3]) ** 2)
        if dist < best_d:
            best_d = dist
            best = c
    out[4] = cls_names[best]


@compiled
def predicted_size_fracs(seen, pred_cpu, pred_mem, margin, min_frac):
    """(CPU, memory) allocation as fractions of the request for predicted-p95 sizing:
    p95 x (1 + margin), within [min_frac, 1]; the request itself for an unknown service."""
    if not seen:
        return 1.0, 1.0
    cpu = min(max(pred_cpu * (1.0 + margin), min_frac), 1.0)
    mem = min(max(pred_mem * (1.0 + margin), min_frac), 1.0)
    return cpu, mem


class OnlineClasses:
    """The behaviour classes restricted to the online features, as kernel-ready arrays."""

    def __init__(self, classes: BehaviourClasses | None = None) -> None:
        c = classes if classes is not None else load_classes()
        self.mean = np.ascontiguousarray(c.mean[ONLINE_DIMS])
        self.scale = np.ascontiguousarray(c.scale[ONLINE_DIMS])
        self.centroids = np.ascontiguousarray(c.centroids[:, ONLINE_DIMS])
        self.names = np.array([CLASS_NAMES.index(n) for n in c.names], dtype=np.int64)

    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.mean, self.scale, self.centroids, self.names


_DEFAULT: OnlineClasses | None = None


def default_online_classes() -> OnlineClasses:
    """The shipped classes file, loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = OnlineClasses()
    return _DEFAULT


class ServiceStats:
    """Per-service statistics for a live agent: one row per (service, position) key.

    `observe(key, cpu_cores, cpu_req, mem_gib, mem_req)` after each telemetry sample of a
    running container; `predict(key, cpu_req)` before placing a new one (unknown keys give
    the "unknown service" prediction). Rows are bounded by `max_keys` (oldest dropped).
    """

    def __init__(self, classes: OnlineClasses | None = None, max_keys: int = 4096) -> None:
        self.classes = classes if classes is not None else default_online_classes()
        self.max_keys = max_keys
        self.rows: dict[object, np.ndarray] = {}

    def observe(self, key: object, cpu_cores: float, cpu_req: float, mem_gib: float,
                mem_req: float) -> None:
        update_row(self._row(key), cpu_cores / max(cpu_req, 1e-9),
                   mem_gib / max(mem_req, 1e-9))

    def _row(self, key: object) -> np.ndarray:
        """The row of `key`, made most recently used (a new one if unknown)."""
        row = self.rows.pop(key, None)
        if row is None:
            row = np.zeros(N_STATS)
            if len(self.rows) >= self.max_keys:
                self.rows.pop(next(iter(self.rows)))
        self.rows[key] = row  # most recently used last
        return row

    def observe_response(self, key: object, response_ms: float, slo_ms: float,
                         slow: bool) -> None:
        """After a sample of an app's response: `key` is its entry container's key, `slow`
        whether one of its containers ran on a node slower than SLOW_SPEED."""
        update_response(self._row(key), response_ms / max(slo_ms, 1e-9), slow)

    def response(self, key: object) -> np.ndarray:
        """(4,) the response statistics of `key` (response_of_row), zeros when unknown."""
        out = np.zeros(4)
        response_of_row(self.rows.get(key, np.zeros(N_STATS)), out)
        return out

    def predict(self, key: object, cpu_req: float) -> tuple[float, float, float, float, int]:
        """(samples, p95 CPU / request, p95 memory / request, CPU CV, class index or -1)."""
        out = np.zeros(5)
        predict_row(self.rows.get(key, np.zeros(N_STATS)), cpu_req, *self.classes.args(), out)
        return float(out[0]), float(out[1]), float(out[2]), float(out[3]), int(out[4])
