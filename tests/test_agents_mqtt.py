"""The edge and cloud agents against a real Mosquitto (started by the tests, loopback only).

Agents run in this process (threads) for speed; the last-will and discovery tests run them
as real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from mqtt_fixtures import Broker, Probe, broker_fixture, free_port, wait  # noqa: F401

from cloud_agent.agent import CloudAgent
from cloud_agent.app import create_app
from cloud_agent.config import CloudConfig
from edge_agent.agent import EdgeAgent
from edge_agent.backends.sim import SimSiteBackend
from edge_agent.config import EdgeConfig, MqttOptions
from edge_agent.store import Store
from hierarchy import protocol as p

REPO = Path(__file__).resolve().parent.parent
SCENARIO = "small"


def req(rid: str, cpu: float = 0.1, mem: float = 0.25, container: str | None = None,
        **extra: object) -> dict[str, object]:
    return {"schema": 1, "request_id": rid, "app": "shop", "container": container or rid,
            "cpu_cores": cpu, "mem_gib": mem, "slo_ms": 100.0, "peers": [], **extra}


class Agents:
    """Starts agents in threads and stops every one of them at the end of the test."""

    def __init__(self, broker: Broker, tmp_path: Path) -> None:
        self.broker = broker
        self.tmp_path = tmp_path
        self.edges: list[EdgeAgent] = []
        self.clouds: list[CloudAgent] = []

    def edge(self, site: str = "edge-0", budget_w: float | None = None,
             **config: object) -> EdgeAgent:
        # The heuristic, not the agent's default (the shipped learned policy): these tests
        # need decisions they can predict (sized at the request, offloaded when the site is
        # full); the learned default runs in test_edge_learned.py and test_demo.py.
        config.setdefault("policy", "power-aware")
        cfg = EdgeConfig(site=site, broker=self.broker.url, scenario=SCENARIO,
                         store=self.tmp_path / f"{site}.sqlite3", telemetry_interval_s=0.1,
                         **config)  # type: ignore[arg-type]
        backend = SimSiteBackend(SCENARIO, site)
        if budget_w is not None:
            backend.budget_w = budget_w
        agent = EdgeAgent(cfg, backend=backend)
        agent.serve_in_thread()
        assert agent.ready.wait(5), f"edge agent {site} did not connect"
        self.edges.append(agent)
        return agent

    def cloud(self) -> CloudAgent:
        agent = CloudAgent(self.cloud_config())
        agent.start()
        wait(lambda: agent.connected, 5, "the cloud agent to connect")
        self.clouds.append(agent)
        return agent

    def cloud_config(self) -> CloudConfig:
        return CloudConfig(broker=self.broker.url, scenario=SCENARIO, advertise=False,
                           status_interval_s=0.2, forward_timeout_s=3.0)

    def stop(self) -> None:
        for e in self.edges:
            e.shutdown()
        for c in self.clouds:
            c.stop()


@pytest.fixture
def agents(broker: Broker, tmp_path: Path) -> Iterator[Agents]:
    a = Agents(broker, tmp_path)
    try:
        yield a
    finally:
        a.stop()


@pytest.fixture
def probe(broker: Broker) -> Iterator[Probe]:
    pr = Probe(broker, [p.decisions_topic("+"), p.errors_topic("+"), p.CLOUD_ERRORS_TOPIC,
                        p.OFFLOAD_TOPIC, p.status_topic("+")])
    try:
        yield pr
    finally:
        pr.close()


def decisions(probe: Probe, site: str = "edge-0") -> list[dict]:
    return probe.json(p.decisions_topic(site))


# --- decisions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["5", "3.1.1"])
def test_every_request_gets_exactly_one_decision(agents: Agents, probe: Probe,
                                                 version: str) -> None:
    agents.edge(mqtt=MqttOptions(mqtt_version=version))
    n = 60
    for i in range(n):
        probe.publish(p.requests_topic("edge-0"), req(f"r{i}", cpu=0.05))
    probe.publish(p.requests_topic("edge-0"), req("marker", cpu=0.05))
    # One loop thread decides in order: once the marker is decided, every other decision
    # (and any duplicate) has been published before it.
    probe.wait_until(lambda: any(d["request_id"] == "marker" for d in decisions(probe)), 10,
                     "the marker's decision")
    counts = Counter(d["request_id"] for d in decisions(probe))
    assert counts == Counter({f"r{i}": 1 for i in range(n)} | {"marker": 1})
    first = decisions(probe)[0]
    assert first["schema"] == 1 and first["site"] == "edge-0" and first["outcome"] == "placed"
    assert first["location"].startswith("edge-0.node") and first["cpu_cores"] == 0.05
    assert first["policy"] == "power-aware@1" and first["decision_us"] > 0


def test_an_offload_round_trip_waits_for_the_cloud_and_the_rest_api_shows_it(
        agents: Agents, probe: Probe) -> None:
    edge = agents.edge(budget_w=6.5)  # room for one small container on the Pi only
    probe.publish(p.requests_topic("edge-0"), req("small", cpu=0.5))
    probe.publish(p.requests_topic("edge-0"), req("big", cpu=3.0, mem=4.0))
    # No cloud yet: the edge decides what it can place, the rest waits for the cloud.
    probe.wait_for(p.OFFLOAD_TOPIC, 1)
    probe.wait_for(p.decisions_topic("edge-0"), 1)
    assert [(d["request_id"], d["outcome"]) for d in decisions(probe)] == [("small", "placed")]
    offload = json.loads(probe.messages[p.OFFLOAD_TOPIC][0])
    assert offload["site"] == "edge-0" and offload["request"]["request_id"] == "big"
    assert offload["context"]["budget_w"] == 6.5

    with TestClient(create_app(agents.cloud_config())) as client:
        # The cloud says it is online (retained): the edge sends its pending offload again.
        probe.wait_for(p.decisions_topic("edge-0"), 2)
        final = decisions(probe)[1]
        assert final["request_id"] == "big" and final["outcome"] == "offloaded"
        assert final["location"] == "cloud" and final["node"].startswith("cloud.node")
        assert final["cpu_cores"] == 3.0 and final["policy"] == "power-aware@1+near-peers@1"
        assert edge.store.pending_count() == 0

        wait(lambda: client.get("/status").json()["pool"]["containers"] == 1, 5,
             "the pool to hold the container")
        def reported() -> bool:
            site = client.get("/sites/edge-0").json()
            return site["telemetry"] is not None and site["decisions"]["offloaded"] == 1

        wait(reported, 5, "edge-0's telemetry to count the offload")
        status = client.get("/status").json()
        site = next(s for s in status["sites"] if s["site"] == "edge-0")
        assert site["online"] and site["nodes"] == 4 and site["budget_w"] == 6.5
        assert site["decisions"] == {"placed": 1, "offloaded": 1, "rejected": 0}
        assert status["offloads"]["to_pool"] == 1 and status["cloud"]["mqtt_connected"]
        recent = client.get("/decisions", params={"site": "edge-0", "limit": 1}).json()
        assert [d["request_id"] for d in recent["decisions"]] == ["big"]
        detail = client.get("/sites/edge-0").json()
        assert len(detail["telemetry"]["nodes"]) == 4 and detail["status"]["state"] == "online"
        assert client.get("/sites/nowhere").status_code == 404
        assert client.get("/decisions", params={"limit": 0}).status_code == 422
        assert client.get("/healthz").json() == {"ok": True, "mqtt_connected": True}
        text = client.get("/metrics").text
        assert 'hierarchy_site_online{site="edge-0"} 1' in text
        assert 'hierarchy_cloud_placements_total{destination="pool"} 1' in text
        assert client.get("/openapi.json").status_code == 200


def test_the_cloud_sends_a_container_to_the_site_of_its_peers(agents: Agents,
                                                              probe: Probe) -> None:
    cloud = agents.cloud()
    agents.edge("edge-0", budget_w=5.0)  # nothing fits here
    agents.edge("edge-1")
    probe.publish(p.requests_topic("edge-1"), req("db-1", container="db"))
    probe.wait_for(p.decisions_topic("edge-1"), 1)
    wait(lambda: cloud.locations.where("shop", "db") == "edge-1", 5, "the cloud to see db")
    wait(lambda: all(s.telemetry is not None for s in cloud.sites.values())
         and len(cloud.sites) == 2, 5, "telemetry of both sites")

    probe.publish(p.requests_topic("edge-0"), req("api-1", container="api", peers=["db"]))
    final = probe.wait_for(p.decisions_topic("edge-0"), 1)[0]
    d = json.loads(final)
    assert d["outcome"] == "offloaded" and d["location"] == "edge-1"
    assert d["node"].startswith("edge-1.node")
    placed_there = [x for x in decisions(probe, "edge-1") if x["request_id"] == "api-1"]
    assert len(placed_there) == 1 and placed_there[0]["offloaded_from"] == "edge-0"
    assert cloud.stats["to_sites"] == 1 and cloud.pool.containers == 0


def test_a_redelivered_request_gets_the_same_decision_and_no_second_placement(
        agents: Agents, probe: Probe) -> None:
    agents.cloud()
    edge = agents.edge(budget_w=6.5)
    probe.publish(p.requests_topic("edge-0"), req("once", cpu=0.5))
    probe.publish(p.requests_topic("edge-0"), req("away", cpu=3.0))
    probe.wait_for(p.decisions_topic("edge-0"), 2)
    for rid in ("once", "away", "once"):
        probe.publish(p.requests_topic("edge-0"), req(rid, cpu=0.5 if rid == "once" else 3.0))
    got = probe.wait_for(p.decisions_topic("edge-0"), 5)
    by_id: dict[str, set[bytes]] = {}
    for payload in got:
        by_id.setdefault(json.loads(payload)["request_id"], set()).add(payload)
    assert {k: len(v) for k, v in by_id.items()} == {"once": 1, "away": 1}  # byte-identical
    assert edge.backend.containers() == 1
    assert agents.clouds[0].pool.containers == 1 and agents.clouds[0].stats["offloads"] == 1


@pytest.mark.parametrize("version", ["3.1.1", "5"])  # the session persists in either
def test_copies_in_a_backlog_never_fill_the_queue(agents: Agents, probe: Probe,
                                                  version: str) -> None:
    """After an outage the broker holds a backlog with copies in it (an orchestrator sending
    again, the broker redelivering): each request id waiting counts once towards
    `queue_max`, a copy of one decided already not at all, so none is refused as queue full."""
    requests, decided = p.requests_topic("edge-0"), p.decisions_topic("edge-0")
    # The backlog waits in the queue for its turn.
    limits = {"queue_max": 3, "batch_max": 4, "mqtt": MqttOptions(mqtt_version=version)}
    first = agents.edge(**limits)
    for i in range(3):
        probe.publish(requests, req(f"old{i}", cpu=0.05))
    probe.wait_for(decided, 3)
    first.shutdown()  # its session keeps collecting its requests
    copies = 20
    for copy in range(copies):
        for i in range(3):
            probe.publish(requests, req(f"new{i}", cpu=0.05))
            if copy % 2:
                probe.publish(requests, req(f"old{i}", cpu=0.05))
    # The broker handles one client's messages in order: this one back means all are queued.
    probe.publish(p.errors_topic("mark"), b"queued")
    probe.wait_for(p.errors_topic("mark"), 1)

    second = agents.edge(**limits)
    answers = 3 + 3 * copies + 3 * copies // 2  # every copy gets one
    got = probe.wait_for(decided, answers, timeout_s=10)
    by_id: dict[str, set[bytes]] = {}
    for payload in got:
        by_id.setdefault(json.loads(payload)["request_id"], set()).add(payload)
    assert sorted(by_id) == [f"{k}{i}" for k in ("new", "old") for i in range(3)]
    assert all(len(v) == 1 for v in by_id.values())  # copies get the very same decision
    outcomes = {json.loads(next(iter(v)))["outcome"] for v in by_id.values()}
    assert outcomes == {"placed"}, [json.loads(next(iter(v))) for v in by_id.values()]
    assert second.duplicates == answers - 6 and second.counts["rejected"] == 0


def test_bad_payloads_are_answered_on_the_errors_topic_and_the_agents_keep_serving(
        agents: Agents, probe: Probe) -> None:
    agents.cloud()
    agents.edge()
    topic = p.requests_topic("edge-0")
    probe.publish(topic, b"{not json")
    probe.publish(topic, json.dumps(req("big", pad="x" * p.MAX_PAYLOAD_BYTES)).encode())
    probe.publish(topic, req("typed", cpu="two"))
    probe.publish(topic, {**req("future"), "schema": 2})
    probe.publish(p.offload_results_topic("edge-0"), {"schema": 1, "request_id": "ghost"})
    probe.publish(p.OFFLOAD_TOPIC, {"schema": 1, "site": "edge-0", "request": "?"})
    probe.publish(p.OFFLOAD_TOPIC, b"\xff\xfe")
    probe.publish(topic, req("good"))
    probe.wait_for(p.decisions_topic("edge-0"), 1)
    errors = [json.loads(e) for e in probe.wait_for(p.errors_topic("edge-0"), 6)]

    def reason(ref: str | None, words: str, on: str = topic) -> None:
        assert any(e.get("ref") == ref and words in e["reason"] and e["topic"] == on
                   for e in errors), f"no error ({ref}, {words!r}, {on}) in {errors}"

    reason(None, "not valid JSON")
    reason(None, "exceeds the 65536-byte limit")
    reason("typed", "field 'cpu_cores'")
    reason("future", "unsupported schema version 2")
    reason("ghost", "invalid OffloadResult", p.offload_results_topic("edge-0"))
    reason(None, "invalid Offload", p.OFFLOAD_TOPIC)  # the cloud answered the site
    cloud_errors = probe.wait_for(p.CLOUD_ERRORS_TOPIC, 1)
    assert "not UTF-8" in json.loads(cloud_errors[0])["reason"]
    assert [d["request_id"] for d in decisions(probe)] == ["good"]


# --- durability ---------------------------------------------------------------------------------


def test_decisions_and_unsent_messages_survive_a_restart(agents: Agents, probe: Probe,
                                                         tmp_path: Path) -> None:
    first = agents.edge()
    probe.publish(p.requests_topic("edge-0"), req("r1"))
    before = probe.wait_for(p.decisions_topic("edge-0"), 1)[0]
    first.shutdown()
    # As if the agent had crashed with a message still in its outbox:
    store = Store(tmp_path / "edge-0.sqlite3")
    with store.transaction():
        store.enqueue(p.decisions_topic("edge-0"), b'{"left": "behind"}')
    store.close()

    second = agents.edge()
    probe.wait_for(p.decisions_topic("edge-0"), 2)
    assert probe.messages[p.decisions_topic("edge-0")][1] == b'{"left": "behind"}'
    probe.publish(p.requests_topic("edge-0"), req("r1"))
    again = probe.wait_for(p.decisions_topic("edge-0"), 3)[2]
    assert again == before and second.backend.containers() == 0
    wait(lambda: Store(tmp_path / "edge-0.sqlite3").outbox_size() == 0, 5, "an empty outbox")


def test_the_edge_reconnects_and_resubscribes_after_a_broker_restart(
        agents: Agents, broker: Broker) -> None:
    edge = agents.edge()
    broker.stop()
    wait(lambda: not edge.transport.connected, 5, "the edge to notice the outage")
    broker.start()  # same port, a fresh broker: no sessions, no subscriptions
    wait(lambda: edge.transport.connected, 10, "the edge to reconnect")
    pr = Probe(broker, [p.decisions_topic("edge-0")])
    try:
        pr.publish(p.requests_topic("edge-0"), req("after"))
        assert json.loads(pr.wait_for(p.decisions_topic("edge-0"), 1)[0])["outcome"] == "placed"
    finally:
        pr.close()


# --- real processes -----------------------------------------------------------------------------


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    out = log.open("wb")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=out,
                            stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


def _edge_args(site: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["-m", "edge_agent", "--site", site, "--scenario", SCENARIO, "--store",
            str(tmp_path / f"{site}.sqlite3"), "--telemetry-interval", "0.2", *extra]


def test_status_shows_sites_online_then_offline_by_clean_stop_and_by_last_will(
        agents: Agents, broker: Broker, tmp_path: Path) -> None:
    procs = {site: _spawn(_edge_args(site, tmp_path, "--broker", broker.url),
                          tmp_path / f"{site}.log") for site in ("edge-0", "edge-1")}
    try:
        with TestClient(create_app(agents.cloud_config())) as client:
            def online() -> dict[str, bool]:
                return {s["site"]: s["online"] for s in client.get("/status").json()["sites"]}

            wait(lambda: online() == {"edge-0": True, "edge-1": True}, 20, "both sites online")
            assert _stop(procs["edge-0"], signal.SIGTERM) == 0  # clean: says offline itself
            procs["edge-1"].kill()  # a crash: the broker publishes its last will
            wait(lambda: online() == {"edge-0": False, "edge-1": False}, 10, "both offline")
            text = client.get("/metrics").text
            assert 'hierarchy_site_online{site="edge-1"} 0' in text
    finally:
        for proc in procs.values():
            _stop(proc, signal.SIGKILL)
    assert "stopped" in (tmp_path / "edge-0.log").read_text()


def test_an_edge_agent_finds_the_broker_with_zeroconf(broker: Broker, tmp_path: Path) -> None:
    http_port = free_port()
    # A name of this test's own: records of other hierarchies (another test run, or a killed
    # coordinator whose record has not expired) must not be joined.
    name = f"test-{uuid.uuid4().hex[:12]}"
    cloud = _spawn(["-m", "cloud_agent", "--broker", broker.url, "--http",
                    f"127.0.0.1:{http_port}", "--scenario", SCENARIO, "--hierarchy", name,
                    "--discovery-interface", "127.0.0.1"], tmp_path / "cloud.log")
    edge = None
    try:
        # No --broker: the edge agent browses _hierarchy._tcp.local. on loopback.
        edge = _spawn(_edge_args("edge-0", tmp_path, "--discovery-interface", "127.0.0.1",
                                 "--hierarchy", name), tmp_path / "edge.log")

        def edge_online() -> bool:
            try:
                sites = httpx.get(f"http://127.0.0.1:{http_port}/status", timeout=1).json()
            except httpx.HTTPError:
                return False
            return any(s["site"] == "edge-0" and s["online"] for s in sites["sites"])

        wait(edge_online, 25, "the edge agent to find the broker and come online", 0.1)
        assert "found hierarchy-cloud" in (tmp_path / "edge.log").read_text()
        assert _stop(edge) == 0
        assert _stop(cloud) == 0
    finally:
        if edge is not None:
            _stop(edge, signal.SIGKILL)
        _stop(cloud, signal.SIGKILL)


def test_agents_speak_mqtt_3_1_1_by_default_with_a_persistent_session() -> None:
    """3.1.1 costs paho less per message; the session persists (clean_session off) unless a
    session expiry of 0 asks for one that ends with the connection, as with MQTT 5."""
    from hierarchy.transport import MqttTransport

    config = EdgeConfig(site="edge-0", broker="mqtt://127.0.0.1:1883")
    broker = config.mqtt.broker_config(config.broker or "")
    assert broker.mqtt_version == "3.1.1"
    persistent = MqttTransport(broker, "edge", lambda msg: None)
    assert persistent.client._clean_session is False
    ephemeral = MqttTransport(broker.model_copy(update={"session_expiry_s": 0}), "x",
                              lambda msg: None)
    assert ephemeral.client._clean_session is True
    assert MqttOptions(mqtt_version="5").broker_config("mqtt://h").mqtt_version == "5"
