"""MQTT security against a real Mosquitto set up as docs/deploy.md says: TLS with certificates
the test generates, a password per user, and the ACL shipped in deploy/mosquitto.acl.

Proves that the agents work through such a broker, that clients without the right password
or without trusting the broker's CA are turned away, and that under the shipped ACL one site
can neither publish to nor read another site's topics.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_fixtures import Probe, SecureBroker, secure_broker_fixture, wait  # noqa: F401

from cloud_agent.agent import CloudAgent
from cloud_agent.config import CloudConfig
from edge_agent.agent import EdgeAgent
from edge_agent.backends.sim import SimSiteBackend
from edge_agent.config import EdgeConfig, MqttOptions
from hierarchy import protocol as p
from hierarchy.agent_config import (
    PASSWORD_ENV,
    ConfigError,
    secret_in_url,
    with_mqtt_credentials,
)
from hierarchy.transport import BrokerConfig, MqttTransport

SCENARIO = "small"


def request(rid: str, cpu: float = 0.1) -> dict[str, object]:
    return {"schema": 1, "request_id": rid, "app": "shop", "container": rid, "cpu_cores": cpu,
            "mem_gib": 0.25, "slo_ms": 100.0}


def probe_as(broker: SecureBroker, user: str, subscriptions: list[str],
             marker_topic: str) -> Probe:
    return Probe(broker.client_config(user), subscriptions, marker_topic=marker_topic)


@pytest.fixture
def watcher(secure_broker: SecureBroker) -> Iterator[Probe]:
    """The cloud's user sees everything of the hierarchy: what reaches it was let through."""
    pr = probe_as(secure_broker, "cloud", ["hierarchy/v1/#"], "hierarchy/v1/test/watcher")
    try:
        yield pr
    finally:
        pr.close()


def test_the_agents_work_through_tls_passwords_and_the_shipped_acl(
        secure_broker: SecureBroker, watcher: Probe, tmp_path: Path) -> None:
    ca = str(secure_broker.certs["ca"])
    # The edge reads its password from a file (as a systemd credential would hand it over),
    # the cloud from its configuration; neither is on a command line.
    secret = tmp_path / "edge-0.password"
    secret.write_text(secure_broker.passwords["edge-0"] + "\n")
    cloud = CloudAgent(CloudConfig(
        broker=secure_broker.url, scenario=SCENARIO, advertise=False, status_interval_s=0.2,
        mqtt=MqttOptions(username="cloud", password=secure_broker.passwords["cloud"],
                         ca_file=ca)))
    cloud.start()
    backend = SimSiteBackend(SCENARIO, "edge-0")
    backend.budget_w = 6.5  # room for small containers only: the big one is offloaded
    edge = EdgeAgent(EdgeConfig(
        site="edge-0", broker=secure_broker.url, scenario=SCENARIO,
        store=tmp_path / "edge-0.sqlite3", telemetry_interval_s=0.1,
        mqtt=MqttOptions(username="edge-0", password_file=str(secret), ca_file=ca)),
        backend=backend)
    edge.serve_in_thread()
    orchestrator = probe_as(secure_broker, "orchestrator", [p.decisions_topic("+")], "")
    try:
        assert edge.ready.wait(10), "the edge agent did not connect over TLS"
        wait(lambda: cloud.connected, 10, "the cloud agent to connect over TLS")
        orchestrator.publish(p.requests_topic("edge-0"), request("small", cpu=0.5))
        orchestrator.publish(p.requests_topic("edge-0"), request("big", cpu=3.0))
        got = [json.loads(m) for m in orchestrator.wait_for(p.decisions_topic("edge-0"), 2, 15)]
        outcomes = {d["request_id"]: d["outcome"] for d in got}
        assert outcomes == {"small": "placed", "big": "offloaded"}  # offload round trip
        wait(lambda: cloud.sites.get("edge-0") is not None
             and cloud.sites["edge-0"].telemetry is not None, 5, "edge-0's telemetry")
        assert watcher.messages[p.status_topic("edge-0")]  # the edge's retained status
    finally:
        orchestrator.close()
        edge.shutdown()
        cloud.stop()


def test_wrong_passwords_anonymous_clients_and_untrusted_brokers_are_refused(
        secure_broker: SecureBroker) -> None:
    plain = BrokerConfig.from_url(f"mqtt://127.0.0.1:{secure_broker.port}",
                                  username="edge-0", password=secure_broker.passwords["edge-0"])
    attempts = {
        "wrong password": secure_broker.client_config("edge-0", password="not-the-password"),
        "unknown user": secure_broker.client_config("mallory", password="anything"),
        "anonymous": secure_broker.client_config(None),
        # The system's CAs never signed the test CA's broker certificate.
        "untrusted certificate": secure_broker.client_config("edge-0", ca=False),
        "no TLS": plain,
    }
    control = MqttTransport(secure_broker.client_config("edge-0"), "control", lambda m: None)
    clients = {what: MqttTransport(cfg, f"attempt-{i}", lambda m: None)
               for i, (what, cfg) in enumerate(attempts.items())}
    try:
        for client in [control, *clients.values()]:
            client.start()
        assert control.wait_connected(10), "the right credentials must get in"
        time.sleep(1.0)  # each attempt had as long as the control, and a second more
        let_in = [what for what, client in clients.items() if client.connected]
        assert let_in == [], f"the broker let these in: {let_in}"
    finally:
        for client in [control, *clients.values()]:
            client.stop()


