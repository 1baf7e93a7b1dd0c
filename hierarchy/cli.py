"""The `hierarchy` command: the composition root that wires scenarios, policies and the runner.

    hierarchy scenarios
    hierarchy evaluate --scenario small --policies all --episodes 3 --out results/small
"""

from __future__ import annotations

import argparse
import shlex
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


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"expected KEY=VALUE (e.g. time.horizon_s=3600), got {text!r}"
        )
    return key.strip(), yaml.safe_load(value)


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
                    f"Policies: {', '.join(POLICY_NAMES)}, offline-optimal")
    ev.add_argument("--episodes", type=_positive_int, default=3, metavar="N",
                    help="episodes (seeds) per policy (default: 3)")
    ev.add_argument("--seed", type=int, default=0, metavar="S",
                    help="first seed (default: 0)")
    ev.add_argument("--out", metavar="DIR", default=None,
                    help="output directory (default: results/<scenario>)")
    ev.add_argument("--horizon-s", type=float, default=None, metavar="SECONDS",
                    help="override the scenario's episode length (time.horizon_s)")
    ev.add_argument("--set", dest="overrides", type=_override, action="append", default=[],
                    metavar="KEY=VALUE",
                    help="override a scenario field by dotted path, e.g. "
                    "--set workload.load_factor=1.5 (repeatable)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


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
    args = build_parser().parse_args(argv)
    try:
        if args.command == "scenarios":
            return cmd_scenarios()
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
