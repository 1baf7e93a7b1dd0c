"""The wire between the agents: MQTT topics and the JSON messages that travel on them.

Every topic lives under `hierarchy/v1/` and every payload is a JSON object with
`"schema": 1`. Nothing acts on a message before `decode` has validated it against its model:
sizes, string lengths and list lengths are bounded, numbers are finite (and positive where a
quantity must be), unknown fields and unknown schema versions are refused with a reason that
says what was wrong. docs/protocol.md documents every topic with examples.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
TOPIC_ROOT = "hierarchy/v1"
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_PEERS = 64
MAX_NODES = 256
CLOUD_LOCATION = "cloud"  # the `location` of anything placed in the cloud pool

# Limits on quantities: generous, but they keep one bad number from poisoning a site's sums.
MAX_CPU_CORES = 1024.0
MAX_MEM_GIB = 16384.0
MAX_SLO_MS = 3.6e6
MAX_LIFETIME_S = 1e9

_SITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_SITE_RE = re.compile(_SITE_PATTERN)
# Names and ids: 1..128 characters, none of them a control character.
_NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"

SiteId = Annotated[str, Field(pattern=_SITE_PATTERN, description="site id: [A-Za-z0-9_.-]")]
Name = Annotated[str, Field(pattern=_NAME_PATTERN, description="1..128 printable characters")]
Text = Annotated[str, Field(max_length=1000)]
Cores = Annotated[float, Field(gt=0, le=MAX_CPU_CORES)]
GiB = Annotated[float, Field(gt=0, le=MAX_MEM_GIB)]
NonNegative = Annotated[float, Field(ge=0, le=1e12)]
Fraction = Annotated[float, Field(ge=-1e3, le=1e3)]
UnixTime = Annotated[float, Field(ge=0, le=1e11)]
Count = Annotated[int, Field(ge=0, le=10**12)]


class ProtocolError(ValueError):
    """A payload that was refused; `reason` says why, `ref` is its request id if it had one."""

    def __init__(self, reason: str, ref: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ref = ref


class Part(BaseModel):
    """A part of a message: strict types, finite numbers, no unknown fields."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, allow_inf_nan=False, populate_by_name=True
    )


class Message(Part):
    """Base of every message: a Part with the schema version."""

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, alias="schema")

    def to_bytes(self) -> bytes:
        """The JSON payload, `schema` first, optional fields that are unset left out."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


# --- messages ---------------------------------------------------------------------------------


class Request(Message):
    """A container to place, sent to `sites/{site}/requests`."""

    request_id: Name
    app: Name
    container: Name
    service: Name | None = Field(
        default=None, description="the service this app is an instance of: the edge agent "
        "keeps usage statistics per (service, container) (default: the app)")
    cpu_cores: Cores = Field(description="requested CPU, cores")
    mem_gib: GiB = Field(description="requested memory, GiB")
    slo_ms: Annotated[float, Field(gt=0, le=MAX_SLO_MS)] = Field(description="latency SLO, ms")
    peers: list[Name] = Field(default_factory=list, max_length=MAX_PEERS,
                              description="containers of the same app it calls or is called by")
    is_entry: bool = Field(default=False, description="the app's entry container (users call it)")
    k_index: Annotated[int, Field(ge=0, lt=MAX_PEERS)] | None = Field(
        default=None, description="its index in the app's call graph (0 = entry)")
    app_size: Annotated[int, Field(ge=1, le=MAX_PEERS + 1)] | None = Field(
        default=None, description="containers in the app (default: len(peers) + 1)")
    calls_per_request: Annotated[float, Field(gt=0, le=1e6)] = Field(
        default=1.0, description="calls it receives per user request")
    data_site: SiteId | None = Field(default=None, description="site holding data it reads")
    lifetime_s: Annotated[float, Field(gt=0, le=MAX_LIFETIME_S)] | None = Field(
        default=None, description="how long it runs, s (the sim backend releases it after)")
    sent_at_s: UnixTime | None = Field(default=None, description="sender's clock, unix s")
    offloaded_from: SiteId | None = Field(
        default=None, description="set by the cloud agent when it forwards an offloaded "
        "request to another site; that site places it or rejects it, never offloads it")


Outcome = Literal["placed", "offloaded", "rejected"]


class Decision(Message):
    """The one final decision for a request id, on `sites/{site}/decisions`."""

    request_id: Name
    site: SiteId
    outcome: Outcome
    location: str | None = Field(
        default=None, max_length=128,
        description="node id (placed), site id or 'cloud' (offloaded), null (rejected)")
    node: str | None = Field(default=None, max_length=128, description="node id where known")
    cpu_cores: NonNegative = Field(description="allocated CPU, cores (0 when rejected)")
    mem_gib: NonNegative = Field(description="allocated memory, GiB (0 when rejected)")
    policy: Annotated[str, Field(max_length=128)] = Field(description="name@version")
    decision_us: NonNegative = Field(description="request taken up -> decision, microseconds")
    app: Name | None = None
    container: Name | None = None
    reason: Text | None = None
    offloaded_from: SiteId | None = None
    decided_at_s: UnixTime | None = None


class SiteContext(Part):
    """What an offloading site tells the cloud about itself."""

    site_index: Annotated[int, Field(ge=0, le=100_000)] | None = None
    power_w: NonNegative
    budget_w: NonNegative
    free_cpu_frac: Fraction
    free_mem_frac: Fraction
    wan_rtt_ms: NonNegative
    queue: Count


class Offload(Message):
    """An offloaded request with its site's context, edge -> `cloud/offload`."""

    site: SiteId
    request: Request
    reason: Text
    context: SiteContext
    offloaded_at_s: UnixTime | None = None


