"""Static arrays of a scenario's platform: nodes, sites, the cloud pool and the RTT matrix.

Nodes are flat: edge site s owns nodes [s*M, (s+1)*M) (padded to M, the most nodes any site
has; padding nodes do not exist), the cloud pool owns the last P. Locations are site indices
0..S-1 and S for the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierarchy.power import normalised_curve
from hierarchy.scenario import NodeType, Scenario


@dataclass(frozen=True)
class Topology:
    num_sites: int
    nodes_per_site: int  # M, padded
    num_cloud_nodes: int  # P
    node_exists: np.ndarray  # (N,) bool
    node_site: np.ndarray  # (N,) int, S for cloud
    node_cores: np.ndarray  # (N,)
    node_mem_gib: np.ndarray
    node_idle_w: np.ndarray
    node_max_w: np.ndarray
    node_sleep_w: np.ndarray
    node_wake_s: np.ndarray
    node_speed: np.ndarray
    node_curves: np.ndarray | None  # (N, 11) or None when every node is linear
    site_budget_w: np.ndarray  # (S,)
    site_wan_bw_bps: np.ndarray  # (S,) bytes/s
    site_apps_per_hour: np.ndarray  # (S,)
    loc_pue: np.ndarray  # (S+1,)
    rtt_ms: np.ndarray  # (S+1, S+1) between locations; diagonal = LAN RTT
    user_rtt_ms: np.ndarray  # (S, S+1): users of home site h to location l

    @property
    def num_nodes(self) -> int:
        return self.node_exists.shape[0]

    @property
    def num_edge_nodes(self) -> int:
        return self.num_sites * self.nodes_per_site

    @property
    def edge_curves(self) -> np.ndarray | None:
        """(S, M, 11) power tables of the edge nodes, or None when all are linear."""
        if self.node_curves is None:
            return None
        edge = self.node_curves[: self.num_edge_nodes]
        if np.allclose(edge, np.linspace(0.0, 1.0, 11)):
            return None
        return edge.reshape(self.num_sites, self.nodes_per_site, 11)

    @property
    def ref_cores(self) -> float:
        edge = slice(0, self.num_edge_nodes)
        return float(self.node_cores[edge][self.node_exists[edge]].max())

    @property
    def ref_mem_gib(self) -> float:
        edge = slice(0, self.num_edge_nodes)
        return float(self.node_mem_gib[edge][self.node_exists[edge]].max())


def build_topology(scenario: Scenario) -> Topology:
    sites = [g for g in scenario.sites for _ in range(g.count)]
    num_sites = len(sites)
    per_site = max(sum(g.nodes.values()) for g in scenario.sites)
    cloud_types = _expand(scenario.cloud.nodes)
    num_cloud = len(cloud_types)

    types: list[NodeType | None] = []
    for group in sites:
        site_types = [scenario.node_types[name] for name in _expand(group.nodes)]
        types += site_types + [None] * (per_site - len(site_types))
    types += [scenario.node_types[name] for name in cloud_types]

    def attr(get, default: float = 0.0) -> np.ndarray:
        return np.array([get(t) if t is not None else default for t in types], dtype=np.float64)

    curves = np.stack(
        [
            normalised_curve(t.power_idle_w, t.power_max_w, t.power_curve_w)
            if t is not None
            else np.linspace(0, 1, 11)
            for t in types
        ]
    )
    any_table = any(t is not None and t.power_curve_w is not None for t in types)
    idle = attr(lambda t: t.power_curve_w[0] if t.power_curve_w else t.power_idle_w)
    peak = attr(lambda t: t.power_curve_w[-1] if t.power_curve_w else t.power_max_w)

    node_site = np.concatenate(
        [np.repeat(np.arange(num_sites), per_site), np.full(num_cloud, num_sites)]
    )
    rtt = _rtt_matrix(scenario, sites)
    user_rtt = np.empty((num_sites, num_sites + 1))
    for h, group in enumerate(sites):
        user_rtt[h, :num_sites] = group.user_rtt_ms + rtt[h, :num_sites]
        user_rtt[h, h] = group.user_rtt_ms
        user_rtt[h, num_sites] = scenario.cloud.user_rtt_ms
    return Topology(
        num_sites=num_sites,
        nodes_per_site=per_site,
        num_cloud_nodes=num_cloud,
        node_exists=np.array([t is not None for t in types]),
        node_site=node_site,
        node_cores=attr(lambda t: t.cpu_cores),
        node_mem_gib=attr(lambda t: t.mem_gib),
        node_idle_w=idle,
        node_max_w=peak,
        node_sleep_w=attr(lambda t: t.sleep_power_w),
        node_wake_s=attr(lambda t: t.wake_s),
        node_speed=attr(lambda t: t.speed, 1.0),
        node_curves=curves if any_table else None,
        site_budget_w=np.array([g.power_budget_w for g in sites], dtype=np.float64),
        site_wan_bw_bps=np.array([g.wan_bandwidth_mbps * 1e6 / 8 for g in sites]),
        site_apps_per_hour=np.array([g.apps_per_hour for g in sites], dtype=np.float64)
        * scenario.workload.load_factor,
        loc_pue=np.concatenate([np.ones(num_sites), [scenario.cloud.pue]]),
        rtt_ms=rtt,
        user_rtt_ms=user_rtt,
    )


def _expand(counts: dict[str, int]) -> list[str]:
    return [name for name, count in counts.items() for _ in range(count)]


def _rtt_matrix(scenario: Scenario, sites: list) -> np.ndarray:
    """RTT between locations: sites on a ring (or an explicit matrix), the cloud by WAN RTT."""
    s = len(sites)
    net = scenario.network
    rtt = np.zeros((s + 1, s + 1))
    if net.inter_site_rtt_ms is not None:
        rtt[:s, :s] = np.asarray(net.inter_site_rtt_ms, dtype=np.float64)
    else:
        idx = np.arange(s)
        hops = np.abs(idx[:, None] - idx[None, :])
        hops = np.minimum(hops, s - hops)
        rtt[:s, :s] = np.where(
            hops > 0, net.inter_site_base_ms + (hops - 1) * net.inter_site_per_hop_ms, 0.0
        )
    wan = np.array([g.wan_rtt_ms for g in sites], dtype=np.float64)
    rtt[:s, s] = wan
    rtt[s, :s] = wan
    np.fill_diagonal(rtt, net.lan_rtt_ms)
    return rtt
