"""The app's observed response against its SLO as a feature of its service: how it is kept,
that it tracks where earlier instances ran, that it never reads the future, and its switch."""

from __future__ import annotations

import numpy as np
import pytest
from simhelpers import random_step

from hierarchy.features.online import (
    N_STATS,
    RESPONSE_MEMORY,
    RESPONSE_RATIO_CAP,
    S_RESP_FAST,
    S_RESP_FAST_N,
    S_RESP_SLOW,
    S_RESP_SLOW_N,
    ServiceStats,
    update_response,
)
from hierarchy.observation import RESPONSE_FEATURES
from hierarchy.scenario import load_scenario
from sim.core import BatchedCore

ON = {"observation.response_features": True, "time.horizon_s": 3 * 3600}


def response_slice(core: BatchedCore) -> slice:
    names = [f.name for f in core.edge_encoder.spec.features]
    first = names.index("resp_seen_slow")
    return slice(first, first + len(RESPONSE_FEATURES))


def test_slow_and_fast_samples_are_kept_apart() -> None:
    row = np.zeros(N_STATS)
    update_response(row, 2.0, True)
    update_response(row, 0.5, False)
    update_response(row, 1.0, True)
    assert row[S_RESP_SLOW_N] == 2 and row[S_RESP_SLOW] == pytest.approx(1.5)
    assert row[S_RESP_FAST_N] == 1 and row[S_RESP_FAST] == pytest.approx(0.5)
    assert (row[:S_RESP_SLOW_N] == 0).all()  # the usage statistics are untouched


def test_the_mean_is_exact_then_a_moving_window_and_capped() -> None:
    row = np.zeros(N_STATS)
    for _ in range(int(RESPONSE_MEMORY)):
        update_response(row, 0.4, False)
    assert row[S_RESP_FAST] == pytest.approx(0.4)
    # A service that starts violating: the window follows it within a few windows' length.
    for _ in range(4 * int(RESPONSE_MEMORY)):
        update_response(row, 100.0, False)
    assert RESPONSE_RATIO_CAP * 0.95 < row[S_RESP_FAST] <= RESPONSE_RATIO_CAP


def test_a_gateway_keeps_the_same_rows() -> None:
    stats = ServiceStats(max_keys=2)
    assert (stats.response(("shop", "front")) == 0).all()
    stats.observe_response(("shop", "front"), 30.0, 60.0, slow=True)
    stats.observe(("shop", "front"), 0.1, 0.5, 0.2, 1.0)  # usage lands in the same row
    np.testing.assert_allclose(stats.response(("shop", "front")), [1.0, 0.5, 0.0, 0.0])
    stats.observe_response(("a", "x"), 1.0, 1.0, slow=False)
    stats.observe_response(("b", "x"), 1.0, 1.0, slow=False)
    assert ("shop", "front") not in stats.rows  # the least recently used row went


