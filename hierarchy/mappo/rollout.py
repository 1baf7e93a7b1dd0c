"""Rollouts from a batched simulator: T steps of B copies, every agent at once.

The environment is anything shaped like the simulator's `BatchedCore` (hierarchy never
imports the simulator; the command line hands one in). Each step, the actors run only on the
agents that have a container to decide (a mask allowing more than the no-op); the others take
the no-op, which carries no gradient. Time is discounted per simulated tick, not per decision
round: a round that leaves the clock where it was has discount 1 (and GAE's lambda 1), so the
many decisions made at one instant are one moment of the return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from hierarchy.mappo.config import TrainConfig
from hierarchy.mappo.model import MappoModel
from hierarchy.mappo.nets import sample
from hierarchy.policies.cloud_level import NearPeersCloudRule


class BatchedEnv(Protocol):
    B: int
    S: int
    edge_obs: np.ndarray
    edge_mask: np.ndarray
    cloud_obs: np.ndarray
    cloud_mask: np.ndarray
    cloud_view: Any

    def global_state(self) -> np.ndarray: ...
    def energy_cost_rate(self) -> np.ndarray: ...
    def committed_idle_cost(self) -> np.ndarray: ...
    def committed_violation_cost(self) -> np.ndarray: ...
    def step(self, edge_actions: np.ndarray, cloud_actions: np.ndarray) -> Any: ...
    def reset(self, seed: int | None = None) -> None: ...
    def reset_copies(self, done: np.ndarray) -> None: ...


@dataclass
class LevelBuffer:
    """One level's agents (edge: S per copy, cloud: 1) over a rollout."""

    obs: np.ndarray  # (T, B, n, D) float32
    mask: np.ndarray  # (T, B, n, A) bool
    act: np.ndarray  # (T, B, n) int64
    logp: np.ndarray  # (T, B, n) float32
    deciding: np.ndarray  # (T, B, n) bool

    @classmethod
    def empty(cls, T: int, B: int, n: int, D: int, A: int) -> LevelBuffer:
        return cls(np.zeros((T, B, n, D), np.float32), np.zeros((T, B, n, A), bool),
                   np.zeros((T, B, n), np.int64), np.zeros((T, B, n), np.float32),
                   np.zeros((T, B, n), bool))


@dataclass
class Rollout:
    edge: LevelBuffer
    cloud: LevelBuffer
    state: np.ndarray  # (T, B, Ds)
    values: np.ndarray  # (T, B, heads) denormalised
    reward: np.ndarray  # (T, B) the team's: -cost
    agent_reward: np.ndarray  # (T, B, heads) what each value head learns: the team's, or each
    # agent's own (edge sites, then the cloud level)
    discount: np.ndarray  # (T, B): gamma where the clock advanced in the step, else 1
    lam: np.ndarray  # (T, B): lambda where the clock advanced, else 1
    done: np.ndarray  # (T, B) the episode ended in this step
    last_values: np.ndarray  # (B, heads) values of the state after the last step


