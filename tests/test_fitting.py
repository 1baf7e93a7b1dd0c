"""Tests of sim.fitting's statistics on small synthetic inputs (never reads shared data)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim import fitting as ft

# --------------------------------------------------------------------------------- helpers


def test_sig_rounds_to_four_significant_digits() -> None:
    assert ft.sig(123456.0) == 123500.0
    assert ft.sig(0.000123456) == 0.0001235
    assert ft.sig(0.0) == 0.0
    assert isinstance(ft.sig(np.float64(1.5)), float)


def test_round_pmf_sums_to_one() -> None:
    p = ft.round_pmf([1 / 3, 1 / 3, 1 / 3, 1e-5])
    assert math.isclose(sum(p), 1.0, abs_tol=1e-9)
    assert all(v >= 0 for v in p)
    with pytest.raises(ValueError):
        ft.round_pmf([0.0, 0.0])


# --------------------------------------------------------------------------------- arrivals


def test_pure_sinusoid_gives_amplitude_and_peak() -> None:
    hour = np.arange(0, 72, 0.25)
    y = 100 * (1 + 0.3 * np.cos(2 * np.pi * (hour - 15.0) / 24))
    m, amp, peak = ft.fit_daily_sinusoid(hour, y)
    assert m == pytest.approx(100.0)
    assert amp == pytest.approx(0.3)
    assert peak == pytest.approx(15.0)


def test_sinusoid_peak_wraps_around_midnight() -> None:
    hour = np.arange(0, 48, 0.5)
    y = 10 * (1 + 0.5 * np.cos(2 * np.pi * (hour - 23.5) / 24))
    _, amp, peak = ft.fit_daily_sinusoid(hour, y)
    assert amp == pytest.approx(0.5)
    assert peak == pytest.approx(23.5)


def test_hour_of_day_assumes_utc_midnight_origin() -> None:
    assert ft.hour_of_day(np.array([0.0, 3600.0 * 25, 86_400.0 * 3 + 1800]))[2] == 0.5
    assert ft.hour_of_day(np.array([3600.0 * 25]))[0] == pytest.approx(1.0)


def test_run_lengths() -> None:
    on, off = ft.run_lengths(np.array([0, 1, 1, 0, 0, 0, 1], dtype=bool))
    assert on.tolist() == [2, 1]
    assert off.tolist() == [1, 3]


def test_robust_high_mask_flags_outliers_only() -> None:
    x = np.ones(100)
    x[::2] = 1.1
    x[[10, 11, 50]] = 10.0
    assert np.flatnonzero(ft.robust_high_mask(x)).tolist() == [10, 11, 50]


def test_fit_arrivals_recovers_daily_curve_and_bursts() -> None:
    t = np.arange(0, 4 * 86_400, 300.0)
    hour = ft.hour_of_day(t + 150)
    counts = 100 * (1 + 0.4 * np.cos(2 * np.pi * (hour - 9) / 24))
    burst = np.zeros(t.size, dtype=bool)
    burst[100:104] = burst[500:504] = burst[900:904] = True  # three bursts of 4 bins
    counts = np.where(burst, counts * 5, counts)
    fit = ft.fit_arrivals(t, counts)
    assert fit["peak_hour"] == pytest.approx(9.0, abs=0.3)
    assert fit["daily_amplitude"] == pytest.approx(0.4, abs=0.05)
    assert fit["burst_on_s"] == pytest.approx(4 * 300.0)
    assert fit["burst_factor"] > 3.0
    assert fit["index_of_dispersion"] > 1.0


def test_parse_arrival_line_batches() -> None:
    t, batches = ft.parse_arrival_line("2100300 b,b,|,g,|,k,m,|,\n")
    assert t == 2100300
    assert batches == [["b", "b"], ["g"], ["k", "m"]]
    assert ft.parse_arrival_line("600 \n") == (600, [])


def test_index_of_dispersion_of_poisson_is_near_one() -> None:
    c = np.random.default_rng(1).poisson(50, 20_000)
    assert ft.index_of_dispersion(c) == pytest.approx(1.0, abs=0.05)


# --------------------------------------------------------------------------------- apps


def _graph(edges: list[tuple[str, str, int, str]], num: int = 1, service: str = "s") -> dict:
    nodes = sorted({e[0] for e in edges} | {e[1] for e in edges})
    return {
        "service": service,
        "num": num,
        "nodes": [{"node": n, "label": "normal"} for n in nodes],
        "edges": [{"source": s, "target": t, "weight": w, "rpctype": r} for s, t, w, r in edges],
    }


def test_chain_graph_depth_is_n_minus_one() -> None:
    g = ft.graph_stats(_graph([("USER", "a", 1, "http"), ("a", "b", 1, "rpc"),
                               ("b", "c", 2, "rpc"), ("c", "d", 2, "rpc")]))
    assert g.size == 4
    assert g.depth == 3
    assert g.is_tree
    assert g.out_degrees == [1, 1, 1]
    assert g.call_ratios == [1.0, 2.0, 1.0]  # b->c: 2 per call of b; c->d: 2 / 2 = 1
    assert not g.has_data


def test_star_graph_and_dag_use_shortest_paths() -> None:
    star = ft.graph_stats(_graph([("USER", "a", 1, "http"), ("a", "m1", 3, "mc"),
                                  ("a", "m2", 1, "mc"), ("a", "x", 1, "rpc")]))
    assert (star.depth, star.size, star.has_data) == (1, 4, True)
    assert sorted(star.out_degrees) == [3]
    dag = ft.graph_stats(_graph([("USER", "a", 1, "http"), ("a", "b", 1, "rpc"),
                                 ("b", "c", 1, "rpc"), ("a", "c", 1, "rpc"),
                                 ("c", "c", 1, "rpc")]))
    assert dag.depth == 1
    assert not dag.is_tree
    assert dag.self_loops == 1


def test_bfs_depth_multiple_entries() -> None:
    depth, reached = ft.bfs_depth({"a": ["b"], "b": ["c"], "x": ["c"]}, ["a", "x"])
    assert (depth, reached) == (1, 4)  # c is one hop from x


def test_graph_weights_service_scheme_counts_each_service_once() -> None:
    stats = [ft.graph_stats(_graph([("USER", "a", 1, "http")], num=n, service=s))
             for n, s in [(30, "s1"), (10, "s1"), (5, "s2")]]
    w = ft.graph_weights(stats, "service")
    assert w.tolist() == pytest.approx([0.75, 0.25, 1.0])
    assert ft.graph_weights(stats, "graph").tolist() == [1, 1, 1]
    assert ft.graph_weights(stats, "num").tolist() == [30, 10, 5]


def test_size_pmf_clips_large_apps() -> None:
    pmf, clipped = ft.size_pmf(np.array([1, 2, 2, 9, 20]), np.ones(5), max_size=8)
    assert pmf.tolist() == pytest.approx([0.2, 0.4, 0, 0, 0, 0, 0, 0.4])
    assert clipped == pytest.approx(0.4)


def test_calls_bucket_pmf() -> None:
    pmf = ft.calls_bucket_pmf(np.array([0.2, 1.0, 1.4, 1.5, 2.0, 3.0, 4.0, 9.0]))
    assert pmf.tolist() == pytest.approx([3 / 8, 2 / 8, 1 / 8, 2 / 8])


def _old_model_depths(sizes: np.ndarray, chain_prob: float, u1: np.ndarray,
                      u2: np.ndarray) -> np.ndarray:
    """Reference: the previous one-parameter rule (k-1 with chain_prob, else uniform)."""
    n, kmax = u1.shape
    d = np.zeros((n, kmax), dtype=int)
    for k in range(1, kmax):
        par = np.where(u1[:, k] < chain_prob, k - 1, np.minimum((u2[:, k] * k).astype(int), k - 1))
        d[:, k] = np.where(sizes > k, d[np.arange(n), par] + 1, 0)
    return d.max(axis=1)


def test_tree_generator_chain_prob_one_is_a_chain() -> None:
    rng = np.random.default_rng(0)
    parents = ft.sample_tree_parents(6, 0.0, 1.0, rng)
    assert parents.tolist() == [-1, 0, 1, 2, 3, 4]
    n, k = 1000, 8
    sizes = np.full(n, k)
    u1, u2 = rng.random((n, k)), rng.random((n, k))
    depth, edges, n_par = ft.tree_depths_fanouts(sizes, 0.0, 1.0, u1, u2)
    assert (depth == k - 1).all()
    assert (n_par == k - 1).all()
    depth0, _, n_par0 = ft.tree_depths_fanouts(sizes, 0.0, 0.0, u1, u2)
    assert depth0.mean() < k - 1 - 2  # random recursive trees are much shallower
    assert (edges / n_par0).mean() > 1.0


def test_star_prob_one_is_a_star() -> None:
    rng = np.random.default_rng(1)
    for chain in (0.0, 0.5, 1.0):  # chain_prob has no effect when star_prob = 1
        assert ft.sample_tree_parents(6, 1.0, chain, rng).tolist() == [-1, 0, 0, 0, 0, 0]
    sizes = np.array([1, 2, 3, 5, 8] * 20)
    u1, u2 = rng.random((100, 8)), rng.random((100, 8))
    depth, edges, n_par = ft.tree_depths_fanouts(sizes, 1.0, 0.7, u1, u2)
    assert depth.tolist() == np.minimum(sizes - 1, 1).tolist()  # depth 1 (0 for a lone entry)
    assert n_par.tolist() == (sizes > 1).astype(int).tolist()  # only the entry has children
    assert (edges[sizes > 1] / n_par[sizes > 1]).tolist() == (sizes[sizes > 1] - 1).tolist()


def test_star_prob_zero_is_the_old_model() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    sizes = rng.integers(1, 9, n)
    u1, u2 = rng.random((n, 8)), rng.random((n, 8))
    for chain in (0.0, 0.3, 0.8):
        depth, _, _ = ft.tree_depths_fanouts(sizes, 0.0, chain, u1, u2)
        assert depth.tolist() == _old_model_depths(sizes, chain, u1, u2).tolist()


def test_vectorised_trees_match_the_sampler() -> None:
    rng = np.random.default_rng(4)
    n, size, star, chain = 3000, 6, 0.3, 0.5
    depths, parents = [], []
    for _ in range(n):
        par = ft.sample_tree_parents(size, star, chain, rng)
        d = np.zeros(size, dtype=int)
        for k in range(1, size):
            d[k] = d[par[k]] + 1
        depths.append(d.max())
        parents.append(len(set(par[1:].tolist())))
    depth, _, n_par = ft.tree_depths_fanouts(np.full(n, size), star, chain,
                                             rng.random((n, 8)), rng.random((n, 8)))
    assert depth.mean() == pytest.approx(np.mean(depths), abs=0.06)
    assert n_par.mean() == pytest.approx(np.mean(parents), abs=0.06)


def test_tree_stats_over_a_grid_row_equals_one_candidate_at_a_time() -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 9, 500)
    u1, u2 = rng.random((500, 8)), rng.random((500, 8))
    chains = np.array([0.0, 0.25, 0.9])
    trees = ft._sort_trees(sizes, u1, u2)
    depth, n_par = ft._tree_stats(trees, np.full(3, 0.4), chains)
    m = int((sizes > 1).sum())
    assert depth.shape == n_par.shape == (3, m)  # lone entries are left out
    for i, c in enumerate(chains):
        d1, _, p1 = ft.tree_depths_fanouts(sizes, 0.4, float(c), u1, u2)
        assert depth[i].tolist() == d1[trees.order[:m]].tolist()
        assert n_par[i].tolist() == p1[trees.order[:m]].tolist()
        assert (d1[sizes == 1] == 0).all() and (p1[sizes == 1] == 0).all()


def test_tree_generator_respects_sizes() -> None:
    rng = np.random.default_rng(3)
    sizes = np.array([1, 2, 3, 5])
    depth, edges, _ = ft.tree_depths_fanouts(sizes, 0.0, 1.0, rng.random((4, 8)),
                                             rng.random((4, 8)))
    assert depth.tolist() == [0, 1, 2, 4]
    assert edges.tolist() == [0, 1, 2, 4]


def test_fit_tree_params_recovers_known_values() -> None:
    pmf = np.array([0, 0, 0, 0, 0, 0, 0, 1.0])  # all apps have 8 containers
    n = 20_000
    rng = np.random.default_rng(50)  # independent of the search's own draws
    d, e, p = ft.tree_depths_fanouts(np.full(n, 8), 0.2, 0.8, rng.random((n, 8)),
                                     rng.random((n, 8)))
    depth, fan = float(d.mean()), float(e.sum() / p.sum())
    grid = np.linspace(0.0, 1.0, 11)
    fit = ft.fit_tree_params(pmf, depth, fan, n_trees=n, star_grid=grid, chain_grid=grid, seed=1)
    assert fit.star_prob == pytest.approx(0.2, abs=0.05)
    assert fit.chain_prob == pytest.approx(0.8, abs=0.05)
    assert fit.mean_depth == pytest.approx(depth, rel=0.01)
    assert fit.mean_fanout == pytest.approx(fan, rel=0.01)
    assert fit.loss < 1e-4
    assert fit.losses.shape == (11, 11)
    assert fit.loss == fit.losses.min()
    s_lo, s_hi, c_lo, c_hi = fit.near_optimal()
    assert s_lo <= fit.star_prob <= s_hi and c_lo <= fit.chain_prob <= c_hi


def test_fit_tree_params_star_like_targets() -> None:
    # Shallow, bushy targets out of reach of the one-parameter model need star_prob > 0.
    pmf = np.array([0, 0, 0, 0, 1.0, 0, 0, 0])  # 5 containers
    grid = np.linspace(0.0, 1.0, 11)
    fit = ft.fit_tree_params(pmf, 1.0, 4.0, n_trees=500, star_grid=grid, chain_grid=grid, seed=1)
    assert (fit.star_prob, fit.chain_prob) == (1.0, 0.0)  # exact star; the tie keeps chain 0
    assert (fit.mean_depth, fit.mean_fanout, fit.loss) == (1.0, 4.0, 0.0)
    old = ft.fit_tree_params(pmf, 1.0, 4.0, n_trees=500, star_grid=np.array([0.0]),
                             chain_grid=grid, seed=1)
    assert old.chain_prob == 0.0 and old.loss > 0.1  # the old model clamps at chain_prob 0


# --------------------------------------------------------------------------------- containers


def test_parse_flavour_map_and_merge_rare() -> None:
    flav = ft.parse_flavour_map(["1,1.75 b\n", "2,3.5 g\n", "16,112 d\n", "\n"])
    assert flav == {"b": (1.0, 1.75), "g": (2.0, 3.5), "d": (16.0, 112.0)}
    fit = ft.fit_containers(flav, {"b": 600, "g": 398, "d": 2})
    assert fit["cpu_request_cores"].tolist() == [0.25, 0.5]  # 16 vCPU (0.2%) merged into 2 -> 0.5
    assert fit["cpu_request_pmf"].tolist() == pytest.approx([0.6, 0.4])
    assert fit["mem_gib_per_core"].tolist() == [1.75]
    assert fit["mem_gib_per_core_pmf"].tolist() == pytest.approx([1.0])


def test_merge_rare_caps_number_of_values() -> None:
    vals, pmf = ft.merge_rare(np.arange(1.0, 11.0), np.ones(10), min_frac=0.0, max_values=6)
    assert len(vals) == 6
    assert pmf.sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------------- usage


def test_beta_method_of_moments() -> None:
    x = np.random.default_rng(2).beta(2.0, 5.0, 20_000)
    a, b = ft.beta_mom(x)
    assert a == pytest.approx(2.0, rel=0.08)
    assert b == pytest.approx(5.0, rel=0.08)
    with pytest.raises(ValueError):
        ft.beta_mom(np.array([0.0, 1.0, 0.0, 1.0]))


def _ar1(phi: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(0, math.sqrt(1 - phi * phi), n)
    z = np.empty(n)
    z[0] = rng.normal()
    for i in range(1, n):
        z[i] = phi * z[i - 1] + e[i]
    return z


def test_ar1_phi_is_recovered() -> None:
    z = _ar1(0.7, 20_000, 4)
    assert ft.lag1_autocorr(z) == pytest.approx(0.7, abs=0.02)
    ok = np.ones(z.size - 1, dtype=bool)
    ok[::2] = False  # using only half of the pairs still works
    assert ft.lag1_autocorr(z, ok) == pytest.approx(0.7, abs=0.03)


def test_phi_per_step_conversion() -> None:
    assert ft.phi_per_step(0.9 ** 5, 5) == pytest.approx(0.9)
    assert ft.phi_per_step(-0.2, 5) == 0.0


def test_slope_per_hour() -> None:
    t = np.arange(0, 10 * 3600, 300.0) + 1e9
    assert ft.slope_per_hour(t, 0.1 + 0.002 * (t - t[0]) / 3600) == pytest.approx(0.002)


def test_vm_usage_stats_on_synthetic_vm() -> None:
    t = np.arange(0, 7 * 86_400, 300.0)
    hour = ft.hour_of_day(t)
    sigma, phi5 = 0.3, 0.8
    z = _ar1(phi5, t.size, 5)
    u = 0.2 * (1 + 0.25 * np.cos(2 * np.pi * (hour - 14) / 24)) * np.exp(sigma * z - sigma**2 / 2)
    mem = 0.3 + 1e-4 * t / 3600
    s = ft.vm_usage_stats(ft.VmTrace(t, u, mem))
    assert s.cpu_mean == pytest.approx(0.2, rel=0.1)
    assert s.cpu_amp == pytest.approx(0.25, abs=0.05)
    assert s.cpu_peak_hour == pytest.approx(14, abs=1.0)
    assert s.cpu_sigma == pytest.approx(sigma, rel=0.1)
    assert s.cpu_phi_step == pytest.approx(phi5, abs=0.05)
    assert s.mem_slope_per_hour == pytest.approx(1e-4)


# --------------------------------------------------------------------------------- lifetimes


def test_lognormal_mle() -> None:
    x = np.random.default_rng(6).lognormal(math.log(600.0), 1.5, 20_000)
    med, s = ft.lognormal_mle(x)
    assert med == pytest.approx(600.0, rel=0.05)
    assert s == pytest.approx(1.5, rel=0.03)


def test_parse_interval_map_midpoints() -> None:
    mids = ft.parse_interval_map(["0 0\n", "300 1\n", "3900 13\n", "4200 13\n"])
    assert mids == {"0": 150.0, "1": 450.0, "13": (3900 + 4200 + 300) / 2}


# --------------------------------------------------------------------------------- end to end


def _write_tiny_data(root: Path) -> None:
    az = root / "azure_v1_vm_arrivals"
    az.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines, life_lines = [], []
    for i in range(2 * 288):
        t = i * 300
        n = int(rng.poisson(20 * (1 + 0.5 * math.cos(2 * math.pi * (t / 3600 - 12) / 24))))
        lines.append(f"{t} " + ",".join(["b", "g", "|"] * (n // 2)) + ",")
        life_lines.append(f"{t} " + ",".join(["U1", "C2", "|"] * (n // 2)) + ",")
    with gzip.open(az / "v1.test.txt.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    with gzip.open(az / "v1.test.c2591400.txt.gz", "wt") as fh:
        fh.write("\n".join(life_lines) + "\n")
    (az / "flav_map.txt").write_text("1,1.75 b\n2,3.5 g\n")
    (az / "v1.interval_map.txt").write_text("0 0\n300 1\n600 2\n")
    cg = root / "alibaba_v2022_callgraphs"
    cg.mkdir()
    graphs = [_graph([("USER", "a", 1, "http"), ("a", "b", 2, "rpc")], 5, "s1"),
              _graph([("USER", "a", 1, "http"), ("a", "m", 1, "mc")], 5, "s2"),
              _graph([("USER", "a", 1, "http")], 1, "s3")]
    with gzip.open(cg / "alibaba_v2022_callgraphs_A.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(g) for g in graphs) + "\n")
    gpu = root / "alibaba_gpu_v2023"
    gpu.mkdir()
    rows = ["name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,"
            "deletion_time,scheduled_time"]
    for i, life in enumerate(rng.lognormal(6.0, 1.0, 200)):
        rows.append(f"p{i},4000,8192,1,1000,,LS,Running,{i},{i + life:.0f},{i}")
    (gpu / "openb_pod_list_default.csv").write_text("\n".join(rows) + "\n")
    bb = root / "bitbrains"
    bb.mkdir()
    head = ("vm_id,timestamp_s,cpu_cores,cpu_capacity_mhz,cpu_usage_mhz,cpu_usage_pct,"
            "mem_capacity_kb,mem_usage_kb,disk_read_kbps,disk_write_kbps,net_rx_kbps,net_tx_kbps")
    out = [head]
    for vm in range(1, 5):
        level = rng.uniform(0.02, 0.3)
        for j in range(288):
            u = level * math.exp(0.3 * rng.normal())
            m = rng.uniform(0.1, 0.3)
            out.append(f"{vm},{1_000_000_000 + 300 * j},2,1000,{1000 * u:.3f},0,1000,{1000 * m:.3f}"
                       ",0,0,0,0")
    with gzip.open(bb / "bitbrains_rnd_2013-7_vm01-25_first7days.csv.gz", "wt") as fh:
        fh.write("\n".join(out) + "\n")


def test_end_to_end_on_tiny_synthetic_folder(tmp_path: Path, capsys) -> None:
    _write_tiny_data(tmp_path)
    out = tmp_path / "fit.yaml"
    assert ft.main(["--data", str(tmp_path), "--out", str(out), "--quiet"]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc == yaml.safe_load(capsys.readouterr().out)
    w = doc["workload"]
    assert list(w) == ["arrivals", "apps", "containers", "usage", "lifetimes"]
    assert set(w["arrivals"]) == {"daily_amplitude", "peak_hour", "burst_factor", "burst_on_s",
                                  "burst_off_s", "source"}
    assert list(w["apps"]) == ["size_pmf", "star_prob", "chain_prob", "calls_pmf", "data_prob",
                               "source"]
    assert set(w["usage"]) == {"cpu_level_beta", "cpu_sigma_mean", "cpu_sigma_std",
                               "ar1_phi_per_min", "cpu_daily_amp_mean", "mem_level_beta",
                               "mem_growth_per_hour_mean", "mem_growth_per_hour_std", "source"}
    assert set(w["lifetimes"]) == {"median_s", "sigma", "min_s", "max_s", "source"}
    for key in ("size_pmf", "calls_pmf"):
        assert sum(w["apps"][key]) == pytest.approx(1.0, abs=1e-9)
    assert len(w["apps"]["size_pmf"]) == 8
    assert w["apps"]["size_pmf"][:2] == pytest.approx([1 / 3, 2 / 3], abs=1e-3)
    assert w["apps"]["data_prob"] == pytest.approx(1 / 3, abs=1e-3)
    assert w["containers"]["cpu_request_cores"] == [0.25, 0.5]
    assert w["containers"]["mem_gib_per_core"] == [1.75]
    assert w["arrivals"]["peak_hour"] == pytest.approx(12.0, abs=1.5)
    assert w["lifetimes"]["median_s"] == pytest.approx(math.exp(6.0), rel=0.2)
    assert all(isinstance(v["source"], str) and v["source"] for v in w.values())
    # record-only statistics live in the source strings, not as keys
    assert "index of dispersion" in w["arrivals"]["source"]
    assert "real mean depth 0.6667" in w["apps"]["source"]  # sizes 2, 2, 1 -> depths 1, 1, 0
    assert "real mean fan-out 1" in w["apps"]["source"]
    assert "generated mean depth" in w["apps"]["source"]
    assert 0.0 <= w["apps"]["star_prob"] <= 1.0 and 0.0 <= w["apps"]["chain_prob"] <= 1.0
    # every emitted key is a field of the scenario schema, which forbids extra keys
    from hierarchy import scenario as sc

    models = {"arrivals": sc.Arrivals, "apps": sc.Apps, "containers": sc.Containers,
              "usage": sc.Usage, "lifetimes": sc.Lifetimes}
    for group, model in models.items():
        assert set(w[group]) <= set(model.model_fields), group


def test_daily_residual_handles_negative_mean() -> None:
    hour = np.arange(0, 48, 0.5)
    y = -2.0 + 0.3 * np.cos(2 * np.pi * (hour - 5) / 24)
    assert np.abs(ft.daily_residual(hour, y)).max() < 1e-9
