"""The offline placement problem of one recorded episode as a mixed-integer linear program.

Decision: where each container runs, at its request size with static allocations (the same
action subspace the heuristic baselines use): a node of its home site (the edge agent's
choice) or the first cloud-pool node (offload; the core's best fit picks that node as long as
the pool's load fits on one node, which is a constraint). Given the recorded workload
(sim.offline_record), the simulator's cost is then linear in these choices, exactly, except
for what the notes below say. Variables:

- x[c, n] in {0, 1}: container c on node n (one node each);
- A[n, t] in [0, 1]: node n awake in tick t. A node wakes when a container is placed on it
  and sleeps `sleep_after_s` after its last container left, so A[n, t] >= x[c, n] over c's
  run plus that tail; minimising makes A the exact indicator;
- W[n, j], R[n, j]: node n woken by a placement at instant j / kept awake into tick j+1 by
  earlier containers (the guard charges a waking node its idle power);
- v[a, t] in {0, 1}, e[a, t] >= 0: app a out of its SLO in tick t, and by how much;
- d[c] >= |pool[c] - pool[parent(c)]|: a call crossing the WAN;
- pool load on the x3550's SPECpower curve: incremental piecewise-linear segments.

Objective (the scenario's reward weights): energy (idle, dynamic and sleep power of every
node, cloud PUE, WAN bytes), latency above SLO (capped at 10 SLO units) and SLO violations.
Constraints: one node per container, node capacity at every instant, the edge guard at every
decision instant (site demand + added watts of the placements <= budget), no power capping
(site demand <= budget in every tick), and the pool within one node.

Not modelled (so the model can differ from the simulator): CPU contention (the kernel's
1 + kappa * u^2 slowdown of service time), which only lengthens responses; the guard's
clipping at full node load (the model is stricter). Tests compare model and simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from hierarchy.scenario import Scenario
from sim.kernel import LATENCY_OVER_CAP
from sim.latency import RHO_MAX
from sim.offline_record import RecordedEpisode
from sim.topology import Topology

DISP = False


class _Program:
    """A sparse MILP under construction: columns with cost/bounds, rows with bounds."""

    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[int] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.row_lb: list[float] = []
        self.row_ub: list[float] = []
        # Columns whose cost is a latency or a violation term (the rest is energy).
        self.latency_cols: list[int] = []
        self.violation_cols: list[int] = []

    def var(self, cost: float = 0.0, lb: float = 0.0, ub: float = 1.0,
            integer: bool = False) -> int:
        self.cost.append(cost)
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(1 if integer else 0)
        return len(self.cost) - 1

    def add_cost(self, col: int, cost: float) -> None:
        self.cost[col] += cost

    def row(self, terms: dict[int, float], lb: float = -np.inf, ub: float = np.inf) -> None:
        r = len(self.row_lb)
        for col, val in terms.items():
            if val != 0.0:
                self.rows.append(r)
                self.cols.append(col)
                self.vals.append(val)
        self.row_lb.append(lb)
        self.row_ub.append(ub)

    def solve(self, time_limit_s: float, gap: float):  # noqa: ANN201 - scipy's result
        a = sparse.csr_array((self.vals, (self.rows, self.cols)),
                             shape=(len(self.row_lb), len(self.cost)))
        return milp(
            np.asarray(self.cost), integrality=np.asarray(self.integer),
            bounds=Bounds(np.asarray(self.lb), np.asarray(self.ub)),
            constraints=LinearConstraint(a, np.asarray(self.row_lb), np.asarray(self.row_ub)),
            options={"time_limit": time_limit_s, "mip_rel_gap": gap, "disp": DISP},
        )


@dataclass
class MilpSolution:
    node: dict[tuple[int, int], int]  # (app index, k) -> global node
    objective: float  # the model's episode cost, constants included
    cost_terms: dict[str, float]  # the objective split: energy, latency, violations, rejections
    status: str
    mip_gap: float | None
    variables: int
    integers: int
    constraints: int


def _add(terms: dict[int, float], col: int, val: float) -> None:
    terms[col] = terms.get(col, 0.0) + val


def _sleep_tail_ticks(scenario: Scenario) -> int:
    """Ticks a node stays awake after the tick its last container left in."""
    dt, idle, m = scenario.time.step_s, 0.0, -1
    while True:
        m += 1
        idle += dt
        if idle >= scenario.sizing.sleep_after_s:
            return m


def solve_placement(scenario: Scenario, topo: Topology, rec: RecordedEpisode,
                    curve_table: np.ndarray, time_limit_s: float = 120.0,
                    gap: float = 1e-9) -> MilpSolution:
    """Build and solve the program for `rec`; raise RuntimeError when it has no solution."""
    sc = scenario
    S, M, T = topo.num_sites, topo.nodes_per_site, rec.ticks
    dt, hours = sc.time.step_s, sc.time.step_s / 3600.0
    pool = S * M
    w = sc.reward
    e_w = w.energy_per_kwh * dt / 3.6e6  # cost of one watt drawn for one tick
    j_cost = w.energy_per_kwh / 3.6e6  # cost of one joule
    tail = _sleep_tail_ticks(sc)
    prog = _Program()
    const = w.rejection_per_container * rec.admission_rejected

    cores, mem = topo.node_cores, topo.node_mem_gib
    idle, peak, sleep = topo.node_idle_w, topo.node_max_w, topo.node_sleep_w
    pue = topo.loc_pue[topo.node_site]
    dyn_pc = (peak - idle) / np.maximum(cores, 1e-9)  # W per core on a linear node

    # Every node sleeps unless awake: sleep power is a constant, awake adds idle - sleep.
    const += float(np.sum(np.where(topo.node_exists, sleep * pue, 0.0))) * e_w * T

    # --- placement variables ---------------------------------------------------------------
    cands: dict[tuple[int, int], list[int]] = {}
    x: dict[tuple[int, int, int], int] = {}
    for app in rec.apps:
        site_nodes = [app.home * M + m for m in range(M) if topo.node_exists[app.home * M + m]]
        for k in range(app.size):
            cands[app.index, k] = [*site_nodes, pool]
            one = {}
            for n in cands[app.index, k]:
                x[app.index, k, n] = prog.var(integer=True)
                one[x[app.index, k, n]] = 1.0
            prog.row(one, 1.0, 1.0)

    _break_symmetry(prog, topo, rec, x)

    def used(app, k: int, t: int) -> float:
        return min(app.demand[t - app.instant - 1, k], app.cpu_req[k])

    def alive_in_tick(app, t: int) -> bool:
        return app.instant < t <= app.last_tick

    def present_at_instant(app, j: int) -> bool:  # placed by instant j, not yet departed
        return app.instant <= j and (not app.departs or app.last_tick > j)

    # --- awake nodes and their energy ----------------------------------------------------------
    awake: dict[tuple[int, int], int] = {}

    def awake_var(n: int, t: int) -> int:
        if (n, t) not in awake:
            awake[n, t] = prog.var(cost=e_w * pue[n] * (idle[n] - sleep[n]))
        return awake[n, t]

    window_end: dict[int, int] = {}
    for app in rec.apps:
        end = min(app.last_tick + tail, T) if app.departs else T
        window_end[app.index] = end
        for k in range(app.size):
            for n in cands[app.index, k]:
                for t in range(app.instant + 1, end + 1):
                    prog.row({awake_var(n, t): 1.0, x[app.index, k, n]: -1.0}, lb=0.0)

    # Dynamic power: linear on edge nodes (checked by the caller); the pool node's SPECpower
    # curve is piecewise linear in its utilisation.
    f = curve_table[pool]
    seg_slope = np.diff(f) * 10.0  # df/du on each 10% segment
    for app in rec.apps:
        for k in range(app.size):
            for t in app.ticks:
                u = used(app, k, t)
                for n in cands[app.index, k]:
                    if n != pool:
                        prog.add_cost(x[app.index, k, n], e_w * pue[n] * dyn_pc[n] * u)
    for t in range(1, T + 1):
        load = {x[a.index, k, pool]: used(a, k, t) for a in rec.apps if alive_in_tick(a, t)
                for k in range(a.size)}
        if not load:
            continue
        ub_u = min(sum(load.values()) / cores[pool], 1.0)
        n_seg = max(1, int(np.ceil(ub_u * 10.0 - 1e-12)))
        unit = e_w * pue[pool] * (peak[pool] - idle[pool])
        deltas = [prog.var(cost=unit * seg_slope[i], ub=0.1) for i in range(n_seg)]
        link = {col: u / cores[pool] for col, u in load.items()}
        for dcol in deltas:
            link[dcol] = -1.0
        prog.row(link, 0.0, 0.0)
        for i in range(1, n_seg):  # segment i is used only once segment i-1 is full
            y = prog.var(integer=True)
            prog.row({deltas[i]: 1.0, y: -0.1}, ub=0.0)
            prog.row({deltas[i - 1]: 1.0, y: -0.1}, lb=0.0)

    # --- capacity at every instant, pool within one node -----------------------------------------
    instants = sorted({a.instant for a in rec.apps})
    for j in instants:
        present = [a for a in rec.apps if present_at_instant(a, j)]
        nodes = {n for a in present if a.instant == j for k in range(a.size)
                 for n in cands[a.index, k]}
        for n in nodes:
            rows_cpu, rows_mem = {}, {}
            for a in present:
                for k in range(a.size):
                    if (a.index, k, n) in x:
                        rows_cpu[x[a.index, k, n]] = a.cpu_req[k]
                        rows_mem[x[a.index, k, n]] = a.mem_req[k]
            prog.row(rows_cpu, ub=cores[n] * (1 + 1e-9))
            prog.row(rows_mem, ub=mem[n] * (1 + 1e-9))

    # Redundant for the integer program, but they tighten its relaxation a lot: a node holds
    # its containers only while awake (the bin-packing linking constraint).
    for t in range(1, T + 1):
        alive = [a for a in rec.apps if alive_in_tick(a, t)]
        for n in {n for a in alive for k in range(a.size) for n in cands[a.index, k]}:
            if (n, t) not in awake:
                continue
            rows_cpu = {awake[n, t]: -cores[n]}
            rows_mem = {awake[n, t]: -mem[n]}
            for a in alive:
                for k in range(a.size):
                    if (a.index, k, n) in x:
                        rows_cpu[x[a.index, k, n]] = a.cpu_req[k]
                        rows_mem[x[a.index, k, n]] = a.mem_req[k]
            prog.row(rows_cpu, ub=1e-9 * cores[n])
            prog.row(rows_mem, ub=1e-9 * mem[n])

    # --- site power: no capping in any tick, and the guard at every decision instant ----------
    def site_demand(s: int, t: int) -> tuple[dict[int, float], float]:
        """Site s's measured demand in tick t: (terms, constant) in W."""
        terms: dict[int, float] = {}
        c0 = 0.0
        for n in range(s * M, (s + 1) * M):
            if not topo.node_exists[n]:
                continue
            c0 += sleep[n]
            if (n, t) in awake:
                _add(terms, awake[n, t], idle[n] - sleep[n])
        for a in rec.apps:
            if a.home == s and alive_in_tick(a, t):
                for k in range(a.size):
                    for n in cands[a.index, k]:
                        if n != pool:
                            _add(terms, x[a.index, k, n], dyn_pc[n] * used(a, k, t))
        return terms, c0

    budget = topo.site_budget_w
    for s in range(S):
        for t in range(1, T + 1):
            terms, c0 = site_demand(s, t)
            if terms:
                prog.row(terms, ub=budget[s] - c0)
        for j in instants:
            placed = [a for a in rec.apps if a.home == s and a.instant == j]
            if not placed:
                continue
            terms, c0 = site_demand(s, j)
            for n in range(s * M, (s + 1) * M):
                if not topo.node_exists[n]:
                    continue
                earlier = [x[a.index, k, n] for a in rec.apps
                           if a.home == s and a.instant < j and window_end[a.index] >= j + 1
                           for k in range(a.size)]
                wake = prog.var()
                _add(terms, wake, idle[n] - sleep[n])
                keep = None
                if earlier:
                    keep = prog.var()
                    prog.row({keep: 1.0, **{c: -1.0 for c in earlier}}, ub=0.0)
                    for c in earlier:
                        prog.row({keep: 1.0, c: -1.0}, lb=0.0)
                for a in placed:
                    for k in range(a.size):
                        col = x[a.index, k, n]
                        _add(terms, col, dyn_pc[n] * a.cpu_req[k])
                        row = {wake: 1.0, col: -1.0}
                        if keep is not None:
                            row[keep] = 1.0
                        prog.row(row, lb=0.0)
            prog.row(terms, ub=budget[s] - c0)

    # --- latency, SLO violations and WAN bytes -------------------------------------------------
    rtt = topo.rtt_ms
    net = sc.network
    for app in rec.apps:
        h = app.home
        if not np.isclose(rtt[h, h], rtt[S, S]):
            raise RuntimeError("offline optimum needs equal LAN RTT at the sites and the pool")
        p = [x[app.index, k, pool] for k in range(app.size)]
        cross = [None] + [prog.var() for _ in range(1, app.size)]
        for k in range(1, app.size):
            par = int(app.parent[k])
            prog.row({cross[k]: 1.0, p[k]: -1.0, p[par]: 1.0}, lb=0.0)
            prog.row({cross[k]: 1.0, p[k]: 1.0, p[par]: -1.0}, lb=0.0)
        reqs = app.rate_rps * dt
        n_ticks = len(app.ticks)
        # WAN bytes of each tick: users to a pool entry, pinned data read across, calls across.
        prog.add_cost(p[0], n_ticks * reqs * net.user_bytes_per_request
             * net.wan_energy_j_per_byte * j_cost)
        if app.data_k >= 0:
            if app.data_site != h:
                raise RuntimeError("offline optimum expects pinned data at the app's home")
            prog.add_cost(p[app.data_k], n_ticks * reqs * app.inv[app.data_k]
                 * sc.workload.apps.data_bytes_per_request * net.wan_energy_j_per_byte * j_cost)
        for k in range(1, app.size):
            prog.add_cost(cross[k], n_ticks * reqs * app.inv[k] * app.bytes_per_call[k]
                 * net.wan_energy_j_per_byte * j_cost)
        _latency(prog, app, p, cross, x, cands, topo, hours, w)

    res = prog.solve(time_limit_s, gap)
    if res.x is None:
        raise RuntimeError(f"offline optimum: no placement found ({res.message})")
    sol = res.x
    node = {key: max(cands[key], key=lambda n: sol[x[key[0], key[1], n]]) for key in cands}
    cost = np.asarray(prog.cost)
    latency = float(cost[prog.latency_cols] @ sol[prog.latency_cols])
    violation = float(cost[prog.violation_cols] @ sol[prog.violation_cols])
    rejection = w.rejection_per_container * rec.admission_rejected
    terms = {
        "energy": float(res.fun) + const - latency - violation - rejection,
        "latency": latency, "violation": violation, "rejection": rejection,
    }
    return MilpSolution(
        node=node, objective=float(res.fun) + const, cost_terms=terms,
        status="optimal" if res.status == 0 else str(res.message),
        mip_gap=getattr(res, "mip_gap", None), variables=len(prog.cost),
        integers=int(sum(prog.integer)), constraints=len(prog.row_lb),
    )


