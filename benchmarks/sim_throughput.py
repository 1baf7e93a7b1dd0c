"""Simulator throughput: env steps and agent decisions per second, single env and batched.

    python benchmarks/sim_throughput.py            # small, default, large; B = 1 and 64
    python benchmarks/sim_throughput.py --quick    # shorter runs

Counts, per configuration:
- env steps/s: decision rounds per second (one step = every agent acts once);
- agent steps/s: env steps x copies x agents (every agent's action, no-ops included);
- decisions/s: placements actually decided (a pending container at an edge or the cloud);
- peak MiB: the peak of memory traced (tracemalloc, NumPy arrays included) during a separate
  one-second run of the same configuration, since tracing slows the run down.

Actions come from a cheap deterministic rule (the first allowed action of each mask), so the
figures measure the simulator, not a policy. Single env is measured through the PettingZoo
API (dicts in, dicts out); batched through the core. Runs on one core: the simulator is
single-threaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sim.core import BatchedCore  # noqa: E402
from sim.edge_cloud_v0 import parallel_env  # noqa: E402


def first_allowed(mask: np.ndarray) -> np.ndarray:
    return mask.argmax(axis=-1)


def bench_single(scenario: str, seconds: float) -> dict[str, float]:
    env = parallel_env(scenario, seed=0)
    obs, _ = env.reset(seed=0)
    steps = decisions = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        actions = {a: int(o["action_mask"].argmax()) for a, o in obs.items()}
        decisions += sum(int(o["action_mask"][0] == 0) for o in obs.values())
        obs, _, _, trunc, _ = env.step(actions)
        steps += 1
        if not env.agents:
            obs, _ = env.reset()
    elapsed = time.perf_counter() - start
    n_agents = len(env.possible_agents)
    return {"steps": steps / elapsed, "agent_steps": steps * n_agents / elapsed,
            "decisions": decisions / elapsed}


def bench_batched(scenario: str, batch: int, seconds: float) -> dict[str, float]:
    core = BatchedCore(scenario, batch_size=batch, seed=0, record_metrics=False)
    steps = decisions = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        decisions += int((core.edge_mask[..., 0] == 0).sum() + (core.cloud_mask[:, 0] == 0).sum())
        out = core.step(first_allowed(core.edge_mask), first_allowed(core.cloud_mask))
        steps += 1
        if out.truncated.any():
            core.reset_copies(out.truncated)
    elapsed = time.perf_counter() - start
    return {"steps": steps / elapsed, "agent_steps": steps * batch * (core.S + 1) / elapsed,
            "decisions": decisions / elapsed}


def measure(fn, name: str, extra: tuple, seconds: float) -> dict[str, float]:
    """Throughput untraced; peak memory from a separate short traced run (tracing is slow)."""
    result = fn(name, *extra, seconds)
    tracemalloc.start()
    fn(name, *extra, min(seconds, 1.0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result["peak_mib"] = peak / 2**20
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="small,default,large")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="time per configuration")
    parser.add_argument("--quick", action="store_true", help="2 s per configuration")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    # Compile the kernel before timing anything.
    BatchedCore("small", 1, 0).step(np.zeros((1, 3), int), np.zeros(1, int))
    rows = []
    for name in args.scenarios.split(","):
        for label, fn, extra in (
            ("single (PettingZoo)", bench_single, ()),
            (f"batched B={args.batch}", bench_batched, (args.batch,)),
        ):
            r = measure(fn, name, extra, seconds)
            rows.append((name, label, r))
            print(f"  measured {name:8s} {label:20s} {r['steps']:10.0f} steps/s", file=sys.stderr)
    header = ("| scenario | mode | env steps/s | agent steps/s | decisions/s | peak MiB |\n"
              "|---|---|---:|---:|---:|---:|")
    print(header)
    for name, label, r in rows:
        print(f"| {name} | {label} | {r['steps']:,.0f} | {r['agent_steps']:,.0f} | "
              f"{r['decisions']:,.0f} | {r['peak_mib']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
