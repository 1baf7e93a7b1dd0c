"""One PPO update from a rollout: clipped policy objective, entropy bonus, Huber value loss on
normalised targets, per-network gradient clipping, several epochs of shuffled minibatches."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hierarchy.mappo.config import TrainConfig
from hierarchy.mappo.model import MappoModel
from hierarchy.mappo.nets import log_probs_entropy
from hierarchy.mappo.rollout import LevelBuffer, Rollout, gae


class ActorRows:
    """The decisions one level made in a rollout, flattened, with their advantages."""

    def __init__(self, level: LevelBuffer, adv: np.ndarray, head: int | None) -> None:
        idx = np.nonzero(level.deciding)  # (t, b, agent)
        self.n = idx[0].size
        self.obs = torch.from_numpy(level.obs[idx])
        self.mask = torch.from_numpy(level.mask[idx])
        self.act = torch.from_numpy(level.act[idx])
        self.logp = torch.from_numpy(level.logp[idx])
        # MAPPO: the shared advantage of the copy's step; IPPO: the agent's own head.
        heads = idx[2] if head is None else np.full_like(idx[2], head)
        a = adv[idx[0], idx[1], heads]
        if self.n:  # no decisions in this rollout: nothing to normalise
            a = (a - a.mean()) / (a.std() + 1e-8)
        self.adv = torch.from_numpy(a.astype(np.float32))

    def chunks(self, parts: int, gen: torch.Generator) -> list[torch.Tensor]:
        return list(torch.randperm(self.n, generator=gen).chunk(parts)) if self.n else []


def policy_loss(actor: nn.Module, rows: ActorRows, idx: torch.Tensor, clip: float
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    logits = actor.masked_logits(rows.obs[idx], rows.mask[idx])
    logp, entropy = log_probs_entropy(logits, rows.act[idx])
    ratio = torch.exp(logp - rows.logp[idx])
    adv = rows.adv[idx]
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    with torch.no_grad():
        stats = {"approx_kl": float(((ratio - 1) - torch.log(ratio)).mean()),
                 "clip_frac": float(((ratio - 1).abs() > clip).float().mean())}
    return -surrogate.mean(), entropy.mean(), stats


def ppo_update(model: MappoModel, optimizers: dict[str, torch.optim.Optimizer], buf: Rollout,
               cfg: TrainConfig, gen: torch.Generator, train_actors: bool = True
               ) -> dict[str, float]:
    """One update; with train_actors False only the critic learns (warm-up after imitation)."""
    adv, returns = gae(buf)
    T, B = buf.reward.shape
    shared = model.value_heads == 1
    edge_rows = ActorRows(buf.edge, adv, 0 if shared else None)
    cloud_head = 0 if shared else model.sites
    cloud_rows = ActorRows(buf.cloud, adv, cloud_head) if model.cloud_actor is not None else None

    state = torch.from_numpy(buf.state.reshape(T * B, -1))
    edge_obs = torch.from_numpy(buf.edge.obs.reshape(T * B, *buf.edge.obs.shape[2:]))
    cloud_obs = torch.from_numpy(buf.cloud.obs.reshape(T * B, -1))
    ret = torch.from_numpy(returns.reshape(T * B, -1))
    model.value_norm.update(ret)
    target = model.value_norm.normalize(ret)

    totals: dict[str, float] = {}
    count = 0
    for _ in range(cfg.epochs):
        value_idx = torch.randperm(T * B, generator=gen).chunk(cfg.minibatches)
        edge_idx = edge_rows.chunks(cfg.minibatches, gen)
        cloud_idx = cloud_rows.chunks(cfg.minibatches, gen) if cloud_rows else []
        for i, vi in enumerate(value_idx):
            loss_pi = torch.zeros(())
            entropy = torch.zeros(())
            stats: dict[str, float] = {}
            for name, actor, rows, chunks in (
                ("edge", model.edge_actor, edge_rows, edge_idx),
                ("cloud", model.cloud_actor, cloud_rows, cloud_idx),
            ):
                if rows is None or i >= len(chunks):
                    continue
                lp, ent, st = policy_loss(actor, rows, chunks[i], cfg.clip)
                loss_pi = loss_pi + lp
                entropy = entropy + ent
                stats.update({f"{name}_{k}": v for k, v in st.items()})
            values = model.values(state[vi], edge_obs[vi], cloud_obs[vi])
            loss_v = nn.functional.huber_loss(values, target[vi], delta=cfg.huber_delta)
            loss = loss_pi - cfg.entropy * entropy + cfg.value_coef * loss_v
            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for module in model.actor_modules() + model.critic_modules():
                nn.utils.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
            for name, opt in optimizers.items():
                if train_actors or name != "actor":
                    opt.step()
            stats.update({"policy_loss": float(loss_pi.detach()),
                          "value_loss": float(loss_v.detach()),
                          "entropy": float(entropy.detach())})
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
    out = {k: v / max(1, count) for k, v in totals.items()}
    out["edge_decisions"] = float(edge_rows.n)
    out["cloud_decisions"] = float(cloud_rows.n if cloud_rows else 0)
    return out
