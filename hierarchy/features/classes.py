"""Behaviour classes: a small, versioned file of k-means centroids with names, and the
nearest-centroid classifier that the simulator and the edge agent share.

The file (``models/behaviour_classes.json``, rebuilt by ``python -m
hierarchy.features.fit_classes``) holds the clustering features' means and scales, the
centroids in standardised units, one name per centroid, the feature version and the data it
was fitted to. Names come from the centroid's features by ``name_centroid``'s documented rules,
so several clusters may share a name; ``CLASS_NAMES`` is the fixed set (and one-hot order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hierarchy.features.spec import FEATURES_VERSION, INDEX, N_FEATURES, N_USAGE

CLASS_NAMES = ("idle", "steady", "periodic", "bursty", "growing")
"""Every behaviour class, in one-hot order."""

CLASSES_SCHEMA = 1
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "models" / "behaviour_classes.json"

CLUSTER_FEATURES = ("log_cpu_mean", "cpu_cv", "log_peak_to_mean", "cpu_acf_1h", "cpu_acf_1d",
                    "cpu_period_strength", "cpu_burstiness", "cpu_trend_rel_per_day",
                    "mem_growth_rel_per_day")
"""The (transformed) features k-means sees; see ``cluster_vector``."""

LOG_FLOOR_CORES = 1e-3
"""``log_cpu_mean = log10(cpu_mean + LOG_FLOOR_CORES)``."""
CLIP = {"cpu_cv": (0.0, 5.0), "log_peak_to_mean": (0.0, 2.0),
        "cpu_trend_rel_per_day": (-1.0, 1.0), "mem_growth_rel_per_day": (-1.0, 1.0)}
"""Clipping keeps a few extreme containers from owning a centroid."""

def cluster_vector(features: np.ndarray) -> np.ndarray:
    """Map feature vector(s) (``FEATURE_NAMES`` order, or the usage part) to the clustering
    space, ``CLUSTER_FEATURES`` order. Works on shape ``(n_features,)`` or ``(n, n_features)``."""
    f = np.asarray(features, dtype=np.float64)
    if f.shape[-1] not in (N_USAGE, N_FEATURES):
        raise ValueError(f"expected {N_USAGE} or {N_FEATURES} features, got {f.shape[-1]}")
    cols = {
        "log_cpu_mean": np.log10(np.maximum(f[..., INDEX["cpu_mean"]], 0.0) + LOG_FLOOR_CORES),
        "cpu_cv": f[..., INDEX["cpu_cv"]],
        "log_peak_to_mean": np.log10(np.maximum(f[..., INDEX["cpu_peak_to_mean"]], 1.0)),
        "cpu_acf_1h": f[..., INDEX["cpu_acf_1h"]],
        "cpu_acf_1d": f[..., INDEX["cpu_acf_1d"]],
        "cpu_period_strength": f[..., INDEX["cpu_period_strength"]],
        "cpu_burstiness": f[..., INDEX["cpu_burstiness"]],
        "cpu_trend_rel_per_day": f[..., INDEX["cpu_trend_rel_per_day"]],
        "mem_growth_rel_per_day": f[..., INDEX["mem_growth_rel_per_day"]],
    }
    for k, (lo, hi) in CLIP.items():
        cols[k] = np.clip(cols[k], lo, hi)
    return np.stack([cols[k] for k in CLUSTER_FEATURES], axis=-1)


# Naming rules, applied to a centroid in the units of ``cluster_vector``, in this order (the
# first that matches names it): idle (low and not spiky), growing (a sustained trend changes
# the size a container will need), bursty (spikes decide its headroom), periodic (a daily or
# hourly pattern), else steady. A falling trend has no class of its own.
IDLE_MEAN_CORES = 0.025
"""idle: mean CPU below this many cores (geometric mean, for a centroid), and not bursty."""
GROWING_REL_PER_DAY = 0.1
"""growing: CPU trend or memory growth of at least 10 % of the mean per day."""
BURSTY_SHARE = 0.25
BURSTY_CV = 1.5
"""bursty: at least 25 % of the CPU used in spikes, or a coefficient of variation >= 1.5."""
PERIODIC_STRENGTH = 0.2
PERIODIC_ACF_1D = 0.5
"""periodic: at least 20 % of the (5-min mean) variance at one candidate period, or a daily
autocorrelation of at least 0.5 (a narrow daily peak spreads its power over harmonics)."""


def name_centroid(c: Mapping[str, float]) -> str:
    """The class name of a centroid given in ``cluster_vector`` units (rules above, in order:
    idle, growing, bursty, periodic, else steady)."""
    bursty = c["cpu_burstiness"] >= BURSTY_SHARE or c["cpu_cv"] >= BURSTY_CV
    if 10.0 ** c["log_cpu_mean"] - LOG_FLOOR_CORES < IDLE_MEAN_CORES and not bursty:
        return "idle"
    if c["cpu_trend_rel_per_day"] >= GROWING_REL_PER_DAY \
            or c["mem_growth_rel_per_day"] >= GROWING_REL_PER_DAY:
        return "growing"
    if bursty:
        return "bursty"
    if c["cpu_period_strength"] >= PERIODIC_STRENGTH or c["cpu_acf_1d"] >= PERIODIC_ACF_1D:
        return "periodic"
    return "steady"


@dataclass(frozen=True)
class BehaviourClasses:
    """Fitted behaviour classes: standardisation, centroids and their names."""

    mean: np.ndarray          # (d,) clustering-feature means
    scale: np.ndarray         # (d,) clustering-feature standard deviations (> 0)
    centroids: np.ndarray     # (k, d) in standardised units
    names: tuple[str, ...]    # (k,) one of CLASS_NAMES each
    features_version: int = FEATURES_VERSION
    source: str = ""
    counts: tuple[int, ...] = ()

    def assign(self, features: np.ndarray) -> np.ndarray:
        """Nearest centroid index of feature vector(s): int, or an int64 array for ``(n, F)``."""
        z = (cluster_vector(features) - self.mean) / self.scale
        d = ((z[..., None, :] - self.centroids) ** 2).sum(axis=-1)
        return np.argmin(d, axis=-1)

    def classify(self, features: np.ndarray) -> str:
        """The class name of one feature vector."""
        return self.names[int(self.assign(np.asarray(features)[None])[0])]

    def one_hot(self, features: np.ndarray) -> np.ndarray:
        """A float32 one-hot over ``CLASS_NAMES`` of one feature vector."""
        out = np.zeros(len(CLASS_NAMES), dtype=np.float32)
        out[CLASS_NAMES.index(self.classify(features))] = 1.0
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CLASSES_SCHEMA, "features_version": self.features_version,
            "cluster_features": list(CLUSTER_FEATURES), "class_names": list(CLASS_NAMES),
            "mean": [float(v) for v in self.mean], "scale": [float(v) for v in self.scale],
            "centroids": [[float(v) for v in row] for row in self.centroids],
            "names": list(self.names), "counts": list(self.counts), "source": self.source,
        }


def _floats(doc: Mapping[str, Any], key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    try:
        a = np.asarray(doc[key], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: field {key!r} missing or not numbers ({exc})") from None
    if a.shape != shape or not np.all(np.isfinite(a)):
        raise ValueError(f"{path}: field {key!r} must be finite numbers of shape {shape}, "
                         f"got {a.shape}")
    return a


def load_classes(path: str | Path | None = None) -> BehaviourClasses:
    """Load and check a behaviour-classes file (default ``models/behaviour_classes.json``).

    Raises ``ValueError`` naming the file and field when it is malformed or was fitted for
    another feature version or clustering space (refit with ``python -m
    hierarchy.features.fit_classes``), ``FileNotFoundError`` if it is missing.
    """
    p = Path(path) if path is not None else DEFAULT_PATH
    with open(p, encoding="utf-8") as fh:
        try:
            doc = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a JSON object")
    if doc.get("schema") != CLASSES_SCHEMA or doc.get("features_version") != FEATURES_VERSION:
        raise ValueError(f"{p}: fitted for schema {doc.get('schema')} / features version "
                         f"{doc.get('features_version')}, this code has {CLASSES_SCHEMA} / "
                         f"{FEATURES_VERSION}: refit with python -m "
                         "hierarchy.features.fit_classes")
    if tuple(doc.get("cluster_features", ())) != CLUSTER_FEATURES:
        raise ValueError(f"{p}: field 'cluster_features' differs from this code's "
                         f"{CLUSTER_FEATURES}: refit")
    d = len(CLUSTER_FEATURES)
    names = tuple(doc.get("names", ()))
    k = len(names)
    if k == 0 or any(n not in CLASS_NAMES for n in names):
        raise ValueError(f"{p}: field 'names' must list one of {CLASS_NAMES} per centroid")
    scale = _floats(doc, "scale", (d,), p)
    if np.any(scale <= 0):
        raise ValueError(f"{p}: field 'scale' must be > 0")
    counts = doc.get("counts", [])
    return BehaviourClasses(
        mean=_floats(doc, "mean", (d,), p), scale=scale,
        centroids=_floats(doc, "centroids", (k, d), p), names=names,
        features_version=FEATURES_VERSION, source=str(doc.get("source", "")),
        counts=tuple(int(c) for c in counts) if isinstance(counts, list) else ())


_DEFAULT: BehaviourClasses | None = None


def classify(features: np.ndarray, classes: BehaviourClasses | None = None) -> str:
    """The behaviour class name of one feature vector, with ``classes`` or the default file
    (loaded once)."""
    global _DEFAULT
    if classes is None:
        if _DEFAULT is None:
            _DEFAULT = load_classes()
        classes = _DEFAULT
    return classes.classify(features)

