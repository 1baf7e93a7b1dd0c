"""The cloud-level rule shared by every heuristic baseline: keep a container near its peers.

For the offloaded container at the head of the cloud queue (any leading shape):

1. among the edge sites with headroom for it (the mask's site actions: capacity and power
   budget checked), the one holding the most of its placed call-graph peers, ties to the
   lowest user RTT from the app's home, then to the most power headroom; it goes there if
   that site holds at least one peer and no fewer than the cloud pool does;
2. otherwise the cloud pool, if it has room;
3. otherwise the site with headroom nearest the app's users (lowest RTT from home);
4. otherwise reject (the mask allows it only when nothing else fits).

"Nearest to the peers" is measured in peers, not milliseconds: the cloud view carries the
RTT from the app's home to each destination, not between destinations.
"""

from __future__ import annotations

import numpy as np

from hierarchy.actions import CLOUD_FIRST_SITE, CLOUD_POOL, CLOUD_REJECT
from hierarchy.observation import CloudView


class NearPeersCloudRule:
    """Decider for the cloud level: peers' site, else pool, else nearest site, else reject."""

    name = "near-peers"

    def __call__(self, view: CloudView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        pending = np.asarray(view.pending, dtype=bool)
        site_ok = mask[..., CLOUD_FIRST_SITE:] == 1
        pool_ok = mask[..., CLOUD_POOL] == 1
        peers = np.asarray(view.site_peers, dtype=np.float64)
        rtt = np.asarray(view.site_rtt_from_home_ms, dtype=np.float64)
        headroom = np.clip(np.asarray(view.site_power_headroom, dtype=np.float64), -1.0, 1.0)

        # Lexicographic (peers desc, rtt asc, headroom desc) folded into one float score:
        # peers are whole numbers, the RTT term stays below 1, the headroom term below 1e-3.
        rtt_term = rtt / (1.0 + rtt.max(axis=-1, keepdims=True)) if rtt.size else rtt
        near_peers = peers - rtt_term + 1e-3 * (headroom + 1.0) / 2.01
        best = np.argmax(np.where(site_ok, near_peers, -np.inf), axis=-1)
        best_peers = np.take_along_axis(np.where(site_ok, peers, -1.0), best[..., None],
                                        axis=-1)[..., 0]
        to_peers = (best_peers >= 1) & (~pool_ok | (best_peers >= view.pool_peers))

        nearest = np.argmax(np.where(site_ok, -rtt, -np.inf), axis=-1)
        any_site = site_ok.any(axis=-1)
        action = np.where(
            to_peers, CLOUD_FIRST_SITE + best,
            np.where(pool_ok, CLOUD_POOL,
                     np.where(any_site, CLOUD_FIRST_SITE + nearest, CLOUD_REJECT)),
        )
        return np.where(pending, action, 0).astype(np.int64)
