"""The evaluation runner: every policy on the same scenario and seeds, measured the same way.

For each policy and each seed S, S+1, ..., one copy of the simulator (`BatchedCore`, B=1) runs
from reset to the horizon with the policy's deciders called at every step. Each episode gives
the simulator's episode metrics (sim.metrics), the policy's decision time (the wall time of a
decider call divided by the decisions pending in it, for calls with at least one; p50 and p99
in microseconds) and the site power demand against the budget at every tick. Results are
means over episodes with 95% confidence intervals (Student t). `sim.report` writes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.policies.learned import (
    LEARNED_PREFIX,
    load_learned_policy,
    load_shipped_policy,
)
from hierarchy.policies.policy_file import PolicyFileError
from hierarchy.policies.registry import POLICY_NAMES, UnknownPolicyError, make_policy
from hierarchy.scenario import Scenario, load_scenario
from sim.core import BatchedCore
from sim.metrics import METRIC_NAMES, episode_metrics

OFFLINE_OPTIMAL = "offline-optimal"
DECISION_METRICS = ("decision_us_p50", "decision_us_p99")
REPORT_METRICS: tuple[str, ...] = (*METRIC_NAMES, *DECISION_METRICS)
# Every metric is better lower, except utilisation.
HIGHER_IS_BETTER = frozenset({"cpu_util_mean"})
# Policies that are bounds, not schedulers: reported, but never marked best.
BOUNDS = frozenset({OFFLINE_OPTIMAL})

# Builds the policy for one episode from its scenario, fresh core and seed.
PolicyFactory = Callable[[Scenario, BatchedCore, int], Policy]


class EvaluationError(ValueError):
    """A request the runner cannot carry out; the message says what to change."""


@dataclass
class EpisodeResult:
    seed: int
    metrics: dict[str, float]
    t_s: np.ndarray  # (T,) tick times
    site_power_w: np.ndarray  # (T, S) power demand of each edge site at each tick
    site_budget_w: np.ndarray  # (S,)
    info: dict = field(default_factory=dict)  # what the policy reports (offline-optimal)


@dataclass
class PolicyResult:
    name: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    def values(self, metric: str) -> np.ndarray:
        return np.array([e.metrics[metric] for e in self.episodes], dtype=np.float64)

    def summary(self) -> dict[str, dict[str, float | None]]:
        return {m: mean_ci95(self.values(m)) for m in REPORT_METRICS}


@dataclass
class Evaluation:
    scenario: Scenario
    seeds: list[int]
    results: dict[str, PolicyResult]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def episodes(self) -> int:
        return len(self.seeds)

    def ranked_by(self, metric: str) -> list[str]:
        """Policy names (bounds excluded) from best to worst by mean `metric`."""
        names = [n for n in self.results if n not in BOUNDS]
        means = {n: self.results[n].summary()[metric]["mean"] for n in names}
        sign = -1.0 if metric in HIGHER_IS_BETTER else 1.0
        return sorted(names, key=lambda n: np.inf if means[n] is None else sign * means[n])


def mean_ci95(values: np.ndarray) -> dict[str, float | None]:
    """Mean and half-width of the 95% t-interval over the finite values (None if undefined)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "ci95": None}
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "ci95": None}
    half = stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return {"mean": mean, "ci95": float(half)}


# --- policies ----------------------------------------------------------------------------------


def heuristic_factory(name: str) -> PolicyFactory:
    def build(scenario: Scenario, core: BatchedCore, seed: int) -> Policy:
        ctx = PolicyContext(core.edge_encoder, core.cloud_encoder, seed=seed)
        return make_policy(name, ctx)

    return build


def learned_factory(name: str, scenario: Scenario) -> PolicyFactory:
    """`learned:PATH` (or `learned`: the shipped policy trained for the scenario's platform,
    models/default on `default`) as a factory; the policy file is read and checked against
    the scenario now, so a bad one fails before any run. A learned policy keeps no state
    between decisions, so every episode uses the one loaded."""
    probe = BatchedCore(scenario, batch_size=1, seed=0, record_metrics=False)
    ctx = PolicyContext(probe.edge_encoder, probe.cloud_encoder)
    try:
        policy = (load_learned_policy(name[len(LEARNED_PREFIX):], ctx)
                  if name.startswith(LEARNED_PREFIX) else load_shipped_policy(ctx))
    except PolicyFileError as exc:
        raise EvaluationError(f"{name}: {exc}") from None

    def build(scenario: Scenario, core: BatchedCore, seed: int) -> Policy:
        return policy

    return build


def applicable_policies(scenario: Scenario) -> list[str]:
    """Every policy that applies to `scenario` (the offline optimum only where it solves)."""
    from sim.offline_optimal import offline_optimal_applies

    names = list(POLICY_NAMES)
    if offline_optimal_applies(scenario)[0]:
        names.append(OFFLINE_OPTIMAL)
    return names