class Collector:
    """Steps the environment with the current actors and fills a Rollout."""

    def __init__(self, env: BatchedEnv, model: MappoModel, cfg: TrainConfig,
                 generator: torch.Generator) -> None:
        self.env, self.model, self.cfg, self.gen = env, model, cfg, generator
        self.cloud_rule = NearPeersCloudRule() if model.cloud_actor is None else None
        T, B, S = cfg.rollout, env.B, env.S
        De, Ae = env.edge_obs.shape[-1], env.edge_mask.shape[-1]
        Dc, Ac = env.cloud_obs.shape[-1], env.cloud_mask.shape[-1]
        self.buf = Rollout(
            LevelBuffer.empty(T, B, S, De, Ae), LevelBuffer.empty(T, B, 1, Dc, Ac),
            np.zeros((T, B, env.global_state().shape[-1]), np.float32),
            np.zeros((T, B, model.value_heads), np.float32), np.zeros((T, B), np.float32),
            np.zeros((T, B, model.value_heads), np.float32),
            np.zeros((T, B), np.float32), np.zeros((T, B), np.float32), np.zeros((T, B), bool),
            np.zeros((B, model.value_heads), np.float32),
        )
        # Finished episodes' returns (sum of rewards) for logging.
        self.running_return = np.zeros(B)
        self.shaping = cfg.shaping != "none"
        self.phi = self._potential() if self.shaping else None
        self.finished_returns: list[float] = []

    @torch.no_grad()
    def _values(self, state: np.ndarray) -> np.ndarray:
        env = self.env
        v = self.model.values(torch.from_numpy(state), torch.from_numpy(env.edge_obs),
                              torch.from_numpy(env.cloud_obs))
        return self.model.value_norm.denormalize(v).numpy()

    @torch.no_grad()
    def _act(self, level: LevelBuffer, t: int, obs: np.ndarray, mask: np.ndarray,
             actor: torch.nn.Module) -> np.ndarray:
        """Store obs/mask at step t and return actions (B, n) for the deciding agents."""
        level.obs[t] = obs
        np.equal(mask, 1, out=level.mask[t])
        deciding = mask[..., 0] == 0
        level.deciding[t] = deciding
        actions = np.zeros(deciding.shape, np.int64)
        level.logp[t] = 0.0
        if deciding.any():
            rows = torch.from_numpy(level.obs[t][deciding])
            logits = actor.masked_logits(rows, torch.from_numpy(level.mask[t][deciding]))
            a, logp = sample(logits, self.gen)
            actions[deciding] = a.numpy()
            level.logp[t][deciding] = logp.numpy()
        level.act[t] = actions
        return actions

    def _per_head(self, by_location: np.ndarray) -> np.ndarray:
        """(B, heads) from a (B, S + 1) split by location: the team's sum, with each edge
        agent's share of its own site's part when the heads are per agent."""
        team = by_location.sum(axis=1, keepdims=True)
        if self.model.value_heads == 1:
            return team
        share = self.cfg.local_reward
        out = np.repeat(team, self.model.value_heads, axis=1)
        S = self.env.S
        out[:, :S] = (1.0 - share) * team + share * by_location[:, :S]
        return out

    def _potential(self) -> np.ndarray:
        """(B, heads) the shaping potential (TrainConfig.shaping)."""
        if self.cfg.shaping == "committed":
            return self._per_head(-self.cfg.shaping_scale * self.env.committed_idle_cost())
        if self.cfg.shaping == "committed-slo":
            return self._per_head(-self.cfg.shaping_scale * self.env.committed_idle_cost()
                                  - self.env.committed_violation_cost())
        return self._per_head(-self.cfg.shaping_h * self.env.energy_cost_rate())

    def collect(self) -> Rollout:
        env, buf, cfg = self.env, self.buf, self.cfg
        for t in range(cfg.rollout):
            state = env.global_state()
            buf.state[t] = state
            buf.values[t] = self._values(buf.state[t])
            edge_actions = self._act(buf.edge, t, env.edge_obs, env.edge_mask,
                                     self.model.edge_actor)
            if self.cloud_rule is None:
                cloud_actions = self._act(buf.cloud, t, env.cloud_obs[:, None],
                                          env.cloud_mask[:, None], self.model.cloud_actor)[:, 0]
            else:
                cloud_actions = self.cloud_rule(env.cloud_view, env.cloud_mask, env.cloud_obs)
                buf.cloud.deciding[t] = False
            out = env.step(edge_actions, cloud_actions)
            buf.reward[t] = -out.cost
            buf.agent_reward[t] = self._per_head(-out.site_cost)
            advanced = np.asarray(out.advanced, bool)
            buf.discount[t] = np.where(advanced, cfg.gamma, 1.0)
            buf.lam[t] = np.where(advanced, cfg.lam, 1.0)
            done = np.asarray(out.truncated, bool)
            buf.done[t] = done
            if self.shaping:
                # F = discount * potential(next) - potential(now); an episode's end has
                # potential 0, so the shaping sums to a constant and the optimum stands.
                after = self._potential()
                buf.agent_reward[t] += (buf.discount[t][:, None] * after * (~done)[:, None]
                                        - self.phi)
                self.phi = after
            self.running_return += buf.reward[t]
            if done.any():
                self.finished_returns.extend(self.running_return[done].tolist())
                self.running_return[done] = 0.0
                env.reset_copies(done)
                if self.shaping:  # the reset copies start from a new state
                    self.phi = self._potential()
        buf.last_values[:] = self._values(env.global_state().astype(np.float32))
        return buf


def gae(buf: Rollout) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns), both (T, B, heads), by GAE over the rollout."""
    T = buf.reward.shape[0]
    adv = np.zeros_like(buf.values)
    last = np.zeros_like(buf.last_values)
    for t in reversed(range(T)):
        next_values = buf.last_values if t == T - 1 else buf.values[t + 1]
        live = (1.0 - buf.done[t].astype(np.float32))[:, None]
        disc = buf.discount[t][:, None]
        delta = buf.agent_reward[t] + disc * next_values * live - buf.values[t]
        last = delta + disc * buf.lam[t][:, None] * live * last
        adv[t] = last
    return adv, adv + buf.values
