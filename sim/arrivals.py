"""New apps arrive at their home sites' queues (or are rejected when nothing can hold them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierarchy.jit import compiled
from sim.state import EMPTY, QUEUED_SITE, TERM_NAMES

if TYPE_CHECKING:
    from sim.core import BatchedCore

T_REJECTION = TERM_NAMES.index("rejections")


def admit_arrivals(core: BatchedCore, counts: np.ndarray, terms: np.ndarray) -> None:
    """Admit this tick's arrivals, `counts` (B, S) apps, in (copy, site) order."""
    st, gen = core.st, core.generator
    total = int(counts.sum())
    if total == 0:
        return
    pool, start = gen.take(core.rng, total)
    admit_kernel(
        counts, start, pool.size, pool.parent, pool.calls, pool.invocations,
        pool.bytes_per_call, pool.work_ms, pool.cpu_req, pool.mem_req, pool.level, pool.sigma,
        pool.amp, pool.peak_h, pool.mem_level, pool.mem_growth_h, pool.data_k, pool.lifetime_s,
        pool.slo_ms, pool.slo_factor, pool.rate_rps, pool.z0, gen.user_rtt_home,
        st.a_active, st.a_home, st.a_size, st.a_next_k, st.a_slo_ms, st.a_rate_rps,
        st.a_life_s, st.a_z, st.a_data_k, st.a_data_site,
        st.c_status, st.c_node, st.c_loc, st.c_parent, st.c_calls, st.c_invocations,
        st.c_bytes, st.c_work_ms, st.c_req_cpu, st.c_req_mem, st.c_level, st.c_sigma,
        st.c_amp, st.c_peak_h, st.c_mem_level, st.c_mem_growth_h, st.c_alloc_cpu,
        st.c_alloc_mem, st.c_demand_cpu, st.c_mem_used, st.c_peak_cpu, st.c_peak_mem,
        st.c_ready_s, st.c_age_s,
        st.sq, st.sq_head, st.sq_len, st.arrived, st.rejected, terms,
    )


@compiled
def admit_kernel(
    counts, start, p_size, p_parent, p_calls, p_inv, p_bytes, p_work, p_cpu, p_mem, p_level,
    p_sigma, p_amp, p_peak_h, p_mem_level, p_mem_growth, p_data_k, p_life, p_slo, p_slo_factor,
    p_rate, p_z0, user_rtt_home,
    a_active, a_home, a_size, a_next_k, a_slo, a_rate, a_life, a_z, a_data_k, a_data_site,
    c_status, c_node, c_loc, c_parent, c_calls, c_inv, c_bytes, c_work, c_req_cpu, c_req_mem,
    c_level, c_sigma, c_amp, c_peak_h, c_mem_level, c_mem_growth, c_alloc_cpu, c_alloc_mem,
    c_demand, c_mem_used, c_peak_cpu, c_peak_mem, c_ready, c_age,
    sq, sq_head, sq_len, arrived, rejected, terms,
):
    """Admit pool apps start, start+1, ... in (copy, site) order.

    An app is rejected whole (every container counted) when its site's queue is full or the
    copy has no free app slot.
    """
    n_copies, n_sites = counts.shape
    n_apps, k_max = c_status.shape[1], c_status.shape[2]
    q_max = sq.shape[2]
    p = start
    for b in range(n_copies):
        slot = 0
        for s in range(n_sites):
            for _ in range(counts[b, s]):
                size = p_size[p]
                arrived[b] += size
                while slot < n_apps and a_active[b, slot]:
                    slot += 1
                if sq_len[b, s] >= q_max or slot >= n_apps:
                    rejected[b] += size
                    terms[b, T_REJECTION] += size
                    p += 1
                    continue
                a = slot
                a_active[b, a] = True
                a_home[b, a] = s
                a_size[b, a] = size
                a_next_k[b, a] = 0
                # Users reach an app at home first: its SLO includes their round trip there.
                a_slo[b, a] = p_slo[p] + p_slo_factor[p] * user_rtt_home[s]
                a_rate[b, a] = p_rate[p]
                a_life[b, a] = p_life[p]
                a_z[b, a] = p_z0[p]
                a_data_k[b, a] = p_data_k[p]
                a_data_site[b, a] = s
                for k in range(k_max):
                    c_status[b, a, k] = QUEUED_SITE if k < size else EMPTY
                    c_node[b, a, k] = -1
                    c_loc[b, a, k] = -1
                    c_parent[b, a, k] = p_parent[p, k]
                    c_calls[b, a, k] = p_calls[p, k]
                    c_inv[b, a, k] = p_inv[p, k]
                    c_bytes[b, a, k] = p_bytes[p, k]
                    c_work[b, a, k] = p_work[p, k]
                    c_req_cpu[b, a, k] = p_cpu[p, k]
                    c_req_mem[b, a, k] = p_mem[p, k]
                    c_level[b, a, k] = p_level[p, k]
                    c_sigma[b, a, k] = p_sigma[p, k]
                    c_amp[b, a, k] = p_amp[p, k]
                    c_peak_h[b, a, k] = p_peak_h[p, k]
                    c_mem_level[b, a, k] = p_mem_level[p, k]
                    c_mem_growth[b, a, k] = p_mem_growth[p, k]
                    c_alloc_cpu[b, a, k] = 0.0
                    c_alloc_mem[b, a, k] = 0.0
                    c_demand[b, a, k] = 0.0
                    c_mem_used[b, a, k] = 0.0
                    c_peak_cpu[b, a, k] = 0.0
                    c_peak_mem[b, a, k] = 0.0
                    c_ready[b, a, k] = 0.0
                    c_age[b, a, k] = 0.0
                sq[b, s, (sq_head[b, s] + sq_len[b, s]) % q_max] = a
                sq_len[b, s] += 1
                p += 1
