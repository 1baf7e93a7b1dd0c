"""Scenario files: the validated description of one edge-cloud platform and its workload.

A scenario is a YAML file in `scenarios/` (or anywhere, by path). Every constant carries the
`source` it was taken from. A scenario may `extends:` another one and override parts of it;
the merge is deep (mappings merge, everything else replaces).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    # No infinities or NaNs anywhere: every constant is a real, measured or chosen number.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


NodeCount = Annotated[int, Field(ge=1)]


class NodeType(_Strict):
    """A kind of machine. Power at utilisation u: P(u) = idle + (max - idle) * f(u)."""

    cpu_cores: float = Field(gt=0, description="cores")
    mem_gib: float = Field(gt=0, description="memory, GiB")
    power_idle_w: float = Field(ge=0, description="power at 0% load (SPEC active idle), W")
    power_max_w: float = Field(gt=0, description="power at 100% load, W")
    power_curve_w: list[float] | None = Field(
        default=None,
        description="SPECpower-style table: watts at 0,10,...,100% load (11 values); "
        "overrides the linear curve between idle and max",
    )
    sleep_power_w: float = Field(ge=0, description="power while asleep, W")
    wake_s: float = Field(ge=0, description="time to wake from sleep, s")
    speed: float = Field(default=1.0, gt=0, description="per-core speed relative to reference")
    source: str

    @model_validator(mode="after")
    def _curve_is_sane(self) -> NodeType:
        if self.power_max_w < self.power_idle_w:
            raise ValueError("power_max_w must be >= power_idle_w")
        if self.power_curve_w is not None:
            curve = self.power_curve_w
            if len(curve) != 11:
                raise ValueError("power_curve_w needs 11 values (0%, 10%, ..., 100%)")
            if any(b < a for a, b in zip(curve, curve[1:], strict=False)):
                raise ValueError("power_curve_w must not decrease")
        if self.sleep_power_w > self.power_idle_w:
            raise ValueError("sleep_power_w must be <= power_idle_w")
        return self


class SiteGroup(_Strict):
    """`count` identical edge sites."""

    count: int = Field(ge=1)
    nodes: dict[str, NodeCount] = Field(
        min_length=1, description="node type name -> number of nodes per site"
    )
    power_budget_w: float = Field(gt=0, description="site power budget, W")
    wan_rtt_ms: float = Field(ge=0, description="round trip site <-> cloud, ms")
    wan_bandwidth_mbps: float = Field(gt=0, description="site uplink, Mbit/s")
    user_rtt_ms: float = Field(ge=0, description="round trip users <-> their home site, ms")
    apps_per_hour: float = Field(ge=0, description="mean app arrivals per hour at this site")
    source: str


class Cloud(_Strict):
    nodes: dict[str, NodeCount] = Field(description="node type name -> number of cloud nodes")
    pue: float = Field(ge=1.0, description="power usage effectiveness of the data centre")
    user_rtt_ms: float = Field(ge=0, description="round trip users <-> cloud, ms")
    source: str


class Network(_Strict):
    lan_rtt_ms: float = Field(ge=0, description="round trip between two nodes of one site, ms")
    inter_site_base_ms: float = Field(ge=0, description="RTT between neighbouring sites, ms")
    inter_site_per_hop_ms: float = Field(ge=0, description="added RTT per hop on the site ring")
    inter_site_rtt_ms: list[list[float]] | None = Field(
        default=None, description="explicit S x S RTT matrix; overrides base/per-hop"
    )
    wan_energy_j_per_byte: float = Field(ge=0, description="network energy per WAN byte, J")
    user_bytes_per_request: float = Field(ge=0, description="bytes between user and entry")
    source: str


class TimeConfig(_Strict):
    step_s: float = Field(gt=0, description="simulated seconds per tick")
    horizon_s: float = Field(gt=0, description="episode length, s (truncation)")
    start_hour: float = Field(ge=0, lt=24, description="time of day at reset, h")
    source: str


class Arrivals(_Strict):
    """Rate(t) = base * (1 + daily_amplitude*cos(2pi(h - peak_hour)/24)) * burst."""

    daily_amplitude: float = Field(ge=0, le=1)
    peak_hour: float = Field(ge=0, lt=24)
    burst_factor: float = Field(ge=1)
    burst_on_s: float = Field(gt=0)
    burst_off_s: float = Field(gt=0)
    source: str


class Apps(_Strict):
    size_pmf: list[float] = Field(description="P(app has 1..K containers)")
    star_prob: float = Field(ge=0, le=1, description="P(parent[k] = 0): called by the entry")
    chain_prob: float = Field(
        ge=0, le=1, description="otherwise P(parent[k] = k-1), else uniform over 0..k-1"
    )
    calls_pmf: list[float] = Field(description="P(1, 2, 3, 4 calls per parent call)")
    data_prob: float = Field(ge=0, le=1, description="P(app reads data pinned to a site)")
    bytes_per_call_median: float = Field(gt=0, description="bytes per call (request+reply)")
    bytes_per_call_sigma: float = Field(ge=0, description="lognormal sigma of bytes per call")
    data_bytes_per_request: float = Field(ge=0, description="bytes read from pinned data")
    work_ms_median: float = Field(gt=0, description="service time per call on one core, ms")
    work_ms_sigma: float = Field(ge=0)
    requests_per_s_per_core: float = Field(
        gt=0, description="user requests/s an app sees per core of entry demand"
    )
    slo_factor_min: float = Field(gt=1, description="SLO = factor x ideal response + slack")
    slo_factor_max: float = Field(gt=1)
    slo_slack_ms_min: float = Field(ge=0)
    slo_slack_ms_max: float = Field(ge=0)
    source: str

    @model_validator(mode="after")
    def _pmfs(self) -> Apps:
        _check_pmf(self.size_pmf, "size_pmf")
        _check_pmf(self.calls_pmf, "calls_pmf")
        if len(self.calls_pmf) != 4:
            raise ValueError("calls_pmf needs 4 values (1, 2, 3, 4 calls)")
        if self.slo_factor_max < self.slo_factor_min:
            raise ValueError("slo_factor_max must be >= slo_factor_min")
        if self.slo_slack_ms_max < self.slo_slack_ms_min:
            raise ValueError("slo_slack_ms_max must be >= slo_slack_ms_min")
        return self


class Containers(_Strict):
    cpu_request_cores: list[float]
    cpu_request_pmf: list[float]
    mem_gib_per_core: list[float]
    mem_gib_per_core_pmf: list[float]
    source: str

    @model_validator(mode="after")
    def _pmfs(self) -> Containers:
        _check_pmf(self.cpu_request_pmf, "cpu_request_pmf", len(self.cpu_request_cores))
        _check_pmf(self.mem_gib_per_core_pmf, "mem_gib_per_core_pmf", len(self.mem_gib_per_core))
        if min(self.cpu_request_cores) <= 0 or min(self.mem_gib_per_core) <= 0:
            raise ValueError("requests must be positive")
        return self


class Usage(_Strict):
    """CPU demand = request*level*(1+amp*cos(...))*exp(sigma*z - sigma^2/2), z an AR(1)."""

    cpu_level_beta: tuple[float, float]
    cpu_sigma_mean: float = Field(ge=0)
    cpu_sigma_std: float = Field(ge=0)
    ar1_phi_per_min: float = Field(ge=0, lt=1)
    cpu_daily_amp_mean: float = Field(ge=0, le=1)
    mem_level_beta: tuple[float, float]
    mem_growth_per_hour_mean: float
    mem_growth_per_hour_std: float = Field(ge=0)
    source: str

    @model_validator(mode="after")
    def _betas(self) -> Usage:
        if min(self.cpu_level_beta) <= 0 or min(self.mem_level_beta) <= 0:
            raise ValueError("Beta parameters must be positive")
        return self


class Lifetimes(_Strict):
    median_s: float = Field(gt=0)
    sigma: float = Field(ge=0)
    min_s: float = Field(gt=0)
    max_s: float = Field(gt=0)
    source: str

    @model_validator(mode="after")
    def _range(self) -> Lifetimes:
        if self.max_s < self.min_s:
            raise ValueError("max_s must be >= min_s")
        return self


class Catalogue(_Strict):
    """The services an episode's apps are instances of (so their behaviour recurs)."""

    services: int = Field(default=500, ge=1, description="services drawn per episode")
    zipf_s: float = Field(
        default=0.8, ge=0, description="popularity of the i-th service ~ 1 / i^zipf_s"
    )
    instance_noise: float = Field(
        default=0.1, ge=0, le=1,
        description="lognormal sigma of each instance's usage level, memory level and daily "
        "amplitude around its service's",
    )
    source: str = "assumption: 500 services, Zipf(0.8) popularity, 10% per-instance noise"


