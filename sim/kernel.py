"""The compiled part of a tick: every running container of every advancing copy.

This loop touches only active apps and their real containers, which is what makes batched
training fast (NumPy over padded (B, A, K) arrays spent most of its time on empty slots).
Its random draws come from each copy's own counter-based streams (sim.streams), so seeding
stays per copy and per environment. The model it computes is described in sim/tick.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hierarchy.features.online import SLOW_SPEED, update_response, update_row
from hierarchy.guard import load_fraction_at
from sim.latency import RHO_MAX, critical_path_one
from sim.state import REJECTED, RUNNING
from sim.streams import STREAM_ARRIVAL, STREAM_BURST, STREAM_LOAD, normal, uniform

# Latency above SLO counts in SLO units up to this many (an app far out of SLO is out).
LATENCY_OVER_CAP = 10.0
# Columns of the per-step cost terms (sim.state.TERM_NAMES). The kernels fill `terms`
# (copies, sites + 1, terms): each term at the location it belongs to -- a node's energy and a
# site's capping at that site (the cloud last), an app's latency, violations and WAN energy at
# its home site -- so that training can give each edge agent its own share (team = the sum).
T_ENERGY, T_LATENCY, T_VIOLATION, T_REJECTION, T_CAPPED, T_OVERSHOOT = range(6)


@njit(cache=True, inline="always")
def _resize_delta(peak: float, headroom: float, request: float, alloc: float, lo: float,
                  hi: float) -> float:
    """How far the resize knob moves an allocation: to recent peak x (1 + headroom),
    kept within [lo, hi] x request."""
    target = min(max(peak * (1.0 + headroom), lo * request), hi * request)
    return target - alloc


@njit(cache=True, inline="always")
def _poisson_from_uniform(lam: float, u: float) -> int:
    """Inverse-CDF Poisson draw: rates per tick are small, so the search is short."""
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and k < 10_000:
        k += 1
        p *= lam / k
        cdf += p
    return k


@njit(cache=True)
def clock_kernel(adv, step_s, t_s, tick, key, start_hour, burst_on, burst_factor, burst_on_s,
                 burst_off_s, daily_amp, peak_hour, apps_per_hour, arrival_mod, arrival_mod_s,
                 arrivals, a_z, phi_per_min, dt, hour):
    """Advance clocks, burst chains and load noise; draw each site's arrival count.

    Writes dt (0 for copies that hold still), hour and arrivals (B, S). Every draw comes
    from the copy's own streams (sim.streams), at the copy's own tick. With an arrival
    modulation table (a trace's counts per bin of `arrival_mod_s` simulated seconds, mean 1,
    repeated) it replaces the daily cycle and bursts.
    """
    n_copies, n_sites = burst_on.shape
    for b in range(n_copies):
        if not adv[b]:
            dt[b] = 0.0
            hour[b] = (start_hour + t_s[b] / 3600.0) % 24.0
            for s in range(n_sites):
                arrivals[b, s] = 0
            continue
        d = step_s
        dt[b] = d
        t_s[b] += d
        tick[b] += 1
        kb, tb = key[b], tick[b]
        h = (start_hour + t_s[b] / 3600.0) % 24.0
        hour[b] = h
        daily = 1.0 + daily_amp * math.cos(2.0 * math.pi * (h - peak_hour) / 24.0)
        p_end = 1.0 - math.exp(-d / burst_on_s)
        p_start = 1.0 - math.exp(-d / burst_off_s)
        for s in range(n_sites):
            if uniform(kb, tb, STREAM_BURST, s) < (p_end if burst_on[b, s] else p_start):
                burst_on[b, s] = not burst_on[b, s]
            if arrival_mod.shape[0] > 0:
                i = int(t_s[b] / arrival_mod_s) % arrival_mod.shape[0]
                rate = apps_per_hour[s] / 3600.0 * arrival_mod[i]
            else:
                rate = (apps_per_hour[s] / 3600.0 * daily
                        * (burst_factor if burst_on[b, s] else 1.0))
            arrivals[b, s] = _poisson_from_uniform(rate * d, uniform(kb, tb, STREAM_ARRIVAL, s))
        # The app's load follows an AR(1) in log space (one state per app: its containers
        # serve the same users).
        phi = phi_per_min ** (d / 60.0)
        scale = math.sqrt(1.0 - phi * phi)
        for a in range(a_z.shape[1]):
            a_z[b, a] = phi * a_z[b, a] + scale * normal(kb, tb, STREAM_LOAD, a)


@njit(cache=True)
def tick_kernel(
    adv, dt, hour,
    c_status, c_node, c_loc, c_parent, c_calls, c_inv, c_bytes, c_work, c_req_cpu, c_req_mem,
    c_alloc_cpu, c_alloc_mem, c_level, c_sigma, c_amp, c_peak_h, c_mem_level, c_mem_growth,
    c_demand, c_mem_used, c_peak_cpu, c_peak_mem, c_ready, c_age, c_series, c_phase,
    a_active, a_home, a_size, a_slo, a_rate, a_life, a_z, a_data_k, a_data_site, a_service,
    sample, svc_stats, a_over, usage_cpu, usage_mem, usage_len, usage_step_s, time_scale,
    asleep, idle_s, wake_left, n_alloc_cpu, n_alloc_mem, n_used, n_fresh, n_energy,
    knob, throttle, loc_power,
    finished, oom_restarts, wan_bytes, requests, requests_violated, response_sum,
    response_hist, capped_s, overshoot_j, used_core_s, edge_core_s, terms,
    node_exists, node_site, node_cores, node_mem, idle_w, max_w, sleep_w, speed, curves,
    site_budget, loc_pue, rtt, user_rtt, response_bins,
    headroom_levels, resize_min, resize_max, peak_halflife_s, oom_restart_s, sleep_after_s,
    throttle_min, kappa, wan_j_per_byte, user_bytes, data_bytes, record,
):
    n_copies, n_apps, k_max = c_status.shape
    n_nodes = asleep.shape[1]
    n_sites = site_budget.shape[0]
    grow_cpu = np.zeros(n_nodes)
    grow_mem = np.zeros(n_nodes)
    scale_cpu = np.zeros(n_nodes)
    scale_mem = np.zeros(n_nodes)
    loc_base = np.zeros(n_sites + 1)
    loc_dyn = np.zeros(n_sites + 1)
    theta = np.ones(n_sites + 1)
    own = np.zeros(k_max)
    hop = np.zeros(k_max)
    slowest = np.zeros(k_max)
    edge_nodes_cores = 0.0
    for n in range(n_nodes):
        if node_exists[n] and node_site[n] < n_sites:
            edge_nodes_cores += node_cores[n]

    for b in range(n_copies):
        if not adv[b]:
            continue
        d = dt[b]
        h = hour[b]
        hours = d / 3600.0
        decay = 0.5 ** (d / peak_halflife_s)

        # --- demand, memory, peaks, OOM, and resize (shrink now, growth scaled below) ----
        grow_cpu[:] = 0.0
        grow_mem[:] = 0.0
        n_alloc_cpu[b, :] = 0.0
        n_alloc_mem[b, :] = 0.0
        for a in range(n_apps):
            if not a_active[b, a]:
                continue
            z = a_z[b, a]
            for k in range(a_size[b, a]):
                if c_status[b, a, k] != RUNNING:
                    c_demand[b, a, k] = 0.0
                    c_mem_used[b, a, k] = 0.0
                    continue
                ready = max(c_ready[b, a, k] - d, 0.0)
                c_age[b, a, k] += d
                dem = 0.0
                series = c_series[b, a, k]
                if series >= 0:
                    # A trace's series, replayed from the instance's phase.
                    i = int((c_phase[b, a, k] + c_age[b, a, k] * time_scale) / usage_step_s)
                    i = i % usage_len[series]
                    if ready <= 0.0:
                        dem = c_req_cpu[b, a, k] * usage_cpu[series, i]
                    mem = c_req_mem[b, a, k] * usage_mem[series, i]
                else:
                    if ready <= 0.0:
                        sig = c_sigma[b, a, k]
                        daily = 1.0 + c_amp[b, a, k] * math.cos(
                            2.0 * math.pi * (h - c_peak_h[b, a, k]) / 24.0)
                        dem = c_req_cpu[b, a, k] * c_level[b, a, k] * daily * math.exp(
                            sig * z - 0.5 * sig * sig)
                    growth = (c_mem_level[b, a, k]
                              + c_mem_growth[b, a, k] * c_age[b, a, k] / 3600.0)
                    mem = c_req_mem[b, a, k] * min(max(growth, 0.01), 4.0)
                if ready <= 0.0 and sample[b]:
                    # What a monitor measures of a serving container: the CPU it got (at most
                    # its allocation) and its memory, before any OOM kill. Only this feeds the
                    # service's statistics: never a usage parameter, never the future.
                    update_row(svc_stats[b, a_service[b, a], k],
                               min(dem, c_alloc_cpu[b, a, k]) / c_req_cpu[b, a, k],
                               mem / c_req_mem[b, a, k])
                c_peak_cpu[b, a, k] = max(dem, c_peak_cpu[b, a, k] * decay)
                c_peak_mem[b, a, k] = max(mem, c_peak_mem[b, a, k] * decay)
                if ready <= 0.0 and mem > c_alloc_mem[b, a, k]:
                    # Out of memory: the container restarts and serves nothing meanwhile.
                    ready = oom_restart_s
                    c_age[b, a, k] = 0.0
                    mem = c_req_mem[b, a, k] * c_mem_level[b, a, k]
                    dem = 0.0
                    oom_restarts[b] += 1.0
                c_ready[b, a, k] = ready
                c_demand[b, a, k] = dem
                c_mem_used[b, a, k] = mem
                node = c_node[b, a, k]
                loc = c_loc[b, a, k]
                if loc < n_sites and headroom_levels[knob[b, loc]] >= 0.0:
                    head = headroom_levels[knob[b, loc]]
                    delta = _resize_delta(c_peak_cpu[b, a, k], head, c_req_cpu[b, a, k],
                                          c_alloc_cpu[b, a, k], resize_min, resize_max)
                    if delta < 0.0:
                        c_alloc_cpu[b, a, k] += delta
                    else:
                        grow_cpu[node] += delta
                    delta = _resize_delta(c_peak_mem[b, a, k], head, c_req_mem[b, a, k],
                                          c_alloc_mem[b, a, k], resize_min, resize_max)
                    if delta < 0.0:
                        c_alloc_mem[b, a, k] += delta
                    else:
                        grow_mem[node] += delta
                n_alloc_cpu[b, node] += c_alloc_cpu[b, a, k]
                n_alloc_mem[b, node] += c_alloc_mem[b, a, k]

        # Growth on a node is scaled to the room its shrinking containers left.
        for n in range(n_nodes):
            room = max(node_cores[n] - n_alloc_cpu[b, n], 0.0)
            scale_cpu[n] = min(1.0, room / grow_cpu[n]) if grow_cpu[n] > 0.0 else 1.0
            room = max(node_mem[n] - n_alloc_mem[b, n], 0.0)
            scale_mem[n] = min(1.0, room / grow_mem[n]) if grow_mem[n] > 0.0 else 1.0
            n_used[b, n] = 0.0
            n_fresh[b, n] = 0.0
        for a in range(n_apps):
            if not a_active[b, a]:
                continue
            for k in range(a_size[b, a]):
                if c_status[b, a, k] != RUNNING:
                    continue
                node = c_node[b, a, k]
                loc = c_loc[b, a, k]
                if loc < n_sites and headroom_levels[knob[b, loc]] >= 0.0:
                    head = headroom_levels[knob[b, loc]]
                    delta = _resize_delta(c_peak_cpu[b, a, k], head, c_req_cpu[b, a, k],
                                          c_alloc_cpu[b, a, k], resize_min, resize_max)
                    if delta > 0.0:
                        c_alloc_cpu[b, a, k] += delta * scale_cpu[node]
                        n_alloc_cpu[b, node] += delta * scale_cpu[node]
                    delta = _resize_delta(c_peak_mem[b, a, k], head, c_req_mem[b, a, k],
                                          c_alloc_mem[b, a, k], resize_min, resize_max)
                    if delta > 0.0:
                        c_alloc_mem[b, a, k] += delta * scale_mem[node]
                        n_alloc_mem[b, node] += delta * scale_mem[node]
                n_used[b, node] += min(c_demand[b, a, k], c_alloc_cpu[b, a, k])

        # --- power, capping, energy ---------------------------------------------------------
        loc_base[:] = 0.0
        loc_dyn[:] = 0.0
        for n in range(n_nodes):
            if not node_exists[n]:
                continue
            s = node_site[n]
            if asleep[b, n]:
                loc_base[s] += sleep_w[n]
            else:
                u = n_used[b, n] / node_cores[n]
                loc_base[s] += idle_w[n]
                loc_dyn[s] += (max_w[n] - idle_w[n]) * load_fraction_at(curves[n], False, u)
        for s in range(n_sites + 1):
            theta[s] = 1.0
            demand_w = loc_base[s] + loc_dyn[s]
            loc_power[b, s] = demand_w
            if s < n_sites:
                budget = site_budget[s]
                if demand_w > budget:
                    theta[s] = min(max((budget - loc_base[s]) / max(loc_dyn[s], 1e-9),
                                       throttle_min), 1.0)
                    capped_s[b, s] += d
                    terms[b, s, T_CAPPED] += hours
                drawn = loc_base[s] + theta[s] * loc_dyn[s]
                over = max(drawn - budget, 0.0) * d
                overshoot_j[b, s] += over
                terms[b, s, T_OVERSHOOT] += over / 3600.0
                throttle[b, s] = theta[s]
        used_edge = 0.0
        for n in range(n_nodes):
            if not node_exists[n]:
                continue
            s = node_site[n]
            if asleep[b, n]:
                drawn = sleep_w[n]
            else:
                f = load_fraction_at(curves[n], False, n_used[b, n] / node_cores[n])
                drawn = idle_w[n] + theta[s] * (max_w[n] - idle_w[n]) * f
            e = drawn * loc_pue[s] * d
            n_energy[b, n] += e
            terms[b, s, T_ENERGY] += e / 3.6e6
            if s < n_sites:
                used_edge += n_used[b, n]
        used_core_s[b] += used_edge * d
        edge_core_s[b] += edge_nodes_cores * d

        # --- response times, SLO, WAN bytes ---------------------------------------------------
        wan = 0.0
        for a in range(n_apps):
            if not a_active[b, a]:
                continue
            size = a_size[b, a]
            serving = True
            for k in range(size):
                if c_status[b, a, k] != RUNNING or c_ready[b, a, k] > 0.0:
                    serving = False
            reqs = a_rate[b, a] * d
            requests[b] += reqs
            a_over[b, a] = 0.0
            if not serving:
                requests_violated[b] += reqs
                terms[b, a_home[b, a], T_VIOLATION] += hours
                continue
            data_k = a_data_k[b, a]
            data_site = a_data_site[b, a]
            home = a_home[b, a]
            app_wan = 0.0
            min_speed = math.inf
            for k in range(size):
                node = c_node[b, a, k]
                loc = c_loc[b, a, k]
                min_speed = min(min_speed, speed[node])
                th = theta[loc]
                util = n_used[b, node] / node_cores[node]
                service = c_work[b, a, k] * (1.0 + kappa * util * util) / (th * speed[node])
                rho = c_demand[b, a, k] / max(c_alloc_cpu[b, a, k] * th, 1e-9)
                own[k] = service / (1.0 - min(rho, RHO_MAX))
                if k == data_k:
                    own[k] += rtt[loc, data_site]
                    if loc != data_site:
                        app_wan += reqs * c_inv[b, a, k] * data_bytes
            for k in range(1, size):
                lk = c_loc[b, a, k]
                lp = c_loc[b, a, c_parent[b, a, k]]
                hop[k] = rtt[lk, lp]
                if lk != lp:
                    app_wan += reqs * c_inv[b, a, k] * c_bytes[b, a, k]
            entry_loc = c_loc[b, a, 0]
            if entry_loc != home:
                app_wan += reqs * user_bytes
            # The WAN's energy is the app's: charged to its home site, like its latency.
            wan += app_wan
            terms[b, home, T_ENERGY] += app_wan * wan_j_per_byte / 3.6e6
            response = user_rtt[home, entry_loc] + critical_path_one(
                own, c_parent[b, a], c_calls[b, a], hop, size, slowest)
            slo = a_slo[b, a]
            if sample[b]:
                # What an ingress measures of a serving app: its response against its SLO,
                # kept apart for apps with a container on a slow node (the service's row).
                update_response(svc_stats[b, a_service[b, a], 0], response / slo,
                                min_speed < SLOW_SPEED)
            response_sum[b] += reqs * response
            if record:
                i = min(np.searchsorted(response_bins, response), response_bins.shape[0] - 1)
                response_hist[b, i] += reqs
            if response > slo:
                over = min((response - slo) / slo, LATENCY_OVER_CAP)
                a_over[b, a] = over
                requests_violated[b] += reqs
                terms[b, home, T_VIOLATION] += hours
                terms[b, home, T_LATENCY] += over * hours
        wan_bytes[b] += wan

        # --- departures: an app's lifetime runs once every container is decided --------------
        for a in range(n_apps):
            if not a_active[b, a]:
                continue
            size = a_size[b, a]
            decided = True
            for k in range(size):
                st = c_status[b, a, k]
                if st != RUNNING and st != REJECTED:
                    decided = False
            if not decided:
                continue
            a_life[b, a] -= d
            if a_life[b, a] > 0.0:
                continue
            for k in range(size):
                if c_status[b, a, k] == RUNNING:
                    finished[b] += 1.0
                    node = c_node[b, a, k]
                    n_alloc_cpu[b, node] -= c_alloc_cpu[b, a, k]
                    n_alloc_mem[b, node] -= c_alloc_mem[b, a, k]
                c_status[b, a, k] = 0
                c_node[b, a, k] = -1
                c_loc[b, a, k] = -1
            a_active[b, a] = False
            a_over[b, a] = 0.0

        # --- empty nodes fall asleep -----------------------------------------------------------
        for n in range(n_nodes):
            wake_left[b, n] = max(wake_left[b, n] - d, 0.0)
            if not node_exists[n]:
                continue
            if n_alloc_cpu[b, n] <= 1e-9 and n_alloc_mem[b, n] <= 1e-9:
                n_alloc_cpu[b, n] = 0.0
                n_alloc_mem[b, n] = 0.0
                idle_s[b, n] += d
                if idle_s[b, n] >= sleep_after_s:
                    asleep[b, n] = True
            else:
                idle_s[b, n] = 0.0
