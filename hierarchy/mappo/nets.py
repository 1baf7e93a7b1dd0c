"""The actor and critic networks, and the running value normaliser (Yu et al. 2021).

Actors are MLPs over an agent's observation with one logit per action; masked actions get
a logit of -1e9 (not -inf: their probability is exactly 0 and no NaN appears in the entropy).
Weights are initialised orthogonally, with a small gain on the output layer so the untrained
policy is near uniform over the allowed actions.
"""

from __future__ import annotations

import torch
from torch import nn

MASKED_LOGIT = -1e9


def mlp(sizes: list[int], activation: str, out_gain: float) -> nn.Sequential:
    act = nn.Tanh if activation == "tanh" else nn.ReLU
    hidden_gain = nn.init.calculate_gain(activation)
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, gain=out_gain if last else hidden_gain)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(act())
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """An MLP from the observation to one logit per action."""

    arch = "mlp"

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...], activation: str
                 ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions, self.activation = obs_dim, n_actions, activation
        self.net = mlp([obs_dim, *hidden, n_actions], activation, out_gain=0.01)

    def masked_logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.net(obs)
        return torch.where(mask, logits, torch.full_like(logits, MASKED_LOGIT))

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.net if isinstance(m, nn.Linear)]


def log_probs_entropy(logits: torch.Tensor, actions: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def sample(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from masked logits (Gumbel-max, seeded) and their log-probabilities."""
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-12, 1.0 - 1e-7)
    actions = torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return actions, logp


class Critic(nn.Module):
    """Values from an input: (N,) with one head, (N, heads) with several."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], activation: str,
                 heads: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.net = mlp([in_dim, *hidden, heads], activation, out_gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.heads == 1 else out


class ValueNorm(nn.Module):
    """Running, debiased mean and variance of the value targets (MAPPO's ValueNorm).

    The critic learns normalised values; GAE works on denormalised ones.
    """

    def __init__(self, beta: float = 0.99999, eps: float = 1e-5) -> None:
        super().__init__()
        self.beta, self.eps = beta, eps
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean_sq", torch.zeros((), dtype=torch.float64))
        self.register_buffer("debias", torch.zeros((), dtype=torch.float64))

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().double()
        w = self.beta
        self.mean.mul_(w).add_(x.mean() * (1 - w))
        self.mean_sq.mul_(w).add_((x * x).mean() * (1 - w))
        self.debias.mul_(w).add_(1 - w)

    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.debias.clamp(min=self.eps)
        mean = self.mean / d
        var = (self.mean_sq / d - mean * mean).clamp(min=1e-4)
        return mean, var

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._stats()
        return ((x.double() - mean) / torch.sqrt(var)).float()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self._stats()
        return (x.double() * torch.sqrt(var) + mean).float()


def param_count(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def linear_lr(lr: float, final_frac: float, update: int, updates: int) -> float:
    frac = min(1.0, update / max(1, updates))
    return lr * (1.0 - frac * (1.0 - final_frac))




class NodeScoringActor(nn.Module):
    """The edge actor that scores each node with one network shared by all nodes.

    The edge observation is a site part followed by the same F features for each of the
    site's M nodes (hierarchy.observation). A site network embeds the site part; a node network
    maps [embedding, node m's features] to a score for every (knob level, size level) placed
    on node m; a linear head on the embedding scores offloading at each knob level; the no-op
    scores 0 (it is only ever allowed alone). Sharing the node network makes what is learned
    about one node hold for every node, whatever its slot.
    """

    arch = "node-scoring"

    def __init__(self, obs_dim: int, nodes: int, node_features: int, sizes: int,
                 headrooms: int, hidden: tuple[int, ...], node_hidden: tuple[int, ...],
                 activation: str) -> None:
        super().__init__()
        self.obs_dim, self.activation = obs_dim, activation
        self.nodes, self.node_features, self.sizes, self.headrooms = (
            nodes, node_features, sizes, headrooms)
        self.global_dim = obs_dim - nodes * node_features
        self.n_actions = 1 + headrooms * (nodes * sizes + 1)
        self.site = mlp([self.global_dim, *hidden], activation, out_gain=1.0)
        self.site_act = nn.Tanh() if activation == "tanh" else nn.ReLU()
        emb = hidden[-1]
        self.node = mlp([emb + node_features, *node_hidden, headrooms * sizes], activation,
                        out_gain=0.01)
        self.offload = mlp([emb, headrooms], activation, out_gain=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        n = obs.shape[0]
        M, F, H, L = self.nodes, self.node_features, self.headrooms, self.sizes
        g = self.site_act(self.site(obs[:, : self.global_dim]))
        per_node = obs[:, self.global_dim :].reshape(n, M, F)
        x = torch.cat([g.unsqueeze(1).expand(n, M, g.shape[-1]), per_node], dim=-1)
        z = self.node(x).reshape(n, M, H, L).permute(0, 2, 1, 3).reshape(n, H, M * L)
        off = self.offload(g).unsqueeze(-1)
        placed = torch.cat([z, off], dim=-1).reshape(n, H * (M * L + 1))
        return torch.cat([torch.zeros(n, 1, dtype=obs.dtype), placed], dim=-1)

    def masked_logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.forward(obs)
        return torch.where(mask, logits, torch.full_like(logits, MASKED_LOGIT))
