"""Where policies put containers, how many big nodes they keep awake, what their cost is.

    python benchmarks/where_placed.py --policies learned,power-aware-resize --seeds 1000,1001
    python benchmarks/where_placed.py --policies learned:DIR --seeds 1011 --set KEY=VALUE

Edge nodes are split by the power they draw awake above their sleep draw: "big" nodes (above
`--big-w`, 3 W by default: the N100 mini PCs of `default`, 8.2 W) and "small" ones (the
Raspberry Pis, 1.0 W). For each policy, summed over the seeds: placements on each class, the
mean number of awake nodes of each class per tick, and the episode's unweighted cost terms
(energy kWh, latency over SLO and SLO-violation app-hours, ...). This is the diagnosis behind
docs/training.md ("Why it does not beat power-aware-resize").
"""

from __future__ import annotations

import argparse

import numpy as np

from hierarchy.actions import EDGE_PLACE
from hierarchy.cli import parse_override
from hierarchy.scenario import load_scenario
from sim.core import BatchedCore
from sim.evaluate import resolve_policies
from sim.state import TERM_NAMES


def profile(scenario, factory, seed: int, big_w: float) -> dict[str, float]:  # noqa: ANN001
    """One episode of one copy: placements and awake nodes by class, and the cost terms."""
    core = BatchedCore(scenario, batch_size=1, seed=seed, record_metrics=True)
    policy = factory(scenario, core, seed)
    S, M = core.S, core.M
    extra_w = (core.topo.node_idle_w - core.topo.node_sleep_w)[: S * M].reshape(S, M)
    big = extra_w > big_w
    placed_big = placed_small = 0
    awake_big: list[int] = []
    awake_small: list[int] = []
    terms = np.zeros(len(TERM_NAMES))
    cost = 0.0
    while True:
        edge = policy.edge(core.edge_view, core.edge_mask, core.edge_obs)
        cloud = policy.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs)
        kind, node, _, _ = core.edge_layout.decode(np.asarray(edge).reshape(S))
        for s in np.flatnonzero(kind == EDGE_PLACE):
            if big[s, node[s]]:
                placed_big += 1
            else:
                placed_small += 1
        out = core.step(edge, cloud)
        terms += out.terms[0]
        cost += float(out.cost[0])
        if out.advanced[0]:
            awake = ~core.st.asleep[0, : S * M].reshape(S, M)
            awake_big.append(int((awake & big).sum()))
            awake_small.append(int((awake & ~big).sum()))
        if out.truncated[0]:
            break
    return {"cost": cost, "placed_big": placed_big, "placed_small": placed_small,
            "awake_big": float(np.mean(awake_big)), "awake_small": float(np.mean(awake_small)),
            "moved": float(core.st.migrations[0]),  # sizing.migrate_after_s
            **dict(zip(TERM_NAMES, map(float, terms), strict=True))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="default")
    p.add_argument("--policies", default="learned,power-aware-resize")
    p.add_argument("--seeds", default="1000,1001", help="comma-separated evaluation seeds")
    p.add_argument("--big-w", type=float, default=3.0,
                   help="awake-above-sleep watts above which a node counts as big")
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                   metavar="KEY=VALUE", help="override a scenario field (as hierarchy evaluate)")
    args = p.parse_args()
    sc = load_scenario(args.scenario, dict(args.overrides) or None)
    names = args.policies.split(",")
    factories = resolve_policies(sc, names)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"\n{sc.name}, seeds {args.seeds}: placements summed, awake nodes and cost terms "
          "averaged over the seeds\n")
    print("| policy | cost | placed on big | placed on small | awake big | awake small | "
          "energy kWh | latency over SLO | violation app-h | apps moved |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        rows = [profile(sc, factories[name], s, args.big_w) for s in seeds]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        total_big = sum(r["placed_big"] for r in rows)
        total_small = sum(r["placed_small"] for r in rows)
        share = total_big / max(total_big + total_small, 1)
        print(f"| {name} | {mean['cost']:.3f} | {total_big} ({share:.0%}) | {total_small} | "
              f"{mean['awake_big']:.1f} | {mean['awake_small']:.1f} | "
              f"{mean['energy_kwh']:.3f} | {mean['latency_over_slo']:.2f} | "
              f"{mean['violation_app_h']:.2f} | {mean['moved']:.1f} |")


if __name__ == "__main__":
    main()
