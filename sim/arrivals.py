"""New apps arrive at their home sites' queues (or are rejected when nothing can hold them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hierarchy.jit import compiled
from sim.catalogue import CatalogueMaker, ServiceCatalogue
from sim.state import EMPTY, QUEUED_SITE, TERM_NAMES
from sim.streams import copy_seed_sequence

if TYPE_CHECKING:
    from sim.core import BatchedCore

T_REJECTION = TERM_NAMES.index("rejections")


class CopyPools:
    """Apps drawn ahead for each copy by that copy's own generator (one per episode).

    Each episode of a copy first draws its service catalogue (sim.catalogue), then apps as
    instances of those services. So a copy's apps depend only on (seed, copy, episode):
    never on the other copies.
    """

    def __init__(self, maker: CatalogueMaker, batch: int, max_per_tick: float) -> None:
        self.maker = maker
        # Room for the busiest tick by a wide margin (the Poisson tail beyond 4x is nil).
        self.size = max(256, int(4 * max_per_tick) + 64)
        rng = np.random.default_rng(0)
        shape_of = maker.instances(maker.draw(rng), rng, 1)
        self.fields = {
            name: np.zeros((batch, self.size, *arr.shape[1:]), dtype=arr.dtype)
            for name, arr in vars(shape_of).items()
        }
        self.cursor = np.zeros(batch, dtype=np.int64)
        self.rngs: list[np.random.Generator | None] = [None] * batch
        self.catalogues: list[ServiceCatalogue | None] = [None] * batch

    def start_episode(self, copy: int, entropy: int, episode: int) -> None:
        self.rngs[copy] = np.random.default_rng(copy_seed_sequence(entropy, copy, episode, 1))
        self.catalogues[copy] = self.maker.draw(self.rngs[copy])
        self._refill(copy)

    def _refill(self, copy: int) -> None:
        apps = self.maker.instances(self.catalogues[copy], self.rngs[copy], self.size)
        for name, arr in self.fields.items():
            arr[copy] = getattr(apps, name)
        self.cursor[copy] = 0

    def ensure(self, counts: np.ndarray) -> None:
        """Make room for this tick's arrivals, `counts` (B, S), in every copy's pool."""
        need = counts.sum(axis=1)
        for copy in np.nonzero(self.cursor + need > self.size)[0]:
            if need[copy] > self.size:
                raise RuntimeError(f"{need[copy]} arrivals in one tick exceed the app pool "
                                   f"({self.size}); lower time.step_s or the arrival rate")
            self._refill(int(copy))


def admit_arrivals(core: BatchedCore, counts: np.ndarray, terms: np.ndarray) -> None:
    """Admit this tick's arrivals, `counts` (B, S) apps, in (copy, site) order."""
    st, pools = core.st, core.pools
    if not counts.any():
        return
    pools.ensure(counts)
    f = pools.fields
    admit_kernel(
        counts, pools.cursor, f["size"], f["parent"], f["calls"], f["invocations"],
        f["bytes_per_call"], f["work_ms"], f["cpu_req"], f["mem_req"], f["level"], f["sigma"],
        f["amp"], f["peak_h"], f["mem_level"], f["mem_growth_h"], f["data_k"],
        f["lifetime_s"], f["slo_ms"], f["slo_factor"], f["rate_rps"], f["z0"],
        f["service"], f["series"], f["phase_s"],
        core.generator.user_rtt_home,
        st.a_active, st.a_home, st.a_size, st.a_next_k, st.a_slo_ms, st.a_rate_rps,
        st.a_life_s, st.a_z, st.a_data_k, st.a_data_site, st.a_service, st.c_series,
        st.c_phase_s,
        st.c_status, st.c_node, st.c_loc, st.c_parent, st.c_calls, st.c_invocations,
        st.c_bytes, st.c_work_ms, st.c_req_cpu, st.c_req_mem, st.c_level, st.c_sigma,
        st.c_amp, st.c_peak_h, st.c_mem_level, st.c_mem_growth_h, st.c_alloc_cpu,
        st.c_alloc_mem, st.c_demand_cpu, st.c_mem_used, st.c_peak_cpu, st.c_peak_mem,
        st.c_ready_s, st.c_age_s,
        st.sq, st.sq_head, st.sq_len, st.arrived, st.rejected, terms,
    )


