"""benchmarks/where_placed.py: its per-episode profile agrees with the evaluation runner."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hierarchy.scenario import load_scenario
from sim.evaluate import resolve_policies, run_episode

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "where_placed.py"


def load_script():  # noqa: ANN201 - the benchmark script as a module
    spec = importlib.util.spec_from_file_location("where_placed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("policy", ["power-aware-resize", "k8s-default"])
def test_the_profile_adds_up_to_the_runner_s_episode(policy: str) -> None:
    where = load_script()
    sc = load_scenario("small")
    factory = resolve_policies(sc, [policy])[policy]
    row = where.profile(sc, factory, 3, big_w=3.0)
    metrics = run_episode(sc, factory, 3).metrics
    assert row["cost"] == pytest.approx(metrics["cost"], rel=1e-6)
    assert row["energy_kwh"] == pytest.approx(metrics["energy_kwh"], rel=1e-6)
    assert row["placed_big"] + row["placed_small"] > 0
    assert row["awake_big"] >= 0 and row["awake_small"] >= 0
