"""Convert public trace formats into hierarchy's usage, call-graph and arrivals files.

Library use::

    from hierarchy.traces.convert import convert
    stats = convert("bitbrains", "rnd/2013-7", "usage.csv.gz", skip_bad=True)
    print(stats.summary())

Command line (wired as ``hierarchy workload convert``; also ``python -m
hierarchy.traces.convert``)::

    hierarchy workload convert --from bitbrains rnd/2013-7 usage.csv.gz --skip-bad

Every converter streams: memory is bounded by the number of containers (or open traces), never
by the number of rows. ``docs/traces.md`` documents each mapping.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hierarchy.traces import alibaba2018, bitbrains
from hierarchy.traces.alibaba_callgraphs import iter_alibaba2021, iter_alibaba2022
from hierarchy.traces.arrival_sources import iter_alibaba2023_pods, iter_azure_v1
from hierarchy.traces.arrivals import OPTIONAL as ARRIVAL_OPTIONAL
from hierarchy.traces.arrivals import ArrivalsWriter, iter_arrivals
from hierarchy.traces.callgraph import CallGraphWriter, iter_callgraphs
from hierarchy.traces.errors import BadRows, ConvertStats, TraceFormatError
from hierarchy.traces.planetlab import iter_planetlab
from hierarchy.traces.textio import csv_rows
from hierarchy.traces.usage import OPTIONAL as USAGE_OPTIONAL
from hierarchy.traces.usage import UsageWriter, iter_usage


@dataclass(frozen=True)
class Format:
    """A source format: what it produces, its row generator and a one-line description."""

    kind: str  # "usage" | "callgraphs" | "arrivals"
    rows: Callable[..., Iterator[Any]]
    help: str
    optional: tuple[str, ...] = ()  # optional usage/arrival columns it fills


def _usage_passthrough(src: str | Path, bad: BadRows, stats: ConvertStats) -> Iterator[Any]:
    return iter_usage(src, skip_bad=bad.skip_bad, stats=stats)


def _graphs_passthrough(src: str | Path, bad: BadRows, stats: ConvertStats) -> Iterator[Any]:
    return iter_callgraphs(src, skip_bad=bad.skip_bad, stats=stats)


def _arrivals_passthrough(src: str | Path, bad: BadRows, stats: ConvertStats) -> Iterator[Any]:
    return iter_arrivals(src, skip_bad=bad.skip_bad, stats=stats)


FORMATS: dict[str, Format] = {
    "bitbrains": Format("usage", bitbrains.iter_bitbrains,
                        "Bitbrains GWA-T-12: the joined CSV, a per-VM ';' file or a folder of them",
                        bitbrains.OPTIONAL_COLUMNS),
    "alibaba2018": Format("usage", alibaba2018.iter_alibaba2018,
                          "Alibaba cluster-trace-v2018 container_usage.csv (+ container_meta.csv)",
                          alibaba2018.OPTIONAL_COLUMNS),
    "planetlab": Format("usage", iter_planetlab,
                        "PlanetLab-style CPU % series: one value per line, a file per VM"),
    "usage": Format("usage", _usage_passthrough,
                    "hierarchy usage-series CSV (check, re-compress, drop bad rows)"),
    "alibaba2021-callgraph": Format("callgraphs", iter_alibaba2021,
                                    "Alibaba microservices v2021 Callgraph.csv, one graph per "
                                    "trace rebuilt from rpcid"),
    "alibaba2022-callgraph": Format("callgraphs", iter_alibaba2022,
                                    "Alibaba microservices v2022 call graphs (DGG JSON lines)"),
    "callgraphs": Format("callgraphs", _graphs_passthrough,
                         "hierarchy call-graph JSON lines (check, re-compress)"),
    "azure-v1": Format("arrivals", iter_azure_v1,
                       "Azure V1 VM arrivals per 300-s bin (+ flav_map, lifetimes)",
                       ARRIVAL_OPTIONAL),
    "alibaba2023-pods": Format("arrivals", iter_alibaba2023_pods,
                               "Alibaba cluster-trace-gpu-v2023 openb_pod_list_*.csv",
                               ARRIVAL_OPTIONAL),
    "arrivals": Format("arrivals", _arrivals_passthrough,
                       "hierarchy arrivals CSV (check, re-compress)", ARRIVAL_OPTIONAL),
}


def format_options(fmt: str) -> list[str]:
    """The keyword options a format's converter accepts."""
    sig = inspect.signature(FORMATS[fmt].rows)
    return [n for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _passthrough_columns(fmt: str, src: str | Path) -> tuple[str, ...]:
    """Optional columns to keep when re-writing one of our own CSVs: those of its header."""
    if fmt != "usage":
        return FORMATS[fmt].optional
    head = next(csv_rows(src), None)
    return tuple(c.strip() for c in head[1] if c.strip() in USAGE_OPTIONAL) if head else ()


def convert(fmt: str, src: str | Path, dst: str | Path, *, skip_bad: bool = False,
            progress: Callable[[ConvertStats], None] | None = None,
            **options: Any) -> ConvertStats:
    """Convert ``src`` (format ``fmt``) into ``dst`` (hierarchy format, gzip if ``*.gz``).

    Args:
        fmt: one of ``FORMATS`` (``bitbrains``, ``alibaba2018``, ``planetlab``,
            ``alibaba2021-callgraph``, ``alibaba2022-callgraph``, ``azure-v1``,
            ``alibaba2023-pods``, or ``usage``/``callgraphs``/``arrivals`` to check our own).
        src: the source file or folder.
        dst: the output file; written atomically (nothing is left behind on an error).
        skip_bad: skip and count malformed rows instead of raising ``TraceFormatError``.
        progress: called with the running stats about every 100,000 records.
        options: format-specific keywords (``format_options(fmt)`` lists them).

    Returns:
        What was read, written, skipped and dropped.

    Raises:
        TraceFormatError: a malformed row (file, line, reason) when not ``skip_bad``.
        ValueError: an unknown format or option.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    allowed = format_options(fmt)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"format {fmt!r} takes no option(s) {', '.join(unknown)}; it takes: "
                         f"{', '.join(allowed) or 'none'}")
    stats = ConvertStats(fmt=fmt)
    bad = BadRows(skip_bad, stats)
    rows = spec.rows(src, bad, stats, **options)
    writer: Any
    if spec.kind == "usage":
        writer = UsageWriter(dst, _passthrough_columns(fmt, src))
    elif spec.kind == "callgraphs":
        writer = CallGraphWriter(dst)
    else:
        writer = ArrivalsWriter(dst, spec.optional)
    with writer:
        for rec in rows:
            writer.write(rec)
            if progress is not None and writer.rows % 100_000 == 0:
                stats.written = writer.rows
                progress(stats)
    stats.written = writer.rows
    return stats


_OPTION_FLAGS: list[tuple[str, str, type, str]] = [
    ("--meta", "meta", str, "alibaba2018: container_meta.csv (default: beside IN)"),
    ("--machine-mem-gib", "machine_mem_gib", float,
     "alibaba2018: GiB of one machine (normalised memory 100); memory is left empty without"),
    ("--cpu-basis", "cpu_basis", str,
     "alibaba2018: 'core' (100 = one core, default) or 'request' (100 = the request)"),
    ("--step-s", "step_s", float, "planetlab: seconds between samples (default 300)"),
    ("--t0-s", "t0_s", float, "planetlab: time of the first sample (default 0)"),
    ("--cores-per-vm", "cores_per_vm", float, "planetlab: cores that 100%% means (default 1)"),
    ("--id-prefix", "id_prefix", str, "bitbrains/planetlab/azure-v1: prefix for the ids"),
    ("--flavours", "flavours", str, "azure-v1: flav_map.txt (default: beside IN)"),
    ("--lifetimes", "lifetimes", str, "azure-v1: lifetime file v1.*.c*.txt[.gz]"),
    ("--intervals", "intervals", str, "azure-v1: v1.interval_map.txt"),
    ("--scale", "scale", float, "azure-v1/alibaba2023-pods: multiply CPU and memory by this"),
    ("--idle-ms", "idle_ms", float,
     "alibaba2021-callgraph: a trace with no row for this long (trace ms) is complete (60000)"),
    ("--max-open", "max_open", int, "alibaba2021-callgraph: most traces held open (100000)"),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hierarchy workload convert``."""
    lines = [f"  {name:<22} -> {f.kind}: {f.help}" for name, f in FORMATS.items()]
    p = argparse.ArgumentParser(
        prog="hierarchy workload convert",
        description="Convert a public trace into hierarchy's usage-series CSV, call-graph JSON\n"
                    "lines or arrivals CSV (formats and mappings: docs/traces.md). Files are\n"
                    "streamed; '.gz' inputs and outputs are (de)compressed on the fly.",
        epilog="formats:\n" + "\n".join(lines) + "\n\nexample:\n  hierarchy workload convert "
               "--from bitbrains bitbrains.csv.gz usage.csv.gz --skip-bad",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="fmt", required=True, choices=sorted(FORMATS),
                   metavar="FORMAT", help="source format (see the list below)")
    p.add_argument("src", metavar="IN", help="source file or folder")
    p.add_argument("dst", metavar="OUT", help="output file (.gz to compress)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count malformed rows instead of stopping at the first one")
    p.add_argument("--drop-gpu-pods", action="store_true",
                   help="alibaba2023-pods: leave out pods that request a GPU")
    p.add_argument("-q", "--quiet", action="store_true", help="print no summary")
    for flag, dest, typ, text in _OPTION_FLAGS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=text)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter CLI; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    options = {dest: getattr(args, dest) for _, dest, _, _ in _OPTION_FLAGS
               if getattr(args, dest) is not None}
    if args.drop_gpu_pods:
        options["drop_gpu_pods"] = True
    t0 = time.monotonic()
    tty = sys.stderr.isatty() and not args.quiet

    def show(st: ConvertStats) -> None:
        print(f"\r{st.written:,} records, {st.rows_read:,} rows read", end="", file=sys.stderr)

    try:
        stats = convert(args.fmt, args.src, args.dst, skip_bad=args.skip_bad,
                        progress=show if tty else None, **options)
    except TraceFormatError as exc:
        print(f"\nerror: {exc}\n(fix the row, or pass --skip-bad to skip and count malformed "
              "rows)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if tty:
        print(file=sys.stderr)
    if not args.quiet:
        print(f"wrote {args.dst} in {time.monotonic() - t0:.1f} s")
        print(stats.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
