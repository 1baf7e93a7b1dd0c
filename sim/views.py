"""Fill the shared observation views (hierarchy.observation) from the simulator's state.

The per-position work (the container at the head of each queue, its call-graph neighbours,
each destination's room) runs in compiled loops; the guard arithmetic is hierarchy.guard's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierarchy.encoding import cloud_encode_flat, edge_encode_flat
from hierarchy.features.online import predict_row, response_of_row
from hierarchy.guard import placement_fits_at, slo_guard
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
                    a_service, svc_stats, cls_mean, cls_scale, cls_centroids, cls_names,
                    pending, cpu_req, mem_req, slo, app_size, k_index, is_entry, calls,
                    peers_here, peers_cloud, peers_other, data_here, data_elsewhere,
                    node_peers, svc_samples, pred_cpu, pred_mem, cpu_cv, behaviour_class,
                    svc_response):
    """Per (copy, site): the container waiting at the head of the site's queue.

    Its behaviour comes only from the statistics of its service observed so far
    (hierarchy.features.online), never from its own usage parameters; `svc_response` (B, S, 4)
    is its app's observed response / SLO (hierarchy.features.online.response_of_row).
    """
    n_copies, n_sites = sq_len.shape
    k_max = c_parent.shape[2]
    prediction = np.zeros(5)
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
                svc_samples[b, s] = pred_cpu[b, s] = pred_mem[b, s] = cpu_cv[b, s] = 0.0
                behaviour_class[b, s] = -1
                svc_response[b, s, :] = 0.0
                continue
            a = sq[b, s, sq_head[b, s]]
            k = min(a_next_k[b, a], k_max - 1)
            predict_row(svc_stats[b, a_service[b, a], k], c_req_cpu[b, a, k], cls_mean,
                        cls_scale, cls_centroids, cls_names, prediction)
            svc_samples[b, s] = prediction[0]
            pred_cpu[b, s] = prediction[1]
            pred_mem[b, s] = prediction[2]
            cpu_cv[b, s] = prediction[3]
            behaviour_class[b, s] = int(prediction[4])
            response_of_row(svc_stats[b, a_service[b, a], 0], svc_response[b, s])
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


@compiled
def observe_edges(
    sq, sq_head, sq_len, a_next_k, a_size, a_slo, a_data_k, a_data_site, c_parent, c_loc,
    c_status, c_node, c_req_cpu, c_req_mem, c_inv,
    a_service, svc_stats, cls_mean, cls_scale, cls_centroids, cls_names,
    asleep, alloc_cpu, alloc_mem, used, fresh, loc_power, throttle, knob, hour, pool_free,
    q_max, node_exists, node_cores, node_mem, node_speed, node_idle, node_max, node_sleep,
    site_index, site_budget, wan_rtt, curves, linear,
    num_sites, headrooms, max_app_size, ref_cores, ref_mem, size_levels, behaviour,
    pred_margin, pred_min_frac, low, high,
    pending, cpu_req, mem_req, slo, app_size, k_index, is_entry, calls, peers_here,
    peers_cloud, peers_other, data_here, data_elsewhere, node_peers,
    svc_samples, pred_cpu, pred_mem, cpu_cv, behaviour_class, svc_response, response,
    b_hour, b_queue, b_cloud_free, b_power, b_throttle, b_knob, b_asleep, b_alloc_cpu,
    b_alloc_mem, b_used, obs, mask,
):
    """Every edge agent's observation and mask straight from the state, in one call.

    It fills the same view fields that `edge_view` exposes, then runs the shared encoder.
    """
    n_copies, n_sites = sq_len.shape
    n_nodes = node_peers.shape[2]
    fill_edge_heads(sq, sq_head, sq_len, a_next_k, a_size, a_slo, a_data_k, a_data_site,
                    c_parent, c_loc, c_status, c_node, c_req_cpu, c_req_mem, c_inv, n_nodes,
                    a_service, svc_stats, cls_mean, cls_scale, cls_centroids, cls_names,
                    pending, cpu_req, mem_req, slo, app_size, k_index, is_entry, calls,
                    peers_here, peers_cloud, peers_other, data_here, data_elsewhere, node_peers,
                    svc_samples, pred_cpu, pred_mem, cpu_cv, behaviour_class, svc_response)
    for b in range(n_copies):
        for s in range(n_sites):
            b_hour[b, s] = hour[b]
            b_queue[b, s] = sq_len[b, s] / q_max
            b_cloud_free[b, s] = pool_free[b]
            b_power[b, s] = loc_power[b, s]
            b_throttle[b, s] = throttle[b, s]
            b_knob[b, s] = knob[b, s]
            for m in range(n_nodes):
                n = s * n_nodes + m
                b_asleep[b, s, m] = asleep[b, n]
                b_alloc_cpu[b, s, m] = alloc_cpu[b, n]
                b_alloc_mem[b, s, m] = alloc_mem[b, n]
                b_used[b, s, m] = used[b, n] + fresh[b, n]
    p = n_copies * n_sites
    pm = (p, n_nodes)
    table = curves.reshape((p, n_nodes, 11))
    edge_encode_flat(
        b_hour.reshape(p), site_index.reshape(p), b_power.reshape(p), site_budget.reshape(p),
        b_throttle.reshape(p), b_queue.reshape(p), b_knob.reshape(p), wan_rtt.reshape(p),
        b_cloud_free.reshape(p), pending.reshape(p), cpu_req.reshape(p), mem_req.reshape(p),
        slo.reshape(p), app_size.reshape(p), k_index.reshape(p), is_entry.reshape(p),
        calls.reshape(p), peers_here.reshape(p), peers_cloud.reshape(p),
        peers_other.reshape(p), data_here.reshape(p), data_elsewhere.reshape(p),
        svc_samples.reshape(p), pred_cpu.reshape(p), pred_mem.reshape(p), cpu_cv.reshape(p),
        behaviour_class.reshape(p), svc_response.reshape((p, 4)),
        node_exists.reshape(pm), b_asleep.reshape(pm), node_cores.reshape(pm),
        node_mem.reshape(pm), b_alloc_cpu.reshape(pm), b_alloc_mem.reshape(pm),
        b_used.reshape(pm), node_peers.reshape(pm), node_speed.reshape(pm),
        node_idle.reshape(pm), node_max.reshape(pm), node_sleep.reshape(pm),
        table, linear, num_sites, headrooms, max_app_size, ref_cores, ref_mem, size_levels,
        behaviour, response, pred_margin, pred_min_frac, low, high,
        obs.reshape((p, obs.shape[2])), mask.reshape((p, mask.shape[2])),
    )


@compiled
def observe_cloud(
    cq, cq_head, cq_len, a_home, a_size, a_slo, a_data_k, a_data_site, c_parent, c_loc,
    c_status, c_req_cpu, c_req_mem, node_exists, node_cores, node_mem, alloc_cpu, alloc_mem,
    used, asleep, idle_w, max_w, sleep_w, curves, linear, loc_power, site_budget, user_rtt,
    n_nodes, hour, qc_max, max_app_size, ref_cores, ref_mem, low, high,
    pending, cpu_req, mem_req, slo, app_size, is_entry, home, data_site, site_free_cpu,
    site_free_mem, site_headroom, site_peers, site_rtt, site_fits, pool_free_cpu,
    pool_free_mem, pool_peers, pool_rtt, pool_fits, queue_fill, obs, mask,
):
    """The cloud level's observation and mask straight from the state, in one call."""
    fill_cloud_head(cq, cq_head, cq_len, a_home, a_size, a_slo, a_data_k, a_data_site,
                    c_parent, c_loc, c_status, c_req_cpu, c_req_mem, node_exists, node_cores,
                    node_mem, alloc_cpu, alloc_mem, used, asleep, idle_w, max_w, sleep_w, curves,
                    linear, loc_power, site_budget, user_rtt, n_nodes,
                    pending, cpu_req, mem_req, slo, app_size, is_entry, home, data_site,
                    site_free_cpu, site_free_mem, site_headroom, site_peers, site_rtt,
                    site_fits, pool_free_cpu, pool_free_mem, pool_peers, pool_rtt, pool_fits)
    for b in range(cq_len.shape[0]):
        queue_fill[b] = cq_len[b] / qc_max
    cloud_encode_flat(hour, queue_fill, pending, cpu_req, mem_req, slo, app_size, is_entry,
                      home, data_site, site_free_cpu, site_free_mem, site_headroom, site_peers,
                      site_rtt, site_fits, pool_free_cpu, pool_free_mem, pool_peers, pool_rtt,
                      pool_fits, site_budget.shape[0], max_app_size, ref_cores, ref_mem, low,
                      high, obs, mask)


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
        # The fused kernel reads a (B, S, M, 11) table (ignored when every curve is linear).
        self.edge_table = np.ascontiguousarray(np.broadcast_to(
            self.curves if self.curves is not None else np.linspace(0.0, 1.0, 11), (b, s, m, 11)
        ))
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
    e_samples, e_pred_cpu, e_pred_mem, e_cv = (np.empty(bs, f8) for _ in range(4))
    e_class = np.empty(bs, np.int64)
    e_response = np.empty((*bs, 4), f8)
    fill_edge_heads(
        st.sq, st.sq_head, st.sq_len, st.a_next_k, st.a_size, st.a_slo_ms, st.a_data_k,
        st.a_data_site, st.c_parent, st.c_loc, st.c_status, st.c_node, st.c_req_cpu,
        st.c_req_mem, st.c_invocations, core.M, st.a_service, st.svc_stats,
        *core.online_classes.args(),
        e_pending, e_cpu, e_mem, e_slo, e_size, e_k, e_is_entry, e_calls, e_here, e_cloud,
        e_other, e_data_here, e_data_elsewhere, e_node_peers,
        e_samples, e_pred_cpu, e_pred_mem, e_cv, e_class, e_response,
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
        node_asleep=st.asleep[:, :s_m].reshape(shape).copy(),
        node_cores=buf.node_cores,
        node_mem_gib=buf.node_mem_gib,
        node_alloc_cpu=st.node_alloc_cpu[:, :s_m].reshape(shape).copy(),
        node_alloc_mem=st.node_alloc_mem[:, :s_m].reshape(shape).copy(),
        node_used_cpu=(st.node_used_cpu[:, :s_m] + st.node_fresh_cpu[:, :s_m]).reshape(shape),
        node_peers=e_node_peers,
        node_speed=buf.node_speed,
        node_idle_w=buf.node_idle_w,
        node_max_w=buf.node_max_w,
        node_sleep_w=buf.node_sleep_w,
        curves=buf.curves,
        svc_samples=e_samples, pred_cpu_p95=e_pred_cpu, pred_mem_p95=e_pred_mem, cpu_cv=e_cv,
        behaviour_class=e_class, svc_response=e_response,
    )


