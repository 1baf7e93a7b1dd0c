"""Synthetic workload: applications as call-graph trees of containers, with usage models.

Every parameter comes from the scenario's `workload` section, where each group names the trace
it was fitted to (`python -m sim.fitting`). All draws come from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierarchy.scenario import Scenario
from sim.latency import critical_paths_ms


@dataclass
class NewApps:
    """n freshly arrived apps, containers padded to K; container arrays are (n, K)."""

    home: np.ndarray  # (n,) site index
    size: np.ndarray  # (n,) containers in the app
    parent: np.ndarray  # (n, K) parent container index, -1 for the entry and for padding
    calls: np.ndarray  # (n, K) calls per parent call
    invocations: np.ndarray  # (n, K) calls per user request
    bytes_per_call: np.ndarray
    work_ms: np.ndarray
    cpu_req: np.ndarray
    mem_req: np.ndarray
    level: np.ndarray  # mean CPU demand / request
    sigma: np.ndarray  # lognormal spread of demand
    amp: np.ndarray  # daily amplitude
    peak_h: np.ndarray  # hour of daily peak
    mem_level: np.ndarray
    mem_growth_h: np.ndarray  # memory growth per hour, x request
    data_k: np.ndarray  # (n,) container reading pinned data, -1 when none
    data_site: np.ndarray  # (n,)
    lifetime_s: np.ndarray  # (n,)
    slo_ms: np.ndarray  # (n,)
    rate_rps: np.ndarray  # (n,) user requests per second
    slo_factor: np.ndarray  # (n,) SLO multiple of the ideal response
    z0: np.ndarray  # (n,) initial state of the app's AR(1) load noise
    service: np.ndarray  # (n,) the catalogue service the app is an instance of
    series: np.ndarray  # (n, K) usage series a container replays, -1: the usage model
    phase_s: np.ndarray  # (n, K) where in its series the replay starts, trace s


class WorkloadGenerator:
    def __init__(self, scenario: Scenario, num_sites: int, user_rtt_ms: np.ndarray,
                 lan_rtt_ms: float) -> None:
        w = scenario.workload
        self.w = w
        self.k = scenario.max_app_size
        self.num_sites = num_sites
        self.user_rtt_home = np.diag(user_rtt_ms[:, :num_sites]).copy()
        self.lan_rtt_ms = lan_rtt_ms
        self.size_cdf = np.cumsum(w.apps.size_pmf)
        self.calls_cdf = np.cumsum(w.apps.calls_pmf)
        self.cpu_values = np.asarray(w.containers.cpu_request_cores)
        self.cpu_cdf = np.cumsum(w.containers.cpu_request_pmf)
        self.mem_ratio_values = np.asarray(w.containers.mem_gib_per_core)
        self.mem_ratio_cdf = np.cumsum(w.containers.mem_gib_per_core_pmf)

    def draw(self, rng: np.random.Generator, n: int) -> NewApps:
        """n apps drawn with `rng`; their home (and with it the SLO's user round trip and
        the site of their pinned data) is set when they arrive."""
        home = np.zeros(n, dtype=np.int64)
        k = self.k
        apps, use, life = self.w.apps, self.w.usage, self.w.lifetimes
        size = 1 + _draw(self.size_cdf, rng.random(n))
        idx = np.arange(k)
        real = idx[None, :] < size[:, None]

        # Random tree: parent[k] = 0 (the entry) with star_prob, else k-1 with chain_prob,
        # else uniform over 0..k-1. Real call graphs are mostly an entry fanning out.
        u = rng.random((n, k))
        chain_cut = apps.star_prob + (1.0 - apps.star_prob) * apps.chain_prob
        uniform = np.floor(rng.random((n, k)) * np.maximum(idx, 1)).astype(np.int64)
        parent = np.where(u < apps.star_prob, 0, np.where(u < chain_cut, idx - 1, uniform))
        parent[:, 0] = -1
        parent = np.where(real, parent, -1)

        calls = (1 + _draw(self.calls_cdf, rng.random((n, k)))).astype(np.float64)
        calls[:, 0] = 1.0
        calls = np.where(real, calls, 0.0)
        invocations = calls.copy()
        for j in range(1, k):
            par = np.maximum(parent[:, j], 0)
            invocations[:, j] = calls[:, j] * invocations[np.arange(n), par]
        bytes_per_call = apps.bytes_per_call_median * np.exp(
            apps.bytes_per_call_sigma * rng.standard_normal((n, k))
        )
        work_ms = apps.work_ms_median * np.exp(apps.work_ms_sigma * rng.standard_normal((n, k)))

        cpu_req = self.cpu_values[_draw(self.cpu_cdf, rng.random((n, k)))]
        mem_req = cpu_req * self.mem_ratio_values[_draw(self.mem_ratio_cdf, rng.random((n, k)))]
        level = np.clip(rng.beta(*use.cpu_level_beta, size=(n, k)), 0.01, 0.95)
        sigma = np.clip(
            use.cpu_sigma_mean + use.cpu_sigma_std * rng.standard_normal((n, k)), 0.0, 1.5
        )
        amp = np.clip(
            use.cpu_daily_amp_mean * (1 + 0.5 * rng.standard_normal((n, k))), 0.0, 0.9
        )
        # Peaks cluster around the arrival peak: users drive both.
        peak_h = (self.w.arrivals.peak_hour + 2.0 * rng.standard_normal((n, k))) % 24.0
        mem_level = np.clip(rng.beta(*use.mem_level_beta, size=(n, k)), 0.02, 0.95)
        mem_growth_h = use.mem_growth_per_hour_mean + use.mem_growth_per_hour_std * (
            rng.standard_normal((n, k))
        )

        has_data = rng.random(n) < apps.data_prob
        data_k = np.where(has_data, np.floor(rng.random(n) * size).astype(np.int64), -1)
        data_site = home.copy()

        lifetime_s = np.clip(
            life.median_s * np.exp(life.sigma * rng.standard_normal(n)), life.min_s, life.max_s
        )
        slo_ms, factor = self.slo(rng, parent, calls, work_ms, level, size)
        rate_rps = apps.requests_per_s_per_core * cpu_req[:, 0] * level[:, 0]

        zero = lambda a: np.where(real, a, 0.0)  # noqa: E731
        return NewApps(
            home=home, size=size, parent=parent, calls=calls, invocations=invocations,
            bytes_per_call=zero(bytes_per_call), work_ms=zero(work_ms), cpu_req=zero(cpu_req),
            mem_req=zero(mem_req), level=zero(level), sigma=zero(sigma), amp=zero(amp),
            peak_h=peak_h, mem_level=zero(mem_level), mem_growth_h=zero(mem_growth_h),
            data_k=data_k, data_site=data_site, lifetime_s=lifetime_s, slo_ms=slo_ms,
            rate_rps=rate_rps, slo_factor=factor, z0=rng.standard_normal(n),
            service=np.zeros(n, dtype=np.int64), series=np.full((n, k), -1, dtype=np.int64),
            phase_s=np.zeros((n, k)),
        )

    def slo(self, rng: np.random.Generator, parent: np.ndarray, calls: np.ndarray,
            work_ms: np.ndarray, level: np.ndarray, size: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """(SLO ms, SLO factor) of n apps: a multiple of the app's ideal response at home
        (unloaded, co-located) plus slack; the users' round trip to their home site is
        added when the app lands there."""
        apps = self.w.apps
        n, k = parent.shape
        real = np.arange(k)[None, :] < size[:, None]
        own = np.where(real, work_ms / (1.0 - level), 0.0)
        ideal = critical_paths_ms(own, parent, calls, np.full((n, k), self.lan_rtt_ms), size)
        factor = rng.uniform(apps.slo_factor_min, apps.slo_factor_max, n)
        slack = rng.uniform(apps.slo_slack_ms_min, apps.slo_slack_ms_max, n)
        return factor * ideal + slack, factor


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn from a discrete distribution given its CDF and uniforms u."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
