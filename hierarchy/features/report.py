"""`hierarchy features IN --out DIR`: per-container features, behaviour classes and plots.

Reads a usage-series file in hierarchy's format (``--format hierarchy``, the default) or any
public usage format the converters accept (``--format bitbrains|alibaba2018|planetlab|usage``;
converted first into a temporary file with ``hierarchy.traces.convert.convert``), streams over
its containers one at a time (``iter_usage_series``: memory is bounded by the longest series
plus a few kept examples), and writes

* ``DIR/features.csv``: ``container_id,class`` then the ``FEATURE_NAMES`` columns, one row per
  container, in file order;
* ``DIR/classes.csv``: ``class,count`` for every class in ``CLASS_NAMES`` order;
* ``DIR/plots/class_<name>.png``: for each class present, its first ``--examples`` containers'
  CPU over time, captioned with their mean, CV, p95, dominant period and burstiness.

A summary table of the class counts is printed at the end. Errors (unknown format, unreadable
input, a malformed row without ``--skip-bad``) print one line ``hierarchy: error: ...`` and
return 2. matplotlib is imported only when plotting (``--no-plots`` skips it).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hierarchy.features import CLASS_NAMES, FEATURE_NAMES, INDEX, extract, load_classes
from hierarchy.traces import ConvertStats, TraceFormatError, iter_usage_series

EXIT_USAGE = 2
OWN_FORMAT = "hierarchy"


class FeaturesError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


def usage_formats() -> list[str]:
    """The formats ``--format`` accepts: ours, then every converter that yields usage series."""
    from hierarchy.traces.convert import FORMATS

    return [OWN_FORMAT] + [name for name, f in FORMATS.items() if f.kind == "usage"]


@dataclass
class Example:
    """One container kept for the plots (at most ``--examples`` per class)."""

    container_id: str
    t_s: np.ndarray
    cpu_cores: np.ndarray
    features: np.ndarray


@dataclass
class Report:
    """What a run found: per-class counts and the kept examples."""

    counts: dict[str, int]
    examples: dict[str, list[Example]]
    containers: int = 0
    samples: int = 0
    skipped_rows: int = 0


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def analyse(usage_path: str | Path, out_dir: Path, *, skip_bad: bool = False,
            examples: int = 3, limit: int | None = None,
            classes_path: str | Path | None = None) -> Report:
    """Stream ``usage_path`` (our format, grouped by container), write the two CSVs, and
    return the counts and kept examples. Raises ``TraceFormatError`` / ``ValueError`` /
    ``OSError`` as the readers and ``load_classes`` do."""
    classes = load_classes(classes_path)
    rep = Report(counts=dict.fromkeys(CLASS_NAMES, 0), examples={c: [] for c in CLASS_NAMES})
    stats = ConvertStats(fmt="usage")
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "features.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["container_id", "class", *FEATURE_NAMES])
        for series in iter_usage_series(usage_path, skip_bad=skip_bad, stats=stats):
            vec = extract(series)
            name = classes.classify(vec)
            w.writerow([series.container_id, name, *(_fmt(v) for v in vec)])
            rep.counts[name] += 1
            rep.containers += 1
            rep.samples += len(series)
            if len(rep.examples[name]) < examples:
                rep.examples[name].append(
                    Example(series.container_id, series.t_s, series.cpu_cores, vec))
            if limit is not None and rep.containers >= limit:
                break
    rep.skipped_rows = stats.skipped_bad
    with open(out_dir / "classes.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "count"])
        for name in CLASS_NAMES:
            w.writerow([name, rep.counts[name]])
    return rep


def caption(f: np.ndarray) -> str:
    """The key features of one container, in one line."""
    period = f[INDEX["cpu_period_h"]]
    per = f"{period:g} h" if period > 0 else "none"
    return (f"mean {f[INDEX['cpu_mean']]:.3g} cores, CV {f[INDEX['cpu_cv']]:.2f}, "
            f"p95 {f[INDEX['cpu_p95']]:.3g}, period {per}, "
            f"burstiness {f[INDEX['cpu_burstiness']]:.2f}")


def write_plots(rep: Report, plot_dir: Path) -> list[Path]:
    """One PNG per class present: its kept examples' CPU over time, captioned."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in CLASS_NAMES:
        exs = rep.examples[name]
        if not exs:
            continue
        fig, axes = plt.subplots(len(exs), 1, figsize=(8.0, 2.2 * len(exs) + 0.6),
                                 squeeze=False)
        for ax, ex in zip(axes[:, 0], exs, strict=True):
            hours = (ex.t_s - ex.t_s[0]) / 3600.0
            ax.plot(hours, ex.cpu_cores, lw=0.8)
            ax.set_title(f"{ex.container_id}: {caption(ex.features)}", fontsize=8)
            ax.set_ylabel("CPU (cores)", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel("time since first sample (h)", fontsize=8)
        fig.suptitle(f"class {name}: {rep.counts[name]} container(s), "
                     f"{len(exs)} example(s)", fontsize=10)
        fig.tight_layout()
        path = plot_dir / f"class_{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def summary_table(rep: Report) -> str:
    """Class counts as a small markdown table."""
    lines = ["| class | containers | share |", "|---|---|---|"]
    for name in CLASS_NAMES:
        n = rep.counts[name]
        share = n / rep.containers if rep.containers else 0.0
        lines.append(f"| {name} | {n} | {share:.0%} |")
    lines.append(f"| total | {rep.containers} | 100% |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hierarchy features",
        description="Compute each container's behaviour features (docs/features.md) from a "
        "usage-series file, classify it, and write DIR/features.csv, DIR/classes.csv and "
        "DIR/plots/class_<name>.png (example CPU series per class). Streams one container at "
        "a time; the file's rows must be grouped by container.",
        epilog="example: hierarchy features data/traces/bitbrains_rnd_vm01-25_2days.csv.gz "
        "--out results/features")
    p.add_argument("src", metavar="IN", help="usage-series file (or a public trace file/folder "
                   "with --format)")
    p.add_argument("--format", dest="fmt", default=OWN_FORMAT, metavar="FORMAT",
                   help="'hierarchy' (our usage CSV, the default) or a public usage format "
                   "that `hierarchy workload convert` accepts: "
                   "bitbrains, alibaba2018, planetlab, usage")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip and count malformed rows instead of stopping at the first one")
    p.add_argument("--examples", type=int, default=3, metavar="K",
                   help="example series plotted per class (default: 3)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N containers")
    p.add_argument("--classes", default=None, metavar="FILE",
                   help="behaviour-classes file (default: models/behaviour_classes.json)")
    p.add_argument("--no-plots", action="store_true", help="write the CSVs only")
    return p


def _run(args: argparse.Namespace) -> int:
    formats = usage_formats()
    if args.fmt not in formats:
        raise FeaturesError(f"unknown --format {args.fmt!r}; choose one of "
                            f"{', '.join(formats)}")
    if args.examples < 0 or (args.limit is not None and args.limit < 1):
        raise FeaturesError("--examples must be >= 0 and --limit >= 1")
    src = Path(args.src)
    if not src.exists():
        raise FeaturesError(f"cannot read {src}: no such file or directory")
    out = Path(args.out)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hierarchy-features-") as tmp:
        usage = src
        if args.fmt != OWN_FORMAT:
            from hierarchy.traces.convert import convert

            usage = Path(tmp) / "usage.csv"
            cst = convert(args.fmt, src, usage, skip_bad=args.skip_bad)
            dropped = sum(cst.dropped.values())
            print(f"converted {src} ({args.fmt}): {cst.rows_read:,} rows read, "
                  f"{cst.written:,} samples of {cst.entities} container(s), "
                  f"{cst.skipped_bad} malformed row(s) skipped, {dropped} dropped")
        rep = analyse(usage, out, skip_bad=args.skip_bad, examples=args.examples,
                      limit=args.limit, classes_path=args.classes)
    if rep.containers == 0:
        raise FeaturesError(f"{src}: no containers found (is it empty, or the wrong --format?)")
    plots = [] if args.no_plots else write_plots(rep, out / "plots")
    print(f"{rep.containers} container(s), {rep.samples:,} samples"
          + (f", {rep.skipped_rows} bad row(s) skipped" if rep.skipped_rows else "")
          + f", {time.monotonic() - t0:.1f} s")
    print(summary_table(rep))
    print(f"wrote {out}/: features.csv, classes.csv"
          + (f", plots/ ({len(plots)} PNG)" if not args.no_plots else ""))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hierarchy features``; returns the exit status (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except FeaturesError as exc:
        msg = str(exc)
    except TraceFormatError as exc:
        msg = str(exc)
        if exc.line > 0:
            msg += " (fix the row, or pass --skip-bad to skip and count malformed rows)"
    except ValueError as exc:
        msg = str(exc)
    except OSError as exc:
        msg = f"{exc.filename or args.out}: {exc.strerror or exc}"
    print(f"hierarchy: error: {' '.join(msg.split())}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
