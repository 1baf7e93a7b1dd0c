"""The one observation encoder and action-mask guard, for the simulator and the live agents.

What an actor sees in training is exactly what it sees on a gateway: both fill an `EdgeView`
(or `CloudView`) of NumPy arrays with any leading batch shape, and call the same functions.
Every feature has declared bounds and is clipped into them, so observations always lie in
their declared space. The spec (names, bounds, version) is hashed; a policy records the hash
it was trained with and is refused where it does not match.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hierarchy.actions import CloudActionLayout, EdgeActionLayout
from hierarchy.encoding import (
    N_BEHAVIOUR,
    N_RESPONSE,
    cloud_encode_flat,
    edge_encode_flat,
    placement_fits_flat,
    power_delta_flat,
)
from hierarchy.features.classes import CLASS_NAMES
from hierarchy.features.online import MIN_SAMPLES, RESPONSE_RATIO_CAP
from hierarchy.guard import slo_guard

if TYPE_CHECKING:
    from hierarchy.scenario import Scenario

# Service-behaviour features of the pending container (EdgeEncoder.behaviour_features).
BEHAVIOUR_FEATURES = (
    ("svc_seen", 0.0, 1.0), ("svc_history", 0.0, 1.0), ("pred_cpu_p95", 0.0, 2.0),
    ("pred_mem_p95", 0.0, 2.0), ("cpu_cv", 0.0, 4.0),
    *((f"class_{name}", 0.0, 1.0) for name in CLASS_NAMES),
)
assert len(BEHAVIOUR_FEATURES) == N_BEHAVIOUR
# The pending container's app: its service's observed response / SLO, while one of its
# containers ran on a slow node and while all ran on fast ones (EdgeEncoder.response_features).
RESPONSE_FEATURES = (
    ("resp_seen_slow", 0.0, 1.0), ("resp_slo_ratio_slow", 0.0, RESPONSE_RATIO_CAP),
    ("resp_seen_fast", 0.0, 1.0), ("resp_slo_ratio_fast", 0.0, RESPONSE_RATIO_CAP),
)
assert len(RESPONSE_FEATURES) == N_RESPONSE

# 2: the pending container's service behaviour (seen, history, predicted p95 CPU and memory,
# CPU CV, class one-hot) and the predicted-p95 size level.
OBS_SPEC_VERSION = 2

# Per-node feature names of the edge observation, in order.
EDGE_NODE_FEATURES = (
    "exists", "asleep", "free_cpu_frac", "free_mem_frac", "util", "peers_on_node",
    "cores_rel", "speed_rel", "power_delta_frac",
)
# Per-destination feature names of the cloud observation (each site, then the pool).
CLOUD_DEST_FEATURES = (
    "free_cpu_frac", "free_mem_frac", "power_headroom", "peers", "rtt_from_home", "fits",
)


@dataclass(frozen=True)
class Feature:
    name: str
    low: float
    high: float


@dataclass(frozen=True)
class ObsSpec:
    features: tuple[Feature, ...]
    # Rules that edit the action mask beyond capacity and power (a policy trained with one
    # decided within it): part of the hash when there are any.
    mask_rules: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        return len(self.features)

    @property
    def low(self) -> np.ndarray:
        return np.array([f.low for f in self.features], dtype=np.float32)

    @property
    def high(self) -> np.ndarray:
        return np.array([f.high for f in self.features], dtype=np.float32)

    @property
    def hash(self) -> str:
        features = [(f.name, f.low, f.high) for f in self.features]
        spec: dict[str, object] = {"version": OBS_SPEC_VERSION, "features": features}
        if self.mask_rules:
            spec["mask_rules"] = list(self.mask_rules)
        payload = json.dumps(spec)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _f(name: str, low: float = 0.0, high: float = 1.0) -> Feature:
    return Feature(name, low, high)


# --- edge -----------------------------------------------------------------------------------


@dataclass
class EdgeView:
    """What one edge agent knows about its site, with any leading batch shape `...`.

    Site-level arrays have shape (...); node arrays (..., M); `curves` is (M, 11) or None.
    CPU in cores, memory in GiB, power in W, time in h and ms.
    """

    hour: np.ndarray
    site_index: np.ndarray
    site_power_w: np.ndarray  # demand (before capping)
    site_budget_w: np.ndarray
    throttle: np.ndarray
    queue_fill: np.ndarray
    knob: np.ndarray
    wan_rtt_ms: np.ndarray
    cloud_free_frac: np.ndarray
    # the container waiting for a decision (zeros where none)
    pending: np.ndarray
    cpu_req: np.ndarray
    mem_req: np.ndarray
    slo_ms: np.ndarray
    app_size: np.ndarray
    k_index: np.ndarray
    is_entry: np.ndarray
    calls: np.ndarray
    peers_here: np.ndarray
    peers_cloud: np.ndarray
    peers_other: np.ndarray
    data_here: np.ndarray
    data_elsewhere: np.ndarray
    # nodes of the site
    node_exists: np.ndarray
    node_asleep: np.ndarray
    node_cores: np.ndarray
    node_mem_gib: np.ndarray
    node_alloc_cpu: np.ndarray
    node_alloc_mem: np.ndarray
    node_used_cpu: np.ndarray
    node_peers: np.ndarray
    node_speed: np.ndarray
    node_idle_w: np.ndarray
    node_max_w: np.ndarray
    node_sleep_w: np.ndarray
    curves: np.ndarray | None
    # What has been observed of the pending container's service (hierarchy.features.online):
    # None (or 0 samples) is an unknown service, the default for a gateway that keeps none.
    svc_samples: np.ndarray | None = None  # samples seen of its (service, position)
    pred_cpu_p95: np.ndarray | None = None  # predicted p95 CPU / request
    pred_mem_p95: np.ndarray | None = None  # predicted p95 memory / request
    cpu_cv: np.ndarray | None = None
    behaviour_class: np.ndarray | None = None  # index into CLASS_NAMES, -1 unknown
    # (..., 4) its app's observed response / SLO (hierarchy.features.online.response_of_row);
    # None: never observed.
    svc_response: np.ndarray | None = None


@dataclass(frozen=True)
class EdgeEncoder:
    """Encodes EdgeViews of a site shape (sites, nodes per site, size levels, knob levels).

    `behaviour_features` adds the pending container's service behaviour to the observation;
    `predicted_size_margin` (not None) adds one size level after `size_levels`: the
    predicted p95 x (1 + margin), within [predicted_size_min_frac, 1] x request.
    """

    num_sites: int
    nodes: int
    size_levels: tuple[float, ...]
    headroom_levels: int
    max_app_size: int
    ref_cores: float
    ref_mem_gib: float
    behaviour_features: bool = True
    response_features: bool = False
    slo_guard: bool = False
    predicted_size_margin: float | None = None
    predicted_size_min_frac: float = 0.1

    @staticmethod
    def scenario_options(scenario: Scenario) -> dict[str, object]:
        """The encoder options a scenario sets (pass as keyword arguments)."""
        return {
            "behaviour_features": scenario.observation.behaviour_features,
            "response_features": scenario.observation.response_features,
            "slo_guard": scenario.observation.slo_guard,
            "predicted_size_margin": scenario.sizing.predicted_size_margin,
            "predicted_size_min_frac": scenario.sizing.resize_min_frac,
        }

    @property
    def sizes(self) -> int:
        """Size levels of the action layout: the fixed ones, then the predicted one if any."""
        return len(self.size_levels) + (self.predicted_size_margin is not None)

    @property
    def layout(self) -> EdgeActionLayout:
        return EdgeActionLayout(self.nodes, self.sizes, self.headroom_levels)

    def size_fractions(self, v: EdgeView) -> tuple[np.ndarray, np.ndarray]:
        """(CPU, memory) allocation per size level as fractions of the request, (..., L)."""
        lead = np.shape(v.pending)
        fixed = np.broadcast_to(np.asarray(self.size_levels, dtype=np.float64),
                                (*lead, len(self.size_levels)))
        if self.predicted_size_margin is None:
            return fixed, fixed
        seen, cpu, mem = _behaviour(v, lead)[:3]
        lo, grow = self.predicted_size_min_frac, 1.0 + self.predicted_size_margin
        pred_cpu = np.where(seen, np.clip(cpu * grow, lo, 1.0), 1.0)
        pred_mem = np.where(seen, np.clip(mem * grow, lo, 1.0), 1.0)
        return (np.concatenate([fixed, pred_cpu[..., None]], axis=-1),
                np.concatenate([fixed, pred_mem[..., None]], axis=-1))

    def level_fractions(self, v: EdgeView, level: int) -> tuple[np.ndarray | float, ...]:
        """(CPU, memory) fractions of the request at size level `level`: a fixed level's
        fraction as a float (no prediction needed), the predicted level's as (...) arrays."""
        if level < len(self.size_levels):
            frac = self.size_levels[level]
            return frac, frac
        cpu_frac, mem_frac = self.size_fractions(v)
        return cpu_frac[..., level], mem_frac[..., level]

    @property
    def spec(self) -> ObsSpec:
        feats = [_f("hour_sin", -1, 1), _f("hour_cos", -1, 1)]
        feats += [_f(f"site_{i}") for i in range(self.num_sites)]
        feats += [_f("power_ratio", 0, 2), _f("throttle"), _f("queue_fill")]
        feats += [_f(f"knob_{i}") for i in range(self.headroom_levels)]
        feats += [_f("wan_rtt", 0, 5), _f("cloud_free")]
        feats += [
            _f("pending"), _f("cpu_req", 0, 4), _f("mem_req", 0, 4), _f("slo", 0, 10),
            _f("app_size"), _f("k_index"), _f("is_entry"), _f("calls"),
            _f("peers_here"), _f("peers_cloud"), _f("peers_other"),
            _f("data_here"), _f("data_elsewhere"),
        ]
        if self.behaviour_features:
            feats += [_f(name, low, high) for name, low, high in BEHAVIOUR_FEATURES]
        if self.response_features:
            feats += [_f(name, low, high) for name, low, high in RESPONSE_FEATURES]
        for m in range(self.nodes):
            for name in EDGE_NODE_FEATURES:
                high = 4.0 if name in ("cores_rel", "speed_rel") else 1.0
                feats.append(_f(f"node{m}_{name}", 0, high))
        return ObsSpec(tuple(feats), ("slo_guard",) if self.slo_guard else ())

    def placement_ok(self, v: EdgeView) -> np.ndarray:
        """(..., M, L) bool: node m at size level l fits its capacity and the power budget.

        The guard is hard: a placement it refuses is never made, offload is always possible.
        """
        mask = self.mask(v)
        lead = mask.shape[:-1]
        per_knob = mask[..., 1 : 1 + self.layout.placements]
        return per_knob[..., :-1].reshape(*lead, self.nodes, self.sizes).astype(bool)

    def mask(self, v: EdgeView) -> np.ndarray:
        return self.encode_and_mask(v)[1]

    def encode(self, v: EdgeView) -> np.ndarray:
        return self.encode_and_mask(v)[0]

    def encode_and_mask(self, v: EdgeView) -> tuple[np.ndarray, np.ndarray]:
        """(obs (..., D) float32, mask (..., A) int8) for edge views with any leading shape."""
        lead = np.shape(v.pending)
        m = (self.nodes,)
        f8, i8, b1 = _F8, _I8, _B1
        flat = _flattener(lead)
        low, high = spec_bounds(self)
        n = int(np.prod(lead, dtype=np.int64))
        obs = np.empty((n, len(low)), dtype=np.float32)
        mask = np.empty((n, self.layout.n), dtype=np.int8)
        curves, linear = _flat_curves(v.curves, lead, self.nodes)
        samples, cpu_p95, mem_p95, cv, cls = _behaviour_flat(v, lead)
        response = _response_flat(v, lead)
        margin = self.predicted_size_margin
        edge_encode_flat(
            flat(v.hour, f8), flat(v.site_index, i8), flat(v.site_power_w, f8),
            flat(v.site_budget_w, f8), flat(v.throttle, f8),
            flat(v.queue_fill, f8), flat(v.knob, i8), flat(v.wan_rtt_ms, f8),
            flat(v.cloud_free_frac, f8), flat(v.pending, b1),
            flat(v.cpu_req, f8), flat(v.mem_req, f8), flat(v.slo_ms, f8),
            flat(v.app_size, f8), flat(v.k_index, f8), flat(v.is_entry, b1),
            flat(v.calls, f8), flat(v.peers_here, f8),
            flat(v.peers_cloud, f8), flat(v.peers_other, f8),
            flat(v.data_here, b1), flat(v.data_elsewhere, b1),
            samples, cpu_p95, mem_p95, cv, cls, response,
            flat(v.node_exists, b1, m), flat(v.node_asleep, b1, m),
            flat(v.node_cores, f8, m), flat(v.node_mem_gib, f8, m),
            flat(v.node_alloc_cpu, f8, m), flat(v.node_alloc_mem, f8, m),
            flat(v.node_used_cpu, f8, m), flat(v.node_peers, f8, m),
            flat(v.node_speed, f8, m), flat(v.node_idle_w, f8, m),
            flat(v.node_max_w, f8, m), flat(v.node_sleep_w, f8, m),
            curves, linear,
            self.num_sites, self.headroom_levels, self.max_app_size, self.ref_cores,
            self.ref_mem_gib, np.asarray(self.size_levels, dtype=f8), self.behaviour_features,
            self.response_features, -1.0 if margin is None else float(margin),
            self.predicted_size_min_frac, low, high,
            obs, mask,
        )
        if self.slo_guard:
            slo_guard(mask, response, flat(v.node_speed, f8, m), self.nodes, self.sizes)
        return obs.reshape(*lead, -1), mask.reshape(*lead, -1)


