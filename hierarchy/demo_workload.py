"""The demo's workload source: the scenario's generated apps, replayed as placement requests.

Part of the composition root (with `hierarchy/demo.py` and `hierarchy/cli.py`): it draws apps
with the simulator's own workload generator (`sim.workload`), so the requests the live agents
see have the sizes, call graphs, SLOs and lifetimes the policies were evaluated on. Each app
becomes one request per container, sent to its home site together, each naming its call-graph
neighbours as `peers`.

Arrivals are a Poisson process at the scenario's mean per-site rate (`apps_per_hour`) times
`speed` (simulated seconds per real second), or at `rate_rps` requests per second when given;
the daily cycle and the bursts of the simulator's arrival process are not replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hierarchy import protocol as p
from hierarchy.scenario import Scenario

if TYPE_CHECKING:
    from sim.workload import NewApps


@dataclass(frozen=True)
class Scheduled:
    """One request to send `t_s` seconds after the start, to `site`."""

    t_s: float
    site: str
    request: p.Request


class WorkloadSource:
    """Draws the apps arriving at `sites` (the scenario's first len(sites) sites)."""

    def __init__(self, scenario: Scenario, sites: list[str], speed: float,
                 rate_rps: float | None = None, seed: int = 0) -> None:
        from sim.topology import build_topology  # the composition root may wire sim in
        from sim.workload import WorkloadGenerator

        topo = build_topology(scenario)
        if not 1 <= len(sites) <= topo.num_sites:
            raise ValueError(f"scenario {scenario.name!r} has {topo.num_sites} sites; "
                             f"asked for {len(sites)}")
        self.sites = sites
        self.generator = WorkloadGenerator(scenario, topo.num_sites, topo.user_rtt_ms,
                                           scenario.network.lan_rtt_ms)
        self.rng = np.random.default_rng(seed)
        per_site = np.asarray(topo.site_apps_per_hour[: len(sites)], dtype=np.float64)
        if per_site.sum() <= 0:
            per_site = np.ones(len(sites))
        self.site_p = per_site / per_site.sum()
        pmf = np.asarray(scenario.workload.apps.size_pmf, dtype=np.float64)
        self.mean_app_size = float((np.arange(1, len(pmf) + 1) * pmf).sum() / pmf.sum())
        if rate_rps is not None:
            self.apps_per_s = rate_rps / self.mean_app_size
        else:
            self.apps_per_s = float(per_site.sum()) * speed / 3600.0
        self._apps = 0

    @property
    def requests_per_s(self) -> float:
        """The mean request rate this source sends at."""
        return self.apps_per_s * self.mean_app_size

    def schedule(self, duration_s: float, max_requests: int = 1_000_000) -> list[Scheduled]:
        """Every request of the apps arriving within `duration_s`, in time order (at most
        `max_requests`)."""
        if self.apps_per_s <= 0:
            return []
        expected = self.apps_per_s * duration_s
        gaps = self.rng.exponential(1.0 / self.apps_per_s, int(expected + 6 * expected**0.5 + 8))
        times = np.cumsum(gaps)
        times = times[times < duration_s]
        homes = self.rng.choice(len(self.sites), size=len(times), p=self.site_p)
        apps = self.generator.draw(self.rng, max(len(times), 1))
        out: list[Scheduled] = []
        for i, (t, home) in enumerate(zip(times, homes, strict=False)):
            site = self.sites[int(home)]
            for req in self._requests(apps, i, site):
                if len(out) >= max_requests:
                    return out
                out.append(Scheduled(float(t), site, req))
        return out

    def _requests(self, a: NewApps, i: int, site: str) -> list[p.Request]:
        size = int(a.size[i])
        parent = a.parent[i]
        name = f"app{self._apps}"
        self._apps += 1
        names = [f"c{k}" for k in range(size)]
        neighbours: list[set[int]] = [set() for _ in range(size)]
        for k in range(1, size):
            par = int(parent[k])
            if 0 <= par < size:
                neighbours[k].add(par)
                neighbours[par].add(k)
        data_k = int(a.data_k[i])
        reqs = []
        for k in range(size):
            reqs.append(p.Request(
                request_id=f"{site}/{name}/{names[k]}", app=name, container=names[k],
                cpu_cores=float(a.cpu_req[i, k]),
                mem_gib=float(a.mem_req[i, k]),
                slo_ms=float(a.slo_ms[i]),
                peers=[names[j] for j in sorted(neighbours[k])][: p.MAX_PEERS],
                is_entry=k == 0, k_index=k, app_size=size,
                calls_per_request=max(float(a.invocations[i, k]), 1e-6),
                data_site=site if k == data_k else None,
                lifetime_s=float(a.lifetime_s[i]),
            ))
        return reqs
