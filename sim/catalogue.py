"""The services an episode's apps are instances of, so that behaviour recurs and can be learned.

Each copy draws, at the start of each episode and from its own generator, a catalogue of
`workload.catalogue.services` services. A service is one app template drawn by the fitted
generator (sim.workload): its call-graph shape, requests, work per call, SLO and per-container
usage profile (level, spread, daily amplitude and peak, memory level and growth). An arriving
app picks a service by Zipf popularity (the i-th most popular with weight 1 / i^zipf_s) and
is an instance of it: same shape and requests, usage level, memory level and daily amplitude
multiplied by a mean-one lognormal of sigma `instance_noise`, its own lifetime and load noise.
Since the templates are drawn from the fitted distributions, an app's marginal distribution is
the fitted one (docs/workload-fit.md); what changes is that apps of one service look alike.

With a `workload.trace`, services are the trace's call graphs (popularity from their `num`),
each container replays one of the trace's usage series from a random phase, and requests
and lifetimes come from the arrivals file when there is one (sim.trace_workload).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from hierarchy.scenario import Scenario
from sim.trace_workload import TraceTables, load_trace_tables
from sim.workload import NewApps, WorkloadGenerator, _draw


@dataclass
class ServiceCatalogue:
    templates: NewApps  # (C, ...) one app per service
    cdf: np.ndarray  # (C,) cumulative popularity


class CatalogueMaker:
    """Draws catalogues and their app instances for one scenario."""

    def __init__(self, scenario: Scenario, generator: WorkloadGenerator) -> None:
        self.generator = generator
        self.k = scenario.max_app_size
        self.cat = scenario.workload.catalogue
        self.lifetimes = scenario.workload.lifetimes
        self.trace = scenario.workload.trace
        self.tables: TraceTables | None = (
            load_trace_tables(self.trace, self.k) if self.trace is not None else None
        )
        # Services per catalogue: the same in every episode (the statistics are per service).
        self.services = (len(self.tables.graphs) if self.tables is not None
                         else self.cat.services)

    # --- catalogues ----------------------------------------------------------------------

    def draw(self, rng: np.random.Generator) -> ServiceCatalogue:
        if self.tables is not None:
            return self._draw_trace(rng)
        c = self.cat.services
        templates = self.generator.draw(rng, c)
        templates.service = np.arange(c)
        return ServiceCatalogue(templates, _zipf_cdf(c, self.cat.zipf_s))

    def _draw_trace(self, rng: np.random.Generator) -> ServiceCatalogue:
        tab, k, trace = self.tables, self.k, self.trace
        graphs = tab.graphs
        c = len(graphs)
        # Requests, work per call and the other unobserved parts come from the generator.
        t = self.generator.draw(rng, c)
        idx = np.arange(k)
        t.size = np.array([g.size for g in graphs], dtype=t.size.dtype)
        real = idx[None, :] < t.size[:, None]
        t.parent[:] = -1
        t.calls[:] = 0.0
        for i, g in enumerate(graphs):
            t.parent[i, : g.size] = g.parent
            t.calls[i, : g.size] = g.calls
            known = np.isfinite(g.bytes_per_call)
            t.bytes_per_call[i, : g.size][known] = g.bytes_per_call[known]
            t.data_k[i] = g.data_k
        t.invocations = t.calls.copy()
        for j in range(1, k):
            t.invocations[:, j] = t.calls[:, j] * t.invocations[np.arange(c),
                                                                 np.maximum(t.parent[:, j], 0)]
        if tab.requests.shape[0]:
            pick = rng.integers(tab.requests.shape[0], size=(c, k))
            t.cpu_req = tab.requests[pick, 0] * trace.cpu_scale
            t.mem_req = tab.requests[pick, 1] * trace.cpu_scale
        t.series = np.where(real, rng.integers(tab.length.size, size=(c, k)), -1)
        series = np.maximum(t.series, 0)
        t.level = np.clip(tab.series_mean[series], 0.01, 0.95)
        t.mem_level = np.clip(
            np.array([tab.mem_frac[i, : tab.length[i]].mean() for i in range(tab.length.size)])
            [series], 0.01, 0.95)
        t.sigma[:] = 0.0
        t.amp[:] = 0.0
        t.mem_growth_h[:] = 0.0
        for name in ("bytes_per_call", "work_ms", "cpu_req", "mem_req", "level", "mem_level"):
            setattr(t, name, np.where(real, getattr(t, name), 0.0))
        t.slo_ms, t.slo_factor = self.generator.slo(rng, t.parent, t.calls, t.work_ms, t.level,
                                                    t.size)
        t.service = np.arange(c)
        if trace.popularity == "num":
            weight = np.array([g.num for g in graphs])
            cdf = np.cumsum(weight / weight.sum())
        else:
            cdf = _zipf_cdf(c, self.cat.zipf_s)
        return ServiceCatalogue(t, cdf)

    # --- instances -----------------------------------------------------------------------

    def instances(self, cat: ServiceCatalogue, rng: np.random.Generator, n: int) -> NewApps:
        """n apps, each an instance of a service drawn by popularity."""
        svc = _draw(cat.cdf, rng.random(n))
        apps = NewApps(**{f.name: getattr(cat.templates, f.name)[svc].copy()
                          for f in fields(NewApps)})
        real = np.arange(self.k)[None, :] < apps.size[:, None]
        noise = self.cat.instance_noise
        if self.tables is None and noise > 0:
            z = rng.standard_normal((3, n, self.k))
            factor = np.exp(noise * z - 0.5 * noise * noise)
            apps.level = np.where(real, np.clip(apps.level * factor[0], 0.01, 0.95), 0.0)
            apps.mem_level = np.where(real, np.clip(apps.mem_level * factor[1], 0.02, 0.95), 0.0)
            apps.amp = np.where(real, np.clip(apps.amp * factor[2], 0.0, 0.9), 0.0)
        life = self.lifetimes
        known = self.tables.lifetimes_s if self.tables is not None else np.zeros(0)
        if known.size:
            drawn = known[rng.integers(known.size, size=n)] / self.trace.time_scale
        else:
            drawn = life.median_s * np.exp(life.sigma * rng.standard_normal(n))
        apps.lifetime_s = np.clip(drawn, life.min_s, life.max_s)
        apps.z0 = rng.standard_normal(n)
        apps.rate_rps = (self.generator.w.apps.requests_per_s_per_core * apps.cpu_req[:, 0]
                         * apps.level[:, 0])
        if self.tables is not None:
            span = self.tables.length[np.maximum(apps.series, 0)] * self.tables.step_s
            apps.phase_s = np.where(apps.series >= 0, rng.random((n, self.k)) * span, 0.0)
        return apps


def _zipf_cdf(n: int, s: float) -> np.ndarray:
    weight = 1.0 / np.arange(1, n + 1) ** s
    return np.cumsum(weight / weight.sum())
