"""Greedy evaluation inside training: whole episodes on a batch of held-out workloads.

Every copy of the evaluation batch runs one episode from reset with `eval_seed` (a seed the
training workloads never come from); the result is each copy's total cost. The best
heuristics run once on the same batch, so progress is measured against them on the same
workloads.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hierarchy.mappo.model import MappoModel
from hierarchy.policies.base import PolicyContext
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.policies.registry import make_policy

# Heuristics that led on cost in the baseline runs; the best of them is the bar.
BAR_HEURISTICS = (
    "power-aware", "power-aware-rightsized", "power-aware-resize", "most-allocated",
    "target-load-packing",
)

EnvFactory = Callable[[int, int], object]  # (batch, seed) -> a BatchedCore-like env
Decide = Callable[[object], tuple[np.ndarray, np.ndarray]]  # env -> (edge, cloud) actions


def run_episodes(env, decide: Decide) -> np.ndarray:  # noqa: ANN001 - a BatchedEnv
    """(B,) total cost of one episode per copy, stepping until every copy has finished."""
    total = np.zeros(env.B)
    finished = np.zeros(env.B, dtype=bool)
    while not finished.all():
        edge_actions, cloud_actions = decide(env)
        out = env.step(edge_actions, cloud_actions)
        total += np.where(finished, 0.0, out.cost)
        finished |= np.asarray(out.truncated, bool)
    return total


def greedy_decider(model: MappoModel) -> Decide:
    rule = NearPeersCloudRule()

    @torch.no_grad()
    def act(actor, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:  # noqa: ANN001
        actions = np.zeros(mask.shape[:-1], np.int64)
        deciding = mask[..., 0] == 0
        if deciding.any():
            logits = actor.masked_logits(torch.from_numpy(obs[deciding]),
                                         torch.from_numpy(mask[deciding] == 1))
            actions[deciding] = torch.argmax(logits, dim=-1).numpy()
        return actions

    def decide(env) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        edge = act(model.edge_actor, env.edge_obs, env.edge_mask)
        if model.cloud_actor is None:
            cloud = rule(env.cloud_view, env.cloud_mask, env.cloud_obs)
        else:
            cloud = act(model.cloud_actor, env.cloud_obs, env.cloud_mask)
        return edge, cloud

    return decide


def heuristic_decider(name: str, env, seed: int) -> Decide:  # noqa: ANN001
    policy = make_policy(name, PolicyContext(env.edge_encoder, env.cloud_encoder, seed=seed))

    def decide(e) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
        return (policy.edge(e.edge_view, e.edge_mask, e.edge_obs),
                policy.cloud(e.cloud_view, e.cloud_mask, e.cloud_obs))

    return decide


def heuristic_costs(make_env: EnvFactory, copies: int, seed: int,
                    names: tuple[str, ...] = BAR_HEURISTICS) -> dict[str, float]:
    """Mean episode cost of each heuristic on the evaluation batch."""
    costs = {}
    for name in names:
        env = make_env(copies, seed)
        costs[name] = float(run_episodes(env, heuristic_decider(name, env, seed)).mean())
    return costs
