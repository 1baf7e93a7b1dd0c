"""Per-service behaviour statistics on the gateway, fed from the backend's measured usage.

Through a real Mosquitto: once the edge agent has sampled a running container of a service
often enough, a new request of that service is encoded with `svc_seen` = 1 and the
predictions `ServiceStats` gives on the same samples, as the simulator would encode it; a
request of a service never run stays unknown. The statistics are bounded.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from mqtt_fixtures import Broker, Probe, broker_fixture, wait  # noqa: F401

from edge_agent.agent import EdgeAgent
from edge_agent.backends.base import Placement
from edge_agent.backends.sim import SimSiteBackend
from edge_agent.behaviour import BehaviourBook
from edge_agent.config import EdgeConfig
from hierarchy import protocol as p
from hierarchy.features.classes import CLASS_NAMES
from hierarchy.features.online import HISTORY_HALF, MIN_SAMPLES, ServiceStats
from hierarchy.observation import EdgeView

SCENARIO = "small"
SITE = "edge-0"
SPEED = 1000.0  # simulated seconds per second: a 30 s sample period is 30 ms


class Recorder:
    def __init__(self, decider) -> None:  # noqa: ANN001
        self.decider = decider
        self.calls: list[tuple[EdgeView, np.ndarray]] = []

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        if bool(view.pending):
            self.calls.append((view, obs.copy()))
        return self.decider(view, mask, obs)


def request(rid: str, app: str, container: str, cpu: float, mem: float,
            service: str | None, lifetime_s: float = 1e7) -> bytes:
    return p.Request(request_id=rid, app=app, container=container, cpu_cores=cpu, mem_gib=mem,
                     slo_ms=100.0, lifetime_s=lifetime_s, service=service).to_bytes()


def test_a_seen_service_is_encoded_with_its_online_statistics(broker: Broker,
                                                              tmp_path: Path) -> None:
    config = EdgeConfig(site=SITE, broker=broker.url, scenario=SCENARIO, speed=SPEED,
                        behaviour_sample_s=30.0, store=tmp_path / "edge.sqlite3")
    agent = EdgeAgent(config, backend=SimSiteBackend(SCENARIO, SITE, speed=SPEED))
    recorder = Recorder(agent.policy.edge)
    agent.policy.edge = recorder
    book = agent.decider.behaviour
    probe = Probe(broker, [p.decisions_topic(SITE)])
    topic = p.requests_topic(SITE)
    agent.serve_in_thread()
    try:
        wait(agent.ready.is_set, 10, "the edge agent to connect")
        # One running instance of service "shop" (its container "cart") gets sampled...
        probe.publish(topic, request("a1", "shop-1", "cart", 0.8, 1.0, "shop"))
        first = p.Decision.model_validate_json(probe.wait_for(p.decisions_topic(SITE), 1)[0])
        assert first.outcome == "placed"
        wait(lambda: book.stats.predict(("shop", "cart"), 0.8)[0] >= MIN_SAMPLES + 3, 10,
             "samples of the running container")
        # ... then another instance of the same service, a request naming no service (its
        # app is its service), and a service never run. They end at once (1 ms simulated),
        # so only the first instance is ever sampled.
        probe.publish(topic, request("a2", "shop-2", "cart", 0.8, 1.0, "shop", 1e-3))
        probe.publish(topic, request("a3", "shop", "cart", 0.8, 1.0, None, 1e-3))
        probe.publish(topic, request("b1", "search-1", "index", 0.8, 1.0, "search", 1e-3))
        probe.wait_for(p.decisions_topic(SITE), 4)
    finally:
        agent.shutdown()
        probe.close()

    encoder = agent.backend.encoder
    names = [f.name for f in encoder.spec.features]
    col = {name: names.index(name) for name in
           ("svc_seen", "svc_history", "pred_cpu_p95", "pred_mem_p95", "cpu_cv")}
    classes = [names.index(f"class_{c}") for c in CLASS_NAMES]
    assert len(recorder.calls) == 4
    for (view, obs), seen in zip(recorder.calls[1:], (True, True, False), strict=True):
        if not seen:
            assert float(view.svc_samples) == 0 and int(view.behaviour_class) == -1
            assert obs[col["svc_seen"]] == 0 and not obs[classes].any()
            continue
        n = int(view.svc_samples)
        assert n >= MIN_SAMPLES + 3
        # The same samples into a fresh ServiceStats: what the sim backend measured of the
        # running instance (usage_frac of its allocation) relative to its request.
        expected = ServiceStats()
        for _ in range(n):
            expected.observe("k", config.usage_frac * first.cpu_cores, 0.8,
                             config.usage_frac * first.mem_gib, 1.0)
        samples, cpu, mem, cv, cls = expected.predict("k", 0.8)
        assert samples == n and cls >= 0
        assert float(view.pred_cpu_p95) == pytest.approx(cpu, rel=1e-9)
        assert float(view.pred_mem_p95) == pytest.approx(mem, rel=1e-9)
        assert float(view.cpu_cv) == pytest.approx(cv, abs=1e-9)
        assert int(view.behaviour_class) == cls
        assert obs[col["svc_seen"]] == 1
        assert obs[col["svc_history"]] == pytest.approx(n / (n + HISTORY_HALF), rel=1e-6)
        assert obs[col["pred_cpu_p95"]] == pytest.approx(cpu, rel=1e-6)
        assert obs[col["pred_mem_p95"]] == pytest.approx(mem, rel=1e-6)
        assert obs[classes].sum() == 1 and obs[classes[cls]] == 1
        # Constant usage: the predicted p95 is the usage itself.
        assert math.isclose(cpu, config.usage_frac * first.cpu_cores / 0.8, rel_tol=1e-3)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_statistics_are_bounded_and_sampled_once_per_period() -> None:
    clock = Clock()
    backend = SimSiteBackend(SCENARIO, SITE, clock=clock)
    book = BehaviourBook(max_services=3, sample_every_s=300.0)
    for i in range(5):
        assert backend.place(Placement(key=f"k{i}", app=f"app{i}", container="c", node=0,
                                       cpu_cores=0.1, mem_gib=0.1, service=f"svc{i}",
                                       cpu_req=0.2, mem_req=0.4))
    assert book.sample(backend) == 0  # the first period starts now
    clock.t = 299.0
    assert book.sample(backend) == 0
    clock.t = 300.0
    assert book.sample(backend) == 5
    assert book.sample(backend) == 0  # at most one sample per period
    assert len(book) == 3 and set(book.stats.rows) == {("svc2", "c"), ("svc3", "c"),
                                                       ("svc4", "c")}
    assert backend.release("k0") and backend.release("k1")
    clock.t = 10_000.0  # a late call takes one sample, not the periods it missed
    assert book.sample(backend) == 3
    assert book.stats.rows[("svc4", "c")][0] == 2
    row = book.stats.rows[("svc4", "c")]
    assert row[1] == pytest.approx(backend.usage_frac * 0.1 / 0.2)  # CPU used / request
    assert row[5] == pytest.approx(backend.usage_frac * 0.1 / 0.4)  # memory used / request
