"""Hypothesis strategies for hostile MQTT payloads, shared by the fuzz tests.

`payloads(kind)` draws what may arrive on an inbound topic: random bytes, random JSON, huge
payloads, and (most often) a valid message of that kind with one thing broken: a field
dropped, an unknown one added, a value swapped for one of the wrong type, NaN or infinity, an
unknown schema version, unicode or colliding ids. `oracle(kind, payload)` says whether the
protocol must accept it (the models are the reference, so it asks them).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import strategies as st

from hierarchy import protocol as p

REQUEST = {"schema": 1, "request_id": "r-1", "app": "shop", "container": "cart",
           "cpu_cores": 0.1, "mem_gib": 0.25, "slo_ms": 120.0, "peers": ["front", "db"],
           "is_entry": False, "k_index": 1, "app_size": 3, "calls_per_request": 1.0,
           "lifetime_s": 30.0}
CONTEXT = {"site_index": 0, "power_w": 6.0, "budget_w": 27.0, "free_cpu_frac": 0.5,
           "free_mem_frac": 0.5, "wan_rtt_ms": 25.0, "queue": 0}
NODE = {"id": "edge-0.node0", "cores": 4.0, "mem_gib": 16.0, "alloc_cpu_cores": 1.0,
        "alloc_mem_gib": 2.0, "used_cpu_cores": 0.6, "asleep": False, "power_w": 10.0,
        "idle_w": 9.1, "max_w": 18.5, "sleep_w": 0.9, "containers": 2}

# A valid message of each inbound kind, and its model.
VALID: dict[str, tuple[type[p.Message], dict[str, Any]]] = {
    "requests": (p.Request, REQUEST),
    "offload-results": (p.OffloadResult, {
        "schema": 1, "request_id": "r-1", "site": "edge-0", "outcome": "placed",
        "location": "cloud", "node": "cloud.node0", "cpu_cores": 0.1, "mem_gib": 0.25,
        "policy": "near-peers@1", "cloud_us": 10.0}),
    "cloud-status": (p.Status, {
        "schema": 1, "agent": "cloud", "id": "cloud", "state": "online", "started_at_s": 1.0,
        "version": "0.1.0", "pool_free_cpu_frac": 0.5}),
    "offload": (p.Offload, {
        "schema": 1, "site": "edge-0", "request": REQUEST, "reason": "no node fits",
        "context": CONTEXT, "offloaded_at_s": 1.0}),
    "status": (p.Status, {
        "schema": 1, "agent": "edge", "id": "edge-0", "state": "online", "started_at_s": 1.0}),
    "telemetry": (p.Telemetry, {
        "schema": 1, "site": "edge-0", "site_index": 0, "time_s": 1.0, "power_w": 10.0,
        "budget_w": 27.0, "queue": 0, "decisions": {"placed": 1, "offloaded": 0,
                                                    "rejected": 0}, "nodes": [NODE]}),
    "decisions": (p.Decision, {
        "schema": 1, "request_id": "r-1", "site": "edge-0", "outcome": "placed",
        "location": "edge-0.node0", "node": "edge-0.node0", "cpu_cores": 0.1, "mem_gib": 0.25,
        "policy": "power-aware@1", "decision_us": 100.0}),
}

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
# Ids from all of unicode: letters of every script, emoji, control characters, lone
# surrogates (which JSON can spell as \ud800), empty and over-long ones.
ids = st.text(st.characters(), min_size=0, max_size=140)
numbers = (st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**64), 2**64)
           | st.sampled_from([0, -0.0, 1e-320, 1024, 1024.0000001, 16384, 3.6e6, 1e308])
           | st.text(max_size=5) | st.booleans() | st.none())

_serial = itertools.count()


def unique_id(prefix: str = "fz") -> str:
    return f"{prefix}-{next(_serial)}"


def _encode(obj: Any) -> bytes:
    # allow_nan: the NaN and Infinity tokens Python's json writes are exactly the hostile ones.
    return json.dumps(obj, allow_nan=True).encode()


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `obj` (dict keys and list indexes)."""
    out: list[tuple[Any, ...]] = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(
        obj, list) else []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _set(obj: Any, path: tuple[Any, ...], value: Any, drop: bool = False) -> None:
    for key in path[:-1]:
        obj = obj[key]
    if drop:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


@st.composite
def broken(draw: st.DrawFn, kind: str, request_id: str | None = None) -> bytes:
    """A valid message of `kind` with one thing broken (or, now and then, nothing)."""
    obj = json.loads(json.dumps(VALID[kind][1]))
    rid = request_id or unique_id()
    if "request_id" in obj:
        obj["request_id"] = rid
    if isinstance(obj.get("request"), dict):
        obj["request"]["request_id"] = rid
    paths = _paths(obj)
    how = draw(st.sampled_from(["drop", "extra", "wrong", "number", "schema", "id", "none",
                                "deep"]))
    path = draw(st.sampled_from(paths))
    if how == "drop":
        _set(obj, path, None, drop=True)
    elif how == "extra":  # into the message or into one of its objects
        parents = [()] + [q for q in paths if isinstance(_get(obj, q), dict)]
        parent = draw(st.sampled_from(parents))
        _set(obj, (*parent, draw(st.text(min_size=1, max_size=12))), draw(json_values))
    elif how == "wrong":
        _set(obj, path, draw(json_values))
    elif how == "number":
        _set(obj, path, draw(numbers))
    elif how == "schema":
        obj["schema"] = draw(json_values | st.integers())
    elif how == "id":
        id_paths = [q for q in paths if q[-1] in ("request_id", "app", "container", "site",
                                                   "id", "data_site", "offloaded_from")]
        _set(obj, draw(st.sampled_from(id_paths or [("request_id",)])), draw(ids))
    elif how == "deep":
        return ("[" * draw(st.integers(100, 100_000))).encode()
    return _encode(obj)


def huge(kind: str) -> st.SearchStrategy[bytes]:
    """A valid-looking message padded past the payload limit."""
    return st.integers(p.MAX_PAYLOAD_BYTES - 200, p.MAX_PAYLOAD_BYTES * 2).map(
        lambda n: _encode({**VALID[kind][1], "request_id": unique_id(), "pad": "x" * n}))


def payloads(kind: str) -> st.SearchStrategy[bytes]:
    """Anything that may arrive on an inbound topic of `kind`, hostile mostly."""
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(_encode),
        huge(kind),
        broken(kind),
        broken(kind),  # twice: the near-misses find more than noise does
    )


def oracle(kind: str, payload: bytes) -> p.Message | None:
    """The message the protocol accepts from `payload`, None when it must refuse it."""
    try:
        return p.decode(payload, VALID[kind][0])
    except p.ProtocolError:
        return None
