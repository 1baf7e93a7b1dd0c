"""Training settings: one dataclass with the defaults the shipped policy was trained with."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

ALGOS = ("mappo", "ippo")
CLOUD_LEVELS = ("learned", "rule")
EDGE_ARCHS = ("node-scoring", "mlp")
SHAPINGS = ("none", "committed", "committed-slo", "power")


@dataclass
class TrainConfig:
    total_steps: int = 2_000_000  # simulator steps summed over the batch (one decision round each)
    seed: int = 0
    algo: str = "mappo"  # mappo: critic on the global state; ippo: critic on each agent's own obs
    cloud: str = "learned"  # learned: a cloud actor; rule: the baselines' near-peers rule
    batch: int = 32  # simulator copies stepped together
    rollout: int = 128  # steps per copy between updates
    epochs: int = 5
    minibatches: int = 4
    gamma: float = 0.99  # per simulated tick; decision rounds inside one tick are not discounted
    lam: float = 0.95
    clip: float = 0.2
    lr: float = 5e-4
    lr_final_frac: float = 0.0  # linear annealing to lr * lr_final_frac
    entropy: float = 0.01
    # Each edge agent's reward: (1 - local_reward) x the team's cost + local_reward x the cost
    # that arose at its own site (its nodes' energy and capping, its users' apps' latency,
    # violations and WAN energy, its rejections). The cloud level always gets the team's.
    # Above 0 the critic has one value head per agent.
    local_reward: float = 0.0
    # Potential-based shaping (Ng et al. 1999), which leaves the best policy unchanged:
    # "committed": the potential is minus the idle energy the awake nodes are committed to
    # (sim.shaping), so a placement is charged at once for the awake time it adds;
    # "committed-slo": that, plus the cost the apps now violating their SLO are committed to
    # if they go on until they leave, so a placement that breaks an SLO is charged at once;
    # "power": minus shaping_h hours of the current draw's cost; "none": off. shaping_scale
    # multiplies the committed idle energy (below 1 its immediate charge is partial).
    shaping: str = "none"
    shaping_h: float = 1.0
    shaping_scale: float = 1.0
    value_coef: float = 1.0
    huber_delta: float = 10.0
    max_grad_norm: float = 10.0
    edge_arch: str = "mlp"  # or "node-scoring": one node network shared by all nodes
    hidden: tuple[int, ...] = (128, 128)
    node_hidden: tuple[int, ...] = (64, 64)  # the node-scoring actor's shared node network
    critic_hidden: tuple[int, ...] = (256, 256)
    activation: str = "tanh"
    threads: int = 2
    eval_every: int = 20  # updates between evaluations (0: only at the end)
    eval_copies: int = 16
    eval_seed: int = 1_000_000  # evaluation workloads: a seed never used for training
    checkpoint_every: int = 50  # updates between checkpoints
    imitate: str = ""  # a heuristic to copy before PPO ("" for none; hierarchy.mappo.imitation)
    imitate_steps: int = 2000  # simulator steps of the heuristic's demonstrations (per copy)
    imitate_epochs: int = 20
    critic_warmup: int = 10  # updates that train only the critic after imitation

    def validate(self) -> TrainConfig:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.cloud not in CLOUD_LEVELS:
            raise ValueError(f"cloud must be one of {CLOUD_LEVELS}, got {self.cloud!r}")
        if self.edge_arch not in EDGE_ARCHS:
            raise ValueError(f"edge_arch must be one of {EDGE_ARCHS}, got {self.edge_arch!r}")
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be tanh or relu, got {self.activation!r}")
        for name in ("total_steps", "batch", "rollout", "epochs", "minibatches", "threads",
                     "eval_copies"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.imitate:
            from hierarchy.policies.registry import POLICY_NAMES

            if self.imitate not in POLICY_NAMES:
                raise ValueError(f"imitate: unknown heuristic {self.imitate!r}; known: "
                                 f"{', '.join(POLICY_NAMES)}")
        if self.eval_seed == self.seed:
            raise ValueError("eval_seed must differ from the training seed")
        if self.shaping not in SHAPINGS:
            raise ValueError(f"shaping must be one of {SHAPINGS}, got {self.shaping!r}")
        if self.shaping_h < 0:
            raise ValueError(f"shaping_h must be at least 0, got {self.shaping_h}")
        if self.shaping_scale < 0:
            raise ValueError(f"shaping_scale must be at least 0, got {self.shaping_scale}")
        if not 0 <= self.local_reward <= 1:
            raise ValueError(f"local_reward must be in [0, 1], got {self.local_reward}")
        if not 0 < self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError("gamma must be in (0, 1] and lam in [0, 1]")
        return self

    @property
    def steps_per_update(self) -> int:
        return self.batch * self.rollout

    @property
    def updates(self) -> int:
        return max(1, -(-self.total_steps // self.steps_per_update))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["critic_hidden"] = list(self.critic_hidden)
        d["node_hidden"] = list(self.node_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("hidden", "critic_hidden", "node_hidden"):
            if k in kw:
                kw[k] = tuple(int(x) for x in kw[k])
        return cls(**kw).validate()
