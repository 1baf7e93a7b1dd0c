"""The offline placement problem of one recorded episode as a mixed-integer linear program.

Decision: where each container runs, with static allocations (resizing off, as for the
heuristic baselines): a node of its home site at one of the size levels (the edge agent's
choice; sizes that would run out of memory are left out), or a node of the cloud pool at its
request (offload, then the cloud level sends it to the pool). Given the recorded workload
(sim.offline_record), the simulator's cost is linear in these choices; the program states it
exactly except for what the last paragraph says. Variables:

- x[c, n, l] in {0, 1}: container c on node n at size level l (one option each);
- A[n, t] in {0, 1}: node n awake in tick t. A node wakes when a container is placed on it
  and sleeps `sleep_after_s` after its last container left: A[n, t] >= x[c, n] over c's run
  and that tail, and minimising makes A exact;
- W[n, j], R[n, j]: node n woken by a placement at instant j / kept awake into tick j+1 by
  earlier containers (the guard charges a waking node its idle power);
- v[a, t] in {0, 1}, e[a, t] >= 0: app a out of its SLO in tick t, and by how much (in SLO
  units, capped at LATENCY_OVER_CAP);
- d[c] >= |pool(c) - pool(parent(c))|: a call crossing the WAN;
- each pool node's load on its SPECpower curve: incremental piecewise-linear segments.

Objective (the scenario's reward weights; network and latency rows: sim.offline_latency):
energy (idle, dynamic and sleep power of every node, cloud PUE, WAN bytes), latency above
SLO and SLO violations. Constraints: one node per
container, node capacity at every instant, the edge guard at every decision instant (site
demand + the watts the instant's placements add <= budget), and no power capping (site demand
<= budget in every tick).

Exact, except: CPU contention (the kernel's 1 + kappa u^2 slowdown of service times, which
only lengthens responses) is left out, the guard's clipping at full node load is not used (the
program is stricter), and with more than one pool node the core's best fit, not the program,
picks the pool node (pool energy can then differ). The program is first solved with one pool
node and grows only if that is infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from hierarchy.scenario import Scenario
from sim.offline_latency import network_and_latency
from sim.offline_record import RecordedApp, RecordedEpisode, out_of_memory
from sim.topology import Topology


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

    def solve(self, time_limit_s: float, gap: float, scale: float):  # noqa: ANN201
        """scipy's result. Costs are solved times `scale` (so they lie near 1, where HiGHS's
        absolute tolerances mean something) and reported unscaled."""
        a = sparse.csr_array((self.vals, (self.rows, self.cols)),
                             shape=(len(self.row_lb), len(self.cost)))
        res = milp(
            np.asarray(self.cost) * scale, integrality=np.asarray(self.integer),
            bounds=Bounds(np.asarray(self.lb), np.asarray(self.ub)),
            constraints=LinearConstraint(a, np.asarray(self.row_lb), np.asarray(self.row_ub)),
            options={"time_limit": time_limit_s, "mip_rel_gap": gap, "disp": False},
        )
        if res.x is not None:
            res.fun = res.fun / scale
            if getattr(res, "mip_dual_bound", None) is not None:
                res.mip_dual_bound = res.mip_dual_bound / scale
        return res


@dataclass
class MilpSolution:
    node: dict[tuple[int, int], tuple[int, int]]  # (app index, k) -> (global node, level)
    objective: float  # the model's episode cost, constants included
    lower_bound: float  # proven lower bound of the model's optimum (= objective if optimal)
    cost_terms: dict[str, float]  # the objective split: energy, latency, violation, rejection
    status: str  # "optimal" or the solver's message
    pool_nodes: int  # pool nodes the program could use
    variables: int
    integers: int
    constraints: int


class Infeasible(RuntimeError):
    """No placement satisfies the constraints (e.g. the pool needs more nodes)."""


def _add(terms: dict[int, float], col: int, val: float) -> None:
    terms[col] = terms.get(col, 0.0) + val


def sleep_tail_ticks(scenario: Scenario) -> int:
    """Ticks a node stays awake after the tick its last container left in."""
    dt, idle, m = scenario.time.step_s, 0.0, -1
    while True:
        m += 1
        idle += dt  # the kernel accumulates idle time tick by tick, so does this
        if idle >= scenario.sizing.sleep_after_s:
            return m


def solve_placement(scenario: Scenario, topo: Topology, rec: RecordedEpisode,
                    curve_table: np.ndarray, pool_nodes: int = 1,
                    time_limit_s: float = 120.0, gap: float = 1e-9) -> MilpSolution:
    """Build and solve the program for `rec` with the first `pool_nodes` pool nodes.

    Raises Infeasible when no placement fits, RuntimeError when none was found in time.
    """
    return _Builder(scenario, topo, rec, curve_table, pool_nodes).solve(time_limit_s, gap)


class _Builder:
    def __init__(self, scenario: Scenario, topo: Topology, rec: RecordedEpisode,
                 curve_table: np.ndarray, pool_nodes: int) -> None:
        self.sc, self.topo, self.rec, self.curves = scenario, topo, rec, curve_table
        S, M = topo.num_sites, topo.nodes_per_site
        self.S, self.M, self.T = S, M, rec.ticks
        self.pools = list(range(S * M, S * M + min(pool_nodes, topo.num_cloud_nodes)))
        dt = scenario.time.step_s
        self.hours = dt / 3600.0
        self.w = scenario.reward
        self.e_w = self.w.energy_per_kwh * dt / 3.6e6  # cost of one watt for one tick
        self.tail = sleep_tail_ticks(scenario)
        self.prog = _Program()
        self.pue = topo.loc_pue[topo.node_site]
        self.dyn_pc = (topo.node_max_w - topo.node_idle_w) / np.maximum(topo.node_cores, 1e-9)
        self.levels = np.asarray(scenario.sizing.size_levels, dtype=np.float64)
        self.at_request = int(np.argmin(np.abs(self.levels - 1.0)))
        # x[(app, k, node, level)] -> column; cands[(app, k)] -> its (node, level) options
        self.x: dict[tuple[int, int, int, int], int] = {}
        self.cands: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.awake: dict[tuple[int, int], int] = {}
        self.window_end: dict[int, int] = {}

    # --- helpers ------------------------------------------------------------------------------

    def used(self, app: RecordedApp, k: int, t: int, level: int) -> float:
        """CPU used by container k in tick t at size `level`: demand within the allocation."""
        return min(app.demand[t - app.instant - 1, k], app.cpu_req[k] * self.levels[level])

    @staticmethod
    def alive_in_tick(app: RecordedApp, t: int) -> bool:
        return app.instant < t <= app.last_tick

    @staticmethod
    def present_at_instant(app: RecordedApp, j: int) -> bool:
        """Placed by instant j and not departed before it."""
        return app.instant <= j and (not app.departs or app.last_tick > j)

    def is_pool(self, n: int) -> bool:
        return n >= self.S * self.M

    def columns(self, app: RecordedApp, k: int) -> dict[tuple[int, int], int]:
        """(node, level) -> column of container (app, k)."""
        return {o: self.x[(app.index, k, *o)] for o in self.cands[app.index, k]}

    def node_columns(self, app: RecordedApp, k: int, n: int) -> list[tuple[int, int]]:
        """(level, column) of container (app, k) on node n."""
        return [(lv, self.x[app.index, k, m, lv]) for m, lv in self.cands[app.index, k]
                if m == n]

    # --- building -----------------------------------------------------------------------------

    def solve(self, time_limit_s: float, gap: float) -> MilpSolution:
        self.placements()
        self.awake_nodes()
        self.dynamic_power()
        self.capacity()
        self.site_power()
        network_and_latency(self)
        prog, rec, w = self.prog, self.rec, self.w
        const = w.rejection_per_container * rec.admission_rejected
        topo = self.topo
        # Every node draws its sleep power unless awake (awake adds idle - sleep).
        sleep_w = np.where(topo.node_exists, topo.node_sleep_w * self.pue, 0.0)
        const += float(sleep_w.sum()) * self.e_w * self.T
        res = prog.solve(time_limit_s, gap, scale=1.0 / self.e_w)
        if res.status == 2:
            raise Infeasible(f"offline optimum: infeasible with {len(self.pools)} pool node(s)")
        if res.x is None:
            raise RuntimeError(f"offline optimum: no placement found ({res.message})")
        sol = res.x
        node = {key: max(c, key=lambda o: sol[self.x[(*key, *o)]])
                for key, c in self.cands.items()}
        cost = np.asarray(prog.cost)
        latency = float(cost[prog.latency_cols] @ sol[prog.latency_cols])
        violation = float(cost[prog.violation_cols] @ sol[prog.violation_cols])
        rejection = w.rejection_per_container * rec.admission_rejected
        objective = float(res.fun) + const
        bound = getattr(res, "mip_dual_bound", None)
        return MilpSolution(
            node=node, objective=objective,
            lower_bound=objective if res.status == 0 or bound is None else float(bound) + const,
            cost_terms={"energy": objective - latency - violation - rejection,
                        "latency": latency, "violation": violation, "rejection": rejection},
            status="optimal" if res.status == 0 else str(res.message),
            pool_nodes=len(self.pools), variables=len(prog.cost),
            integers=int(sum(prog.integer)), constraints=len(prog.row_lb),
        )

    def placements(self) -> None:
        """One option per container: a home-site node at a size level, or a pool node.

        Sizes that would run out of memory within the episode are left out (the caller
        checks the request size never does).
        """
        topo, M, prog = self.topo, self.M, self.prog
        for app in self.rec.apps:
            site = [app.home * M + m for m in range(M) if topo.node_exists[app.home * M + m]]
            for k in range(app.size):
                sizes = [lv for lv in range(self.levels.size)
                         if lv == self.at_request or not out_of_memory(app, k, self.levels[lv],
                                                                       self.sc.time.step_s)]
                opts = [(n, lv) for n in site for lv in sizes]
                opts += [(q, self.at_request) for q in self.pools]
                self.cands[app.index, k] = opts
                one = {}
                for o in opts:
                    self.x[(app.index, k, *o)] = prog.var(integer=True)
                    one[self.x[(app.index, k, *o)]] = 1.0
                prog.row(one, 1.0, 1.0)
        self.break_symmetry()

    def break_symmetry(self) -> None:
        """Identical nodes are interchangeable: use them in order of first use.

        Relabelling identical nodes (of one site, or of the pool) changes no cost and no
        constraint, so requiring that the (l+1)-th of a group is used only after the l-th
        keeps one solution of each class.
        """
        topo, M = self.topo, self.M
        props = np.stack([topo.node_cores, topo.node_mem_gib, topo.node_idle_w,
                          topo.node_max_w, topo.node_sleep_w, topo.node_wake_s,
                          topo.node_speed], axis=1)
        if topo.node_curves is not None:
            props = np.concatenate([props, topo.node_curves], axis=1)
        by_instant = sorted(self.rec.apps, key=lambda a: (a.instant, a.index))
        everyone = [(a.index, k) for a in by_instant for k in range(a.size)]
        groups_of = [(self.rec.order[s], range(s * M, (s + 1) * M)) for s in range(self.S)]
        groups_of.append((everyone, self.pools))
        for order, nodes in groups_of:
            groups: dict[tuple, list[int]] = {}
            for n in nodes:
                if topo.node_exists[n]:
                    groups.setdefault(tuple(np.round(props[n], 9)), []).append(n)
            for group in groups.values():
                for first, second in zip(group, group[1:], strict=False):
                    before: list[int] = []
                    for idx, k in order:
                        app = self.rec.apps[idx]
                        row = {c: 1.0 for _, c in self.node_columns(app, k, second)}
                        row.update({c: -1.0 for c in before})
                        self.prog.row(row, ub=0.0)
                        before.extend(c for _, c in self.node_columns(app, k, first))

    def awake_var(self, n: int, t: int) -> int:
        if (n, t) not in self.awake:
            cost = self.e_w * self.pue[n] * (self.topo.node_idle_w[n] - self.topo.node_sleep_w[n])
            # Binary, though minimising makes it integral: branching on it is what makes the
            # program solve quickly.
            self.awake[n, t] = self.prog.var(cost=cost, integer=True)
        return self.awake[n, t]

    def awake_nodes(self) -> None:
        for app in self.rec.apps:
            end = min(app.last_tick + self.tail, self.T) if app.departs else self.T
            self.window_end[app.index] = end
            for k in range(app.size):
                for n in {n for n, _ in self.cands[app.index, k]}:
                    on_n = {c: -1.0 for _, c in self.node_columns(app, k, n)}
                    for t in range(app.instant + 1, end + 1):
                        self.prog.row({self.awake_var(n, t): 1.0, **on_n}, lb=0.0)

    def dynamic_power(self) -> None:
        """Linear on edge nodes (checked by the caller); SPECpower table on pool nodes."""
        prog, topo = self.prog, self.topo
        for app in self.rec.apps:
            for k in range(app.size):
                for t in app.ticks:
                    for (n, lv), col in self.columns(app, k).items():
                        if not self.is_pool(n):
                            u = self.used(app, k, t, lv)
                            prog.add_cost(col, self.e_w * self.pue[n] * self.dyn_pc[n] * u)
        for q in self.pools:
            slope = np.diff(self.curves[q]) * 10.0  # df/du on each 10% segment
            unit = self.e_w * self.pue[q] * (topo.node_max_w[q] - topo.node_idle_w[q])
            for t in range(1, self.T + 1):
                load = {self.x[a.index, k, q, self.at_request]: self.used(a, k, t, self.at_request)
                        for a in self.rec.apps if self.alive_in_tick(a, t) for k in range(a.size)}
                if not load:
                    continue
                ub_u = min(sum(load.values()) / topo.node_cores[q], 1.0)
                n_seg = max(1, int(np.ceil(ub_u * 10.0 - 1e-12)))
                deltas = [prog.var(cost=unit * slope[i], ub=0.1) for i in range(n_seg)]
                link = {col: u / topo.node_cores[q] for col, u in load.items()}
                link.update({d: -1.0 for d in deltas})
                prog.row(link, 0.0, 0.0)
                for i in range(1, n_seg):  # segment i only once segment i-1 is full
                    y = prog.var(integer=True)
                    prog.row({deltas[i]: 1.0, y: -0.1}, ub=0.0)
                    prog.row({deltas[i - 1]: 1.0, y: -0.1}, lb=0.0)

    def capacity(self) -> None:
        """Node capacity at every instant; linked to the awake state in every tick."""
        topo, prog, apps = self.topo, self.prog, self.rec.apps
        cores, mem = topo.node_cores, topo.node_mem_gib
        for j in sorted({a.instant for a in apps}):
            present = [a for a in apps if self.present_at_instant(a, j)]
            nodes = {n for a in present if a.instant == j for k in range(a.size)
                     for n, _ in self.cands[a.index, k]}
            for n in nodes:
                cpu, mm = {}, {}
                for a in present:
                    for k in range(a.size):
                        for lv, c in self.node_columns(a, k, n):
                            cpu[c] = a.cpu_req[k] * self.levels[lv]
                            mm[c] = a.mem_req[k] * self.levels[lv]
                prog.row(cpu, ub=cores[n] * (1 + 1e-9))
                prog.row(mm, ub=mem[n] * (1 + 1e-9))
        # Redundant for the integer program, but it tightens the relaxation a lot: a node
        # holds its containers only while awake (the bin-packing linking constraint).
        for t in range(1, self.T + 1):
            alive = [a for a in apps if self.alive_in_tick(a, t)]
            for n in {n for a in alive for k in range(a.size) for n, _ in self.cands[a.index, k]}:
                if (n, t) not in self.awake:
                    continue
                cpu = {self.awake[n, t]: -cores[n]}
                mm = {self.awake[n, t]: -mem[n]}
                for a in alive:
                    for k in range(a.size):
                        for lv, c in self.node_columns(a, k, n):
                            cpu[c] = a.cpu_req[k] * self.levels[lv]
                            mm[c] = a.mem_req[k] * self.levels[lv]
                prog.row(cpu, ub=1e-9 * cores[n])
                prog.row(mm, ub=1e-9 * mem[n])

    def site_demand(self, s: int, t: int) -> tuple[dict[int, float], float]:
        """Site s's measured power demand in tick t (W): (terms, constant)."""
        topo = self.topo
        terms: dict[int, float] = {}
        c0 = 0.0
        for n in range(s * self.M, (s + 1) * self.M):
            if not topo.node_exists[n]:
                continue
            c0 += topo.node_sleep_w[n]
            if (n, t) in self.awake:
                _add(terms, self.awake[n, t], topo.node_idle_w[n] - topo.node_sleep_w[n])
        for a in self.rec.apps:
            if a.home == s and self.alive_in_tick(a, t):
                for k in range(a.size):
                    for (n, lv), col in self.columns(a, k).items():
                        if not self.is_pool(n):
                            _add(terms, col, self.dyn_pc[n] * self.used(a, k, t, lv))
        return terms, c0

    def site_power(self) -> None:
        """No capping in any tick, and the guard at every decision instant."""
        topo, prog, apps, M = self.topo, self.prog, self.rec.apps, self.M
        budget = topo.site_budget_w
        instants = sorted({a.instant for a in apps})
        for s in range(self.S):
            for t in range(1, self.T + 1):
                terms, c0 = self.site_demand(s, t)
                if terms:
                    prog.row(terms, ub=budget[s] - c0)
            for j in instants:
                placed = [a for a in apps if a.home == s and a.instant == j]
                if not placed:
                    continue
                terms, c0 = self.site_demand(s, j)
                for n in range(s * M, (s + 1) * M):
                    if not topo.node_exists[n]:
                        continue
                    earlier = [c for a in apps
                               if a.home == s and a.instant < j
                               and self.window_end[a.index] >= j + 1 for k in range(a.size)
                               for _, c in self.node_columns(a, k, n)]
                    wake = prog.var()
                    _add(terms, wake, topo.node_idle_w[n] - topo.node_sleep_w[n])
                    keep = None
                    if earlier:  # keep = OR(earlier), exactly
                        keep = prog.var()
                        prog.row({keep: 1.0, **{c: -1.0 for c in earlier}}, ub=0.0)
                        for c in earlier:
                            prog.row({keep: 1.0, c: -1.0}, lb=0.0)
                    for a in placed:
                        for k in range(a.size):
                            row = {wake: 1.0}
                            for lv, col in self.node_columns(a, k, n):
                                _add(terms, col, self.dyn_pc[n] * a.cpu_req[k] * self.levels[lv])
                                row[col] = -1.0
                            if keep is not None:
                                row[keep] = 1.0
                            prog.row(row, lb=0.0)
                prog.row(terms, ub=budget[s] - c0)
