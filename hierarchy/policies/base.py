"""The policy interface shared by the simulator's runner, training and the live agents.

A policy decides from the shared views (hierarchy.observation) and the action masks, with any
leading batch shape: the runner calls it on (B, S) edge views at once, the edge agent on one
site. It must return, for every position, an action its mask allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hierarchy.observation import CloudEncoder, CloudView, EdgeEncoder, EdgeView


class EdgeDecider(Protocol):
    def __call__(self, view: EdgeView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Actions (...,) for edge views (...) with masks (..., A) and encoded obs (..., D)."""
        ...


class CloudDecider(Protocol):
    def __call__(self, view: CloudView, mask: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Actions (...,) for cloud views (...) with masks (..., A) and encoded obs (..., D)."""
        ...


@dataclass
class Policy:
    """A named pair of deciders, one for the edge level and one for the cloud level."""

    name: str
    edge: EdgeDecider
    cloud: CloudDecider
    version: str = "1"


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may know about the platform it runs on, fixed at construction."""

    edge_encoder: EdgeEncoder
    cloud_encoder: CloudEncoder
    seed: int = 0
