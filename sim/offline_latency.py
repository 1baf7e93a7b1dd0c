"""The network and response-time part of the offline program (sim.offline_milp).

WAN bytes cost energy; each app's response in each tick is the largest, over its call paths,
of user RTT + invocations x (own time + hop RTT), and above its SLO costs a violation and
latency in SLO units (sim.kernel). Both are linear in the placement columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.kernel import LATENCY_OVER_CAP
from sim.latency import RHO_MAX
from sim.offline_record import RecordedApp

if TYPE_CHECKING:
    from sim.offline_milp import _Builder


def _add(terms: dict[int, float], col: int, val: float) -> None:
    terms[col] = terms.get(col, 0.0) + val


def network_and_latency(b: _Builder) -> None:
    """WAN bytes (their energy) and the response time of every app in every tick."""
    sc, topo, prog, S = b.sc, b.topo, b.prog, b.S
    rtt = topo.rtt_ms
    net = sc.network
    j_cost = b.w.energy_per_kwh / 3.6e6 * net.wan_energy_j_per_byte  # per byte
    for app in b.rec.apps:
        h = app.home
        if not np.isclose(rtt[h, h], rtt[S, S]):
            raise RuntimeError("offline optimum needs the same LAN RTT at sites and pool")
        if app.data_k >= 0 and app.data_site != h:
            raise RuntimeError("offline optimum expects pinned data at the app's home")
        pool_cols = [[b.x[app.index, k, q, b.at_request] for q in b.pools]
                     for k in range(app.size)]
        cross: list[int | None] = [None]
        for k in range(1, app.size):
            d = prog.var()
            cross.append(d)
            par = int(app.parent[k])
            up = {d: 1.0}
            down = {d: 1.0}
            for c in pool_cols[k]:
                _add(up, c, -1.0)
                _add(down, c, 1.0)
            for c in pool_cols[par]:
                _add(up, c, 1.0)
                _add(down, c, -1.0)
            prog.row(up, lb=0.0)
            prog.row(down, lb=0.0)
        # WAN bytes per tick: users to a pool entry, pinned data read from the pool,
        # calls crossing between pool and site.
        per_tick = app.rate_rps * sc.time.step_s * len(app.ticks) * j_cost
        for c in pool_cols[0]:
            prog.add_cost(c, per_tick * net.user_bytes_per_request)
        if app.data_k >= 0:
            for c in pool_cols[app.data_k]:
                prog.add_cost(c, per_tick * app.inv[app.data_k]
                              * sc.workload.apps.data_bytes_per_request)
        for k in range(1, app.size):
            prog.add_cost(cross[k], per_tick * app.inv[k] * app.bytes_per_call[k])
        _latency(b, app, cross)


def _latency(b: _Builder, app: RecordedApp, cross: list[int | None]) -> None:
    """Rows and cost of the app's response in each tick: the max over its call paths.

    Response = user RTT to the entry + sum over a path of invocations x (own time + hop
    RTT), own time = work / speed / (1 - min(rho, RHO_MAX)) (+ RTT to the pinned data),
    rho = demand / allocation (sim.latency, sim.kernel). A container's constant terms fold
    into its node columns (it is on exactly one node).
    """
    topo, prog, w, S, slo = b.topo, b.prog, b.w, b.S, app.slo_ms
    h = app.home
    rtt, user_rtt, speed = topo.rtt_ms, topo.user_rtt_ms, topo.node_speed
    lan, wan = rtt[h, h], rtt[h, S]
    paths = _paths(app.parent)
    for i in range(len(app.ticks)):
        rows = []
        for path in paths:
            node_coef: dict[int, dict[tuple[int, int], float]] = {}
            for v in path:
                inv = app.inv[v]
                coef = {}
                for n, lv in b.cands[app.index, v]:
                    alloc = max(app.cpu_req[v] * b.levels[lv], 1e-9)
                    rho = min(app.demand[i, v] / alloc, RHO_MAX)
                    loc = S if b.is_pool(n) else h
                    c = inv * app.work_ms[v] / speed[n] / (1.0 - rho)
                    if v == app.data_k:
                        c += inv * rtt[loc, app.data_site]
                    if v == 0:
                        c += user_rtt[h, loc]
                    coef[n, lv] = c
                node_coef[v] = coef
            cross_coef = {v: app.inv[v] * (wan - lan) for v in path if v != 0}
            const = sum(app.inv[v] * lan for v in path if v != 0)
            lo = const + sum(min(c.values()) for c in node_coef.values())
            hi = const + sum(max(c.values()) for c in node_coef.values()) + sum(
                cross_coef.values())
            terms = {b.x[(app.index, v, *o)]: c for v, coef in node_coef.items()
                     for o, c in coef.items()}
            terms.update({cross[v]: c for v, c in cross_coef.items()})
            # Single choices that break the SLO even with everything else at its best.
            forcing = [b.x[(app.index, v, *o)] for v, coef in node_coef.items()
                       for o, c in coef.items() if lo - min(coef.values()) + c > slo]
            forcing += [cross[v] for v, c in cross_coef.items() if lo + c > slo]
            rows.append((terms, const, lo, hi, forcing))
        worst = max(r[3] for r in rows)
        if worst <= slo:
            continue  # within the SLO wherever it runs
        best = max(r[2] for r in rows)
        viol = prog.var(cost=w.violation_per_app_hour * b.hours,
                        lb=1.0 if best > slo else 0.0, integer=True)
        excess = prog.var(cost=w.latency_per_slo_hour * b.hours, ub=np.inf)
        prog.violation_cols.append(viol)
        prog.latency_cols.append(excess)
        capped = None
        if (worst - slo) / slo > LATENCY_OVER_CAP:
            capped = prog.var(integer=True)
            prog.row({excess: 1.0, capped: -LATENCY_OVER_CAP}, lb=0.0)
        for terms, const, _, hi, forcing in rows:
            if hi <= slo:
                continue
            prog.row({**terms, viol: -(hi - slo)}, ub=slo - const)
            for col in forcing:
                prog.row({viol: 1.0, col: -1.0}, lb=0.0)
            # excess >= (response - slo) / slo, unless capped at LATENCY_OVER_CAP
            row = {col: -val / slo for col, val in terms.items()}
            row[excess] = 1.0
            if capped is not None:
                row[capped] = (hi - slo) / slo
            prog.row(row, lb=(const - slo) / slo)


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