def _cloud_fields(core: BatchedCore) -> dict[str, np.ndarray]:
    b, bs, f8 = core.B, (core.B, core.S), np.float64
    fields = {name: np.empty(b, f8) for name in (
        "cpu_req", "mem_req", "slo_ms", "app_size", "pool_free_cpu_frac", "pool_free_mem_frac",
        "pool_peers", "pool_rtt_from_home_ms", "queue_fill")}
    fields.update({name: np.empty(b, bool) for name in ("pending", "is_entry", "pool_fits")})
    fields.update({name: np.empty(b, np.int64) for name in ("home", "data_site")})
    fields.update({name: np.empty(bs, f8) for name in (
        "site_free_cpu_frac", "site_free_mem_frac", "site_power_headroom", "site_peers",
        "site_rtt_from_home_ms")})
    fields["site_fits"] = np.empty(bs, bool)
    return fields


def observe_cloud_level(core: BatchedCore) -> tuple[np.ndarray, np.ndarray]:
    """(cloud obs (B, Dc), cloud mask (B, Ac)); the view they encode stays in the buffers."""
    st, topo, sv = core.st, core.topo, core.static_views
    enc = core.cloud_encoder
    f = core.obs_buffers.cloud_fields
    hour = core.hour
    obs = np.empty((core.B, core.cloud_obs_dim), dtype=np.float32)
    mask = np.empty((core.B, core.cloud_layout.n), dtype=np.int8)
    observe_cloud(
        st.cq, st.cq_head, st.cq_len, st.a_home, st.a_size, st.a_slo_ms, st.a_data_k,
        st.a_data_site, st.c_parent, st.c_loc, st.c_status, st.c_req_cpu, st.c_req_mem,
        topo.node_exists, topo.node_cores, topo.node_mem_gib, st.node_alloc_cpu,
        st.node_alloc_mem, st.node_used_cpu + st.node_fresh_cpu, st.asleep, topo.node_idle_w,
        topo.node_max_w, topo.node_sleep_w, sv.curve_rows, sv.linear, st.loc_power_w,
        topo.site_budget_w, topo.user_rtt_ms, core.M, hour, core.Qc, enc.max_app_size,
        enc.ref_cores, enc.ref_mem_gib, *core.cloud_bounds,
        f["pending"], f["cpu_req"], f["mem_req"], f["slo_ms"], f["app_size"], f["is_entry"],
        f["home"], f["data_site"], f["site_free_cpu_frac"], f["site_free_mem_frac"],
        f["site_power_headroom"], f["site_peers"], f["site_rtt_from_home_ms"], f["site_fits"],
        f["pool_free_cpu_frac"], f["pool_free_mem_frac"], f["pool_peers"],
        f["pool_rtt_from_home_ms"], f["pool_fits"], f["queue_fill"], obs, mask,
    )
    return obs, mask


