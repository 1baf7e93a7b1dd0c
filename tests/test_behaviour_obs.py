"""Service catalogue, online behaviour statistics, their observation features and the
predicted-p95 size level: recurrence, causality, bounds, the ablation switch and the spec."""

from __future__ import annotations

import numpy as np
import pytest
from simhelpers import random_step

from hierarchy.features.online import (
    MIN_SAMPLES,
    N_STATS,
    S_N,
    ServiceStats,
    predicted_size_fracs,
    update_row,
)
from hierarchy.observation import BEHAVIOUR_FEATURES, EdgeEncoder
from hierarchy.scenario import load_scenario
from sim.core import BatchedCore

SHORT = {"time.horizon_s": 3 * 3600}


def run_until_a_seen_service_is_pending(core: BatchedCore, seed: int = 0) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    for _ in range(20_000):
        random_step(core, rng)
        v = core.edge_view
        seen = v.pending & (v.svc_samples >= MIN_SAMPLES)
        if seen.any():
            b, s = np.argwhere(seen)[0]
            return int(b), int(s)
    raise AssertionError("no instance of an already observed service arrived")


def behaviour_slice(core: BatchedCore) -> slice:
    names = [f.name for f in core.edge_encoder.spec.features]
    first = names.index("svc_seen")
    return slice(first, first + len(BEHAVIOUR_FEATURES))


@pytest.fixture(scope="module")
def core_with_seen_service() -> tuple[BatchedCore, int, int]:
    core = BatchedCore(load_scenario("small", SHORT), batch_size=2, seed=3)
    b, s = run_until_a_seen_service_is_pending(core)
    return core, b, s


# --- the catalogue ------------------------------------------------------------------------


def test_apps_recur_as_instances_of_services() -> None:
    core = BatchedCore(load_scenario("default", SHORT), batch_size=1, seed=0)
    pools = core.pools
    services = pools.fields["service"][0]
    counts = np.bincount(services, minlength=core.catalogue.services)
    # Zipf popularity: some services recur many times, and most apps are repeats.
    assert counts.max() >= 10
    assert (counts > 1).sum() >= 10
    # Instances of one service share shape and requests; usage levels differ a little.
    svc = int(np.argmax(counts))
    idx = np.nonzero(services == svc)[0]
    f = pools.fields
    for name in ("size", "parent", "cpu_req", "mem_req", "slo_ms"):
        assert (f[name][0, idx] == f[name][0, idx[0]]).all(), name
    size = int(f["size"][0, idx[0]])
    level = f["level"][0, idx, :size]
    assert np.ptp(level, axis=0).max() > 0
    ratio = level / level.mean(axis=0)
    assert np.abs(np.log(ratio)).max() < 0.6  # 10% lognormal noise (clipped at the bounds)


def test_catalogue_is_seeded_per_copy_and_episode() -> None:
    sc = load_scenario("small", SHORT)
    one = BatchedCore(sc, batch_size=1, seed=5)
    many = BatchedCore(sc, batch_size=3, seed=5)
    for name in ("service", "level", "cpu_req", "lifetime_s"):
        np.testing.assert_array_equal(one.pools.fields[name][0], many.pools.fields[name][0])
    assert not np.array_equal(many.pools.fields["level"][0], many.pools.fields["level"][1])
    again = BatchedCore(sc, batch_size=1, seed=5)
    np.testing.assert_array_equal(one.pools.fields["level"], again.pools.fields["level"])


# --- online statistics -----------------------------------------------------------------------


def test_online_statistics_predict_the_p95_of_a_lognormal() -> None:
    rng = np.random.default_rng(0)
    row = np.zeros(N_STATS)
    u = 0.2 * np.exp(0.4 * rng.standard_normal(5000) - 0.08)
    for x in u[:200]:
        update_row(row, x, 0.3)
    stats = ServiceStats()
    for x in u[:200]:
        stats.observe("svc", x * 2.0, 2.0, 0.3, 1.0)
    n, cpu, mem, cv, cls = stats.predict("svc", 2.0)
    assert n == 200 and row[S_N] == 200
    assert cpu == pytest.approx(np.quantile(u, 0.95), rel=0.15)
    assert mem == pytest.approx(0.3, abs=1e-9)
    assert cv == pytest.approx(u.std() / u.mean(), rel=0.25)
    assert 0 <= cls < 5
    assert stats.predict("never seen", 1.0) == (0.0, 0.0, 0.0, 0.0, -1)


def test_predicted_size_is_clamped_and_the_request_when_unknown() -> None:
    assert predicted_size_fracs(False, 0.3, 0.2, 0.2, 0.1) == (1.0, 1.0)
    cpu, mem = predicted_size_fracs(True, 0.3, 0.01, 0.2, 0.1)
    assert cpu == pytest.approx(0.36) and mem == pytest.approx(0.1)
    assert predicted_size_fracs(True, 3.0, 2.0, 0.2, 0.1) == (1.0, 1.0)


def test_features_never_use_the_future(core_with_seen_service) -> None:
    """A pending container's features come from its service's past samples only: changing
    its own usage parameters and the catalogue (its future) changes nothing; changing what
    was observed does."""
    core, b, s = core_with_seen_service
    st = core.st
    cols = behaviour_slice(core)
    before = core.edge_obs[b, s, cols].copy()
    mask_before = core.edge_mask.copy()
    assert before[0] == 1.0  # seen
    a = st.sq[b, s, st.sq_head[b, s]]
    for name in ("c_level", "c_sigma", "c_amp", "c_mem_level", "c_mem_growth_h"):
        getattr(st, name)[b, a] *= 3.0
    core.pools.catalogues[b].templates.level *= 3.0
    core.observe()
    np.testing.assert_array_equal(core.edge_obs[b, s, cols], before)
    np.testing.assert_array_equal(core.edge_mask, mask_before)
    # The statistics of the past are what the features read.
    k = st.a_next_k[b, a]
    st.svc_stats[b, st.a_service[b, a], k, 1:] *= 1.5
    core.observe()
    assert not np.array_equal(core.edge_obs[b, s, cols], before)


