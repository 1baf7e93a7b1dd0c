"""The training loop: collect, update, evaluate, log, checkpoint, export.

Logs: DIR/train.csv (one row per update) and TensorBoard events in DIR/tensorboard/ when the
tensorboard package is installed. Checkpoints: DIR/checkpoint.pt, tensors and plain values
only, loaded with `weights_only=True` (nothing is unpickled). The exported policy is the one
that did best in the periodic evaluations on held-out workloads (or the last, without any).
"""

from __future__ import annotations

import copy
import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hierarchy.mappo.config import TrainConfig
from hierarchy.mappo.evaluation import EnvFactory, greedy_decider, heuristic_costs, run_episodes
from hierarchy.mappo.export import export_policy
from hierarchy.mappo.imitation import collect_demonstrations, imitate
from hierarchy.mappo.model import EdgeShape, MappoModel
from hierarchy.mappo.nets import linear_lr, param_count
from hierarchy.mappo.rollout import Collector
from hierarchy.mappo.update import ppo_update

CHECKPOINT = "checkpoint.pt"
LOG_FIELDS = (
    "update", "steps", "agent_steps", "seconds", "agent_steps_per_s", "lr", "mean_reward",
    "episode_cost", "eval_cost", "best_eval_cost", "bar_cost", "policy_loss", "value_loss",
    "entropy", "edge_approx_kl", "edge_clip_frac", "cloud_approx_kl", "edge_decisions",
    "cloud_decisions",
)


class TrainingError(ValueError):
    """A training request that cannot be carried out; the message says why."""


