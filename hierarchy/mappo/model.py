"""The trainable parts together: actors, critic(s) and the value normaliser.

MAPPO: one centralised critic on the global state gives one value per copy and step, shared
by every agent (the reward is a team reward); with a local share in the edge agents' rewards
(`local_reward`) it gives one value per agent, still from the global state. IPPO (the
ablation): each agent's critic sees only that agent's own observation, one value per agent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hierarchy.mappo.config import TrainConfig
from hierarchy.mappo.nets import Actor, Critic, NodeScoringActor, ValueNorm
from hierarchy.observation import EDGE_NODE_FEATURES


@dataclass(frozen=True)
class EdgeShape:
    """How the edge observation and actions are laid out (hierarchy.observation)."""

    nodes: int
    node_features: int
    sizes: int
    headrooms: int

    @classmethod
    def of(cls, encoder) -> EdgeShape:  # noqa: ANN001 - an EdgeEncoder
        lay = encoder.layout
        return cls(lay.nodes, len(EDGE_NODE_FEATURES), lay.sizes, lay.headrooms)


class MappoModel(nn.Module):
    def __init__(self, cfg: TrainConfig, edge_obs_dim: int, edge_actions: int,
                 cloud_obs_dim: int, cloud_actions: int, state_dim: int, sites: int,
                 edge_shape: EdgeShape) -> None:
        super().__init__()
        self.algo, self.sites = cfg.algo, sites
        self.per_agent_values = cfg.algo == "ippo" or cfg.local_reward > 0
        if cfg.edge_arch == "mlp":
            self.edge_actor = Actor(edge_obs_dim, edge_actions, cfg.hidden, cfg.activation)
        else:
            self.edge_actor = NodeScoringActor(
                edge_obs_dim, edge_shape.nodes, edge_shape.node_features, edge_shape.sizes,
                edge_shape.headrooms, cfg.hidden, cfg.node_hidden, cfg.activation)
            if self.edge_actor.n_actions != edge_actions:
                raise ValueError("the edge action layout is not nodes x sizes x knob levels")
        self.cloud_actor = (Actor(cloud_obs_dim, cloud_actions, cfg.hidden, cfg.activation)
                            if cfg.cloud == "learned" else None)
        if cfg.algo == "mappo":
            heads = sites + 1 if self.per_agent_values else 1
            self.critic = Critic(state_dim, cfg.critic_hidden, cfg.activation, heads)
        else:
            self.edge_critic = Critic(edge_obs_dim, cfg.critic_hidden, cfg.activation)
            self.cloud_critic = Critic(cloud_obs_dim, cfg.critic_hidden, cfg.activation)
        self.value_norm = ValueNorm()

    @property
    def value_heads(self) -> int:
        """Values per copy and step: 1 (shared by the team) or one per agent (edge sites, then
        the cloud level)."""
        return self.sites + 1 if self.per_agent_values else 1

    def values(self, state: torch.Tensor, edge_obs: torch.Tensor, cloud_obs: torch.Tensor
               ) -> torch.Tensor:
        """(N, heads) normalised values: state (N, Ds), edge_obs (N, S, De), cloud_obs (N, Dc)."""
        if self.algo == "mappo":
            v = self.critic(state)
            return v if self.per_agent_values else v.unsqueeze(-1)
        edge = self.edge_critic(edge_obs)
        cloud = self.cloud_critic(cloud_obs).unsqueeze(-1)
        return torch.cat([edge, cloud], dim=-1)

    def actor_modules(self) -> list[nn.Module]:
        return [m for m in (self.edge_actor, self.cloud_actor) if m is not None]

    def critic_modules(self) -> list[nn.Module]:
        if self.algo == "mappo":
            return [self.critic]
        return [self.edge_critic, self.cloud_critic]
