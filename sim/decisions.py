"""Applying one round of decisions: the edge agents' then the cloud level's (compiled loops).

Edge agent of site s decides the container at the head of its queue: place it on one of the
site's nodes at a size level (with a resize-knob level), or offload it to the cloud queue. An
action its mask refuses (or out of range) falls back to offloading: always possible, never
unsafe, and counted. Then the cloud level decides the head of its queue, if it saw it when it
chose: another site (best-fit node that still passes the guard now, since the edge may have
just used the room), else the pool (best fit), else the container is rejected. A site the
mask allowed but the same round's edge placement filled, with the pool full, leaves the
container at the head of the queue to be decided again (it is never rejected for that).
"""

from __future__ import annotations

import numpy as np

from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_POOL
from hierarchy.features.online import MIN_SAMPLES, predicted_size_fracs
from hierarchy.guard import placement_fits_at, power_delta_at
from hierarchy.jit import compiled
from sim.state import QUEUED_CLOUD, REJECTED, RUNNING, TERM_NAMES

T_REJECTION = TERM_NAMES.index("rejections")


@compiled
def _place(b, a, k, node, cpu_level, mem_level, startup_s,
           c_status, c_node, c_loc, c_req_cpu, c_req_mem, c_alloc_cpu, c_alloc_mem, c_peak_cpu,
           c_peak_mem, c_age, c_ready,
           asleep, idle_s, wake_left, n_alloc_cpu, n_alloc_mem, n_used, n_fresh, loc_power,
           node_site, node_cores, idle_w, max_w, sleep_w, wake_s, curves, linear):
    """Start container (a, k) of copy b on global node `node` at (`cpu_level`, `mem_level`)
    x its request."""
    cpu = c_req_cpu[b, a, k] * cpu_level
    mem = c_req_mem[b, a, k] * mem_level
    c_status[b, a, k] = RUNNING
    c_node[b, a, k] = node
    c_loc[b, a, k] = node_site[node]
    c_alloc_cpu[b, a, k] = cpu
    c_alloc_mem[b, a, k] = mem
    c_peak_cpu[b, a, k] = 0.0
    c_peak_mem[b, a, k] = 0.0
    c_age[b, a, k] = 0.0
    # The site's power demand counts the new load at once, so the guard sees it for the
    # next decision of the same instant (usage is measured only at the next tick).
    row = curves[0] if linear else curves[node]
    loc_power[b, node_site[node]] += power_delta_at(
        asleep[b, node], n_used[b, node] + n_fresh[b, node], node_cores[node], idle_w[node],
        max_w[node], sleep_w[node], row, linear, cpu)
    n_alloc_cpu[b, node] += cpu
    n_alloc_mem[b, node] += mem
    n_fresh[b, node] += cpu
    if asleep[b, node]:
        wake_left[b, node] = wake_s[node]
    asleep[b, node] = False
    idle_s[b, node] = 0.0
    c_ready[b, a, k] = startup_s + wake_left[b, node]


@compiled
def _best_fit(b, first, count, cpu, mem, guard_power, site_power, budget,
              node_exists, node_cores, node_mem, n_alloc_cpu, n_alloc_mem, n_used, n_fresh,
              asleep, idle_w, max_w, sleep_w, curves, linear):
    """The most allocated node of [first, first+count) that fits, or -1.

    Best fit keeps the other nodes empty, and so asleep.
    """
    best = -1
    best_fill = -1.0
    for n in range(first, first + count):
        row = curves[0] if linear else curves[n]
        ok = placement_fits_at(node_exists[n], node_cores[n], node_mem[n], n_alloc_cpu[b, n],
                               n_alloc_mem[b, n], n_used[b, n] + n_fresh[b, n], asleep[b, n],
                               idle_w[n], max_w[n], sleep_w[n], row, linear,
                               site_power if guard_power else 0.0,
                               budget if guard_power else np.inf, cpu, mem)
        if ok:
            fill = n_alloc_cpu[b, n] / node_cores[n]
            if fill > best_fill:
                best_fill = fill
                best = n
    return best


