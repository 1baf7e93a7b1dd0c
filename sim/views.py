"""Fill the shared observation views (hierarchy.observation) from the simulator's state.

The per-position work (the container at the head of each queue, its call-graph neighbours,
each destination's room) runs in compiled loops; the guard arithmetic is hierarchy.guard's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierarchy.guard import placement_fits_at
from hierarchy.jit import compiled
from hierarchy.observation import CloudView, EdgeView
from sim.state import RUNNING

if TYPE_CHECKING:
    from sim.core import BatchedCore


@compiled
def _is_neighbour(parents: np.ndarray, k: int, j: int) -> bool:
    """Container j calls, or is called by, container k of the same app."""
    return j != k and (parents[j] == k or parents[k] == j)


@compiled
def fill_edge_heads(sq, sq_head, sq_len, a_next_k, a_size, a_slo, a_data_k, a_data_site,
                    c_parent, c_loc, c_status, c_node, c_req_cpu, c_req_mem, c_inv, n_nodes,
                    pending, cpu_req, mem_req, slo, app_size, k_index, is_entry, calls,
                    peers_here, peers_cloud, peers_other, data_here, data_elsewhere,
                    node_peers):
    """Per (copy, site): the container waiting at the head of the site's queue."""
    n_copies, n_sites = sq_len.shape
    k_max = c_parent.shape[2]
    for b in range(n_copies):
        for s in range(n_sites):
            node_peers[b, s, :] = 0.0
            has = sq_len[b, s] > 0
            pending[b, s] = has
            if not has:
                cpu_req[b, s] = mem_req[b, s] = slo[b, s] = app_size[b, s] = 0.0
                k_index[b, s] = calls[b, s] = 0.0
                peers_here[b, s] = peers_cloud[b, s] = peers_other[b, s] = 0.0
                is_entry[b, s] = data_here[b, s] = data_elsewhere[b, s] = False
                continue
            a = sq[b, s, sq_head[b, s]]
            k = min(a_next_k[b, a], k_max - 1)
            cpu_req[b, s] = c_req_cpu[b, a, k]
            mem_req[b, s] = c_req_mem[b, a, k]
            slo[b, s] = a_slo[b, a]
            app_size[b, s] = a_size[b, a]
            k_index[b, s] = k
            is_entry[b, s] = k == 0
            calls[b, s] = c_inv[b, a, k]
            reads = a_data_k[b, a] == k
            data_here[b, s] = reads and a_data_site[b, a] == s
            data_elsewhere[b, s] = reads and a_data_site[b, a] != s
            here = cloud = other = 0.0
            for j in range(a_size[b, a]):
                if c_status[b, a, j] != RUNNING or not _is_neighbour(c_parent[b, a], k, j):
                    continue
                loc = c_loc[b, a, j]
                if loc == s:
                    here += 1.0
                    node_peers[b, s, c_node[b, a, j] - s * n_nodes] += 1.0
                elif loc == n_sites:
                    cloud += 1.0
                else:
                    other += 1.0
            peers_here[b, s] = here
            peers_cloud[b, s] = cloud
            peers_other[b, s] = other


