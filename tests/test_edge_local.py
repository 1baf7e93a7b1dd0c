"""The edge agent's parts that need no broker: the store, the sim backend and the decider."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.backends.base import Placement
from edge_agent.backends.sim import SimSiteBackend, site_index_from_id
from edge_agent.config import ConfigError, load_config
from edge_agent.decide import PeerBook, SiteDecider
from edge_agent.store import PendingOffload, Store
from hierarchy import protocol as p
from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.policies.registry import POLICY_NAMES, make_policy


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def request(i: int, cpu: float = 0.5, mem: float = 1.0, **extra: object) -> p.Request:
    return p.Request(request_id=f"r{i}", app="app", container=f"c{i}", cpu_cores=cpu,
                     mem_gib=mem, slo_ms=100.0, **extra)


def decider(policy: str = "power-aware", budget_w: float | None = None,
            clock: Clock | None = None) -> tuple[SiteDecider, SimSiteBackend]:
    backend = SimSiteBackend("small", "edge-0", clock=clock or Clock())
    if budget_w is not None:
        backend.budget_w = budget_w
    pol = make_policy(policy, PolicyContext(backend.encoder, backend.cloud_encoder))
    return SiteDecider(backend, pol), backend


# --- store --------------------------------------------------------------------------------------


def test_the_store_keeps_decisions_pending_offloads_and_the_outbox_across_reopening(
        tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    store = Store(path)
    with store.transaction():
        store.put_decision("r1", "placed", b'{"d": 1}')
        store.put_pending(PendingOffload("r2", b"req", b"off", 5.0))
        first = store.enqueue("t/a", b"1")
        store.enqueue("t/b", b"2", qos=0, retain=True)
    with pytest.raises(RuntimeError), store.transaction():
        store.put_decision("r3", "placed", b"x")
        raise RuntimeError("rolled back")
    store.close()

    store = Store(path)
    assert store.decision("r1") == b'{"d": 1}' and store.decision("r3") is None
    assert store.decision_counts() == {"placed": 1}
    assert store.pending("r2") == PendingOffload("r2", b"req", b"off", 5.0)
    rows = store.outbox_after(0, 10)
    assert [(r.topic, r.payload, r.qos, r.retain) for r in rows] == [
        ("t/a", b"1", 1, False), ("t/b", b"2", 0, True)]
    with store.transaction():
        store.sent([first])
        store.drop_pending("r2")
    assert [r.topic for r in store.outbox_after(0, 10)] == ["t/b"]
    assert store.pending_count() == 0
    with store.transaction():
        assert store.prune_decisions(older_than=1e12) == 1
    store.close()


# The schema of store version 1, as edge agents before version 2 wrote it.
_STORE_V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE decisions (
    key TEXT PRIMARY KEY, outcome TEXT NOT NULL, payload BLOB NOT NULL, decided_at REAL NOT NULL
);
CREATE INDEX decisions_at ON decisions (decided_at);
CREATE TABLE pending_offloads (
    key TEXT PRIMARY KEY, request BLOB NOT NULL, offload BLOB NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INTEGER NOT NULL, retain INTEGER NOT NULL
);
INSERT INTO meta VALUES ('version', '1');
"""


