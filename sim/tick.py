"""One tick of simulated time for the copies whose queues are empty.

Order within a tick: container demand moves (daily cycle, app-level AR(1) noise), memory above
the allocation restarts a container (OOM), the resize knob adjusts running allocations,
nodes' power follows their load, sites over budget are capped (throttled), response times
follow from the (throttled, contended) CPU each container gets, energy and WAN bytes
accumulate, finished apps leave, empty nodes fall asleep, apps that keep violating their SLO
on a slow node are moved (`sizing.migrate_after_s`, sim/migration.py), and new apps arrive.

Random draws (burst switches, load noise, arrivals) come from each copy's own streams; the
per-container work runs in the compiled kernels (sim/kernel.py), apps from per-copy pools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.arrivals import admit_arrivals
from sim.kernel import clock_kernel, tick_kernel
from sim.migration import migrate_violators
from sim.state import RESPONSE_BINS

if TYPE_CHECKING:
    from sim.core import BatchedCore


def advance_time(core: BatchedCore, advanced: np.ndarray, terms: np.ndarray) -> None:
    """One tick for the copies in `advanced`; adds the cost terms to `terms` (B, S + 1, terms)."""
    st, topo, sc = core.st, core.topo, core.scenario
    arr = sc.workload.arrivals
    dt = np.empty(core.B)
    hour = np.empty(core.B)
    arrivals = np.empty((core.B, core.S), dtype=np.int64)
    clock_kernel(
        advanced, core.dt_s, st.t_s, st.tick, st.key, sc.time.start_hour, st.burst_on,
        arr.burst_factor, arr.burst_on_s, arr.burst_off_s, arr.daily_amplitude, arr.peak_hour,
        topo.site_apps_per_hour, core.arrival_mod, core.arrival_mod_s, arrivals, st.a_z,
        sc.workload.usage.ar1_phi_per_min, dt, hour,
    )
    core.set_hour(hour)
    # The service statistics take a sample every SAMPLE_EVERY_S of simulated time.
    sample = st.tick % core.stats_stride == 0
    tick_kernel(
        advanced, dt, hour,
        st.c_status, st.c_node, st.c_loc, st.c_parent, st.c_calls, st.c_invocations,
        st.c_bytes, st.c_work_ms, st.c_req_cpu, st.c_req_mem, st.c_alloc_cpu, st.c_alloc_mem,
        st.c_level, st.c_sigma, st.c_amp, st.c_peak_h, st.c_mem_level, st.c_mem_growth_h,
        st.c_demand_cpu, st.c_mem_used, st.c_peak_cpu, st.c_peak_mem, st.c_ready_s,
        st.c_age_s, st.c_series, st.c_phase_s,
        st.a_active, st.a_home, st.a_size, st.a_slo_ms, st.a_rate_rps, st.a_life_s, st.a_z,
        st.a_data_k, st.a_data_site, st.a_service, sample, st.svc_stats, st.a_over_slo,
        *core.usage_tables,
        st.asleep, st.idle_s, st.wake_left_s, st.node_alloc_cpu, st.node_alloc_mem,
        st.node_used_cpu, st.node_fresh_cpu, st.node_energy_j,
        st.knob, st.throttle, st.loc_power_w,
        st.finished, st.oom_restarts, st.wan_bytes, st.requests, st.requests_violated,
        st.response_ms_sum, st.response_hist, st.capped_site_s, st.overshoot_j,
        st.used_core_s, st.edge_core_s, terms,
        topo.node_exists, topo.node_site, topo.node_cores, topo.node_mem_gib,
        topo.node_idle_w, topo.node_max_w, topo.node_sleep_w, topo.node_speed,
        core.curve_table, topo.site_budget_w, topo.loc_pue, topo.rtt_ms, topo.user_rtt_ms,
        RESPONSE_BINS,
        core.headroom_levels, sc.sizing.resize_min_frac, sc.sizing.resize_max_frac,
        sc.sizing.peak_halflife_s, sc.sizing.oom_restart_s, sc.sizing.sleep_after_s,
        sc.power.throttle_min, sc.power.contention_kappa, sc.network.wan_energy_j_per_byte,
        sc.network.user_bytes_per_request, sc.workload.apps.data_bytes_per_request,
        core.record_metrics,
    )
    if sc.sizing.migrate_after_s > 0.0:
        migrate_violators(
            advanced, dt, sc.sizing.migrate_after_s, st.a_active, st.a_over_slo,
            st.a_violating_s, st.a_moves, st.a_home, st.a_size, st.a_next_k, st.c_status,
            st.c_node, st.c_loc, st.c_alloc_cpu, st.c_alloc_mem, st.node_alloc_cpu,
            st.node_alloc_mem, topo.node_speed, st.sq, st.sq_head, st.sq_len, st.migrations)
    if core.keep_tick_load:
        # The apps' load states as this tick used them: admission below reuses the slots
        # of apps that just left (the offline recorder reads them here).
        core.tick_load_z = st.a_z.copy()
    admit_arrivals(core, arrivals, terms)