def _break_symmetry(prog: _Program, topo: Topology, rec: RecordedEpisode,
                    x: dict[tuple[int, int, int], int]) -> None:
    """Identical nodes of a site are interchangeable: use them in order of first use.

    Relabelling identical nodes changes no cost and no constraint, so requiring that the
    (l+1)-th of a group is used only after the l-th has been keeps one solution of each class.
    """
    M = topo.nodes_per_site
    props = np.stack([topo.node_cores, topo.node_mem_gib, topo.node_idle_w, topo.node_max_w,
                      topo.node_sleep_w, topo.node_wake_s, topo.node_speed], axis=1)
    if topo.node_curves is not None:
        props = np.concatenate([props, topo.node_curves], axis=1)
    for s in range(topo.num_sites):
        nodes = [n for n in range(s * M, (s + 1) * M) if topo.node_exists[n]]
        groups: dict[tuple, list[int]] = {}
        for n in nodes:
            groups.setdefault(tuple(np.round(props[n], 9)), []).append(n)
        for group in groups.values():
            for first, second in zip(group, group[1:], strict=False):
                before: dict[int, float] = {}
                for idx, k in rec.order[s]:
                    prog.row({x[idx, k, second]: 1.0, **{c: -1.0 for c in before}}, ub=0.0)
                    before[x[idx, k, first]] = -1.0


