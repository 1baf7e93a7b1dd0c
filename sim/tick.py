"""One tick of simulated time for the copies whose queues are empty.

Order within a tick: container demand moves (daily cycle, app-level AR(1) noise), the resize
knob adjusts running allocations, memory above the allocation restarts a container, nodes'
power follows their load, sites over budget are capped (throttled), response times follow
from the (throttled, contended) CPU each container gets, energy and WAN bytes accumulate,
finished apps leave, empty nodes fall asleep, and new apps arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierarchy.power import node_power_w
from sim.arrivals import admit_arrivals
from sim.latency import critical_path_ms, ps_response_ms
from sim.state import EMPTY, REJECTED, RESPONSE_BINS, RUNNING, TERM_NAMES

if TYPE_CHECKING:
    from sim.core import BatchedCore

# Latency above SLO is counted in SLO units up to this many (an app far out of SLO is out).
LATENCY_OVER_CAP = 10.0
T = {name: i for i, name in enumerate(TERM_NAMES)}


def advance_time(core: BatchedCore, advanced: np.ndarray, terms: np.ndarray) -> None:
    st, topo, sc = core.st, core.topo, core.scenario
    dt = np.where(advanced, core.dt_s, 0.0)  # (B,) zero for copies that hold still
    dt3 = dt[:, None, None]
    st.t_s += dt
    hour = core.hour

    # --- demand --------------------------------------------------------------------------
    st.burst_on = np.where(
        advanced[:, None], core.generator.step_bursts(core.rng, st.burst_on, dt[:, None]),
        st.burst_on,
    )
    phi = sc.workload.usage.ar1_phi_per_min ** (dt / 60.0)
    noise = core.rng.standard_normal(st.a_z.shape)
    st.a_z = phi[:, None] * st.a_z + np.sqrt(1.0 - phi**2)[:, None] * noise
    running = st.c_status == RUNNING
    st.c_ready_s = np.maximum(st.c_ready_s - dt3, 0.0)
    st.c_age_s += np.where(running, dt3, 0.0)
    ready = running & (st.c_ready_s <= 0.0)
    daily = 1.0 + st.c_amp * np.cos(2 * np.pi * (hour[:, None, None] - st.c_peak_h) / 24.0)
    lognormal = np.exp(st.c_sigma * st.a_z[:, :, None] - 0.5 * st.c_sigma**2)
    demand = np.where(ready, st.c_req_cpu * st.c_level * daily * lognormal, 0.0)
    mem_used = np.where(
        running,
        st.c_req_mem * np.clip(st.c_mem_level + st.c_mem_growth_h * st.c_age_s / 3600.0,
                               0.01, 4.0),
        0.0,
    )
    decay = 0.5 ** (dt3 / sc.sizing.peak_halflife_s)
    st.c_peak_cpu = np.where(running, np.maximum(demand, st.c_peak_cpu * decay), 0.0)
    st.c_peak_mem = np.where(running, np.maximum(mem_used, st.c_peak_mem * decay), 0.0)

    # --- out of memory: restart, losing the container's service for oom_restart_s -------
    oom = ready & (mem_used > st.c_alloc_mem) & advanced[:, None, None]
    if oom.any():
        st.c_ready_s = np.where(oom, sc.sizing.oom_restart_s, st.c_ready_s)
        st.c_age_s = np.where(oom, 0.0, st.c_age_s)
        mem_used = np.where(oom, st.c_req_mem * st.c_mem_level, mem_used)
        demand = np.where(oom, 0.0, demand)
        st.oom_restarts += oom.reshape(core.B, -1).sum(axis=1)
    st.c_demand_cpu = demand
    st.c_mem_used = mem_used

    _resize(core, running, advanced)
    _recount_node_alloc(core)

    # --- power, capping, energy ----------------------------------------------------------
    node = np.maximum(st.c_node, 0)
    flat_node = (np.arange(core.B)[:, None, None] * core.N + node).ravel()
    used_c = np.where(running, np.minimum(demand, st.c_alloc_cpu), 0.0)
    used = np.bincount(flat_node, used_c.ravel(), minlength=core.B * core.N).reshape(core.B, -1)
    st.node_used_cpu = used
    st.node_fresh_cpu = np.where(advanced[:, None], 0.0, st.node_fresh_cpu)
    util = used / topo.node_cores
    demand_w = node_power_w(util, st.asleep, topo.node_idle_w, topo.node_max_w,
                            topo.node_sleep_w, topo.node_curves) * topo.node_exists
    base_w = np.where(st.asleep, topo.node_sleep_w, topo.node_idle_w) * topo.node_exists
    dyn_w = demand_w - base_w
    site_of = topo.node_site
    loc_demand = _sum_by_loc(core, demand_w)
    loc_base = _sum_by_loc(core, base_w)
    loc_dyn = _sum_by_loc(core, dyn_w)
    budget = topo.site_budget_w
    over = loc_demand[:, : core.S] > budget
    theta = np.where(
        over,
        np.clip((budget - loc_base[:, : core.S]) / np.maximum(loc_dyn[:, : core.S], 1e-9),
                sc.power.throttle_min, 1.0),
        1.0,
    )
    st.throttle[:, : core.S] = theta
    st.loc_power_w = loc_demand
    drawn_w = base_w + np.concatenate([theta, np.ones((core.B, 1))], axis=1)[:, site_of] * dyn_w
    energy_j = drawn_w * topo.loc_pue[site_of] * dt[:, None]
    st.node_energy_j += energy_j
    site_drawn = loc_base[:, : core.S] + theta * loc_dyn[:, : core.S]
    overshoot_j = np.maximum(site_drawn - budget, 0.0) * dt[:, None]
    st.overshoot_j += overshoot_j
    capped_s = (theta < 1.0) * dt[:, None]
    st.capped_site_s += capped_s
    edge_nodes = slice(0, core.S * core.M)
    st.used_core_s += used[:, edge_nodes].sum(axis=1) * dt
    st.edge_core_s += topo.node_cores[edge_nodes].sum() * dt

    # --- response times ------------------------------------------------------------------
    wan_bytes = _respond(core, running, ready, demand, theta, util, dt, terms)
    st.wan_bytes += wan_bytes
    wan_j = wan_bytes * sc.network.wan_energy_j_per_byte

    terms[:, T["energy_kwh"]] += (energy_j.sum(axis=1) + wan_j) / 3.6e6
    terms[:, T["capped_site_h"]] += capped_s.sum(axis=1) / 3600.0
    terms[:, T["overshoot_wh"]] += overshoot_j.sum(axis=1) / 3600.0

    # --- departures, sleep, arrivals ------------------------------------------------------
    _depart(core, dt)
    _sleep_idle_nodes(core, dt, advanced)
    admit_arrivals(core, dt, terms)


def _sum_by_loc(core: BatchedCore, per_node: np.ndarray) -> np.ndarray:
    """(B, N) -> (B, S+1): sum over each site's nodes, and the pool's."""
    edge = per_node[:, : core.S * core.M].reshape(core.B, core.S, core.M).sum(axis=2)
    return np.concatenate([edge, per_node[:, core.S * core.M:].sum(axis=1, keepdims=True)], 1)


def _resize(core: BatchedCore, running: np.ndarray, advanced: np.ndarray) -> None:
    """Dynamic allocation: edge containers follow recent peak x (1 + knob headroom).

    Shrinking always succeeds; growth on a node is scaled down to the capacity it has left.
    A negative headroom level switches resizing off for the site.
    """
    st, sc = core.st, core.scenario
    loc = st.c_loc
    at_edge = running & (loc >= 0) & (loc < core.S) & advanced[:, None, None]
    site = np.clip(loc, 0, core.S - 1)
    headroom = core.headroom_levels[np.take_along_axis(st.knob, site.reshape(core.B, -1), 1)]
    headroom = headroom.reshape(loc.shape)
    active = at_edge & (headroom >= 0)
    if not active.any():
        return
    lo, hi = sc.sizing.resize_min_frac, sc.sizing.resize_max_frac
    for peak, req, alloc_name, cap in (
        (st.c_peak_cpu, st.c_req_cpu, "c_alloc_cpu", core.topo.node_cores),
        (st.c_peak_mem, st.c_req_mem, "c_alloc_mem", core.topo.node_mem_gib),
    ):
        alloc = getattr(st, alloc_name)
        target = np.clip(peak * (1.0 + np.maximum(headroom, 0.0)), lo * req, hi * req)
        delta = np.where(active, target - alloc, 0.0)
        flat = (np.arange(core.B)[:, None, None] * core.N + np.maximum(st.c_node, 0)).ravel()
        held = np.where(running, alloc, 0.0)
        after_shrink = np.bincount(flat, (held + np.minimum(delta, 0.0)).ravel(),
                                   minlength=core.B * core.N).reshape(core.B, core.N)
        growth = np.bincount(flat, np.maximum(delta, 0.0).ravel(),
                             minlength=core.B * core.N).reshape(core.B, core.N)
        room = np.maximum(cap - after_shrink, 0.0)
        scale = np.where(growth > 0, np.minimum(1.0, room / np.maximum(growth, 1e-12)), 1.0)
        node_scale = np.take_along_axis(scale, np.maximum(st.c_node, 0).reshape(core.B, -1), 1)
        grow = np.maximum(delta, 0.0) * node_scale.reshape(delta.shape)
        setattr(st, alloc_name, alloc + np.minimum(delta, 0.0) + grow)


def _recount_node_alloc(core: BatchedCore) -> None:
    st = core.st
    running = st.c_status == RUNNING
    flat = (np.arange(core.B)[:, None, None] * core.N + np.maximum(st.c_node, 0)).ravel()
    for src, dst in (("c_alloc_cpu", "node_alloc_cpu"), ("c_alloc_mem", "node_alloc_mem")):
        vals = np.where(running, getattr(st, src), 0.0).ravel()
        setattr(st, dst, np.bincount(flat, vals, minlength=core.B * core.N).reshape(core.B, -1))


def _respond(core: BatchedCore, running: np.ndarray, ready: np.ndarray, demand: np.ndarray,
             theta: np.ndarray, util: np.ndarray, dt: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Response time of every app; SLO terms and metrics; returns WAN bytes per copy."""
    st, topo, sc = core.st, core.topo, core.scenario
    b = np.arange(core.B)[:, None, None]
    node = np.maximum(st.c_node, 0)
    loc = np.clip(st.c_loc, 0, core.S)
    theta_all = np.concatenate([theta, np.ones((core.B, 1))], axis=1)
    th = theta_all[b, loc]
    speed = topo.node_speed[node]
    slowdown = 1.0 + sc.power.contention_kappa * util[b, node] ** 2
    service = st.c_work_ms * slowdown / (th * speed)
    rho = demand / np.maximum(st.c_alloc_cpu * th, 1e-9)
    own = ps_response_ms(service, rho)
    # Reading data pinned at another location costs a round trip per call to it.
    k_idx = np.arange(core.K)
    reads = st.a_data_k[:, :, None] == k_idx
    data_loc = np.clip(st.a_data_site, 0, core.S)[:, :, None]
    own = own + np.where(reads, topo.rtt_ms[loc, data_loc], 0.0)

    parent = st.c_parent.astype(np.int64)
    par_loc = np.take_along_axis(loc, np.maximum(parent, 0), axis=2)
    hop = topo.rtt_ms[loc, par_loc]
    real = k_idx < st.a_size[:, :, None]
    app_active = st.a_active
    path = critical_path_ms(own, parent, st.c_calls, hop, real & app_active[:, :, None])
    user = topo.user_rtt_ms[np.clip(st.a_home, 0, core.S - 1), loc[:, :, 0]]
    response = user + path  # (B, A)

    # An app serves only when every container runs and is ready.
    part_ok = ~real | ready
    serving = app_active & part_ok.all(axis=2) & ~(real & (st.c_status == REJECTED)).any(axis=2)
    hours = (dt / 3600.0)[:, None]
    slo = np.where(app_active, st.a_slo_ms, 1.0)
    over = np.clip((response - slo) / slo, 0.0, LATENCY_OVER_CAP)
    late = serving & (response > st.a_slo_ms)
    down = app_active & ~serving
    terms[:, T["latency_over_slo"]] += (np.where(serving, over, 0.0) * hours).sum(axis=1)
    terms[:, T["violation_app_h"]] += ((late | down) * hours).sum(axis=1)

    reqs = st.a_rate_rps * dt[:, None]
    st.requests += np.where(app_active, reqs, 0.0).sum(axis=1)
    st.requests_violated += np.where(late | down, reqs, 0.0).sum(axis=1)
    served = np.where(serving, reqs, 0.0)
    st.response_ms_sum += (served * response).sum(axis=1)
    if core.record_metrics:
        bins = np.clip(np.searchsorted(RESPONSE_BINS, response), 0, len(RESPONSE_BINS) - 1)
        flat = (np.arange(core.B)[:, None] * len(RESPONSE_BINS) + bins).ravel()
        st.response_hist += np.bincount(
            flat, served.ravel(), minlength=core.B * len(RESPONSE_BINS)
        ).reshape(core.B, -1)

    # WAN bytes: hops between locations, users reaching a non-home entry, remote data.
    rate = np.where(serving, st.a_rate_rps, 0.0)[:, :, None] * dt[:, None, None]
    cross = real & (parent >= 0) & (loc != par_loc)
    call_bytes = (rate * st.c_invocations * st.c_bytes * cross).sum(axis=(1, 2))
    remote_entry = serving & (loc[:, :, 0] != st.a_home)
    user_bytes = (np.where(remote_entry, st.a_rate_rps, 0.0) * dt[:, None]).sum(axis=1)
    user_bytes = user_bytes * sc.network.user_bytes_per_request
    data_remote = reads & (loc != data_loc) & real
    data_bytes = (rate * st.c_invocations * data_remote).sum(axis=(1, 2))
    data_bytes = data_bytes * sc.workload.apps.data_bytes_per_request
    return call_bytes + user_bytes + data_bytes


