"""Where an offloaded container goes: the cloud level's view, mask and rule.

The cloud agent fills the shared `CloudView` (hierarchy.observation) from its global view
and runs the same cloud-level rule as every heuristic baseline in the simulator
(`NearPeersCloudRule`): the site with room holding most of the container's peers, else the
cloud pool, else the site with room nearest the app's users, else reject. "Room" on a site is
judged with the hard guard (hierarchy.guard) on the site's last telemetry; the site's own agent
judges again, exactly, when the container arrives.

RTTs: a site's telemetry carries its WAN RTT to the cloud; between two sites the cloud
estimates the RTT as the sum of their WAN RTTs (it has no better measurement).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from cloud_agent.state import CloudPool, Locations, SiteState
from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_POOL
from hierarchy.guard import placement_fits_at
from hierarchy.observation import CloudEncoder, CloudView
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.power import LINEAR_CURVE
from hierarchy.protocol import CLOUD_LOCATION, Offload, Telemetry

RULE = NearPeersCloudRule()


@dataclass(frozen=True)
class Destination:
    kind: Literal["site", "pool", "reject"]
    site: str | None = None


def site_fits(t: Telemetry, cpu: float, mem: float) -> bool:
    """Whether some node of the site, as last reported, takes the container within budget."""
    for n in t.nodes:
        if placement_fits_at(True, n.cores, n.mem_gib, n.alloc_cpu_cores, n.alloc_mem_gib,
                             n.used_cpu_cores, n.asleep, n.idle_w, n.max_w, n.sleep_w,
                             LINEAR_CURVE, True, t.power_w, t.budget_w, cpu, mem):
            return True
    return False


def choose(offload: Offload, sites: dict[str, SiteState], pool: CloudPool,
           locations: Locations, encoder_shape: tuple[int, float, float], stale_s: float,
           queue_fill: float = 0.0, exclude: frozenset[str] = frozenset()) -> Destination:
    """The destination of `offload`'s container; never its own site or those in `exclude`.

    `encoder_shape` is (max_app_size, ref_cores, ref_mem_gib) of the platform."""
    req = offload.request
    names = sorted(sites)
    s = len(names)
    now = time.monotonic()
    free_cpu, free_mem, headroom = np.zeros(s), np.zeros(s), np.zeros(s)
    peers, rtt, fits = np.zeros(s), np.zeros(s), np.zeros(s, dtype=bool)
    home_wan = offload.context.wan_rtt_ms
    for i, name in enumerate(names):
        st = sites[name]
        t = st.telemetry
        if t is None:
            continue
        cores = sum(n.cores for n in t.nodes) or 1.0
        mem = sum(n.mem_gib for n in t.nodes) or 1.0
        free_cpu[i] = 1.0 - sum(n.alloc_cpu_cores for n in t.nodes) / cores
        free_mem[i] = 1.0 - sum(n.alloc_mem_gib for n in t.nodes) / mem
        headroom[i] = (t.budget_w - t.power_w) / t.budget_w if t.budget_w > 0 else -1.0
        rtt[i] = 0.0 if name == offload.site else home_wan + t.wan_rtt_ms
        fresh = st.telemetry_at is not None and now - st.telemetry_at <= stale_s
        fits[i] = (st.online and fresh and name != offload.site and name not in exclude
                   and site_fits(t, req.cpu_cores, req.mem_gib))
    pool_peers = 0.0
    for peer in req.peers:
        where = locations.where(req.app, peer)
        if where == CLOUD_LOCATION:
            pool_peers += 1.0
        elif where in sites:
            peers[names.index(where)] += 1.0
    k_max, ref_cores, ref_mem = encoder_shape
    home = names.index(offload.site) if offload.site in sites else 0
    data = names.index(req.data_site) if req.data_site in sites else -1
    f8 = np.float64
    view = CloudView(
        hour=np.asarray(time.localtime().tm_hour + time.localtime().tm_min / 60.0, f8),
        queue_fill=np.asarray(min(max(queue_fill, 0.0), 1.0), f8),
        pending=np.asarray(True),
        cpu_req=np.asarray(req.cpu_cores, f8), mem_req=np.asarray(req.mem_gib, f8),
        slo_ms=np.asarray(req.slo_ms, f8),
        app_size=np.asarray(min(req.app_size or len(req.peers) + 1, k_max), f8),
        is_entry=np.asarray(req.is_entry), home=np.asarray(home, np.int64),
        data_site=np.asarray(data, np.int64),
        site_free_cpu_frac=free_cpu, site_free_mem_frac=free_mem,
        site_power_headroom=headroom, site_peers=peers, site_rtt_from_home_ms=rtt,
        site_fits=fits,
        pool_free_cpu_frac=np.asarray(pool.free_cpu_frac(), f8),
        pool_free_mem_frac=np.asarray(pool.free_mem_frac(), f8),
        pool_peers=np.asarray(pool_peers, f8), pool_rtt_from_home_ms=np.asarray(home_wan, f8),
        pool_fits=np.asarray(bool(pool.fits(req.cpu_cores, req.mem_gib).any())),
    )
    encoder = CloudEncoder(num_sites=s, max_app_size=k_max, ref_cores=ref_cores,
                           ref_mem_gib=ref_mem)
    obs, mask = encoder.encode_and_mask(view)
    action = int(np.asarray(RULE(view, mask, obs)).reshape(-1)[0])
    if action == CLOUD_POOL:
        return Destination("pool")
    if action >= CLOUD_FIRST_SITE:
        return Destination("site", names[action - CLOUD_FIRST_SITE])
    return Destination("reject")
