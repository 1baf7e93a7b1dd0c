"""What the awake nodes are committed to: the idle draw they will keep until they may sleep.

A node stays awake while any container runs on it, and for `sleep_after_s` after the last one
leaves. So placing a container on a node commits that node's idle draw (above its sleep draw)
until the container's app leaves -- a cost that the per-tick energy term only shows bit by bit,
long after the decision. Training uses the committed cost as a shaping potential
(hierarchy.mappo.rollout) to charge each placement, at once, for the awake time it adds.

It reads the apps' remaining lifetimes, which no agent observes: a potential may use the
whole simulator state, and potential-based shaping leaves the best policy unchanged (Ng et
al. 1999). Nothing here feeds an observation.
"""

from __future__ import annotations

import numpy as np

from hierarchy.jit import compiled
from sim.state import RUNNING


@compiled
def committed_idle_kwh(
    c_status, c_node, a_active, a_size, a_life, asleep, idle_s, node_exists, node_site, idle_w,
    sleep_w, loc_pue, sleep_after_s, left_s, out,
):
    """out (B, S+1): kWh of idle draw above sleep each location's awake nodes are committed to,
    counted to the episode's end at most (`left_s` (B,) simulated seconds left)."""
    n_copies, n_apps, _ = c_status.shape
    n_nodes = asleep.shape[1]
    busy_until = np.zeros(n_nodes)
    for b in range(n_copies):
        busy_until[:] = -1.0  # no container: the node's own idle countdown applies
        for a in range(n_apps):
            if not a_active[b, a]:
                continue
            for k in range(a_size[b, a]):
                if c_status[b, a, k] == RUNNING:
                    node = c_node[b, a, k]
                    busy_until[node] = max(busy_until[node], a_life[b, a])
        out[b, :] = 0.0
        for n in range(n_nodes):
            if not node_exists[n] or asleep[b, n]:
                continue
            if busy_until[n] >= 0.0:
                awake_s = busy_until[n] + sleep_after_s
            else:
                awake_s = max(sleep_after_s - idle_s[b, n], 0.0)
            awake_s = min(awake_s, left_s[b])
            s = node_site[n]
            out[b, s] += (idle_w[n] - sleep_w[n]) * loc_pue[s] * awake_s / 3.6e6


@compiled
def committed_violation_cost(a_active, a_home, a_life, a_over, left_s, w_violation,
                             w_latency, out):
    """out (B, S+1): the cost each home site's apps now violating their SLO are committed to
    if they go on as they are until they leave (to the episode's end at most): per hour,
    `w_violation` plus `w_latency` x the over-SLO ratio, as the reward's terms charge it."""
    n_copies, n_apps = a_active.shape
    for b in range(n_copies):
        out[b, :] = 0.0
        for a in range(n_apps):
            if a_active[b, a] and a_over[b, a] > 0.0:
                hours = min(a_life[b, a], left_s[b]) / 3600.0
                out[b, a_home[b, a]] += (w_violation + w_latency * a_over[b, a]) * hours