@compiled
def apply_decisions(
    edge_actions, edge_mask, cloud_actions, cloud_mask, cloud_observed,
    n_nodes, size_levels, pred_margin, pred_min_frac, svc_samples, pred_cpu, pred_mem,
    startup_s,
    sq, sq_head, sq_len, a_next_k, a_size, cq, cq_head, cq_len, knob,
    c_status, c_node, c_loc, c_req_cpu, c_req_mem, c_alloc_cpu, c_alloc_mem, c_peak_cpu,
    c_peak_mem, c_age, c_ready,
    asleep, idle_s, wake_left, n_alloc_cpu, n_alloc_mem, n_used, n_fresh, loc_power,
    node_exists, node_site, node_cores, node_mem, idle_w, max_w, sleep_w, wake_s, curves, linear,
    site_budget,
    placed_edge, offloaded, placed_cloud_pool, placed_by_cloud_at_edge, rejected, invalid,
    terms,
):
    n_copies, n_sites, q_max = sq.shape
    k_max = c_status.shape[2]
    qc_max = cq.shape[1]
    n_all = node_cores.shape[0]
    n_fixed = size_levels.shape[0]
    n_sizes = n_fixed + (1 if pred_margin >= 0.0 else 0)
    n_edge_actions = edge_mask.shape[2]
    per_knob = n_nodes * n_sizes + 1  # placements per knob level (hierarchy.actions)
    first_pool = n_sites * n_nodes
    n_cloud_actions = cloud_mask.shape[1]
    for b in range(n_copies):
        # --- the edge agents -------------------------------------------------------------
        for s in range(n_sites):
            if sq_len[b, s] == 0:
                continue
            a = sq[b, s, sq_head[b, s]]
            k = a_next_k[b, a]
            act = edge_actions[b, s]
            offload = True
            node = -1
            size = 0
            if 0 <= act < n_edge_actions and edge_mask[b, s, act] == 1 and act > 0:
                r = act - 1
                knob[b, s] = r // per_knob
                j = r % per_knob
                if j < n_nodes * n_sizes:
                    offload = False
                    node = s * n_nodes + j // n_sizes
                    size = j % n_sizes
            else:
                invalid[b] += 1.0
            if offload:
                pos = (cq_head[b] + cq_len[b]) % qc_max
                cq[b, pos] = a * k_max + k
                cq_len[b] += 1
                c_status[b, a, k] = QUEUED_CLOUD
                offloaded[b] += 1.0
            else:
                cpu_level = mem_level = 1.0
                if size < n_fixed:
                    cpu_level = mem_level = size_levels[size]
                else:
                    # Sized from what was observed of its service (the values its agent saw).
                    cpu_level, mem_level = predicted_size_fracs(
                        svc_samples[b, s] >= MIN_SAMPLES, pred_cpu[b, s], pred_mem[b, s],
                        pred_margin, pred_min_frac)
                _place(b, a, k, node, cpu_level, mem_level, startup_s,
                       c_status, c_node, c_loc, c_req_cpu, c_req_mem, c_alloc_cpu, c_alloc_mem,
                       c_peak_cpu, c_peak_mem, c_age, c_ready,
                       asleep, idle_s, wake_left, n_alloc_cpu, n_alloc_mem, n_used, n_fresh,
                       loc_power, node_site, node_cores, idle_w, max_w, sleep_w, wake_s, curves,
                       linear)
                placed_edge[b] += 1.0
            # An app leaves its site's queue when its last container is decided.
            a_next_k[b, a] += 1
            if a_next_k[b, a] >= a_size[b, a]:
                sq_head[b, s] = (sq_head[b, s] + 1) % q_max
                sq_len[b, s] -= 1

        # --- the cloud level: only what it observed (new offloads wait their turn) ----------
        if cq_len[b] == 0 or not cloud_observed[b]:
            continue
        flat = cq[b, cq_head[b]]
        a = flat // k_max
        k = flat % k_max
        act = cloud_actions[b]
        chosen_by_mask = 0 <= act < n_cloud_actions and cloud_mask[b, act] == 1
        if not chosen_by_mask:
            invalid[b] += 1.0
            act = CLOUD_POOL
        cpu = c_req_cpu[b, a, k]
        mem = c_req_mem[b, a, k]
        node = -1
        if act >= CLOUD_FIRST_SITE:
            site = act - CLOUD_FIRST_SITE
            node = _best_fit(b, site * n_nodes, n_nodes, cpu, mem, True, loc_power[b, site],
                             site_budget[site], node_exists, node_cores, node_mem, n_alloc_cpu,
                             n_alloc_mem, n_used, n_fresh, asleep, idle_w, max_w, sleep_w,
                             curves, linear)
        if act == CLOUD_POOL or (act >= CLOUD_FIRST_SITE and node < 0):
            node = _best_fit(b, first_pool, n_all - first_pool, cpu, mem, False, 0.0, 0.0,
                             node_exists, node_cores, node_mem, n_alloc_cpu, n_alloc_mem, n_used,
                             n_fresh, asleep, idle_w, max_w, sleep_w, curves, linear)
        if node < 0 and chosen_by_mask and act >= CLOUD_FIRST_SITE:
            # The edge took the room this very round and the pool is full: the choice was
            # sound when made, so the container stays at the head and is decided again.
            continue
        cq_head[b] = (cq_head[b] + 1) % qc_max
        cq_len[b] -= 1
        if node >= 0:
            _place(b, a, k, node, 1.0, 1.0, startup_s,
                   c_status, c_node, c_loc, c_req_cpu, c_req_mem, c_alloc_cpu, c_alloc_mem,
                   c_peak_cpu, c_peak_mem, c_age, c_ready,
                   asleep, idle_s, wake_left, n_alloc_cpu, n_alloc_mem, n_used, n_fresh,
                   loc_power, node_site, node_cores, idle_w, max_w, sleep_w, wake_s, curves,
                   linear)
            if node_site[node] == n_sites:
                placed_cloud_pool[b] += 1.0
            else:
                placed_by_cloud_at_edge[b] += 1.0
        else:
            c_status[b, a, k] = REJECTED
            rejected[b] += 1.0
            terms[b, n_sites, T_REJECTION] += 1.0
