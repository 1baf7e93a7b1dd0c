"""The mutable state of B simulated copies: plain NumPy arrays with a leading batch axis."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from hierarchy.features.online import N_STATS

# Container slot status. A slot is REJECTED from its rejection until its app departs; the
# per-copy counters (arrived, rejected, finished) account for every container exactly once.
EMPTY, QUEUED_SITE, QUEUED_CLOUD, RUNNING, REJECTED = 0, 1, 2, 3, 4

# Reward terms, in the order of `StepTerms` columns.
TERM_NAMES = (
    "energy_kwh", "latency_over_slo", "violation_app_h", "rejections", "capped_site_h",
    "overshoot_wh",
)
RESPONSE_BINS = np.concatenate([[0.0], np.logspace(0, 5, 121)])  # ms, log-spaced 1 ms..100 s


@dataclass
class SimState:
    # time, random streams and site-level state
    t_s: np.ndarray  # (B,) seconds since reset
    tick: np.ndarray  # (B,) ticks since reset (the counter of the copy's random streams)
    key: np.ndarray  # (B,) uint64 key of the copy's random streams this episode
    episode: np.ndarray  # (B,) episodes this copy has started since the seed was set
    knob: np.ndarray  # (B, S) resize-knob level per site
    burst_on: np.ndarray  # (B, S)
    throttle: np.ndarray  # (B, S+1) speed factor from power capping; cloud always 1
    loc_power_w: np.ndarray  # (B, S+1) power demand before capping
    # nodes (B, N)
    asleep: np.ndarray
    idle_s: np.ndarray
    wake_left_s: np.ndarray
    node_alloc_cpu: np.ndarray
    node_alloc_mem: np.ndarray
    node_used_cpu: np.ndarray  # measured at the last tick
    node_fresh_cpu: np.ndarray  # allocated since the last tick (counts for the guard)
    node_energy_j: np.ndarray
    # apps (B, A)
    a_active: np.ndarray
    a_home: np.ndarray
    a_size: np.ndarray
    a_next_k: np.ndarray  # next container of the app the site still has to decide
    a_slo_ms: np.ndarray
    a_rate_rps: np.ndarray
    a_life_s: np.ndarray
    a_z: np.ndarray  # AR(1) load state shared by the app's containers
    a_data_k: np.ndarray
    a_data_site: np.ndarray
    a_service: np.ndarray  # the catalogue service the app is an instance of
    # (response - SLO) / SLO of a serving app at the last tick, > 0 while it violates its SLO
    # (capped as the latency term is); 0 otherwise. Read by training's shaping only.
    a_over_slo: np.ndarray
    # how long the app has violated its SLO without a break, s; times it was moved
    # (sizing.migrate_after_s, sim/migration.py)
    a_violating_s: np.ndarray
    a_moves: np.ndarray
    # what has been observed of each (service, container position): (B, C, K, N_STATS)
    svc_stats: np.ndarray
    # containers (B, A, K)
    c_status: np.ndarray
    c_node: np.ndarray
    c_loc: np.ndarray
    c_parent: np.ndarray
    c_calls: np.ndarray
    c_invocations: np.ndarray
    c_bytes: np.ndarray
    c_work_ms: np.ndarray
    c_req_cpu: np.ndarray
    c_req_mem: np.ndarray
    c_alloc_cpu: np.ndarray
    c_alloc_mem: np.ndarray
    c_level: np.ndarray
    c_sigma: np.ndarray
    c_amp: np.ndarray
    c_peak_h: np.ndarray
    c_mem_level: np.ndarray
    c_mem_growth_h: np.ndarray
    c_demand_cpu: np.ndarray
    c_mem_used: np.ndarray
    c_peak_cpu: np.ndarray
    c_peak_mem: np.ndarray
    c_ready_s: np.ndarray
    c_age_s: np.ndarray
    c_series: np.ndarray  # usage series the container replays, -1: the usage model
    c_phase_s: np.ndarray  # where its replay started, trace s
    # queues
    sq: np.ndarray  # (B, S, Q) app slots waiting at each site
    sq_head: np.ndarray  # (B, S)
    sq_len: np.ndarray
    cq: np.ndarray  # (B, Qc) containers (a*K + k) waiting at the cloud level
    cq_head: np.ndarray  # (B,)
    cq_len: np.ndarray
    # counters (B,)
    arrived: np.ndarray
    rejected: np.ndarray
    finished: np.ndarray
    placed_edge: np.ndarray
    offloaded: np.ndarray
    placed_cloud_pool: np.ndarray
    placed_by_cloud_at_edge: np.ndarray
    invalid_actions: np.ndarray
    oom_restarts: np.ndarray
    migrations: np.ndarray  # apps moved off a slow node (their containers count again above)
    # metrics accumulated over the episode (B, ...)
    wan_bytes: np.ndarray
    requests: np.ndarray
    requests_violated: np.ndarray
    response_ms_sum: np.ndarray
    response_hist: np.ndarray  # (B, bins) requests per response bin
    capped_site_s: np.ndarray  # (B, S)
    overshoot_j: np.ndarray  # (B, S)
    used_core_s: np.ndarray  # edge core-seconds used
    edge_core_s: np.ndarray  # edge core-seconds available
    term_totals: np.ndarray  # (B, len(TERM_NAMES)) cost terms summed over the episode
    cost_total: np.ndarray  # (B,) weighted team cost summed over the episode

    @classmethod
    def zeros(cls, b: int, s: int, n: int, a: int, k: int, q: int, qc: int, services: int
              ) -> SimState:
        f8, i4, i1 = np.float64, np.int32, np.int8
        shapes = {
            "t_s": ((b,), f8), "tick": ((b,), np.int64), "key": ((b,), np.uint64),
            "episode": ((b,), np.int64), "knob": ((b, s), i4), "burst_on": ((b, s), bool),
            "throttle": ((b, s + 1), f8), "loc_power_w": ((b, s + 1), f8),
            "sq": ((b, s, q), i4), "sq_head": ((b, s), i4), "sq_len": ((b, s), i4),
            "cq": ((b, qc), i4), "cq_head": ((b,), i4), "cq_len": ((b,), i4),
            "response_hist": ((b, len(RESPONSE_BINS)), f8),
            "capped_site_s": ((b, s), f8), "overshoot_j": ((b, s), f8),
            "term_totals": ((b, len(TERM_NAMES)), f8),
            "svc_stats": ((b, services, k, N_STATS), f8),
        }
        values = {}
        for f in fields(cls):
            name = f.name
            if name in shapes:
                shape, dtype = shapes[name]
            elif name.startswith("c_"):
                shape = (b, a, k)
                dtype = i1 if name in ("c_status", "c_parent") else (
                    i4 if name in ("c_node", "c_loc", "c_series") else f8)
            elif name.startswith("a_"):
                shape = (b, a)
                dtype = bool if name == "a_active" else (
                    i4 if name in ("a_home", "a_size", "a_next_k", "a_data_k", "a_data_site",
                                   "a_service")
                    else f8)
            elif name in ("asleep",):
                shape, dtype = (b, n), bool
            elif name.startswith(("node_", "idle_", "wake_")):
                shape, dtype = (b, n), f8
            else:
                shape, dtype = (b,), f8
            values[name] = np.zeros(shape, dtype=dtype)
        st = cls(**values)
        st.throttle[:] = 1.0
        st.c_node[:] = -1
        st.c_loc[:] = -1
        st.c_parent[:] = -1
        st.c_series[:] = -1
        return st

    def reset_copies(self, done: np.ndarray, fresh: SimState) -> None:
        """Put the copies where `done` is True back to `fresh` (a one-copy state); their
        episode counters move on (the caller gives them new stream keys)."""
        episode = self.episode.copy()
        for f in fields(self):
            getattr(self, f.name)[done] = getattr(fresh, f.name)[0]
        self.episode[:] = np.where(done, episode + 1, episode)
