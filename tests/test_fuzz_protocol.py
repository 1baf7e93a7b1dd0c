"""Property-based fuzzing of the message models (no broker: fast, many examples).

Whatever arrives on an inbound topic, `decode` either returns a message that is valid by the
rules of docs/protocol.md (finite numbers, bounded sizes, a payload that survives its own
round trip) or raises ProtocolError with a reason an error reply can carry. Nothing else.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from fuzz_payloads import VALID, ids, numbers, oracle, payloads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hierarchy import protocol as p

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _numbers_in(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers_in(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers_in(v)]
    return []


@pytest.mark.parametrize("kind", sorted(VALID))
@FAST
@given(data=st.data())
def test_decode_accepts_only_valid_messages_and_refuses_the_rest_with_a_reason(
        kind: str, data: st.DataObject) -> None:
    model = VALID[kind][0]
    payload = data.draw(payloads(kind))
    try:
        msg = p.decode(payload, model)
    except p.ProtocolError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        assert exc.ref is None or 0 < len(exc.ref) <= 128
        # The agents answer with this: it must itself be a valid message.
        reply = p.ErrorReply(ref=exc.ref, topic=f"{p.TOPIC_ROOT}/x", reason=exc.reason[:1000])
        assert p.decode(reply.to_bytes(), p.ErrorReply) == reply
        return
    assert len(payload) <= p.MAX_PAYLOAD_BYTES
    assert all(math.isfinite(x) for x in _numbers_in(msg.model_dump()))
    assert p.decode(msg.to_bytes(), model) == msg  # what an agent would send on is valid


@FAST
@given(request_id=ids)
def test_ids_in_any_script_are_accepted_within_the_rules(request_id: str) -> None:
    payload = json.dumps({**VALID["requests"][1], "request_id": request_id}).encode()
    surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in request_id)
    ok = 1 <= len(request_id) <= 128 and not CONTROL.search(request_id) and not surrogate
    msg = oracle("requests", payload)
    assert (msg is not None) == ok
    if msg is not None:
        assert msg.request_id == request_id  # unicode survives untouched


@FAST
@given(field=st.sampled_from(["cpu_cores", "mem_gib", "slo_ms"]), value=numbers)
def test_quantities_must_be_finite_positive_numbers_within_their_limits(
        field: str, value: Any) -> None:
    limit = {"cpu_cores": p.MAX_CPU_CORES, "mem_gib": p.MAX_MEM_GIB, "slo_ms": p.MAX_SLO_MS}
    payload = json.dumps({**VALID["requests"][1], field: value}, allow_nan=True).encode()
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = is_number and math.isfinite(value) and 0 < value <= limit[field]
    assert (oracle("requests", payload) is not None) == ok


@FAST
@given(version=st.integers() | st.floats(allow_nan=False, allow_infinity=False)
       | st.text(max_size=5) | st.booleans() | st.none() | st.lists(st.integers(), max_size=2))
def test_only_schema_1_is_spoken(version: Any) -> None:
    for kind, (model, valid) in VALID.items():
        payload = json.dumps({**valid, "schema": version}).encode()
        if version == 1 and not isinstance(version, bool):
            assert oracle(kind, payload) is not None
            continue
        with pytest.raises(p.ProtocolError, match="unsupported schema version"):
            p.decode(payload, model)


@FAST
@given(extra=st.text(min_size=1, max_size=20))
def test_unknown_fields_are_refused_by_name(extra: str) -> None:
    for model, valid in VALID.values():
        if extra in valid:
            continue
        with pytest.raises(p.ProtocolError, match="Extra inputs are not permitted"):
            p.decode(json.dumps({**valid, extra: 1}).encode(), model)
