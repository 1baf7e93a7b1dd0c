"""The cloud agent's global view: every site as its messages describe it, where containers
went, recent decisions, and the cloud pool the cloud agent places into itself."""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hierarchy import protocol as p
from hierarchy.locations import LocationBook
from hierarchy.scenario import Scenario


@dataclass
class SiteState:
    """One edge site: its status (retained, with the last will) and its latest telemetry."""

    site: str
    online: bool = False
    status: p.Status | None = None
    telemetry: p.Telemetry | None = None
    telemetry_at: float | None = None  # monotonic time it came
    last_seen_s: float | None = None  # unix time of its last message of any kind
    decisions_seen: dict[str, int] = field(
        default_factory=lambda: {"placed": 0, "offloaded": 0, "rejected": 0})

    def seen(self) -> None:
        self.last_seen_s = time.time()

    def counts(self) -> dict[str, int]:
        """Decisions so far: the site's own count when it reported one, else what we saw."""
        if self.telemetry is not None:
            return self.telemetry.decisions.model_dump()
        return dict(self.decisions_seen)

    def summary(self, now_s: float) -> dict[str, Any]:
        t = self.telemetry
        nodes = t.nodes if t else []
        return {
            "site": self.site,
            "online": self.online,
            "last_seen_s": self.last_seen_s,
            "seen_ago_s": None if self.last_seen_s is None else max(0.0, now_s - self.last_seen_s),
            "policy": (t.policy if t else None) or (self.status.policy if self.status else None),
            "nodes": len(nodes),
            "nodes_awake": sum(1 for n in nodes if not n.asleep),
            "cpu_cores": sum(n.cores for n in nodes),
            "alloc_cpu_cores": sum(n.alloc_cpu_cores for n in nodes),
            "mem_gib": sum(n.mem_gib for n in nodes),
            "alloc_mem_gib": sum(n.alloc_mem_gib for n in nodes),
            "power_w": t.power_w if t else None,
            "budget_w": t.budget_w if t else None,
            "queue": t.queue if t else None,
            "pending_offloads": t.pending_offloads if t else None,
            "containers": t.containers if t else None,
            "decisions": self.counts(),
        }


@dataclass(frozen=True)
class PoolNode:
    id: str
    cores: float
    mem_gib: float


class CloudPool:
    """The cloud's own nodes: first fit on capacity, containers end after their lifetime."""

    def __init__(self, nodes: list[PoolNode], speed: float = 1.0) -> None:
        self.nodes = nodes
        self.speed = speed
        self.cores = np.array([n.cores for n in nodes], dtype=np.float64)
        self.mem = np.array([n.mem_gib for n in nodes], dtype=np.float64)
        self.alloc_cpu = np.zeros(len(nodes))
        self.alloc_mem = np.zeros(len(nodes))
        self._placed: dict[str, tuple[int, float, float]] = {}
        self._ends: list[tuple[float, str]] = []

    @classmethod
    def from_scenario(cls, sc: Scenario, speed: float = 1.0) -> CloudPool:
        nodes = []
        for name, count in sc.cloud.nodes.items():
            t = sc.node_types[name]
            nodes += [PoolNode(f"cloud.node{len(nodes) + i}", t.cpu_cores, t.mem_gib)
                      for i in range(count)]
        return cls(nodes, speed)

    def fits(self, cpu: float, mem: float) -> np.ndarray:
        slack = 1.0 + 1e-9
        return ((self.alloc_cpu + cpu <= self.cores * slack)
                & (self.alloc_mem + mem <= self.mem * slack))

    def place(self, key: str, cpu: float, mem: float, lifetime_s: float | None) -> int | None:
        """Index of the node it went to (first fit), None if no node has room."""
        if key in self._placed:
            return self._placed[key][0]
        ok = np.flatnonzero(self.fits(cpu, mem))
        if ok.size == 0:
            return None
        j = int(ok[0])
        self.alloc_cpu[j] += cpu
        self.alloc_mem[j] += mem
        self._placed[key] = (j, cpu, mem)
        if lifetime_s is not None:
            heapq.heappush(self._ends, (time.monotonic() + lifetime_s / self.speed, key))
        return j

    def release(self, key: str) -> bool:
        entry = self._placed.pop(key, None)
        if entry is None:
            return False
        j, cpu, mem = entry
        self.alloc_cpu[j] = max(0.0, self.alloc_cpu[j] - cpu)
        self.alloc_mem[j] = max(0.0, self.alloc_mem[j] - mem)
        return True

    def expire(self) -> int:
        now, n = time.monotonic(), 0
        while self._ends and self._ends[0][0] <= now:
            n += self.release(heapq.heappop(self._ends)[1])
        return n

    @property
    def containers(self) -> int:
        return len(self._placed)

    def free_cpu_frac(self) -> float:
        total = float(self.cores.sum())
        return 1.0 - float(self.alloc_cpu.sum()) / total if total > 0 else 0.0

    def free_mem_frac(self) -> float:
        total = float(self.mem.sum())
        return 1.0 - float(self.alloc_mem.sum()) / total if total > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "nodes": len(self.nodes),
            "cpu_cores": float(self.cores.sum()),
            "alloc_cpu_cores": float(self.alloc_cpu.sum()),
            "mem_gib": float(self.mem.sum()),
            "alloc_mem_gib": float(self.alloc_mem.sum()),
            "free_cpu_frac": self.free_cpu_frac(),
            "containers": self.containers,
        }


class Locations(LocationBook):
    """Where containers run, from every decision the cloud sees."""

    def __init__(self, max_entries: int = 200_000) -> None:
        super().__init__(max_entries)


class DecisionLog:
    """The most recent decisions, newest last, overall and per site."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.all: deque[dict[str, Any]] = deque(maxlen=kept)
        self.by_site: dict[str, deque[dict[str, Any]]] = {}

    def add(self, decision: p.Decision) -> None:
        entry = decision.model_dump(by_alias=True, exclude_none=True)
        self.all.append(entry)
        self.by_site.setdefault(decision.site, deque(maxlen=self.kept)).append(entry)

    def recent(self, site: str | None, limit: int) -> list[dict[str, Any]]:
        source = self.all if site is None else self.by_site.get(site, deque())
        return list(source)[-limit:][::-1]
