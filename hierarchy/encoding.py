"""Loop kernels of the observation encoder and the guard, over flattened positions.

The encoders in hierarchy.observation flatten their views' leading shape to P positions and
call these. They are written as plain loops so that numba compiles them where it is
installed, and plain Python runs the very same code on a gateway without it. Feature order
here must follow EdgeEncoder.spec / CloudEncoder.spec (a test pins the two together).
"""

from __future__ import annotations

import math

from hierarchy.features.online import HISTORY_HALF, MIN_SAMPLES, predicted_size_fracs
from hierarchy.guard import placement_fits_at, power_delta_at
from hierarchy.jit import compiled

LOG1P_64 = math.log1p(64.0)
N_CLASSES = 5  # hierarchy.features.CLASS_NAMES
# Features of the pending container's service behaviour (EdgeEncoder.spec), when enabled.
N_BEHAVIOUR = 5 + N_CLASSES
# Features of the pending container's app response against its SLO (EdgeEncoder.spec).
N_RESPONSE = 4


@compiled
def power_delta_flat(asleep, used, cores, idle_w, max_w, sleep_w, curves, linear, cpu, out):
    """out[p] = added power at position p (all arrays flat (P,), curves (P, 11))."""
    for p in range(out.shape[0]):
        row = curves[0] if linear else curves[p]
        out[p] = power_delta_at(asleep[p], used[p], cores[p], idle_w[p], max_w[p], sleep_w[p],
                                row, linear, cpu[p])


@compiled
def placement_fits_flat(exists, cores, mem_gib, alloc_cpu, alloc_mem, used, asleep, idle_w,
                        max_w, sleep_w, curves, linear, site_power, budget, cpu, mem, out):
    for p in range(out.shape[0]):
        row = curves[0] if linear else curves[p]
        out[p] = placement_fits_at(exists[p], cores[p], mem_gib[p], alloc_cpu[p], alloc_mem[p],
                                   used[p], asleep[p], idle_w[p], max_w[p], sleep_w[p], row,
                                   linear, site_power[p], budget[p], cpu[p], mem[p])


@compiled
def edge_encode_flat(
    hour, site_index, site_power, budget, throttle, queue_fill, knob, wan_rtt, cloud_free,
    pending, cpu_req, mem_req, slo_ms, app_size, k_index, is_entry, calls, peers_here,
    peers_cloud, peers_other, data_here, data_elsewhere,
    svc_samples, pred_cpu, pred_mem, cpu_cv, behaviour_class, svc_response,
    exists, asleep, cores, mem_gib, alloc_cpu, alloc_mem, used, node_peers, speed, idle_w,
    max_w, sleep_w, curves, linear,
    num_sites, headrooms, max_app_size, ref_cores, ref_mem, size_levels, behaviour,
    response, pred_margin, pred_min_frac, low, high,
    obs, mask,
):
    """Fill obs (P, D) float32 and mask (P, A) int8 for P edge positions.

    `behaviour` adds the service-behaviour features, `response` the app's observed response
    against its SLO (`svc_response` (P, 4): hierarchy.features.online.response_of_row);
    `pred_margin` >= 0 adds the predicted-p95 size level after `size_levels` (< 0: none).
    """
    n_pos, n_nodes = exists.shape
    n_fixed = size_levels.shape[0]
    n_sizes = n_fixed + (1 if pred_margin >= 0.0 else 0)
    per_knob = n_nodes * n_sizes + 1
    k = float(max_app_size)
    for p in range(n_pos):
        o = obs[p]
        o[:] = 0.0
        rad = 2.0 * math.pi * hour[p] / 24.0
        o[0] = math.sin(rad)
        o[1] = math.cos(rad)
        o[2 + site_index[p]] = 1.0
        i = 2 + num_sites
        o[i] = site_power[p] / budget[p]
        o[i + 1] = throttle[p]
        o[i + 2] = queue_fill[p]
        o[i + 3 + knob[p]] = 1.0
        i += 3 + headrooms
        o[i] = wan_rtt[p] / 100.0
        o[i + 1] = cloud_free[p]
        i += 2
        has = pending[p]
        if has:
            o[i] = 1.0
            o[i + 1] = cpu_req[p] / ref_cores
            o[i + 2] = mem_req[p] / ref_mem
            o[i + 3] = slo_ms[p] / 1000.0
            o[i + 4] = app_size[p] / k
            o[i + 5] = k_index[p] / k
            o[i + 6] = 1.0 if is_entry[p] else 0.0
            o[i + 7] = math.log1p(calls[p]) / LOG1P_64
            o[i + 8] = peers_here[p] / k
            o[i + 9] = peers_cloud[p] / k
            o[i + 10] = peers_other[p] / k
            o[i + 11] = 1.0 if data_here[p] else 0.0
            o[i + 12] = 1.0 if data_elsewhere[p] else 0.0
        i += 13
        seen = svc_samples[p] >= MIN_SAMPLES
        if behaviour:
            if has and seen:
                o[i] = 1.0
                o[i + 1] = svc_samples[p] / (svc_samples[p] + HISTORY_HALF)
                o[i + 2] = pred_cpu[p]
                o[i + 3] = pred_mem[p]
                o[i + 4] = cpu_cv[p]
                if 0 <= behaviour_class[p] < N_CLASSES:
                    o[i + 5 + behaviour_class[p]] = 1.0
            i += N_BEHAVIOUR
        if response:
            if has:
                for j in range(2):  # on a slow node, then on fast nodes only
                    if svc_response[p, 2 * j] >= 1.0:
                        o[i + 2 * j] = 1.0
                        o[i + 2 * j + 1] = svc_response[p, 2 * j + 1]
            i += N_RESPONSE
        cpu_frac, mem_frac = 1.0, 1.0
        if pred_margin >= 0.0:
            cpu_frac, mem_frac = predicted_size_fracs(seen, pred_cpu[p], pred_mem[p],
                                                      pred_margin, pred_min_frac)
        m_row = mask[p]
        m_row[:] = 0
        m_row[0] = 0 if has else 1
        for m in range(n_nodes):
            j = i + 9 * m
            if not exists[p, m]:
                continue
            row = curves[0, 0] if linear else curves[p, m]
            c = max(cores[p, m], 1e-9)
            mg = max(mem_gib[p, m], 1e-9)
            o[j] = 1.0
            o[j + 1] = 1.0 if asleep[p, m] else 0.0
            o[j + 2] = (c - alloc_cpu[p, m]) / c
            o[j + 3] = (mg - alloc_mem[p, m]) / mg
            o[j + 4] = 0.0 if asleep[p, m] else used[p, m] / c
            o[j + 5] = node_peers[p, m] / k
            o[j + 6] = cores[p, m] / ref_cores
            o[j + 7] = speed[p, m]
            if has:
                o[j + 8] = power_delta_at(asleep[p, m], used[p, m], cores[p, m], idle_w[p, m],
                                          max_w[p, m], sleep_w[p, m], row, linear,
                                          cpu_req[p]) / budget[p]
                for lv in range(n_sizes):
                    lc = size_levels[lv] if lv < n_fixed else cpu_frac
                    lm = size_levels[lv] if lv < n_fixed else mem_frac
                    if placement_fits_at(True, cores[p, m], mem_gib[p, m], alloc_cpu[p, m],
                                         alloc_mem[p, m], used[p, m], asleep[p, m], idle_w[p, m],
                                         max_w[p, m], sleep_w[p, m], row, linear,
                                         site_power[p], budget[p], cpu_req[p] * lc,
                                         mem_req[p] * lm):
                        for h in range(headrooms):
                            m_row[1 + h * per_knob + m * n_sizes + lv] = 1
        if has:
            for h in range(headrooms):
                m_row[1 + h * per_knob + n_nodes * n_sizes] = 1
        for d in range(o.shape[0]):
            o[d] = min(max(o[d], low[d]), high[d])


