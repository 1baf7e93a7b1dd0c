"""Trace-driven workloads: `trace-default` loads and runs; bad trace files are named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hierarchy.scenario import ScenarioError, load_scenario, resolve_scenario_path
from sim.core import BatchedCore

TRACE_DIR = resolve_scenario_path("trace-default").parent / "traces"


def test_trace_default_loads_and_runs_an_episode() -> None:
    sc = load_scenario("trace-default", {"time.horizon_s": 2 * 3600})
    assert sc.workload.trace is not None
    assert Path(sc.workload.trace.usage).is_file()
    core = BatchedCore(sc, batch_size=1, seed=0)
    assert core.catalogue.services == len(core.catalogue.tables.graphs) > 0
    assert (core.pools.fields["series"][0] >= -1).all()
    rng = np.random.default_rng(0)
    steps = 0
    while True:
        edge = (rng.random(core.edge_mask.shape) * core.edge_mask).argmax(-1)
        out = core.step(edge, np.full(core.B, 2))  # the cloud pool
        steps += 1
        low, high = core.edge_bounds
        assert (core.edge_obs >= low - 1e-6).all() and (core.edge_obs <= high + 1e-6).all()
        if out.truncated.all():
            break
    st = core.st
    assert st.arrived[0] > 0 and st.requests[0] > 0
    # Containers replay real series: some CPU was used, and services were observed.
    assert st.used_core_s[0] > 0
    assert (st.svc_stats[..., 0] > 0).any()


def test_trace_files_ship_inside_the_package_and_are_small() -> None:
    files = [p for p in TRACE_DIR.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"README.md"}
    assert sum(p.stat().st_size for p in files) < 1_000_000


def write_scenario(tmp_path: Path, **trace: str) -> Path:
    fields = {"usage": "u.csv", "callgraphs": "g.jsonl", **trace}
    lines = ["extends: default", "name: t", "description: t", "workload:", "  trace:"]
    lines += [f"    {k}: {v}" for k, v in fields.items()]
    lines += ["    source: test"]
    path = tmp_path / "t.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def trace_files(tmp_path: Path) -> Path:
    shutil.copy(TRACE_DIR / "alibaba2022_callgraphs_40.jsonl", tmp_path / "g.jsonl")
    (tmp_path / "u.csv").write_text("container_id,t_s,cpu_cores,mem_gib,cpu_request_cores\n"
                                    "a,0,0.5,1.0,2\na,300,0.7,1.1,2\n")
    return tmp_path


def test_paths_are_relative_to_the_scenario_file(trace_files: Path) -> None:
    sc = load_scenario(write_scenario(trace_files))
    assert Path(sc.workload.trace.usage) == trace_files / "u.csv"
    core = BatchedCore(sc, batch_size=1, seed=0)
    assert core.catalogue.tables.cpu_frac.shape[0] == 1


def test_a_missing_trace_file_names_the_scenario_and_field(trace_files: Path) -> None:
    path = write_scenario(trace_files, arrivals="nowhere.csv")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg and "workload.trace.arrivals" in msg and "nowhere.csv" in msg


def test_a_malformed_trace_file_names_the_scenario_field_and_line(trace_files: Path) -> None:
    (trace_files / "u.csv").write_text("container_id,t_s,cpu_cores,mem_gib\na,0,oops,1\n")
    path = write_scenario(trace_files)
    sc = load_scenario(path)
    with pytest.raises(ScenarioError) as err:
        BatchedCore(sc, batch_size=1, seed=0)
    msg = str(err.value)
    assert str(path) in msg and "workload.trace.usage" in msg and "u.csv:2" in msg


def test_a_call_graph_file_without_entries_is_refused(trace_files: Path) -> None:
    (trace_files / "g.jsonl").write_text(
        '{"nodes": ["a", "b"], "edges": [{"source": "a", "target": "b", "weight": 1}]}\n')
    sc = load_scenario(write_scenario(trace_files))
    with pytest.raises(ScenarioError, match="workload.trace.callgraphs"):
        BatchedCore(sc, batch_size=1, seed=0)
