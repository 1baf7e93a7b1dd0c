"""Do the behaviour features help? Predict a container's next-window p95 CPU.

    python benchmarks/features_predict.py                 # data/public: Bitbrains, 7 days
    python benchmarks/features_predict.py --usage data/traces/bitbrains_rnd_vm01-25_2days.csv.gz
    python benchmarks/features_predict.py --window-h 6

At decision times every ``--every-h`` hours, each container's target is the p95 of its CPU
(cores; the order statistic of rank floor(0.95 (n - 1)), as in the features) over the next
``--window-h`` hours. Predictors, each from the past only:

- ``last value``: the last sample before the decision time;
- ``last window p95``: the p95 of the last ``--window-h`` hours;
- ``history p95``: the p95 of the last ``--history-h`` hours (the features' ``cpu_p95``);
- ``ridge(recent)``: ridge regression on the three values above;
- ``ridge(features)``: ridge regression on the three values above plus the full usage feature
  vector (``hierarchy.features.usage_features``) of the last ``--history-h`` hours;
- ``class ratio``: the last window p95 times the median ratio (next p95 / last window p95) of
  the point's behaviour class, the classes being k-means clusters (``fit_classes.fit``, k=7)
  of the *training* points' features.

Ridge models work in log space (inputs ``sign(x) log1p(|x| / 0.01)``, standardised; target
``log(y + 0.01)``); the penalty is chosen by 5-fold cross-validation over the *training
containers*. Containers are split by id (``--test-frac`` held out, seeded), ``--splits`` times;
the table gives each error's mean and standard deviation over the splits, measured on the
held-out containers only: MAE (cores), WAPE (sum |error| / sum target), the median relative
error (|error| / max(target, 0.01 core)) and the share of under-predictions (sizing risk).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hierarchy.features import USAGE_FEATURE_NAMES, usage_features
from hierarchy.features.fit_classes import fit as fit_classes
from hierarchy.traces import UsageSeries, read_usage
from hierarchy.traces.bitbrains import iter_bitbrains
from hierarchy.traces.errors import BadRows, ConvertStats
from hierarchy.traces.public_data import PUBLIC_DATA_DIR

BITBRAINS = "bitbrains/bitbrains_rnd_2013-7_vm01-25_first7days.csv.gz"
FLOOR = 0.01
"""Cores: log offset of the ridge target and inputs, and the relative error's floor."""
LAMBDAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class Points:
    """Decision points of one container: predictor inputs and targets."""

    feats: np.ndarray   # (m, n_usage_features)
    recent: np.ndarray  # (m, 3): last value, last-window p95, history p95
    y: np.ndarray       # (m,)


def p95(x: np.ndarray) -> float:
    return float(np.sort(x)[math.floor(0.95 * (x.size - 1))])


def decision_points(s: UsageSeries, history_h: float, window_h: float, every_h: float,
                    min_samples: int) -> Points | None:
    t, x = s.t_s, s.cpu_cores
    feats, recent, ys = [], [], []
    tau = t[0] + history_h * 3600.0
    while tau + window_h * 3600.0 <= t[-1] + 1.0:
        hist = (t >= tau - history_h * 3600.0) & (t < tau)
        last_w = (t >= tau - window_h * 3600.0) & (t < tau)
        nxt = (t >= tau) & (t < tau + window_h * 3600.0)
        if hist.sum() >= min_samples and last_w.any() and nxt.any():
            h = np.flatnonzero(hist)
            feats.append(usage_features(t[h], x[h], s.mem_gib[h], s.net_rx_mbps[h],
                                        s.net_tx_mbps[h], s.disk_mbps[h]))
            recent.append((x[h[-1]], p95(x[last_w]), p95(x[h])))
            ys.append(p95(x[nxt]))
        tau += every_h * 3600.0
    if not ys:
        return None
    return Points(np.asarray(feats), np.asarray(recent), np.asarray(ys))


def slog(a: np.ndarray) -> np.ndarray:
    return np.sign(a) * np.log1p(np.abs(a) / FLOOR)


