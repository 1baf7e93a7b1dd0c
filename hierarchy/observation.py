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
from dataclasses import dataclass

import numpy as np

from hierarchy.actions import CloudActionLayout, EdgeActionLayout
from hierarchy.power import load_fraction

OBS_SPEC_VERSION = 1

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
        payload = json.dumps(
            {"version": OBS_SPEC_VERSION, "features": [(f.name, f.low, f.high) for f in self.features]}
        )
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


@dataclass(frozen=True)
class EdgeEncoder:
    """Encodes EdgeViews of a site shape (sites, nodes per site, size levels, knob levels)."""

    num_sites: int
    nodes: int
    size_levels: tuple[float, ...]
    headroom_levels: int
    max_app_size: int
    ref_cores: float
    ref_mem_gib: float

    @property
    def layout(self) -> EdgeActionLayout:
        return EdgeActionLayout(self.nodes, len(self.size_levels), self.headroom_levels)

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
        for m in range(self.nodes):
            for name in EDGE_NODE_FEATURES:
                high = 4.0 if name in ("cores_rel", "speed_rel") else 1.0
                feats.append(_f(f"node{m}_{name}", 0, high))
        return ObsSpec(tuple(feats))

    def placement_ok(self, v: EdgeView) -> np.ndarray:
        """(..., M, L) bool: node m at size level l fits its capacity and the power budget.

        The guard is hard: a placement it refuses is never made, offload is always possible.
        """
        levels = np.asarray(self.size_levels, dtype=np.float64)
        ok = placement_fits(
            v.node_exists, v.node_cores, v.node_mem_gib, v.node_alloc_cpu, v.node_alloc_mem,
            v.node_used_cpu, v.node_asleep, v.node_idle_w, v.node_max_w, v.node_sleep_w,
            v.curves, v.site_power_w, v.site_budget_w,
            v.cpu_req[..., None, None] * levels, v.mem_req[..., None, None] * levels,
        )
        return ok & v.pending[..., None, None]

    def mask(self, v: EdgeView) -> np.ndarray:
        return self.layout.mask_from_placements(self.placement_ok(v), v.pending.astype(bool))

    def encode(self, v: EdgeView) -> np.ndarray:
        lead = np.shape(v.pending)
        k = float(self.max_app_size)
        rad = 2 * np.pi * v.hour / 24.0
        site_onehot = np.eye(self.num_sites, dtype=np.float64)[v.site_index]
        knob_onehot = np.eye(self.headroom_levels, dtype=np.float64)[v.knob]
        p = v.pending.astype(np.float64)
        site_block = [
            np.sin(rad)[..., None], np.cos(rad)[..., None], site_onehot,
            (v.site_power_w / v.site_budget_w)[..., None], v.throttle[..., None],
            v.queue_fill[..., None], knob_onehot, (v.wan_rtt_ms / 100.0)[..., None],
            v.cloud_free_frac[..., None],
        ]
        pend_block = np.stack(
            [
                p, v.cpu_req / self.ref_cores, v.mem_req / self.ref_mem_gib, v.slo_ms / 1000.0,
                v.app_size / k, v.k_index / k, v.is_entry * p,
                np.log1p(v.calls) / np.log1p(64.0), v.peers_here / k, v.peers_cloud / k,
                v.peers_other / k, v.data_here * p, v.data_elsewhere * p,
            ],
            axis=-1,
        ) * p[..., None]
        cores = np.maximum(v.node_cores, 1e-9)
        mem = np.maximum(v.node_mem_gib, 1e-9)
        delta = power_delta_w(
            v.node_asleep, v.node_used_cpu, v.node_cores, v.node_idle_w, v.node_max_w,
            v.node_sleep_w, v.curves, v.cpu_req[..., None, None],
        )[..., 0]
        nodes = np.stack(
            [
                v.node_exists, v.node_asleep,
                (cores - v.node_alloc_cpu) / cores, (mem - v.node_alloc_mem) / mem,
                np.where(v.node_asleep, 0.0, v.node_used_cpu / cores), v.node_peers / k,
                v.node_cores / self.ref_cores, v.node_speed,
                delta / v.site_budget_w[..., None] * p[..., None],
            ],
            axis=-1,
        ) * v.node_exists[..., None]
        obs = np.concatenate(
            [*site_block, pend_block, nodes.reshape(*lead, -1)], axis=-1
        )
        spec = _spec_bounds(self)
        return np.clip(obs, spec[0], spec[1]).astype(np.float32)