class Trainer:
    def __init__(self, make_env: EnvFactory, cfg: TrainConfig, out: Path | str,
                 meta: dict[str, Any] | None = None,
                 progress: Callable[[dict[str, float]], None] | None = None) -> None:
        self.cfg = cfg.validate()
        self.make_env = make_env
        self.out = Path(out)
        self.meta = dict(meta or {})
        self.progress = progress
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.env = make_env(cfg.batch, cfg.seed)
        env = self.env
        self.agents = env.S + 1
        self.model = MappoModel(
            cfg, env.edge_obs.shape[-1], env.edge_mask.shape[-1], env.cloud_obs.shape[-1],
            env.cloud_mask.shape[-1], env.global_state().shape[-1], env.S,
            EdgeShape.of(env.edge_encoder),
        )
        actors = [p for m in self.model.actor_modules() for p in m.parameters()]
        critics = [p for m in self.model.critic_modules() for p in m.parameters()]
        self.optimizers = {"actor": torch.optim.Adam(actors, lr=cfg.lr, eps=1e-5),
                           "critic": torch.optim.Adam(critics, lr=cfg.lr, eps=1e-5)}
        self.collector = Collector(env, self.model, cfg, self.gen)
        self.update_index = 0
        self.seconds = 0.0
        self.best_eval = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bar: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.imitation: dict[str, float] = {}

    # --- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        path = self.out / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        torch.save({
            "config": self.cfg.to_dict(), "update": self.update_index, "seconds": self.seconds,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "generator": self.gen.get_state(), "best_eval": self.best_eval,
            "best_state": self.best_state, "bar": self.bar,
        }, tmp)
        tmp.replace(path)  # never a half-written checkpoint
        return path

    def load_checkpoint(self) -> bool:
        """Resume from DIR/checkpoint.pt if there is one; True when resumed."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            return False
        try:
            ck = torch.load(path, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is refused the same way
            raise TrainingError(f"{path}: not a readable checkpoint ({exc})") from None
        saved = TrainConfig.from_dict(ck["config"])
        mismatched = [k for k, v in saved.to_dict().items()
                      if k not in ("total_steps", "eval_every", "checkpoint_every")
                      and v != self.cfg.to_dict()[k]]
        if mismatched:
            raise TrainingError(f"{path}: trained with other settings ({', '.join(mismatched)}); "
                                "use another --out or the same settings")
        self.model.load_state_dict(ck["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(ck["optimizers"][k])
        self.gen.set_state(ck["generator"])
        self.update_index = int(ck["update"])
        self.seconds = float(ck["seconds"])
        self.best_eval = float(ck["best_eval"])
        self.best_state = ck["best_state"]
        self.bar = dict(ck["bar"])
        # The simulator's state is not checkpointed: the resumed run goes on with fresh
        # episodes, drawn from a seed of its own for this point of the run.
        self.env.reset(self.cfg.seed * 1_000_003 + self.update_index)
        return True

    def warm_start(self) -> None:
        """Copy the heuristic `cfg.imitate` before PPO (hierarchy.mappo.imitation)."""
        cfg = self.cfg
        demo_env = self.make_env(cfg.batch, cfg.seed + 7919)  # its own workloads
        demos = collect_demonstrations(demo_env, cfg.imitate, cfg.imitate_steps, cfg.seed)
        self.imitation = imitate(self.model, demos, cfg.imitate_epochs, cfg.lr, self.gen)

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate(self) -> float:
        env = self.make_env(self.cfg.eval_copies, self.cfg.eval_seed)
        return float(run_episodes(env, greedy_decider(self.model)).mean())

    def measure_bar(self) -> None:
        if not self.bar:
            self.bar = heuristic_costs(self.make_env, self.cfg.eval_copies, self.cfg.eval_seed)

    # --- the loop ------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.load_checkpoint()
        if not resumed and cfg.imitate:
            self.warm_start()
        self.measure_bar()
        bar_cost = min(self.bar.values())
        log = CsvLog(self.out / "train.csv", append=resumed)
        tb = tensorboard_writer(self.out / "tensorboard")
        steps_per_update = cfg.steps_per_update
        while self.update_index < cfg.updates:
            started = time.perf_counter()
            lr = linear_lr(cfg.lr, cfg.lr_final_frac, self.update_index, cfg.updates)
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr
            buf = self.collector.collect()
            warming = bool(cfg.imitate) and self.update_index < cfg.critic_warmup
            stats = ppo_update(self.model, self.optimizers, buf, cfg, self.gen,
                               train_actors=not warming)
            self.update_index += 1
            self.seconds += time.perf_counter() - started
            row: dict[str, float] = {
                "update": self.update_index, "steps": self.update_index * steps_per_update,
                "agent_steps": self.update_index * steps_per_update * self.agents,
                "seconds": round(self.seconds, 3),
                "agent_steps_per_s": steps_per_update * self.agents
                / max(1e-9, time.perf_counter() - started),
                "lr": lr, "mean_reward": float(buf.reward.mean()),
                "episode_cost": _mean_or_nan(self.collector.finished_returns, negate=True),
                "bar_cost": bar_cost, **stats,
            }
            self.collector.finished_returns.clear()
            last = self.update_index == cfg.updates
            if last or (cfg.eval_every and self.update_index % cfg.eval_every == 0):
                eval_started = time.perf_counter()
                row["eval_cost"] = self.evaluate()
                if row["eval_cost"] < self.best_eval:
                    self.best_eval = row["eval_cost"]
                    self.best_state = copy.deepcopy(self.model.state_dict())
                self.seconds += time.perf_counter() - eval_started
            row["best_eval_cost"] = self.best_eval
            log.write(row)
            if tb is not None:
                for k, v in row.items():
                    if k != "update" and np.isfinite(v):
                        tb.add_scalar(k, v, int(row["agent_steps"]))
            self.history.append(row)
            if self.progress:
                self.progress(row)
            if last or (cfg.checkpoint_every and self.update_index % cfg.checkpoint_every == 0):
                self.save_checkpoint()
        log.close()
        if tb is not None:
            tb.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        """Export the best evaluated actors as DIR/policy.npz + DIR/policy.json."""
        final_state = copy.deepcopy(self.model.state_dict())
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        summary = {
            "best_eval_cost": self.best_eval, "bar_costs": self.bar,
            "updates": self.update_index, "steps": self.update_index * self.cfg.steps_per_update,
            "agent_steps": self.update_index * self.cfg.steps_per_update * self.agents,
            "train_seconds": round(self.seconds, 1),
            "parameters": param_count(*self.model.actor_modules()),
            "imitation_agreement": self.imitation,
        }
        meta = {**self.meta, "seed": self.cfg.seed, "training": self.cfg.to_dict(),
                "result": summary}
        export_policy(self.out, self.model, self.env, meta)
        self.model.load_state_dict(final_state)
        return summary


class CsvLog:
    def __init__(self, path: Path, append: bool) -> None:
        new = not (append and path.is_file())
        self.fh = open(path, "w" if new else "a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def write(self, row: dict[str, float]) -> None:
        self.writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def tensorboard_writer(path: Path):  # noqa: ANN201 - SummaryWriter or None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the CSV log has everything
        return None
    return SummaryWriter(str(path))


def _mean_or_nan(values: list[float], negate: bool = False) -> float:
    if not values:
        return float("nan")
    m = float(np.mean(values))
    return -m if negate else m
