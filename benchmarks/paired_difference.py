"""Paired comparison of two policies on the same seeds (common random numbers).

    python benchmarks/paired_difference.py --scenario default --a learned --b power-aware-resize
    python benchmarks/paired_difference.py --a learned:DIR --b power-aware --episodes 30

Each seed's workload is identical for both policies, so the per-seed difference of a metric
removes most of the workload's variance; its mean with a 95 % t-interval says whether A is
better than B more sharply than two overlapping per-policy intervals can. Seeds 1000, 1001, ...
(never used in training) by default.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from hierarchy.cli import parse_override
from hierarchy.scenario import load_scenario
from sim.evaluate import resolve_policies, run_episode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="default")
    p.add_argument("--a", required=True, help="policy A (e.g. learned or learned:DIR)")
    p.add_argument("--b", required=True, help="policy B (e.g. power-aware-resize)")
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--metrics", default="cost,energy_kwh,response_ms_p95,slo_violation_rate")
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                   metavar="KEY=VALUE", help="override a scenario field (as hierarchy evaluate)")
    args = p.parse_args()
    sc = load_scenario(args.scenario, dict(args.overrides) or None)
    factories = resolve_policies(sc, [args.a, args.b])
    seeds = range(args.seed, args.seed + args.episodes)
    runs = {name: [run_episode(sc, f, s).metrics for s in seeds] for name, f in factories.items()}
    print(f"\n{sc.name}: {args.a} minus {args.b}, seeds {args.seed}-{args.seed + args.episodes - 1}"
          "\n\n| metric | A | B | A - B (95 % CI) | seeds where A < B |\n|---|---:|---:|---:|---:|")
    for metric in args.metrics.split(","):
        a = np.array([m[metric] for m in runs[args.a]])
        b = np.array([m[metric] for m in runs[args.b]])
        d = a - b
        half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
        print(f"| {metric} | {a.mean():.4g} | {b.mean():.4g} | {d.mean():+.4g} ± {half:.3g} | "
              f"{int((d < 0).sum())}/{d.size} |")


if __name__ == "__main__":
    main()