@compiled
def fill_cloud_head(cq, cq_head, cq_len, a_home, a_size, a_slo, a_data_k, a_data_site,
                    c_parent, c_loc, c_status, c_req_cpu, c_req_mem,
                    node_exists, node_cores, node_mem, alloc_cpu, alloc_mem, used, asleep,
                    idle_w, max_w, sleep_w, curves, linear, loc_power, site_budget, user_rtt,
                    n_nodes,
                    pending, cpu_req, mem_req, slo, app_size, is_entry, home, data_site,
                    site_free_cpu, site_free_mem, site_headroom, site_peers, site_rtt, site_fits,
                    pool_free_cpu, pool_free_mem, pool_peers, pool_rtt, pool_fits):
    """Per copy: the offloaded container at the head of the cloud queue and each destination."""
    n_copies = cq_len.shape[0]
    n_sites = site_budget.shape[0]
    k_max = c_parent.shape[2]
    n_all = node_cores.shape[0]
    first_pool = n_sites * n_nodes
    pool_cores = pool_mem = 0.0
    for n in range(first_pool, n_all):
        pool_cores += node_cores[n]
        pool_mem += node_mem[n]
    for b in range(n_copies):
        has = cq_len[b] > 0
        pending[b] = has
        flat = cq[b, cq_head[b]]
        a = flat // k_max
        k = flat % k_max
        cpu = c_req_cpu[b, a, k] if has else 0.0
        mem = c_req_mem[b, a, k] if has else 0.0
        cpu_req[b] = cpu
        mem_req[b] = mem
        slo[b] = a_slo[b, a] if has else 0.0
        app_size[b] = a_size[b, a] if has else 0.0
        is_entry[b] = has and k == 0
        h = a_home[b, a]
        home[b] = h
        data_site[b] = a_data_site[b, a] if a_data_k[b, a] >= 0 else -1
        site_peers[b, :] = 0.0
        pool_peers[b] = 0.0
        if has:
            for j in range(a_size[b, a]):
                if c_status[b, a, j] == RUNNING and _is_neighbour(c_parent[b, a], k, j):
                    loc = c_loc[b, a, j]
                    if loc < n_sites:
                        site_peers[b, loc] += 1.0
                    else:
                        pool_peers[b] += 1.0
        for s in range(n_sites):
            cores = mems = used_cpu = used_mem = 0.0
            fits = False
            for m in range(n_nodes):
                n = s * n_nodes + m
                cores += node_cores[n]
                mems += node_mem[n]
                used_cpu += alloc_cpu[b, n]
                used_mem += alloc_mem[b, n]
                if has and not fits:
                    row = curves[0] if linear else curves[n]
                    fits = placement_fits_at(node_exists[n], node_cores[n], node_mem[n],
                                             alloc_cpu[b, n], alloc_mem[b, n], used[b, n],
                                             asleep[b, n], idle_w[n], max_w[n], sleep_w[n], row,
                                             linear, loc_power[b, s], site_budget[s], cpu, mem)
            site_free_cpu[b, s] = 1.0 - used_cpu / max(cores, 1e-9)
            site_free_mem[b, s] = 1.0 - used_mem / max(mems, 1e-9)
            site_headroom[b, s] = (site_budget[s] - loc_power[b, s]) / site_budget[s]
            site_rtt[b, s] = user_rtt[h, s]
            site_fits[b, s] = fits
        used_cpu = used_mem = 0.0
        fits = False
        for n in range(first_pool, n_all):
            used_cpu += alloc_cpu[b, n]
            used_mem += alloc_mem[b, n]
            if (has and alloc_cpu[b, n] + cpu <= node_cores[n] * (1.0 + 1e-9)
                    and alloc_mem[b, n] + mem <= node_mem[n] * (1.0 + 1e-9)):
                fits = True
        pool_free_cpu[b] = 1.0 - used_cpu / max(pool_cores, 1e-9)
        pool_free_mem[b] = 1.0 - used_mem / max(pool_mem, 1e-9)
        pool_rtt[b] = user_rtt[h, n_sites]
        pool_fits[b] = fits


class StaticViews:
    """The parts of the views that never change, laid out once per core."""

    def __init__(self, core: BatchedCore) -> None:
        b, s, m = core.B, core.S, core.M
        topo = core.topo
        edge = slice(0, s * m)

        def static(arr: np.ndarray, dtype: type = np.float64) -> np.ndarray:
            out = np.ascontiguousarray(
                np.broadcast_to(arr[edge].reshape(s, m), (b, s, m)), dtype=dtype
            )
            out.flags.writeable = False
            return out

        self.node_exists = static(topo.node_exists, bool)
        self.node_cores = static(topo.node_cores)
        self.node_mem_gib = static(topo.node_mem_gib)
        self.node_speed = static(topo.node_speed)
        self.node_idle_w = static(topo.node_idle_w)
        self.node_max_w = static(topo.node_max_w)
        self.node_sleep_w = static(topo.node_sleep_w)
        self.site_index = np.ascontiguousarray(np.broadcast_to(np.arange(s), (b, s)))
        self.site_budget_w = np.ascontiguousarray(np.broadcast_to(topo.site_budget_w, (b, s)))
        self.wan_rtt_ms = np.ascontiguousarray(np.broadcast_to(topo.rtt_ms[:s, s], (b, s)))
        self.curves = core.edge_curves
        self.curve_rows = core.curve_table
        self.linear = core.topo.node_curves is None
        self.pool_cores = max(float(topo.node_cores[s * m:].sum()), 1e-9)


