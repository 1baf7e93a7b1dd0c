"""Per-copy random streams: a copy's run depends on (seed, copy, episode) and its own actions."""

from __future__ import annotations

import numpy as np
from numba import njit

from hierarchy.scenario import load_scenario
from sim.core import BatchedCore
from sim.streams import normal, uniform


def _first_allowed(mask: np.ndarray) -> np.ndarray:
    return mask.argmax(axis=-1)


def test_copy_zero_of_a_batch_runs_like_a_single_env() -> None:
    sc = load_scenario("small", {"time.horizon_s": 2 * 3600.0})
    single = BatchedCore(sc, batch_size=1, seed=21)
    batch = BatchedCore(sc, batch_size=3, seed=21)
    rng = np.random.default_rng(0)
    for _ in range(600):
        edge = _first_allowed(batch.edge_mask)
        # The other copies play at random: copy 0 must not notice.
        edge[1:] = (rng.random(batch.edge_mask[1:].shape) * batch.edge_mask[1:]).argmax(-1)
        cloud = _first_allowed(batch.cloud_mask)
        batch.step(edge, cloud)
        single.step(edge[:1], cloud[:1])
        np.testing.assert_array_equal(batch.edge_obs[0], single.edge_obs[0])
        np.testing.assert_array_equal(batch.cloud_mask[0], single.cloud_mask[0])
    assert batch.st.arrived[0] == single.st.arrived[0] > 0


def test_reset_without_seed_moves_to_a_new_episode_and_seed_replays() -> None:
    core = BatchedCore("small", batch_size=2, seed=5)
    def arrivals(core: BatchedCore) -> np.ndarray:
        for _ in range(300):
            core.step(_first_allowed(core.edge_mask), _first_allowed(core.cloud_mask))
        return core.st.arrived.copy()
    first = arrivals(core)
    core.reset()
    second = arrivals(core)
    core.reset(seed=5)
    np.testing.assert_array_equal(arrivals(core), first)
    assert not np.array_equal(first, second)


@njit
def _draws(key: np.uint64, n: int) -> tuple[np.ndarray, np.ndarray]:
    u = np.empty(n)
    z = np.empty(n)
    for i in range(n):
        u[i] = uniform(key, i, 2, 7)
        z[i] = normal(key, 3, 1, i)
    return u, z


def test_stream_moments() -> None:
    u, z = _draws(np.uint64(2024), 100_000)
    assert 0.0 < u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert abs(z.mean()) < 0.015 and abs(z.std() - 1.0) < 0.015
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.015
