"""One decision: the site's EdgeView for a request, the shared encoder's mask, the policy.

The view is filled from the backend exactly as the simulator fills it from its state, and
encoded by the same `EdgeEncoder` (hierarchy.observation), so the policy sees on a gateway
what it saw in training, the pending container's service behaviour included
(edge_agent.behaviour). The mask is the hard guard: the policy may only pick placements
that keep every node within capacity and the site within its power budget, or offload.

`load_policy` turns the `policy` setting into a policy: a heuristic name of the registry,
`learned` (the shipped policy) or `learned:DIR` (an exported MAPPO policy, run with NumPy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edge_agent.backends.base import Backend
from edge_agent.behaviour import BehaviourBook
from hierarchy.actions import EDGE_PLACE
from hierarchy.locations import LocationBook
from hierarchy.observation import EdgeView
from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.policies.heuristics import request_size_level
from hierarchy.policies.learned import (
    LEARNED_PREFIX,
    SHIPPED_POLICIES_DIR,
    load_learned_policy,
    load_shipped_policy,
)
from hierarchy.policies.policy_file import PolicyFileError
from hierarchy.policies.registry import UnknownPolicyError, make_policy
from hierarchy.protocol import CLOUD_LOCATION, Request

LEARNED = "learned"
MAX_LABEL = 128  # the wire's limit on a decision's `policy`


def load_policy(spec: str, ctx: PolicyContext) -> Policy:
    """The policy `spec` names, checked against the platform of `ctx`.

    `learned:DIR` loads an exported policy (DIR/policy.npz + DIR/policy.json) with NumPy;
    `learned` the shipped one. Anything else is a heuristic of the registry. A policy that
    cannot be used raises ValueError (PolicyFileError for policy files) with one line that
    says why: unknown name, missing or tampered file, another observation spec, malformed
    metadata, weights that do not fit the platform.
    """
    if spec != LEARNED and not spec.startswith(LEARNED_PREFIX):
        try:
            return make_policy(spec, ctx)
        except UnknownPolicyError as exc:
            raise UnknownPolicyError(f"{exc}, learned (the shipped policy), learned:DIR"
                                     ) from None
    if spec == LEARNED:
        # The shipped policy trained for this site's platform (refused where none is).
        return load_shipped_policy(ctx, SHIPPED_POLICIES_DIR)
    raw = spec[len(LEARNED_PREFIX):].strip()
    if not raw:
        raise PolicyFileError("policy 'learned:': give the policy directory after the colon")
    path = Path(raw).expanduser()
    if not path.exists():
        raise PolicyFileError(f"{path}: no such policy directory or file")
    # Refuses missing, tampered or malformed files and weights that do not fit the platform.
    return load_learned_policy(path, ctx)


@dataclass(frozen=True)
class Choice:
    """What to do with one request. CPU in cores and memory in GiB are the allocation."""

    kind: Literal["place", "offload", "reject"]
    node: int = -1
    size_level: int = -1
    headroom: int = -1
    cpu_cores: float = 0.0
    mem_gib: float = 0.0
    reason: str = ""


class PeerBook(LocationBook):
    """Where this site's offloaded containers went: (app, container) -> site id or 'cloud'."""

    def __init__(self, site: str, max_entries: int = 100_000) -> None:
        super().__init__(max_entries)
        self.site = site

    def counts(self, app: str, peers: list[str]) -> tuple[int, int]:
        """(peers in the cloud pool, peers on other sites) among `peers`."""
        cloud = other = 0
        for name in peers:
            where = self.where(app, name)
            if where == CLOUD_LOCATION:
                cloud += 1
            elif where is not None and where != self.site:
                other += 1
        return cloud, other