def edge_view(core: BatchedCore) -> EdgeView:
    """A snapshot of what every edge agent sees (fresh arrays: it outlives later steps)."""
    st, buf = core.st, core.static_views
    s_m = core.S * core.M
    bs, f8 = (core.B, core.S), np.float64
    (e_cpu, e_mem, e_slo, e_size, e_k, e_calls, e_here, e_cloud,
     e_other) = (np.empty(bs, f8) for _ in range(9))
    e_pending, e_is_entry, e_data_here, e_data_elsewhere = (np.empty(bs, bool) for _ in range(4))
    e_node_peers = np.empty((core.B, core.S, core.M))
    fill_edge_heads(
        st.sq, st.sq_head, st.sq_len, st.a_next_k, st.a_size, st.a_slo_ms, st.a_data_k,
        st.a_data_site, st.c_parent, st.c_loc, st.c_status, st.c_node, st.c_req_cpu,
        st.c_req_mem, st.c_invocations, core.M,
        e_pending, e_cpu, e_mem, e_slo, e_size, e_k, e_is_entry, e_calls, e_here, e_cloud,
        e_other, e_data_here, e_data_elsewhere, e_node_peers,
    )
    pool_free = 1.0 - st.node_alloc_cpu[:, s_m:].sum(axis=1) / buf.pool_cores
    shape = (core.B, core.S, core.M)
    return EdgeView(
        hour=np.broadcast_to(core.hour[:, None], (core.B, core.S)),
        site_index=buf.site_index,
        site_power_w=st.loc_power_w[:, : core.S].copy(),
        site_budget_w=buf.site_budget_w,
        throttle=st.throttle[:, : core.S].copy(),
        queue_fill=st.sq_len / core.Q,
        knob=st.knob.copy(),
        wan_rtt_ms=buf.wan_rtt_ms,
        cloud_free_frac=np.broadcast_to(pool_free[:, None], (core.B, core.S)),
        pending=e_pending, cpu_req=e_cpu, mem_req=e_mem, slo_ms=e_slo, app_size=e_size,
        k_index=e_k, is_entry=e_is_entry, calls=e_calls, peers_here=e_here,
        peers_cloud=e_cloud, peers_other=e_other, data_here=e_data_here,
        data_elsewhere=e_data_elsewhere,
        node_exists=buf.node_exists,
        node_asleep=st.asleep[:, :s_m].reshape(shape),
        node_cores=buf.node_cores,
        node_mem_gib=buf.node_mem_gib,
        node_alloc_cpu=st.node_alloc_cpu[:, :s_m].reshape(shape),
        node_alloc_mem=st.node_alloc_mem[:, :s_m].reshape(shape),
        node_used_cpu=(st.node_used_cpu[:, :s_m] + st.node_fresh_cpu[:, :s_m]).reshape(shape),
        node_peers=e_node_peers,
        node_speed=buf.node_speed,
        node_idle_w=buf.node_idle_w,
        node_max_w=buf.node_max_w,
        node_sleep_w=buf.node_sleep_w,
        curves=buf.curves,
    )


def cloud_view(core: BatchedCore) -> CloudView:
    """A snapshot of what the cloud level sees (fresh arrays)."""
    st, topo, buf = core.st, core.topo, core.static_views
    b, bs, f8 = core.B, (core.B, core.S), np.float64
    (c_cpu, c_mem, c_slo, c_size, c_pool_free_cpu, c_pool_free_mem, c_pool_peers,
     c_pool_rtt) = (np.empty(b, f8) for _ in range(8))
    c_pending, c_is_entry, c_pool_fits = (np.empty(b, bool) for _ in range(3))
    c_home, c_data_site = np.empty(b, np.int64), np.empty(b, np.int64)
    (c_site_free_cpu, c_site_free_mem, c_site_headroom, c_site_peers,
     c_site_rtt) = (np.empty(bs, f8) for _ in range(5))
    c_site_fits = np.empty(bs, bool)
    fill_cloud_head(
        st.cq, st.cq_head, st.cq_len, st.a_home, st.a_size, st.a_slo_ms, st.a_data_k,
        st.a_data_site, st.c_parent, st.c_loc, st.c_status, st.c_req_cpu, st.c_req_mem,
        topo.node_exists, topo.node_cores, topo.node_mem_gib, st.node_alloc_cpu,
        st.node_alloc_mem, st.node_used_cpu + st.node_fresh_cpu, st.asleep, topo.node_idle_w,
        topo.node_max_w, topo.node_sleep_w, buf.curve_rows, buf.linear, st.loc_power_w,
        topo.site_budget_w, topo.user_rtt_ms, core.M,
        c_pending, c_cpu, c_mem, c_slo, c_size, c_is_entry, c_home, c_data_site,
        c_site_free_cpu, c_site_free_mem, c_site_headroom, c_site_peers, c_site_rtt,
        c_site_fits, c_pool_free_cpu, c_pool_free_mem, c_pool_peers, c_pool_rtt, c_pool_fits,
    )
    return CloudView(
        hour=core.hour, queue_fill=st.cq_len / core.Qc, pending=c_pending, cpu_req=c_cpu,
        mem_req=c_mem, slo_ms=c_slo, app_size=c_size, is_entry=c_is_entry, home=c_home,
        data_site=c_data_site, site_free_cpu_frac=c_site_free_cpu,
        site_free_mem_frac=c_site_free_mem, site_power_headroom=c_site_headroom,
        site_peers=c_site_peers, site_rtt_from_home_ms=c_site_rtt, site_fits=c_site_fits,
        pool_free_cpu_frac=c_pool_free_cpu, pool_free_mem_frac=c_pool_free_mem,
        pool_peers=c_pool_peers, pool_rtt_from_home_ms=c_pool_rtt, pool_fits=c_pool_fits,
    )
