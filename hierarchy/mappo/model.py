"""The trainable parts together: actors, critic(s) and the value normaliser.

MAPPO: one centralised critic on the global state gives one value per copy and step, shared
by every agent (the reward is a team reward). IPPO (the ablation): each agent's critic sees
only that agent's own observation, one value per agent.
"""

from __future__ import annotations

import torch
from torch import nn

from hierarchy.mappo.config import TrainConfig
from hierarchy.mappo.nets import Actor, Critic, ValueNorm


class MappoModel(nn.Module):
    def __init__(self, cfg: TrainConfig, edge_obs_dim: int, edge_actions: int,
                 cloud_obs_dim: int, cloud_actions: int, state_dim: int, sites: int) -> None:
        super().__init__()
        self.algo, self.sites = cfg.algo, sites
        self.edge_actor = Actor(edge_obs_dim, edge_actions, cfg.hidden, cfg.activation)
        self.cloud_actor = (Actor(cloud_obs_dim, cloud_actions, cfg.hidden, cfg.activation)
                            if cfg.cloud == "learned" else None)
        if cfg.algo == "mappo":
            self.critic = Critic(state_dim, cfg.critic_hidden, cfg.activation)
        else:
            self.edge_critic = Critic(edge_obs_dim, cfg.critic_hidden, cfg.activation)
            self.cloud_critic = Critic(cloud_obs_dim, cfg.critic_hidden, cfg.activation)
        self.value_norm = ValueNorm()

    @property
    def value_heads(self) -> int:
        """Values per copy and step: 1 (shared) for MAPPO, one per agent for IPPO."""
        return 1 if self.algo == "mappo" else self.sites + 1

    def values(self, state: torch.Tensor, edge_obs: torch.Tensor, cloud_obs: torch.Tensor
               ) -> torch.Tensor:
        """(N, heads) normalised values: state (N, Ds), edge_obs (N, S, De), cloud_obs (N, Dc)."""
        if self.algo == "mappo":
            return self.critic(state).unsqueeze(-1)
        edge = self.edge_critic(edge_obs)
        cloud = self.cloud_critic(cloud_obs).unsqueeze(-1)
        return torch.cat([edge, cloud], dim=-1)

    def actor_modules(self) -> list[nn.Module]:
        return [m for m in (self.edge_actor, self.cloud_actor) if m is not None]

    def critic_modules(self) -> list[nn.Module]:
        if self.algo == "mappo":
            return [self.critic]
        return [self.edge_critic, self.cloud_critic]
