"""The container-behaviour feature vector: names, order, version and the constants that define
each feature. Both extractors (``batch.py``, ``streaming.py``) implement exactly these
definitions; ``docs/features.md`` explains them with their units.

Changing a definition, a constant below or the order of ``FEATURE_NAMES`` changes what a
trained actor sees: bump ``FEATURES_VERSION``.
"""

from __future__ import annotations

FEATURES_VERSION = 1

USAGE_FEATURE_NAMES: tuple[str, ...] = (
    "cpu_mean",                 # cores, mean over samples
    "cpu_std",                  # cores, population standard deviation
    "cpu_cv",                   # std / mean (0 when mean <= EPS_CORES)
    "cpu_p50",                  # cores, order statistic at rank floor(q (n-1))
    "cpu_p95",
    "cpu_p99",
    "cpu_max",                  # cores
    "cpu_peak_to_mean",         # max / mean (1 when mean <= EPS_CORES)
    "cpu_trend_per_h",          # cores per hour, least-squares slope against t_s
    "cpu_trend_rel_per_day",    # 24 * trend / mean (0 when mean <= EPS_CORES)
    "cpu_acf_5min",             # Pearson correlation of bucket means BUCKET apart (see ACF_LAGS_S)
    "cpu_acf_1h",
    "cpu_acf_1d",
    "cpu_period_h",             # dominant period among CANDIDATE_PERIODS_H, hours (0 = none)
    "cpu_period_strength",      # share of bucket-mean variance at that period, [0, 1]
    "cpu_burstiness",           # share of CPU (core-seconds) used in spikes, [0, 1]
    "cpu_spike_clustering",     # Goh-Barabasi B of inter-spike intervals, [-1, 1]
    "mem_mean_gib",             # GiB, over samples where memory is known (0 if none)
    "mem_growth_gib_per_h",     # GiB per hour, least-squares slope
    "mem_growth_rel_per_day",   # 24 * growth / mem_mean (0 when mem_mean <= EPS_GIB)
    "cpu_mem_corr",             # Pearson correlation of CPU and memory samples
    "net_mbps_mean",            # Mbit/s, mean of rx + tx where measured (0 if never)
    "net_mbps_per_core",        # net_mbps_mean / max(cpu_mean, CORE_FLOOR)
    "disk_mbps_mean",           # Mbit/s where measured (0 if never)
    "observed_h",               # hours between the first and the last sample
)

GRAPH_FEATURE_NAMES: tuple[str, ...] = (
    "cg_fan_in",                # distinct callers (USER counts), self-calls excluded
    "cg_fan_out",               # distinct callees, self-calls excluded
    "cg_depth",                 # hops from USER on a shortest path (entry = 1; 0 unreachable)
    "cg_calls_per_request",     # calls into the container per user request (sum of in-weights)
    "cg_bytes_per_request",     # bytes in and out per user request (sum of weight * bytes)
    "cg_app_size",              # containers in the application (nodes but USER)
    "cg_app_depth",             # the application's largest cg_depth
)

FEATURE_NAMES: tuple[str, ...] = USAGE_FEATURE_NAMES + GRAPH_FEATURE_NAMES
"""The full vector: usage features then call-graph features (zeros when there is no graph)."""

N_USAGE = len(USAGE_FEATURE_NAMES)
N_FEATURES = len(FEATURE_NAMES)
INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

# --- constants that define the features -------------------------------------------------------

BUCKET_S = 300.0
"""Autocorrelation and periods are computed on the means of the samples in consecutive
buckets of this many seconds (bucket ``floor((t - t_first) / BUCKET_S)``), so that the lag
buffers stay small whatever the sampling rate. Use the sampling step instead when samples are
further apart than this."""

ACF_LAGS_S = (300.0, 3600.0, 86400.0)
"""Lags of ``cpu_acf_5min``, ``cpu_acf_1h``, ``cpu_acf_1d`` (seconds)."""

ACF_MIN_PAIRS = 6
"""An autocorrelation is reported (else 0) when at least ``max(ACF_MIN_PAIRS, lag in buckets)``
bucket pairs exactly one lag apart exist: a daily autocorrelation needs two days."""

CANDIDATE_PERIODS_H = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 24.0, 168.0)
"""Periods (hours) whose spectral power is tracked (one Goertzel-style accumulator each). A
candidate is eligible when the observed span covers two periods and a period spans at least
two buckets."""

PERIOD_MIN_STRENGTH = 0.05
PERIOD_NOISE_K = 5.0
"""The dominant period is reported (else 0) when its strength is at least
``max(PERIOD_MIN_STRENGTH, PERIOD_NOISE_K * 2 / n_buckets)``; white noise has an expected
strength of ``2 / n`` at any one frequency."""

SPIKE_K = 2.0
SPIKE_WARMUP = 12
"""Sample ``i >= SPIKE_WARMUP`` is a spike when it exceeds the mean plus ``SPIKE_K`` standard
deviations of the samples *before* it (causal: a spike is judged on the past only)."""

MIN_INTERVALS = 3
"""``cpu_spike_clustering`` needs this many inter-spike intervals (else 0)."""

EPS_CORES = 1e-3
"""A mean CPU at or below one millicore is "nothing": ratios to it (CV, peak-to-mean, relative
trend, burstiness) are reported as their neutral values (0, 1, 0, 0)."""
EPS_GIB = 1e-6
CORE_FLOOR = 0.01
"""Denominator floor (cores) of ``net_mbps_per_core``."""

SKETCH_ALPHA = 0.01
SKETCH_MIN = 1e-4
"""The streaming quantiles come from a log-bucket sketch (DDSketch): relative error at most
``SKETCH_ALPHA`` for values above ``SKETCH_MIN`` cores; smaller values are reported as 0."""
