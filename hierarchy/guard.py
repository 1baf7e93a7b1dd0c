"""The hard placement guard: node capacity and the site power budget, one node at a time.

These scalar functions are the single implementation of the guard's arithmetic; the
vectorised helpers in hierarchy.observation, the encoders' masks and the simulator's views
all call them. Power at utilisation u: P(u) = idle + (max - idle) * f(u), f linear or read
off an 11-point table (hierarchy.power).
"""

from __future__ import annotations

import numpy as np

from hierarchy.features.online import SLOW_SPEED
from hierarchy.jit import compiled

EPS_FIT = 1e-9  # relative slack when comparing allocations with capacities


@compiled
def load_fraction_at(curve: np.ndarray, linear: bool, u: float) -> float:
    """f(u) for one node: u clipped to [0, 1]; `curve` is its 11-point table."""
    u = min(max(u, 0.0), 1.0)
    if linear:
        return u
    x = u * 10.0
    lo = min(int(x), 9)
    return curve[lo] + (curve[lo + 1] - curve[lo]) * (x - lo)


@compiled
def power_delta_at(asleep: bool, used_cpu: float, cores: float, idle_w: float, max_w: float,
                   sleep_w: float, curve: np.ndarray, linear: bool, cpu: float) -> float:
    """Added power (W) if `cpu` cores of load land on one node (waking it if asleep)."""
    c = max(cores, 1e-9)
    u_now = 0.0 if asleep else used_cpu / c
    u_new = min(u_now + cpu / c, 1.0)
    delta = (max_w - idle_w) * (
        load_fraction_at(curve, linear, u_new) - load_fraction_at(curve, linear, u_now)
    )
    if asleep:
        delta += idle_w - sleep_w
    return delta


@compiled
def placement_fits_at(exists: bool, cores: float, mem_gib: float, alloc_cpu: float,
                      alloc_mem: float, used_cpu: float, asleep: bool, idle_w: float,
                      max_w: float, sleep_w: float, curve: np.ndarray, linear: bool,
                      site_power_w: float, site_budget_w: float, cpu: float,
                      mem: float) -> bool:
    """True when `cpu`/`mem` fit the node and the site stays within its power budget.

    Power is judged at the container's allocated CPU (its worst case at decision time)
    against the site's uncapped demand, which includes load placed since the last tick.
    """
    if not exists:
        return False
    if alloc_cpu + cpu > cores * (1.0 + EPS_FIT):
        return False
    if alloc_mem + mem > mem_gib * (1.0 + EPS_FIT):
        return False
    delta = power_delta_at(asleep, used_cpu, cores, idle_w, max_w, sleep_w, curve, linear, cpu)
    return site_power_w + delta <= site_budget_w


def slo_guard(mask: np.ndarray, response: np.ndarray, node_speed: np.ndarray, nodes: int,
              sizes: int) -> None:
    """Edit edge masks (P, A) in place: a pending container whose service was seen above its
    SLO with a container on a slow node (`response` (P, 4), the rows of
    hierarchy.features.online.response_of_row) may not go to a slow node (`node_speed` (P,
    M) below SLOW_SPEED) while some fast node can take it; where none can, nothing changes
    (a slow node or an offload, as the rest of the mask allows). The rule of the
    power-aware-resize-slo baseline, as a mask a learned policy decides within."""
    missed = (response[:, 0] > 0) & (response[:, 1] > 1.0)  # mean response / SLO above 1
    if not missed.any():
        return
    p = mask.shape[0]
    # Action layout (hierarchy.actions): 0 no-op, then per knob level one action per (node,
    # size level) and the offload.
    knobs = (mask.shape[1] - 1) // (nodes * sizes + 1)
    blocks = mask[:, 1:].reshape(p, knobs, nodes * sizes + 1)
    place = blocks[:, :, :-1].reshape(p, knobs, nodes, sizes) == 1
    slow = np.broadcast_to((node_speed < SLOW_SPEED)[:, None, :, None], place.shape)
    fast_fits = (place & ~slow).any(axis=(1, 2, 3))
    keep_off = np.zeros(blocks.shape, dtype=bool)
    keep_off[:, :, :-1] = ((missed & fast_fits)[:, None, None, None] & slow).reshape(
        p, knobs, nodes * sizes)
    actions = mask[:, 1:]  # a view: the assignment edits `mask`
    actions[keep_off.reshape(p, -1)] = 0
