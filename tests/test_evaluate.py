"""The evaluation runner and the `hierarchy evaluate` command, end to end on short episodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hierarchy.scenario import load_scenario
from sim.evaluate import REPORT_METRICS, evaluate, mean_ci95, resolve_policies
from sim.report import write_all

REPO = Path(__file__).resolve().parent.parent
POLICIES = ["first-fit", "cloud-only", "random"]


@pytest.fixture(scope="module")
def short_small():
    return load_scenario("small", {"time.horizon_s": 1800})


@pytest.fixture(scope="module")
def evaluation(short_small):
    return evaluate(short_small, POLICIES, episodes=2, seed=5, progress=False)


def test_results_json_has_every_metric_for_every_policy(evaluation, tmp_path) -> None:
    paths = write_all(evaluation, tmp_path, "hierarchy evaluate --scenario small")
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["scenario"] == "small"
    assert data["episodes"] == 2
    assert data["seeds"] == [5, 6]
    assert list(data["policies"]) == POLICIES
    for name in POLICIES:
        metrics = data["policies"][name]
        assert set(metrics) == set(REPORT_METRICS)
        for m in REPORT_METRICS:
            assert set(metrics[m]) == {"mean", "ci95"}
        assert metrics["cost"]["mean"] > 0
        assert metrics["decision_us_p50"]["mean"] > 0
    assert data["policies"]["cloud-only"]["offload_rate"]["mean"] == 1.0
    assert all(p.exists() for p in paths)


def test_every_policy_runs_on_the_same_seeds(evaluation) -> None:
    for result in evaluation.results.values():
        assert [e.seed for e in result.episodes] == [5, 6]


def test_same_seed_gives_the_same_episode(short_small) -> None:
    a = evaluate(short_small, ["random"], episodes=1, seed=2, progress=False)
    b = evaluate(short_small, ["random"], episodes=1, seed=2, progress=False)
    ma, mb = a.results["random"].episodes[0].metrics, b.results["random"].episodes[0].metrics
    for m in REPORT_METRICS:
        if not m.startswith("decision_us"):
            assert ma[m] == mb[m] or (np.isnan(ma[m]) and np.isnan(mb[m])), m


def test_report_has_a_row_per_policy_and_the_command(evaluation, tmp_path) -> None:
    command = "hierarchy evaluate --scenario small --policies first-fit,cloud-only,random"
    write_all(evaluation, tmp_path, command)
    report = (tmp_path / "report.md").read_text()
    assert command in report
    rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(POLICIES)  # header + one row per policy
    for name in POLICIES:
        assert any(row.startswith(f"| {name} |") for row in rows)
    assert "**" in report  # best values are marked


def test_plots_are_written(evaluation, tmp_path) -> None:
    write_all(evaluation, tmp_path, "cmd")
    pngs = {p.name for p in (tmp_path / "plots").glob("*.png")}
    assert {f"{m}.png" for m in REPORT_METRICS} <= pngs
    assert "site_power.png" in pngs
    for name in pngs:
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_power_series_has_one_row_per_tick(evaluation, short_small) -> None:
    ep = evaluation.results["first-fit"].episodes[0]
    ticks = int(short_small.time.horizon_s / short_small.time.step_s)
    assert ep.site_power_w.shape == (ticks, 3)
    assert np.allclose(ep.t_s, np.arange(1, ticks + 1) * short_small.time.step_s)


def test_mean_ci95_is_a_t_interval() -> None:
    s = mean_ci95(np.array([1.0, 2.0, 3.0]))
    assert s["mean"] == pytest.approx(2.0)
    assert s["ci95"] == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))
    assert mean_ci95(np.array([4.0])) == {"mean": 4.0, "ci95": None}
    assert mean_ci95(np.array([np.nan])) == {"mean": None, "ci95": None}


def test_all_expands_to_every_heuristic(short_small) -> None:
    from hierarchy.policies.registry import POLICY_NAMES

    names = list(resolve_policies(short_small, ["all"]))
    assert names[: len(POLICY_NAMES)] == list(POLICY_NAMES)


# --- the command line --------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hierarchy.cli", *args], cwd=REPO, capture_output=True,
        text=True, timeout=600,
    )


def test_cli_evaluate_writes_results_and_prints_the_table(tmp_path) -> None:
    out = tmp_path / "eval"
    proc = run_cli("evaluate", "--scenario", "small", "--policies", "first-fit,power-aware",
                   "--episodes", "2", "--seed", "1", "--horizon-s", "900", "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "| first-fit |" in proc.stdout and "| power-aware |" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["seeds"] == [1, 2]
    assert "--horizon-s 900" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policies", "first-fit,no-such-policy"], "unknown policy 'no-such-policy'"),
        (["--scenario", "no-such-scenario"], "unknown scenario"),
        (["--scenario", "/no/such/file.yaml"], "no such scenario file"),
        (["--set", "time.no_such_field=3"], "no_such_field"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(tmp_path, args, message) -> None:
    base = ["evaluate", "--scenario", "small", "--episodes", "1", "--out", str(tmp_path)]
    proc = run_cli(*base, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results.json").exists()


def test_cli_out_that_is_a_file_exits_2(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("evaluate", "--scenario", "small", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert "choose another --out" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_lists_scenarios() -> None:
    proc = run_cli("scenarios")
    assert proc.returncode == 0
    assert any(line.startswith("small ") for line in proc.stdout.splitlines())
    assert "3 edge sites" in proc.stdout


def test_cli_help_explains_evaluate() -> None:
    proc = run_cli("evaluate", "--help")
    assert proc.returncode == 0
    for flag in ("--scenario", "--policies", "--episodes", "--seed", "--out"):
        assert flag in proc.stdout
