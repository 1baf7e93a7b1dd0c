"""Property tests: invariants of the batched core under random (and invalid) decisions.

Each example builds a small `BatchedCore` (1-4 copies) on a variant of `small` chosen to stress
one part of the model (queues, app slots, a tight power budget, a curved power table, heavy
usage, long ticks), plays some hundred steps with random mask-respecting actions, some of them
replaced by invalid ones, and checks the invariants after every step.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simhelpers import (
    edge_offload_all,
    edge_pack,
    masked_random,
    run_to_horizon,
    scenario,
)

from hierarchy.actions import (
    CLOUD_FIRST_SITE,
    CLOUD_NOOP,
    CLOUD_POOL,
    EDGE_OFFLOAD,
    EDGE_PLACE,
)
from hierarchy.observation import power_delta_w
from sim.core import BatchedCore
from sim.metrics import METRIC_NAMES, episode_metrics
from sim.state import QUEUED_CLOUD, QUEUED_SITE, REJECTED, RUNNING

TOL = 1e-9

# A concave SPECpower-style table for the N100 (same idle and peak as its linear model).
CURVED_N100 = [9.1, 11.0, 12.4, 13.5, 14.4, 15.2, 15.9, 16.6, 17.3, 17.9, 18.5]

VARIANTS: dict[str, dict[str, Any]] = {
    "busy": {"workload.load_factor": 8.0},
    "crowded": {"workload.load_factor": 25.0, "limits.max_apps": 10,
                "limits.site_queue_apps": 2},
    "tight-budget": {"workload.load_factor": 8.0, "sites.0.power_budget_w": 14.0},
    "curved-power": {"workload.load_factor": 8.0,
                     "node_types.n100.power_curve_w": CURVED_N100},
    "heavy-usage": {"workload.load_factor": 6.0,
                    "workload.usage.cpu_level_beta": [2.0, 2.0]},
    "long-ticks": {"workload.load_factor": 3.0, "time.step_s": 300.0},
}

# The property test draws from these; the curved table has its own test below (put it back
# here once CURVED_XFAIL is gone).
RANDOM_VARIANTS = [v for v in VARIANTS if v != "curved-power"]

SETTINGS = settings(
    max_examples=30, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def make_core(variant: str, batch: int, seed: int) -> BatchedCore:
    sc = scenario("small", {"time.horizon_s": 6 * 3600.0, **VARIANTS[variant]})
    return BatchedCore(sc, batch_size=batch, seed=seed)


# --- choosing actions, some deliberately invalid ----------------------------------------------


def edge_actions(core: BatchedCore, rng: np.random.Generator, p_invalid: float) -> np.ndarray:
    mask = core.edge_mask
    act = masked_random(rng, mask)
    n = core.edge_layout.n
    bad = rng.random(act.shape) < p_invalid
    for b, s in zip(*np.nonzero(bad), strict=True):
        refused = np.flatnonzero(mask[b, s] == 0)
        choices = [-1, n, n + 7, -(10**6)] + ([int(rng.choice(refused))] if refused.size else [])
        act[b, s] = choices[rng.integers(len(choices))]
    return act


def cloud_actions(core: BatchedCore, rng: np.random.Generator, p_invalid: float) -> np.ndarray:
    mask = core.cloud_mask
    act = masked_random(rng, mask)
    n = core.cloud_layout.n
    for b in np.flatnonzero(rng.random(core.B) < p_invalid):
        refused = np.flatnonzero(mask[b] == 0)
        choices = [-3, n, 10**6] + ([int(rng.choice(refused))] if refused.size else [])
        act[b] = choices[rng.integers(len(choices))]
    return act


def allowed(mask: np.ndarray, act: np.ndarray) -> np.ndarray:
    n = mask.shape[-1]
    in_range = (act >= 0) & (act < n)
    picked = np.take_along_axis(mask, np.clip(act, 0, n - 1)[..., None], axis=-1)[..., 0]
    return in_range & (picked == 1)


# --- the checks ----------------------------------------------------------------------------


COUNTERS = ("arrived", "rejected", "finished", "placed_edge", "offloaded", "placed_cloud_pool",
            "placed_by_cloud_at_edge", "invalid_actions", "oom_restarts", "wan_bytes",
            "requests", "requests_violated", "response_ms_sum")


def snapshot(core: BatchedCore) -> dict[str, np.ndarray]:
    return {f.name: getattr(core.st, f.name).copy() for f in fields(core.st)}


def check_masks(core: BatchedCore) -> None:
    em, cm = core.edge_mask, core.cloud_mask
    assert em.dtype == np.int8 and cm.dtype == np.int8
    assert ((em == 0) | (em == 1)).all() and ((cm == 0) | (cm == 1)).all()
    assert (em.sum(-1) >= 1).all() and (cm.sum(-1) >= 1).all()
    pend = core.edge_view.pending
    assert (em[..., 0] == ~pend).all(), "edge no-op allowed exactly when nothing is pending"
    assert (em[~pend].sum(-1) == 1).all()
    lay = core.edge_layout
    for h in range(lay.headrooms):
        assert (em[..., lay.encode_offload(h)] == pend).all(), "offload allowed when pending"
    cpend = core.cloud_view.pending
    assert (cm[:, CLOUD_NOOP] == ~cpend).all()
    assert (cm[~cpend].sum(-1) == 1).all()
    # Reject only when nothing else fits.
    rejectable = cm[:, 1] == 1
    assert (cm[rejectable][:, CLOUD_POOL:].sum(-1) == 0).all()


def check_state(core: BatchedCore, prev: dict[str, np.ndarray], advanced: np.ndarray) -> None:
    st, topo = core.st, core.topo
    cores, mem = topo.node_cores, topo.node_mem_gib

    # Capacity: never negative free capacity, never more allocated than a node has.
    assert (st.node_alloc_cpu >= -TOL).all(), st.node_alloc_cpu.min()
    assert (st.node_alloc_mem >= -TOL).all(), st.node_alloc_mem.min()
    over_cpu = st.node_alloc_cpu - cores * (1 + TOL) - TOL
    over_mem = st.node_alloc_mem - mem * (1 + TOL) - TOL
    assert (over_cpu <= 0).all(), f"cpu over capacity by {over_cpu.max()}"
    assert (over_mem <= 0).all(), f"memory over capacity by {over_mem.max()}"
    assert (st.node_alloc_cpu[:, ~topo.node_exists] == 0).all()

    # The node totals are the sums over the containers running there.
    running = st.c_status == RUNNING
    b_idx, a_idx, k_idx = np.nonzero(running)
    nodes = st.c_node[b_idx, a_idx, k_idx]
    assert (nodes >= 0).all() and topo.node_exists[nodes].all()
    np.testing.assert_array_equal(st.c_loc[b_idx, a_idx, k_idx], topo.node_site[nodes])
    assert not st.asleep[b_idx, nodes].any(), "a running container on a sleeping node"
    assert st.a_active[b_idx, a_idx].all()
    sum_cpu = np.zeros_like(st.node_alloc_cpu)
    sum_mem = np.zeros_like(st.node_alloc_mem)
    np.add.at(sum_cpu, (b_idx, nodes), st.c_alloc_cpu[b_idx, a_idx, k_idx])
    np.add.at(sum_mem, (b_idx, nodes), st.c_alloc_mem[b_idx, a_idx, k_idx])
    np.testing.assert_allclose(st.node_alloc_cpu, sum_cpu, atol=1e-7)
    np.testing.assert_allclose(st.node_alloc_mem, sum_mem, atol=1e-7)
    assert (st.c_alloc_cpu[running] > 0).all()

    # Every container is accounted for exactly once.
    counts = core.container_counts()
    total = (counts["queued_site"] + counts["queued_cloud"] + counts["running"]
             + counts["rejected"] + counts["finished"])
    np.testing.assert_array_equal(counts["arrived"], total)
    assert counts["queued_cloud"].tolist() == st.cq_len.astype(float).tolist()
    # Statuses only where apps are active and within their size.
    live = st.c_status != 0
    assert st.a_active[np.nonzero(live)[:2]].all()
    k_of = np.broadcast_to(np.arange(core.K), st.c_status.shape)
    assert (k_of[live] < st.a_size[np.nonzero(live)[:2]]).all()
    # What waits at a site waits at its home site's queue, decided in order.
    qs = st.c_status == QUEUED_SITE
    b_q, a_q, k_q = np.nonzero(qs)
    assert (k_q >= st.a_next_k[b_q, a_q]).all()
    assert ((st.c_status == QUEUED_CLOUD) | (st.c_status == RUNNING)
            | (st.c_status == REJECTED) | (st.c_status == QUEUED_SITE) | ~live).all()

    # Energy per node never decreases, and holds still in copies whose clock held still.
    assert (st.node_energy_j >= prev["node_energy_j"]).all()
    held = ~advanced
    np.testing.assert_array_equal(st.node_energy_j[held], prev["node_energy_j"][held])

    # Time never decreases; it moves by exactly one tick, only in an advancing step.
    np.testing.assert_array_equal(st.t_s[held], prev["t_s"][held])
    np.testing.assert_allclose(st.t_s[advanced], prev["t_s"][advanced] + core.dt_s)

    # A step that does not advance a copy leaves work waiting there, or its episode is over
    # (a copy at its horizon holds still until it is reset).
    waiting = st.sq_len.sum(axis=1) + st.cq_len
    over = st.t_s >= core.horizon_s - 1e-9
    assert ((waiting[held] > 0) | over[held]).all()

    # Queues within bounds.
    assert ((st.sq_len >= 0) & (st.sq_len <= core.Q)).all()
    assert ((st.cq_len >= 0) & (st.cq_len <= core.Qc)).all()
    assert ((st.sq_head >= 0) & (st.sq_head < core.Q)).all()
    assert ((st.cq_head >= 0) & (st.cq_head < core.Qc)).all()

    # Counters only grow.
    for name in COUNTERS:
        assert (getattr(st, name) >= prev[name]).all(), name

    # Throttle within its range; the cloud is never throttled; power demand is positive.
    thr_min = core.scenario.power.throttle_min
    assert ((st.throttle >= thr_min - TOL) & (st.throttle <= 1 + TOL)).all()
    assert (st.throttle[:, core.S] == 1).all()
    assert (st.loc_power_w >= 0).all()


def placement_power(core: BatchedCore, b: int, s: int, node: int, level: int) -> float:
    """Site power (W) after placing the pending container of (b, s) at (node, level)."""
    v = core.edge_view
    cpu = v.cpu_req[b, s] * core.edge_encoder.size_fractions(v)[0][b, s, level]
    curves = None if v.curves is None else v.curves[s][node][None]
    delta = power_delta_w(
        v.node_asleep[b, s, node][None], v.node_used_cpu[b, s, node][None],
        v.node_cores[b, s, node][None], v.node_idle_w[b, s, node][None],
        v.node_max_w[b, s, node][None], v.node_sleep_w[b, s, node][None], curves,
        np.array([[cpu]]),
    )[0, 0]
    return float(v.site_power_w[b, s] + delta)


def step_and_check(core: BatchedCore, rng: np.random.Generator, p_invalid: float) -> None:
    st, v, lay = core.st, core.edge_view, core.edge_layout
    prev = snapshot(core)
    ea = edge_actions(core, rng, p_invalid)
    ca = cloud_actions(core, rng, p_invalid)
    pend = v.pending.copy()
    cpend = core.cloud_view.pending.copy()
    ok_e = allowed(core.edge_mask, ea)
    ok_c = allowed(core.cloud_mask, ca)
    pool_fits = core.cloud_mask[:, CLOUD_POOL] == 1
    kind, node, size, _ = lay.decode(np.where(ok_e, ea, 0))
    place = pend & ok_e & (kind == EDGE_PLACE)
    offload = pend & ((kind == EDGE_OFFLOAD) | ~ok_e)

    # The guard, recomputed independently: an allowed placement fits the node and the budget.
    budget = core.topo.site_budget_w
    expected_power = prev["loc_power_w"][:, : core.S].copy()
    # Every size level, the predicted-p95 one included, as fractions of the request.
    cpu_frac, mem_frac = core.edge_encoder.size_fractions(v)
    for b, s in zip(*np.nonzero(place), strict=True):
        m, level = int(node[b, s]), int(size[b, s])
        cpu = v.cpu_req[b, s] * cpu_frac[b, s, level]
        memory = v.mem_req[b, s] * mem_frac[b, s, level]
        assert v.node_exists[b, s, m]
        assert v.node_alloc_cpu[b, s, m] + cpu <= v.node_cores[b, s, m] * (1 + TOL)
        assert v.node_alloc_mem[b, s, m] + memory <= v.node_mem_gib[b, s, m] * (1 + TOL)
        after = placement_power(core, b, s, m, level)
        assert after <= budget[s] * (1 + 1e-12), (after, budget[s])
        expected_power[b, s] = after

    out = core.step(ea, ca)
    adv = out.advanced
    assert adv.dtype == bool and adv.shape == (core.B,)
    check_state(core, prev, adv)
    check_masks(core)

    # Invalid actions are counted and fall back safely: the edge offloads, the cloud pools.
    n_invalid = (pend & ~ok_e).sum(axis=1) + (cpend & ~ok_c)
    np.testing.assert_array_equal(st.invalid_actions - prev["invalid_actions"], n_invalid)
    np.testing.assert_array_equal(st.placed_edge - prev["placed_edge"], place.sum(axis=1))
    np.testing.assert_array_equal(st.offloaded - prev["offloaded"], offload.sum(axis=1))
    by_cloud = (st.placed_cloud_pool - prev["placed_cloud_pool"]
                + st.placed_by_cloud_at_edge - prev["placed_by_cloud_at_edge"])
    assert (by_cloud <= cpend).all()
    # The cloud decides the one container it saw (rejections at arrival happen only in
    # advancing copies, so the rejected count is the cloud's own where the clock held) —
    # except a site choice the same round's edge placement filled while the pool is full:
    # that container stays at the head of the queue, undecided, and is never rejected.
    decided = by_cloud + st.rejected - prev["rejected"]
    retried = cpend & ~adv & (decided == 0)
    np.testing.assert_array_equal(decided[~adv & ~retried], cpend[~adv & ~retried].astype(float))
    assert (ok_c[retried] & (ca[retried] >= CLOUD_FIRST_SITE)).all(), "only mask-allowed sites"
    assert (st.rejected[retried] == prev["rejected"][retried]).all()
    fallback = cpend & (~ok_c | (ca == CLOUD_POOL)) & pool_fits
    assert (st.placed_cloud_pool - prev["placed_cloud_pool"] >= fallback).all()
    to_pool_ok = cpend & ok_c & (ca == CLOUD_POOL)
    assert (by_cloud[to_pool_ok] == 1).all(), "the pool the mask allowed took the container"

    # The placement alone never pushes a site's power demand over its budget. In a copy whose
    # clock held still and where the cloud placed nothing at an edge site, the demand after
    # the step is exactly the guard's estimate.
    held = ~adv
    after = st.loc_power_w[:, : core.S]
    was_within = prev["loc_power_w"][:, : core.S] <= budget * (1 + 1e-12)
    assert (after[held] <= budget * (1 + 1e-9) + TOL)[was_within[held]].all()
    cloud_at_edge = st.placed_by_cloud_at_edge > prev["placed_by_cloud_at_edge"]
    exact = held & ~cloud_at_edge
    np.testing.assert_allclose(after[exact], expected_power[exact], rtol=1e-9, atol=1e-9)
    if (held & cloud_at_edge).any():
        # The cloud re-checks its site choice against the power the edge just added.
        assert ((after <= budget * (1 + 1e-9) + TOL) | ~was_within)[held].all()


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(1, 4),
    variant=st.sampled_from(sorted(RANDOM_VARIANTS)),
    p_invalid=st.sampled_from([0.0, 0.0, 0.1, 0.4]),
    steps=st.integers(100, 250),
)
def test_invariants_hold_under_random_decisions(seed: int, batch: int, variant: str,
                                                p_invalid: float, steps: int) -> None:
    core = make_core(variant, batch, seed)
    core.reset(seed)
    rng = np.random.default_rng(seed ^ 0x5EED)
    check_masks(core)
    for _ in range(steps):
        step_and_check(core, rng, p_invalid)
    assert (core.st.t_s > 0).all()




@pytest.mark.parametrize("variant", [
    v for v in sorted(VARIANTS)
])
def test_invariants_over_a_whole_episode(variant: str) -> None:
    """Each variant once to the horizon (a short one), so late states are checked too."""
    sc = scenario("small", {**VARIANTS[variant], "time.horizon_s": 2 * 3600.0})
    core = BatchedCore(sc, batch_size=2, seed=17)
    rng = np.random.default_rng(17)
    steps = 0
    while not (core.st.t_s >= core.horizon_s - 1e-9).all():
        step_and_check(core, rng, 0.05)
        steps += 1
        assert steps < 20_000
    st_ = core.st
    # The run reached the parts of the model the variant is meant to stress.
    assert (st_.finished > 0).all(), "apps departed"
    assert (st_.asleep[:, : core.S * core.M].any(axis=1)).all(), "idle nodes fell asleep"
    assert (st_.placed_cloud_pool > 0).all() and (st_.placed_by_cloud_at_edge > 0).all()
    assert (st_.invalid_actions > 0).all()
    if variant == "crowded":
        assert (st_.rejected > 0).all(), "arrivals overflowed queues and app slots"
    if variant == "heavy-usage":
        assert (st_.capped_site_s.sum(axis=1) > 0).any(), "sites were capped"
    metrics = episode_metrics(core)
    assert set(metrics) == set(METRIC_NAMES)
    for name in ("slo_violation_rate", "rejection_rate", "offload_rate", "capped_time_frac",
                 "cpu_util_mean"):
        assert ((metrics[name] >= 0) & (metrics[name] <= 1 + TOL)).all(), name
    for name in ("energy_kwh", "response_ms_mean", "power_overshoot_wh", "wan_gb"):
        assert (np.isfinite(metrics[name]) & (metrics[name] >= 0)).all(), name
    np.testing.assert_allclose(metrics["cost"], st_.term_totals @ core.weights, rtol=1e-9)


def test_reset_copies_restarts_only_the_finished_copies() -> None:
    core = make_core("busy", 3, 4)
    rng = np.random.default_rng(4)
    for _ in range(60):
        core.step(masked_random(rng, core.edge_mask), masked_random(rng, core.cloud_mask))
    before = snapshot(core)
    fresh = BatchedCore(core.scenario, batch_size=1, seed=0)
    core.reset_copies(np.array([False, True, False]))
    for name, old in before.items():
        new = getattr(core.st, name)
        assert np.array_equal(new[[0, 2]], old[[0, 2]]), name
        if name in ("key", "episode"):
            continue  # the restarted copy moves on to its next episode's random streams
        assert np.array_equal(new[1], getattr(fresh.st, name)[0]), name
    assert core.st.episode[1] == before["episode"][1] + 1
    assert core.st.key[1] != before["key"][1]
    np.testing.assert_array_equal(core.edge_obs[1], fresh.edge_obs[0])
    np.testing.assert_array_equal(core.cloud_mask[1], fresh.cloud_mask[0])
    check_masks(core)
    for _ in range(60):
        step_and_check(core, rng, 0.1)


# --- reproducibility ------------------------------------------------------------------------


def trajectory(core: BatchedCore, seed: int, steps: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        core.step(masked_random(rng, core.edge_mask), masked_random(rng, core.cloud_mask))
        out.append(snapshot(core) | {"edge_obs": core.edge_obs.copy(),
                                     "cloud_obs": core.cloud_obs.copy(),
                                     "edge_mask": core.edge_mask.copy(),
                                     "cloud_mask": core.cloud_mask.copy()})
    return out


def assert_same_trajectory(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        for name in x:
            assert np.array_equal(x[name], y[name]), f"step {i}: {name} differs"


@settings(SETTINGS, max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 4))
def test_same_seed_same_trajectory(seed: int, batch: int) -> None:
    sc = scenario("small", {"time.horizon_s": 6 * 3600.0, **VARIANTS["busy"]})
    one = trajectory(BatchedCore(sc, batch_size=batch, seed=seed), seed, 80)
    two = trajectory(BatchedCore(sc, batch_size=batch, seed=seed), seed, 80)
    assert_same_trajectory(one, two)
    # reset(seed) on a used core replays the same run (the workload pool is redrawn too).
    core = BatchedCore(sc, batch_size=batch, seed=seed + 1)
    trajectory(core, seed + 1, 40)
    core.reset(seed)
    assert_same_trajectory(one, trajectory(core, seed, 80))


def test_different_seeds_differ() -> None:
    sc = scenario("small", {"time.horizon_s": 6 * 3600.0, **VARIANTS["busy"]})
    a = trajectory(BatchedCore(sc, batch_size=2, seed=1), 0, 60)
    b = trajectory(BatchedCore(sc, batch_size=2, seed=2), 0, 60)
    assert not all(np.array_equal(x["arrived"], y["arrived"]) for x, y in zip(a, b, strict=True))


def test_one_copy_sees_the_same_arrivals_whatever_the_policy() -> None:
    """With B = 1 the workload depends on the seed only: policies compare on equal arrivals."""
    sc = scenario("small", {"time.horizon_s": 3 * 3600.0})
    arrivals = []
    for edge in (edge_pack, edge_offload_all):
        core = BatchedCore(sc, batch_size=1, seed=5)
        seen: list[float] = []

        def record(c: BatchedCore, _adv: np.ndarray, seen: list[float] = seen) -> None:
            seen.append(float(c.st.arrived[0]))

        run_to_horizon(core, edge, lambda c: np.where(c.cloud_view.pending, CLOUD_POOL, 0),
                       on_tick=record)
        arrivals.append(seen)
    assert arrivals[0] == arrivals[1]


def test_a_copys_workload_does_not_depend_on_the_other_copies() -> None:
    sc = scenario("small", {"time.horizon_s": 3 * 3600.0})
    pool = lambda c: np.where(c.cloud_view.pending, CLOUD_POOL, 0)  # noqa: E731

    def mixed(core: BatchedCore) -> np.ndarray:
        act = edge_pack(core)
        act[1] = edge_offload_all(core)[1]  # copy 1 plays another policy
        return act

    runs = []
    for edge in (edge_pack, mixed):
        core = BatchedCore(sc, batch_size=2, seed=5)
        run_to_horizon(core, edge, pool)
        runs.append(core.st.arrived[0])
    assert runs[0] == runs[1], f"copy 0 saw {runs[0]} vs {runs[1]} containers arrive"


# --- found by the properties above ------------------------------------------------------------


def test_curved_edge_power_tables_are_supported() -> None:
    """A SPECpower-style table on an edge node type (no shipped scenario has one)."""
    core = make_core("curved-power", 2, 0)
    assert core.edge_curves is not None
    rng = np.random.default_rng(0)
    for _ in range(120):
        step_and_check(core, rng, 0.0)


def cloud_prefers_busy_sites(core: BatchedCore) -> np.ndarray:
    """An allowed site whose own edge agent decides in the same step, else any allowed action."""
    mask = core.cloud_mask
    site_ok = mask[:, CLOUD_FIRST_SITE:] == 1
    busy = site_ok & core.edge_view.pending
    any_ok = masked_random(np.random.default_rng(0), mask)
    act = np.where(site_ok.any(axis=1), CLOUD_FIRST_SITE + site_ok.argmax(axis=1), any_ok)
    return np.where(busy.any(axis=1), CLOUD_FIRST_SITE + busy.argmax(axis=1), act)


def test_a_cloud_site_choice_the_mask_allowed_is_not_rejected() -> None:
    sc = scenario("small", {"time.horizon_s": 3 * 3600.0, "workload.load_factor": 8.0,
                            "cloud.nodes": {"x3550": 1}})
    core = BatchedCore(sc, batch_size=4, seed=3)
    races = 0
    for _ in range(1500):
        act = cloud_prefers_busy_sites(core)
        chose_site = core.cloud_view.pending & (act >= CLOUD_FIRST_SITE)
        assert (core.cloud_mask[np.arange(core.B), act] == 1).all()
        before = core.st.rejected.copy()
        out = core.step(edge_pack(core), act)
        rejected_now = (core.st.rejected > before) & ~out.advanced
        races += int((chose_site & rejected_now).sum())
    assert races == 0, f"{races} mask-allowed site choices were rejected"


def _view_arrays(view: Any) -> dict[str, np.ndarray]:
    return {f.name: np.array(getattr(view, f.name), copy=True) for f in fields(view)
            if getattr(view, f.name) is not None}


def test_views_are_snapshots_that_later_steps_do_not_change() -> None:
    core = make_core("busy", 2, 0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        core.step(masked_random(rng, core.edge_mask), masked_random(rng, core.cloud_mask))
    edge, cloud = core.edge_view, core.cloud_view
    edge_before, cloud_before = _view_arrays(edge), _view_arrays(cloud)
    masks_before = core.edge_mask.copy(), core.cloud_mask.copy()
    held_masks = core.edge_mask, core.cloud_mask
    for _ in range(30):
        core.step(masked_random(rng, core.edge_mask), masked_random(rng, core.cloud_mask))
    assert np.array_equal(held_masks[0], masks_before[0])
    assert np.array_equal(held_masks[1], masks_before[1])
    changed = [name for name, arr in cloud_before.items()
               if not np.array_equal(arr, getattr(cloud, name))]
    assert not changed, f"cloud view fields changed under a held view: {changed}"
    changed = [name for name, arr in edge_before.items()
               if not np.array_equal(arr, getattr(edge, name))]
    assert not changed, f"edge view fields changed under a held view: {changed}"
