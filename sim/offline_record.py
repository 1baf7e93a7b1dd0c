"""What the offline optimum knows in advance: every arrival of one seeded episode.

The workload does not depend on the decisions: the generator draws the same numbers whatever
is placed where (arrivals, app parameters, load noise, lifetimes; departures count down once
an app is decided, which every app is by the next tick). So one run of the core with any
policy records, for the seed, every app that will be admitted, when, in which order each
site decides its containers, when it leaves, and every container's CPU demand at every tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_POOL, CLOUD_REJECT
from hierarchy.scenario import Scenario
from sim.core import BatchedCore


@dataclass
class RecordedApp:
    """One admitted app; container arrays have length `size`."""

    index: int  # order of admission over the episode
    slot: int
    home: int
    instant: int  # decided right after tick `instant` (ticks count from 1)
    last_tick: int  # last tick it runs (it departs at the end of it), capped at the horizon
    departs: bool  # False when still running at the horizon
    slo_ms: float
    rate_rps: float
    data_k: int  # container reading the pinned data, -1 when none
    data_site: int
    parent: np.ndarray
    calls: np.ndarray
    inv: np.ndarray
    bytes_per_call: np.ndarray
    work_ms: np.ndarray
    cpu_req: np.ndarray
    mem_req: np.ndarray
    level: np.ndarray
    sigma: np.ndarray
    amp: np.ndarray
    peak_h: np.ndarray
    mem_level: np.ndarray
    mem_growth_h: np.ndarray
    demand: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (ticks, size)

    @property
    def size(self) -> int:
        return int(self.parent.shape[0])

    @property
    def ticks(self) -> range:
        return range(self.instant + 1, self.last_tick + 1)


@dataclass
class RecordedEpisode:
    seed: int
    ticks: int  # kernels in the episode (horizon / step)
    apps: list[RecordedApp]
    # per site: (app index, container k) in the order the site's agent decides them
    order: list[list[tuple[int, int]]]
    admission_rejected: float  # containers rejected on arrival (queue full, no app slot)


def _cloud_anything(mask: np.ndarray) -> int:
    if mask[CLOUD_POOL]:
        return CLOUD_POOL
    sites = np.nonzero(mask[CLOUD_FIRST_SITE:])[0]
    return CLOUD_FIRST_SITE + int(sites[0]) if sites.size else CLOUD_REJECT


def record_episode(scenario: Scenario, seed: int) -> RecordedEpisode:
    """Run the episode of `seed` once (offloading everything) and record its workload."""
    core = BatchedCore(scenario, batch_size=1, seed=seed, record_metrics=False)
    core.keep_tick_load = True
    st = core.st
    ticks = int(round(core.horizon_s / core.dt_s))
    offload = core.edge_layout.encode_offload(0)
    apps: list[RecordedApp] = []
    order: list[list[tuple[int, int]]] = [[] for _ in range(core.S)]
    owner: dict[int, int] = {}  # slot -> app index while the app runs
    z_at: list[np.ndarray] = [np.zeros(core.A)]  # a_z used by tick t's kernel, t = 1..
    hour_at: list[float] = [0.0]
    instant = 0
    fresh = False  # the queues hold what arrived with the tick just run
    while True:
        if fresh:
            _admit(core, instant, apps, order, owner)
            fresh = False
        edge = np.where(core.edge_view.pending, offload, 0)
        cloud = np.where(core.cloud_view.pending, _cloud_anything(core.cloud_mask[0]), 0)
        out = core.step(edge, cloud)
        if out.advanced[0]:
            instant += 1
            hour_at.append(float(core.hour[0]))
            z_at.append(core.tick_load_z[0].copy())
            for slot, idx in list(owner.items()):
                if not st.a_active[0, slot]:
                    apps[idx].last_tick, apps[idx].departs = instant, True
                    del owner[slot]
            fresh = True
        if out.truncated[0]:
            break
    # The queues hold what arrived with the last tick: never decided within the horizon.
    for idx in owner.values():
        apps[idx].last_tick = ticks
    admitted = sum(a.size for a in apps)
    queued_at_end = int(sum(st.a_size[0, a] for a in _queued_slots(core)))
    rejected = float(st.arrived[0]) - admitted - queued_at_end
    for app in apps:
        app.demand = _demand(app, z_at, hour_at)
    return RecordedEpisode(seed, ticks, apps, order, rejected)


def _queued_slots(core: BatchedCore) -> list[int]:
    st = core.st
    out = []
    for s in range(core.S):
        for i in range(int(st.sq_len[0, s])):
            out.append(int(st.sq[0, s, (st.sq_head[0, s] + i) % core.Q]))
    return out


def _admit(core: BatchedCore, instant: int, apps: list[RecordedApp],
           order: list[list[tuple[int, int]]], owner: dict[int, int]) -> None:
    """Record the apps queued at `instant` (they arrived with the tick just run)."""
    st = core.st
    for s in range(core.S):
        for i in range(int(st.sq_len[0, s])):
            slot = int(st.sq[0, s, (st.sq_head[0, s] + i) % core.Q])
            if slot in owner:  # its previous app left in this tick, before the admission
                prev = apps[owner.pop(slot)]
                prev.last_tick, prev.departs = instant, True
            size = int(st.a_size[0, slot])
            ks = slice(0, size)
            app = RecordedApp(
                index=len(apps), slot=slot, home=s, instant=instant, last_tick=instant,
                departs=False, slo_ms=float(st.a_slo_ms[0, slot]),
                rate_rps=float(st.a_rate_rps[0, slot]), data_k=int(st.a_data_k[0, slot]),
                data_site=int(st.a_data_site[0, slot]),
                parent=st.c_parent[0, slot, ks].astype(np.int64),
                calls=st.c_calls[0, slot, ks].copy(), inv=st.c_invocations[0, slot, ks].copy(),
                bytes_per_call=st.c_bytes[0, slot, ks].copy(),
                work_ms=st.c_work_ms[0, slot, ks].copy(),
                cpu_req=st.c_req_cpu[0, slot, ks].copy(), mem_req=st.c_req_mem[0, slot, ks].copy(),
                level=st.c_level[0, slot, ks].copy(), sigma=st.c_sigma[0, slot, ks].copy(),
                amp=st.c_amp[0, slot, ks].copy(), peak_h=st.c_peak_h[0, slot, ks].copy(),
                mem_level=st.c_mem_level[0, slot, ks].copy(),
                mem_growth_h=st.c_mem_growth_h[0, slot, ks].copy(),
            )
            owner[slot] = app.index
            apps.append(app)
            order[s].extend((app.index, k) for k in range(size))


def _demand(app: RecordedApp, z_at: list[np.ndarray], hour_at: list[float]) -> np.ndarray:
    """(ticks, size) CPU demand (cores) in each tick the app runs, as the kernel computes it.

    Every container is ready from its first tick on (start-up and wake-up take less than a
    tick, checked by the caller), and nothing restarts (checked as well).
    """
    out = np.zeros((len(app.ticks), app.size))
    for i, t in enumerate(app.ticks):
        z = z_at[t][app.slot]
        h = hour_at[t]
        for k in range(app.size):
            sig = app.sigma[k]
            daily = 1.0 + app.amp[k] * math.cos(2.0 * math.pi * (h - app.peak_h[k]) / 24.0)
            out[i, k] = app.cpu_req[k] * app.level[k] * daily * math.exp(
                sig * z - 0.5 * sig * sig)
    return out


def out_of_memory(app: RecordedApp, k: int, level: float, dt_s: float) -> bool:
    """True if container k, allocated `level` x its request, would exceed its memory.

    The kernel's memory model: used = request x clip(level + growth/h x age, 0.01, 4), with
    the age counted tick by tick from placement; above the allocation it restarts.
    """
    alloc = app.mem_req[k] * level
    age = 0.0
    for _ in app.ticks:
        age += dt_s
        growth = app.mem_level[k] + app.mem_growth_h[k] * age / 3600.0
        if app.mem_req[k] * min(max(growth, 0.01), 4.0) > alloc:
            return True
    return False
