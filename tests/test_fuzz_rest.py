"""The cloud agent's REST API fuzzed from its own OpenAPI schema with schemathesis, on a real
HTTP server whose agent is connected to a real Mosquitto: no input gets a 5xx, and every
response matches what the schema promises. Writes are fuzzed with and without the token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from mqtt_fixtures import Broker, Probe, RestServer, mosquitto_binary, wait

from cloud_agent.config import CloudConfig
from hierarchy import protocol as p

TOKEN = "fuzz-token-0123456789"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed: the REST fuzz test runs a real cloud agent")
    broker = Broker(binary, tmp_path_factory.mktemp("fuzz-rest"))
    config = CloudConfig(broker=broker.url, scenario="small", advertise=False,
                         status_interval_s=0.5, api_token=TOKEN)
    try:
        with RestServer(config) as rest:
            site = Probe(broker, [])  # a site the API knows, so its pages have content
            site.transport.publish(p.status_topic("edge-0"), p.Status(
                agent="edge", id="edge-0", state="online").to_bytes(), retain=True)
            wait(lambda: "edge-0" in rest.agent.sites, 5, "the cloud to see edge-0")
            site.close()
            yield schemathesis.openapi.from_url(f"{rest.url}/openapi.json")
    finally:
        broker.stop()


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_breaks_the_rest_api(case: schemathesis.Case) -> None:
    case.call_and_validate()
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})