class Ridge:
    """Ridge regression on standardised inputs, in log space."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def fit(self, x: np.ndarray, y: np.ndarray) -> Ridge:
        z = slog(x)
        self.mu, self.sd = z.mean(0), z.std(0)
        self.sd[self.sd < 1e-12] = 1.0
        z = (z - self.mu) / self.sd
        t = np.log(y + FLOOR)
        self.b0 = t.mean()
        a = z.T @ z + self.lam * np.eye(z.shape[1])
        self.w = np.linalg.solve(a, z.T @ (t - self.b0))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (slog(x) - self.mu) / self.sd
        return np.maximum(np.exp(self.b0 + z @ self.w) - FLOOR, 0.0)


def fit_cv(groups: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> Ridge:
    """Pick the penalty by 5-fold CV over containers (MAE in cores), then fit on all."""
    k = min(5, len(groups))
    fold = rng.permutation(len(groups)) % k
    best, best_err = LAMBDAS[0], math.inf
    for lam in LAMBDAS:
        err = 0.0
        for f in range(k):
            tr = [g for g, q in zip(groups, fold, strict=True) if q != f]
            te = [g for g, q in zip(groups, fold, strict=True) if q == f]
            m = Ridge(lam).fit(np.vstack([g[0] for g in tr]), np.concatenate([g[1] for g in tr]))
            err += sum(float(np.abs(m.predict(g[0]) - g[1]).sum()) for g in te)
        if err < best_err:
            best, best_err = lam, err
    x_all = np.vstack([g[0] for g in groups])
    return Ridge(best).fit(x_all, np.concatenate([g[1] for g in groups]))


def class_ratio(pts: dict[str, Points], train: list[str], test: list[str],
                seed: int, k: int = 7) -> np.ndarray:
    """Last-window p95 times its class's median next/last ratio (classes fitted on train)."""
    f_tr = np.vstack([pts[c].feats for c in train])
    ratio = np.concatenate([np.log((pts[c].y + FLOOR) / (pts[c].recent[:, 1] + FLOOR))
                            for c in train])
    classes = fit_classes(f_tr, k, seed, "")
    lab = classes.assign(f_tr)
    med = np.array([np.median(ratio[lab == j]) if np.any(lab == j) else 0.0 for j in range(k)])
    base = np.concatenate([pts[c].recent[:, 1] for c in test])
    lab_te = classes.assign(np.vstack([pts[c].feats for c in test]))
    return np.maximum((base + FLOOR) * np.exp(med[lab_te]) - FLOOR, 0.0)


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    e = np.abs(pred - y)
    return {"mae": float(e.mean()), "wape": float(e.sum() / max(y.sum(), 1e-12)),
            "medrel": float(np.median(e / np.maximum(y, FLOOR))),
            "under": float((pred < y).mean())}


def load(args: argparse.Namespace) -> list[UsageSeries]:
    series: list[UsageSeries] = []
    if args.data is not None:
        st = ConvertStats()
        per: dict[str, list] = {}
        for r in iter_bitbrains(args.data / BITBRAINS, BadRows(False, st), st):
            per.setdefault(r.container_id, []).append(r)
        series += [UsageSeries.from_rows(k, v) for k, v in per.items()]
    for u in args.usage:
        series += list(read_usage(u).values())
    return series


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--data", type=Path, help="folder of the public trace slices (uses its "
                   "Bitbrains slice; default: data/public, unless only --usage is given)")
    p.add_argument("--usage", type=Path, action="append", default=[],
                   help="a usage-series CSV in hierarchy's format (repeatable)")
    p.add_argument("--history-h", type=float, default=24.0)
    p.add_argument("--window-h", type=float, default=1.0)
    p.add_argument("--every-h", type=float, default=1.0)
    p.add_argument("--min-samples", type=int, default=24)
    p.add_argument("--test-frac", type=float, default=0.4)
    p.add_argument("--splits", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.data is None and not args.usage:
        args.data = PUBLIC_DATA_DIR
    series = load(args)
    pts = {s.container_id: decision_points(s, args.history_h, args.window_h, args.every_h,
                                           args.min_samples) for s in series}
    ids = sorted(k for k, v in pts.items() if v is not None)
    n_pts = sum(pts[k].y.size for k in ids)
    print(f"{len(ids)} containers, {n_pts} decision points; history {args.history_h:g} h, "
          f"target: p95 of the next {args.window_h:g} h; {args.splits} splits holding out "
          f"{args.test_frac:.0%} of the containers; {len(USAGE_FEATURE_NAMES)} features",
          file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    names = ["last value", "last window p95", "history p95", "ridge(recent)", "ridge(features)",
             "class ratio"]
    res: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(args.splits):
        perm = rng.permutation(len(ids))
        n_test = max(1, round(args.test_frac * len(ids)))
        test = [ids[i] for i in perm[:n_test]]
        train = [ids[i] for i in perm[n_test:]]
        y = np.concatenate([pts[k].y for k in test])
        rec = np.vstack([pts[k].recent for k in test])
        preds = {"last value": rec[:, 0], "last window p95": rec[:, 1], "history p95": rec[:, 2]}
        m_rec = fit_cv([(pts[k].recent, pts[k].y) for k in train], rng)
        preds["ridge(recent)"] = m_rec.predict(rec)
        full = [(np.hstack([pts[k].recent, pts[k].feats]), pts[k].y) for k in train]
        m_full = fit_cv(full, rng)
        preds["ridge(features)"] = m_full.predict(
            np.vstack([np.hstack([pts[k].recent, pts[k].feats]) for k in test]))
        preds["class ratio"] = class_ratio(pts, train, test, args.seed)
        for n in names:
            res[n].append(metrics(preds[n], y))
    print("\n| predictor | MAE (cores) | WAPE | median rel. error | under-predicted |")
    print("|---|---|---|---|---|")
    for n in names:
        cells = []
        for key, fmt in (("mae", "{:.4f} ± {:.4f}"), ("wape", "{:.1%} ± {:.1%}"),
                         ("medrel", "{:.1%} ± {:.1%}"), ("under", "{:.0%} ± {:.0%}")):
            v = np.array([r[key] for r in res[n]])
            cells.append(fmt.format(v.mean(), v.std()))
        print(f"| {n} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
