"""The PettingZoo API of `edge_cloud_v0`: conformance, seeding, spaces, truncation, reward."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from sim.edge_cloud_v0 import EdgeCloudEnv, parallel_env
from sim.state import TERM_NAMES

# Short horizons keep every episode to a few hundred steps.
SHORT = {"small": 1800.0, "default": 1200.0}

# Reward weight field of the scenario for each cost term, in TERM_NAMES order.
WEIGHT_FIELDS = {
    "energy_kwh": "energy_per_kwh",
    "latency_over_slo": "latency_per_slo_hour",
    "violation_app_h": "violation_per_app_hour",
    "rejections": "rejection_per_container",
    "capped_site_h": "capping_per_site_hour",
    "overshoot_wh": "overshoot_per_wh",
}


def make_env(name: str = "small", seed: int | None = 0, **overrides: Any) -> EdgeCloudEnv:
    overrides.setdefault("horizon_s", SHORT.get(name, 1800.0))
    return parallel_env(name, seed=seed, **overrides)


def masked_actions(env: EdgeCloudEnv, obs: dict, rng: np.random.Generator) -> dict[str, int]:
    actions = {}
    for agent in env.agents:
        allowed = np.flatnonzero(obs[agent]["action_mask"])
        actions[agent] = int(rng.choice(allowed))
    return actions


def play(env: EdgeCloudEnv, seed: int | None, action_seed: int) -> list[tuple]:
    """A full episode with masked random actions; every step's outputs and state."""
    rng = np.random.default_rng(action_seed)
    obs, infos = env.reset(seed=seed)
    trace: list[tuple] = [(obs, infos, env.state().copy())]
    while env.agents:
        actions = masked_actions(env, obs, rng)
        obs, rewards, terms, truncs, infos = env.step(actions)
        trace.append((actions, obs, rewards, terms, truncs, infos, env.state().copy()))
    return trace


def assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# --- PettingZoo's own tests ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["small", "default"])
def test_parallel_api(name: str) -> None:
    parallel_api_test(make_env(name), num_cycles=5000)


@pytest.mark.parametrize("name", ["small", "default"])
def test_parallel_seed(name: str) -> None:
    parallel_seed_test(lambda: make_env(name, seed=None))


def test_metadata_and_agents() -> None:
    env = make_env("small")
    assert env.metadata["name"] == "edge_cloud_v0"
    assert env.possible_agents == ["edge_0", "edge_1", "edge_2", "cloud"]
    env.reset(seed=0)
    assert env.agents == env.possible_agents
    assert env.agents is not env.possible_agents


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_same_episode_and_other_seed_differs() -> None:
    a = play(make_env("small", seed=None), seed=7, action_seed=3)
    b = play(make_env("small", seed=None), seed=7, action_seed=3)
    assert len(a) == len(b) > 10
    assert_same(a, b, "trace")

    c = play(make_env("small", seed=None), seed=8, action_seed=3)
    rewards_a = [step[2]["cloud"] for step in a[1:]]
    rewards_c = [step[2]["cloud"] for step in c[1:]]
    states_a = np.stack([step[-1] for step in a])
    states_c = np.stack([step[-1] for step in c])
    differs = (
        len(a) != len(c)
        or rewards_a != rewards_c
        or not np.array_equal(states_a, states_c)
    )
    assert differs, "seeds 7 and 8 produced the same episode"


def test_constructor_seed_is_used_by_first_reset_and_reset_seed_repeats() -> None:
    env = make_env("small", seed=5)
    first = play(env, seed=None, action_seed=1)
    again = play(env, seed=5, action_seed=1)
    assert_same(first, again, "trace")
    fresh = play(make_env("small", seed=None), seed=5, action_seed=1)
    assert_same(first, fresh, "trace")


def test_returned_observations_are_not_changed_by_later_steps() -> None:
    env = make_env("small", seed=6, load_factor=4.0)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    held = []
    while env.agents:
        held.append((obs, {a: {k: v.copy() for k, v in o.items()} for a, o in obs.items()}))
        obs, *_ = env.step(masked_actions(env, obs, rng))
    for i, (kept, copied) in enumerate(held):
        for agent in copied:
            for key in ("observation", "action_mask"):
                assert np.array_equal(kept[agent][key], copied[agent][key]), (i, agent, key)


