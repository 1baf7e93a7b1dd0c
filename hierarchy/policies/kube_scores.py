"""Node scores of the Kubernetes scheduler and of Trimaran, with their own integer arithmetic.

Each function scores every node of a site for one incoming pod, vectorised over any leading
shape: node arrays are (..., M), the pod's request is (...). Scores are on the kube-scheduler
scale 0..100 (`MaxNodeScore`) and, as there, int64 with truncating division, so that ties
arise exactly where the real scheduler sees them. CPU is converted to millicores and memory
to bytes first, the units the scheduler works in.

Sources (kubernetes/kubernetes, pkg/scheduler/framework/plugins/noderesources/):
- `least_allocated.go`: leastRequestedScore = (capacity - requested) * MaxNodeScore / capacity,
  0 when requested > capacity; node score = sum(weight * score) / sum(weight), with the
  default resources cpu and memory, weight 1 each (`resource_allocation.go`,
  defaultRequestedRatioResources).
- `most_allocated.go`: mostRequestedScore = min(requested, capacity) * MaxNodeScore /
  capacity, combined the same way.
- `balanced_allocation.go`: fractions requested / allocatable clipped to 1; with two resources
  std = |f_cpu - f_mem| / 2; score = int64((1 - std) * MaxNodeScore).
- In every one of them "requested" is what the node's pods request plus the incoming pod
  (`resource_allocation.go`, calculateResourceAllocatableRequest).
- `pkg/scheduler/apis/config/v1/default_plugins.go`: NodeResourcesFit (LeastAllocated by
  default) and NodeResourcesBalancedAllocation both have weight 1 in the default profile.

Trimaran (kubernetes-sigs/scheduler-plugins, pkg/trimaran/targetloadpacking/
targetloadpacking.go, defaults in apis/config/v1/defaults.go): a pod without limits is
predicted to use DefaultRequestsMultiplier (1.5) x its CPU request; predicted node
utilisation U = 100 * (measured + pod + recently placed, not yet measured) / capacity. With
target T = 40: U > 100 scores 0 (MinNodeScore); U > T scores round(T * (100 - U) / (100 - T));
otherwise round((100 - T) * U / T + T), so the best node is the one brought closest to T.
"""

from __future__ import annotations

import numpy as np

MAX_NODE_SCORE = 100
# Default weights of the two score plugins in the kube-scheduler's default profile.
FIT_WEIGHT = 1
BALANCED_WEIGHT = 1
# Trimaran TargetLoadPacking defaults.
TLP_TARGET_UTILIZATION_PCT = 40
TLP_REQUESTS_MULTIPLIER = 1.5

_BYTES_PER_GIB = 1 << 30


def _millicores(cores: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(cores, dtype=np.float64) * 1000.0).astype(np.int64)


def _bytes(gib: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(gib, dtype=np.float64) * _BYTES_PER_GIB).astype(np.int64)


