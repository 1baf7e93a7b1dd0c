"""Episode metrics of each simulated copy, as the evaluation runner reports them (DESIGN §6)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.state import RESPONSE_BINS

if TYPE_CHECKING:
    from sim.core import BatchedCore

METRIC_NAMES = (
    "cost", "energy_kwh", "response_ms_mean", "response_ms_p95", "slo_violation_rate",
    "rejection_rate", "offload_rate", "power_overshoot_wh", "capped_time_frac", "wan_gb",
    "cpu_util_mean",
)


def response_percentile(hist: np.ndarray, q: float) -> np.ndarray:
    """Percentile (ms) of request-weighted response histograms (B, bins); upper bin edge."""
    total = hist.sum(axis=1, keepdims=True)
    cdf = np.cumsum(hist, axis=1) / np.maximum(total, 1e-12)
    idx = np.argmax(cdf >= q, axis=1)
    return np.where(total[:, 0] > 0, RESPONSE_BINS[idx], np.nan)


def episode_metrics(core: BatchedCore) -> dict[str, np.ndarray]:
    st = core.st
    wan_j = st.wan_bytes * core.scenario.network.wan_energy_j_per_byte
    energy_j = st.node_energy_j.sum(axis=1) + wan_j
    decided = st.placed_edge + st.offloaded
    elapsed_site_s = np.maximum(st.t_s, 1e-9) * core.S
    return {
        "cost": st.cost_total.copy(),
        "energy_kwh": energy_j / 3.6e6,
        "response_ms_mean": st.response_ms_sum / np.maximum(st.response_hist.sum(axis=1), 1e-12)
        if core.record_metrics else np.full(core.B, np.nan),
        "response_ms_p95": response_percentile(st.response_hist, 0.95),
        "slo_violation_rate": st.requests_violated / np.maximum(st.requests, 1e-12),
        "rejection_rate": st.rejected / np.maximum(st.arrived, 1e-12),
        "offload_rate": st.offloaded / np.maximum(decided, 1e-12),
        "power_overshoot_wh": st.overshoot_j.sum(axis=1) / 3600.0,
        "capped_time_frac": st.capped_site_s.sum(axis=1) / elapsed_site_s,
        "wan_gb": st.wan_bytes / 1e9,
        "cpu_util_mean": st.used_core_s / np.maximum(st.edge_core_s, 1e-12),
    }
