"""Policies and runners shared by the simulator tests (not a test module).

Policies are plain functions of a `BatchedCore` returning (B, S) edge actions or (B,) cloud
actions; they read only what the agents see (views and masks) unless a docstring says so.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_NOOP, CLOUD_POOL, CLOUD_REJECT
from hierarchy.scenario import Scenario, load_scenario
from sim.core import BatchedCore

EdgePolicy = Callable[[BatchedCore], np.ndarray]
CloudPolicy = Callable[[BatchedCore], np.ndarray]


@cache
def _cached_scenario(name: str, frozen_overrides: tuple[tuple[str, Any], ...]) -> Scenario:
    return load_scenario(name, {k: _thaw(v) for k, v in frozen_overrides})


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return ("__list__", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("__dict__", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and value and value[0] == "__list__":
        return [_thaw(v) for v in value[1]]
    if isinstance(value, tuple) and value and value[0] == "__dict__":
        return {k: _thaw(v) for k, v in value[1]}
    return value


def scenario(name: str, overrides: dict[str, Any] | None = None) -> Scenario:
    """A validated scenario, loaded once per (name, overrides) in a test session."""
    frozen = tuple(sorted((k, _freeze(v)) for k, v in (overrides or {}).items()))
    return _cached_scenario(name, frozen)


# --- random play -----------------------------------------------------------------------------


def masked_random(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """One action per row of `mask` (..., A), uniform over the allowed ones."""
    u = np.where(mask == 1, rng.random(mask.shape), -1.0)
    return np.argmax(u, axis=-1)


def random_step(core: BatchedCore, rng: np.random.Generator):  # noqa: ANN201
    """One step of every copy with uniformly random allowed actions at both levels."""
    return core.step(masked_random(rng, core.edge_mask), masked_random(rng, core.cloud_mask))


# --- edge policies ---------------------------------------------------------------------------


def full_size_level(core: BatchedCore) -> int:
    """Index of the size level closest to 1.0 x request."""
    return int(np.argmin(np.abs(core.size_levels - 1.0)))


def edge_by_fill(core: BatchedCore, mode: str, level: int | None = None,
                 knob: int | None = None) -> np.ndarray:
    """Place on the most ("pack") or least ("spread") allocated allowed node, else offload.

    Fill is allocated CPU / cores of each node of the site, as the edge view reports it.
    """
    lay, v, mask = core.edge_layout, core.edge_view, core.edge_mask
    level = full_size_level(core) if level is None else level
    knob = core.default_knob if knob is None else knob
    idx = np.array([lay.encode_place(m, level, knob) for m in range(core.M)])
    ok = mask[..., idx] == 1  # (B, S, M)
    fill = v.node_alloc_cpu / np.maximum(v.node_cores, 1e-9)
    if mode == "pack":
        node = np.where(ok, fill, -np.inf).argmax(axis=-1)
    elif mode == "spread":
        node = np.where(ok, fill, np.inf).argmin(axis=-1)
    else:
        raise ValueError(mode)
    act = np.where(ok.any(axis=-1), idx[node], lay.encode_offload(knob))
    return np.where(v.pending, act, 0)


def edge_pack(core: BatchedCore) -> np.ndarray:
    return edge_by_fill(core, "pack")


def edge_spread(core: BatchedCore) -> np.ndarray:
    return edge_by_fill(core, "spread")


def edge_offload_all(core: BatchedCore) -> np.ndarray:
    return np.where(core.edge_view.pending, core.edge_layout.encode_offload(core.default_knob), 0)


def edge_pack_offload_odd(core: BatchedCore) -> np.ndarray:
    """Pack at home, except that every container with an odd index k is offloaded."""
    v = core.edge_view
    odd = v.pending & (v.k_index % 2 == 1)
    return np.where(odd, core.edge_layout.encode_offload(core.default_knob), edge_pack(core))


# --- cloud policies --------------------------------------------------------------------------


def cloud_pool_first(core: BatchedCore, prefer_site: np.ndarray | None = None) -> np.ndarray:
    """`prefer_site` (B,) where >= 0 and allowed, else the pool, else a site, else reject."""
    m = core.cloud_mask
    sites = m[:, CLOUD_FIRST_SITE:]
    act = np.where(m[:, CLOUD_POOL] == 1, CLOUD_POOL, CLOUD_FIRST_SITE + sites.argmax(axis=1))
    act = np.where((m[:, CLOUD_POOL] == 0) & (sites.sum(axis=1) == 0), CLOUD_REJECT, act)
    if prefer_site is not None:
        want = CLOUD_FIRST_SITE + np.maximum(prefer_site, 0)
        ok = (prefer_site >= 0) & (m[np.arange(core.B), want] == 1)
        act = np.where(ok, want, act)
    return np.where(core.cloud_view.pending, act, CLOUD_NOOP)


def cloud_head(core: BatchedCore) -> tuple[np.ndarray, np.ndarray]:
    """(app, k) at the head of each copy's offload queue (reads the state: a test oracle)."""
    st = core.st
    flat = st.cq[np.arange(core.B), st.cq_head]
    return flat // core.K, flat % core.K


def cloud_odd_to_next_site(core: BatchedCore) -> np.ndarray:
    """Send containers with odd k to site (home + 1) % S when it fits; the rest to the pool."""
    _, k = cloud_head(core)
    home = core.cloud_view.home
    prefer = np.where(k % 2 == 1, (home + 1) % core.S, -1)
    return cloud_pool_first(core, prefer)


# --- running ---------------------------------------------------------------------------------


def run_to_horizon(core: BatchedCore, edge: EdgePolicy, cloud: CloudPolicy,
                   on_tick: Callable[[BatchedCore, np.ndarray], None] | None = None,
                   max_steps: int = 1_000_000) -> int:
    """Step every copy with the policies until all reach the horizon; returns the steps."""
    steps = 0
    while not (core.st.t_s >= core.horizon_s - 1e-9).all():
        out = core.step(edge(core), cloud(core))
        steps += 1
        if on_tick is not None and out.advanced.any():
            on_tick(core, out.advanced)
        if steps >= max_steps:
            raise AssertionError(f"no horizon after {steps} steps (t_s={core.st.t_s})")
    return steps


def edge_node_slice(core: BatchedCore) -> slice:
    return slice(0, core.S * core.M)
