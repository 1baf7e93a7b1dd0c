"""Scenario files: shipped ones load and validate, `extends` merges, bad files fail clearly."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import BaseModel

from hierarchy.scenario import (
    Scenario,
    ScenarioError,
    available_scenarios,
    load_scenario,
    resolve_scenario_path,
)
from sim.core import BatchedCore
from sim.topology import build_topology

SHIPPED = ("bursty", "default", "dependency-heavy", "large", "small", "tight-power")


def raw(name: str) -> dict[str, Any]:
    return yaml.safe_load(resolve_scenario_path(name).read_text())


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def sources(model: BaseModel, where: str = "") -> dict[str, str]:
    """Every `source` string in a scenario, by dotted location."""
    found = {}
    if "source" in type(model).model_fields:
        found[where or "(top)"] = model.source
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = (
            value.items() if isinstance(value, dict)
            else enumerate(value) if isinstance(value, list | tuple)
            else [(None, value)]
        )
        for key, item in items:
            if isinstance(item, BaseModel):
                loc = f"{where}.{name}" if where else name
                found |= sources(item, loc if key is None else f"{loc}.{key}")
    return found


# --- shipped scenarios ----------------------------------------------------------------------


def test_every_shipped_scenario_is_listed() -> None:
    assert set(SHIPPED) <= set(available_scenarios())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads_and_validates(name: str) -> None:
    sc = load_scenario(name)
    assert isinstance(sc, Scenario)
    assert sc.name == name, "a scenario's name matches its file"
    assert sc.description
    assert sc.num_sites >= 1
    # Every constant carries its source.
    found = sources(sc)
    assert len(found) >= 10
    assert all(isinstance(s, str) and s.strip() for s in found.values()), found
    # The model round-trips: a dumped scenario validates to the same scenario.
    assert Scenario.model_validate(sc.model_dump()) == sc
    # Consistent ranges the validators do not all enforce.
    for group in sc.sites:
        assert all(n >= 1 for n in group.nodes.values())
    assert sum(sc.cloud.nodes.values()) >= 1
    assert sc.workload.lifetimes.min_s <= sc.workload.lifetimes.max_s
    assert sc.sizing.resize_min_frac <= sc.sizing.resize_max_frac
    assert math.isclose(sum(sc.workload.apps.size_pmf), 1.0, abs_tol=1e-3)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_builds_a_platform(name: str) -> None:
    sc = load_scenario(name)
    topo = build_topology(sc)
    assert topo.num_sites == sc.num_sites
    assert topo.node_exists[: topo.num_edge_nodes].reshape(topo.num_sites, -1).any(axis=1).all()
    assert (topo.site_budget_w > 0).all()
    np.testing.assert_array_equal(topo.rtt_ms, topo.rtt_ms.T)
    core = BatchedCore(sc, batch_size=1, seed=0)
    assert core.edge_obs.shape == (1, topo.num_sites, core.edge_encoder.spec.dim)
    assert core.cloud_obs.shape == (1, core.cloud_encoder.spec.dim)
    assert np.isfinite(core.edge_obs).all() and np.isfinite(core.cloud_obs).all()


def test_named_and_path_lookup_agree(tmp_path: Path) -> None:
    by_name = load_scenario("small")
    by_path = load_scenario(resolve_scenario_path("small"))
    assert by_name == by_path
    assert load_scenario(by_name) is by_name


def test_scenario_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "mine", {"extends": "small", "name": "mine"})
    monkeypatch.setenv("HIERARCHY_SCENARIOS", str(tmp_path))
    assert "mine" in available_scenarios()
    assert load_scenario("mine").name == "mine"


# --- extends --------------------------------------------------------------------------------


def test_extends_merges_deeply() -> None:
    base, small = load_scenario("default"), load_scenario("small")
    small_raw = raw("small")
    # What small leaves out comes from default; what it sets replaces default's.
    assert small.time == base.time
    assert small.node_types == base.node_types
    assert small.workload == base.workload
    assert small.reward == base.reward
    assert small.sites[0].count == small_raw["sites"][0]["count"] == 3
    assert small.cloud.nodes == {"x3550": 4}
    assert small.limits.max_apps == small_raw["limits"]["max_apps"]


def test_extends_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    child = {
        "extends": "small",
        "name": "child",
        "workload": {"apps": {"data_prob": 0.25, "calls_pmf": [0.7, 0.2, 0.05, 0.05]}},
        "time": {"horizon_s": 1234},
    }
    sc = load_scenario(write(tmp_path, "child", child))
    small = load_scenario("small")
    assert sc.name == "child"
    assert sc.description == small.description
    assert sc.workload.apps.data_prob == 0.25
    assert sc.workload.apps.calls_pmf == [0.7, 0.2, 0.05, 0.05]
    # Siblings of overridden fields are kept.
    assert sc.workload.apps.size_pmf == small.workload.apps.size_pmf
    assert sc.workload.arrivals == small.workload.arrivals
    assert sc.time.horizon_s == 1234 and sc.time.step_s == small.time.step_s
    assert sc.sites == small.sites  # from small, two levels up is default


def test_extends_sibling_file_wins_over_named(tmp_path: Path) -> None:
    parent = raw("small") | {"name": "small"}
    parent["time"] = dict(parent.get("time", raw("default")["time"]), step_s=30)
    parent.pop("extends")
    parent = raw("default") | {k: v for k, v in parent.items()}
    write(tmp_path, "small", parent)
    write(tmp_path, "kid", {"extends": "small", "name": "kid"})
    assert load_scenario(tmp_path / "kid.yaml").time.step_s == 30


def test_extends_cycle_fails(tmp_path: Path) -> None:
    write(tmp_path, "a", {"extends": "b", "name": "a"})
    write(tmp_path, "b", {"extends": "a", "name": "b"})
    with pytest.raises(ScenarioError, match="cycle"):
        load_scenario(tmp_path / "a.yaml")


def test_unknown_parent_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "orphan", {"extends": "nonexistent", "name": "orphan"})
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "nonexistent" in str(err.value)
    assert str(path) in str(err.value)


# --- bad files ------------------------------------------------------------------------------


def _drop(path: tuple) -> Any:
    def edit(d: dict) -> dict:
        node = d
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return d
    return edit


def _set(path: tuple, value: Any) -> Any:
    def edit(d: dict) -> dict:
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return d
    return edit


BAD_FIELDS = {
    # case: (edit of default's raw dict, words the message must contain)
    "missing field": (_drop(("time", "step_s")), ["time.step_s", "required"]),
    "missing section": (_drop(("reward",)), ["reward", "required"]),
    "wrong type": (_set(("sites", 0, "power_budget_w"), "lots"),
                   ["sites.0.power_budget_w", "number"]),
    "wrong type in a list": (_set(("workload", "apps", "size_pmf"), "uniform"),
                             ["workload.apps.size_pmf", "list"]),
    "negative budget": (_set(("sites", 0, "power_budget_w"), -5), ["sites.0.power_budget_w"]),
    "zero budget": (_set(("sites", 0, "power_budget_w"), 0), ["sites.0.power_budget_w"]),
    "pmf not summing to 1": (_set(("workload", "apps", "size_pmf"), [0.5, 0.4]),
                             ["size_pmf", "sum to 1"]),
    "negative pmf": (_set(("workload", "containers", "cpu_request_pmf"),
                          [1.2, -0.2, 0.0, 0.0]), ["cpu_request_pmf"]),
    "pmf of the wrong length": (_set(("workload", "containers", "cpu_request_pmf"), [1.0]),
                                ["cpu_request_pmf"]),
    "unknown node type at a site": (_set(("sites", 0, "nodes"), {"n100": 6, "gpu9000": 1}),
                                    ["gpu9000", "node_types"]),
    "unknown node type in the cloud": (_set(("cloud", "nodes"), {"mainframe": 2}),
                                       ["mainframe", "node_types"]),
    "unknown field": (_set(("time", "tick_s"), 60), ["time.tick_s", "extra"]),
    "idle above max": (_set(("node_types", "n100", "power_idle_w"), 30.0),
                       ["node_types.n100", "power_max_w"]),
    "short power curve": (_set(("node_types", "n100", "power_curve_w"), [1.0, 2.0]),
                          ["node_types.n100", "11 values"]),
    "start hour past midnight": (_set(("time", "start_hour"), 24.0), ["time.start_hour"]),
    "bad rtt matrix": (_set(("network", "inter_site_rtt_ms"), [[0.0, 1.0]]),
                       ["inter_site_rtt_ms"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_bad_field_fails_naming_file_and_field(tmp_path: Path, case: str) -> None:
    edit, words = BAD_FIELDS[case]
    path = write(tmp_path, "bad", edit(copy.deepcopy(raw("default"))))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    for word in words:
        assert word.lower() in msg.lower(), f"{word!r} not in {msg!r}"


def test_bad_field_in_an_extending_file(tmp_path: Path) -> None:
    path = write(tmp_path, "kid", {"extends": "small", "name": "kid",
                                   "limits": {"max_apps": "many"}})
    with pytest.raises(ScenarioError, match=r"limits\.max_apps") as err:
        load_scenario(path)
    assert str(path) in str(err.value)


def test_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "broken", "name: [unclosed\ntime: {step_s: 60\n")
    with pytest.raises(ScenarioError, match="YAML") as err:
        load_scenario(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "flat", text)
    with pytest.raises(ScenarioError, match="mapping") as err:
        load_scenario(path)
    assert str(path) in str(err.value)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario("no-such-scenario")
    msg = str(err.value)
    assert "no-such-scenario" in msg
    assert "small" in msg and "default" in msg


def test_missing_file_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ScenarioError, match="absent.yaml"):
        load_scenario(path)


def test_scenario_error_is_a_value_error() -> None:
    assert issubclass(ScenarioError, ValueError)


# --- overrides ------------------------------------------------------------------------------


def test_overrides_apply() -> None:
    sc = load_scenario("small", {"time.horizon_s": 3600, "sites.0.power_budget_w": 20.0,
                                 "workload__load_factor": 2.0,
                                 "workload.apps.size_pmf": [0.5, 0.5]})
    assert sc.time.horizon_s == 3600
    assert sc.sites[0].power_budget_w == 20.0
    assert sc.workload.load_factor == 2.0
    assert sc.max_app_size == 2
    # The file on disk is untouched: a second load sees the original values.
    assert load_scenario("small").time.horizon_s == raw("default")["time"]["horizon_s"]


def test_overrides_on_a_scenario_object() -> None:
    base = load_scenario("small")
    sc = load_scenario(base, {"time.step_s": 30})
    assert sc.time.step_s == 30 and base.time.step_s == 60
    with pytest.raises(ScenarioError, match="small"):
        load_scenario(base, {"time.step_s": -1})


@pytest.mark.parametrize("path, words", [
    ("bogus.x", ["bogus.x", "bogus"]),
    ("time.nope.x", ["time.nope.x", "nope"]),
    ("sites.7.power_budget_w", ["sites.7.power_budget_w", "7"]),
    ("time.horizon_s.x", ["time.horizon_s.x"]),
    ("time.tick_s", ["time.tick_s"]),
])
def test_override_with_a_bad_path_fails_clearly(path: str, words: list[str]) -> None:
    with pytest.raises(ScenarioError) as err:
        load_scenario("small", {path: 1})
    msg = str(err.value)
    assert "small.yaml" in msg, msg
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"


def test_override_with_a_bad_value_names_the_field() -> None:
    with pytest.raises(ScenarioError, match=r"time\.horizon_s"):
        load_scenario("small", {"time.horizon_s": "soon"})
    with pytest.raises(ScenarioError, match=r"sites\.0\.power_budget_w"):
        load_scenario("small", {"sites.0.power_budget_w": -1})


def test_env_overrides_use_the_same_paths() -> None:
    from sim.edge_cloud_v0 import parallel_env

    env = parallel_env("small", seed=0, horizon_s=600, sites__0__power_budget_w=21.0)
    assert env.scenario.time.horizon_s == 600
    assert env.scenario.sites[0].power_budget_w == 21.0
    with pytest.raises(ScenarioError):
        parallel_env("small", seed=0, no_such_knob=1)


# --- validation gaps found by these tests -----------------------------------------------------


@pytest.mark.parametrize("nodes", [{"n100": -1, "pi5": 1}, {"n100": 0, "pi5": 0}, {}])
def test_site_without_nodes_is_refused(nodes: dict) -> None:
    with pytest.raises(ScenarioError, match="nodes"):
        load_scenario("small", {"sites.0.nodes": nodes})


def test_empty_cloud_pool_is_refused_or_rejects_offloads() -> None:
    try:
        sc = load_scenario("small", {"cloud.nodes": {}})
    except ScenarioError:
        return
    core = BatchedCore(sc, batch_size=1, seed=0)
    for _ in range(50):  # invalid actions: everything is offloaded to the (empty) pool
        core.step(np.zeros((1, core.S), dtype=np.int64), np.zeros(1, dtype=np.int64))
    assert np.isfinite(core.edge_obs).all() and np.isfinite(core.cloud_obs).all()
    assert core.st.offloaded[0] > 0
    assert core.st.rejected[0] == core.st.offloaded[0] - core.st.cq_len[0]
    assert core.st.placed_cloud_pool[0] == 0


def test_unlimited_budget_is_refused_or_observable() -> None:
    try:
        sc = load_scenario("small", {"sites.0.power_budget_w": float("inf")})
    except ScenarioError:
        return
    core = BatchedCore(sc, batch_size=1, seed=0)
    core.step(np.zeros((1, core.S), dtype=np.int64), np.zeros(1, dtype=np.int64))
    assert np.isfinite(core.edge_obs).all() and np.isfinite(core.cloud_obs).all()


@pytest.mark.parametrize("overrides", [
    {"workload.lifetimes.min_s": 5000.0, "workload.lifetimes.max_s": 100.0},
    {"sizing.resize_min_frac": 3.0, "sizing.resize_max_frac": 2.0},
])
def test_inverted_ranges_are_refused(overrides: dict) -> None:
    with pytest.raises(ScenarioError):
        load_scenario("small", overrides)
