"""The edge agent's queue without a broker: what counts towards `queue_max`.

Messages are queued as the loop reads them (`_admit`) and decided in batches, as `step` does;
the real-broker version is in test_agents_mqtt.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.agent import EdgeAgent
from edge_agent.config import EdgeConfig
from hierarchy import protocol as p
from hierarchy.transport import Incoming

SITE = "edge-0"
TOPIC = p.requests_topic(SITE)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[EdgeAgent]:
    a = EdgeAgent(EdgeConfig(site=SITE, scenario="small", store=tmp_path / "s.sqlite3",
                             queue_max=3))
    try:
        yield a
    finally:
        a.close()


def request(rid: str) -> bytes:
    return json.dumps({"schema": 1, "request_id": rid, "app": "a", "container": rid,
                       "cpu_cores": 0.05, "mem_gib": 0.05, "slo_ms": 100.0}).encode()


def arrive_and_decide(agent: EdgeAgent, rids: list[str]) -> list[dict]:
    """Queue `rids` as one read from the broker, decide them all; the decisions sent."""
    before = agent.store.outbox_size()
    agent._arrived.extend(Incoming(TOPIC, request(r), 1, False, i + 1)
                          for i, r in enumerate(rids))
    agent._admit()
    replies: list[tuple[str, bytes]] = []
    with agent.store.transaction():
        for queued in agent._take():
            agent._handle(queued.msg, replies, queued)
    assert not replies and not agent.incoming
    rows = agent.store.outbox_after(0, 100_000)[before:]
    return [json.loads(r.payload) for r in rows]


def test_copies_of_waiting_requests_count_once(agent: EdgeAgent) -> None:
    got = arrive_and_decide(agent, [f"r{i % 3}" for i in range(12)])  # 3 ids, 4 copies each
    assert [d["request_id"] for d in got] == [f"r{i % 3}" for i in range(12)]
    assert {d["outcome"] for d in got} == {"placed"} and agent.duplicates == 9
    assert agent.backend.containers() == 3


def test_copies_of_decided_requests_do_not_count(agent: EdgeAgent) -> None:
    arrive_and_decide(agent, ["a", "b", "c"])
    got = arrive_and_decide(agent, ["a", "b", "c"] * 3 + ["x", "y", "a"])
    assert {d["outcome"] for d in got} == {"placed"} and agent.backend.containers() == 5


def test_distinct_requests_beyond_the_limit_are_rejected_as_queue_full(
        agent: EdgeAgent) -> None:
    got = arrive_and_decide(agent, ["a", "b", "c", "d", "e", "a"])
    outcome = {d["request_id"]: (d["outcome"], d.get("reason", "")) for d in got}
    # 4 others wait behind "a" and 3 behind "b": over queue_max; from "c" on they fit.
    assert outcome["a"] == outcome["b"] == ("rejected", "queue full (3 requests waiting)")
    assert {outcome[r][0] for r in "cde"} == {"placed"}
    assert got[-1] == got[0]  # the copy of "a" gets a's decision
