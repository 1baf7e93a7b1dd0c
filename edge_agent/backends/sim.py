"""The simulated backend: one edge site of a scenario, modelled in memory in real time.

The site's nodes (cores, memory, power curves, sleep power), its power budget and its WAN RTT
come from the scenario's topology (`sim.topology`), so an edge agent on this backend sees the
same platform the simulator trains on. Time runs at `speed` simulated seconds per wall-clock
second. Deliberate simplifications, so the daemon can be exercised without the full twin:

- a placed container uses a constant fraction `usage_frac` of its CPU allocation (so a
  placement the guard accepted at its full allocation never pushes the site over budget),
  and the same fraction of its memory allocation: that is the usage `usage()` reports, the
  samples of its service's statistics;
- it runs for its request's `lifetime_s` (simulated seconds), or until released;
- an empty node falls asleep after the scenario's `sizing.sleep_after_s` and wakes at once
  when a container lands on it (the wake-up delay is not modelled);
- no resizing: the knob the policy sets is recorded and reported, allocations stay as placed.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Callable

import numpy as np

from edge_agent.backends.base import Backend, ContainerUsage, NodeArrays, Placement
from hierarchy.guard import placement_fits_at
from hierarchy.observation import CloudEncoder, EdgeEncoder
from hierarchy.power import LINEAR_CURVE
from hierarchy.scenario import Scenario, load_scenario
from sim.topology import build_topology

_GRID = np.linspace(0.0, 1.0, 11)


def site_index_from_id(site: str) -> int | None:
    """The trailing number of a site id (`edge-3` -> 3), None when it has none."""
    match = re.search(r"(\d+)$", site)
    return int(match.group(1)) if match else None


class SimSiteBackend(Backend):
    """Site `site_index` of `scenario`, advancing at `speed` x real time."""

    def __init__(self, scenario: Scenario | str, site: str, site_index: int | None = None,
                 speed: float = 1.0, usage_frac: float = 0.6,
                 clock: Callable[[], float] = time.monotonic) -> None:
        sc = load_scenario(scenario)
        topo = build_topology(sc)
        if site_index is None:
            site_index = site_index_from_id(site)
        if site_index is None or not 0 <= site_index < topo.num_sites:
            raise ValueError(
                f"site {site!r}: scenario {sc.name!r} has sites 0..{topo.num_sites - 1}; give "
                f"the site index (--site-index) or end the site id with it (e.g. edge-0)")
        if sc.observation.response_features:
            # The simulator's apps report their response times; a gateway does not collect
            # them yet, so a policy reading them would see "never observed" for ever.
            raise ValueError(
                f"scenario {sc.name!r} sets observation.response_features: the edge agent "
                "does not observe app response times; use a scenario (and a policy) without them")
        if speed <= 0:
            raise ValueError("speed must be positive")
        if not 0 < usage_frac <= 1:
            raise ValueError("usage_frac must be in (0, 1]")
        m = topo.nodes_per_site
        nodes = slice(site_index * m, (site_index + 1) * m)
        self.site = site
        self.site_index = site_index
        self.scenario = sc
        self.speed = float(speed)
        self.usage_frac = float(usage_frac)
        self.budget_w = float(topo.site_budget_w[site_index])
        self.wan_rtt_ms = float(topo.rtt_ms[site_index, topo.num_sites])
        self.encoder = EdgeEncoder(
            num_sites=topo.num_sites, nodes=m, size_levels=tuple(sc.sizing.size_levels),
            headroom_levels=len(sc.sizing.headroom_levels), max_app_size=sc.max_app_size,
            ref_cores=topo.ref_cores, ref_mem_gib=topo.ref_mem_gib,
            **EdgeEncoder.scenario_options(sc),
        )
        self.cloud_encoder = CloudEncoder(
            num_sites=topo.num_sites, max_app_size=sc.max_app_size, ref_cores=topo.ref_cores,
            ref_mem_gib=topo.ref_mem_gib,
        )
        self._ids = tuple(f"{site}.node{j}" for j in range(m))
        self._exists = topo.node_exists[nodes].copy()
        self._cores = topo.node_cores[nodes].copy()
        self._mem = topo.node_mem_gib[nodes].copy()
        self._speed = topo.node_speed[nodes].copy()
        self._idle = topo.node_idle_w[nodes].copy()
        self._max = topo.node_max_w[nodes].copy()
        self._sleep = topo.node_sleep_w[nodes].copy()
        edge_curves = topo.edge_curves
        self._curves = None if edge_curves is None else edge_curves[site_index].copy()
        # The platform never changes: read-only, so nodes() hands them out without a copy.
        for fixed in (self._exists, self._cores, self._mem, self._speed, self._idle,
                      self._max, self._sleep, self._curves):
            if fixed is not None:
                fixed.setflags(write=False)
        self._alloc_cpu = np.zeros(m)
        self._alloc_mem = np.zeros(m)
        self._count = np.zeros(m, dtype=np.int64)
        self._asleep = self._exists.copy()  # an empty site starts asleep, as in the simulator
        self._empty_since = np.zeros(m)
        # When the next awake empty node may fall asleep (inf: none): advance(), called after
        # every request, then looks at the nodes only when one may have to.
        self._sleep_due = np.inf
        self._sleep_after_s = sc.sizing.sleep_after_s
        self._start_hour = sc.time.start_hour
        self._knob = len(sc.sizing.headroom_levels) // 2  # the simulator's default level
        self._clock = clock
        self._t0 = clock()
        self._placed: dict[str, tuple[Placement, float]] = {}  # key -> (placement, placed at)
        self._where: dict[tuple[str, str], int] = {}  # (app, container) -> node
        self._expiry: list[tuple[float, str]] = []  # heap of (ends at, key)
        self._power_cache: tuple[np.ndarray, float] | None = None

    # --- time --------------------------------------------------------------------------------

    def now_s(self) -> float:
        """Simulated seconds since the backend started."""
        return (self._clock() - self._t0) * self.speed

    def time_s(self) -> float:
        return self.now_s()

    def hour(self) -> float:
        return (self._start_hour + self.now_s() / 3600.0) % 24.0

    def advance(self) -> list[str]:
        now = self.now_s()
        ended = []
        while self._expiry and self._expiry[0][0] <= now:
            _, key = heapq.heappop(self._expiry)
            if self.release(key):
                ended.append(key)
        if now >= self._sleep_due:
            self._fall_asleep(now)
        return ended

    def _fall_asleep(self, now: float) -> None:
        """Put the nodes empty for `sleep_after_s` to sleep; note when the next one may be."""
        awake_empty = self._exists & ~self._asleep & (self._count == 0)
        idle_long = awake_empty & (now - self._empty_since >= self._sleep_after_s)
        if idle_long.any():
            self._asleep |= idle_long
            self._power_cache = None
        waiting = awake_empty & ~idle_long
        self._sleep_due = (float(self._empty_since[waiting].min()) + self._sleep_after_s
                           if waiting.any() else np.inf)

    # --- state -------------------------------------------------------------------------------

    def _used(self) -> np.ndarray:
        return self.usage_frac * self._alloc_cpu

    def _node_power(self) -> np.ndarray:
        """Per-node power (W), computed once per change of the nodes' state."""
        if self._power_cache is None:
            u = np.clip(self._used() / np.maximum(self._cores, 1e-9), 0.0, 1.0)
            if self._curves is None:
                f = u
            else:
                f = np.array([np.interp(u[j], _GRID, self._curves[j]) for j in range(u.size)])
            awake = self._idle + (self._max - self._idle) * f
            power = np.where(self._exists, np.where(self._asleep, self._sleep, awake), 0.0)
            self._power_cache = (power, float(power.sum()))
        return self._power_cache[0]

    def power_w(self) -> float:
        self._node_power()
        assert self._power_cache is not None
        return self._power_cache[1]

    @property
    def node_ids(self) -> tuple[str, ...]:
        return self._ids

    def nodes(self) -> NodeArrays:
        return NodeArrays(
            ids=self._ids, exists=self._exists, asleep=self._asleep.copy(),
            cores=self._cores, mem_gib=self._mem,
            alloc_cpu=self._alloc_cpu.copy(), alloc_mem=self._alloc_mem.copy(),
            used_cpu=self._used(), speed=self._speed, idle_w=self._idle,
            max_w=self._max, sleep_w=self._sleep,
            power_w=self._node_power().copy(),
            containers=self._count.copy(),
            curves=self._curves,
        )

    def knob(self) -> int:
        return self._knob

    def set_knob(self, level: int) -> None:
        if not 0 <= level < self.encoder.headroom_levels:
            raise ValueError(f"knob level {level} out of range")
        self._knob = int(level)

    def containers(self) -> int:
        return len(self._placed)

    def usage(self) -> list[ContainerUsage]:
        f = self.usage_frac
        out = []
        for key, (p, _) in self._placed.items():
            cpu_req = p.cpu_cores if p.cpu_req is None else p.cpu_req
            mem_req = p.mem_gib if p.mem_req is None else p.mem_req
            out.append(ContainerUsage(key, p.service or p.app, p.container, f * p.cpu_cores,
                                      cpu_req, f * p.mem_gib, mem_req))
        return out

    def peers_per_node(self, app: str, containers: list[str]) -> np.ndarray:
        out = np.zeros(self._exists.size)
        for name in containers:
            node = self._where.get((app, name))
            if node is not None:
                out[node] += 1.0
        return out

    # --- actions -----------------------------------------------------------------------------

    def fits(self, node: int, cpu_cores: float, mem_gib: float) -> bool:
        """The hard guard (hierarchy.guard) for one node, on the state now."""
        if not 0 <= node < self._exists.size:
            return False
        curve = LINEAR_CURVE if self._curves is None else self._curves[node]
        return bool(placement_fits_at(
            bool(self._exists[node]), float(self._cores[node]), float(self._mem[node]),
            float(self._alloc_cpu[node]), float(self._alloc_mem[node]),
            float(self._used()[node]), bool(self._asleep[node]), float(self._idle[node]),
            float(self._max[node]), float(self._sleep[node]), curve, self._curves is None,
            self.power_w(), self.budget_w, float(cpu_cores), float(mem_gib),
        ))

    def warm_up(self) -> None:
        self.fits(0, 1e-9, 1e-9)

    def place(self, placement: Placement) -> bool:
        p = placement
        if p.key in self._placed or not self.fits(p.node, p.cpu_cores, p.mem_gib):
            return False
        self._alloc_cpu[p.node] += p.cpu_cores
        self._alloc_mem[p.node] += p.mem_gib
        self._count[p.node] += 1
        self._asleep[p.node] = False
        self._power_cache = None
        now = self.now_s()
        self._placed[p.key] = (p, now)
        self._where[(p.app, p.container)] = p.node
        if p.lifetime_s is not None:
            heapq.heappush(self._expiry, (now + p.lifetime_s, p.key))
        return True

    def release(self, key: str) -> bool:
        entry = self._placed.pop(key, None)
        if entry is None:
            return False
        p = entry[0]
        self._alloc_cpu[p.node] = max(0.0, self._alloc_cpu[p.node] - p.cpu_cores)
        self._alloc_mem[p.node] = max(0.0, self._alloc_mem[p.node] - p.mem_gib)
        self._count[p.node] -= 1
        self._power_cache = None
        if self._count[p.node] == 0:
            self._alloc_cpu[p.node] = self._alloc_mem[p.node] = 0.0  # no float residue
            self._empty_since[p.node] = now = self.now_s()
            self._sleep_due = min(self._sleep_due, now + self._sleep_after_s)
        if self._where.get((p.app, p.container)) == p.node:
            del self._where[(p.app, p.container)]
        return True
