"""The interface between the edge agent and the nodes it controls.

A backend reports the site's nodes as arrays of shape (M,), M the node slots of the site's
platform shape (padding slots have `exists` False), and applies placements. `place` applies
the hard guard again (capacity and the site's power budget) and refuses what no longer
fits, whatever the policy chose: the agent then offloads.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from hierarchy.observation import CloudEncoder, EdgeEncoder


@dataclass(frozen=True)
class NodeArrays:
    """The site's nodes now; every array is (M,). CPU in cores, memory in GiB, power in W."""

    ids: tuple[str, ...]
    exists: np.ndarray
    asleep: np.ndarray
    cores: np.ndarray
    mem_gib: np.ndarray
    alloc_cpu: np.ndarray
    alloc_mem: np.ndarray
    used_cpu: np.ndarray
    speed: np.ndarray
    idle_w: np.ndarray
    max_w: np.ndarray
    sleep_w: np.ndarray
    power_w: np.ndarray
    containers: np.ndarray  # int, containers running on each node
    curves: np.ndarray | None  # (M, 11) normalised power tables, None when all are linear


@dataclass(frozen=True)
class Placement:
    """A container to start on node `node` (an index into the node arrays)."""

    key: str  # unique per site: the request id (prefixed by the origin site if forwarded)
    app: str
    container: str
    node: int
    cpu_cores: float
    mem_gib: float
    lifetime_s: float | None = None  # backend-time seconds; None: until released
    # What the statistics of its service (edge_agent.behaviour) need: the service it is an
    # instance of (default: `app`) and its request (default: the allocation).
    service: str | None = None
    cpu_req: float | None = None
    mem_req: float | None = None


@dataclass(frozen=True)
class ContainerUsage:
    """One running container's measured usage now: CPU in cores, memory in GiB."""

    key: str
    service: str
    container: str
    cpu_used: float
    cpu_req: float
    mem_used: float
    mem_req: float


class Backend(ABC):
    """One edge site's nodes, as the edge agent sees and drives them."""

    site: str
    site_index: int
    budget_w: float
    wan_rtt_ms: float
    # The platform shape the policy runs on (nodes per site, size and knob levels, ...).
    encoder: EdgeEncoder
    cloud_encoder: CloudEncoder

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The ids of the node slots, in the order of the node arrays."""
        return self.nodes().ids

    @abstractmethod
    def nodes(self) -> NodeArrays:
        """A snapshot of the nodes (fresh arrays)."""

    @abstractmethod
    def power_w(self) -> float:
        """The site's power demand now (before any capping), W."""

    def throttle(self) -> float:
        """Speed the site's power cap imposes now (1 = none)."""
        return 1.0

    @abstractmethod
    def hour(self) -> float:
        """Time of day at the site, h in [0, 24)."""

    @abstractmethod
    def knob(self) -> int:
        """The site's resize-knob level."""

    @abstractmethod
    def set_knob(self, level: int) -> None: ...

    @abstractmethod
    def place(self, placement: Placement) -> bool:
        """Start the container; False (and nothing changed) if the guard refuses it now."""

    @abstractmethod
    def release(self, key: str) -> bool:
        """Stop the container placed under `key`; False if there is none."""

    @abstractmethod
    def peers_per_node(self, app: str, containers: list[str]) -> np.ndarray:
        """(M,) how many of `app`'s `containers` run on each node."""

    @abstractmethod
    def containers(self) -> int:
        """Containers running on the site."""

    def time_s(self) -> float:
        """The backend's clock, seconds (usage samples are taken on it)."""
        return time.monotonic()

    def usage(self) -> list[ContainerUsage]:
        """The measured usage of every running container (empty: this backend measures
        none, and every service stays unknown to the policy)."""
        return []

    def advance(self) -> list[str]:
        """Let time pass up to now (ends containers whose lifetime is over); their keys."""
        return []

    def warm_up(self) -> None:  # noqa: B027 - optional
        """Run whatever the first placement would compile or load, without changing state."""

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing
        """Release what the backend holds."""
