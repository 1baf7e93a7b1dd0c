"""Heuristic edge-level schedulers: the baselines a learned policy has to beat.

Every rule decides, for each position of any leading shape (the runner's (B, S), or one
site), the container at the head of the site's queue:

- it places it on one node of the site at the request size (the size level nearest to 1.0 x
  request) and the fixed resize headroom `STATIC_HEADROOM` unless its rule says otherwise;
- it chooses only among placements the action mask allows (the hard guard on capacity and
  the site's power budget), scoring the allowed nodes by its rule;
- when the guard allows no node it offloads (always allowed); where nothing is pending it
  returns 0, the no-op.

Fixed headroom: index 0 of `sizing.headroom_levels`, which is -1 in the shipped scenarios,
i.e. resizing off: allocations stay as placed, like Kubernetes without a vertical pod
autoscaler. Pass another index to `make_policy` to run the baselines with dynamic resizing.

Ties are broken towards the lowest node index, except in the rules taken from the
kube-scheduler and Trimaran, where ties are broken uniformly at random (seeded), as the
kube-scheduler's `selectHost` does.
"""

from __future__ import annotations

import numpy as np

from hierarchy.guard import slo_guard
from hierarchy.observation import EdgeEncoder, EdgeView, power_delta_w
from hierarchy.policies import kube_scores

# Index into sizing.headroom_levels used by every baseline (see the module docstring).
STATIC_HEADROOM = 0


def request_size_level(size_levels: tuple[float, ...]) -> int:
    """Index of the size level nearest to 1.0 x request ("size at request")."""
    levels = np.asarray(size_levels, dtype=np.float64)
    return int(np.argmin(np.abs(levels - 1.0)))