def resolve_policies(scenario: Scenario, names: Sequence[str]) -> dict[str, PolicyFactory]:
    """Factories for the policy names (`all` expands); unknown or inapplicable ones raise."""
    wanted: list[str] = []
    for name in names:
        for n in applicable_policies(scenario) if name == "all" else [name]:
            if n not in wanted:
                wanted.append(n)
    if not wanted:
        raise EvaluationError("no policies given; use --policies all or a comma list")
    factories: dict[str, PolicyFactory] = {}
    for name in wanted:
        if name == OFFLINE_OPTIMAL:
            from sim.offline_optimal import offline_optimal_applies, offline_optimal_factory

            ok, why = offline_optimal_applies(scenario)
            if not ok:
                raise EvaluationError(f"offline-optimal does not apply to {scenario.name}: {why}")
            factories[name] = offline_optimal_factory()
        elif name in POLICY_NAMES:
            factories[name] = heuristic_factory(name)
        elif name == "learned" or name.startswith(LEARNED_PREFIX):
            factories[name] = learned_factory(name, scenario)
        else:
            known = ", ".join([*POLICY_NAMES, OFFLINE_OPTIMAL, "learned", "learned:PATH", "all"])
            raise UnknownPolicyError(f"unknown policy {name!r}; known policies: {known}")
    return factories


# --- running -----------------------------------------------------------------------------------


def run_episode(scenario: Scenario, factory: PolicyFactory, seed: int) -> EpisodeResult:
    """One episode of one copy from reset with `seed` to the horizon."""
    core = BatchedCore(scenario, batch_size=1, seed=seed, record_metrics=True)
    policy = factory(scenario, core, seed)
    S = core.S
    decision_us: list[float] = []
    t_s: list[float] = []
    power: list[np.ndarray] = []  # measured at each tick (nothing is measured before the first)
    clock = time.perf_counter_ns
    while True:
        n_edge = int(np.count_nonzero(core.edge_view.pending))
        t0 = clock()
        edge_actions = policy.edge(core.edge_view, core.edge_mask, core.edge_obs)
        t1 = clock()
        n_cloud = int(np.count_nonzero(core.cloud_view.pending))
        t2 = clock()
        cloud_actions = policy.cloud(core.cloud_view, core.cloud_mask, core.cloud_obs)
        t3 = clock()
        if n_edge:
            decision_us.append((t1 - t0) / n_edge / 1e3)
        if n_cloud:
            decision_us.append((t3 - t2) / n_cloud / 1e3)
        out = core.step(edge_actions, cloud_actions)
        if out.advanced[0]:
            t_s.append(float(core.st.t_s[0]))
            power.append(core.st.loc_power_w[0, :S].copy())
        if out.truncated[0]:
            break
    metrics = {k: float(v[0]) for k, v in episode_metrics(core).items()}
    us = np.asarray(decision_us)
    metrics["decision_us_p50"] = float(np.percentile(us, 50)) if us.size else float("nan")
    metrics["decision_us_p99"] = float(np.percentile(us, 99)) if us.size else float("nan")
    return EpisodeResult(seed, metrics, np.asarray(t_s), np.asarray(power).reshape(-1, S),
                         core.topo.site_budget_w.copy(), dict(getattr(policy.edge, "info", {})))


def evaluate(
    scenario: Scenario | str,
    policies: Sequence[str] = ("all",),
    episodes: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> Evaluation:
    """Run every policy on seeds seed, seed+1, ..., seed+episodes-1."""
    sc = load_scenario(scenario)
    if episodes < 1:
        raise EvaluationError(f"--episodes must be at least 1, got {episodes}")
    factories = resolve_policies(sc, policies)
    seeds = [seed + i for i in range(episodes)]
    results = {name: PolicyResult(name) for name in factories}
    bar = _progress(len(factories) * episodes, progress)
    for name, factory in factories.items():
        for s in seeds:
            bar.set_description(f"{name} seed {s}")
            try:
                results[name].episodes.append(run_episode(sc, factory, s))
            except RuntimeError as exc:
                if name != OFFLINE_OPTIMAL:
                    raise
                bar.close()
                raise EvaluationError(f"offline-optimal, seed {s}: {exc}") from None
            bar.update(1)
    bar.close()
    return Evaluation(sc, seeds, results, _notes(sc, policies, results))


def _notes(sc: Scenario, asked: Sequence[str], results: dict[str, PolicyResult]
           ) -> dict[str, str]:
    from sim.offline_optimal import NOTE, offline_optimal_applies

    if OFFLINE_OPTIMAL in results:
        eps = results[OFFLINE_OPTIMAL].episodes
        solved = ", ".join(
            f"seed {e.seed}: {e.info.get('status', '?')} in {e.info.get('solve_s', 0.0):.1f} s, "
            f"model cost {e.info.get('model_cost', float('nan')):.6g}, lower bound "
            f"{e.info.get('lower_bound', float('nan')):.6g}, measured {e.metrics['cost']:.6g}"
            for e in eps
        )
        return {OFFLINE_OPTIMAL: f"{NOTE} ({solved})"}
    if "all" in asked:
        ok, why = offline_optimal_applies(sc)
        if not ok:
            return {OFFLINE_OPTIMAL: f"not run: {why}"}
    return {}


def _progress(total: int, enabled: bool):  # noqa: ANN202 - tqdm or a stand-in
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="episode", dynamic_ncols=True)