class TraceWorkload(_Strict):
    """Workload taken from trace files in hierarchy's own formats (docs/traces.md).

    Paths are relative to the scenario file that names them. Each call graph becomes a
    service; each of its containers replays one usage series (from a random phase per
    instance); arrivals modulate the sites' rates and give lifetimes and requests.
    """

    usage: str = Field(description="usage-series CSV (container_id,t_s,cpu_cores,mem_gib,...)")
    callgraphs: str = Field(description="call-graph JSON lines, one application per line")
    arrivals: str | None = Field(
        default=None, description="arrivals CSV (t_s,cpu_cores,mem_gib,lifetime_s,...)"
    )
    time_scale: float = Field(
        default=1.0, gt=0, description="trace seconds replayed per simulated second"
    )
    usage_step_s: float = Field(
        default=300.0, gt=0, description="resampling step of the usage series, trace s"
    )
    cpu_scale: float = Field(
        default=0.25, gt=0, description="arrivals' requested cores x this = a container's request"
    )
    arrival_bin_s: float = Field(
        default=300.0, gt=0, description="arrivals are counted in bins of this many trace s"
    )
    popularity: str = Field(
        default="num", pattern="^(num|zipf)$",
        description="service popularity: the graphs' `num` counts, or the catalogue's Zipf",
    )
    defined_in: str = Field(
        default="", description="set by the loader: the scenario file that named the files"
    )
    source: str


