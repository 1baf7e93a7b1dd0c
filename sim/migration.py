"""Moving an app that keeps violating its SLO on a slow node (`sizing.migrate_after_s`).

An app that has violated its SLO for `migrate_after_s` without a break while one of its
containers runs on a node slower than the reference core (SLOW_SPEED: a Raspberry Pi on
`default`) is moved, once: its containers are stopped, their allocations released, and its
home site's agent decides them again, one by one, as it decided them when the app arrived.
Where they go is the scheduler's choice (the same node again is allowed); they start again
(start-up time, a node's wake-up), which is what a move costs. An app is moved at most once,
so a scheduler that puts it back where it was pays once, not every few minutes.

By then the app's response against its SLO has been sampled into its service's statistics
(every 5 simulated minutes, the slow-node entry): that is the evidence a scheduler has when
it decides the move, and what `observation.response_features` shows a learned policy.
"""

from __future__ import annotations

from hierarchy.features.online import SLOW_SPEED
from hierarchy.jit import compiled
from sim.state import QUEUED_SITE, RUNNING


@compiled
def migrate_violators(adv, dt, after_s, a_active, a_over, a_violating_s, a_moves, a_home,
                      a_size, a_next_k, c_status, c_node, c_loc, c_alloc_cpu, c_alloc_mem,
                      n_alloc_cpu, n_alloc_mem, node_speed, sq, sq_head, sq_len, migrations):
    """After a tick of the copies in `adv` (`dt` s): track how long each app has violated
    its SLO without a break and move the ones due (see the module's docstring)."""
    n_copies, n_apps, _ = c_status.shape
    q_max = sq.shape[2]
    for b in range(n_copies):
        if not adv[b]:
            continue
        for a in range(n_apps):
            if not a_active[b, a]:  # a free slot: the next app in it starts afresh
                a_violating_s[b, a] = 0.0
                a_moves[b, a] = 0.0
                continue
            if a_over[b, a] > 0.0:
                a_violating_s[b, a] += dt[b]
            else:
                a_violating_s[b, a] = 0.0
            if a_moves[b, a] > 0.0 or a_violating_s[b, a] < after_s - 1e-9:
                continue
            size = a_size[b, a]
            on_slow = False
            for k in range(size):
                if c_status[b, a, k] == RUNNING and node_speed[c_node[b, a, k]] < SLOW_SPEED:
                    on_slow = True
            home = a_home[b, a]
            if not on_slow or sq_len[b, home] >= q_max:
                continue  # (a full queue: tried again at the next tick)
            for k in range(size):
                if c_status[b, a, k] == RUNNING:
                    node = c_node[b, a, k]
                    n_alloc_cpu[b, node] -= c_alloc_cpu[b, a, k]
                    n_alloc_mem[b, node] -= c_alloc_mem[b, a, k]
                c_status[b, a, k] = QUEUED_SITE
                c_node[b, a, k] = -1
                c_loc[b, a, k] = -1
                c_alloc_cpu[b, a, k] = 0.0
                c_alloc_mem[b, a, k] = 0.0
            a_next_k[b, a] = 0
            sq[b, home, (sq_head[b, home] + sq_len[b, home]) % q_max] = a
            sq_len[b, home] += 1
            a_moves[b, a] += 1.0
            a_violating_s[b, a] = 0.0
            a_over[b, a] = 0.0
            migrations[b] += 1.0
