"""Learned policies in NumPy: the exported MAPPO actors, run without torch.

`load_learned_policy(path, ctx)` reads a policy file (hierarchy.policies.policy_file), checks
that each actor was trained on the observation spec the platform encodes now (version, hash,
dimension, action count) and returns a `Policy` whose deciders pick, for every position with
a container pending, the highest-scoring action the mask allows (greedy execution). Where the
policy was trained with the heuristic cloud level, its cloud decider is that rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hierarchy.observation import OBS_SPEC_VERSION, CloudView, EdgeView
from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.policies.policy_file import (
    ACTIVATIONS,
    PolicyFile,
    PolicyFileError,
    read_policy,
)

LEARNED_PREFIX = "learned:"
# The policies shipped in the repository, one directory each, used wherever a learned policy
# is wanted by default: `learned` alone is the one of them trained for the platform at hand.
SHIPPED_POLICIES_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_POLICY_DIR = SHIPPED_POLICIES_DIR / "default"  # the `default` platform's


def _mlp(x: np.ndarray, weights: list[tuple[np.ndarray, np.ndarray]], activation,  # noqa: ANN001
         last_active: bool = False) -> np.ndarray:
    last = len(weights) - 1
    for i, (w, b) in enumerate(weights):
        x = x @ w + b
        if i < last or last_active:
            x = activation(x)
    return x


class NumpyActor:
    """An exported actor: logits from observations, masked greedy action choice.

    Two shapes (hierarchy.mappo.nets): "mlp", one logit per action from the whole observation;
    "node-scoring", a site network, one node network shared by every node (a score for each
    knob and size level on that node) and an offload head.
    """

    def __init__(self, parts: dict[str, list[tuple[np.ndarray, np.ndarray]]], spec: dict
                 ) -> None:
        activation = str(spec["activation"])
        if activation not in ACTIVATIONS:
            raise PolicyFileError(f"unknown activation {activation!r}")
        self.activation = np.tanh if activation == "tanh" else _relu
        self.arch = spec.get("arch", "mlp")
        # Stored (out, in) as torch keeps them; x @ W wants (in, out).
        self.parts = {k: [(w.T.copy(), b) for w, b in v] for k, v in parts.items()}
        self.obs_dim = int(spec["obs_dim"])
        self.n_actions = int(spec["n_actions"])
        if self.arch == "node-scoring":
            self.nodes, self.node_features = int(spec["nodes"]), int(spec["node_features"])
            self.sizes, self.headrooms = int(spec["sizes"]), int(spec["headrooms"])
            self.global_dim = int(spec["global_dim"])
        self._check_shapes()

    @property
    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [wb for part in self.parts.values() for wb in part]

    def _check_shapes(self) -> None:
        def chain(part: str, n_in: int, n_out: int) -> None:
            layers = self.parts[part]
            shapes_in = [w.shape[0] for w, _ in layers]
            shapes_out = [w.shape[1] for w, _ in layers]
            ok = shapes_in[0] == n_in and shapes_out[-1] == n_out and all(
                o == i for o, i in zip(shapes_out, shapes_in[1:], strict=False))
            ok = ok and all(b.shape == (w.shape[1],) for w, b in layers)
            if not ok:
                raise PolicyFileError(f"actor part {part!r}: layer shapes do not fit "
                                      f"{n_in} inputs and {n_out} outputs")

        if self.arch == "mlp":
            chain("net", self.obs_dim, self.n_actions)
            return
        emb = self.parts["site"][-1][0].shape[1]
        chain("site", self.global_dim, emb)
        chain("node", emb + self.node_features, self.headrooms * self.sizes)
        chain("offload", emb, self.headrooms)
        if self.n_actions != 1 + self.headrooms * (self.nodes * self.sizes + 1) or (
                self.global_dim + self.nodes * self.node_features != self.obs_dim):
            raise PolicyFileError("node-scoring actor: layout does not add up")

    def logits(self, obs: np.ndarray) -> np.ndarray:
        """(N, A) unmasked logits for observations (N, D)."""
        x = np.asarray(obs, dtype=np.float32)
        if self.arch == "mlp":
            return _mlp(x, self.parts["net"], self.activation)
        n = x.shape[0]
        M, F, H, L = self.nodes, self.node_features, self.headrooms, self.sizes
        g = _mlp(x[:, : self.global_dim], self.parts["site"], self.activation, last_active=True)
        per_node = x[:, self.global_dim :].reshape(n, M, F)
        both = np.concatenate([np.broadcast_to(g[:, None, :], (n, M, g.shape[-1])), per_node],
                              axis=-1)
        z = _mlp(both, self.parts["node"], self.activation)
        z = z.reshape(n, M, H, L).transpose(0, 2, 1, 3).reshape(n, H, M * L)
        off = _mlp(g, self.parts["offload"], self.activation)[..., None]
        placed = np.concatenate([z, off], axis=-1).reshape(n, H * (M * L + 1))
        return np.concatenate([np.zeros((n, 1), np.float32), placed], axis=-1)

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


def _layers(arrays: dict[str, np.ndarray], prefix: str, count: int
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        return [(arrays[f"{prefix}.{i}.weight"], arrays[f"{prefix}.{i}.bias"])
                for i in range(int(count))]
    except KeyError as exc:
        raise PolicyFileError(f"actor {prefix!r}: missing array {exc}") from None


def actor_from_file(arrays: dict[str, np.ndarray], name: str, spec: dict) -> NumpyActor:
    try:
        if spec.get("arch", "mlp") == "mlp":
            parts = {"net": _layers(arrays, name, spec["layers"])}
        elif spec["arch"] == "node-scoring":
            parts = {part: _layers(arrays, f"{name}.{part}", spec[f"{part}_layers"])
                     for part in ("site", "node", "offload")}
        else:
            raise PolicyFileError(f"actor {name!r}: unknown architecture {spec['arch']!r}")
        return NumpyActor(parts, spec)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, PolicyFileError):
            raise
        raise PolicyFileError(f"actor {name!r}: malformed policy metadata ({exc})") from None


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
    try:
        return _policy_from_file(pf, ctx)
    except PolicyFileError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        # policy.json is not covered by the weights' hash: a hand-edited one can be anything.
        raise PolicyFileError(f"{pf.path}: malformed policy metadata "
                              f"({type(exc).__name__}: {exc})") from None


def shipped_policy_dirs(models_dir: Path = SHIPPED_POLICIES_DIR) -> list[Path]:
    """The shipped policies' directories: `default` first, then the others by name."""
    if not models_dir.is_dir():
        return []
    found = [d for d in models_dir.iterdir() if (d / "policy.json").is_file()]
    return sorted(found, key=lambda d: (d.name != "default", d.name))