def test_a_version_1_store_opens_with_its_decisions_pending_offloads_and_outbox(
        tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    db = sqlite3.connect(str(path))
    db.executescript(_STORE_V1_SCHEMA)
    db.execute("INSERT INTO decisions VALUES ('r1', 'placed', X'7b7d', 10.0)")
    db.execute("INSERT INTO decisions VALUES ('r2', 'rejected', X'5b5d', 20.0)")
    db.execute("INSERT INTO pending_offloads VALUES ('r3', X'01', X'02', 5.0)")
    for i in range(1, 8):  # ids 1..7 given, 1..5 acknowledged: ids 6 and 7 left
        db.execute("INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, 1, 0)",
                   (f"t/{i}", str(i).encode()))
    db.execute("DELETE FROM outbox WHERE id <= 5")
    db.commit()
    db.close()

    store = Store(path)
    assert store.decision("r1") == b"{}" and store.decided(["r2", "r9"]) == {"r2": b"[]"}
    assert store.decision_counts() == {"placed": 1, "rejected": 1}
    assert store.pending("r3") == PendingOffload("r3", b"\x01", b"\x02", 5.0)
    assert [(r.id, r.topic) for r in store.outbox_after(0, 10)] == [(6, "t/6"), (7, "t/7")]
    assert store.enqueue("t/8", b"8") == 8  # ids keep growing past every id given before
    with store.transaction():
        assert store.prune_decisions(older_than=15.0) == 1
    store.close()
    store = Store(path)  # version 2 now: opens as it is
    assert [r.id for r in store.outbox_after(0, 10)] == [6, 7, 8]
    assert store.db.execute("SELECT value FROM meta WHERE key='version'").fetchone()[0] == "2"
    store.close()


def test_outbox_ids_keep_growing_after_the_outbox_empties(tmp_path: Path) -> None:
    # The agent hands rows to MQTT in id order, remembering the last id handed: an id given
    # again after the outbox emptied would never be sent.
    store = Store(tmp_path / "edge.sqlite3")
    first = store.enqueue("t/a", b"1")
    with store.transaction():
        store.sent([first])
    assert store.outbox_size() == 0
    second = store.enqueue("t/b", b"2")
    assert second > first
    assert [r.topic for r in store.outbox_after(first, 10)] == ["t/b"]
    store.close()


def test_configuration_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("site: edge-0\nspeed: -2\n")
    with pytest.raises(ConfigError, match=r"edge.yaml: field 'speed'"):
        load_config(path)
    path.write_text("site: edge-0\nspeed: 3\npolicy: first-fit\n")
    config = load_config(path, {"policy": "k8s-default", "broker": None})
    assert (config.site, config.speed, config.policy) == ("edge-0", 3.0, "k8s-default")
    with pytest.raises(ConfigError, match="site"):
        load_config(None, {"site": "a/b"})


# --- sim backend --------------------------------------------------------------------------------


def test_the_sim_backend_is_one_site_of_the_scenario_in_real_time() -> None:
    clock = Clock()
    backend = SimSiteBackend("small", "edge-2", clock=clock, speed=60.0)
    assert backend.site_index == 2 and backend.budget_w == 27.0
    nodes = backend.nodes()
    assert nodes.ids[0] == "edge-2.node0" and nodes.asleep.all()
    assert backend.place(Placement("k", "app", "c", 0, 1.0, 2.0, lifetime_s=600.0))
    assert not backend.place(Placement("k", "app", "c", 0, 1.0, 2.0))  # same key twice
    assert backend.containers() == 1 and not backend.nodes().asleep[0]
    assert backend.peers_per_node("app", ["c", "x"]).tolist() == [1, 0, 0, 0]
    clock.t = 9.0  # 540 simulated seconds: still running
    assert backend.advance() == []
    clock.t = 10.5  # 630 s: its lifetime is over
    assert backend.advance() == ["k"] and backend.containers() == 0
    clock.t = 16.0  # 300 s empty (sleep_after_s): the node sleeps again
    backend.advance()
    assert backend.nodes().asleep[0]
    assert site_index_from_id("site12") == 12 and site_index_from_id("gateway") is None
    with pytest.raises(ValueError, match="site index"):
        SimSiteBackend("small", "gateway")


def test_the_backend_guard_refuses_what_breaks_capacity_or_the_budget() -> None:
    backend = SimSiteBackend("small", "edge-0", clock=Clock())
    assert not backend.place(Placement("a", "app", "c", 0, 4.5, 1.0))  # 4 cores
    assert not backend.place(Placement("b", "app", "c", 3, 1.0, 9.0))  # 8 GiB
    backend.budget_w = 5.0  # asleep: 4.45 W; waking any node costs more than 0.55 W
    assert not backend.place(Placement("c", "app", "c", 0, 0.1, 0.1))
    assert backend.containers() == 0


# --- decider -------------------------------------------------------------------------------------


def test_the_live_view_encodes_like_the_simulator_encodes() -> None:
    d, backend = decider()
    view = d.view(request(1, peers=["c0"], is_entry=True), queue_fill=0.5)
    obs, mask = backend.encoder.encode_and_mask(view)
    spec = backend.encoder.spec
    assert obs.shape == (spec.dim,) and mask.shape == (backend.encoder.layout.n,)
    assert np.all(obs >= spec.low) and np.all(obs <= spec.high)
    assert mask[0] == 0 and mask[backend.encoder.layout.encode_offload(0)] == 1


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_registry_policy_runs_on_a_live_site(policy: str) -> None:
    d, _ = decider(policy)
    choice = d.choose(request(1), d.view(request(1)))
    assert choice.kind in ("place", "offload")


def test_a_tiny_budget_offloads_and_a_forwarded_request_is_never_offloaded_again() -> None:
    d, _ = decider(budget_w=5.0)
    req = request(1)
    assert d.choose(req, d.view(req)).kind == "offload"
    forwarded = request(2, offloaded_from="edge-1")
    assert d.choose(forwarded, d.view(forwarded)).kind == "reject"
    d, _ = decider("cloud-only")
    choice = d.choose(forwarded, d.view(forwarded))
    assert choice.kind == "place" and "forwarded" in choice.reason


def test_a_policy_that_breaks_the_mask_is_overruled() -> None:
    d, backend = decider()
    bad = Policy("bad", edge=lambda v, m, o: np.asarray(10**6), cloud=lambda v, m, o: 0)
    d = SiteDecider(backend, bad)
    choice = d.choose(request(1), d.view(request(1)))
    assert choice.kind == "place" and "refuses" in choice.reason

    def broken(v, m, o):
        raise RuntimeError("boom")

    d = SiteDecider(backend, Policy("broken", edge=broken, cloud=broken))
    assert "policy failed" in d.choose(request(1), d.view(request(1))).reason


def test_peers_count_where_they_are() -> None:
    d, backend = decider()
    backend.place(Placement("k0", "app", "c0", 2, 0.5, 1.0))
    book = PeerBook("edge-0")
    book.record("app", "c1", p.CLOUD_LOCATION)
    book.record("app", "c2", "edge-1")
    view = d.view(request(9, peers=["c0", "c1", "c2", "c3"]), peers=book)
    assert (float(view.peers_here), float(view.peers_cloud), float(view.peers_other)) == (1, 1, 1)
    assert view.node_peers.tolist() == [0, 0, 1, 0]


@settings(max_examples=40, deadline=None)
@given(policy=st.sampled_from(POLICY_NAMES),
       budget=st.floats(min_value=3.0, max_value=60.0),
       demands=st.lists(st.tuples(st.floats(0.05, 3.0), st.floats(0.05, 10.0)), min_size=1,
                        max_size=25))
def test_no_policy_ever_breaks_capacity_or_the_power_budget(
        policy: str, budget: float, demands: list[tuple[float, float]]) -> None:
    d, backend = decider(policy, budget_w=budget)
    start_w = backend.power_w()
    for i, (cpu, mem) in enumerate(demands):
        req = request(i, cpu, mem)
        choice = d.choose(req, d.view(req))
        if choice.kind == "place":
            assert backend.place(Placement(f"k{i}", "app", f"c{i}", choice.node,
                                           choice.cpu_cores, choice.mem_gib))
        n = backend.nodes()
        assert np.all(n.alloc_cpu <= n.cores * (1 + 1e-9))
        assert np.all(n.alloc_mem <= n.mem_gib * (1 + 1e-9))
        assert backend.power_w() <= max(budget, start_w) + 1e-9


# --- command lines ------------------------------------------------------------------------------


def test_the_command_lines_refuse_bad_settings_with_a_reason(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from cloud_agent.cli import main as cloud_main
    from edge_agent.cli import main as edge_main

    assert edge_main(["--site", "a/b"]) == 2
    assert "invalid site id 'a/b'" in capsys.readouterr().err
    assert edge_main(["--site", "edge-0", "--policy", "nope", "--store",
                      str(tmp_path / "x.sqlite3")]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
    assert edge_main(["--site", "edge-9", "--scenario", "small", "--store",
                      str(tmp_path / "y.sqlite3")]) == 2
    assert "sites 0..2" in capsys.readouterr().err
    assert cloud_main(["--http", "localhost:http"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err