class OffloadResult(Message):
    """Where the cloud level put an offloaded request, cloud -> `sites/{site}/offload-results`."""

    request_id: Name
    site: SiteId = Field(description="the site that offloaded it")
    outcome: Literal["placed", "rejected"]
    location: str | None = Field(default=None, max_length=128,
                                 description="site id or 'cloud'; null when rejected")
    node: str | None = Field(default=None, max_length=128)
    cpu_cores: NonNegative
    mem_gib: NonNegative
    policy: Annotated[str, Field(max_length=128)]
    cloud_us: NonNegative = Field(default=0.0, description="cloud's time for it, microseconds")
    reason: Text | None = None


class NodeState(Part):
    id: Annotated[str, Field(min_length=1, max_length=128)]
    cores: Annotated[float, Field(ge=0, le=MAX_CPU_CORES)]
    mem_gib: Annotated[float, Field(ge=0, le=MAX_MEM_GIB)]
    alloc_cpu_cores: NonNegative
    alloc_mem_gib: NonNegative
    used_cpu_cores: NonNegative
    asleep: bool
    power_w: NonNegative
    idle_w: NonNegative
    max_w: NonNegative
    sleep_w: NonNegative
    containers: Count


class DecisionCounts(Part):
    placed: Count = 0
    offloaded: Count = 0
    rejected: Count = 0


class Telemetry(Message):
    """A site's periodic report, edge -> `sites/{site}/telemetry` (QoS 0)."""

    site: SiteId
    site_index: Annotated[int, Field(ge=0, le=100_000)] | None = None
    time_s: UnixTime
    power_w: NonNegative = Field(description="site demand now, W")
    budget_w: NonNegative
    throttle: Annotated[float, Field(ge=0, le=1)] = 1.0
    wan_rtt_ms: NonNegative = 0.0
    queue: Count = Field(description="requests waiting for a decision")
    pending_offloads: Count = 0
    containers: Count = 0
    decisions: DecisionCounts = Field(default_factory=DecisionCounts)
    policy: Annotated[str, Field(max_length=128)] = ""
    knob: Annotated[int, Field(ge=0, le=1000)] = 0
    nodes: list[NodeState] = Field(default_factory=list, max_length=MAX_NODES)


class Status(Message):
    """Liveness, retained on `sites/{site}/status` and `cloud/status`; the will says offline."""

    agent: Literal["edge", "cloud"]
    id: Annotated[str, Field(min_length=1, max_length=64)]
    state: Literal["online", "offline"]
    started_at_s: UnixTime | None = None
    version: Annotated[str, Field(max_length=64)] = ""
    policy: Annotated[str, Field(max_length=128)] | None = None
    rest_url: Annotated[str, Field(max_length=256)] | None = None
    pool_free_cpu_frac: Annotated[float, Field(ge=0, le=1)] | None = None