# --- spaces ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, overrides", [
    ("small", {"load_factor": 6.0}),
    ("small", {"sites.0.power_budget_w": 12.0, "load_factor": 4.0}),
    ("default", {}),
])
def test_observations_masks_and_state_lie_in_their_spaces(name: str, overrides: dict) -> None:
    env = make_env(name, seed=11, **overrides)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    steps = 0
    pending_seen = {a: False for a in env.possible_agents}
    while True:
        state = env.state()
        assert state.shape == env.state_space.shape
        assert state.dtype == env.state_space.dtype
        assert env.state_space.contains(state)
        assert np.isfinite(state).all()
        assert set(obs) == set(env.possible_agents)  # the last observation too
        for agent in env.possible_agents:
            space = env.observation_space(agent)
            o = obs[agent]
            assert o["observation"].dtype == np.float32
            assert space.contains(o), (agent, steps, o)
            mask = o["action_mask"]
            assert mask.dtype == np.int8
            assert mask.shape == (env.action_space(agent).n,)
            assert set(np.unique(mask)) <= {0, 1}
            assert mask.sum() >= 1, (agent, steps)
            if mask[0] == 1:  # the no-op: only when nothing is pending, and then alone
                assert mask.sum() == 1, (agent, steps, mask)
            else:
                pending_seen[agent] = True
        if not env.agents:
            break
        actions = masked_actions(env, obs, rng)
        for agent, act in actions.items():
            assert env.action_space(agent).contains(act)
        obs, *_ = env.step(actions)
        steps += 1
    assert steps > 0
    assert all(pending_seen.values()), pending_seen


def test_edge_mask_always_allows_offload_when_pending() -> None:
    env = make_env("small", seed=2, load_factor=6.0)
    core = env.core
    lay = core.edge_layout
    obs, _ = env.reset()
    rng = np.random.default_rng(1)
    while env.agents:
        for i, agent in enumerate(env.edge_agents):
            mask = obs[agent]["action_mask"]
            if core.edge_view.pending[0, i]:
                offloads = [lay.encode_offload(h) for h in range(lay.headrooms)]
                assert (mask[offloads] == 1).all()
        obs, *_ = env.step(masked_actions(env, obs, rng))


# --- episode end -----------------------------------------------------------------------------


def test_episode_ends_by_truncation_at_the_horizon() -> None:
    env = make_env("small", seed=3)
    horizon = env.scenario.time.horizon_s
    step_s = env.scenario.time.step_s
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    last = None
    while env.agents:
        agents = list(env.agents)
        obs, rewards, terms, truncs, infos = env.step(masked_actions(env, obs, rng))
        assert set(rewards) == set(terms) == set(truncs) == set(infos) == set(agents)
        assert not any(terms.values()), "the platform never terminates, it is truncated"
        assert len(set(truncs.values())) == 1, "all agents are truncated together"
        t = infos["cloud"]["t_s"]
        if not truncs["cloud"]:
            assert t < horizon
        last = (truncs, t)
    assert last is not None
    truncs, t = last
    assert all(truncs.values())
    assert horizon <= t < horizon + step_s
    assert env.agents == []
    with pytest.raises(RuntimeError):
        env.step({})
    env.reset()
    assert env.agents == env.possible_agents


# --- reward ----------------------------------------------------------------------------------


def test_reward_is_minus_the_weighted_cost_terms() -> None:
    env = make_env("small", seed=4, load_factor=4.0)
    core = env.core
    rw = env.scenario.reward
    weights = np.array([getattr(rw, WEIGHT_FIELDS[name]) for name in TERM_NAMES])
    assert tuple(WEIGHT_FIELDS) == TERM_NAMES
    np.testing.assert_array_equal(core.weights, weights)

    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    totals = np.zeros(len(TERM_NAMES))
    reward_sum = 0.0
    nonzero = np.zeros(len(TERM_NAMES), dtype=bool)
    while env.agents:
        obs, rewards, _, _, infos = env.step(masked_actions(env, obs, rng))
        assert len(set(rewards.values())) == 1, "one team reward"
        reward = rewards["cloud"]
        for agent, info in infos.items():
            terms = info["cost_terms"]
            assert tuple(terms) == TERM_NAMES, agent
            values = np.array([terms[n] for n in TERM_NAMES])
            assert (values >= 0).all()
            assert np.isclose(values @ weights, -reward, rtol=1e-9, atol=1e-12), (values, reward)
        # Each agent's own part (where the cost arose) is never negative; the parts add up.
        own = [info["own_cost"] for info in infos.values()]
        assert min(own) >= 0 and np.isclose(sum(own), -reward, rtol=1e-9, atol=1e-12)
        totals += values
        nonzero |= values > 0
        reward_sum += reward
    np.testing.assert_allclose(core.st.term_totals[0], totals, rtol=1e-9, atol=1e-12)
    assert np.isclose(core.st.cost_total[0], -reward_sum, rtol=1e-9)
    assert nonzero[TERM_NAMES.index("energy_kwh")]
