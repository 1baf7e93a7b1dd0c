"""Fill the shared observation views (hierarchy.observation) from the simulator's state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierarchy.observation import CloudView, EdgeView, placement_fits
from sim.state import RUNNING

if TYPE_CHECKING:
    from sim.core import BatchedCore


def _edge_nodes(core: BatchedCore, arr: np.ndarray) -> np.ndarray:
    """(B, N) node array -> (B, S, M) for the edge sites."""
    return arr[:, : core.S * core.M].reshape(core.B, core.S, core.M)


def _static_edge(core: BatchedCore, arr: np.ndarray) -> np.ndarray:
    return np.broadcast_to(arr[: core.S * core.M].reshape(core.S, core.M), (core.B, core.S, core.M))


def _neighbours(parents: np.ndarray, k: np.ndarray, parent_of_k: np.ndarray) -> np.ndarray:
    """(..., K) bool: containers that call, or are called by, container k of the same app."""
    idx = np.arange(parents.shape[-1])
    return (parents == k[..., None]) | (idx == parent_of_k[..., None])


def edge_view(core: BatchedCore) -> EdgeView:
    st, topo = core.st, core.topo
    b = np.arange(core.B)[:, None]
    s = np.arange(core.S)[None, :]
    pending = st.sq_len > 0
    app = np.take_along_axis(st.sq, st.sq_head[..., None], axis=2)[..., 0]
    k = np.clip(np.take_along_axis(st.a_next_k, app, axis=1), 0, core.K - 1)
    parents = st.c_parent[b, app]  # (B, S, K)
    nbr = _neighbours(parents, k, st.c_parent[b, app, k])
    loc = st.c_loc[b, app]
    placed = nbr & (st.c_status[b, app] == RUNNING)
    here = placed & (loc == s[..., None])
    in_cloud = placed & (loc == core.S)
    local_node = st.c_node[b, app] - s[..., None] * core.M
    node_peers = (here[..., None] & (local_node[..., None] == np.arange(core.M))).sum(axis=2)
    data_k = st.a_data_k[b, app]
    data_site = st.a_data_site[b, app]
    reads_data = pending & (data_k == k)
    pool = slice(core.S * core.M, core.N)
    pool_cores = topo.node_cores[pool].sum()
    pool_free = 1.0 - st.node_alloc_cpu[:, pool].sum(axis=1) / max(pool_cores, 1e-9)
    curves = core.edge_curves
    f = lambda a: np.where(pending, a, 0)  # noqa: E731
    return EdgeView(
        hour=np.broadcast_to(core.hour[:, None], (core.B, core.S)),
        site_index=np.broadcast_to(s, (core.B, core.S)),
        site_power_w=st.loc_power_w[:, : core.S],
        site_budget_w=np.broadcast_to(topo.site_budget_w, (core.B, core.S)),
        throttle=st.throttle[:, : core.S],
        queue_fill=st.sq_len / core.Q,
        knob=st.knob,
        wan_rtt_ms=np.broadcast_to(topo.rtt_ms[: core.S, core.S], (core.B, core.S)),
        cloud_free_frac=np.broadcast_to(pool_free[:, None], (core.B, core.S)),
        pending=pending,
        cpu_req=f(st.c_req_cpu[b, app, k]),
        mem_req=f(st.c_req_mem[b, app, k]),
        slo_ms=f(st.a_slo_ms[b, app]),
        app_size=f(st.a_size[b, app]),
        k_index=f(k),
        is_entry=f(k == 0),
        calls=f(st.c_invocations[b, app, k]),
        peers_here=f(here.sum(-1)),
        peers_cloud=f(in_cloud.sum(-1)),
        peers_other=f((placed & ~here & ~in_cloud).sum(-1)),
        data_here=reads_data & (data_site == s),
        data_elsewhere=reads_data & (data_site != s),
        node_exists=_static_edge(core, topo.node_exists),
        node_asleep=_edge_nodes(core, st.asleep),
        node_cores=_static_edge(core, topo.node_cores),
        node_mem_gib=_static_edge(core, topo.node_mem_gib),
        node_alloc_cpu=_edge_nodes(core, st.node_alloc_cpu),
        node_alloc_mem=_edge_nodes(core, st.node_alloc_mem),
        node_used_cpu=_edge_nodes(core, st.node_used_cpu + st.node_fresh_cpu),
        node_peers=np.where(pending[..., None], node_peers, 0),
        node_speed=_static_edge(core, topo.node_speed),
        node_idle_w=_static_edge(core, topo.node_idle_w),
        node_max_w=_static_edge(core, topo.node_max_w),
        node_sleep_w=_static_edge(core, topo.node_sleep_w),
        curves=curves,
    )


def cloud_view(core: BatchedCore) -> CloudView:
    st, topo = core.st, core.topo
    bb = np.arange(core.B)
    pending = st.cq_len > 0
    flat = st.cq[bb, st.cq_head]
    app, k = flat // core.K, flat % core.K
    cpu = np.where(pending, st.c_req_cpu[bb, app, k], 0.0)
    mem = np.where(pending, st.c_req_mem[bb, app, k], 0.0)
    home = st.a_home[bb, app]
    nbr = _neighbours(st.c_parent[bb, app], k, st.c_parent[bb, app, k])
    placed = nbr & (st.c_status[bb, app] == RUNNING)
    loc = st.c_loc[bb, app]
    peers_at = (placed[..., None] & (loc[..., None] == np.arange(core.S + 1))).sum(axis=1)

    edge = slice(0, core.S * core.M)
    cores = topo.node_cores[edge].reshape(core.S, core.M)
    mems = topo.node_mem_gib[edge].reshape(core.S, core.M)
    alloc_cpu = _edge_nodes(core, st.node_alloc_cpu)
    alloc_mem = _edge_nodes(core, st.node_alloc_mem)
    curves = core.edge_curves
    budget = topo.site_budget_w
    site_fits = placement_fits(
        _static_edge(core, topo.node_exists), cores, mems, alloc_cpu, alloc_mem,
        _edge_nodes(core, st.node_used_cpu + st.node_fresh_cpu), _edge_nodes(core, st.asleep),
        _static_edge(core, topo.node_idle_w), _static_edge(core, topo.node_max_w),
        _static_edge(core, topo.node_sleep_w), curves, st.loc_power_w[:, : core.S],
        np.broadcast_to(budget, (core.B, core.S)),
        cpu[:, None, None, None], mem[:, None, None, None],
    )[..., 0].any(axis=-1) & pending[:, None]

    pool = slice(core.S * core.M, core.N)
    pool_cores, pool_mem = topo.node_cores[pool], topo.node_mem_gib[pool]
    pool_fits = (
        (st.node_alloc_cpu[:, pool] + cpu[:, None] <= pool_cores * (1 + 1e-9))
        & (st.node_alloc_mem[:, pool] + mem[:, None] <= pool_mem * (1 + 1e-9))
    ).any(axis=1) & pending
    user_rtt = topo.user_rtt_ms[home]  # (B, S+1)
    return CloudView(
        hour=core.hour,
        queue_fill=st.cq_len / core.Qc,
        pending=pending,
        cpu_req=cpu,
        mem_req=mem,
        slo_ms=np.where(pending, st.a_slo_ms[bb, app], 0.0),
        app_size=np.where(pending, st.a_size[bb, app], 0),
        is_entry=pending & (k == 0),
        home=home,
        data_site=np.where(st.a_data_k[bb, app] >= 0, st.a_data_site[bb, app], -1),
        site_free_cpu_frac=1.0 - alloc_cpu.sum(-1) / cores.sum(-1),
        site_free_mem_frac=1.0 - alloc_mem.sum(-1) / mems.sum(-1),
        site_power_headroom=(budget - st.loc_power_w[:, : core.S]) / budget,
        site_peers=np.where(pending[:, None], peers_at[:, : core.S], 0),
        site_rtt_from_home_ms=user_rtt[:, : core.S],
        site_fits=site_fits,
        pool_free_cpu_frac=1.0 - st.node_alloc_cpu[:, pool].sum(axis=1) / pool_cores.sum(),
        pool_free_mem_frac=1.0 - st.node_alloc_mem[:, pool].sum(axis=1) / pool_mem.sum(),
        pool_peers=np.where(pending, peers_at[:, core.S], 0),
        pool_rtt_from_home_ms=user_rtt[:, core.S],
        pool_fits=pool_fits,
    )