class ErrorReply(Message):
    """Why a message was refused, on `sites/{site}/errors` (or `cloud/errors`)."""

    ref: str | None = Field(default=None, max_length=128, description="its request id, if any")
    topic: Annotated[str, Field(max_length=512)]
    reason: Text


M = TypeVar("M", bound=Message)


# --- decoding ---------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


# One decoder for every payload: json.loads with an option builds a new one per call.
_JSON = json.JSONDecoder(parse_constant=_no_constants)


def decode(payload: bytes | bytearray | str, model: type[M]) -> M:
    """The validated message in `payload`, or ProtocolError with a reason a sender can act on."""
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
        if text.startswith("\ufeff"):  # as json.loads refuses it
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        obj = _JSON.decode(text)
    except UnicodeDecodeError:
        raise ProtocolError("payload is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"payload is not valid JSON: {_clip(str(exc), 200)}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"payload must be a JSON object, got {type(obj).__name__}")
    ref = _ref_of(obj)
    if "schema" not in obj:
        raise ProtocolError(f"missing field 'schema' (this agent speaks schema "
                            f"{SCHEMA_VERSION})", ref)
    if obj["schema"] != SCHEMA_VERSION or isinstance(obj["schema"], bool):
        raise ProtocolError(
            f"unsupported schema version {_clip(json.dumps(obj['schema']), 40)}; this agent "
            f"speaks schema {SCHEMA_VERSION}", ref)
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ProtocolError(f"invalid {model.__name__}: {describe_errors(exc)}", ref) from None


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """`field 'x': message; ...` for the first `limit` problems."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"field '{where}': {err['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return _clip("; ".join(parts), 900)


def _ref_of(obj: dict[str, Any]) -> str | None:
    ref = obj.get("request_id")
    if ref is None and isinstance(obj.get("request"), dict):
        ref = obj["request"].get("request_id")
    if isinstance(ref, str) and 0 < len(ref) <= 128 and _encodable(ref):
        return ref
    return None


def _encodable(text: str) -> bool:
    """False for a string JSON's escapes can hold but UTF-8 cannot (a lone surrogate, as
    in "\\ud800"): such an id cannot be named in a reply, so the reply names none."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# --- topics -----------------------------------------------------------------------------------

SITE_KINDS = ("requests", "decisions", "offload-results", "telemetry", "status", "errors")
OFFLOAD_TOPIC = f"{TOPIC_ROOT}/cloud/offload"
CLOUD_STATUS_TOPIC = f"{TOPIC_ROOT}/cloud/status"
CLOUD_ERRORS_TOPIC = f"{TOPIC_ROOT}/cloud/errors"


def is_site_id(site: str) -> bool:
    return bool(_SITE_RE.match(site)) and site != CLOUD_LOCATION


def check_site_id(site: str) -> str:
    """`site` if it can name a site (and a topic level), else ValueError saying why."""
    if not is_site_id(site):
        raise ValueError(
            f"invalid site id {site!r}: use 1-64 characters of A-Z a-z 0-9 _ . - starting "
            f"with a letter or digit, and not {CLOUD_LOCATION!r}")
    return site


def site_topic(site: str, kind: str) -> str:
    """`hierarchy/v1/sites/{site}/{kind}`; `site` may be `+` for a subscription."""
    if kind not in SITE_KINDS:
        raise ValueError(f"unknown site topic kind {kind!r}; known: {', '.join(SITE_KINDS)}")
    if site != "+":
        check_site_id(site)
    return f"{TOPIC_ROOT}/sites/{site}/{kind}"


def requests_topic(site: str) -> str:
    return site_topic(site, "requests")


def decisions_topic(site: str) -> str:
    return site_topic(site, "decisions")


def offload_results_topic(site: str) -> str:
    return site_topic(site, "offload-results")


def telemetry_topic(site: str) -> str:
    return site_topic(site, "telemetry")


def status_topic(site: str) -> str:
    return site_topic(site, "status")


def errors_topic(site: str) -> str:
    return site_topic(site, "errors")


def parse_site_topic(topic: str) -> tuple[str, str] | None:
    """(site, kind) of a `sites/{site}/{kind}` topic, None for anything else."""
    prefix = f"{TOPIC_ROOT}/sites/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if len(parts) != 2 or parts[1] not in SITE_KINDS or not is_site_id(parts[0]):
        return None
    return parts[0], parts[1]
