"""Counter-based random streams: each copy's draws depend only on its own key and clock.

A draw is a hash of (copy key, tick, stream, index), so one copy's workload never depends
on how many decisions the other copies of a batch take, or on B. Keys come from the seed
through numpy's SeedSequence (one per copy and episode).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
TICK_MULT = np.uint64(0xD6E8FEB86659FD93)
STREAM_MULT = np.uint64(0xA0761D6478BD642F)
TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53

# Streams of the tick kernel.
STREAM_BURST, STREAM_ARRIVAL, STREAM_LOAD = 1, 2, 3


@njit(cache=True, inline="always")
def _splitmix(x: np.uint64) -> np.uint64:
    z = x + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def uniform(key: np.uint64, tick: int, stream: int, index: int) -> float:
    """A uniform draw in (0, 1) for (copy key, tick, stream, index)."""
    x = key ^ (np.uint64(tick) * TICK_MULT) ^ (np.uint64(stream) * STREAM_MULT)
    x = _splitmix(_splitmix(x) ^ np.uint64(index))
    return (float(x >> np.uint64(11)) + 0.5) * TO_UNIT


@njit(cache=True, inline="always")
def normal(key: np.uint64, tick: int, stream: int, index: int) -> float:
    """A standard normal draw (Box-Muller on two uniforms of the same coordinates)."""
    u1 = uniform(key, tick, stream, 2 * index)
    u2 = uniform(key, tick, stream, 2 * index + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def copy_seed_sequence(entropy: int, copy: int, episode: int,
                       purpose: int) -> np.random.SeedSequence:
    """The seed sequence of one copy's episode, for one purpose (0: tick key, 1: apps)."""
    return np.random.SeedSequence(entropy, spawn_key=(copy, episode, purpose))


def copy_key(entropy: int, copy: int, episode: int) -> np.uint64:
    return copy_seed_sequence(entropy, copy, episode, 0).generate_state(1, np.uint64)[0]
