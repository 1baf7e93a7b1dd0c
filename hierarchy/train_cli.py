"""`hierarchy train`: MAPPO on a scenario's batched simulator, ending in an exported policy.

    hierarchy train --scenario default --total-steps 4000000 --seed 0 --out models/default

Part of the composition root (it wires the simulator into the trainer); torch is imported
only here and in hierarchy.mappo.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from hierarchy.cli import parse_override
from hierarchy.mappo.config import ALGOS, CLOUD_LEVELS, EDGE_ARCHS, SHAPINGS, TrainConfig

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="hierarchy train",
        description="Train the edge and cloud actors with MAPPO on the scenario's batched "
        "simulator. Writes DIR/train.csv (one row per update), DIR/tensorboard/ (when "
        "tensorboard is installed), DIR/checkpoint.pt (resumable with --resume), and at the "
        "end DIR/policy.npz + DIR/policy.json: the actors that did best in the periodic "
        "evaluations on held-out workloads, for `hierarchy evaluate --policies learned:DIR` "
        "and the edge agent.",
    )
    p.add_argument("--scenario", required=True, metavar="NAME|PATH")
    p.add_argument("--total-steps", type=int, default=d.total_steps, metavar="N",
                   help="simulator steps summed over the batch; each step is one decision "
                   f"round of every agent (default: {d.total_steps})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"(default: {d.seed})")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--resume", action="store_true",
                   help="go on from DIR/checkpoint.pt (same settings required)")
    p.add_argument("--algo", choices=ALGOS, default=d.algo,
                   help="mappo: centralised critic on the global state; ippo: each agent's "
                   "critic on its own observation (ablation)")
    p.add_argument("--cloud", choices=CLOUD_LEVELS, default=d.cloud,
                   help="learned: train a cloud actor; rule: the baselines' near-peers rule "
                   "decides offloads (ablation)")
    p.add_argument("--edge-arch", choices=EDGE_ARCHS, default=d.edge_arch,
                   help="node-scoring: one network shared by all nodes scores each node; "
                   "mlp: one logit per action from the whole observation")
    p.add_argument("--imitate", default=d.imitate, metavar="HEURISTIC",
                   help="first copy this heuristic (behaviour cloning on its decisions), then "
                   "improve on it with PPO (default: start from a uniform policy)")
    p.add_argument("--imitate-steps", type=int, default=d.imitate_steps, metavar="N",
                   help="simulator steps per copy of the heuristic's demonstrations")
    p.add_argument("--critic-warmup", type=int, default=d.critic_warmup, metavar="UPDATES",
                   help="after imitation, updates that train only the critic")
    p.add_argument("--batch", type=int, default=d.batch, help="simulator copies")
    p.add_argument("--rollout", type=int, default=d.rollout, help="steps per copy per update")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--minibatches", type=int, default=d.minibatches)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--entropy", type=float, default=d.entropy)
    p.add_argument("--gamma", type=float, default=d.gamma, help="discount per simulated tick")
    p.add_argument("--local-reward", type=float, default=d.local_reward, metavar="SHARE",
                   help="share of each edge agent's reward that is its own site's cost rather "
                        "than the team's (0: team reward only; the cloud level always gets the "
                        "team's)")
    p.add_argument("--shaping", choices=SHAPINGS, default=d.shaping,
                   help="potential-based shaping: committed: charge a placement at once for the "
                        "idle energy of the awake time it adds; committed-slo: that, and for the "
                        "SLO violations of apps now violating, until they leave; power: for "
                        "--shaping-h hours of the draw it adds")
    p.add_argument("--shaping-h", type=float, default=d.shaping_h, metavar="HOURS")
    p.add_argument("--shaping-scale", type=float, default=d.shaping_scale, metavar="X",
                   help="multiplies the committed potential (default 1: the full idle energy)")
    p.add_argument("--hidden", default=",".join(map(str, d.hidden)), metavar="H,H",
                   help="actor hidden layer sizes")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument("--eval-every", type=int, default=d.eval_every, metavar="UPDATES")
    p.add_argument("--eval-copies", type=int, default=d.eval_copies)
    p.add_argument("--eval-seed", type=int, default=d.eval_seed)
    p.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                   metavar="KEY=VALUE",
                   help="override a scenario field by dotted path (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated integers, got {args.hidden!r}"
                         ) from None
    return TrainConfig(
        total_steps=args.total_steps, seed=args.seed, algo=args.algo, cloud=args.cloud,
        edge_arch=args.edge_arch, imitate=args.imitate, imitate_steps=args.imitate_steps,
        critic_warmup=args.critic_warmup,
        batch=args.batch, rollout=args.rollout, epochs=args.epochs,
        minibatches=args.minibatches, lr=args.lr, entropy=args.entropy, gamma=args.gamma,
        local_reward=args.local_reward, shaping=args.shaping, shaping_h=args.shaping_h,
        shaping_scale=args.shaping_scale,
        hidden=hidden, threads=args.threads, eval_every=args.eval_every,
        eval_copies=args.eval_copies, eval_seed=args.eval_seed,
    ).validate()


class ProgressBar:
    """tqdm over agent steps, with throughput, reward and evaluation cost against the bar."""

    def __init__(self, total_agent_steps: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total_agent_steps, unit="agent step", unit_scale=True,
                        disable=not enabled, dynamic_ncols=True)
        self.eval_cost = float("nan")

    def __call__(self, row: dict[str, float]) -> None:
        self.bar.n = int(row["agent_steps"])
        if "eval_cost" in row:
            self.eval_cost = row["eval_cost"]
        self.bar.set_postfix({
            "steps/s": f"{row['agent_steps_per_s']:,.0f}",
            "reward": f"{row['mean_reward']:.4f}",
            "eval cost": f"{self.eval_cost:.2f}",
            "best heuristic": f"{row['bar_cost']:.2f}",
        }, refresh=True)

    def close(self) -> None:
        self.bar.close()


def main(argv: Sequence[str]) -> int:
    from hierarchy.mappo.trainer import Trainer, TrainingError
    from hierarchy.scenario import ScenarioError, load_scenario
    from sim.core import BatchedCore

    args = build_parser().parse_args(list(argv))
    try:
        overrides = dict(args.overrides)
        scenario = load_scenario(args.scenario, overrides or None)
        cfg = config_from_args(args)
    except (ScenarioError, ValueError) as exc:
        print(f"hierarchy train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    if (out / "checkpoint.pt").exists() and not args.resume:
        print(f"hierarchy train: error: {out} holds a checkpoint; pass --resume to go on from "
              "it, or choose another --out", file=sys.stderr)
        return EXIT_USAGE

    def make_env(batch: int, seed: int) -> BatchedCore:
        return BatchedCore(scenario, batch_size=batch, seed=seed, record_metrics=False)

    command = shlex.join(["hierarchy", "train", *argv])
    meta = {"name": out.name, "scenario": scenario.name, "overrides": overrides,
            "command": command}
    bar: ProgressBar | None = None
    try:
        trainer = Trainer(make_env, cfg, out, meta)
        bar = ProgressBar(cfg.updates * cfg.steps_per_update * trainer.agents,
                          not args.no_progress)
        trainer.progress = bar
        summary = trainer.train()
    except TrainingError as exc:
        if bar:
            bar.close()
        print(f"hierarchy train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print("hierarchy train: interrupted; the last checkpoint is in "
              f"{out / 'checkpoint.pt'}", file=sys.stderr)
        return 130
    bar.close()
    bar_name = min(summary["bar_costs"], key=summary["bar_costs"].get)
    print(f"trained {summary['agent_steps']:,} agent steps in {summary['train_seconds']} s; "
          f"best evaluation cost {summary['best_eval_cost']:.3f} vs {bar_name} "
          f"{summary['bar_costs'][bar_name]:.3f} on the same held-out workloads")
    print(f"wrote {out}/policy.npz, policy.json, train.csv, checkpoint.pt")
    return 0