def cloud_view_snapshot(core: BatchedCore) -> CloudView:
    """The cloud view behind the last observation, as fresh arrays."""
    fields = {name: arr.copy() for name, arr in core.obs_buffers.cloud_fields.items()}
    return CloudView(hour=core.hour.copy(), **fields)


class ObservationBuffers:
    """Scratch arrays the fused observation kernel fills (internal: views are copies)."""

    def __init__(self, core: BatchedCore) -> None:
        b, s, m = core.B, core.S, core.M
        z = lambda dtype=np.float64: np.zeros((b, s), dtype=dtype)  # noqa: E731
        (self.cpu, self.mem, self.slo, self.size, self.k, self.calls, self.here, self.cloud,
         self.other, self.hour, self.queue, self.cloud_free, self.power,
         self.throttle) = (z() for _ in range(14))
        self.pending, self.is_entry, self.data_here, self.data_elsewhere = (
            z(bool) for _ in range(4))
        self.knob = z(np.int64)
        self.svc_samples, self.pred_cpu, self.pred_mem, self.cpu_cv = (z() for _ in range(4))
        self.behaviour_class = z(np.int64)
        self.svc_response = np.zeros((b, s, 4))
        self.site_index = np.ascontiguousarray(np.broadcast_to(np.arange(s), (b, s)))
        self.node_peers, self.alloc_cpu, self.alloc_mem, self.used = (
            np.zeros((b, s, m)) for _ in range(4))
        self.asleep = np.zeros((b, s, m), dtype=bool)
        self.cloud_fields = _cloud_fields(core)