def _requested_and_capacity(
    alloc_cpu: np.ndarray, alloc_mem: np.ndarray, cores: np.ndarray, mem_gib: np.ndarray,
    pod_cpu: np.ndarray, pod_mem: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(requested cpu, requested mem, capacity cpu, capacity mem) incl. the incoming pod."""
    req_cpu = _millicores(alloc_cpu) + _millicores(pod_cpu)[..., None]
    req_mem = _bytes(alloc_mem) + _bytes(pod_mem)[..., None]
    return req_cpu, req_mem, _millicores(cores), _bytes(mem_gib)


def _least_requested(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    safe = np.maximum(capacity, 1)
    score = (capacity - requested) * MAX_NODE_SCORE // safe
    return np.where((capacity == 0) | (requested > capacity), 0, score)


def _most_requested(requested: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    safe = np.maximum(capacity, 1)
    score = np.minimum(requested, capacity) * MAX_NODE_SCORE // safe
    return np.where(capacity == 0, 0, score)


def least_allocated_score(
    alloc_cpu: np.ndarray, alloc_mem: np.ndarray, cores: np.ndarray, mem_gib: np.ndarray,
    pod_cpu: np.ndarray, pod_mem: np.ndarray,
) -> np.ndarray:
    """NodeResourcesFit's LeastAllocated score (..., M), int64 in 0..100."""
    rc, rm, cc, cm = _requested_and_capacity(alloc_cpu, alloc_mem, cores, mem_gib, pod_cpu,
                                             pod_mem)
    return (_least_requested(rc, cc) + _least_requested(rm, cm)) // 2


def most_allocated_score(
    alloc_cpu: np.ndarray, alloc_mem: np.ndarray, cores: np.ndarray, mem_gib: np.ndarray,
    pod_cpu: np.ndarray, pod_mem: np.ndarray,
) -> np.ndarray:
    """NodeResourcesFit's MostAllocated score (..., M), int64 in 0..100."""
    rc, rm, cc, cm = _requested_and_capacity(alloc_cpu, alloc_mem, cores, mem_gib, pod_cpu,
                                             pod_mem)
    return (_most_requested(rc, cc) + _most_requested(rm, cm)) // 2


def balanced_allocation_score(
    alloc_cpu: np.ndarray, alloc_mem: np.ndarray, cores: np.ndarray, mem_gib: np.ndarray,
    pod_cpu: np.ndarray, pod_mem: np.ndarray,
) -> np.ndarray:
    """NodeResourcesBalancedAllocation's score (..., M), int64 in 0..100."""
    rc, rm, cc, cm = _requested_and_capacity(alloc_cpu, alloc_mem, cores, mem_gib, pod_cpu,
                                             pod_mem)
    f_cpu = np.minimum(rc / np.maximum(cc, 1), 1.0)
    f_mem = np.minimum(rm / np.maximum(cm, 1), 1.0)
    # A resource with zero allocatable is left out; with one resource left, std is 0.
    both = (cc > 0) & (cm > 0)
    std = np.where(both, np.abs(f_cpu - f_mem) / 2.0, 0.0)
    return ((1.0 - std) * MAX_NODE_SCORE).astype(np.int64)


def k8s_default_score(
    alloc_cpu: np.ndarray, alloc_mem: np.ndarray, cores: np.ndarray, mem_gib: np.ndarray,
    pod_cpu: np.ndarray, pod_mem: np.ndarray,
) -> np.ndarray:
    """The default profile's resource score: LeastAllocated + BalancedAllocation (0..200)."""
    args = (alloc_cpu, alloc_mem, cores, mem_gib, pod_cpu, pod_mem)
    return FIT_WEIGHT * least_allocated_score(*args) + BALANCED_WEIGHT * (
        balanced_allocation_score(*args)
    )


def target_load_packing_score(
    used_cpu: np.ndarray, cores: np.ndarray, pod_cpu: np.ndarray,
    target_pct: float = TLP_TARGET_UTILIZATION_PCT,
    multiplier: float = TLP_REQUESTS_MULTIPLIER,
) -> np.ndarray:
    """Trimaran TargetLoadPacking score (..., M), int64 in 0..100, on measured CPU load.

    `used_cpu` (cores) is the node's measured load plus what was placed since it was last
    measured (Trimaran's ScheduledPodsCache); `pod_cpu` is the pod's request.
    """
    cap = _millicores(cores).astype(np.float64)
    used = _millicores(used_cpu).astype(np.float64)
    pod = np.rint(_millicores(pod_cpu) * multiplier)[..., None]
    predicted = np.where(cap > 0, 100.0 * (used + pod) / np.maximum(cap, 1.0), 0.0)
    t = float(target_pct)
    # math.Round rounds half away from zero; every value here is >= 0.
    below = np.floor((100.0 - t) * predicted / t + t + 0.5)
    above = np.floor(t * (100.0 - predicted) / (100.0 - t) + 0.5)
    score = np.where(predicted > t, np.where(predicted > 100.0, 0.0, above), below)
    return score.astype(np.int64)