def power_delta_w(
    asleep: np.ndarray, used_cpu: np.ndarray, cores: np.ndarray, idle_w: np.ndarray,
    max_w: np.ndarray, sleep_w: np.ndarray, curves: np.ndarray | None, cpu: np.ndarray,
) -> np.ndarray:
    """Added power (W) if `cpu` cores of load land on each node.

    Node arrays are (..., M); `cpu` broadcasts to (..., M, L); `curves` is (..., M, 11) or
    None for linear nodes. A sleeping node adds its wake-up to idle power as well.
    """
    cores_ = np.maximum(cores, 1e-9)
    u_now = np.where(asleep, 0.0, used_cpu / cores_)[..., None]
    u_new = np.minimum(u_now + cpu / cores_[..., None], 1.0)
    table = None if curves is None else curves[..., None, :]
    dyn = (max_w - idle_w)[..., None]
    delta = dyn * (load_fraction(u_new, table) - load_fraction(u_now, table))
    return delta + np.where(asleep, idle_w - sleep_w, 0.0)[..., None]


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
    fits = (
        exists[..., None]
        & (alloc_cpu[..., None] + cpu <= cores[..., None] * (1 + 1e-9))
        & (alloc_mem[..., None] + mem <= mem_gib[..., None] * (1 + 1e-9))
    )
    delta = power_delta_w(asleep, used_cpu, cores, idle_w, max_w, sleep_w, curves, cpu)
    return fits & (site_power_w[..., None, None] + delta <= site_budget_w[..., None, None])


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
        pending = v.pending.astype(bool)
        site_ok = v.site_fits.astype(bool) & pending[..., None]
        pool_ok = v.pool_fits.astype(bool) & pending
        anything = pool_ok | site_ok.any(axis=-1)
        head = np.stack([~pending, pending & ~anything, pool_ok], axis=-1)
        return np.concatenate([head, site_ok], axis=-1).astype(np.int8)

    def encode(self, v: CloudView) -> np.ndarray:
        k = float(self.max_app_size)
        p = v.pending.astype(np.float64)
        rad = 2 * np.pi * v.hour / 24.0
        eye = np.eye(self.num_sites + 1, dtype=np.float64)[:, : self.num_sites]
        head = np.stack(
            [
                np.sin(rad), np.cos(rad), v.queue_fill, p, v.cpu_req / self.ref_cores * p,
                v.mem_req / self.ref_mem_gib * p, v.slo_ms / 1000.0 * p, v.app_size / k * p,
                v.is_entry * p,
            ],
            axis=-1,
        )
        home = eye[np.where(v.pending, v.home, self.num_sites)]
        data = eye[np.where(v.pending & (v.data_site >= 0), v.data_site, self.num_sites)]
        sites = np.stack(
            [
                v.site_free_cpu_frac, v.site_free_mem_frac, v.site_power_headroom,
                v.site_peers / k, v.site_rtt_from_home_ms / 100.0 * p[..., None], v.site_fits,
            ],
            axis=-1,
        )
        pool = np.stack(
            [
                v.pool_free_cpu_frac, v.pool_free_mem_frac, np.ones_like(p), v.pool_peers / k,
                v.pool_rtt_from_home_ms / 100.0 * p, v.pool_fits,
            ],
            axis=-1,
        )
        lead = np.shape(v.pending)
        obs = np.concatenate(
            [head, home, data, sites.reshape(*lead, -1), pool], axis=-1
        )
        spec = _spec_bounds(self)
        return np.clip(obs, spec[0], spec[1]).astype(np.float32)


_BOUNDS_CACHE: dict[object, tuple[np.ndarray, np.ndarray]] = {}


def _spec_bounds(encoder: EdgeEncoder | CloudEncoder) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of an encoder's spec, computed once per encoder shape."""
    if encoder not in _BOUNDS_CACHE:
        spec = encoder.spec
        _BOUNDS_CACHE[encoder] = (spec.low, spec.high)
    return _BOUNDS_CACHE[encoder]
