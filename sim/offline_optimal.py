"""`offline-optimal`: the best placement with every arrival known in advance, replayed.

For a seed, the episode's workload is recorded (sim.offline_record), the placement that
minimises the scenario's cost over it is solved as a mixed-integer program (sim.offline_milp,
SciPy's `milp` with HiGHS), and the solution is replayed through the ordinary policy
interface, so that its metrics are measured by the same runner as every other policy. It
knows the future: it is a bound for the heuristics, not a scheduler.

What it optimises over: each container on a node of its home site at any size level, or in
the cloud pool; resizing off (knob level 0); no power capping. That is the action space of
every heuristic baseline here, except that the cloud level of the baselines may also send a
container to another site, and that their pool may spread over several nodes.

It applies where the program solves in well under a minute (`small`-sized platforms, horizons
up to `MAX_HORIZON_S`) and where the simulator's cost is linear in the placement (linear edge
power curves, resizing off at knob level 0, containers that start within a tick, no container
running out of memory at its request).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hierarchy.actions import CLOUD_POOL
from hierarchy.observation import CloudView, EdgeView
from hierarchy.policies.base import Policy
from hierarchy.policies.heuristics import STATIC_HEADROOM
from hierarchy.scenario import Scenario
from sim.core import BatchedCore
from sim.offline_milp import Infeasible, MilpSolution, solve_placement
from sim.offline_record import RecordedEpisode, out_of_memory, record_episode
from sim.topology import build_topology

NAME = "offline-optimal"
# Problem sizes it is run on: beyond them the program can take minutes (measured on `small`:
# 20 ticks solve in 0.1-30 s, 30 ticks in 0.3 s to more than two minutes).
MAX_HORIZON_S = 1200.0
MAX_EDGE_NODES = 16
TIME_LIMIT_S = 120.0

NOTE = (
    "offline-optimal knows every arrival in advance and solves the placement (a home-site "
    "node at any size level, or the cloud pool; static allocations) as a mixed-integer "
    "program (SciPy milp/HiGHS), then replays it in the simulator: a bound, not a scheduler. "
    "Its decision times are the replay's (a table lookup), not the solve's."
)


class OfflineOptimalError(RuntimeError):
    """The offline optimum cannot be computed for this scenario or seed; says why."""


def offline_optimal_applies(scenario: Scenario) -> tuple[bool, str]:
    """(True, "") where the offline optimum can be solved exactly; else (False, the reason)."""
    sc = scenario
    topo = build_topology(sc)
    edge_nodes = int(topo.node_exists[: topo.num_edge_nodes].sum())
    if edge_nodes > MAX_EDGE_NODES:
        return False, f"{edge_nodes} edge nodes (it solves up to {MAX_EDGE_NODES}; use small)"
    if sc.time.horizon_s > MAX_HORIZON_S:
        return False, (f"horizon {sc.time.horizon_s:g} s (it solves up to {MAX_HORIZON_S:g} s;"
                       f" pass --horizon-s {MAX_HORIZON_S:g})")
    if 1.0 not in sc.sizing.size_levels:
        return False, "no size level at 1.0 x request"
    if sc.sizing.headroom_levels[STATIC_HEADROOM] >= 0:
        return False, "headroom level 0 does not switch resizing off"
    if topo.node_curves is not None:
        edge = topo.node_curves[: topo.num_edge_nodes]
        if not np.allclose(edge, np.linspace(0.0, 1.0, 11)):
            return False, "edge nodes with non-linear power curves"
    if sc.sizing.startup_s + float(topo.node_wake_s.max()) >= sc.time.step_s:
        return False, "containers take longer than a tick to start"
    if topo.num_cloud_nodes < 1:
        return False, "no cloud pool"
    return True, ""


@dataclass
class OfflinePlan:
    """Per site, the planned edge action of each container in decision order."""

    actions: list[list[int]]
    expect: list[list[tuple[int, float]]]  # (k, cpu request) to check the replay's sync
    solution: MilpSolution
    record: RecordedEpisode
    info: dict = field(default_factory=dict)


def plan_episode(scenario: Scenario, seed: int, time_limit_s: float = TIME_LIMIT_S
                 ) -> OfflinePlan:
    """Record the workload of `seed`, solve its placement and turn it into edge actions."""
    ok, why = offline_optimal_applies(scenario)
    if not ok:
        raise OfflineOptimalError(f"offline-optimal does not apply to {scenario.name}: {why}")
    started = time.perf_counter()
    core = BatchedCore(scenario, batch_size=1, seed=seed, record_metrics=False)
    rec = record_episode(scenario, seed)
    for app in rec.apps:
        if any(out_of_memory(app, k, 1.0, scenario.time.step_s) for k in range(app.size)):
            raise OfflineOptimalError(
                f"seed {seed}: a container would run out of memory at its request within the "
                "horizon, which the program leaves out (shorten the horizon)"
            )
    sol = None
    for pool_nodes in range(1, core.topo.num_cloud_nodes + 1):
        try:
            sol = solve_placement(scenario, core.topo, rec, core.curve_table, pool_nodes,
                                  time_limit_s)
            break
        except Infeasible:
            continue
        except RuntimeError as exc:
            raise OfflineOptimalError(f"seed {seed}: {exc}") from None
    if sol is None:
        raise OfflineOptimalError(f"seed {seed}: no placement satisfies the constraints")
    layout, M, first_pool = core.edge_layout, core.M, core.S * core.M
    actions: list[list[int]] = [[] for _ in range(core.S)]
    expect: list[list[tuple[int, float]]] = [[] for _ in range(core.S)]
    for s in range(core.S):
        for idx, k in rec.order[s]:
            node, level = sol.node[idx, k]
            if node >= first_pool:  # offload: the cloud level sends it to the pool
                actions[s].append(layout.encode_offload(STATIC_HEADROOM))
            else:
                actions[s].append(layout.encode_place(node - s * M, level, STATIC_HEADROOM))
            expect[s].append((k, float(rec.apps[idx].cpu_req[k])))
    info = {
        "model_cost": sol.objective, "lower_bound": sol.lower_bound, "status": sol.status,
        "pool_nodes": sol.pool_nodes, "solve_s": time.perf_counter() - started,
        "variables": sol.variables, "integers": sol.integers, "constraints": sol.constraints,
        "containers": sum(a.size for a in rec.apps), "cloud_deviations": 0,
    }
    return OfflinePlan(actions, expect, sol, rec, info)


class ReplayEdge:
    """Edge decider that plays a plan back, checking it meets the containers it expects."""

    def __init__(self, plan: OfflinePlan) -> None:
        self.plan = plan
        self.info = plan.info  # read by the runner
        self.cursor = np.zeros(len(plan.actions), dtype=np.int64)

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        pending = np.asarray(view.pending, dtype=bool)
        if pending.ndim != 2 or pending.shape[0] != 1:
            raise ValueError("offline-optimal replays one copy: views of shape (1, S)")
        out = np.zeros(pending.shape, dtype=np.int64)
        for s in np.nonzero(pending[0])[0]:
            i = int(self.cursor[s])
            k, cpu = self.plan.expect[s][i]
            if int(view.k_index[0, s]) != k or not np.isclose(view.cpu_req[0, s], cpu):
                raise OfflineOptimalError(f"replay out of step at site {s}, decision {i}")
            action = self.plan.actions[s][i]
            if mask[0, s, action] != 1:
                raise OfflineOptimalError(f"the guard refused the plan at site {s}, decision {i}")
            out[0, s] = action
            self.cursor[s] += 1
        return out


class ReplayCloud:
    """Cloud decider of a plan: everything offloaded goes to the pool.

    With one pool node the plan guarantees it fits; with more, the core's best fit packs the
    pool its own way, and a container that no longer fits goes where the mask allows
    (counted in the plan's `cloud_deviations`).
    """

    def __init__(self, plan: OfflinePlan) -> None:
        self.plan = plan

    def __call__(self, view: CloudView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        pending = np.asarray(view.pending, dtype=bool)
        mask = np.asarray(mask)
        pool_ok = mask[..., CLOUD_POOL] == 1
        refused = pending & ~pool_ok
        if refused.any():
            if self.plan.solution.pool_nodes == 1:
                raise OfflineOptimalError("the cloud pool refused a planned container")
            self.plan.info["cloud_deviations"] += int(refused.sum())
        other = np.argmax(mask, axis=-1)  # any allowed action (reject only when nothing fits)
        return np.where(pending, np.where(pool_ok, CLOUD_POOL, other), 0).astype(np.int64)


def offline_optimal_policy(scenario: Scenario, seed: int) -> Policy:
    """Solve `seed`'s episode and return the policy that replays the solution."""
    plan = plan_episode(scenario, seed)
    return Policy(name=NAME, edge=ReplayEdge(plan), cloud=ReplayCloud(plan))


def offline_optimal_factory():  # noqa: ANN201 - a sim.evaluate.PolicyFactory
    def build(scenario: Scenario, core: BatchedCore, seed: int) -> Policy:
        return offline_optimal_policy(scenario, seed)

    return build
