"""The `hierarchy` command: the composition root that wires scenarios, policies and the runner.

    hierarchy scenarios
    hierarchy evaluate --scenario small --policies all --episodes 3 --out results/small
    hierarchy demo --scenario small --sites 2 --duration 10
    hierarchy train --scenario default --total-steps 4000000 --seed 0 --out models/default
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hierarchy.policies.registry import POLICY_NAMES
from hierarchy.scenario import ScenarioError, available_scenarios, load_scenario

EXIT_USAGE = 2


class CliError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (e.g. time.horizon_s=3600), got {text!r}"
        )
    return key.strip(), yaml.safe_load(value)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hierarchy",
        description="A learned edge-cloud hierarchical container scheduler: simulate, "
        "evaluate and compare scheduling policies.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("scenarios", help="list the known scenarios with their descriptions",
                   description="List the scenarios found in the scenario directories "
                   "($HIERARCHY_SCENARIOS first, then the package's scenarios/).")

    sub.add_parser("features", add_help=False,
                   help="per-container behaviour features, classes and example plots "
                   "(see `hierarchy features --help`)")
    sub.add_parser("train", add_help=False,
                   help="train the edge and cloud actors with MAPPO and export the policy "
                   "(see `hierarchy train --help`)")
    sub.add_parser("workload", add_help=False,
                   help="convert public traces to hierarchy's formats "
                   "(see `hierarchy workload convert --help`)")

    ev = sub.add_parser(
        "evaluate",
        help="run policies on a scenario and report metrics with 95%% intervals",
        description="Run each policy on the same seeds (SEED, SEED+1, ...) from reset to the "
        "scenario's horizon, and write DIR/results.json, DIR/report.md and DIR/plots/*.png. "
        "Metrics are means over episodes with 95% t-intervals. The table is printed at the end.",
    )
    ev.add_argument("--scenario", required=True, metavar="NAME|PATH",
                    help="a scenario name (see `hierarchy scenarios`) or a YAML file")
    ev.add_argument("--policies", default="all", metavar="all|a,b,c",
                    help="comma-separated policy names, or 'all' (the default) for every "
                    "policy that applies to the scenario; offline-optimal applies only where "
                    "it can be solved (small platforms, --horizon-s 1200 or less). "
                    f"Policies: {', '.join(POLICY_NAMES)}, offline-optimal, and learned "
                    "policies: learned (the shipped policy trained for the scenario's platform: "
                    "models/default or models/small) or learned:DIR (a directory written by "
                    "`hierarchy train`)")
    ev.add_argument("--episodes", type=_positive_int, default=3, metavar="N",
                    help="episodes (seeds) per policy (default: 3)")
    ev.add_argument("--seed", type=int, default=0, metavar="S",
                    help="first seed (default: 0)")
    ev.add_argument("--out", metavar="DIR", default=None,
                    help="output directory (default: results/<scenario>)")
    ev.add_argument("--horizon-s", type=float, default=None, metavar="SECONDS",
                    help="override the scenario's episode length (time.horizon_s)")
    ev.add_argument("--set", dest="overrides", type=parse_override, action="append", default=[],
                    metavar="KEY=VALUE",
                    help="override a scenario field by dotted path, e.g. "
                    "--set workload.load_factor=1.5 (repeatable)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_demo_parser(sub)
    return parser


def _add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the live hierarchy on this machine: broker, cloud agent, edge agents, "
        "workload",
        description="Start everything on this machine, with nothing to start by hand: an "
        "MQTT broker (Mosquitto, on a free loopback port), the cloud agent (REST on "
        "127.0.0.1, its address printed), one edge agent per site on the simulated backend, "
        "and a workload source replaying the scenario's generated apps as placement requests "
        "(one per container). Shows live progress, stops by itself after --duration seconds "
        "(plus at most 5 s for the last decisions), and prints a summary per site. Ctrl-C "
        "stops it cleanly.",
        epilog="Needs Mosquitto (apt-get install mosquitto, brew install mosquitto), or "
        "HIERARCHY_MOSQUITTO set to its path, and the agents' extras "
        '(pip install "hierarchy[agents,sim]").')
    demo.add_argument("--scenario", default="default", metavar="NAME|PATH",
                      help="a scenario name (see `hierarchy scenarios`) or a YAML file "
                      "(default: default)")
    demo.add_argument("--sites", type=_positive_int, default=None, metavar="N",
                      help="edge sites to run (the scenario's first N; default: all)")
    demo.add_argument("--duration", type=_positive_float, default=20.0, metavar="S",
                      help="seconds the workload source sends for (default: 20)")
    demo.add_argument("--speed", type=_positive_float, default=600.0, metavar="X",
                      help="simulated seconds per real second: scales the scenario's arrival "
                      "rate and the containers' lifetimes (default: 600)")
    demo.add_argument("--rate", type=_positive_float, default=None, metavar="R",
                      help="send R requests per second in all instead of the scenario's rate")
    demo.add_argument("--http", default=None, metavar="HOST:PORT",
                      help="the cloud agent's REST address (default: a free port on 127.0.0.1)")
    demo.add_argument("--policy", default="learned", metavar="NAME",
                      help="the edge agents' policy (default: learned, the shipped policy "
                      "trained for the scenario's platform; or learned:DIR, or a heuristic)")
    demo.add_argument("--seed", type=int, default=0, help="workload seed (default: 0)")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_demo(args: argparse.Namespace) -> int:
    import logging

    from hierarchy.demo import DemoError, DemoOptions, run_demo

    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops it as cleanly as Ctrl-C
    try:
        report = run_demo(DemoOptions(
            scenario=args.scenario, sites=args.sites, duration_s=args.duration,
            speed=args.speed, rate_rps=args.rate, http=args.http, policy=args.policy,
            seed=args.seed))
    except DemoError as exc:
        raise CliError(str(exc)) from None
    if report.interrupted:
        return 130
    return 0 if not report.undecided and not report.duplicated else 1


def cmd_scenarios() -> int:
    names = available_scenarios()
    if not names:
        raise CliError("no scenarios found; set HIERARCHY_SCENARIOS to a directory of YAML files")
    width = max(len(n) for n in names)
    for name in names:
        try:
            description = load_scenario(name).description
        except ScenarioError as exc:
            description = f"(invalid: {str(exc).splitlines()[0]})"
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_evaluate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from hierarchy.policies.registry import UnknownPolicyError
    from sim.evaluate import EvaluationError, evaluate
    from sim.report import markdown_table, write_all

    overrides = dict(args.overrides)
    if args.horizon_s is not None:
        overrides["time.horizon_s"] = args.horizon_s
    try:
        scenario = load_scenario(args.scenario, overrides or None)
        policies = [p.strip() for p in args.policies.split(",") if p.strip()]
        command = shlex.join(["hierarchy", *argv])
        out = Path(args.out or f"results/{scenario.name}")
        # Fail before the long run, not after it, when the directory cannot be made.
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        ev = evaluate(scenario, policies, episodes=args.episodes, seed=args.seed,
                      progress=not args.no_progress)
        paths = write_all(ev, out, command)
    except (ScenarioError, UnknownPolicyError, EvaluationError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        where = exc.filename or args.out or "results/"
        raise CliError(f"cannot write results to {where}: {exc.strerror or exc} "
                       "(choose another --out)") from None
    elapsed = time.perf_counter() - started
    print()
    print(f"scenario {scenario.name}: {ev.episodes} episode(s), seeds {ev.seeds}, "
          f"{elapsed:.1f} s")
    print(markdown_table(ev))
    ranked = ev.ranked_by("cost")
    if ranked:
        print(f"best on cost: {ranked[0]}")
    print(f"wrote {paths[0].parent}/: results.json, report.md, plots/ ({len(paths) - 2} PNG)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["workload"]:
        return cmd_workload(argv[1:])
    if argv[:1] == ["train"]:
        from hierarchy.train_cli import main as train_main

        return train_main(argv[1:])
    if argv[:1] == ["features"]:
        from hierarchy.features.report import main as features_main

        return features_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "scenarios":
            return cmd_scenarios()
        if args.command == "demo":
            return cmd_demo(args)
        return cmd_evaluate(args, argv)
    except CliError as exc:
        print(f"hierarchy: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("hierarchy: interrupted", file=sys.stderr)
        return 130


def cmd_workload(argv: list[str]) -> int:
    """`hierarchy workload convert …`: the trace converters (hierarchy.traces.convert)."""
    if argv[:1] != ["convert"]:
        print("usage: hierarchy workload convert --from FORMAT IN OUT  (try --help)",
              file=sys.stderr)
        return EXIT_USAGE
    from hierarchy.traces.convert import main as convert_main

    return convert_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
