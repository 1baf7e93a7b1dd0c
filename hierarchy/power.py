"""Node power curves: P(u) = P_idle + (P_max - P_idle) * f(u), with f linear or read off an
11-point SPECpower-style table (0%, 10%, ..., 100% load); a sleeping node draws P_sleep.

This module turns a node type's watts into the normalised table f; hierarchy.guard evaluates
it (one implementation for the simulator, the guard and the live agents).
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