def test_a_site_can_neither_publish_to_nor_read_another_sites_topics(
        secure_broker: SecureBroker, watcher: Probe) -> None:
    # edge-0's credentials, in the hands of someone who wants edge-1's traffic.
    intruder = probe_as(secure_broker, "edge-0",
                        [p.requests_topic("edge-1"), p.offload_results_topic("edge-1"),
                         p.decisions_topic("+"), p.requests_topic("edge-0")],
                        p.status_topic("edge-0"))
    orchestrator = probe_as(secure_broker, "orchestrator", [], "")
    try:
        forged = {
            p.requests_topic("edge-1"): request("forged-request"),
            p.decisions_topic("edge-1"): {"schema": 1, "request_id": "forged-decision"},
            p.offload_results_topic("edge-1"): {"schema": 1, "request_id": "forged-result"},
            p.telemetry_topic("edge-1"): {"schema": 1, "site": "edge-1"},
            p.status_topic("edge-1"): {"schema": 1, "agent": "edge", "id": "edge-1",
                                       "state": "offline"},
            p.errors_topic("edge-1"): {"schema": 1, "topic": "x", "reason": "forged"},
            p.CLOUD_STATUS_TOPIC: {"schema": 1, "agent": "cloud", "id": "cloud",
                                   "state": "offline"},
        }
        for topic, payload in forged.items():
            intruder.publish(topic, payload)
        # Then a message edge-0 may send: once it arrives, anything before it would have.
        marker = {"schema": 1, "request_id": f"own-{uuid.uuid4().hex[:6]}"}
        intruder.publish(p.decisions_topic("edge-0"), marker)
        watcher.wait_for(p.decisions_topic("edge-0"), 1)
        leaked = sorted(t for t in forged if watcher.messages.get(t))
        assert leaked == [], f"the ACL let edge-0 publish to {leaked}"

        # Reading: the orchestrator sends edge-1 a request, then one for edge-0.
        orchestrator.publish(p.requests_topic("edge-1"), request("for-edge-1-only"))
        orchestrator.publish(p.requests_topic("edge-0"), request("for-edge-0"))
        intruder.wait_for(p.requests_topic("edge-0"), 1)
        watcher.wait_for(p.requests_topic("edge-1"), 1)  # it was sent, and let through
        seen = {t for t, msgs in intruder.messages.items() if msgs}
        assert p.requests_topic("edge-1") not in seen and p.decisions_topic("edge-1") not in seen
        # Nor may the orchestrator speak for a site.
        orchestrator.publish(p.decisions_topic("edge-1"), {"schema": 1, "request_id": "o"})
        orchestrator.publish(p.requests_topic("edge-1"), request("after-forgery"))
        watcher.wait_for(p.requests_topic("edge-1"), 2)
        assert not watcher.messages.get(p.decisions_topic("edge-1"))
    finally:
        intruder.close()
        orchestrator.close()


def test_mqtt_secrets_come_from_files_or_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-the-file\n")
    options = MqttOptions(username="edge-0", password_file=str(secret))
    assert options.broker_config("mqtts://broker:8883").password == "from-the-file"
    with pytest.raises(ConfigError, match="mqtt.password_file: cannot read"):
        MqttOptions(password_file=str(tmp_path / "missing")).broker_config("mqtt://b")
    monkeypatch.setenv(PASSWORD_ENV, "from-the-environment")
    config = with_mqtt_credentials(EdgeConfig(site="edge-0", mqtt=options), "edge-0")
    assert config.mqtt.broker_config("mqtt://b").password == "from-the-environment"
    assert "from-the" not in repr(config) and "from-the" not in repr(config.mqtt)
    assert secret_in_url("mqtt://edge-0:hunter2@broker") and not secret_in_url("mqtt://b:1883")


def test_an_edge_with_credentials_joins_a_discovered_broker_only_over_tls(
        tmp_path: Path) -> None:
    # Anyone on the link can announce a hierarchy; a plain mqtt:// one would get the password.
    agent = EdgeAgent(EdgeConfig(site="edge-0", scenario=SCENARIO, store=tmp_path / "s.db",
                                 mqtt=MqttOptions(username="edge-0", password="pw")))
    try:
        assert "not TLS" in agent._discovered_broker_refusal("mqtt://10.0.0.66:1883")
        assert agent._discovered_broker_refusal("mqtts://broker.lan:8883") is None
    finally:
        agent.close()
    anonymous = EdgeAgent(EdgeConfig(site="edge-1", scenario=SCENARIO, store=tmp_path / "t.db"))
    try:
        assert anonymous._discovered_broker_refusal("mqtt://10.0.0.66:1883") is None
    finally:
        anonymous.close()


def test_the_shipped_agent_configurations_load_and_keep_secrets_out() -> None:
    from cloud_agent.config import load_config as load_cloud
    from edge_agent.config import load_config as load_edge

    repo = Path(__file__).resolve().parent.parent / "deploy"
    edge, cloud = load_edge(repo / "edge-agent.yaml"), load_cloud(repo / "cloud-agent.yaml")
    for config in (edge, cloud):
        assert config.mqtt.password is None and config.mqtt.ca_file  # TLS, no password inline
        assert config.broker and config.broker.startswith("mqtts://")
    assert edge.mqtt.username == edge.site and cloud.http_host == "127.0.0.1"
    assert cloud.api_token is None