def observe_all(core: BatchedCore) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(edge obs, edge mask, cloud obs, cloud mask) for the current state."""
    st, sv, buf = core.st, core.static_views, core.obs_buffers
    enc = core.edge_encoder
    s_m = core.S * core.M
    edge_obs = np.empty((core.B, core.S, core.edge_obs_dim), dtype=np.float32)
    edge_mask = np.empty((core.B, core.S, core.edge_layout.n), dtype=np.int8)
    pool_free = 1.0 - st.node_alloc_cpu[:, s_m:].sum(axis=1) / sv.pool_cores
    observe_edges(
        st.sq, st.sq_head, st.sq_len, st.a_next_k, st.a_size, st.a_slo_ms, st.a_data_k,
        st.a_data_site, st.c_parent, st.c_loc, st.c_status, st.c_node, st.c_req_cpu,
        st.c_req_mem, st.c_invocations, st.a_service, st.svc_stats,
        *core.online_classes.args(),
        st.asleep, st.node_alloc_cpu, st.node_alloc_mem, st.node_used_cpu, st.node_fresh_cpu,
        st.loc_power_w, st.throttle, st.knob, core.hour, pool_free, core.Q,
        sv.node_exists, sv.node_cores, sv.node_mem_gib, sv.node_speed, sv.node_idle_w,
        sv.node_max_w, sv.node_sleep_w, buf.site_index, sv.site_budget_w, sv.wan_rtt_ms,
        sv.edge_table, sv.curves is None,
        enc.num_sites, enc.headroom_levels, enc.max_app_size, enc.ref_cores, enc.ref_mem_gib,
        core.size_levels, enc.behaviour_features, core.pred_margin,
        enc.predicted_size_min_frac, *core.edge_bounds,
        buf.pending, buf.cpu, buf.mem, buf.slo, buf.size, buf.k, buf.is_entry, buf.calls,
        buf.here, buf.cloud, buf.other, buf.data_here, buf.data_elsewhere, buf.node_peers,
        buf.svc_samples, buf.pred_cpu, buf.pred_mem, buf.cpu_cv, buf.behaviour_class,
        buf.svc_response, enc.response_features,
        buf.hour, buf.queue, buf.cloud_free, buf.power, buf.throttle, buf.knob, buf.asleep,
        buf.alloc_cpu, buf.alloc_mem, buf.used, edge_obs, edge_mask,
    )
    if enc.slo_guard:
        bs = core.B * core.S
        slo_guard(edge_mask.reshape(bs, -1), buf.svc_response.reshape(bs, -1),
                  sv.node_speed.reshape(bs, -1), enc.nodes, enc.sizes)
    cloud_obs, cloud_mask = observe_cloud_level(core)
    return edge_obs, edge_mask, cloud_obs, cloud_mask
