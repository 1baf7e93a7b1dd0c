"""Action layouts of the edge and cloud agents (one flat Discrete space each).

Edge: index 0 is the no-op (only allowed when nothing is pending). Every other index picks a
resize-knob level h and a placement j: `1 + h * P + j` with P = nodes * sizes + 1, where
j < nodes * sizes is (node j // sizes, size level j % sizes) and j == nodes * sizes offloads.

Cloud: 0 no-op, 1 reject (only when nothing else fits), 2 the cloud pool, 3 + s edge site s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLOUD_NOOP = 0
CLOUD_REJECT = 1
CLOUD_POOL = 2
CLOUD_FIRST_SITE = 3

# Placement kinds returned by EdgeActionLayout.decode.
EDGE_NOOP = 0
EDGE_PLACE = 1
EDGE_OFFLOAD = 2


@dataclass(frozen=True)
class EdgeActionLayout:
    nodes: int
    sizes: int
    headrooms: int

    @property
    def placements(self) -> int:
        """Placement choices per knob level: every (node, size) and offload."""
        return self.nodes * self.sizes + 1

    @property
    def n(self) -> int:
        return 1 + self.headrooms * self.placements

    def encode_place(self, node: int, size: int, headroom: int) -> int:
        return 1 + headroom * self.placements + node * self.sizes + size

    def encode_offload(self, headroom: int) -> int:
        return 1 + headroom * self.placements + self.nodes * self.sizes

    def decode(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Split actions (any shape) into (kind, node, size, headroom); -1 where unused."""
        if np.ndim(action) == 0:
            return tuple(np.asarray(v) for v in self._decode_one(int(action)))  # type: ignore[return-value]
        action = np.asarray(action, dtype=np.int64)
        rest = action - 1
        headroom = np.where(action > 0, rest // self.placements, -1)
        j = np.where(action > 0, rest % self.placements, -1)
        n_place = self.nodes * self.sizes
        kind = np.where(action == 0, EDGE_NOOP, np.where(j == n_place, EDGE_OFFLOAD, EDGE_PLACE))
        node = np.where(kind == EDGE_PLACE, j // self.sizes, -1)
        size = np.where(kind == EDGE_PLACE, j % self.sizes, -1)
        return kind, node, size, headroom

    def _decode_one(self, action: int) -> tuple[int, int, int, int]:
        """decode() for one action in plain integers (one gateway decision at a time)."""
        if action <= 0:
            return EDGE_NOOP, -1, -1, -1
        headroom, j = divmod(action - 1, self.placements)
        if j == self.nodes * self.sizes:
            return EDGE_OFFLOAD, -1, -1, headroom
        node, size = divmod(j, self.sizes)
        return EDGE_PLACE, node, size, headroom


@dataclass(frozen=True)
class CloudActionLayout:
    sites: int

    @property
    def n(self) -> int:
        return CLOUD_FIRST_SITE + self.sites
