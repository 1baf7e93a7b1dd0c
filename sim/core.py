"""The batched simulation core: B copies of one scenario stepped at once.

One step is one decision round: every edge agent decides the container at the head of its
site's queue, then the cloud level decides the head of the offload queue. A copy's clock
advances by one tick (`time.step_s`) only in a step that leaves all its queues empty, so an
app's containers are placed at the instant it arrives, and time never passes with work
waiting for a decision that could be made. The PettingZoo environment is this core with B=1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_POOL, EDGE_OFFLOAD, EDGE_PLACE
from hierarchy.observation import CloudEncoder, EdgeEncoder, placement_fits, power_delta_w
from hierarchy.scenario import Scenario, load_scenario
from sim.state import (
    QUEUED_CLOUD,
    QUEUED_SITE,
    REJECTED,
    RUNNING,
    TERM_NAMES,
    SimState,
)
from sim.tick import advance_time
from sim.topology import build_topology
from sim.views import cloud_view, edge_view
from sim.workload import WorkloadGenerator


@dataclass
class StepOutput:
    cost: np.ndarray  # (B,) weighted team cost of this step (reward = -cost)
    terms: np.ndarray  # (B, len(TERM_NAMES)) unweighted cost terms
    truncated: np.ndarray  # (B,) the copy reached the horizon
    advanced: np.ndarray  # (B,) the copy's clock moved this step


class BatchedCore:
    def __init__(self, scenario: Scenario | str, batch_size: int = 1, seed: int | None = None,
                 record_metrics: bool = True) -> None:
        self.scenario = load_scenario(scenario)
        sc = self.scenario
        self.topo = build_topology(sc)
        self.B = batch_size
        self.S = self.topo.num_sites
        self.M = self.topo.nodes_per_site
        self.N = self.topo.num_nodes
        self.K = sc.max_app_size
        self.A = sc.limits.max_apps
        self.Q = sc.limits.site_queue_apps
        # Large enough that offloads never overflow: every queued container at once.
        self.Qc = max(sc.limits.cloud_queue, self.S * self.Q * self.K)
        self.dt_s = sc.time.step_s
        self.horizon_s = sc.time.horizon_s
        self.size_levels = np.asarray(sc.sizing.size_levels, dtype=np.float64)
        self.headroom_levels = np.asarray(sc.sizing.headroom_levels, dtype=np.float64)
        self.record_metrics = record_metrics
        self.generator = WorkloadGenerator(sc, self.S, self.topo.user_rtt_ms,
                                           sc.network.lan_rtt_ms)
        self.edge_encoder = EdgeEncoder(
            num_sites=self.S, nodes=self.M, size_levels=tuple(sc.sizing.size_levels),
            headroom_levels=len(sc.sizing.headroom_levels), max_app_size=self.K,
            ref_cores=self.topo.ref_cores, ref_mem_gib=self.topo.ref_mem_gib,
        )
        self.cloud_encoder = CloudEncoder(
            num_sites=self.S, max_app_size=self.K, ref_cores=self.topo.ref_cores,
            ref_mem_gib=self.topo.ref_mem_gib,
        )
        self.edge_layout = self.edge_encoder.layout
        self.cloud_layout = self.cloud_encoder.layout
        w = sc.reward
        self.weights = np.array([
            w.energy_per_kwh, w.latency_per_slo_hour, w.violation_per_app_hour,
            w.rejection_per_container, w.capping_per_site_hour, w.overshoot_per_wh,
        ])
        # Default knob: the middle level, so an untrained actor starts from a sane setting.
        self.default_knob = len(sc.sizing.headroom_levels) // 2
        self.edge_curves = self.topo.edge_curves
        # The kernel reads every node's curve from a table (a linear curve is exact as one).
        self.curve_table = (
            self.topo.node_curves if self.topo.node_curves is not None
            else np.tile(np.linspace(0.0, 1.0, 11), (self.N, 1))
        )
        self.rng = np.random.default_rng(seed)
        self.st = self._fresh(self.B)
        self._fresh_one = self._fresh(1)
        self.observe()

    # --- lifecycle ---------------------------------------------------------------------------

    def _fresh(self, b: int) -> SimState:
        st = SimState.zeros(b, self.S, self.N, self.A, self.K, self.Q, self.Qc)
        st.knob[:] = self.default_knob
        # An empty platform: every node has been idle long enough to sleep.
        st.asleep[:] = self.topo.node_exists[None, :]
        return st

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self.generator.reset()
        self.st = self._fresh(self.B)
        self.observe()

    def reset_copies(self, done: np.ndarray) -> None:
        """Start new episodes in the copies where `done` (B,) is True (auto-reset)."""
        if done.any():
            self.st.reset_copies(done, self._fresh_one)
            self.observe()

    @property
    def hour(self) -> np.ndarray:
        return (self.scenario.time.start_hour + self.st.t_s / 3600.0) % 24.0

    # --- observations ------------------------------------------------------------------------

    def observe(self) -> None:
        """Build every agent's observation and mask for the current state."""
        self.edge_view = edge_view(self)
        self.edge_obs = self.edge_encoder.encode(self.edge_view)  # (B, S, De)
        self.edge_mask = self.edge_encoder.mask(self.edge_view)  # (B, S, Ae)
        self.cloud_view = cloud_view(self)
        self.cloud_obs = self.cloud_encoder.encode(self.cloud_view)  # (B, Dc)
        self.cloud_mask = self.cloud_encoder.mask(self.cloud_view)  # (B, Ac)

    def global_state(self) -> np.ndarray:
        """(B, D) the centralised critic's view: every agent's observation and the clock."""
        progress = (self.st.t_s / self.horizon_s)[:, None].astype(np.float32)
        return np.concatenate(
            [self.edge_obs.reshape(self.B, -1), self.cloud_obs, progress], axis=-1
        )

    @property
    def state_dim(self) -> int:
        return self.S * self.edge_encoder.spec.dim + self.cloud_encoder.spec.dim + 1

    # --- stepping ----------------------------------------------------------------------------

    def step(self, edge_actions: np.ndarray, cloud_actions: np.ndarray) -> StepOutput:
        """Apply (B, S) edge and (B,) cloud actions, advance clocks, observe."""
        terms = np.zeros((self.B, len(TERM_NAMES)))
        self._apply_edge(np.asarray(edge_actions, dtype=np.int64).reshape(self.B, self.S))
        self._apply_cloud(np.asarray(cloud_actions, dtype=np.int64).reshape(self.B), terms)
        advanced = (self.st.sq_len.sum(axis=1) == 0) & (self.st.cq_len == 0)
        if advanced.any():
            advance_time(self, advanced, terms)
        truncated = self.st.t_s >= self.horizon_s - 1e-9
        self.observe()
        cost = terms @ self.weights
        self.st.term_totals += terms
        self.st.cost_total += cost
        return StepOutput(cost, terms, truncated, advanced)

    def _apply_edge(self, actions: np.ndarray) -> None:
        st = self.st
        b, s = np.nonzero(st.sq_len > 0)
        if b.size == 0:
            return
        app = st.sq[b, s, st.sq_head[b, s]]
        k = st.a_next_k[b, app]
        act = actions[b, s]
        in_range = (act >= 0) & (act < self.edge_layout.n)
        allowed = in_range & (self.edge_mask[b, s, np.clip(act, 0, self.edge_layout.n - 1)] == 1)
        st.invalid_actions += np.bincount(b[~allowed], minlength=self.B)
        kind, node, size, knob = self.edge_layout.decode(np.where(allowed, act, 0))
        # A refused action falls back to offloading: always possible, never unsafe.
        kind = np.where(allowed, kind, EDGE_OFFLOAD)
        st.knob[b, s] = np.where(knob >= 0, knob, st.knob[b, s])

        place = kind == EDGE_PLACE
        if place.any():
            bp, sp, ap, kp = b[place], s[place], app[place], k[place]
            level = self.size_levels[size[place]]
            self._place(bp, ap, kp, sp * self.M + node[place], level)
            st.placed_edge += np.bincount(bp, minlength=self.B)
        off = kind == EDGE_OFFLOAD
        if off.any():
            self._push_cloud(b[off], app[off], k[off])
        # Advance each site's queue; an app leaves it when its last container is decided.
        st.a_next_k[b, app] += 1
        done = st.a_next_k[b, app] >= st.a_size[b, app]
        st.sq_head[b[done], s[done]] = (st.sq_head[b[done], s[done]] + 1) % self.Q
        st.sq_len[b[done], s[done]] -= 1

    def _push_cloud(self, b: np.ndarray, app: np.ndarray, k: np.ndarray) -> None:
        st = self.st
        order = np.argsort(b, kind="stable")
        b, app, k = b[order], app[order], k[order]
        rank = np.arange(b.size) - np.searchsorted(b, b)
        pos = (st.cq_head[b] + st.cq_len[b] + rank) % self.Qc
        st.cq[b, pos] = app * self.K + k
        st.c_status[b, app, k] = QUEUED_CLOUD
        counts = np.bincount(b, minlength=self.B)
        st.cq_len += counts.astype(st.cq_len.dtype)
        st.offloaded += counts

    def _apply_cloud(self, actions: np.ndarray, terms: np.ndarray) -> None:
        st = self.st
        # Only what the cloud observed: offloads pushed by the edge this step wait their turn.
        (b,) = np.nonzero((st.cq_len > 0) & self.cloud_view.pending)
        if b.size == 0:
            return
        flat = st.cq[b, st.cq_head[b]]
        app, k = flat // self.K, flat % self.K
        st.cq_head[b] = (st.cq_head[b] + 1) % self.Qc
        st.cq_len[b] -= 1
        act = actions[b]
        in_range = (act >= 0) & (act < self.cloud_layout.n)
        allowed = in_range & (self.cloud_mask[b, np.clip(act, 0, self.cloud_layout.n - 1)] == 1)
        st.invalid_actions += np.bincount(b[~allowed], minlength=self.B)
        act = np.where(allowed, act, CLOUD_POOL)
        cpu, mem = st.c_req_cpu[b, app, k], st.c_req_mem[b, app, k]

        # Another site: best fit among its nodes, re-checked now (the edge may have moved).
        node = np.full(b.size, -1)
        to_site = act >= CLOUD_FIRST_SITE
        if to_site.any():
            site = act[to_site] - CLOUD_FIRST_SITE
            node[to_site] = self._best_fit_in_site(b[to_site], site, cpu[to_site], mem[to_site])
        # The pool: wanted, or the fallback when the chosen site no longer fits.
        to_pool = (act == CLOUD_POOL) | (to_site & (node < 0))
        if to_pool.any():
            node[to_pool] = self._best_fit_in_pool(b[to_pool], cpu[to_pool], mem[to_pool])
        ok = node >= 0
        if ok.any():
            self._place(b[ok], app[ok], k[ok], node[ok], np.ones(int(ok.sum())))
            in_pool = self.topo.node_site[node[ok]] == self.S
            st.placed_cloud_pool += np.bincount(b[ok][in_pool], minlength=self.B)
            st.placed_by_cloud_at_edge += np.bincount(b[ok][~in_pool], minlength=self.B)
        rej = ~ok
        if rej.any():
            st.c_status[b[rej], app[rej], k[rej]] = REJECTED
            counts = np.bincount(b[rej], minlength=self.B)
            st.rejected += counts
            terms[:, TERM_NAMES.index("rejections")] += counts

    def _place(self, b: np.ndarray, app: np.ndarray, k: np.ndarray, node: np.ndarray,
               level: np.ndarray) -> None:
        """Start containers (b, app, k) on global nodes `node` at `level` x request."""
        st, topo = self.st, self.topo
        cpu = st.c_req_cpu[b, app, k] * level
        mem = st.c_req_mem[b, app, k] * level
        st.c_status[b, app, k] = RUNNING
        st.c_node[b, app, k] = node
        st.c_loc[b, app, k] = topo.node_site[node]
        st.c_alloc_cpu[b, app, k] = cpu
        st.c_alloc_mem[b, app, k] = mem
        st.c_peak_cpu[b, app, k] = 0.0
        st.c_peak_mem[b, app, k] = 0.0
        st.c_age_s[b, app, k] = 0.0
        # The site's power demand counts the new load at once, so the guard sees it for the
        # next decision of the same instant (usage is measured only at the next tick).
        curves = None if topo.node_curves is None else topo.node_curves[node]
        delta = power_delta_w(
            st.asleep[b, node], st.node_used_cpu[b, node] + st.node_fresh_cpu[b, node],
            topo.node_cores[node], topo.node_idle_w[node], topo.node_max_w[node],
            topo.node_sleep_w[node], curves, cpu[:, None],
        )[:, 0]
        np.add.at(st.loc_power_w, (b, topo.node_site[node]), delta)
        np.add.at(st.node_alloc_cpu, (b, node), cpu)
        np.add.at(st.node_alloc_mem, (b, node), mem)
        np.add.at(st.node_fresh_cpu, (b, node), cpu)
        waking = st.asleep[b, node]
        st.wake_left_s[b, node] = np.where(waking, topo.node_wake_s[node], st.wake_left_s[b, node])
        st.asleep[b, node] = False
        st.idle_s[b, node] = 0.0
        st.c_ready_s[b, app, k] = self.scenario.sizing.startup_s + st.wake_left_s[b, node]

    def _node_fit(self, b: np.ndarray, nodes: np.ndarray, site_of: np.ndarray,
                  cpu: np.ndarray, mem: np.ndarray, guard_power: bool) -> np.ndarray:
        """Best-fit node (global index) among `nodes` (n, C) for each request, -1 if none."""
        st, topo = self.st, self.topo
        curves = None if topo.node_curves is None else topo.node_curves[nodes]
        used = st.node_used_cpu[b[:, None], nodes] + st.node_fresh_cpu[b[:, None], nodes]
        budget = np.where(site_of < self.S, topo.site_budget_w[np.minimum(site_of, self.S - 1)],
                          np.inf)
        ok = placement_fits(
            topo.node_exists[nodes], topo.node_cores[nodes], topo.node_mem_gib[nodes],
            st.node_alloc_cpu[b[:, None], nodes], st.node_alloc_mem[b[:, None], nodes], used,
            st.asleep[b[:, None], nodes], topo.node_idle_w[nodes], topo.node_max_w[nodes],
            topo.node_sleep_w[nodes], curves,
            st.loc_power_w[b, site_of] if guard_power else np.zeros(b.size), budget,
            cpu[:, None, None], mem[:, None, None],
        )[..., 0]
        # Best fit: the most allocated node that fits keeps others empty (and asleep).
        fill = st.node_alloc_cpu[b[:, None], nodes] / topo.node_cores[nodes]
        score = np.where(ok, fill, -1.0)
        best = np.argmax(score, axis=1)
        found = ok[np.arange(b.size), best]
        return np.where(found, nodes[np.arange(b.size), best], -1)

    def _best_fit_in_site(self, b: np.ndarray, site: np.ndarray, cpu: np.ndarray,
                          mem: np.ndarray) -> np.ndarray:
        nodes = site[:, None] * self.M + np.arange(self.M)[None, :]
        return self._node_fit(b, nodes, site, cpu, mem, guard_power=True)

    def _best_fit_in_pool(self, b: np.ndarray, cpu: np.ndarray, mem: np.ndarray) -> np.ndarray:
        first = self.S * self.M
        nodes = np.broadcast_to(np.arange(first, self.N), (b.size, self.N - first))
        return self._node_fit(b, nodes, np.full(b.size, self.S), cpu, mem, guard_power=False)

    # --- accounting --------------------------------------------------------------------------

    def container_counts(self) -> dict[str, np.ndarray]:
        """Per copy: how many containers are in each state (for the accounting invariant)."""
        st = self.st
        return {
            "queued_site": _count(st.c_status == QUEUED_SITE),
            "queued_cloud": _count(st.c_status == QUEUED_CLOUD),
            "running": _count(st.c_status == RUNNING),
            "rejected": st.rejected.copy(),
            "finished": st.finished.copy(),
            "arrived": st.arrived.copy(),
        }


def _count(mask: np.ndarray) -> np.ndarray:
    return mask.reshape(mask.shape[0], -1).sum(axis=1).astype(np.float64)

