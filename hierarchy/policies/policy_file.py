"""The exported learned-policy format: `policy.npz` (weights) + `policy.json` (metadata).

Written by training (hierarchy.mappo.export), read on gateways with NumPy alone:

- `policy.npz` holds plain float32 arrays only, named `<actor>.<layer>.weight|bias`; it is
  read with `allow_pickle=False`, so a file that would need unpickling is refused.
- `policy.json` records the format version, the SHA-256 of `policy.npz` (a tampered or
  corrupted weights file is refused), each actor's layer sizes and activation, the
  observation-spec version and hash of each level (a policy trained on another observation
  is refused), the action layouts, and where the policy came from (scenario, seed, command,
  code version).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "hierarchy-policy"
FORMAT_VERSION = 1
WEIGHTS_FILE = "policy.npz"
META_FILE = "policy.json"
ACTIVATIONS = ("tanh", "relu")


class PolicyFileError(ValueError):
    """A policy file that cannot be used; the message names the file and the reason."""


@dataclass
class PolicyFile:
    """A verified policy: its metadata and its weight arrays by name."""

    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_policy(out_dir: Path | str, arrays: dict[str, np.ndarray], meta: dict[str, Any]
                 ) -> tuple[Path, Path]:
    """Write `policy.npz` and `policy.json` into `out_dir`; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_FILE
    clean = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in arrays.items()}
    np.savez(weights, **clean)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
            "weights_sha256": sha256_of(weights)}
    meta_path = out / META_FILE
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return weights, meta_path


def _resolve(path: Path | str) -> tuple[Path, Path]:
    """(weights, metadata) paths for a policy directory, a policy.json or a policy.npz."""
    p = Path(path)
    if p.is_dir():
        return p / WEIGHTS_FILE, p / META_FILE
    if p.suffix == ".json":
        return p.with_name(WEIGHTS_FILE), p
    if p.suffix == ".npz":
        return p, p.with_name(META_FILE)
    raise PolicyFileError(f"{p}: not a policy directory, policy.json or policy.npz")


def read_policy(path: Path | str) -> PolicyFile:
    """Load and verify a policy; every problem raises PolicyFileError naming the file."""
    weights, meta_path = _resolve(path)
    for f in (weights, meta_path):
        if not f.is_file():
            raise PolicyFileError(f"{f}: no such policy file")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"{meta_path}: not valid JSON metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PolicyFileError(f"{meta_path}: not a hierarchy policy (format {FORMAT!r} expected)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PolicyFileError(
            f"{meta_path}: format version {meta.get('format_version')!r}, this hierarchy reads "
            f"version {FORMAT_VERSION}"
        )
    actual = sha256_of(weights)
    if actual != meta.get("weights_sha256"):
        raise PolicyFileError(
            f"{weights}: SHA-256 {actual[:16]}… does not match the {meta_path.name} record "
            f"({str(meta.get('weights_sha256'))[:16]}…): the weights were changed or corrupted"
        )
    try:
        with np.load(weights, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise PolicyFileError(f"{weights}: refused, it holds objects that need unpickling "
                              f"({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise PolicyFileError(f"{weights}: not a readable .npz file ({exc})") from None
    for name, a in arrays.items():
        if a.dtype != np.float32 or not np.all(np.isfinite(a)):
            raise PolicyFileError(f"{weights}: array {name!r} is not finite float32")
    return PolicyFile(Path(meta_path).parent, meta, arrays)
