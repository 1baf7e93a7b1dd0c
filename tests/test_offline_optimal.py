"""The offline optimum: its recorded workload, its model against the simulator, and the bound."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hierarchy.policies.base import Policy
from hierarchy.policies.registry import STANDARD_POLICY_NAMES
from hierarchy.scenario import load_scenario
from sim.core import BatchedCore
from sim.evaluate import evaluate, heuristic_factory, run_episode
from sim.offline_optimal import (
    MAX_HORIZON_S,
    NAME,
    ReplayCloud,
    ReplayEdge,
    offline_optimal_applies,
    plan_episode,
)
from sim.report import report_markdown

REPO = Path(__file__).resolve().parent.parent
# The instances where it runs: `small`, 20 ticks; these seeds solve in seconds.
SEEDS = (0, 1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("small", {"time.horizon_s": MAX_HORIZON_S})


@pytest.fixture(scope="module")
def plans(scenario):
    return {seed: plan_episode(scenario, seed) for seed in SEEDS}


def replay(scenario, plan, seed: int):
    return run_episode(
        scenario, lambda sc, core, s: Policy(NAME, ReplayEdge(plan), ReplayCloud(plan)), seed
    )


@pytest.fixture(scope="module")
def measured(scenario, plans):
    """seed -> {policy: measured episode cost}, offline-optimal and the standard heuristics."""
    out = {}
    for seed in SEEDS:
        costs = {NAME: replay(scenario, plans[seed], seed).metrics["cost"]}
        for name in STANDARD_POLICY_NAMES:
            costs[name] = run_episode(scenario, heuristic_factory(name), seed).metrics["cost"]
        out[seed] = costs
    return out


def test_applies_only_where_it_solves() -> None:
    assert offline_optimal_applies(load_scenario("small", {"time.horizon_s": 1200}))[0]
    ok, why = offline_optimal_applies(load_scenario("small"))
    assert not ok and "horizon" in why and "--horizon-s" in why
    ok, why = offline_optimal_applies(load_scenario("default", {"time.horizon_s": 1200}))
    assert not ok and "edge nodes" in why


def test_solutions_are_proven_optimal(plans) -> None:
    for plan in plans.values():
        assert plan.info["status"] == "optimal"
        assert plan.info["lower_bound"] == pytest.approx(plan.info["model_cost"], abs=1e-12)


def test_recorded_demand_is_what_the_simulator_computes(scenario, plans) -> None:
    plan = plans[1]
    core = BatchedCore(scenario, batch_size=1, seed=1)
    edge, cloud = ReplayEdge(plan), ReplayCloud(plan)
    tick, checked = 0, 0
    while True:
        out = core.step(edge(core.edge_view, core.edge_mask, core.edge_obs),
                        cloud(core.cloud_view, core.cloud_mask, core.cloud_obs))
        if out.advanced[0]:
            tick += 1
            for app in plan.record.apps:
                # An app's slot may be reused in the tick it leaves: compare before that.
                if app.instant < tick < app.last_tick or (tick == app.last_tick
                                                          and not app.departs):
                    got = core.st.c_demand_cpu[0, app.slot, : app.size]
                    np.testing.assert_allclose(got, app.demand[tick - app.instant - 1],
                                               rtol=1e-12, atol=1e-15)
                    checked += 1
        if out.truncated[0]:
            break
    assert checked > 20


def test_the_model_is_the_simulator(scenario, plans, measured) -> None:
    # Energy, latency and violations are exact in the program; only CPU contention is left
    # out, and it did not change any response across an SLO on these instances.
    for seed in SEEDS:
        assert measured[seed][NAME] == pytest.approx(plans[seed].info["model_cost"], abs=1e-9)


def test_offline_optimal_is_no_worse_than_any_heuristic(plans, measured) -> None:
    # Its program places at request size with resizing off: a bound for the heuristics that
    # do the same, not for those given the sizing levers (power-aware-resize beats it).
    for seed in SEEDS:
        costs = measured[seed]
        for name in STANDARD_POLICY_NAMES:
            assert costs[NAME] <= costs[name] + 1e-12, (seed, name, costs)
            # The proven lower bound of the program holds as well.
            assert plans[seed].info["lower_bound"] <= costs[name] + 1e-12


def test_the_runner_reports_it_as_a_bound(scenario) -> None:
    ev = evaluate(scenario, ["first-fit", NAME], episodes=1, seed=4, progress=False)
    assert list(ev.results) == ["first-fit", NAME]
    assert "lower bound" in ev.notes[NAME]
    report = report_markdown(ev, "hierarchy evaluate ...")
    assert f"| {NAME} (bound) |" in report
    assert ev.ranked_by("cost") == ["first-fit"]  # bounds are not ranked


def test_all_leaves_it_out_where_it_does_not_apply() -> None:
    ev = evaluate(load_scenario("small", {"time.horizon_s": 1800}), ["all"], episodes=1,
                  progress=False)
    assert NAME not in ev.results
    assert "not run" in ev.notes[NAME]


def test_cli_refuses_it_where_it_does_not_apply(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hierarchy.cli", "evaluate", "--scenario", "default",
         "--policies", NAME, "--episodes", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "does not apply" in proc.stderr and "Traceback" not in proc.stderr