@compiled
def cloud_encode_flat(
    hour, queue_fill, pending, cpu_req, mem_req, slo_ms, app_size, is_entry, home, data_site,
    site_free_cpu, site_free_mem, site_headroom, site_peers, site_rtt, site_fits,
    pool_free_cpu, pool_free_mem, pool_peers, pool_rtt, pool_fits,
    num_sites, max_app_size, ref_cores, ref_mem, low, high, obs, mask,
):
    """Fill obs (P, D) float32 and mask (P, 3 + S) int8 for P cloud positions."""
    k = float(max_app_size)
    for p in range(obs.shape[0]):
        o = obs[p]
        o[:] = 0.0
        has = pending[p]
        rad = 2.0 * math.pi * hour[p] / 24.0
        o[0] = math.sin(rad)
        o[1] = math.cos(rad)
        o[2] = queue_fill[p]
        if has:
            o[3] = 1.0
            o[4] = cpu_req[p] / ref_cores
            o[5] = mem_req[p] / ref_mem
            o[6] = slo_ms[p] / 1000.0
            o[7] = app_size[p] / k
            o[8] = 1.0 if is_entry[p] else 0.0
            o[9 + home[p]] = 1.0
            if data_site[p] >= 0:
                o[9 + num_sites + data_site[p]] = 1.0
        i = 9 + 2 * num_sites
        for s in range(num_sites + 1):
            j = i + 6 * s
            if s < num_sites:
                o[j] = site_free_cpu[p, s]
                o[j + 1] = site_free_mem[p, s]
                o[j + 2] = site_headroom[p, s]
                if has:
                    o[j + 3] = site_peers[p, s] / k
                    o[j + 4] = site_rtt[p, s] / 100.0
                    o[j + 5] = 1.0 if site_fits[p, s] else 0.0
            else:
                o[j] = pool_free_cpu[p]
                o[j + 1] = pool_free_mem[p]
                o[j + 2] = 1.0
                if has:
                    o[j + 3] = pool_peers[p] / k
                    o[j + 4] = pool_rtt[p] / 100.0
                    o[j + 5] = 1.0 if pool_fits[p] else 0.0
        for d in range(o.shape[0]):
            o[d] = min(max(o[d], low[d]), high[d])
        m_row = mask[p]
        m_row[:] = 0
        if not has:
            m_row[0] = 1
            continue
        anything = pool_fits[p]
        m_row[2] = 1 if pool_fits[p] else 0
        for s in range(num_sites):
            if site_fits[p, s]:
                m_row[3 + s] = 1
                anything = True
        m_row[1] = 0 if anything else 1
