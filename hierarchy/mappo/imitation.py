"""Warm start by imitation: the actors first learn to copy a heuristic, then PPO improves on it.

The heuristic drives the training copies for a number of steps; every decision it makes (an
edge or cloud agent with a container pending) becomes a labelled example (observation, mask,
action), and the actors are fitted to those by cross-entropy over the allowed actions. PPO then
starts from a policy about as good as the heuristic instead of a uniform one; the critic is
trained alone for the first updates (`critic_warmup`), so the first policy gradients do not come
from an untrained critic.
"""

from __future__ import annotations

import numpy as np
import torch

from hierarchy.mappo.evaluation import heuristic_decider
from hierarchy.mappo.model import MappoModel
from hierarchy.mappo.nets import log_probs_entropy


def collect_demonstrations(env, heuristic: str, steps: int, seed: int  # noqa: ANN001
                           ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(obs, mask, action) of every decision the heuristic makes in `steps` steps."""
    decide = heuristic_decider(heuristic, env, seed)
    out: dict[str, list[list[np.ndarray]]] = {"edge": [[], [], []], "cloud": [[], [], []]}
    for _ in range(steps):
        edge, cloud = decide(env)
        for name, obs, mask, act in (("edge", env.edge_obs, env.edge_mask, edge),
                                     ("cloud", env.cloud_obs, env.cloud_mask, cloud)):
            deciding = mask[..., 0] == 0
            if deciding.any():
                out[name][0].append(obs[deciding].copy())
                out[name][1].append(mask[deciding] == 1)
                out[name][2].append(np.asarray(act)[deciding].astype(np.int64))
        result = env.step(edge, cloud)
        done = np.asarray(result.truncated, bool)
        if done.any():
            env.reset_copies(done)
    return {k: tuple(np.concatenate(parts) for parts in v) for k, v in out.items() if v[0]}


def imitate(model: MappoModel, demos: dict, epochs: int, lr: float, gen: torch.Generator,
            batch: int = 4096) -> dict[str, float]:
    """Fit the actors to the demonstrations; returns each actor's final agreement rate."""
    agreement = {}
    for name, actor in (("edge", model.edge_actor), ("cloud", model.cloud_actor)):
        if actor is None or name not in demos:
            continue
        obs, mask, act = (torch.from_numpy(a) for a in demos[name])
        opt = torch.optim.Adam(actor.parameters(), lr=lr, eps=1e-5)
        for _ in range(epochs):
            for idx in torch.randperm(len(act), generator=gen).split(batch):
                logp, _ = log_probs_entropy(actor.masked_logits(obs[idx], mask[idx]), act[idx])
                loss = -logp.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            chosen = actor.masked_logits(obs, mask).argmax(-1)
        agreement[name] = float((chosen == act).float().mean())
    return agreement
