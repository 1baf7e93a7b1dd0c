"""New apps arrive at their home sites' queues (or are rejected when nothing can hold them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.state import QUEUED_SITE, TERM_NAMES

if TYPE_CHECKING:
    from sim.core import BatchedCore


def admit_arrivals(core: BatchedCore, dt: np.ndarray, terms: np.ndarray) -> None:
    """Draw this tick's arrivals per (copy, site) and enqueue them, in site order.

    An app is rejected whole (all its containers counted) when its site's queue is full or
    the copy has no free app slot.
    """
    st, gen = core.st, core.generator
    rate = gen.arrival_rate_per_s(core.hour[:, None], core.topo.site_apps_per_hour,
                                  st.burst_on)
    counts = core.rng.poisson(rate * dt[:, None])  # (B, S)
    total = int(counts.sum())
    if total == 0:
        return
    flat_counts = counts.ravel()
    group = np.repeat(np.arange(core.B * core.S), flat_counts)
    b, s = group // core.S, group % core.S
    rank_in_site = np.arange(total) - np.repeat(np.cumsum(flat_counts) - flat_counts, flat_counts)
    fits_queue = rank_in_site < (core.Q - st.sq_len)[b, s]

    free = ~st.a_active
    n_free = free.sum(axis=1)
    accepted_so_far = np.cumsum(fits_queue) - fits_queue  # accepted before, across the batch
    first_of_copy = np.searchsorted(b, b)
    rank_in_copy = accepted_so_far - accepted_so_far[first_of_copy]
    accept = fits_queue & (rank_in_copy < n_free[b])

    apps = gen.sample(core.rng, s)
    rejected = ~accept
    if rejected.any():
        lost = np.bincount(b[rejected], apps.size[rejected], minlength=core.B)
        st.arrived += lost
        st.rejected += lost
        terms[:, TERM_NAMES.index("rejections")] += lost
    if not accept.any():
        return
    ai = np.nonzero(accept)[0]
    b, s = b[ai], s[ai]
    free_b, free_slot = np.nonzero(free)
    offset = np.cumsum(n_free) - n_free
    slot = free_slot[offset[b] + rank_in_copy[ai]]

    st.a_active[b, slot] = True
    st.a_home[b, slot] = apps.home[ai]
    st.a_size[b, slot] = apps.size[ai]
    st.a_next_k[b, slot] = 0
    st.a_slo_ms[b, slot] = apps.slo_ms[ai]
    st.a_rate_rps[b, slot] = apps.rate_rps[ai]
    st.a_life_s[b, slot] = apps.lifetime_s[ai]
    st.a_z[b, slot] = core.rng.standard_normal(ai.size)
    st.a_data_k[b, slot] = apps.data_k[ai]
    st.a_data_site[b, slot] = apps.data_site[ai]
    real = np.arange(core.K)[None, :] < apps.size[ai, None]
    st.c_status[b, slot] = np.where(real, QUEUED_SITE, 0)
    st.c_node[b, slot] = -1
    st.c_loc[b, slot] = -1
    st.c_parent[b, slot] = apps.parent[ai]
    for name, values in (
        ("c_calls", apps.calls), ("c_invocations", apps.invocations),
        ("c_bytes", apps.bytes_per_call), ("c_work_ms", apps.work_ms),
        ("c_req_cpu", apps.cpu_req), ("c_req_mem", apps.mem_req), ("c_level", apps.level),
        ("c_sigma", apps.sigma), ("c_amp", apps.amp), ("c_peak_h", apps.peak_h),
        ("c_mem_level", apps.mem_level), ("c_mem_growth_h", apps.mem_growth_h),
    ):
        getattr(st, name)[b, slot] = values[ai]
    for name in ("c_alloc_cpu", "c_alloc_mem", "c_demand_cpu", "c_mem_used", "c_peak_cpu",
                 "c_peak_mem", "c_ready_s", "c_age_s"):
        getattr(st, name)[b, slot] = 0.0
    st.arrived += np.bincount(b, apps.size[ai], minlength=core.B)

    # Enqueue at each site in arrival order (accepted apps are a prefix of each site's list).
    rank = rank_in_site[ai]
    pos = (st.sq_head[b, s] + st.sq_len[b, s] + rank) % core.Q
    st.sq[b, s, pos] = slot
    np.add.at(st.sq_len, (b, s), 1)
