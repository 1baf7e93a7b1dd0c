"""Behaviour features: known answers, streaming versus batch, call graphs, classes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hierarchy.features import (
    CLASS_NAMES,
    FEATURE_NAMES,
    FEATURES_VERSION,
    GRAPH_FEATURE_NAMES,
    INDEX,
    N_FEATURES,
    N_USAGE,
    StreamingFeatures,
    classify,
    extract,
    graph_features,
    load_classes,
    usage_features,
)
from hierarchy.features.classes import CLUSTER_FEATURES, cluster_vector, name_centroid
from hierarchy.features.fit_classes import fit
from hierarchy.features.kmeans import kmeans
from hierarchy.features.sketch import LogSketch
from hierarchy.features.spec import CANDIDATE_PERIODS_H, SKETCH_ALPHA, SKETCH_MIN
from hierarchy.traces import UsageSeries, parse_callgraph

QUANTILES = ("cpu_p50", "cpu_p95", "cpu_p99")
DAY = 86400.0


def grid(days: float, step_s: float = 300.0) -> np.ndarray:
    return np.arange(0.0, days * DAY, step_s)


def feat(f: np.ndarray, name: str) -> float:
    return float(f[INDEX[name]])


def streamed(t: np.ndarray, cpu: np.ndarray, mem: np.ndarray | None = None,
             **kw: float) -> np.ndarray:
    sf = StreamingFeatures(**kw)
    m = np.full(t.size, np.nan) if mem is None else mem
    for a, b, c in zip(t.tolist(), cpu.tolist(), m.tolist(), strict=True):
        sf.update(a, b, c)
    return sf.features()


def assert_agree(stream: np.ndarray, batch: np.ndarray) -> None:
    """The documented tolerances: quantiles within the sketch's relative error (absolute
    SKETCH_MIN near 0), everything else equal up to rounding (1e-9)."""
    for i, name in enumerate(FEATURE_NAMES[:N_USAGE]):
        s, b = stream[i], batch[i]
        if name in QUANTILES:
            assert abs(s - b) <= SKETCH_ALPHA * b + SKETCH_MIN + 1e-12, (name, s, b)
        else:
            assert s == pytest.approx(b, rel=1e-9, abs=1e-9), (name, s, b)


# ------------------------------------------------------------------------------- the layout


def test_layout_is_fixed_and_versioned() -> None:
    assert isinstance(FEATURES_VERSION, int) and FEATURES_VERSION >= 1
    assert len(FEATURE_NAMES) == N_FEATURES == len(set(FEATURE_NAMES))
    assert FEATURE_NAMES[N_USAGE:] == GRAPH_FEATURE_NAMES
    assert FEATURE_NAMES[:3] == ("cpu_mean", "cpu_std", "cpu_cv")


# ---------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("period_h", [1.0, 6.0, 24.0])
def test_sine_of_period_p_gives_p(period_h: float) -> None:
    t = grid(4)
    rng = np.random.default_rng(1)
    cpu = 2.0 + np.sin(2 * np.pi * t / (period_h * 3600)) + 0.05 * rng.standard_normal(t.size)
    f = usage_features(t, cpu)
    assert feat(f, "cpu_period_h") == period_h
    assert feat(f, "cpu_period_strength") > 0.9
    assert_agree(streamed(t, cpu), f)


def test_daily_sine_has_daily_autocorrelation() -> None:
    t = grid(3)
    f = usage_features(t, 1.0 + 0.5 * np.sin(2 * np.pi * t / DAY))
    assert feat(f, "cpu_acf_1d") == pytest.approx(1.0, abs=1e-6)
    assert feat(f, "cpu_acf_5min") > 0.99
    one_day = usage_features(t[t < DAY], np.ones(int(DAY / 300)))
    assert feat(one_day, "cpu_acf_1d") == 0.0         # one day cannot show a daily lag


def test_constant_gives_cv_zero() -> None:
    t = grid(2)
    f = usage_features(t, np.full(t.size, 1.5), np.full(t.size, 4.0))
    for name in ("cpu_std", "cpu_cv", "cpu_trend_per_h", "cpu_acf_1h", "cpu_period_h",
                 "cpu_period_strength", "cpu_burstiness", "mem_growth_gib_per_h",
                 "cpu_mem_corr"):
        assert feat(f, name) == 0.0, name
    assert feat(f, "cpu_mean") == feat(f, "cpu_p95") == feat(f, "cpu_max") == 1.5
    assert feat(f, "cpu_peak_to_mean") == 1.0 and feat(f, "mem_mean_gib") == 4.0
    assert feat(f, "observed_h") == pytest.approx(48.0 - 300 / 3600)


def test_ramp_gives_its_slope() -> None:
    t = np.cumsum(np.random.default_rng(2).uniform(10, 600, 500))  # irregular sampling
    cpu = 0.5 + 0.2 * (t / 3600.0)
    mem = 3.0 - 0.01 * (t / 3600.0)
    f = usage_features(t, cpu, mem)
    assert feat(f, "cpu_trend_per_h") == pytest.approx(0.2, rel=1e-9)
    assert feat(f, "mem_growth_gib_per_h") == pytest.approx(-0.01, rel=1e-9)
    assert feat(f, "cpu_trend_rel_per_day") == pytest.approx(24 * 0.2 / feat(f, "cpu_mean"))
    assert feat(f, "cpu_mem_corr") == pytest.approx(-1.0)
    assert_agree(streamed(t, cpu, mem), f)


def test_spike_train_gives_high_burstiness() -> None:
    t = grid(2)
    rng = np.random.default_rng(3)
    base = 0.1 + 0.005 * rng.standard_normal(t.size)
    spikes = base.copy()
    spikes[20::24] = 4.0                                  # one spike every 2 h
    noise = 1.0 + 0.1 * rng.standard_normal(t.size)
    f_spk, f_noise = usage_features(t, spikes), usage_features(t, base + noise)
    assert feat(f_spk, "cpu_burstiness") > 0.5
    assert feat(f_noise, "cpu_burstiness") < 0.05
    assert feat(f_spk, "cpu_spike_clustering") == pytest.approx(-1.0)  # perfectly regular
    assert feat(f_spk, "cpu_peak_to_mean") > 10
    clustered = base.copy()
    for start in (100, 300, 500):                         # three bursts of five spikes
        clustered[start:start + 10:2] = 4.0
    assert feat(usage_features(t, clustered), "cpu_spike_clustering") > 0.3
    assert_agree(streamed(t, spikes), f_spk)


def test_network_and_disk_intensity() -> None:
    t = grid(0.5)
    cpu = np.full(t.size, 2.0)
    rx, tx = np.full(t.size, 10.0), np.full(t.size, np.nan)
    tx[::2] = 6.0
    f = usage_features(t, cpu, None, rx, tx, np.full(t.size, 1.0))
    assert feat(f, "net_mbps_mean") == pytest.approx(13.0)
    assert feat(f, "net_mbps_per_core") == pytest.approx(6.5)
    assert feat(f, "disk_mbps_mean") == 1.0
    assert feat(f, "mem_mean_gib") == 0.0             # never measured


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        usage_features(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        usage_features(np.array([0.0, 1.0]), np.array([1.0, np.nan]))
    sf = StreamingFeatures()
    sf.update(10.0, 1.0)
    with pytest.raises(ValueError, match="not after"):
        sf.update(10.0, 1.0)


# ------------------------------------------------------------------- streaming equals batch


@pytest.mark.parametrize("seed", range(4))
def test_streaming_equals_batch_on_irregular_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    t = np.cumsum(rng.choice([10.0, 60.0, 300.0, 3600.0], size=n, p=[.3, .4, .29, .01]))
    cpu = np.abs(1 + np.sin(t / 7000) + 0.3 * rng.standard_normal(n)) * rng.choice([1, 8], n,
                                                                                   p=[.97, .03])
    mem = 2 + 0.001 * t / 3600 + 0.1 * rng.standard_normal(n)
    mem[rng.random(n) < 0.2] = np.nan
    assert_agree(streamed(t, cpu, mem), usage_features(t, cpu, mem))


def test_streaming_describes_the_past_only() -> None:
    t = grid(3)
    cpu = 1 + 0.5 * np.sin(2 * np.pi * t / DAY) + 0.1 * np.random.default_rng(4).random(t.size)
    sf = StreamingFeatures()
    for i, (a, b) in enumerate(zip(t.tolist(), cpu.tolist(), strict=True)):
        sf.update(a, b)
        if i in (5, 400, 700):
            assert_agree(sf.features(), usage_features(t[:i + 1], cpu[:i + 1]))
    assert len(sf.sketch.bins) < 300 and len(sf.buckets.ring_y) == 289   # bounded state


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1.0, 900.0), st.floats(0.0, 50.0)), min_size=1,
                max_size=200))
def test_streaming_equals_batch_property(samples: list[tuple[float, float]]) -> None:
    t = np.cumsum([s[0] for s in samples])
    cpu = np.array([s[1] for s in samples])
    assert_agree(streamed(t, cpu), usage_features(t, cpu))


def test_sketch_accuracy() -> None:
    x = np.random.default_rng(5).lognormal(0, 2, 20000)
    sk = LogSketch()
    for v in x.tolist():
        sk.add(v)
    xs = np.sort(x)
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        true = xs[math.floor(q * (x.size - 1))]
        assert abs(sk.quantile(q) - true) <= SKETCH_ALPHA * true + SKETCH_MIN
    assert len(sk.bins) < 2000


# ------------------------------------------------------------------------------ call graphs


def test_graph_features_known_answers() -> None:
    g = parse_callgraph({
        "nodes": ["USER", "front", "cart", "db"],
        "edges": [{"source": "USER", "target": "front", "weight": 1},
                  {"source": "front", "target": "cart", "weight": 2, "bytes": 1000},
                  {"source": "front", "target": "db", "weight": 1, "bytes": 500},
                  {"source": "cart", "target": "db", "weight": 4, "bytes": 100},
                  {"source": "cart", "target": "cart", "weight": 3}]})
    names = dict(zip(GRAPH_FEATURE_NAMES, graph_features(g, "db"), strict=True))
    assert names == {"cg_fan_in": 2, "cg_fan_out": 0, "cg_depth": 2,
                     "cg_calls_per_request": 5, "cg_bytes_per_request": 900,
                     "cg_app_size": 3, "cg_app_depth": 2}
    cart = dict(zip(GRAPH_FEATURE_NAMES, graph_features(g, "cart"), strict=True))
    assert cart["cg_fan_out"] == 1 and cart["cg_calls_per_request"] == 2
    assert cart["cg_bytes_per_request"] == 2000 + 400
    t = grid(0.2)
    s = UsageSeries("db", t, np.ones(t.size), *(np.full(t.size, np.nan) for _ in range(6)))
    full = extract(s, g)
    assert full.shape == (N_FEATURES,) and list(full[N_USAGE:]) == list(names.values())
    assert not extract(s)[N_USAGE:].any()
    sf = StreamingFeatures(graph=graph_features(g, "db"))
    sf.update(0.0, 1.0)
    assert list(sf.features()[N_USAGE:]) == list(names.values())


# --------------------------------------------------------------------------------- classes


def test_kmeans_is_seeded_and_finds_blobs() -> None:
    rng = np.random.default_rng(6)
    x = np.vstack([rng.normal(c, 0.1, (30, 2)) for c in ((0, 0), (5, 5), (0, 5))])
    a, b = kmeans(x, 3, seed=1), kmeans(x, 3, seed=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert sorted(np.bincount(a.labels).tolist()) == [30, 30, 30]


def test_naming_rules() -> None:
    base = dict.fromkeys(CLUSTER_FEATURES, 0.0)
    base["log_cpu_mean"] = 0.0                                   # 1 core
    assert name_centroid(base) == "steady"
    assert name_centroid({**base, "log_cpu_mean": -2.5}) == "idle"
    assert name_centroid({**base, "cpu_trend_rel_per_day": 0.3}) == "growing"
    assert name_centroid({**base, "cpu_burstiness": 0.5}) == "bursty"
    assert name_centroid({**base, "log_cpu_mean": -2.5, "cpu_cv": 3.0}) == "bursty"
    assert name_centroid({**base, "cpu_acf_1d": 0.8}) == "periodic"


def test_shipped_classes_load_and_classify() -> None:
    classes = load_classes()
    assert set(classes.names) <= set(CLASS_NAMES) and len(classes.names) == len(classes.counts)
    t = grid(2)
    idle = usage_features(t, np.full(t.size, 0.002))
    assert classify(idle) == "idle"
    busy = usage_features(t, 1 + 0.8 * np.sin(2 * np.pi * t / DAY))
    assert classify(busy) in CLASS_NAMES
    oh = classes.one_hot(np.r_[idle, np.zeros(N_FEATURES - N_USAGE)])
    assert oh.dtype == np.float32 and oh.sum() == 1 and oh[CLASS_NAMES.index("idle")] == 1
    assert classes.assign(np.vstack([idle, busy])).shape == (2,)


def test_fit_round_trip_and_version_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    t = grid(2)
    feats = np.array([usage_features(t, np.abs(rng.normal(m, s, t.size)))
                      for m in (0.005, 0.5, 2.0) for s in (0.001, 0.1, 1.0)])
    classes = fit(feats, 3, 0, "test")
    path = tmp_path / "c.json"
    doc = classes.to_json()
    path.write_text(json.dumps(doc))
    again = load_classes(path)
    np.testing.assert_allclose(again.centroids, classes.centroids)
    assert [again.classify(f) for f in feats] == [classes.classify(f) for f in feats]
    assert cluster_vector(feats).shape == (9, len(CLUSTER_FEATURES))
    path.write_text(json.dumps({**doc, "features_version": FEATURES_VERSION + 1}))
    with pytest.raises(ValueError, match="refit"):
        load_classes(path)
    path.write_text(json.dumps({**doc, "names": ["idle", "nope", "idle"]}))
    with pytest.raises(ValueError, match="names"):
        load_classes(path)


def test_candidate_periods_are_sorted() -> None:
    assert list(CANDIDATE_PERIODS_H) == sorted(CANDIDATE_PERIODS_H)
