"""Export trained actors to the NumPy policy format (hierarchy.policies.policy_file)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

import hierarchy
from hierarchy.mappo.model import MappoModel
from hierarchy.observation import OBS_SPEC_VERSION
from hierarchy.policies.policy_file import write_policy


def code_version() -> str:
    """The package version, with the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return hierarchy.__version__
    return f"{hierarchy.__version__}+{commit}{'.dirty' if dirty else ''}"


def _linear_arrays(seq, prefix: str) -> tuple[dict[str, np.ndarray], int]:  # noqa: ANN001
    layers = [m for m in seq if isinstance(m, nn.Linear)]
    arrays = {}
    for i, layer in enumerate(layers):
        arrays[f"{prefix}.{i}.weight"] = layer.weight.detach().numpy()
        arrays[f"{prefix}.{i}.bias"] = layer.bias.detach().numpy()
    return arrays, len(layers)


def actor_arrays(actor, name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:  # noqa: ANN001
    """An actor's weights by name and the record a NumPy runner needs to rebuild it."""
    record: dict[str, Any] = {"arch": actor.arch, "activation": actor.activation,
                              "obs_dim": actor.obs_dim, "n_actions": actor.n_actions,
                              "obs_spec_version": OBS_SPEC_VERSION}
    if actor.arch == "mlp":
        arrays, record["layers"] = _linear_arrays(actor.net, name)
        return arrays, record
    arrays = {}
    for part in ("site", "node", "offload"):
        part_arrays, record[f"{part}_layers"] = _linear_arrays(getattr(actor, part),
                                                               f"{name}.{part}")
        arrays.update(part_arrays)
    record.update(nodes=actor.nodes, node_features=actor.node_features, sizes=actor.sizes,
                  headrooms=actor.headrooms, global_dim=actor.global_dim)
    return arrays, record


def export_policy(out_dir: Path | str, model: MappoModel, env, meta: dict[str, Any]  # noqa: ANN001
                  ) -> tuple[Path, Path]:
    """Write DIR/policy.npz and DIR/policy.json for the model's actors on env's platform."""
    arrays, edge = actor_arrays(model.edge_actor, "edge")
    edge["obs_spec_hash"] = env.edge_encoder.spec.hash
    lay = env.edge_encoder.layout
    edge["layout"] = {"nodes": lay.nodes, "sizes": lay.sizes, "headrooms": lay.headrooms}
    actors = {"edge": edge}
    if model.cloud_actor is not None:
        cloud_arrays, cloud = actor_arrays(model.cloud_actor, "cloud")
        cloud["obs_spec_hash"] = env.cloud_encoder.spec.hash
        cloud["layout"] = {"sites": env.cloud_encoder.layout.sites}
        arrays.update(cloud_arrays)
        actors["cloud"] = cloud
    cloud_level = "learned" if model.cloud_actor is not None else "near-peers rule"
    return write_policy(out_dir, arrays, {**meta, "actors": actors, "cloud_level": cloud_level,
                                          "code_version": code_version()})
