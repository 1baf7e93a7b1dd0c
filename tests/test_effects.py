"""The model reproduces known effects: each a comparison of two policies on the same arrivals.

Every comparison runs one copy (B = 1) per seed, so both policies see exactly the same
workload (asserted), and the policies are small functions of what the agents see. The
measured numbers are in the assertion messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from simhelpers import (
    CloudPolicy,
    EdgePolicy,
    cloud_odd_to_next_site,
    cloud_pool_first,
    edge_node_slice,
    edge_offload_all,
    edge_pack,
    edge_pack_offload_odd,
    edge_spread,
    run_to_horizon,
    scenario,
)

from sim.core import BatchedCore
from sim.metrics import episode_metrics
from sim.state import TERM_NAMES

HOUR = 3600.0


@dataclass
class Run:
    core: BatchedCore
    metrics: dict[str, float]
    edge_energy_kwh: float
    mean_sleeping: float  # edge nodes asleep, averaged over ticks
    mean_throttle: float  # edge sites' speed factor, averaged over ticks and sites
    arrivals: list[float]  # containers arrived so far, at every tick

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]


def run(name: str, overrides: dict[str, Any], seed: int, edge: EdgePolicy,
        cloud: CloudPolicy = cloud_pool_first) -> Run:
    core = BatchedCore(scenario(name, overrides), batch_size=1, seed=seed)
    edge_nodes = edge_node_slice(core)
    exists = core.topo.node_exists[edge_nodes]
    sleeping: list[float] = []
    throttle: list[float] = []
    arrivals: list[float] = []

    def on_tick(c: BatchedCore, _adv: np.ndarray) -> None:
        sleeping.append(float((c.st.asleep[0, edge_nodes] & exists).sum()))
        throttle.append(float(c.st.throttle[0, : c.S].mean()))
        arrivals.append(float(c.st.arrived[0]))

    run_to_horizon(core, edge, cloud, on_tick=on_tick)
    metrics = {k: float(v[0]) for k, v in episode_metrics(core).items()}
    return Run(
        core=core,
        metrics=metrics,
        edge_energy_kwh=float(core.st.node_energy_j[0, edge_nodes].sum()) / 3.6e6,
        mean_sleeping=float(np.mean(sleeping)),
        mean_throttle=float(np.mean(throttle)),
        arrivals=arrivals,
    )


def same_workload(a: Run, b: Run) -> None:
    assert a.arrivals == b.arrivals, "the two policies did not see the same arrivals"


# --- packing lets nodes sleep -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_packing_saves_edge_energy_against_spreading(seed: int) -> None:
    overrides = {"time.horizon_s": 4 * HOUR}
    pack = run("small", overrides, seed, edge_pack)
    spread = run("small", overrides, seed, edge_spread)
    same_workload(pack, spread)
    summary = (
        f"edge energy pack {pack.edge_energy_kwh:.4f} kWh vs spread {spread.edge_energy_kwh:.4f}"
        f"; sleeping nodes pack {pack.mean_sleeping:.2f} vs spread {spread.mean_sleeping:.2f}"
        f"; offload rate pack {pack['offload_rate']:.3f} vs spread {spread['offload_rate']:.3f}"
    )
    assert pack.edge_energy_kwh < spread.edge_energy_kwh, summary
    assert pack.mean_sleeping > spread.mean_sleeping, summary


# --- running far from the users ----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_running_in_the_cloud_raises_response_time(seed: int) -> None:
    overrides = {"time.horizon_s": 4 * HOUR}
    home = run("default", overrides, seed, edge_pack)
    far = run("default", overrides, seed, edge_offload_all)
    same_workload(home, far)
    assert far["offload_rate"] == 1.0 and home["offload_rate"] < 0.1
    summary = (
        f"response mean home {home['response_ms_mean']:.1f} ms vs cloud "
        f"{far['response_ms_mean']:.1f} ms; SLO violations home "
        f"{home['slo_violation_rate']:.3f} vs cloud {far['slo_violation_rate']:.3f}"
    )
    assert far["response_ms_mean"] > home["response_ms_mean"], summary
    assert far["slo_violation_rate"] > home["slo_violation_rate"], summary


# --- splitting a chatty call graph ---------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_splitting_a_chatty_call_graph_raises_response_time(seed: int) -> None:
    overrides = {"time.horizon_s": 4 * HOUR}
    together = run("dependency-heavy", overrides, seed, edge_pack)
    split = run("dependency-heavy", overrides, seed, edge_pack_offload_odd,
                cloud_odd_to_next_site)
    same_workload(together, split)
    moved = split.core.st.placed_by_cloud_at_edge[0]
    assert moved > 0.2 * split.core.st.arrived[0], "the split policy did not split"
    assert together.core.st.placed_by_cloud_at_edge[0] == 0
    summary = (
        f"response mean together {together['response_ms_mean']:.1f} ms vs split "
        f"{split['response_ms_mean']:.1f} ms; WAN together {together['wan_gb']:.1f} GB vs "
        f"split {split['wan_gb']:.1f} GB; {moved:.0f} containers moved to the next site"
    )
    assert split["response_ms_mean"] > together["response_ms_mean"], summary
    assert split["wan_gb"] > together["wan_gb"], summary


# --- a tighter budget caps more -----------------------------------------------------------


# The fitted usage (mean CPU level about 3% of the request) never reaches the budget once the
# guard has reserved each placement's full allocation: neither budget caps at all (measured:
# 0.0 on default and tight-power over 6 h). Containers that use half their request, the same
# for both budgets, let the daily cycle and the load noise push sites over.
BUSY_CONTAINERS = {"workload.usage.cpu_level_beta": [2.0, 2.0]}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_tighter_budget_causes_more_capping(seed: int) -> None:
    overrides = {"time.horizon_s": 6 * HOUR, **BUSY_CONTAINERS}
    loose = run("default", overrides, seed, edge_pack)
    tight = run("tight-power", overrides, seed, edge_pack)
    same_workload(loose, tight)
    assert tight.core.topo.site_budget_w.max() < loose.core.topo.site_budget_w.min()
    summary = (
        f"capped time default {loose['capped_time_frac']:.4f} vs tight-power "
        f"{tight['capped_time_frac']:.4f}; mean throttle {loose.mean_throttle:.4f} vs "
        f"{tight.mean_throttle:.4f}; offload rate {loose['offload_rate']:.3f} vs "
        f"{tight['offload_rate']:.3f}"
    )
    assert tight["capped_time_frac"] > loose["capped_time_frac"], summary
    assert tight.mean_throttle <= loose.mean_throttle, summary
    capped = TERM_NAMES.index("capped_site_h")
    assert tight.core.st.term_totals[0, capped] > loose.core.st.term_totals[0, capped], summary


def test_budget_override_matches_the_tight_scenario() -> None:
    """`sites.0.power_budget_w` on default is the tight-power scenario's budget knob."""
    overrides = {"time.horizon_s": 2 * HOUR, **BUSY_CONTAINERS}
    by_file = run("tight-power", overrides, 0, edge_pack)
    by_override = run("default", {**overrides, "sites.0.power_budget_w": 35.0}, 0, edge_pack)
    assert by_file.metrics == by_override.metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_load_under_a_tighter_budget_is_capped_more(seed: int) -> None:
    """The capping model itself: identical placements, then one copy's budgets tightened.

    Two cores with the same seed and policy run identically for two hours; then one site
    budget set is cut to 60% and both run on for an hour placing nothing new (every arrival
    offloaded), so the edge load is the same and only the budget differs.
    """
    overrides = {"time.horizon_s": 4 * HOUR, **BUSY_CONTAINERS}
    cores = [BatchedCore(scenario("default", overrides), batch_size=1, seed=seed)
             for _ in range(2)]
    for core in cores:
        while core.st.t_s[0] < 2 * HOUR:
            core.step(edge_pack(core), np.where(core.cloud_view.pending, 2, 0))
    np.testing.assert_array_equal(cores[0].st.node_alloc_cpu, cores[1].st.node_alloc_cpu)
    tight = cores[1]
    tight.topo.site_budget_w[:] *= 0.6  # the kernel reads the topology's budgets each tick
    capped_before = [c.st.capped_site_s.sum() for c in cores]
    for core in cores:
        while core.st.t_s[0] < 3 * HOUR:
            core.step(edge_offload_all(core), np.where(core.cloud_view.pending, 2, 0))
    capped = [c.st.capped_site_s.sum() - b for c, b in zip(cores, capped_before, strict=True)]
    throttle = [c.st.throttle[0, : c.S].mean() for c in cores]
    summary = f"capped site-seconds loose {capped[0]:.0f} vs tight {capped[1]:.0f}"
    assert capped[1] > capped[0], summary
    assert throttle[1] <= throttle[0], summary
