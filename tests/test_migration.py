"""Moving an app that keeps violating its SLO on a slow node (`sizing.migrate_after_s`)."""

from __future__ import annotations

import numpy as np
from simhelpers import scenario

from hierarchy.policies.base import PolicyContext
from hierarchy.policies.registry import make_policy
from sim.core import BatchedCore
from sim.migration import migrate_violators
from sim.state import QUEUED_SITE, RUNNING, TERM_NAMES, SimState

SPEED = np.array([0.7, 1.0, 1.0])  # node 0 is slow (a Pi), nodes 1-2 fast
DT = 60.0
VIOLATION = TERM_NAMES.index("violation_app_h")


def two_apps() -> SimState:
    """One copy, one site: app 0 (2 containers) on the slow node and a fast one, app 1 (1
    container) on a fast node; both violating their SLO."""
    st = SimState.zeros(b=1, s=1, n=3, a=2, k=2, q=4, qc=8, services=1)
    st.a_active[0, :] = True
    st.a_size[0] = [2, 1]
    st.a_next_k[0] = [2, 1]
    for a, k, node, cpu in ((0, 0, 0, 0.5), (0, 1, 1, 0.25), (1, 0, 2, 1.0)):
        st.c_status[0, a, k] = RUNNING
        st.c_node[0, a, k] = node
        st.c_loc[0, a, k] = 0
        st.c_alloc_cpu[0, a, k] = cpu
        st.c_alloc_mem[0, a, k] = 2 * cpu
        st.node_alloc_cpu[0, node] += cpu
        st.node_alloc_mem[0, node] += 2 * cpu
    st.a_over_slo[0] = [0.3, 0.3]
    return st


def tick(st: SimState, after_s: float) -> None:
    migrate_violators(
        np.ones(1, bool), np.full(1, DT), after_s, st.a_active, st.a_over_slo,
        st.a_violating_s, st.a_moves, st.a_home, st.a_size, st.a_next_k, st.c_status,
        st.c_node, st.c_loc, st.c_alloc_cpu, st.c_alloc_mem, st.node_alloc_cpu,
        st.node_alloc_mem, SPEED, st.sq, st.sq_head, st.sq_len, st.migrations)


def test_an_app_violating_on_a_slow_node_is_moved_once_after_the_delay() -> None:
    st = two_apps()
    for _ in range(9):  # 9 minutes of violation: not yet
        tick(st, 600.0)
    assert st.migrations[0] == 0 and st.sq_len[0, 0] == 0
    assert st.a_violating_s[0].tolist() == [540.0, 540.0]
    tick(st, 600.0)
    # App 0 had a container on the slow node: stopped, released, queued at home again.
    assert st.migrations[0] == 1 and st.a_moves[0].tolist() == [1.0, 0.0]
    assert (st.c_status[0, 0] == QUEUED_SITE).all() and (st.c_node[0, 0] == -1).all()
    assert st.a_next_k[0, 0] == 0 and st.sq_len[0, 0] == 1 and st.sq[0, 0, 0] == 0
    assert np.allclose(st.node_alloc_cpu[0], [0.0, 0.0, 1.0])
    assert np.allclose(st.node_alloc_mem[0], [0.0, 0.0, 2.0])
    # App 1 runs on fast nodes only: it keeps violating, but moving it is not the cure.
    assert st.c_status[0, 1, 0] == RUNNING and st.a_violating_s[0, 1] == 600.0


def test_a_break_in_the_violation_restarts_the_count_and_a_moved_app_stays() -> None:
    st = two_apps()
    for _ in range(5):
        tick(st, 600.0)
    st.a_over_slo[0, 0] = 0.0  # a minute within its SLO
    tick(st, 600.0)
    assert st.a_violating_s[0, 0] == 0.0
    st.a_over_slo[0, 0] = 0.3
    for _ in range(9):
        tick(st, 600.0)
    assert st.migrations[0] == 0
    tick(st, 600.0)
    assert st.migrations[0] == 1
    # Placed back on the slow node (the scheduler's choice) and violating again: not moved
    # a second time.
    st.c_status[0, 0, :] = RUNNING
    st.c_node[0, 0, :] = 0
    st.a_next_k[0, 0] = 2
    st.sq_len[0, 0] = 0
    st.a_over_slo[0, 0] = 0.3
    for _ in range(30):
        tick(st, 600.0)
    assert st.migrations[0] == 1
    # A slot freed by its app leaving starts afresh for the next one.
    st.a_active[0, 0] = False
    tick(st, 600.0)
    assert st.a_moves[0, 0] == 0.0 and st.a_violating_s[0, 0] == 0.0


def run(policy: str, migrate_after_s: float, seed: int) -> BatchedCore:
    sc = scenario("default", {"sizing.migrate_after_s": migrate_after_s})
    core = BatchedCore(sc, batch_size=1, seed=seed)
    pol = make_policy(policy, PolicyContext(core.edge_encoder, core.cloud_encoder))
    while True:
        counts = core.container_counts()
        assert counts["arrived"] == sum(
            counts[k] for k in ("queued_site", "queued_cloud", "running", "rejected",
                                "finished"))
        out = core.step(pol.edge(core.edge_view, core.edge_mask, core.edge_obs),
                        pol.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs))
        if out.truncated[0]:
            return core


def test_in_the_simulator_moved_apps_cure_the_violations_a_pi_causes() -> None:
    # Seed 1011 of `default`: a long-lived app whose SLO a Pi cannot meet (docs/training.md).
    off = run("power-aware-resize-slo", 0.0, 1011)
    on = run("power-aware-resize-slo", 600.0, 1011)
    assert off.st.migrations[0] == 0 and on.st.migrations[0] >= 1
    assert (on.st.a_moves <= 1).all()
    v_off, v_on = off.st.term_totals[0, VIOLATION], on.st.term_totals[0, VIOLATION]
    assert v_on < 0.5 * v_off, (v_on, v_off)
    assert on.st.cost_total[0] < off.st.cost_total[0]
    # The same platform with a rule that puts a moved app back on a Pi gains nothing.
    again = run("power-aware-resize", 600.0, 1011)
    assert again.st.migrations[0] >= 1
    assert again.st.term_totals[0, VIOLATION] > 2 * v_on
