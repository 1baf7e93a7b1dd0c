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

from hierarchy.features.online import SAMPLE_EVERY_S, default_online_classes
from hierarchy.observation import CloudEncoder, CloudView, EdgeEncoder, EdgeView, spec_bounds
from hierarchy.scenario import Scenario, load_scenario
from sim.arrivals import CopyPools
from sim.catalogue import CatalogueMaker
from sim.decisions import apply_decisions
from sim.shaping import committed_idle_kwh, committed_violation_cost
from sim.state import QUEUED_CLOUD, QUEUED_SITE, RUNNING, TERM_NAMES, SimState
from sim.streams import copy_key
from sim.tick import advance_time
from sim.topology import build_topology
from sim.views import (
    ObservationBuffers,
    StaticViews,
    cloud_view_snapshot,
    edge_view,
    observe_all,
)
from sim.workload import WorkloadGenerator


@dataclass
class StepOutput:
    cost: np.ndarray  # (B,) weighted team cost of this step (reward = -cost)
    terms: np.ndarray  # (B, len(TERM_NAMES)) unweighted cost terms
    site_cost: np.ndarray  # (B, S + 1) the cost split by where it arose (cloud last); sums to cost
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
            **EdgeEncoder.scenario_options(sc),
        )
        margin = sc.sizing.predicted_size_margin
        self.pred_margin = -1.0 if margin is None else float(margin)
        self.online_classes = default_online_classes()
        self.stats_stride = max(1, round(SAMPLE_EVERY_S / self.dt_s))
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
        self._hour: np.ndarray | None = None
        # Set keep_tick_load to have every tick leave a copy of the apps' load states (B, A)
        # as its kernel used them in tick_load_z (for recorders; off by default).
        self.keep_tick_load = False
        self.tick_load_z: np.ndarray | None = None
        self.edge_obs_dim = self.edge_encoder.spec.dim
        self.edge_bounds = spec_bounds(self.edge_encoder)
        self.cloud_obs_dim = self.cloud_encoder.spec.dim
        self.cloud_bounds = spec_bounds(self.cloud_encoder)
        self.static_views = StaticViews(self)
        self.obs_buffers = ObservationBuffers(self)
        self.catalogue = CatalogueMaker(sc, self.generator)
        self._set_trace_tables()
        arrivals = sc.workload.arrivals
        peak = (arrivals.burst_factor * (1 + arrivals.daily_amplitude)
                if self.arrival_mod.size == 0 else float(self.arrival_mod.max()))
        busiest_tick = self.topo.site_apps_per_hour.sum() * peak * self.dt_s / 3600.0
        self.pools = CopyPools(self.catalogue, self.B, busiest_tick)
        self._fresh_one = self._fresh(1)
        self.reset(seed)

    def _set_trace_tables(self) -> None:
        """The tables the kernels replay from a `workload.trace` (empty ones without)."""
        tab = self.catalogue.tables
        trace = self.scenario.workload.trace
        if tab is None:
            self.usage_tables = (np.zeros((1, 1)), np.zeros((1, 1)), np.ones(1, np.int64),
                                 1.0, 1.0)
            self.arrival_mod, self.arrival_mod_s = np.zeros(0), 1.0
            return
        self.usage_tables = (tab.cpu_frac, tab.mem_frac, tab.length, tab.step_s,
                             trace.time_scale)
        self.arrival_mod = tab.arrival_mod
        # A bin of the arrivals trace lasts arrival_bin_s / time_scale simulated seconds.
        self.arrival_mod_s = trace.arrival_bin_s / trace.time_scale

    # --- lifecycle ---------------------------------------------------------------------------

    def _fresh(self, b: int) -> SimState:
        st = SimState.zeros(b, self.S, self.N, self.A, self.K, self.Q, self.Qc,
                            self.catalogue.services)
        st.knob[:] = self.default_knob
        # An empty platform: every node has been idle long enough to sleep.
        st.asleep[:] = self.topo.node_exists[None, :]
        return st

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode in every copy.

        With a seed, copy c's episodes restart from that seed's first; without one, each copy
        moves on to its next episode (a fresh seed is drawn the first time). A copy's
        workload depends only on (seed, copy, episode), never on the other copies.
        """
        if seed is not None or not hasattr(self, "entropy"):
            self.entropy = np.random.SeedSequence(seed).entropy
            episodes = np.zeros(self.B, dtype=np.int64)
        else:
            episodes = self.st.episode + 1
        self.st = self._fresh(self.B)
        self.st.episode[:] = episodes
        self._start_episodes(np.ones(self.B, dtype=bool))

    def reset_copies(self, done: np.ndarray) -> None:
        """Start new episodes in the copies where `done` (B,) is True (auto-reset)."""
        if done.any():
            self.st.reset_copies(done, self._fresh_one)
            self._start_episodes(done)

    def _start_episodes(self, which: np.ndarray) -> None:
        for copy in np.nonzero(which)[0]:
            copy = int(copy)
            episode = int(self.st.episode[copy])
            self.st.key[copy] = copy_key(self.entropy, copy, episode)
            self.pools.start_episode(copy, self.entropy, episode)
        self._hour = None
        self.observe()

    @property
    def hour(self) -> np.ndarray:
        """(B,) time of day, h."""
        if self._hour is None:
            self._hour = (self.scenario.time.start_hour + self.st.t_s / 3600.0) % 24.0
        return self._hour

    def set_hour(self, hour: np.ndarray) -> None:
        self._hour = hour

    # --- observations ------------------------------------------------------------------------

    def observe(self) -> None:
        """Build every agent's observation and mask for the current state.

        edge_obs (B, S, De) float32, edge_mask (B, S, Ae) int8, cloud_obs (B, Dc) float32,
        cloud_mask (B, Ac) int8; the views behind them are built on demand.
        """
        self.edge_obs, self.edge_mask, self.cloud_obs, self.cloud_mask = observe_all(self)
        # The cloud level acts only on what it saw: a copy, since the buffers are reused.
        self.cloud_observed = self.obs_buffers.cloud_fields["pending"].copy()
        self._edge_view: EdgeView | None = None
        self._cloud_view: CloudView | None = None

    @property
    def edge_view(self) -> EdgeView:
        """What every edge agent sees now, (B, S) leading shape (a snapshot)."""
        if self._edge_view is None:
            self._edge_view = edge_view(self)
        return self._edge_view

    @property
    def cloud_view(self) -> CloudView:
        """What the cloud level sees now, (B,) leading shape (a snapshot)."""
        if self._cloud_view is None:
            self._cloud_view = cloud_view_snapshot(self)
        return self._cloud_view

    def global_state(self) -> np.ndarray:
        """(B, D) the centralised critic's view: every agent's observation and the clock."""
        progress = (self.st.t_s / self.horizon_s)[:, None].astype(np.float32)
        return np.concatenate(
            [self.edge_obs.reshape(self.B, -1), self.cloud_obs, progress], axis=-1
        )

    def energy_cost_rate(self) -> np.ndarray:
        """(B, S + 1) cost per hour of each location's power draw now (sites, then the cloud)."""
        return self.st.loc_power_w * self.topo.loc_pue * (self.weights[0] / 1000.0)

    def committed_idle_cost(self) -> np.ndarray:
        """(B, S + 1) cost of the idle draw each location's awake nodes are committed to until
        their containers leave and they may sleep, to the episode's end at most (sim.shaping:
        training's shaping potential; it reads lifetimes no agent observes)."""
        st, topo = self.st, self.topo
        out = np.zeros((self.B, self.S + 1))
        committed_idle_kwh(
            st.c_status, st.c_node, st.a_active, st.a_size, st.a_life_s, st.asleep, st.idle_s,
            topo.node_exists, topo.node_site, topo.node_idle_w, topo.node_sleep_w, topo.loc_pue,
            self.scenario.sizing.sleep_after_s, np.maximum(self.horizon_s - st.t_s, 0.0), out,
        )
        return out * self.weights[0]

    def committed_violation_cost(self) -> np.ndarray:
        """(B, S + 1) cost of the SLO violations the apps now violating are committed to if
        they go on until they leave, by home site (sim.shaping: a training potential; it reads
        lifetimes no agent observes)."""
        st = self.st
        out = np.zeros((self.B, self.S + 1))
        committed_violation_cost(
            st.a_active, st.a_home, st.a_life_s, st.a_over_slo,
            np.maximum(self.horizon_s - st.t_s, 0.0),
            self.weights[TERM_NAMES.index("violation_app_h")],
            self.weights[TERM_NAMES.index("latency_over_slo")], out,
        )
        return out

    @property
    def state_dim(self) -> int:
        return self.S * self.edge_encoder.spec.dim + self.cloud_encoder.spec.dim + 1

    # --- stepping ----------------------------------------------------------------------------

    def step(self, edge_actions: np.ndarray, cloud_actions: np.ndarray) -> StepOutput:
        """Apply (B, S) edge and (B,) cloud actions, advance clocks, observe."""
        st, topo = self.st, self.topo
        loc_terms = np.zeros((self.B, self.S + 1, len(TERM_NAMES)))
        apply_decisions(
            np.asarray(edge_actions, dtype=np.int64).reshape(self.B, self.S), self.edge_mask,
            np.asarray(cloud_actions, dtype=np.int64).reshape(self.B), self.cloud_mask,
            self.cloud_observed, self.M, self.size_levels, self.pred_margin,
            self.edge_encoder.predicted_size_min_frac, self.obs_buffers.svc_samples,
            self.obs_buffers.pred_cpu, self.obs_buffers.pred_mem,
            self.scenario.sizing.startup_s,
            st.sq, st.sq_head, st.sq_len, st.a_next_k, st.a_size, st.cq, st.cq_head, st.cq_len,
            st.knob, st.c_status, st.c_node, st.c_loc, st.c_req_cpu, st.c_req_mem,
            st.c_alloc_cpu, st.c_alloc_mem, st.c_peak_cpu, st.c_peak_mem, st.c_age_s,
            st.c_ready_s, st.asleep, st.idle_s, st.wake_left_s, st.node_alloc_cpu,
            st.node_alloc_mem, st.node_used_cpu, st.node_fresh_cpu, st.loc_power_w,
            topo.node_exists, topo.node_site, topo.node_cores, topo.node_mem_gib,
            topo.node_idle_w, topo.node_max_w, topo.node_sleep_w, topo.node_wake_s,
            self.curve_table, topo.node_curves is None, topo.site_budget_w,
            st.placed_edge, st.offloaded, st.placed_cloud_pool, st.placed_by_cloud_at_edge,
            st.rejected, st.invalid_actions, loc_terms,
        )
        # A copy whose episode is over holds still until it is reset.
        running = st.t_s < self.horizon_s - 1e-9
        advanced = (st.sq_len.sum(axis=1) == 0) & (st.cq_len == 0) & running
        if advanced.any():
            advance_time(self, advanced, loc_terms)
        truncated = st.t_s >= self.horizon_s - 1e-9
        self.observe()
        terms = loc_terms.sum(axis=1)
        cost = terms @ self.weights
        st.term_totals += terms
        st.cost_total += cost
        return StepOutput(cost, terms, loc_terms @ self.weights, truncated, advanced)

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

