"""Online extraction: the same feature vector, one sample at a time.

O(1) work per sample and bounded memory per container: Welford moments and co-moments
(means, variances, least-squares trends, correlations), a log-bucket quantile sketch
(``sketch.LogSketch``), a ring buffer of bucket means one day long (``ACF_LAGS_S``), one
Goertzel-style accumulator per candidate period, and running sums for the rest. ``features()``
costs O(sketch buckets + candidates) and can be called at any time: it describes what has been
observed so far, never the future.

Agreement with ``batch.usage_features`` on the same series (``tests/test_features.py``):
quantiles within the sketch's relative error ``SKETCH_ALPHA`` (absolute ``SKETCH_MIN`` near 0);
everything else equal up to floating-point rounding (relative 1e-9, for series whose standard
deviation is at least 1e-3 of their mean).
"""

from __future__ import annotations

import math

import numpy as np

from hierarchy.features.batch import (
    lag_buckets,
    period_buckets,
    period_eligible,
    period_threshold,
)
from hierarchy.features.sketch import LogSketch
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
    N_FEATURES,
    N_USAGE,
    SPIKE_K,
    SPIKE_WARMUP,
)


class CoMoment:
    """Running means, variances and covariance of pairs (x, y) (Welford; numerically stable)."""

    __slots__ = ("n", "mx", "my", "cxy", "mxx", "myy")

    def __init__(self) -> None:
        self.n = 0
        self.mx = self.my = self.cxy = self.mxx = self.myy = 0.0

    def add(self, x: float, y: float) -> None:
        self.n += 1
        dx = x - self.mx
        self.mx += dx / self.n
        dy = y - self.my
        self.my += dy / self.n
        self.cxy += dx * (y - self.my)
        self.mxx += dx * (x - self.mx)
        self.myy += dy * (y - self.my)

    def slope(self) -> float:
        """Least-squares dy/dx (0 with < 2 pairs or no spread in x)."""
        return self.cxy / self.mxx if self.n >= 2 and self.mxx > 0 else 0.0

    def corr(self, min_n: int = 2) -> float:
        """Pearson correlation (0 with < ``min_n`` pairs or a constant side)."""
        d = math.sqrt(self.mxx * self.myy)
        if self.n < max(min_n, 2) or d <= 0:
            return 0.0
        return max(-1.0, min(1.0, self.cxy / d))


class _Buckets:
    """Bucket-mean statistics: lagged pairs (autocorrelation) and spectral accumulators."""

    def __init__(self, bucket_s: float) -> None:
        self.lags = [lag_buckets(s, bucket_s) for s in ACF_LAGS_S]
        self.size = max(self.lags) + 1
        self.ring_b = [-1] * self.size
        self.ring_y = [0.0] * self.size
        self.pairs = [CoMoment() for _ in self.lags]
        self.periods = [period_buckets(p, bucket_s) for p in CANDIDATE_PERIODS_H]
        self.omega = [2.0 * math.pi / p for p in self.periods]
        self.re_y = [0.0] * len(self.periods)  # sum (y - shift) cos(w b)
        self.im_y = [0.0] * len(self.periods)
        self.re_1 = [0.0] * len(self.periods)  # sum cos(w b)
        self.im_1 = [0.0] * len(self.periods)
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.shift = math.nan
        self.last_b = -1

    def copy(self) -> _Buckets:
        c = object.__new__(_Buckets)
        c.__dict__.update({k: (list(v) if isinstance(v, list) else v)
                           for k, v in self.__dict__.items()})
        c.pairs = [_copy_cm(p) for p in self.pairs]
        return c

    def add(self, b: int, y: float) -> None:
        """One closed bucket: index ``b`` (from the first sample's), mean ``y``."""
        if self.n == 0:
            self.shift = y
        self.n += 1
        d = y - self.mean
        self.mean += d / self.n
        self.m2 += d * (y - self.mean)
        for k, lag in enumerate(self.lags):
            if 1 <= lag <= b:
                slot = (b - lag) % self.size
                if self.ring_b[slot] == b - lag:
                    self.pairs[k].add(self.ring_y[slot], y)
        self.ring_b[b % self.size] = b
        self.ring_y[b % self.size] = y
        ys = y - self.shift
        for k, w in enumerate(self.omega):
            c, s = math.cos(w * b), math.sin(w * b)
            self.re_y[k] += ys * c
            self.im_y[k] += ys * s
            self.re_1[k] += c
            self.im_1[k] += s
        self.last_b = b

    def acf(self, k: int) -> float:
        lag = self.lags[k]
        if lag < 1 or self.pairs[k].n < max(ACF_MIN_PAIRS, lag):
            return 0.0
        return self.pairs[k].corr()

    def period(self) -> tuple[float, float]:
        n = self.n
        var = self.m2 / n if n else 0.0
        if n < 2 or var <= 0.0:
            return 0.0, 0.0
        off = self.mean - self.shift
        best_p, best_s = 0.0, 0.0
        for k, p in enumerate(self.periods):
            if not period_eligible(p, self.last_b + 1):
                continue
            re = self.re_y[k] - off * self.re_1[k]
            im = self.im_y[k] - off * self.im_1[k]
            s = min(1.0, 2.0 * (re * re + im * im) / (n * n * var))
            if s > best_s:
                best_p, best_s = CANDIDATE_PERIODS_H[k], s
        return (best_p if best_s >= period_threshold(n) else 0.0), best_s