@pytest.fixture(scope="module")
def busy() -> BatchedCore:
    core = BatchedCore(load_scenario("default", ON), batch_size=2, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(600):
        random_step(core, rng)
    return core


def test_it_is_off_by_default_and_adds_four_features() -> None:
    off = BatchedCore(load_scenario("small"), batch_size=1, seed=0)
    on = BatchedCore(load_scenario("small", ON), batch_size=1, seed=0)
    assert on.edge_obs_dim - off.edge_obs_dim == len(RESPONSE_FEATURES)
    assert "resp_seen_slow" not in [f.name for f in off.edge_encoder.spec.features]
    assert on.edge_encoder.spec.hash != off.edge_encoder.spec.hash


def test_features_are_the_services_observed_response(busy: BatchedCore) -> None:
    st, v = busy.st, busy.edge_view
    cols = response_slice(busy)
    low, high = busy.edge_bounds
    checked = 0
    for b, s in np.argwhere(v.pending):
        a = st.sq[b, s, st.sq_head[b, s]]
        row = st.svc_stats[b, st.a_service[b, a], 0]
        want = [min(row[S_RESP_SLOW_N], 1.0), row[S_RESP_SLOW] if row[S_RESP_SLOW_N] else 0.0,
                min(row[S_RESP_FAST_N], 1.0), row[S_RESP_FAST] if row[S_RESP_FAST_N] else 0.0]
        np.testing.assert_allclose(busy.edge_obs[b, s, cols], want, rtol=1e-6, atol=1e-6)
        checked += 1
    assert checked > 0
    assert (busy.edge_obs >= low - 1e-6).all() and (busy.edge_obs <= high + 1e-6).all()
    # Some service has been seen on each kind of node by now.
    entry = st.svc_stats[:, :, 0]
    assert (entry[..., S_RESP_SLOW_N] > 0).any() and (entry[..., S_RESP_FAST_N] > 0).any()


def test_features_never_use_the_future(busy: BatchedCore) -> None:
    """A pending app's own work per call and SLO (what it will do) change nothing; what was
    observed of its service does."""
    st = busy.st
    cols = response_slice(busy)
    b, s = np.argwhere(busy.edge_view.pending)[0]
    a = st.sq[b, s, st.sq_head[b, s]]
    before = busy.edge_obs[b, s, cols].copy()
    saved = st.c_work_ms[b, a].copy()
    st.c_work_ms[b, a] *= 10.0
    busy.observe()
    np.testing.assert_array_equal(busy.edge_obs[b, s, cols], before)
    st.c_work_ms[b, a] = saved
    row = st.svc_stats[b, st.a_service[b, a], 0]
    saved_row = row.copy()
    row[S_RESP_SLOW_N] += 1.0
    row[S_RESP_SLOW] += 0.25
    busy.observe()
    assert busy.edge_obs[b, s, cols][1] != before[1]
    row[:] = saved_row
    busy.observe()


def test_slower_nodes_show_higher_response_ratios() -> None:
    """With the Pis made very slow, what apps with a container there report is a larger share
    of their SLO than what apps on fast nodes only report, service by service."""
    core = BatchedCore(load_scenario("default", {**ON, "node_types.pi5.speed": 0.15}),
                       batch_size=2, seed=7)
    rng = np.random.default_rng(1)
    for _ in range(900):
        random_step(core, rng)
    entry = core.st.svc_stats[:, :, 0].reshape(-1, N_STATS)
    both = (entry[:, S_RESP_SLOW_N] >= 2) & (entry[:, S_RESP_FAST_N] >= 2)
    assert both.sum() >= 5
    slow, fast = entry[both, S_RESP_SLOW], entry[both, S_RESP_FAST]
    assert np.median(slow - fast) > 0 and (slow > fast).mean() > 0.7


# --- training's potential for SLO violations -------------------------------------------------


def test_violating_apps_carry_their_over_slo_ratio_and_commit_their_cost() -> None:
    """`a_over_slo` is what the latency term charges (tick by tick, while no app leaves), and
    the committed cost is each violating app's cost per hour times its hours left."""
    core = BatchedCore(load_scenario("default", {"node_types.pi5.speed": 0.15}), batch_size=1,
                       seed=7)
    st = core.st
    rng = np.random.default_rng(2)
    checked = violating_seen = 0
    for _ in range(1500):
        finished = st.finished.copy()
        out = random_step(core, rng)
        if not out.advanced[0] or st.finished[0] != finished[0] or out.truncated[0]:
            continue
        hours = core.dt_s / 3600.0
        latency = out.terms[0][1]
        assert (st.a_over_slo[0] * hours).sum() == pytest.approx(latency, rel=1e-9, abs=1e-12)
        assert (st.a_over_slo[0][~st.a_active[0]] == 0).all()
        checked += 1
        violating_seen += int((st.a_over_slo[0] > 0).sum())
    assert checked > 50 and violating_seen > 0
    committed = core.committed_violation_cost()[0]
    left = core.horizon_s - st.t_s[0]
    w_latency, w_violation = core.weights[1], core.weights[2]
    want = np.zeros(core.S + 1)
    for a in np.flatnonzero(st.a_active[0] & (st.a_over_slo[0] > 0)):
        want[st.a_home[0, a]] += ((w_violation + w_latency * st.a_over_slo[0, a])
                                  * min(st.a_life_s[0, a], left) / 3600.0)
    assert want.sum() > 0
    np.testing.assert_allclose(committed, want)


def test_the_edge_agent_refuses_a_platform_with_response_features() -> None:
    """A gateway does not collect app response times: no silent "never observed" for ever."""
    from edge_agent.backends.sim import SimSiteBackend

    with pytest.raises(ValueError, match="response times"):
        SimSiteBackend(load_scenario("small", ON), "edge-0")
    SimSiteBackend(load_scenario("small"), "edge-0")  # without them it starts
