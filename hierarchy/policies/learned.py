"""Learned policies in NumPy: the exported MAPPO actors, run without torch.

`load_learned_policy(path, ctx)` reads a policy file (hierarchy.policies.policy_file), checks
that each actor was trained on the observation spec the platform encodes now (version, hash,
dimension, action count) and returns a `Policy` whose deciders pick, for every position with
a container pending, the highest-scoring action the mask allows (greedy execution). Where the
policy was trained with the heuristic cloud level, its cloud decider is that rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hierarchy.observation import OBS_SPEC_VERSION, CloudView, EdgeView
from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.policies.policy_file import ACTIVATIONS, PolicyFileError, read_policy

LEARNED_PREFIX = "learned:"
# The policy shipped in the repository, used wherever a learned policy is wanted by default.
DEFAULT_POLICY_DIR = Path(__file__).resolve().parents[1] / "models" / "default"


class NumpyActor:
    """An MLP over observations with masked greedy (or sampled) action choice."""

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray]], activation: str) -> None:
        if activation not in ACTIVATIONS:
            raise PolicyFileError(f"unknown activation {activation!r}")
        self.weights = [(w.T.copy(), b) for w, b in weights]  # (in, out): x @ W
        self.activation = np.tanh if activation == "tanh" else _relu
        self.obs_dim = self.weights[0][0].shape[0]
        self.n_actions = self.weights[-1][0].shape[1]

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """(N, A) unmasked logits for observations (N, D)."""
        x = np.asarray(obs, dtype=np.float32)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(self.weights):
            x = x @ w + b
            if i < last:
                x = self.activation(x)
        return x

    def act(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(...) greedy actions: obs (..., D), mask (..., A); positions with only the no-op
        allowed (nothing pending) get 0 without running the network."""
        obs = np.asarray(obs)
        mask = np.asarray(mask)
        lead = mask.shape[:-1]
        flat_mask = mask.reshape(-1, mask.shape[-1])
        actions = np.zeros(flat_mask.shape[0], dtype=np.int64)
        deciding = flat_mask[:, 0] == 0
        if deciding.any():
            rows = obs.reshape(-1, obs.shape[-1])[deciding]
            logits = self.logits(rows)
            logits = np.where(flat_mask[deciding] == 1, logits, -np.inf)
            actions[deciding] = np.argmax(logits, axis=-1)
        return actions.reshape(lead)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def actor_from_file(arrays: dict[str, np.ndarray], name: str, spec: dict) -> NumpyActor:
    layers = int(spec["layers"])
    weights = []
    for i in range(layers):
        try:
            weights.append((arrays[f"{name}.{i}.weight"], arrays[f"{name}.{i}.bias"]))
        except KeyError as exc:
            raise PolicyFileError(f"actor {name!r}: missing array {exc}") from None
    for (w, _), (w_next, _) in zip(weights, weights[1:], strict=False):
        if w.shape[0] != w_next.shape[1]:
            raise PolicyFileError(f"actor {name!r}: layer shapes do not chain")
    return NumpyActor(weights, str(spec["activation"]))


def check_spec(where: str, recorded: dict, spec_hash: str, obs_dim: int, n_actions: int) -> None:
    """Refuse an actor trained on another observation spec or action layout."""
    if recorded.get("obs_spec_version") != OBS_SPEC_VERSION or recorded.get(
        "obs_spec_hash"
    ) != spec_hash:
        raise PolicyFileError(
            f"{where}: trained on observation spec v{recorded.get('obs_spec_version')} "
            f"hash {recorded.get('obs_spec_hash')}, this platform encodes v{OBS_SPEC_VERSION} "
            f"hash {spec_hash}: retrain the policy for this scenario and code version"
        )
    if recorded.get("obs_dim") != obs_dim or recorded.get("n_actions") != n_actions:
        raise PolicyFileError(
            f"{where}: trained for {recorded.get('obs_dim')} observation features and "
            f"{recorded.get('n_actions')} actions, the platform has {obs_dim} and {n_actions}"
        )


class LearnedEdge:
    def __init__(self, actor: NumpyActor) -> None:
        self.actor = actor

    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self.actor.act(obs, mask)


class LearnedCloud:
    def __init__(self, actor: NumpyActor) -> None:
        self.actor = actor

    def __call__(self, view: CloudView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return self.actor.act(obs, mask)


def load_learned_policy(path: Path | str, ctx: PolicyContext) -> Policy:
    """The policy at `path` (directory, policy.json or policy.npz) for the platform of `ctx`."""
    pf = read_policy(path)
    actors = pf.meta.get("actors")
    if not isinstance(actors, dict) or "edge" not in actors:
        raise PolicyFileError(f"{pf.path}: metadata lists no edge actor")
    edge_spec = ctx.edge_encoder.spec
    check_spec(f"{pf.path} (edge actor)", actors["edge"], edge_spec.hash, edge_spec.dim,
               ctx.edge_encoder.layout.n)
    edge = LearnedEdge(actor_from_file(pf.arrays, "edge", actors["edge"]))
    if "cloud" in actors:
        cloud_spec = ctx.cloud_encoder.spec
        check_spec(f"{pf.path} (cloud actor)", actors["cloud"], cloud_spec.hash, cloud_spec.dim,
                   ctx.cloud_encoder.layout.n)
        cloud = LearnedCloud(actor_from_file(pf.arrays, "cloud", actors["cloud"]))
    else:
        cloud = NearPeersCloudRule()
    version = str(pf.meta.get("weights_sha256", ""))[:12]
    return Policy(name=f"learned:{pf.meta.get('name', pf.path.name)}", edge=edge, cloud=cloud,
                  version=version)