@compiled
def admit_kernel(
    counts, cursor, p_size, p_parent, p_calls, p_inv, p_bytes, p_work, p_cpu, p_mem, p_level,
    p_sigma, p_amp, p_peak_h, p_mem_level, p_mem_growth, p_data_k, p_life, p_slo, p_slo_factor,
    p_rate, p_z0, p_service, p_series, p_phase, user_rtt_home,
    a_active, a_home, a_size, a_next_k, a_slo, a_rate, a_life, a_z, a_data_k, a_data_site,
    a_service, c_series, c_phase,
    c_status, c_node, c_loc, c_parent, c_calls, c_inv, c_bytes, c_work, c_req_cpu, c_req_mem,
    c_level, c_sigma, c_amp, c_peak_h, c_mem_level, c_mem_growth, c_alloc_cpu, c_alloc_mem,
    c_demand, c_mem_used, c_peak_cpu, c_peak_mem, c_ready, c_age,
    sq, sq_head, sq_len, arrived, rejected, terms,
):
    """Admit each copy's next pool apps (from its cursor on) in site order.

    An app is rejected whole (every container counted) when its site's queue is full or the
    copy has no free app slot.
    """
    n_copies, n_sites = counts.shape
    n_apps, k_max = c_status.shape[1], c_status.shape[2]
    q_max = sq.shape[2]
    for b in range(n_copies):
        slot = 0
        p = cursor[b]
        for s in range(n_sites):
            for _ in range(counts[b, s]):
                size = p_size[b, p]
                arrived[b] += size
                while slot < n_apps and a_active[b, slot]:
                    slot += 1
                if sq_len[b, s] >= q_max or slot >= n_apps:
                    rejected[b] += size
                    terms[b, s, T_REJECTION] += size
                    p += 1
                    continue
                a = slot
                a_active[b, a] = True
                a_home[b, a] = s
                a_size[b, a] = size
                a_next_k[b, a] = 0
                # Users reach an app at home first: its SLO includes their round trip there.
                a_slo[b, a] = p_slo[b, p] + p_slo_factor[b, p] * user_rtt_home[s]
                a_rate[b, a] = p_rate[b, p]
                a_life[b, a] = p_life[b, p]
                a_z[b, a] = p_z0[b, p]
                a_data_k[b, a] = p_data_k[b, p]
                a_data_site[b, a] = s
                a_service[b, a] = p_service[b, p]
                for k in range(k_max):
                    c_series[b, a, k] = p_series[b, p, k]
                    c_phase[b, a, k] = p_phase[b, p, k]
                    c_status[b, a, k] = QUEUED_SITE if k < size else EMPTY
                    c_node[b, a, k] = -1
                    c_loc[b, a, k] = -1
                    c_parent[b, a, k] = p_parent[b, p, k]
                    c_calls[b, a, k] = p_calls[b, p, k]
                    c_inv[b, a, k] = p_inv[b, p, k]
                    c_bytes[b, a, k] = p_bytes[b, p, k]
                    c_work[b, a, k] = p_work[b, p, k]
                    c_req_cpu[b, a, k] = p_cpu[b, p, k]
                    c_req_mem[b, a, k] = p_mem[b, p, k]
                    c_level[b, a, k] = p_level[b, p, k]
                    c_sigma[b, a, k] = p_sigma[b, p, k]
                    c_amp[b, a, k] = p_amp[b, p, k]
                    c_peak_h[b, a, k] = p_peak_h[b, p, k]
                    c_mem_level[b, a, k] = p_mem_level[b, p, k]
                    c_mem_growth[b, a, k] = p_mem_growth[b, p, k]
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
        cursor[b] = p
