"""A small, seeded k-means (k-means++ initialisation, Lloyd iterations, best of several runs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KMeansResult:
    """Centroids ``(k, d)``, each point's cluster ``(n,)`` and the within-cluster sum of squares."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    c = [x[rng.integers(x.shape[0])]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.asarray(c)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        i = rng.choice(x.shape[0], p=d2 / total) if total > 0 else rng.integers(x.shape[0])
        c.append(x[i])
    return np.asarray(c, dtype=np.float64)


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10,
           max_iter: int = 300) -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` groups; the same seed gives the same result."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or not 1 <= k <= x.shape[0]:
        raise ValueError(f"need a 2-D array with at least k={k} rows, got shape {x.shape}")
    rng = np.random.default_rng(seed)
    best: KMeansResult | None = None
    for _ in range(n_init):
        c = _plus_plus(x, k, rng)
        labels = np.full(x.shape[0], -1)
        for _ in range(max_iter):
            new = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = x[labels == j]
                if members.size:  # an emptied cluster keeps its old centroid
                    c[j] = members.mean(axis=0)
        inertia = float(((x - c[labels]) ** 2).sum())
        if best is None or inertia < best.inertia:
            best = KMeansResult(c.copy(), labels.copy(), inertia)
    assert best is not None
    # Deterministic order: biggest cluster first, ties by centroid coordinates.
    sizes = np.bincount(best.labels, minlength=k)
    order = sorted(range(k), key=lambda j: (-sizes[j], tuple(best.centroids[j])))
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return KMeansResult(best.centroids[order], remap[best.labels], best.inertia)
