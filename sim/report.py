"""Writes an evaluation (sim.evaluate) as results.json, report.md and PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from sim.evaluate import BOUNDS, HIGHER_IS_BETTER, REPORT_METRICS, Evaluation

# Metric -> (column header, unit / meaning) for the table and plot titles.
METRIC_LABELS = {
    "cost": "cost",
    "energy_kwh": "energy (kWh)",
    "response_ms_mean": "response mean (ms)",
    "response_ms_p95": "response p95 (ms)",
    "slo_violation_rate": "SLO violation rate",
    "rejection_rate": "rejection rate",
    "offload_rate": "offload rate",
    "power_overshoot_wh": "power overshoot (Wh)",
    "capped_time_frac": "capped time fraction",
    "wan_gb": "WAN (GB)",
    "cpu_util_mean": "edge CPU utilisation",
    "decision_us_p50": "decision p50 (us)",
    "decision_us_p99": "decision p99 (us)",
}


def results_dict(ev: Evaluation, command: str) -> dict:
    return {
        "scenario": ev.scenario.name,
        "episodes": ev.episodes,
        "seeds": ev.seeds,
        "horizon_s": ev.scenario.time.horizon_s,
        "command": command,
        "policies": {name: r.summary() for name, r in ev.results.items()},
        "notes": ev.notes,
    }


def write_all(ev: Evaluation, out_dir: str | Path, command: str) -> list[Path]:
    """Write results.json, report.md and plots/ under `out_dir`; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "report.md"]
    paths[0].write_text(json.dumps(results_dict(ev, command), indent=2, allow_nan=False) + "\n")
    paths[1].write_text(report_markdown(ev, command))
    paths += write_plots(ev, out / "plots")
    return paths


# --- the table ---------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2e}"


def best_per_metric(ev: Evaluation) -> dict[str, set[str]]:
    """Metric -> names of the schedulers (bounds excluded) with the best mean."""
    best: dict[str, set[str]] = {}
    summaries = {n: r.summary() for n, r in ev.results.items() if n not in BOUNDS}
    for m in REPORT_METRICS:
        vals = {n: s[m]["mean"] for n, s in summaries.items() if s[m]["mean"] is not None}
        if not vals:
            best[m] = set()
            continue
        target = max(vals.values()) if m in HIGHER_IS_BETTER else min(vals.values())
        best[m] = {n for n, v in vals.items() if math.isclose(v, target, rel_tol=1e-12)}
    return best


def markdown_table(ev: Evaluation) -> str:
    best = best_per_metric(ev)
    header = ["policy"] + [METRIC_LABELS.get(m, m) for m in REPORT_METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in ev.results.items():
        s = result.summary()
        cells = [f"{name} (bound)" if name in BOUNDS else name]
        for m in REPORT_METRICS:
            mean, ci = s[m]["mean"], s[m]["ci95"]
            text = _fmt(mean) if ci is None else f"{_fmt(mean)} ± {_fmt(ci)}"
            cells.append(f"**{text}**" if name in best[m] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report_markdown(ev: Evaluation, command: str) -> str:
    sc = ev.scenario
    cost_rank = ev.ranked_by("cost")
    parts = [
        f"# Evaluation: scenario `{sc.name}`\n",
        f"{sc.description}. Horizon {sc.time.horizon_s:g} s, {ev.episodes} episode(s), seeds "
        f"{', '.join(map(str, ev.seeds))}; every policy ran on the same seeds.\n",
        "Produced by:\n",
        f"```\n{command}\n```\n",
        "Mean ± half-width of the 95% t-interval over episodes. Best value per column in "
        "bold (lower is better, except edge CPU utilisation); bounds are never marked.\n",
        markdown_table(ev),
    ]
    if cost_rank:
        parts.append(f"Best on cost: **{cost_rank[0]}**; worst: {cost_rank[-1]}.\n")
    for name, note in ev.notes.items():
        parts.append(f"Note on {name}: {note}\n")
    parts.append("Plots: `plots/<metric>.png` (mean with 95% interval per policy), "
                 "`plots/site_power.png` (site power demand against budget, best and worst "
                 "policy by cost, first seed).\n")
    return "\n".join(parts)


# --- plots -------------------------------------------------------------------------------------


def write_plots(ev: Evaluation, plot_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    names = list(ev.results)
    paths = []
    for m in REPORT_METRICS:
        s = {n: ev.results[n].summary()[m] for n in names}
        means = np.array([np.nan if s[n]["mean"] is None else s[n]["mean"] for n in names])
        errs = np.array([0.0 if s[n]["ci95"] is None else s[n]["ci95"] for n in names])
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(names) + 2), 4.0))
        colors = ["tab:gray" if n in BOUNDS else "tab:blue" for n in names]
        ax.bar(range(len(names)), np.nan_to_num(means), yerr=errs, capsize=3, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        better = "higher" if m in HIGHER_IS_BETTER else "lower"
        ax.set_title(f"{ev.scenario.name}: {METRIC_LABELS.get(m, m)} ({better} is better)")
        ax.set_ylabel(METRIC_LABELS.get(m, m))
        fig.tight_layout()
        path = plot_dir / f"{m}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    paths.append(_plot_site_power(ev, plot_dir / "site_power.png", plt))
    return paths


def _plot_site_power(ev: Evaluation, path: Path, plt) -> Path:  # noqa: ANN001 - pyplot
    ranked = ev.ranked_by("cost") or list(ev.results)
    chosen = [("best", ranked[0]), ("worst", ranked[-1])] if len(ranked) > 1 else [
        ("only", ranked[0])]
    fig, axes = plt.subplots(1, len(chosen), figsize=(6.0 * len(chosen), 4.0), sharey=True,
                             squeeze=False)
    for ax, (label, name) in zip(axes[0], chosen, strict=True):
        ep = ev.results[name].episodes[0]
        hours = ep.t_s / 3600.0
        for s in range(ep.site_power_w.shape[1]):
            ax.plot(hours, ep.site_power_w[:, s], lw=1.0, label=f"site {s}")
        for b in np.unique(ep.site_budget_w):
            ax.axhline(b, color="k", ls="--", lw=1.2, label=f"budget {b:g} W")
        ax.set_title(f"{label} by cost: {name} (seed {ep.seed})")
        ax.set_xlabel("time (h)")
        ax.set_ylabel("site power demand (W)")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
