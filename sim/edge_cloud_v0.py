"""`edge_cloud_v0`: the PettingZoo ParallelEnv of the edge-cloud platform.

One copy (B = 1) of the batched core: agents `edge_0 … edge_{S-1}` and `cloud`; each
observation is {"observation": float32, "action_mask": int8}; `state()` is the centralised
critic's view; all agents share one team reward (the negative weighted cost), whose terms are
reported apart in `infos[agent]["cost_terms"]`, and whose part that arose at the agent's own
location (a site, or the cloud) is `infos[agent]["own_cost"]`, for local or mixed rewards; the
horizon ends an episode by truncation.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from hierarchy.scenario import Scenario, load_scenario
from sim.core import BatchedCore
from sim.state import TERM_NAMES

# Short names accepted as overrides besides dotted paths ("time.horizon_s" or time__horizon_s).
OVERRIDE_ALIASES = {
    "horizon_s": "time.horizon_s",
    "step_s": "time.step_s",
    "start_hour": "time.start_hour",
    "load_factor": "workload.load_factor",
    "max_apps": "limits.max_apps",
}


def parallel_env(scenario: str | Scenario = "default", seed: int | None = None,
                 **overrides: Any) -> EdgeCloudEnv:
    """Make the environment for a scenario name, path or object, with field overrides."""
    return EdgeCloudEnv(scenario=scenario, seed=seed, **overrides)


def scenario_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    return {OVERRIDE_ALIASES.get(k, k): v for k, v in overrides.items()}


class EdgeCloudEnv(ParallelEnv):
    metadata = {"name": "edge_cloud_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, scenario: str | Scenario = "default", seed: int | None = None,
                 **overrides: Any) -> None:
        super().__init__()
        self.scenario = load_scenario(scenario, scenario_overrides(overrides))
        self._initial_seed = seed
        self._seeded_once = False
        self.core = BatchedCore(self.scenario, batch_size=1, seed=seed)
        s = self.core.S
        self.edge_agents = [f"edge_{i}" for i in range(s)]
        self.possible_agents = [*self.edge_agents, "cloud"]
        self.agents: list[str] = []
        self._obs_spaces = {a: self._make_obs_space(a) for a in self.possible_agents}
        n_edge, n_cloud = self.core.edge_layout.n, self.core.cloud_layout.n
        self._act_spaces = {
            a: spaces.Discrete(n_cloud if a == "cloud" else n_edge) for a in self.possible_agents
        }
        self.state_space = spaces.Box(-np.inf, np.inf, (self.core.state_dim,), np.float32)

    def _make_obs_space(self, agent: str) -> spaces.Dict:
        if agent == "cloud":
            spec, n_act = self.core.cloud_encoder.spec, self.core.cloud_layout.n
        else:
            spec, n_act = self.core.edge_encoder.spec, self.core.edge_layout.n
        return spaces.Dict({
            "observation": spaces.Box(spec.low, spec.high, (spec.dim,), np.float32),
            "action_mask": spaces.Box(0, 1, (n_act,), np.int8),
        })

    @functools.cache  # noqa: B019 -- one space object per agent, as the API asks
    def observation_space(self, agent: str) -> spaces.Dict:
        return self._obs_spaces[agent]

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is None and not self._seeded_once:
            seed = self._initial_seed
        self._seeded_once = True
        self.core.reset(seed)
        if seed is not None:
            for i, agent in enumerate(self.possible_agents):
                self._act_spaces[agent].seed(seed + i)
        self.agents = list(self.possible_agents)
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, int]):
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset() first")
        edge = np.array([[actions.get(a, 0) for a in self.edge_agents]], dtype=np.int64)
        cloud = np.array([actions.get("cloud", 0)], dtype=np.int64)
        out = self.core.step(edge, cloud)
        reward = -float(out.cost[0])
        truncated = bool(out.truncated[0])
        terms = dict(zip(TERM_NAMES, map(float, out.terms[0]), strict=True))
        info = {"cost_terms": terms, "advanced": bool(out.advanced[0]),
                "t_s": float(self.core.st.t_s[0])}
        obs = self._observations()
        agents = self.agents
        rewards = dict.fromkeys(agents, reward)
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        own = dict(zip(self.possible_agents, map(float, out.site_cost[0]), strict=True))
        infos = {a: {**info, "own_cost": own[a]} for a in agents}
        if truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, dict[str, np.ndarray]]:
        c = self.core
        obs = {
            a: {"observation": c.edge_obs[0, i], "action_mask": c.edge_mask[0, i]}
            for i, a in enumerate(self.edge_agents)
        }
        obs["cloud"] = {"observation": c.cloud_obs[0], "action_mask": c.cloud_mask[0]}
        return obs

    def state(self) -> np.ndarray:
        return self.core.global_state()[0]

    def metrics(self) -> dict[str, float]:
        """Episode metrics so far (energy, response, SLO, …) for this copy."""
        from sim.metrics import episode_metrics

        return {k: float(v[0]) for k, v in episode_metrics(self.core).items()}

    def close(self) -> None:
        pass