def test_first_instances_are_unknown() -> None:
    core = BatchedCore(load_scenario("small", SHORT), batch_size=1, seed=0)
    assert (core.st.svc_stats == 0).all()
    v = core.edge_view
    assert (v.svc_samples == 0).all() and (v.behaviour_class == -1).all()
    cols = behaviour_slice(core)
    assert (core.edge_obs[..., cols] == 0).all()


# --- observation spec, bounds and the ablation switch ----------------------------------------


def test_behaviour_features_stay_within_bounds(core_with_seen_service) -> None:
    core, _, _ = core_with_seen_service
    rng = np.random.default_rng(1)
    cols = behaviour_slice(core)
    low, high = core.edge_bounds
    seen_any = False
    for _ in range(300):
        random_step(core, rng)
        obs = core.edge_obs
        assert (obs >= low - 1e-6).all() and (obs <= high + 1e-6).all()
        seen_any |= bool((obs[..., cols.start] == 1).any())
        # At most one class, and a class only for a seen service.
        classes = obs[..., cols.start + 5: cols.stop]
        assert (classes.sum(-1) <= obs[..., cols.start] + 1e-6).all()
    assert seen_any


def test_the_ablation_switch_removes_the_features() -> None:
    on = BatchedCore(load_scenario("small", SHORT), batch_size=1, seed=0)
    off = BatchedCore(load_scenario("small", {**SHORT, "observation.behaviour_features": False}),
                      batch_size=1, seed=0)
    assert on.edge_obs_dim - off.edge_obs_dim == len(BEHAVIOUR_FEATURES)
    assert off.edge_obs.shape[-1] == off.edge_obs_dim
    assert on.state_dim - off.state_dim == on.S * len(BEHAVIOUR_FEATURES)
    names = [f.name for f in off.edge_encoder.spec.features]
    assert "svc_seen" not in names
    assert on.edge_encoder.spec.hash != off.edge_encoder.spec.hash


def test_spec_hash_changes_with_the_version(monkeypatch) -> None:
    enc = EdgeEncoder(num_sites=2, nodes=2, size_levels=(0.5, 1.0), headroom_levels=2,
                      max_app_size=4, ref_cores=4.0, ref_mem_gib=16.0)
    first = enc.spec.hash
    monkeypatch.setattr("hierarchy.observation.OBS_SPEC_VERSION", 99)
    assert enc.spec.hash != first


def test_a_view_without_behaviour_fields_is_an_unknown_service(core_with_seen_service) -> None:
    """A gateway that keeps no statistics leaves the fields None: an unknown service."""
    from dataclasses import replace

    core, b, s = core_with_seen_service
    v = core.edge_view
    bare = replace(v, svc_samples=None, pred_cpu_p95=None, pred_mem_p95=None, cpu_cv=None,
                   behaviour_class=None)
    obs, mask = core.edge_encoder.encode_and_mask(bare)
    cols = behaviour_slice(core)
    assert (obs[..., cols] == 0).all()
    cpu_frac, _ = core.edge_encoder.size_fractions(bare)
    assert (cpu_frac[..., -1] == 1.0).all()


# --- the predicted-p95 size level ------------------------------------------------------------


def test_layout_gains_the_predicted_level_from_the_scenario() -> None:
    with_level = BatchedCore(load_scenario("small", SHORT), batch_size=1, seed=0)
    sizes = len(with_level.scenario.sizing.size_levels)
    assert with_level.edge_layout.sizes == sizes + 1
    without = BatchedCore(
        load_scenario("small", {**SHORT, "sizing.predicted_size_margin": None}), batch_size=1,
        seed=0)
    assert without.edge_layout.sizes == sizes


def test_placing_at_the_predicted_level_sizes_from_the_prediction() -> None:
    core = BatchedCore(load_scenario("small", SHORT), batch_size=2, seed=4)
    st, lay = core.st, core.edge_layout
    level = lay.sizes - 1
    for seed in range(50):
        b, s = run_until_a_seen_service_is_pending(core, seed)
        nodes = [m for m in range(lay.nodes)
                 if core.edge_mask[b, s, lay.encode_place(m, level, 0)]]
        if nodes:
            break
    assert nodes, "the guard never allowed a node at the predicted level"
    v = core.edge_view
    cpu_frac, mem_frac = core.edge_encoder.size_fractions(v)
    a = st.sq[b, s, st.sq_head[b, s]]
    k = st.a_next_k[b, a]
    edge = np.zeros((core.B, core.S), dtype=np.int64)
    for bb, ss in np.argwhere(core.edge_view.pending):
        edge[bb, ss] = lay.encode_offload(0)
    edge[b, s] = lay.encode_place(nodes[0], level, 0)
    expected_cpu = st.c_req_cpu[b, a, k] * cpu_frac[b, s, level]
    expected_mem = st.c_req_mem[b, a, k] * mem_frac[b, s, level]
    core.step(edge, np.zeros(core.B, dtype=np.int64))
    assert st.c_alloc_cpu[b, a, k] == pytest.approx(expected_cpu)
    assert st.c_alloc_mem[b, a, k] == pytest.approx(expected_mem)
    assert expected_cpu < st.c_req_cpu[b, a, k] + 1e-12