def _behaviour_flat(v: EdgeView, lead: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The view's behaviour fields flattened to (P,); an unknown service where they are None."""
    if v.svc_samples is None:
        n = int(np.prod(lead, dtype=np.int64))
        zeros = np.zeros(n)
        return zeros, zeros, zeros, zeros, np.full(n, -1, dtype=np.int64)
    flat, f8 = _flattener(lead), _F8
    return (flat(v.svc_samples, f8), flat(v.pred_cpu_p95, f8), flat(v.pred_mem_p95, f8),
            flat(v.cpu_cv, f8), flat(v.behaviour_class, _I8))


def _response_flat(v: EdgeView, lead: tuple[int, ...]) -> np.ndarray:
    """The view's response statistics as (P, 4); never observed where they are None."""
    if v.svc_response is None:
        return np.zeros((int(np.prod(lead, dtype=np.int64)), N_RESPONSE))
    return _flattener(lead)(v.svc_response, _F8, (N_RESPONSE,))


def _behaviour(v: EdgeView, lead: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """(seen, predicted p95 CPU, predicted p95 memory) with the view's leading shape."""
    samples, cpu, mem = (a.reshape(lead) for a in _behaviour_flat(v, lead)[:3])
    return samples >= MIN_SAMPLES, cpu, mem


def power_delta_w(
    asleep: np.ndarray, used_cpu: np.ndarray, cores: np.ndarray, idle_w: np.ndarray,
    max_w: np.ndarray, sleep_w: np.ndarray, curves: np.ndarray | None, cpu: np.ndarray,
) -> np.ndarray:
    """Added power (W) if `cpu` cores of load land on each node.

    Node arrays are (..., M); `cpu` broadcasts to (..., M, L); `curves` is (..., M, 11) or
    None for linear nodes. A sleeping node adds its wake-up to idle power as well.
    """
    one = _power_delta_one_view(asleep, used_cpu, cores, idle_w, max_w, sleep_w, curves, cpu)
    if one is not None:
        return one
    nodes = [np.asarray(a)[..., None] for a in (asleep, used_cpu, cores, idle_w, max_w, sleep_w)]
    shape = np.broadcast_shapes(*(a.shape for a in nodes), np.shape(cpu))
    flat = [_flat(a, shape, dt) for a, dt in zip(nodes, (bool,) + (np.float64,) * 5, strict=True)]
    table, linear = _flat_curves(
        None if curves is None else np.asarray(curves)[..., None, :], shape, None
    )
    out = np.empty(flat[0].shape[0])
    power_delta_flat(*flat, table, linear, _flat(cpu, shape, np.float64), out)
    return out.reshape(shape)


def _power_delta_one_view(
    asleep: np.ndarray, used_cpu: np.ndarray, cores: np.ndarray, idle_w: np.ndarray,
    max_w: np.ndarray, sleep_w: np.ndarray, curves: np.ndarray | None, cpu: np.ndarray,
) -> np.ndarray | None:
    """`power_delta_w` for one site's nodes (M,) and one CPU amount of shape (1, 1), the
    live edge agent's power-aware rule on every request, without the broadcasting; the same
    kernel on the same numbers (bit for bit). None for any other shapes or dtypes."""
    if type(cpu) is not np.ndarray or cpu.shape != (1, 1):
        return None
    m = np.shape(asleep)
    nodes = (asleep, used_cpu, cores, idle_w, max_w, sleep_w)
    for a, dtype in zip(nodes, (_B1, _F8, _F8, _F8, _F8, _F8), strict=True):
        if (type(a) is not np.ndarray or a.shape != m or len(m) != 1 or a.dtype != dtype
                or not a.flags.c_contiguous):
            return None
    if curves is None:
        table, linear = np.zeros((1, 11)), True
    elif (type(curves) is np.ndarray and curves.shape == (m[0], 11) and curves.dtype == _F8
          and curves.flags.c_contiguous):
        table, linear = curves, False
    else:
        return None
    out = np.empty(m[0])
    power_delta_flat(*nodes, table, linear, np.full(m[0], cpu[0, 0], dtype=_F8), out)
    return out.reshape(m[0], 1)


def placement_fits(
    exists: np.ndarray, cores: np.ndarray, mem_gib: np.ndarray, alloc_cpu: np.ndarray,
    alloc_mem: np.ndarray, used_cpu: np.ndarray, asleep: np.ndarray, idle_w: np.ndarray,
    max_w: np.ndarray, sleep_w: np.ndarray, curves: np.ndarray | None,
    site_power_w: np.ndarray, site_budget_w: np.ndarray, cpu: np.ndarray, mem: np.ndarray,
) -> np.ndarray:
    """(..., M, L): node capacity holds and the site stays within its power budget.

    Node arrays are (..., M), site arrays (...), `cpu`/`mem` broadcast to (..., M, L). Power
    is judged at the container's allocated CPU (its worst case at decision time) against the
    site's uncapped demand, which includes load placed since the last measurement.
    """
    node_arrays = (exists, cores, mem_gib, alloc_cpu, alloc_mem, used_cpu, asleep, idle_w,
                   max_w, sleep_w)
    nodes = [np.asarray(a)[..., None] for a in node_arrays]
    sites = [np.asarray(a)[..., None, None] for a in (site_power_w, site_budget_w)]
    shape = np.broadcast_shapes(*(a.shape for a in nodes + sites), np.shape(cpu), np.shape(mem))
    kinds = (bool, *(np.float64,) * 5, bool, *(np.float64,) * 3)
    flat = [_flat(a, shape, dt) for a, dt in zip(nodes, kinds, strict=True)]
    table, linear = _flat_curves(
        None if curves is None else np.asarray(curves)[..., None, :], shape, None
    )
    out = np.empty(flat[0].shape[0], dtype=bool)
    placement_fits_flat(
        *flat, table, linear, _flat(sites[0], shape, np.float64),
        _flat(sites[1], shape, np.float64), _flat(cpu, shape, np.float64),
        _flat(mem, shape, np.float64), out,
    )
    return out.reshape(shape)


# The dtypes the flat kernels take, as dtype objects: `x.dtype is _F8` is the quickest check.
_F8, _I8, _B1 = np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)


def _flattener(lead: tuple[int, ...]) -> Callable[..., np.ndarray]:
    """`flat(x, dtype, tail=())`: `_flat` for views with leading shape `lead`."""
    if not lead:
        return _flat_one
    return lambda x, dtype, tail=(): _flat(x, lead, dtype, tail)


def _flat_one(x: np.ndarray, dtype: np.dtype, tail: tuple[int, ...] = ()) -> np.ndarray:
    """`_flat(x, (), dtype, tail)` in fewer steps: the live edge agent encodes one view per
    request, some 50 fields, and fills them with arrays of the right dtype and shape already
    (`x.dtype is dtype` is false for an equal dtype that is another object: `_flat` then)."""
    if (type(x) is np.ndarray and x.dtype is dtype and x.shape == tail
            and (not tail or x.flags.c_contiguous)):
        return x[None]
    return _flat(x, (), dtype, tail)


def _flat(x: np.ndarray, lead: tuple[int, ...], dtype: type | np.dtype,
          tail: tuple[int, ...] = ()) -> np.ndarray:
    """`x` broadcast to lead + tail, contiguous, as (P, *tail) of `dtype`."""
    shape = (*lead, *tail)
    if (type(x) is np.ndarray and x.shape == shape and x.dtype == dtype
            and x.flags.c_contiguous):
        return x.reshape((-1, *tail))  # the common case in the simulator: no copy
    if not shape and not isinstance(x, np.ndarray):
        return np.array([x], dtype=dtype)  # one site's scalar (the live edge agent)
    arr = np.asarray(x)
    if arr.shape != shape:
        arr = np.broadcast_to(arr, shape)
    return np.ascontiguousarray(arr, dtype=dtype).reshape((-1, *tail))


def _flat_curves(curves: np.ndarray | None, lead: tuple[int, ...], nodes: int | None
                 ) -> tuple[np.ndarray, bool]:
    """Power tables flattened to (P, M, 11) (or (P, 11) when nodes is None), and `linear`."""
    if curves is None:
        return (np.zeros((1, 1, 11)) if nodes is not None else np.zeros((1, 11))), True
    tail = (nodes, 11) if nodes is not None else (11,)
    return _flat(curves, lead, np.float64, tail), False


# --- cloud ----------------------------------------------------------------------------------


@dataclass
class CloudView:
    """What the cloud level knows: the head of its offload queue and every destination.

    Per-site arrays are (..., S); pool values are (...).
    """

    hour: np.ndarray
    queue_fill: np.ndarray
    pending: np.ndarray
    cpu_req: np.ndarray
    mem_req: np.ndarray
    slo_ms: np.ndarray
    app_size: np.ndarray
    is_entry: np.ndarray
    home: np.ndarray
    data_site: np.ndarray  # -1 when the app has no pinned data
    site_free_cpu_frac: np.ndarray
    site_free_mem_frac: np.ndarray
    site_power_headroom: np.ndarray  # (budget - demand) / budget
    site_peers: np.ndarray
    site_rtt_from_home_ms: np.ndarray
    site_fits: np.ndarray
    pool_free_cpu_frac: np.ndarray
    pool_free_mem_frac: np.ndarray
    pool_peers: np.ndarray
    pool_rtt_from_home_ms: np.ndarray
    pool_fits: np.ndarray


@dataclass(frozen=True)
class CloudEncoder:
    num_sites: int
    max_app_size: int
    ref_cores: float
    ref_mem_gib: float

    @property
    def layout(self) -> CloudActionLayout:
        return CloudActionLayout(self.num_sites)

    @property
    def spec(self) -> ObsSpec:
        feats = [_f("hour_sin", -1, 1), _f("hour_cos", -1, 1), _f("queue_fill")]
        feats += [
            _f("pending"), _f("cpu_req", 0, 4), _f("mem_req", 0, 4), _f("slo", 0, 10),
            _f("app_size"), _f("is_entry"),
        ]
        feats += [_f(f"home_{i}") for i in range(self.num_sites)]
        feats += [_f(f"data_{i}") for i in range(self.num_sites)]
        for dest in [f"site{i}" for i in range(self.num_sites)] + ["pool"]:
            for name in CLOUD_DEST_FEATURES:
                low = -1.0 if name == "power_headroom" else 0.0
                high = 5.0 if name == "rtt_from_home" else 1.0
                feats.append(_f(f"{dest}_{name}", low, high))
        return ObsSpec(tuple(feats))

    def mask(self, v: CloudView) -> np.ndarray:
        return self.encode_and_mask(v)[1]

    def encode(self, v: CloudView) -> np.ndarray:
        return self.encode_and_mask(v)[0]

    def encode_and_mask(self, v: CloudView) -> tuple[np.ndarray, np.ndarray]:
        """(obs (..., D) float32, mask (..., 3 + S) int8) for cloud views."""
        lead = np.shape(v.pending)
        s = (self.num_sites,)
        f8, i8, b1 = _F8, _I8, _B1
        flat = _flattener(lead)
        low, high = spec_bounds(self)
        n = int(np.prod(lead, dtype=np.int64))
        obs = np.empty((n, len(low)), dtype=np.float32)
        mask = np.empty((n, self.layout.n), dtype=np.int8)
        cloud_encode_flat(
            flat(v.hour, f8), flat(v.queue_fill, f8), flat(v.pending, b1),
            flat(v.cpu_req, f8), flat(v.mem_req, f8), flat(v.slo_ms, f8),
            flat(v.app_size, f8), flat(v.is_entry, b1), flat(v.home, i8),
            flat(v.data_site, i8), flat(v.site_free_cpu_frac, f8, s),
            flat(v.site_free_mem_frac, f8, s), flat(v.site_power_headroom, f8, s),
            flat(v.site_peers, f8, s), flat(v.site_rtt_from_home_ms, f8, s),
            flat(v.site_fits, b1, s), flat(v.pool_free_cpu_frac, f8),
            flat(v.pool_free_mem_frac, f8), flat(v.pool_peers, f8),
            flat(v.pool_rtt_from_home_ms, f8), flat(v.pool_fits, b1),
            self.num_sites, self.max_app_size, self.ref_cores, self.ref_mem_gib, low, high,
            obs, mask,
        )
        return obs.reshape(*lead, -1), mask.reshape(*lead, -1)


_BOUNDS_CACHE: dict[object, tuple[np.ndarray, np.ndarray]] = {}


def spec_bounds(encoder: EdgeEncoder | CloudEncoder) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of an encoder's spec, computed once per encoder shape."""
    if encoder not in _BOUNDS_CACHE:
        spec = encoder.spec
        _BOUNDS_CACHE[encoder] = (spec.low.astype(np.float64), spec.high.astype(np.float64))
    return _BOUNDS_CACHE[encoder]
