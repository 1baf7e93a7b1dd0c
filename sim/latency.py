"""Response-time model shared by the workload generator (SLOs) and the kernel (constants)."""

from __future__ import annotations

import numpy as np

# Beyond this load a PS queue is unstable; the response is held at its value here
# (1 / (1 - 0.95) = 20x the service time) and the SLO accounting does the rest.
RHO_MAX = 0.95


def critical_path_ms(
    own_ms: np.ndarray,
    parent: np.ndarray,
    calls: np.ndarray,
    hop_rtt_ms: np.ndarray,
    real: np.ndarray,
) -> np.ndarray:
    """Response (ms) of each app's entry container along its call graph's critical path.

    All arrays are (..., K) with parent[k] < k (a tree rooted at container 0). A container's
    response is its own time plus its slowest child, where a child called `calls` times per
    call costs calls x (hop RTT to it + its own response). Children run in parallel; repeated
    calls to one child run in sequence.
    """
    k = own_ms.shape[-1]
    slowest_child = np.zeros_like(own_ms)
    for j in range(k - 1, 0, -1):
        sub = own_ms[..., j] + slowest_child[..., j]
        contrib = np.where(real[..., j], calls[..., j] * (hop_rtt_ms[..., j] + sub), 0.0)
        par = np.maximum(parent[..., j], 0)[..., None]
        current = np.take_along_axis(slowest_child, par, axis=-1)
        np.put_along_axis(slowest_child, par, np.maximum(current, contrib[..., None]), axis=-1)
    return own_ms[..., 0] + slowest_child[..., 0]