class SiteDecider:
    """Builds views of one site and asks the policy, within the guard."""

    def __init__(self, backend: Backend, policy: Policy,
                 behaviour: BehaviourBook | None = None) -> None:
        self.backend = backend
        self.policy = policy
        self.behaviour = behaviour if behaviour is not None else BehaviourBook()
        self.encoder = backend.encoder
        self.layout = self.encoder.layout
        self.size_levels = np.asarray(self.encoder.size_levels, dtype=np.float64)
        self.request_size = request_size_level(self.encoder.size_levels)

    @property
    def policy_label(self) -> str:
        """`name@version` (a learned policy's version: the first 12 hex digits of its
        weights' SHA-256), within the wire's 128 characters, the version kept whole."""
        version = str(self.policy.version)[:40]
        return f"{self.policy.name[: MAX_LABEL - 1 - len(version)]}@{version}"

    def sample_usage(self) -> int:
        """Feed the service statistics from the backend's usage when a sample is due."""
        return self.behaviour.sample(self.backend)

    def view(self, req: Request | None, queue_fill: float = 0.0, cloud_free_frac: float = 1.0,
             peers: PeerBook | None = None) -> EdgeView:
        """The site's view now with `req` pending (nothing pending when None)."""
        b = self.backend
        n = b.nodes()
        f8 = np.float64
        k_max = self.encoder.max_app_size
        if req is not None:
            app_size = req.app_size or len(req.peers) + 1
            k_index = req.k_index if req.k_index is not None else (0 if req.is_entry else 1)
            node_peers = b.peers_per_node(req.app, req.peers)
            cloud, other = peers.counts(req.app, req.peers) if peers else (0, 0)
            data_here = req.data_site == b.site
            data_elsewhere = req.data_site is not None and not data_here
        else:
            app_size = k_index = cloud = other = 0
            node_peers = np.zeros(n.exists.size)
            data_here = data_elsewhere = False
        return EdgeView(
            hour=np.asarray(b.hour(), f8),
            site_index=np.asarray(b.site_index, np.int64),
            site_power_w=np.asarray(b.power_w(), f8),
            site_budget_w=np.asarray(b.budget_w, f8),
            throttle=np.asarray(b.throttle(), f8),
            queue_fill=np.asarray(min(max(queue_fill, 0.0), 1.0), f8),
            knob=np.asarray(b.knob(), np.int64),
            wan_rtt_ms=np.asarray(b.wan_rtt_ms, f8),
            cloud_free_frac=np.asarray(min(max(cloud_free_frac, 0.0), 1.0), f8),
            pending=np.asarray(req is not None),
            cpu_req=np.asarray(req.cpu_cores if req else 0.0, f8),
            mem_req=np.asarray(req.mem_gib if req else 0.0, f8),
            slo_ms=np.asarray(req.slo_ms if req else 0.0, f8),
            app_size=np.asarray(min(app_size, k_max), f8),
            k_index=np.asarray(min(k_index, k_max - 1), f8),
            is_entry=np.asarray(bool(req and req.is_entry)),
            calls=np.asarray(req.calls_per_request if req else 0.0, f8),
            peers_here=np.asarray(float(node_peers.sum()), f8),
            peers_cloud=np.asarray(float(cloud), f8),
            peers_other=np.asarray(float(other), f8),
            data_here=np.asarray(data_here),
            data_elsewhere=np.asarray(data_elsewhere),
            node_exists=n.exists, node_asleep=n.asleep, node_cores=n.cores,
            node_mem_gib=n.mem_gib, node_alloc_cpu=n.alloc_cpu, node_alloc_mem=n.alloc_mem,
            node_used_cpu=n.used_cpu, node_peers=node_peers.astype(f8, copy=False),
            node_speed=n.speed,
            node_idle_w=n.idle_w, node_max_w=n.max_w, node_sleep_w=n.sleep_w, curves=n.curves,
            **self.behaviour.view_fields(req),
        )

    def choose(self, req: Request, view: EdgeView) -> Choice:
        """The policy's choice for `req`, inside the mask; forwarded requests never offload."""
        obs, mask = self.encoder.encode_and_mask(view)
        try:
            action = int(np.asarray(self.policy.edge(view, mask, obs)).reshape(-1)[0])
        except Exception as exc:  # a broken policy must not stop the site: offload instead
            return self._fallback(req, mask, f"policy failed: {type(exc).__name__}")
        if not 0 <= action < mask.shape[-1] or mask[action] != 1:
            return self._fallback(req, mask, f"policy chose action {action}, which the guard "
                                             "refuses")
        kind, node, size, head = (int(x) for x in self.layout.decode(np.asarray(action)))
        if kind == EDGE_PLACE:
            # Fixed levels, or the predicted-p95 level (the request for an unknown service).
            cpu_frac, mem_frac = (float(f) for f in self.encoder.level_fractions(view, size))
            return Choice("place", node, size, head, req.cpu_cores * cpu_frac,
                          req.mem_gib * mem_frac)
        if req.offloaded_from is not None:
            return self._fallback(req, mask, "forwarded by the cloud: placed here, not offloaded")
        return Choice("offload", headroom=head,
                      reason="no node fits" if not self._any_fits(mask) else "policy offloaded")

    def _any_fits(self, mask: np.ndarray) -> bool:
        per_knob = mask[1: 1 + self.layout.placements]
        return bool(per_knob[:-1].any())

    def _fallback(self, req: Request, mask: np.ndarray, why: str) -> Choice:
        """First fit at the request size, else at the largest smaller size that fits; else
        offload (reject when the cloud forwarded it here)."""
        lay, knob = self.layout, self.backend.knob()
        at_request = self.size_levels[self.request_size]
        # The fixed levels only: a predicted level (if the layout has one) is no fallback.
        smaller = [i for i in range(len(self.size_levels)) if self.size_levels[i] < at_request]
        order = [self.request_size] + sorted(smaller, key=lambda i: -self.size_levels[i])
        for size in order:
            for node in range(lay.nodes):
                if mask[lay.encode_place(node, size, knob)] == 1:
                    level = self.size_levels[size]
                    return Choice("place", node, size, knob, req.cpu_cores * level,
                                  req.mem_gib * level, why)
        if req.offloaded_from is not None:
            return Choice("reject", reason="no node of this site fits it")
        return Choice("offload", headroom=knob, reason=why)
