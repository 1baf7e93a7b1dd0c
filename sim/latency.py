"""Response-time model: the call graph's critical path, and the processor-sharing limit.

One implementation serves the tick kernel (every serving app, every tick) and the workload
generator (each new app's ideal response, from which its SLO is set).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Beyond this load a PS queue is unstable; the response is held at its value here
# (1 / (1 - 0.95) = 20x the service time) and the SLO accounting does the rest.
RHO_MAX = 0.95


@njit(cache=True)
def critical_path_one(own_ms, parent, calls, hop_rtt_ms, size, slowest):
    """Response (ms) of one app's entry container along its call graph's critical path.

    Arrays are (K,) with parent[k] < k (a tree rooted at container 0); only the first `size`
    containers are real; `slowest` is scratch of length K. A container's response is its own
    time plus its slowest child, where a child called `calls` times per call costs
    calls x (hop RTT to it + its own response). Children run in parallel; repeated calls to
    one child run in sequence.
    """
    for k in range(size):
        slowest[k] = 0.0
    for k in range(size - 1, 0, -1):
        p = parent[k]
        contrib = calls[k] * (hop_rtt_ms[k] + own_ms[k] + slowest[k])
        if contrib > slowest[p]:
            slowest[p] = contrib
    return own_ms[0] + slowest[0]


@njit(cache=True)
def critical_paths_ms(own_ms, parent, calls, hop_rtt_ms, size):
    """critical_path_one for n apps: arrays (n, K), size (n,) -> (n,) ms."""
    n, k_max = own_ms.shape
    out = np.empty(n)
    slowest = np.empty(k_max)
    for a in range(n):
        out[a] = critical_path_one(own_ms[a], parent[a], calls[a], hop_rtt_ms[a], size[a],
                                   slowest)
    return out