def _copy_cm(c: CoMoment) -> CoMoment:
    d = CoMoment()
    d.n, d.mx, d.my, d.cxy, d.mxx, d.myy = c.n, c.mx, c.my, c.cxy, c.mxx, c.myy
    return d


class StreamingFeatures:
    """The feature vector of one container, updated one sample at a time.

    Example::

        sf = StreamingFeatures()
        for t, cpu, mem in samples:
            sf.update(t, cpu, mem)
        vec = sf.features()          # FEATURE_NAMES order, float64

    Memory: about 300 floats of ring buffer (one day of 5-min buckets), the quantile sketch
    (at most ~800 counters), and a few dozen scalars.
    """

    def __init__(self, bucket_s: float = BUCKET_S, graph: np.ndarray | None = None) -> None:
        """Args: ``bucket_s`` as in ``usage_features``; ``graph``: the container's call-graph
        features (``graph_features``), static, copied into every ``features()`` vector."""
        if bucket_s <= 0:
            raise ValueError("bucket_s must be > 0")
        self.bucket_s = bucket_s
        self.graph = np.zeros(N_FEATURES - N_USAGE) if graph is None \
            else np.asarray(graph, dtype=np.float64).copy()
        self.t0 = math.nan
        self.t_last = math.nan
        self.cpu = CoMoment()      # (hours since t0, cpu): mean, variance, trend
        self.mem = CoMoment()      # (hours, mem): mean, growth
        self.cpu_mem = CoMoment()  # (cpu, mem): correlation
        self.sketch = LogSketch()
        self.max = -math.inf
        self.total = 0.0
        self.spike_total = 0.0
        self.last_spike = -1
        self.intervals = CoMoment()  # (interval, interval): mean and variance of intervals
        self.net_sum = 0.0
        self.net_n = 0
        self.disk_sum = 0.0
        self.disk_n = 0
        self.buckets = _Buckets(bucket_s)
        self.cur_b = -1
        self.cur_sum = 0.0
        self.cur_n = 0

    @property
    def n(self) -> int:
        """Samples seen."""
        return self.cpu.n

    def update(self, t_s: float, cpu_cores: float, mem_gib: float = math.nan,
               net_rx_mbps: float = math.nan, net_tx_mbps: float = math.nan,
               disk_mbps: float = math.nan) -> None:
        """Add one sample (``t_s`` strictly after the previous one; NaN = not measured)."""
        if not math.isfinite(cpu_cores) or not math.isfinite(t_s):
            raise ValueError("t_s and cpu_cores must be finite")
        i = self.cpu.n
        if i == 0:
            self.t0 = t_s
        elif t_s <= self.t_last:
            raise ValueError(f"t_s {t_s} is not after the previous sample {self.t_last}")
        self.t_last = t_s
        h = (t_s - self.t0) / 3600.0
        # Spike test against the samples before this one (causal), then update the moments.
        if i >= SPIKE_WARMUP:
            sd = math.sqrt(max(self.cpu.myy / i, 0.0))
            if cpu_cores > self.cpu.my + SPIKE_K * sd:
                self.spike_total += cpu_cores
                if self.last_spike >= 0:
                    gap = float(i - self.last_spike)
                    self.intervals.add(gap, gap)
                self.last_spike = i
        self.cpu.add(h, cpu_cores)
        self.sketch.add(cpu_cores)
        self.max = max(self.max, cpu_cores)
        self.total += cpu_cores
        if math.isfinite(mem_gib):
            self.mem.add(h, mem_gib)
            self.cpu_mem.add(cpu_cores, mem_gib)
        rx_ok, tx_ok = math.isfinite(net_rx_mbps), math.isfinite(net_tx_mbps)
        if rx_ok or tx_ok:
            self.net_sum += (net_rx_mbps if rx_ok else 0.0) + (net_tx_mbps if tx_ok else 0.0)
            self.net_n += 1
        if math.isfinite(disk_mbps):
            self.disk_sum += disk_mbps
            self.disk_n += 1
        b = math.floor((t_s - self.t0) / self.bucket_s)
        if b != self.cur_b:
            if self.cur_n:
                self.buckets.add(self.cur_b, self.cur_sum / self.cur_n)
            self.cur_b, self.cur_sum, self.cur_n = b, 0.0, 0
        self.cur_sum += cpu_cores
        self.cur_n += 1

    def features(self) -> np.ndarray:
        """The feature vector so far (``FEATURE_NAMES`` order; zeros before any sample)."""
        f = np.zeros(N_FEATURES)
        f[N_USAGE:] = self.graph
        n = self.cpu.n
        if n == 0:
            return f
        mean = self.cpu.my
        std = math.sqrt(max(self.cpu.myy / n, 0.0))
        f[INDEX["cpu_mean"]], f[INDEX["cpu_std"]], f[INDEX["cpu_max"]] = mean, std, self.max
        f[INDEX["cpu_cv"]] = std / mean if mean > EPS_CORES else 0.0
        for name, q in (("cpu_p50", 0.50), ("cpu_p95", 0.95), ("cpu_p99", 0.99)):
            f[INDEX[name]] = self.sketch.quantile(q)
        f[INDEX["cpu_peak_to_mean"]] = self.max / mean if mean > EPS_CORES else 1.0
        trend = self.cpu.slope()
        f[INDEX["cpu_trend_per_h"]] = trend
        f[INDEX["cpu_trend_rel_per_day"]] = 24.0 * trend / mean if mean > EPS_CORES else 0.0
        bk = self.buckets.copy()
        if self.cur_n:
            bk.add(self.cur_b, self.cur_sum / self.cur_n)
        for k, name in enumerate(("cpu_acf_5min", "cpu_acf_1h", "cpu_acf_1d")):
            f[INDEX[name]] = bk.acf(k)
        f[INDEX["cpu_period_h"]], f[INDEX["cpu_period_strength"]] = bk.period()
        f[INDEX["cpu_burstiness"]] = self.spike_total / self.total if mean > EPS_CORES else 0.0
        iv = self.intervals
        if iv.n >= MIN_INTERVALS:
            mu, sd = iv.mx, math.sqrt(max(iv.mxx / iv.n, 0.0))
            f[INDEX["cpu_spike_clustering"]] = (sd - mu) / (sd + mu) if sd + mu > 0 else 0.0
        if self.mem.n:
            mem_mean = self.mem.my
            growth = self.mem.slope()
            f[INDEX["mem_mean_gib"]] = mem_mean
            f[INDEX["mem_growth_gib_per_h"]] = growth
            f[INDEX["mem_growth_rel_per_day"]] = 24.0 * growth / mem_mean \
                if mem_mean > EPS_GIB else 0.0
            f[INDEX["cpu_mem_corr"]] = self.cpu_mem.corr(min_n=3)
        if self.net_n:
            net = self.net_sum / self.net_n
            f[INDEX["net_mbps_mean"]] = net
            f[INDEX["net_mbps_per_core"]] = net / max(mean, CORE_FLOOR)
        if self.disk_n:
            f[INDEX["disk_mbps_mean"]] = self.disk_sum / self.disk_n
        f[INDEX["observed_h"]] = (self.t_last - self.t0) / 3600.0
        return f