class Workload(_Strict):
    arrivals: Arrivals
    apps: Apps
    containers: Containers
    usage: Usage
    lifetimes: Lifetimes
    load_factor: float = Field(default=1.0, gt=0, description="multiplies every arrival rate")
    catalogue: Catalogue = Field(default_factory=Catalogue)
    trace: TraceWorkload | None = None


class ObservationConfig(_Strict):
    behaviour_features: bool = Field(
        default=True,
        description="the pending container's service behaviour (seen, predicted p95, CV, class) "
        "in the edge observation; false leaves them out of the spec (ablation)",
    )
    response_features: bool = Field(
        default=False,
        description="the pending container's app response against its SLO as observed of its "
        "service (on slow nodes, on fast nodes) in the edge observation",
    )
    slo_guard: bool = Field(
        default=False,
        description="the edge mask keeps off slow nodes a container whose service was seen "
        "above its SLO on a slow node, while a fast node can take it "
        "(hierarchy.guard.slo_guard; part of the spec: a policy trained with it needs it)",
    )


class Sizing(_Strict):
    """Placement sizes and dynamic allocation (the per-site resize knob)."""

    size_levels: list[float] = Field(description="allocation at placement, x request")
    headroom_levels: list[float] = Field(
        description="resize knob: allocation = recent peak x (1 + h); a negative value "
        "switches resizing off (allocations stay as placed)"
    )
    resize_min_frac: float = Field(gt=0, description="resized allocation >= this x request")
    resize_max_frac: float = Field(gt=0, description="resized allocation <= this x request")
    peak_halflife_s: float = Field(gt=0, description="half-life of the recent-peak tracker")
    startup_s: float = Field(ge=0, description="container start-up time, s")
    oom_restart_s: float = Field(ge=0, description="time lost to an OOM restart, s")
    sleep_after_s: float = Field(ge=0, description="an empty node sleeps after this long")
    migrate_after_s: float = Field(
        default=0.0, ge=0,
        description="move, once, an app that has violated its SLO this long without a break "
        "while a container of it runs on a node slower than the reference core: its home "
        "site decides its containers again (0: never; sim/migration.py)")
    predicted_size_margin: float | None = Field(
        default=None, ge=0,
        description="adds one size level after size_levels: the service's predicted p95 x "
        "(1 + margin), within [resize_min_frac, 1] x request (the request when unknown)",
    )
    source: str

    @model_validator(mode="after")
    def _levels(self) -> Sizing:
        if not self.size_levels or min(self.size_levels) <= 0:
            raise ValueError("size_levels must be positive")
        if not self.headroom_levels:
            raise ValueError("headroom_levels must not be empty")
        if self.resize_max_frac < self.resize_min_frac:
            raise ValueError("resize_max_frac must be >= resize_min_frac")
        return self


class Power(_Strict):
    throttle_min: float = Field(gt=0, le=1, description="lowest speed capping can impose")
    contention_kappa: float = Field(ge=0, description="slowdown 1 + kappa*u^2 at node util u")
    source: str


class Reward(_Strict):
    """Team cost = sum of weight x term; the reward is its negative."""

    energy_per_kwh: float = Field(ge=0)
    latency_per_slo_hour: float = Field(
        ge=0, description="per app-hour of response time above SLO, in SLO units"
    )
    violation_per_app_hour: float = Field(ge=0, description="per app-hour out of SLO")
    rejection_per_container: float = Field(ge=0)
    capping_per_site_hour: float = Field(ge=0)
    overshoot_per_wh: float = Field(ge=0)
    source: str


class Limits(_Strict):
    max_apps: int = Field(ge=1, description="app slots per simulated copy")
    site_queue_apps: int = Field(ge=1, description="apps waiting per site before rejection")
    cloud_queue: int = Field(ge=1, description="containers waiting at the cloud level")