def _depart(core: BatchedCore, dt: np.ndarray) -> None:
    """Apps whose lifetime is over leave; their lifetime runs once all are decided."""
    st = core.st
    k_idx = np.arange(core.K)
    real = k_idx < st.a_size[:, :, None]
    decided = st.a_active & ~(real & ((st.c_status == 1) | (st.c_status == 2))).any(axis=2)
    st.a_life_s = np.where(decided, st.a_life_s - dt[:, None], st.a_life_s)
    leaving = decided & (st.a_life_s <= 0.0)
    if not leaving.any():
        return
    running = (st.c_status == RUNNING) & leaving[:, :, None]
    st.finished += running.reshape(core.B, -1).sum(axis=1)
    gone = leaving[:, :, None] & real
    st.c_status = np.where(gone, EMPTY, st.c_status).astype(np.int8)
    st.c_node = np.where(gone, -1, st.c_node)
    st.c_loc = np.where(gone, -1, st.c_loc)
    st.a_active &= ~leaving
    _recount_node_alloc(core)


def _sleep_idle_nodes(core: BatchedCore, dt: np.ndarray, advanced: np.ndarray) -> None:
    st, topo = core.st, core.topo
    empty = (st.node_alloc_cpu <= 1e-12) & (st.node_alloc_mem <= 1e-12) & topo.node_exists
    st.idle_s = np.where(empty, st.idle_s + dt[:, None], 0.0)
    st.wake_left_s = np.maximum(st.wake_left_s - dt[:, None], 0.0)
    st.asleep |= empty & (st.idle_s >= core.scenario.sizing.sleep_after_s) & advanced[:, None]
