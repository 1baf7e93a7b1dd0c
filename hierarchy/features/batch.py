"""Batch extraction: the feature vector of a whole usage series (NumPy, vectorised).

``usage_features`` implements the definitions of ``hierarchy.features.spec`` on arrays;
``StreamingFeatures`` computes the same numbers one sample at a time.
"""

from __future__ import annotations

import math

import numpy as np

from hierarchy.features.spec import (
    ACF_LAGS_S,
    ACF_MIN_PAIRS,
    BUCKET_S,
    CANDIDATE_PERIODS_H,
    CORE_FLOOR,
    EPS_CORES,
    EPS_GIB,
    INDEX,
    MIN_INTERVALS,
    N_USAGE,
    PERIOD_MIN_STRENGTH,
    PERIOD_NOISE_K,
    SPIKE_K,
    SPIKE_WARMUP,
)

QUANTILES = (("cpu_p50", 0.50), ("cpu_p95", 0.95), ("cpu_p99", 0.99))


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope dy/dx (0 with fewer than 2 points or no spread in x)."""
    if x.size < 2:
        return 0.0
    xc = x - x.mean()
    d = float(np.dot(xc, xc))
    return float(np.dot(xc, y - y.mean()) / d) if d > 0 else 0.0


def _pearson(a: np.ndarray, b: np.ndarray, min_n: int = 2) -> float:
    """Pearson correlation (0 with fewer than ``min_n`` pairs or a constant side)."""
    if a.size < max(min_n, 2):
        return 0.0
    ac, bc = a - a.mean(), b - b.mean()
    d = math.sqrt(float(np.dot(ac, ac)) * float(np.dot(bc, bc)))
    return float(np.clip(np.dot(ac, bc) / d, -1.0, 1.0)) if d > 0 else 0.0


def lag_buckets(lag_s: float, bucket_s: float) -> int:
    """A lag in whole buckets (0 when the lag is shorter than half a bucket: not computable)."""
    return int(round(lag_s / bucket_s))


def period_buckets(period_h: float, bucket_s: float) -> float:
    """A candidate period in buckets (a real number)."""
    return period_h * 3600.0 / bucket_s


def period_eligible(p_buckets: float, span_buckets: int) -> bool:
    """A candidate period is eligible when it spans >= 2 buckets and the data cover 2 periods."""
    return p_buckets >= 2.0 and span_buckets >= 2.0 * p_buckets


def period_threshold(n_buckets: int) -> float:
    """The strength a dominant period needs to be reported."""
    return max(PERIOD_MIN_STRENGTH, PERIOD_NOISE_K * 2.0 / max(n_buckets, 1))


def bucket_means(t_s: np.ndarray, x: np.ndarray, bucket_s: float) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """``(bucket index, mean)`` of every non-empty bucket, index 0 = the first sample's."""
    b = np.floor((t_s - t_s[0]) / bucket_s).astype(np.int64)
    idx = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    counts = np.diff(np.r_[idx, b.size])
    return b[idx], np.add.reduceat(x, idx) / counts


def _acf(bb: np.ndarray, y: np.ndarray, lag: int) -> float:
    if lag < 1:
        return 0.0
    j = np.searchsorted(bb, bb + lag)
    ok = j < bb.size
    ok[ok] = bb[j[ok]] == bb[ok] + lag
    if int(ok.sum()) < max(ACF_MIN_PAIRS, lag):
        return 0.0
    return _pearson(y[ok], y[j[ok]])


def _period(bb: np.ndarray, y: np.ndarray, bucket_s: float) -> tuple[float, float]:
    n = y.size
    var = float(np.var(y))
    if n < 2 or var <= 0.0:
        return 0.0, 0.0
    span = int(bb[-1]) + 1
    yc = y - y.mean()
    best_p, best_s = 0.0, 0.0
    for period_h in CANDIDATE_PERIODS_H:
        p = period_buckets(period_h, bucket_s)
        if not period_eligible(p, span):
            continue
        w = 2.0 * math.pi / p
        re = float(np.dot(yc, np.cos(w * bb)))
        im = float(np.dot(yc, np.sin(w * bb)))
        s = min(1.0, 2.0 * (re * re + im * im) / (n * n * var))
        if s > best_s:
            best_p, best_s = period_h, s
    return (best_p if best_s >= period_threshold(n) else 0.0), best_s


def spike_mask(x: np.ndarray) -> np.ndarray:
    """Samples above the mean + ``SPIKE_K`` std of all samples before them (causal)."""
    n = x.size
    out = np.zeros(n, dtype=bool)
    if n <= SPIKE_WARMUP:
        return out
    z = x - x[0]
    i = np.arange(1, n, dtype=np.float64)  # samples before x[1:]
    m = np.cumsum(z)[:-1] / i
    var = np.maximum(np.cumsum(z * z)[:-1] / i - m * m, 0.0)
    out[1:] = z[1:] > m + SPIKE_K * np.sqrt(var)
    out[:SPIKE_WARMUP] = False
    return out


