"""The cloud agent's REST API: loopback by default, a bearer token for anything that changes
state (disabled without one), and optionally for the read endpoints too. Served by a real
uvicorn server on a free loopback port, its MQTT client on a real Mosquitto."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mqtt_fixtures import Broker, Probe, RestServer, broker_fixture, wait  # noqa: F401

from cloud_agent.cli import parser as cloud_parser
from cloud_agent.config import CloudConfig, ConfigError, load_config, parse_hostport
from hierarchy import protocol as p

TOKEN = "s3cret-token-for-the-tests"
READS = ["/status", "/sites/edge-0", "/decisions", "/metrics"]


def config(broker: Broker, **fields: object) -> CloudConfig:
    return CloudConfig(broker=broker.url, scenario="small", advertise=False,
                       status_interval_s=0.2, **fields)  # type: ignore[arg-type]


def announce(broker: Broker, site: str) -> Probe:
    """A site says it is online (retained), as an edge agent would."""
    pr = Probe(broker, [p.status_topic(site)])
    status = p.Status(agent="edge", id=site, state="online", started_at_s=1.0)
    pr.transport.publish(p.status_topic(site), status.to_bytes(), qos=1, retain=True)
    return pr


@pytest.fixture
def site_online(broker: Broker) -> Iterator[Probe]:
    pr = announce(broker, "edge-0")
    try:
        yield pr
    finally:
        pr.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_rest_api_listens_on_loopback_unless_told_otherwise() -> None:
    assert CloudConfig().http_host == "127.0.0.1"
    assert parse_hostport(":9000") == ("127.0.0.1", 9000)
    assert cloud_parser().parse_args([]).http is None  # so the config's loopback default holds


def test_without_a_token_reads_are_open_and_writes_are_disabled(broker: Broker,
                                                                site_online: Probe) -> None:
    with RestServer(config(broker)) as rest:
        wait(lambda: "edge-0" in rest.agent.sites, 5, "the cloud to see edge-0")
        for path in READS:
            assert httpx.get(rest.url + path).status_code == 200, path
        refused = httpx.post(f"{rest.url}/sites/edge-0/forget", headers=bearer(TOKEN))
        assert refused.status_code == 403 and "api_token" in refused.json()["detail"]
        assert "edge-0" in rest.agent.sites


def test_state_changes_need_the_token(broker: Broker, site_online: Probe) -> None:
    with RestServer(config(broker, api_token=TOKEN)) as rest:
        wait(lambda: "edge-0" in rest.agent.sites, 5, "the cloud to see edge-0")
        url = f"{rest.url}/sites/edge-0/forget"
        for headers in ({}, bearer("wrong-token-wrong-token"), {"Authorization": TOKEN},
                        {"Authorization": f"Basic {TOKEN}"}, bearer(TOKEN + "x")):
            refused = httpx.post(url, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
        assert "edge-0" in rest.agent.sites
        assert httpx.get(f"{rest.url}/status").status_code == 200  # reads stay open

        done = httpx.post(url, headers=bearer(TOKEN))
        assert done.status_code == 200 and done.json() == {"forgotten": "edge-0"}
        assert httpx.get(f"{rest.url}/sites/edge-0").status_code == 404
        assert httpx.post(url, headers=bearer(TOKEN)).status_code == 404
    # The site's retained status was cleared on the broker too: a newcomer gets nothing.
    late = Probe(broker, [p.status_topic("edge-0")])
    try:
        with pytest.raises(TimeoutError):
            late.wait_for(p.status_topic("edge-0"), 1, timeout_s=0.5)
    finally:
        late.close()


def test_reads_can_be_protected_the_same_way(broker: Broker, site_online: Probe,
                                             tmp_path: Path) -> None:
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    with RestServer(config(broker, api_token_file=str(token_file), protect_reads=True)) as rest:
        wait(lambda: "edge-0" in rest.agent.sites, 5, "the cloud to see edge-0")
        for path in READS:
            assert httpx.get(rest.url + path).status_code == 401, path
            assert httpx.get(rest.url + path, headers=bearer("nope" * 5)).status_code == 401
            assert httpx.get(rest.url + path, headers=bearer(TOKEN)).status_code == 200, path
        assert httpx.get(f"{rest.url}/healthz").status_code == 200  # liveness probes
        schema = httpx.get(f"{rest.url}/openapi.json").json()
        assert "401" in schema["paths"]["/status"]["get"]["responses"]


def test_bad_token_settings_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="protect_reads needs api_token"):
        CloudConfig(protect_reads=True)
    with pytest.raises(ValueError, match="at least 16 characters"):
        CloudConfig(api_token="short")
    with pytest.raises(ConfigError, match="protect_reads needs api_token"):
        load_config(None, {"protect_reads": True})
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        CloudConfig(api_token_file=str(empty)).token()
    with pytest.raises(ConfigError, match="cannot read"):
        CloudConfig(api_token_file=str(tmp_path / "missing")).token()
    assert "s3cret" not in repr(CloudConfig(api_token=TOKEN))  # never in logs