def _paths(parent: np.ndarray) -> list[list[int]]:
    """Every root-to-leaf path of a call tree (parent[k] < k, parent[0] = -1)."""
    size = parent.shape[0]
    children = {k: [c for c in range(1, size) if parent[c] == k] for k in range(size)}
    out, stack = [], [[0]]
    while stack:
        path = stack.pop()
        kids = children[path[-1]]
        if not kids:
            out.append(path)
        stack.extend(path + [c] for c in kids)
    return out


def _latency(prog, app, p, cross, x, cands, topo, hours, w) -> None:  # noqa: ANN001
    """Rows and cost of the app's response in each tick: the max over its call paths.

    Response = user RTT to the entry + sum over a path of invocations x (own time + hop RTT),
    own time = work / speed / (1 - min(rho, RHO_MAX)) (+ RTT to the pinned data), rho =
    demand / allocation; the simulator takes the largest path (sim.latency).
    """
    S = topo.num_sites
    h = app.home
    rtt, user_rtt, speed = topo.rtt_ms, topo.user_rtt_ms, topo.node_speed
    lan, wan = rtt[h, h], rtt[h, S]
    paths = _paths(app.parent)
    for i in range(len(app.ticks)):
        rho = np.minimum(app.demand[i] / np.maximum(app.cpu_req, 1e-9), RHO_MAX)
        base = app.work_ms / (1.0 - rho)
        rows = []
        for path in paths:
            terms: dict[int, float] = {}
            const = user_rtt[h, h]
            lo = hi = 0.0
            _add(terms, p[0], user_rtt[h, S] - user_rtt[h, h])
            hi += max(user_rtt[h, S] - user_rtt[h, h], 0.0)
            lo += min(user_rtt[h, S] - user_rtt[h, h], 0.0)
            for v in path:
                inv = app.inv[v]
                own = [base[v] / speed[n] for n in cands[app.index, v]]
                for n, val in zip(cands[app.index, v], own, strict=True):
                    _add(terms, x[app.index, v, n], inv * val)
                hi += inv * max(own)
                lo += inv * min(own)
                if v == app.data_k:
                    ds = app.data_site
                    const += inv * rtt[h, ds]
                    coef = inv * (rtt[S, ds] - rtt[h, ds])
                    _add(terms, p[v], coef)
                    hi += max(coef, 0.0)
                    lo += min(coef, 0.0)
                if v != 0:
                    const += inv * lan
                    _add(terms, cross[v], inv * (wan - lan))
                    hi += inv * max(wan - lan, 0.0)
            rows.append((terms, const, const + lo, const + hi))
        slo = app.slo_ms
        worst = max(r[3] for r in rows)
        if worst <= slo:
            continue  # in SLO whatever the placement
        best = max(r[2] for r in rows)
        viol = prog.var(cost=w.violation_per_app_hour * hours, lb=1.0 if best > slo else 0.0,
                        integer=True)
        excess = prog.var(cost=w.latency_per_slo_hour * hours, ub=np.inf)
        prog.violation_cols.append(viol)
        prog.latency_cols.append(excess)
        capped = None
        if (worst - slo) / slo > LATENCY_OVER_CAP:
            capped = prog.var(integer=True)
            prog.row({excess: 1.0, capped: -LATENCY_OVER_CAP}, lb=0.0)
        for terms, const, _, hi in rows:
            if hi <= slo:
                continue
            prog.row({**terms, viol: -(hi - slo)}, ub=slo - const)
            # excess >= (response - slo) / slo, unless capped at LATENCY_OVER_CAP
            row = {col: -val / slo for col, val in terms.items()}
            row[excess] = 1.0
            lb = (const - slo) / slo
            if capped is not None:
                big = (hi - slo) / slo
                row[capped] = big
            prog.row(row, lb=lb)
