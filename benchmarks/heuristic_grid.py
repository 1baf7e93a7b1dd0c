"""Grid search of the heuristics' sizing levers: every (size level, headroom level) pair.

    python benchmarks/heuristic_grid.py                 # power-aware and most-allocated on
                                                        # default, seeds 0-5 (about 2 minutes)
    python benchmarks/heuristic_grid.py --rules power-aware --seeds 6

The baselines size at request with resizing off, as Kubernetes does without a vertical pod
autoscaler. This measures how much a heuristic gains from the same sizing and resizing levers
the learned policy has; its winner is the `power-aware-resize` baseline. It runs on training
seeds (0, 1, ...), never on the evaluation seeds (1000, ...) the README's tables use.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from hierarchy.policies.base import Policy
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.policies.heuristics import EDGE_RULES
from hierarchy.scenario import load_scenario
from sim.evaluate import run_episode


def factory(rule_name: str, size: int, headroom: int):  # noqa: ANN201
    def build(scenario, core, seed: int) -> Policy:  # noqa: ANN001
        rule = EDGE_RULES[rule_name](core.edge_encoder, headroom=headroom, seed=seed)
        rule.size = size
        return Policy(f"{rule_name}[size {size}, headroom {headroom}]", rule,
                      NearPeersCloudRule())

    return build


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="default")
    p.add_argument("--rules", default="power-aware,most-allocated")
    p.add_argument("--seeds", type=int, default=6, help="how many seeds (default 6)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="the first seed (default 0: training seeds; 1000 and on are the "
                        "README's evaluation seeds, for diagnosis only)")
    args = p.parse_args()
    sc = load_scenario(args.scenario)
    sizes = list(sc.sizing.size_levels)
    heads = list(sc.sizing.headroom_levels)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    rows = []
    for rule, s, h in itertools.product(args.rules.split(","), range(len(sizes)),
                                        range(len(heads))):
        costs = [run_episode(sc, factory(rule, s, h), seed).metrics["cost"]
                 for seed in seeds]
        rows.append((float(np.mean(costs)), rule, s, h))
    print(f"\n{args.scenario}, seeds {seeds[0]}-{seeds[-1]}, mean cost (size level x request; "
          "headroom -1 = resizing off)\n")
    print("| rule | size level | headroom | cost |\n|---|---:|---:|---:|")
    for cost, rule, s, h in sorted(rows):
        print(f"| {rule} | {sizes[s]} | {heads[h]} | {cost:.3f} |")


if __name__ == "__main__":
    main()