class Scenario(_Strict):
    name: str
    description: str
    time: TimeConfig
    node_types: dict[str, NodeType]
    sites: list[SiteGroup]
    cloud: Cloud
    network: Network
    workload: Workload
    sizing: Sizing
    power: Power
    reward: Reward
    limits: Limits
    observation: ObservationConfig = Field(default_factory=ObservationConfig)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        for group in self.sites:
            for name in group.nodes:
                if name not in self.node_types:
                    raise ValueError(f"site node type {name!r} is not in node_types")
        for name in self.cloud.nodes:
            if name not in self.node_types:
                raise ValueError(f"cloud node type {name!r} is not in node_types")
        n_sites = self.num_sites
        if self.network.inter_site_rtt_ms is not None:
            m = self.network.inter_site_rtt_ms
            if len(m) != n_sites or any(len(row) != n_sites for row in m):
                raise ValueError(f"inter_site_rtt_ms must be {n_sites} x {n_sites}")
        return self

    @property
    def num_sites(self) -> int:
        return sum(g.count for g in self.sites)

    @property
    def max_app_size(self) -> int:
        return len(self.workload.apps.size_pmf)


def _check_pmf(pmf: list[float], name: str, length: int | None = None) -> None:
    if length is not None and len(pmf) != length:
        raise ValueError(f"{name} needs {length} values")
    if not pmf or min(pmf) < 0 or abs(sum(pmf) - 1.0) > 1e-3:
        raise ValueError(f"{name} must be non-negative and sum to 1")


# --- loading ---------------------------------------------------------------------------------


def scenario_dirs() -> list[Path]:
    """Where named scenarios are looked up, in order."""
    dirs = []
    if env := os.environ.get("HIERARCHY_SCENARIOS"):
        dirs.append(Path(env))
    # Shipped with the package (the repository's top-level scenarios/ links here), so an
    # installed gateway finds them as a checkout does.
    dirs.append(Path(__file__).resolve().parent / "scenarios")
    return dirs


def available_scenarios() -> list[str]:
    names: set[str] = set()
    for d in scenario_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def resolve_scenario_path(name_or_path: str | os.PathLike[str]) -> Path:
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or os.sep in text:
        if not candidate.is_file():
            raise ScenarioError(f"{text}: no such scenario file")
        return candidate
    for d in scenario_dirs():
        path = d / f"{text}.yaml"
        if path.is_file():
            return path
    raise ScenarioError(
        f"unknown scenario {text!r}; known: {', '.join(available_scenarios()) or 'none'}"
    )


def load_scenario(
    name_or_path: str | os.PathLike[str] | Scenario,
    overrides: dict[str, Any] | None = None,
) -> Scenario:
    """Load, merge (`extends`), override and validate a scenario.

    `overrides` maps dotted paths to values, e.g. {"time.horizon_s": 3600}.
    """
    if isinstance(name_or_path, Scenario):
        if not overrides:
            return name_or_path
        raw = name_or_path.model_dump()
        origin = f"<scenario {name_or_path.name}>"
    else:
        path = resolve_scenario_path(name_or_path)
        raw = _load_raw(path, seen=())
        origin = str(path)
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value, origin)
    # Paths an override set are taken relative to the working directory.
    _resolve_trace_paths(raw, Path.cwd(), origin)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_describe(origin, exc)) from None


TRACE_FILE_FIELDS = ("usage", "callgraphs", "arrivals")


def _resolve_trace_paths(raw: dict[str, Any], base: Path, origin: str) -> None:
    """Make the trace files of `raw`'s `workload.trace` absolute (relative to `base`, the
    folder of the file naming them) and check that they exist."""
    workload = raw.get("workload")
    trace = workload.get("trace") if isinstance(workload, dict) else None
    if not isinstance(trace, dict):
        return
    trace.setdefault("defined_in", origin)
    for name in TRACE_FILE_FIELDS:
        value = trace.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ScenarioError(f"{origin}: field workload.trace.{name}: expected a file path")
        path = Path(value)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise ScenarioError(f"{origin}: field workload.trace.{name}: no such file: {value}")
        trace[name] = str(path)


def _load_raw(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path in seen:
        raise ScenarioError(f"{path}: 'extends' forms a cycle")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario must be a YAML mapping")
    _resolve_trace_paths(raw, path.parent, str(path))
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    parent_path = path.parent / f"{parent}.yaml"
    if not parent_path.is_file():
        try:
            parent_path = resolve_scenario_path(parent)
        except ScenarioError as exc:
            raise ScenarioError(f"{path}: field extends: {exc}") from None
    return _deep_merge(_load_raw(parent_path, (*seen, path)), raw)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    keys = dotted.replace("__", ".").split(".")
    node: Any = raw
    for key in keys[:-1]:
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            raise ScenarioError(f"{origin}: override {dotted!r}: no field {key!r}")
    last = keys[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError(f"{origin}: override {dotted!r}: cannot set {last!r}")


def _describe(origin: str, exc: ValidationError) -> str:
    lines = [f"{origin}: invalid scenario"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  field {loc}: {err['msg']}")
    return "\n".join(lines)