class EdgeRule:
    """Base of the edge rules: mask handling, node choice by score, offload fallback.

    Subclasses implement `score(view, allowed) -> (..., M)`: the highest allowed score wins,
    ties to the lowest index. Scores of nodes that are not allowed are ignored.
    """

    name = "edge-rule"

    def __init__(self, encoder: EdgeEncoder, headroom: int = STATIC_HEADROOM,
                 seed: int = 0) -> None:
        if not 0 <= headroom < encoder.headroom_levels:
            raise ValueError(
                f"headroom level {headroom} out of range 0..{encoder.headroom_levels - 1}"
            )
        self.encoder = encoder
        self.layout = encoder.layout
        self.headroom = headroom
        self.size = request_size_level(encoder.size_levels)
        self.rng = np.random.default_rng(seed)
        self.node_ids = np.arange(self.layout.nodes)

    # --- action indices ----------------------------------------------------------------------

    def place_actions(self, size: int) -> np.ndarray:
        """(M,) action index of each node at size level `size` and the rule's headroom."""
        lay = self.layout
        return 1 + self.headroom * lay.placements + self.node_ids * lay.sizes + size

    @property
    def offload_action(self) -> int:
        return self.layout.encode_offload(self.headroom)

    def allowed_nodes(self, mask: np.ndarray, size: int) -> np.ndarray:
        """(..., M) bool: nodes the mask allows at size level `size`."""
        return np.asarray(mask)[..., self.place_actions(size)] == 1

    # --- deciding ----------------------------------------------------------------------------

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        pending = np.asarray(view.pending, dtype=bool)
        allowed = self.allowed_nodes(mask, self.size) & pending[..., None]
        node = self.choose(self.score(view, allowed), allowed)
        action = np.where(node >= 0, self.place_actions(self.size)[np.maximum(node, 0)],
                          self.offload_action)
        self.chosen(view, node)
        return np.where(pending, action, 0).astype(np.int64)

    @staticmethod
    def choose(score: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """(...) index of the best allowed node, -1 where none is allowed."""
        masked = np.where(allowed, np.asarray(score, dtype=np.float64), -np.inf)
        best = np.argmax(masked, axis=-1)
        return np.where(allowed.any(axis=-1), best, -1)

    def chosen(self, view: EdgeView, node: np.ndarray) -> None:
        """Hook for rules with state: `node` (...) was picked (-1: offloaded or idle)."""

    def random_ties(self, score: np.ndarray) -> np.ndarray:
        """Integer scores with uniform random tie-breaking (kube-scheduler's selectHost)."""
        return score + 0.5 * self.rng.random(np.shape(score))

    def pod_request(self, view: EdgeView, size: int | None = None) -> tuple[np.ndarray, ...]:
        """(CPU, memory) the container gets at size level `size` (the rule's by default)."""
        level = self.size if size is None else size
        cpu_frac, mem_frac = self.encoder.level_fractions(view, level)
        return view.cpu_req * cpu_frac, view.mem_req * mem_frac


class RandomRule(EdgeRule):
    """A node drawn uniformly among the allowed ones (seeded)."""

    name = "random"

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        return self.rng.random(allowed.shape)


class RoundRobinRule(EdgeRule):
    """The next allowed node after the one this site used last (state per position)."""

    name = "round-robin"

    def __init__(self, encoder: EdgeEncoder, headroom: int = STATIC_HEADROOM,
                 seed: int = 0) -> None:
        super().__init__(encoder, headroom, seed)
        self.last: np.ndarray | None = None

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        lead = allowed.shape[:-1]
        if self.last is None or self.last.shape != lead:
            self.last = np.full(lead, -1, dtype=np.int64)
        m = self.layout.nodes
        return -((self.node_ids - self.last[..., None] - 1) % m).astype(np.float64)

    def chosen(self, view: EdgeView, node: np.ndarray) -> None:
        assert self.last is not None
        self.last = np.where(node >= 0, node, self.last)


class FirstFitRule(EdgeRule):
    """The lowest-index node that the guard allows."""

    name = "first-fit"

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        return np.broadcast_to(-self.node_ids.astype(np.float64), allowed.shape)


class KubeRequestRule(EdgeRule):
    """A kube-scheduler score on requested resources (`kube_score`), ties broken at random."""

    kube_score: staticmethod

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        cpu, mem = self.pod_request(view)
        s = self.kube_score(view.node_alloc_cpu, view.node_alloc_mem, view.node_cores,
                            view.node_mem_gib, cpu, mem)
        return self.random_ties(s)


class MostAllocatedRule(KubeRequestRule):
    """Bin packing: Kubernetes' NodeResourcesFit MostAllocated score (the fullest that fits)."""

    name = "most-allocated"
    kube_score = staticmethod(kube_scores.most_allocated_score)


class K8sDefaultRule(KubeRequestRule):
    """kube-scheduler default resource scoring: LeastAllocated + BalancedAllocation."""

    name = "k8s-default"
    kube_score = staticmethod(kube_scores.k8s_default_score)


class TargetLoadPackingRule(EdgeRule):
    """Trimaran TargetLoadPacking (target 40%) on measured CPU load, not on requests."""

    name = "target-load-packing"

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        cpu, _ = self.pod_request(view)
        used = np.where(view.node_asleep, 0.0, view.node_used_cpu)
        s = kube_scores.target_load_packing_score(used, view.node_cores, cpu)
        return self.random_ties(s)


class PowerAwareRule(EdgeRule):
    """The node where the container adds the fewest watts (waking a node counts its idle)."""

    name = "power-aware"

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        return -added_power_w(view, self.pod_request(view)[0])


class PowerAwareRightSizedRule(PowerAwareRule):
    """power-aware, sized from the service's predicted p95 usage (the predicted size level:
    what a vertical pod autoscaler's recommendation gives), at request for a service not seen
    yet; resizing off. A stronger bar than sizing at request on workloads that use far less
    than they ask for. Without a predicted level it is power-aware."""

    name = "power-aware-rightsized"

    def __init__(self, encoder: EdgeEncoder, headroom: int = STATIC_HEADROOM,
                 seed: int = 0) -> None:
        super().__init__(encoder, headroom, seed)
        if encoder.predicted_size_margin is not None:
            self.size = len(encoder.size_levels)


class PowerAwareResizeRule(PowerAwareRule):
    """power-aware given the sizing levers the learned policy has: it places at the smallest
    size level and turns dynamic resizing on at the largest headroom level. The combination
    won a grid search over every (size level, headroom level) pair for power-aware and
    most-allocated on `default`, seeds 0-5 (`python benchmarks/heuristic_grid.py`): the
    strongest heuristic we know on workloads that use far less than they request."""

    name = "power-aware-resize"

    def __init__(self, encoder: EdgeEncoder, headroom: int | None = None,
                 seed: int = 0) -> None:
        super().__init__(encoder, encoder.headroom_levels - 1, seed)
        self.size = int(np.argmin(encoder.size_levels))


class PowerAwareResizeSloRule(PowerAwareResizeRule):
    """power-aware-resize within the SLO guard (hierarchy.guard.slo_guard): a container whose
    service was seen above its SLO with a container on a node slower than the reference core
    (a Raspberry Pi) goes to a fast node while one fits (power-aware among them). It reads
    the response statistics `observation.response_features` gives a learned policy (the
    simulator keeps them; a gateway keeps none yet, and there the rule is
    power-aware-resize), and it is what a heuristic does with `sizing.migrate_after_s`: an
    app moved off a Pi goes to a fast node, its own violations being the evidence."""

    name = "power-aware-resize-slo"

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        if view.svc_response is not None:
            mask = np.array(mask, dtype=np.int8)  # a copy the guard edits
            lead, m = mask.shape[:-1], self.layout.nodes
            slo_guard(mask.reshape(-1, mask.shape[-1]),
                      np.broadcast_to(view.svc_response, (*lead, 4)).reshape(-1, 4),
                      np.broadcast_to(view.node_speed, (*lead, m)).reshape(-1, m),
                      m, self.layout.sizes)
        return super().__call__(view, mask, obs)


def added_power_w(view: EdgeView, cpu: np.ndarray) -> np.ndarray:
    """(..., M) watts added on each node by `cpu` (...) cores, rounded to 1 uW for ties."""
    delta = power_delta_w(
        view.node_asleep, view.node_used_cpu, view.node_cores, view.node_idle_w,
        view.node_max_w, view.node_sleep_w, view.curves, np.asarray(cpu)[..., None, None],
    )[..., 0]
    return np.round(delta, 6)


class DependencyAwareRule(EdgeRule):
    """Closest to the container's call-graph peers, ties by load.

    Placed peers (and the app's pinned data, when this container reads it) count where they
    are: if more of them are off this site (cloud or other sites) than on it, the container
    is offloaded so the cloud level can put it next to them. Otherwise it goes to the
    allowed node hosting the most peers, ties to the least allocated CPU fraction.
    """

    name = "dependency-aware"

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        action = super().__call__(view, mask, obs)
        local = view.peers_here + np.asarray(view.data_here, dtype=np.int64)
        remote = view.peers_cloud + view.peers_other + np.asarray(view.data_elsewhere,
                                                                 dtype=np.int64)
        away = np.asarray(view.pending, dtype=bool) & (remote > local)
        return np.where(away, self.offload_action, action).astype(np.int64)

    def score(self, view: EdgeView, allowed: np.ndarray) -> np.ndarray:
        load = view.node_alloc_cpu / np.maximum(view.node_cores, 1e-9)
        # Peers are whole numbers and load lies in [0, 1]: peers first, then load.
        return 2.0 * view.node_peers - np.clip(load, 0.0, 1.0)


class EdgeOnlyRule(EdgeRule):
    """Never offloads while the guard allows any node.

    First fit at the request size; when no node fits at the request size, first fit at the
    largest smaller size level that fits. Only when the guard refuses every node at every
    size does it offload: the guard is hard, so even edge-only cannot refuse to offload then.
    """

    name = "edge-only"

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        pending = np.asarray(view.pending, dtype=bool)
        levels = np.asarray(self.encoder.size_levels)
        order = [self.size] + sorted(
            (i for i in range(levels.size) if levels[i] < levels[self.size]),
            key=lambda i: -levels[i],
        )
        action = np.full(pending.shape, self.offload_action, dtype=np.int64)
        undecided = pending.copy()
        for size in order:
            allowed = self.allowed_nodes(mask, size) & undecided[..., None]
            node = self.choose(np.broadcast_to(-self.node_ids.astype(float), allowed.shape),
                               allowed)
            found = node >= 0
            action = np.where(found, self.place_actions(size)[np.maximum(node, 0)], action)
            undecided &= ~found
        return np.where(pending, action, 0).astype(np.int64)


class CloudOnlyRule(EdgeRule):
    """Offloads every container (the cloud level then chooses its destination)."""

    name = "cloud-only"

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        pending = np.asarray(view.pending, dtype=bool)
        return np.where(pending, self.offload_action, 0).astype(np.int64)


EDGE_RULES: dict[str, type[EdgeRule]] = {
    rule.name: rule
    for rule in (
        RandomRule, RoundRobinRule, FirstFitRule, MostAllocatedRule, K8sDefaultRule,
        TargetLoadPackingRule, PowerAwareRule, PowerAwareRightSizedRule, PowerAwareResizeRule,
        PowerAwareResizeSloRule, DependencyAwareRule, EdgeOnlyRule, CloudOnlyRule,
    )
}
