"""Container-behaviour features (NumPy only: the edge agent imports this).

* ``FEATURE_NAMES`` / ``FEATURES_VERSION``: the fixed, versioned vector layout (``spec.py``);
* ``usage_features`` (batch, arrays) and ``extract`` (a ``UsageSeries`` + optional call graph);
* ``StreamingFeatures``: the same vector online, O(1) per sample, bounded memory;
* ``graph_features``: a container's place in its call graph;
* ``load_classes`` / ``classify``: behaviour classes (``classes.py``).

Definitions and units: ``docs/features.md``.
"""

from __future__ import annotations

import numpy as np

from hierarchy.features.batch import usage_features
from hierarchy.features.classes import (
    CLASS_NAMES,
    BehaviourClasses,
    classify,
    load_classes,
)
from hierarchy.features.graph import app_graph_features, graph_features
from hierarchy.features.spec import (
    BUCKET_S,
    FEATURE_NAMES,
    FEATURES_VERSION,
    GRAPH_FEATURE_NAMES,
    INDEX,
    N_FEATURES,
    N_USAGE,
    USAGE_FEATURE_NAMES,
)
from hierarchy.features.streaming import StreamingFeatures
from hierarchy.traces.callgraph import CallGraph
from hierarchy.traces.usage import UsageSeries


def extract(series: UsageSeries, graph: CallGraph | None = None, node: str | None = None, *,
            bucket_s: float = BUCKET_S) -> np.ndarray:
    """The full feature vector (``FEATURE_NAMES`` order) of one container.

    Args:
        series: the container's usage series (``hierarchy.traces.read_usage``).
        graph, node: its application's call graph and its node name there (default: the
            series' container id); without a graph the call-graph features are 0.
        bucket_s: as in ``usage_features``.
    """
    f = np.zeros(N_FEATURES)
    f[:N_USAGE] = usage_features(series.t_s, series.cpu_cores, series.mem_gib,
                                 series.net_rx_mbps, series.net_tx_mbps, series.disk_mbps,
                                 bucket_s=bucket_s)
    if graph is not None:
        f[N_USAGE:] = graph_features(graph, node if node is not None else series.container_id)
    return f


__all__ = [
    "BUCKET_S", "CLASS_NAMES", "FEATURES_VERSION", "FEATURE_NAMES", "GRAPH_FEATURE_NAMES",
    "INDEX", "N_FEATURES", "N_USAGE", "USAGE_FEATURE_NAMES", "BehaviourClasses",
    "StreamingFeatures", "app_graph_features", "classify", "extract", "graph_features",
    "load_classes", "usage_features",
]
