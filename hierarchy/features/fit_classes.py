"""Fit the behaviour classes to real traces and write ``models/behaviour_classes.json``.

A developer tool (it reads only the folders and files it is given)::

    python -m hierarchy.features.fit_classes \\
        --out models/behaviour_classes.json [--usage more.csv.gz ...] [--k 6] [--seed 0]

Every usage series found (the Bitbrains slice under ``--data``, the per-instance series of
Alibaba 2021 ``Resource.csv`` if present, and any ``--usage`` file in hierarchy's format) is
cut into windows of ``--window-h`` hours every ``--stride-h`` hours (windows with fewer than
``--min-samples`` samples are left out); each window's features are mapped to the clustering
space (``classes.cluster_vector``), standardised, and clustered by a seeded k-means; each
centroid is named by ``classes.name_centroid``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hierarchy.features.batch import usage_features
from hierarchy.features.classes import (
    CLUSTER_FEATURES,
    DEFAULT_PATH,
    LOG_FLOOR_CORES,
    BehaviourClasses,
    cluster_vector,
    name_centroid,
)
from hierarchy.features.kmeans import kmeans
from hierarchy.traces.bitbrains import iter_bitbrains
from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.public_data import PUBLIC_DATA_DIR
from hierarchy.traces.textio import csv_rows
from hierarchy.traces.usage import UsageSeries, iter_usage_series, read_usage

BITBRAINS = "bitbrains/bitbrains_rnd_2013-7_vm01-25_first7days.csv.gz"
ALIBABA_2021_RESOURCE = "alibaba_microservices_v2021_sample/Resource.csv"

Series = tuple[str, np.ndarray, np.ndarray, np.ndarray]  # id, t_s, cpu_cores, mem_gib


def load_bitbrains(path: Path) -> list[Series]:
    """The Bitbrains VMs of the joined CSV, as (id, t_s, cpu_cores, mem_gib)."""
    st = ConvertStats(fmt="bitbrains")
    per: dict[str, list[tuple[float, float, float]]] = {}
    for r in iter_bitbrains(path, BadRows(False, st), st, id_prefix="bitbrains-"):
        per.setdefault(r.container_id, []).append((r.t_s, r.cpu_cores, r.mem_gib))
    return [(k, *np.asarray(v).T) for k, v in per.items()]


def load_alibaba2021_resource(path: Path) -> list[Series]:
    """Per-instance series of the 2021 ``Resource.csv`` (``instance_cpu_usage`` as given)."""
    rows = csv_rows(path)
    head = [c.strip() for c in next(rows)[1]]
    i_id, i_cpu, i_mem, i_t = (head.index(c) for c in ("msinstanceid", "instance_cpu_usage",
                                                      "instance_memory_usage", "timestamp"))
    per: dict[str, list[tuple[float, float, float]]] = {}
    for _, f in rows:
        try:
            per.setdefault(f[i_id], []).append((float(f[i_t]) / 1000.0, float(f[i_cpu]),
                                                float(f[i_mem])))
        except (ValueError, IndexError):
            continue
    out = []
    for k, v in per.items():
        a = np.asarray(sorted(set(v)))
        keep = np.r_[True, np.diff(a[:, 0]) > 0]
        out.append((f"alibaba2021-{k[:12]}", a[keep, 0], a[keep, 1], a[keep, 2]))
    return out


def from_usage_file(path: Path) -> list[Series]:
    """Series of a hierarchy usage CSV (grouped by container, else loaded whole)."""
    try:
        series: list[UsageSeries] = list(iter_usage_series(path))
    except ValueError:
        series = list(read_usage(path).values())
    return [(s.container_id, s.t_s, s.cpu_cores, s.mem_gib) for s in series]


def windows(s: Series, window_h: float, stride_h: float, min_samples: int) -> list[np.ndarray]:
    """Usage-feature vectors of the windows of one series."""
    _, t, cpu, mem = s
    out = []
    start = t[0]
    while start < t[-1] or start == t[0]:
        sel = (t >= start) & (t < start + window_h * 3600.0)
        if sel.sum() >= min_samples:
            out.append(usage_features(t[sel], cpu[sel], mem[sel]))
        start += stride_h * 3600.0
        if start + 0.5 * window_h * 3600.0 > t[-1]:
            break
    return out


def fit(feats: np.ndarray, k: int, seed: int, source: str) -> BehaviourClasses:
    """Standardise, cluster and name."""
    z_raw = cluster_vector(feats)
    mean = z_raw.mean(axis=0)
    scale = z_raw.std(axis=0)
    scale[scale <= 1e-12] = 1.0
    res = kmeans((z_raw - mean) / scale, k, seed=seed)
    names = tuple(name_centroid(dict(zip(CLUSTER_FEATURES, c * scale + mean, strict=True)))
                  for c in res.centroids)
    counts = tuple(int(n) for n in np.bincount(res.labels, minlength=k))
    return BehaviourClasses(mean=mean, scale=scale, centroids=res.centroids, names=names,
                            source=source, counts=counts)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hierarchy.features.fit_classes",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path,
                   help="folder of the public trace slices (default: data/public, unless only "
                   "--usage is given)")
    p.add_argument("--usage", type=Path, action="append", default=[],
                   help="a usage-series CSV in hierarchy's format (repeatable)")
    p.add_argument("--out", type=Path, default=DEFAULT_PATH, help="output JSON (%(default)s)")
    p.add_argument("--k", type=int, default=7, help="number of clusters (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed (%(default)s)")
    p.add_argument("--window-h", type=float, default=48.0, help="window length (%(default)s h)")
    p.add_argument("--stride-h", type=float, default=24.0, help="window stride (%(default)s h)")
    p.add_argument("--min-samples", type=int, default=24,
                   help="fewest samples in a window (%(default)s)")
    args = p.parse_args(argv)
    if args.data is None and not args.usage:
        args.data = PUBLIC_DATA_DIR
    sources: list[tuple[str, list[Series]]] = []
    if args.data is not None:
        if (args.data / BITBRAINS).is_file():
            sources.append((BITBRAINS, load_bitbrains(args.data / BITBRAINS)))
        if (args.data / ALIBABA_2021_RESOURCE).is_file():
            sources.append((ALIBABA_2021_RESOURCE,
                            load_alibaba2021_resource(args.data / ALIBABA_2021_RESOURCE)))
    for u in args.usage:
        sources.append((u.name, from_usage_file(u)))
    feats: list[np.ndarray] = []
    parts = []
    for name, series in sources:
        w = [f for s in series for f in windows(s, args.window_h, args.stride_h,
                                                args.min_samples)]
        used = sum(1 for s in series if windows(s, args.window_h, args.stride_h,
                                                args.min_samples))
        most = max((s[1].size for s in series), default=0)
        parts.append(f"{name}: {len(series)} series, {used} with >= {args.min_samples} samples "
                     f"per window (longest {most} samples), {len(w)} windows")
        print(parts[-1], file=sys.stderr)
        feats += w
    if len(feats) < args.k:
        p.error(f"only {len(feats)} windows found: need at least --k {args.k}")
    source = (f"{'; '.join(parts)}; windows of {args.window_h:g} h every {args.stride_h:g} h; "
              f"k-means k={args.k} seed={args.seed}")
    classes = fit(np.asarray(feats), args.k, args.seed, source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(classes.to_json(), indent=1) + "\n", encoding="utf-8")
    cent = classes.centroids * classes.scale + classes.mean
    print(f"wrote {args.out} ({len(feats)} windows)")
    print(f"{'#':>2} {'name':<9} {'n':>4}  mean_cores  " + "  ".join(CLUSTER_FEATURES[1:]))
    for j, (name, n, c) in enumerate(zip(classes.names, classes.counts, cent, strict=True)):
        vals = "  ".join(f"{v:>{len(h)}.3f}" for v, h in zip(c[1:], CLUSTER_FEATURES[1:],
                                                            strict=True))
        print(f"{j:>2} {name:<9} {n:>4}  {10 ** c[0] - LOG_FLOOR_CORES:>10.4f}  {vals}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