def load_shipped_policy(ctx: PolicyContext, models_dir: Path = SHIPPED_POLICIES_DIR
                        ) -> Policy:
    """The shipped policy trained for the platform of `ctx`: the first of `models_dir`'s
    policies whose edge observation spec is the platform's. A policy fits one platform shape
    (a site's node slots, the scenario's size levels, ...): where none fits, the error says
    which platforms the shipped ones were trained on and what to do instead; one that fits
    but cannot be used (a damaged file) is refused with its own reason."""
    dirs = shipped_policy_dirs(models_dir)
    if not dirs:
        raise PolicyFileError(
            f"policy 'learned': no shipped policy in {models_dir.name}/; train one "
            "(hierarchy train) and give it as learned:DIR, or use a heuristic")
    others = []
    for d in dirs:
        scenario, edge_hash = _trained_for(d)
        if edge_hash == ctx.edge_encoder.spec.hash:
            return load_learned_policy(d, ctx)
        others.append(f"{d.name} (scenario {scenario})")
    raise PolicyFileError(
        "policy 'learned': no shipped policy fits this site's platform (its observation "
        f"spec {ctx.edge_encoder.spec.hash}); shipped: {', '.join(others)}; train one on "
        "this scenario (hierarchy train) and give it as learned:DIR, or use a heuristic "
        "(e.g. power-aware)")


def _trained_for(policy_dir: Path) -> tuple[str, str]:
    """(scenario, edge observation spec hash) a shipped policy's metadata names."""
    try:
        meta = json.loads((policy_dir / "policy.json").read_text())
        return (str(meta.get("scenario", "?"))[:60],
                str(meta["actors"]["edge"]["obs_spec_hash"]))
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable metadata", ""


def _policy_from_file(pf: PolicyFile, ctx: PolicyContext) -> Policy:
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
