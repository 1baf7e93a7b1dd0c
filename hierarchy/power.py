"""Node power model, shared by the simulator and the edge agent's power guard.

P(u) = P_idle + (P_max - P_idle) * f(u), with f linear or read off an 11-point SPECpower-style
table (0%, 10%, ..., 100% load); a sleeping node draws P_sleep.
"""

from __future__ import annotations

import numpy as np

LINEAR_CURVE = np.linspace(0.0, 1.0, 11)


def normalised_curve(idle_w: float, max_w: float, curve_w: list[float] | None) -> np.ndarray:
    """The table f(0%..100%) in [0, 1] for one node type."""
    if curve_w is None or max_w <= idle_w:
        return LINEAR_CURVE.copy()
    table = (np.asarray(curve_w, dtype=np.float64) - curve_w[0]) / (curve_w[-1] - curve_w[0])
    return np.clip(table, 0.0, 1.0)


def load_fraction(util: np.ndarray, curves: np.ndarray | None) -> np.ndarray:
    """f(u) for utilisations in [0, 1]; `curves` is (..., 11) per node, or None for linear."""
    u = np.clip(util, 0.0, 1.0)
    if curves is None:
        return u
    x = u * 10.0
    lo = np.minimum(x.astype(np.int64), 9)
    frac = x - lo
    lo_val = np.take_along_axis(np.broadcast_to(curves, (*u.shape, 11)), lo[..., None], -1)[..., 0]
    hi_val = np.take_along_axis(
        np.broadcast_to(curves, (*u.shape, 11)), (lo + 1)[..., None], -1
    )[..., 0]
    return lo_val + (hi_val - lo_val) * frac


def node_power_w(
    util: np.ndarray,
    asleep: np.ndarray,
    idle_w: np.ndarray,
    max_w: np.ndarray,
    sleep_w: np.ndarray,
    curves: np.ndarray | None,
) -> np.ndarray:
    """Power of each node (W) at utilisation `util`, or its sleep power while asleep."""
    awake = idle_w + (max_w - idle_w) * load_fraction(util, curves)
    return np.where(asleep, sleep_w, awake)