def goh_barabasi(intervals: np.ndarray) -> float:
    """``(sigma - mu) / (sigma + mu)`` of inter-event intervals (0 with < ``MIN_INTERVALS``)."""
    if intervals.size < MIN_INTERVALS:
        return 0.0
    mu, sd = float(intervals.mean()), float(intervals.std())
    return (sd - mu) / (sd + mu) if sd + mu > 0 else 0.0


def _as_array(v: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if v is None:
        return np.full(n, np.nan)
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a


def usage_features(t_s: np.ndarray, cpu_cores: np.ndarray, mem_gib: np.ndarray | None = None,
                   net_rx_mbps: np.ndarray | None = None, net_tx_mbps: np.ndarray | None = None,
                   disk_mbps: np.ndarray | None = None, *,
                   bucket_s: float = BUCKET_S) -> np.ndarray:
    """The usage part of the feature vector (``USAGE_FEATURE_NAMES`` order), float64.

    Args:
        t_s: sample times, seconds, strictly increasing.
        cpu_cores: CPU in use at each sample, cores (finite, >= 0).
        mem_gib, net_rx_mbps, net_tx_mbps, disk_mbps: optional, NaN where not measured.
        bucket_s: bucket width for autocorrelation and periods (``spec.BUCKET_S``).

    Raises:
        ValueError: empty or mismatched arrays, non-increasing time, non-finite CPU.
    """
    t = np.asarray(t_s, dtype=np.float64)
    x = np.asarray(cpu_cores, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or x.shape != t.shape:
        raise ValueError("t_s and cpu_cores must be non-empty 1-D arrays of the same length")
    if np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("t_s must be finite and strictly increasing")
    if not np.all(np.isfinite(x)):
        raise ValueError("cpu_cores must be finite")
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    n = x.size
    mem, rx, tx, disk = (_as_array(v, n, k) for v, k in ((mem_gib, "mem_gib"),
                         (net_rx_mbps, "net_rx_mbps"), (net_tx_mbps, "net_tx_mbps"),
                         (disk_mbps, "disk_mbps")))
    f = np.zeros(N_USAGE)
    mean, std, mx = float(x.mean()), float(x.std()), float(x.max())
    f[INDEX["cpu_mean"]], f[INDEX["cpu_std"]], f[INDEX["cpu_max"]] = mean, std, mx
    f[INDEX["cpu_cv"]] = std / mean if mean > EPS_CORES else 0.0
    xs = np.sort(x)
    for name, q in QUANTILES:
        f[INDEX[name]] = xs[math.floor(q * (n - 1))]
    f[INDEX["cpu_peak_to_mean"]] = mx / mean if mean > EPS_CORES else 1.0
    th = (t - t[0]) / 3600.0
    trend = _slope(th, x)
    f[INDEX["cpu_trend_per_h"]] = trend
    f[INDEX["cpu_trend_rel_per_day"]] = 24.0 * trend / mean if mean > EPS_CORES else 0.0
    bb, y = bucket_means(t, x, bucket_s)
    for name, lag_s in zip(("cpu_acf_5min", "cpu_acf_1h", "cpu_acf_1d"), ACF_LAGS_S,
                           strict=True):
        f[INDEX[name]] = _acf(bb, y, lag_buckets(lag_s, bucket_s))
    f[INDEX["cpu_period_h"]], f[INDEX["cpu_period_strength"]] = _period(bb, y, bucket_s)
    spikes = spike_mask(x)
    total = float(x.sum())
    f[INDEX["cpu_burstiness"]] = float(x[spikes].sum()) / total if mean > EPS_CORES else 0.0
    f[INDEX["cpu_spike_clustering"]] = goh_barabasi(np.diff(np.flatnonzero(spikes))
                                                    .astype(np.float64))
    fm = np.isfinite(mem)
    if fm.any():
        mem_mean = float(mem[fm].mean())
        growth = _slope(th[fm], mem[fm])
        f[INDEX["mem_mean_gib"]] = mem_mean
        f[INDEX["mem_growth_gib_per_h"]] = growth
        f[INDEX["mem_growth_rel_per_day"]] = 24.0 * growth / mem_mean \
            if mem_mean > EPS_GIB else 0.0
        f[INDEX["cpu_mem_corr"]] = _pearson(x[fm], mem[fm], min_n=3)
    fn = np.isfinite(rx) | np.isfinite(tx)
    if fn.any():
        net = float((np.nan_to_num(rx[fn]) + np.nan_to_num(tx[fn])).mean())
        f[INDEX["net_mbps_mean"]] = net
        f[INDEX["net_mbps_per_core"]] = net / max(mean, CORE_FLOOR)
    fd = np.isfinite(disk)
    if fd.any():
        f[INDEX["disk_mbps_mean"]] = float(disk[fd].mean())
    f[INDEX["observed_h"]] = float(th[-1])
    return f
