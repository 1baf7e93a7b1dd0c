"""The wire: message models, their refusals and the topic names (no broker needed)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hierarchy import protocol as p

REQUEST = {"schema": 1, "request_id": "r-1", "app": "shop", "container": "cart",
           "cpu_cores": 0.5, "mem_gib": 1.0, "slo_ms": 120.0, "peers": ["front", "db"]}


def refused(payload: bytes | str | dict, model: type[p.Message] = p.Request) -> p.ProtocolError:
    data = json.dumps(payload) if isinstance(payload, dict) else payload
    with pytest.raises(p.ProtocolError) as info:
        p.decode(data, model)
    return info.value


def test_a_valid_request_round_trips() -> None:
    req = p.decode(json.dumps(REQUEST).encode(), p.Request)
    assert req.cpu_cores == 0.5 and req.peers == ["front", "db"] and req.offloaded_from is None
    again = p.decode(req.to_bytes(), p.Request)
    assert again == req
    assert json.loads(req.to_bytes())["schema"] == 1


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    req = p.decode(json.dumps({**REQUEST, "cpu_cores": 2, "slo_ms": 100}), p.Request)
    assert req.cpu_cores == 2.0


@pytest.mark.parametrize("payload, words", [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({k: v for k, v in REQUEST.items() if k != "schema"}), "missing field 'schema'"),
    (json.dumps({**REQUEST, "schema": 2}), "unsupported schema version 2"),
    (json.dumps({**REQUEST, "schema": "1"}), "unsupported schema version"),
    (json.dumps({**REQUEST, "schema": True}), "unsupported schema version"),
    (json.dumps({**REQUEST, "cpu_cores": "two"}), "field 'cpu_cores'"),
    (json.dumps({**REQUEST, "cpu_cores": "0.5"}), "field 'cpu_cores'"),
    (json.dumps({**REQUEST, "cpu_cores": True}), "field 'cpu_cores'"),
    (json.dumps({**REQUEST, "cpu_cores": 0}), "greater than 0"),
    (json.dumps({**REQUEST, "mem_gib": -1.0}), "field 'mem_gib'"),
    (json.dumps({**REQUEST, "cpu_cores": 1e9}), "field 'cpu_cores'"),
    (json.dumps(REQUEST).replace("0.5", "NaN"), "not a number JSON allows"),
    (json.dumps(REQUEST).replace("0.5", "Infinity"), "not a number JSON allows"),
    (json.dumps({**REQUEST, "peers": [f"c{i}" for i in range(p.MAX_PEERS + 1)]}), "peers"),
    (json.dumps({**REQUEST, "app": "x" * 129}), "field 'app'"),
    (json.dumps({**REQUEST, "request_id": ""}), "field 'request_id'"),
    (json.dumps({**REQUEST, "container": "a\nb"}), "field 'container'"),
    (json.dumps({**REQUEST, "colour": "red"}), "field 'colour'"),
    (json.dumps({**REQUEST, "is_entry": 1}), "field 'is_entry'"),
    (json.dumps({**REQUEST, "data_site": "a/b"}), "field 'data_site'"),
    ("[" * 5000 + "]" * 5000, "not valid JSON"),
])
def test_refusals_say_what_was_wrong(payload: bytes | str, words: str) -> None:
    assert words in refused(payload).reason


def test_oversized_payloads_are_refused_before_parsing() -> None:
    big = json.dumps({**REQUEST, "pad": "x" * p.MAX_PAYLOAD_BYTES})
    error = refused(big)
    assert "exceeds" in error.reason and str(p.MAX_PAYLOAD_BYTES) in error.reason


def test_a_refusal_carries_the_request_id_when_there_is_one() -> None:
    assert refused({**REQUEST, "cpu_cores": -1}).ref == "r-1"
    assert refused({**REQUEST, "schema": 7}).ref == "r-1"
    assert refused(b"{oops").ref is None
    offload = {"schema": 1, "site": "edge-0", "request": {**REQUEST, "mem_gib": "x"},
               "reason": "r", "context": {}}
    assert refused(offload, p.Offload).ref == "r-1"
    # An id JSON can escape but UTF-8 cannot hold (a lone surrogate) is not echoed: the
    # reply naming it could not be sent.
    lone = refused(b'{"schema": 1, "request_id": "\\ud800", "app": 3}')
    assert lone.ref is None
    assert p.ErrorReply(ref=lone.ref, topic=p.requests_topic("edge-0"), reason=lone.reason)


def test_every_message_kind_validates_its_own_fields() -> None:
    decision = p.Decision(request_id="r", site="edge-0", outcome="placed", location="n0",
                          cpu_cores=1.0, mem_gib=1.0, policy="power-aware@1", decision_us=12.0)
    assert p.decode(decision.to_bytes(), p.Decision) == decision
    bad = json.loads(decision.to_bytes())
    bad["outcome"] = "maybe"
    assert "field 'outcome'" in refused(bad, p.Decision).reason
    status = p.Status(agent="edge", id="edge-0", state="offline")
    assert p.decode(status.to_bytes(), p.Status).state == "offline"
    err = p.ErrorReply(ref=None, topic="t", reason="why")
    assert json.loads(err.to_bytes()) == {"schema": 1, "topic": "t", "reason": "why"}
    t = p.Telemetry(site="edge-0", time_s=1.0, power_w=10.0, budget_w=20.0, queue=0)
    assert p.decode(t.to_bytes(), p.Telemetry) == t


def test_topics() -> None:
    assert p.requests_topic("edge-0") == "hierarchy/v1/sites/edge-0/requests"
    assert p.offload_results_topic("s1") == "hierarchy/v1/sites/s1/offload-results"
    assert p.site_topic("+", "status") == "hierarchy/v1/sites/+/status"
    assert p.OFFLOAD_TOPIC == "hierarchy/v1/cloud/offload"
    assert p.parse_site_topic("hierarchy/v1/sites/edge-0/decisions") == ("edge-0", "decisions")
    assert p.parse_site_topic("hierarchy/v1/sites/edge-0/other") is None
    assert p.parse_site_topic("hierarchy/v1/cloud/offload") is None
    for bad in ("a/b", "#", "", "cloud", "-x", "x" * 65, "a+"):
        with pytest.raises(ValueError):
            p.requests_topic(bad)


names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="\x7f"),
                min_size=1, max_size=128)


@settings(max_examples=60, deadline=None)
@given(request_id=names, app=names, container=names,
       cpu=st.floats(min_value=1e-6, max_value=p.MAX_CPU_CORES),
       mem=st.floats(min_value=1e-6, max_value=p.MAX_MEM_GIB),
       slo=st.floats(min_value=1e-3, max_value=p.MAX_SLO_MS),
       peers=st.lists(names, max_size=p.MAX_PEERS))
def test_any_valid_request_survives_the_wire(request_id: str, app: str, container: str,
                                             cpu: float, mem: float, slo: float,
                                             peers: list[str]) -> None:
    req = p.Request(request_id=request_id, app=app, container=container, cpu_cores=cpu,
                    mem_gib=mem, slo_ms=slo, peers=peers)
    assert p.decode(req.to_bytes(), p.Request) == req


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                 lambda kids: st.lists(kids, max_size=4)
                 | st.dictionaries(st.sampled_from(list(REQUEST) + ["x"]), kids, max_size=8),
                 max_leaves=30).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({k: st.just(v) for k, v in REQUEST.items()
                           if k not in ("cpu_cores", "peers")}, optional={
        "cpu_cores": st.floats() | st.text(max_size=3) | st.integers(),
        "peers": st.lists(st.integers() | st.text(max_size=3), max_size=3),
    }).map(lambda d: json.dumps(d).encode()),
))
def test_no_payload_raises_anything_but_a_protocol_error(payload: bytes) -> None:
    try:
        p.decode(payload, p.Request)
    except p.ProtocolError as exc:
        assert exc.reason
