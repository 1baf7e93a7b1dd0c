"""Trace formats, readers, writers and converters on tiny fixtures written by the tests."""

from __future__ import annotations

import gzip
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hierarchy.traces import (
    ArrivalRow,
    TraceFormatError,
    UsageRow,
    iter_usage_series,
    read_arrivals,
    read_callgraphs,
    read_usage,
    write_arrivals,
    write_callgraphs,
    write_usage,
)
from hierarchy.traces.convert import convert, main

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def raises_at(path: Path, line: int, match: str = ""):  # type: ignore[no-untyped-def]
    """pytest.raises for a TraceFormatError at ``path:line`` whose reason matches ``match``."""

    class _Check:
        def __enter__(self) -> None:
            self.cm = pytest.raises(TraceFormatError, match=match)
            self.info = self.cm.__enter__()

        def __exit__(self, *exc: object) -> bool:
            ok = self.cm.__exit__(*exc)  # type: ignore[arg-type]
            err = self.info.value
            assert Path(err.path) == path and err.line == line, str(err)
            assert str(err).startswith(f"{path}:{line}: ")
            return bool(ok)

    return _Check()


# ------------------------------------------------------------------------------ usage series

USAGE = """container_id,t_s,cpu_cores,mem_gib,net_rx_mbps
a,0,0.5,1.0,2
b,0,1.0,,
a,300,0.25,1.5,
b,300,2,2.5,4
"""


def test_usage_round_trip_and_arrays(tmp_path: Path) -> None:
    src = write(tmp_path / "u.csv", USAGE)
    series = read_usage(src)
    assert list(series) == ["a", "b"]
    a, b = series["a"], series["b"]
    np.testing.assert_array_equal(a.t_s, [0, 300])
    np.testing.assert_array_equal(a.cpu_cores, [0.5, 0.25])
    assert math.isnan(b.mem_gib[0]) and b.mem_gib[1] == 2.5
    assert math.isnan(a.net_rx_mbps[1]) and np.all(np.isnan(a.disk_mbps))
    out = tmp_path / "u2.csv.gz"
    rows = [UsageRow("a", 0.0, 0.5, 1.0), UsageRow("a", 300.0, 0.25, 1.5)]
    assert write_usage(out, rows, optional=()) == 2
    with gzip.open(out, "rt") as fh:
        assert fh.read() == "container_id,t_s,cpu_cores,mem_gib\na,0,0.5,1\na,300,0.25,1.5\n"
    assert [s.container_id for s in iter_usage_series(out)] == ["a"]


@pytest.mark.parametrize("row, line, match", [
    ("a,600,0.5", 4, "expected 5 fields"),
    ("a,600,x,1,", 4, "cpu_cores is not a number"),
    ("a,600,-1,1,", 4, "cpu_cores must be >= 0"),
    (",600,1,1,", 4, "container_id is empty"),
    ("a,0,1,1,", 4, "not after its previous sample"),
])
def test_usage_malformed_rows_name_file_and_line(tmp_path: Path, row: str, line: int,
                                                 match: str) -> None:
    lines = USAGE.splitlines()
    src = write(tmp_path / "bad.csv", "\n".join(lines[:3] + [row] + lines[3:]) + "\n")
    with raises_at(src, line, match):
        read_usage(src)
    stats_src = convert("usage", src, tmp_path / "ok.csv", skip_bad=True)
    assert stats_src.skipped_bad == 1 and stats_src.written == 4
    assert stats_src.examples[0].startswith(f"{src}:{line}:")


def test_usage_bad_header_and_not_grouped(tmp_path: Path) -> None:
    bad = write(tmp_path / "h.csv", "container_id,t_s,cpu_cores,mem_gib,cpu_pct\na,0,1,1,1\n")
    with raises_at(bad, 1, "unknown column 'cpu_pct'"):
        read_usage(bad)
    src = write(tmp_path / "u.csv", USAGE)
    with pytest.raises(TraceFormatError, match="not grouped"):
        list(iter_usage_series(src))


def test_failed_conversion_leaves_no_output(tmp_path: Path) -> None:
    src = write(tmp_path / "bad.csv", USAGE + "a,1,oops,1,\n")
    dst = tmp_path / "out.csv"
    with pytest.raises(TraceFormatError):
        convert("usage", src, dst)
    assert not dst.exists() and not list(tmp_path.glob(".out.csv*"))


# ------------------------------------------------------------------------------- call graphs

GRAPH = {"app": "shop", "nodes": ["USER", {"node": "front"}, {"node": "db", "label": "database"}],
         "edges": [{"source": "USER", "target": "front", "weight": 1, "rpctype": "http"},
                   {"source": "front", "target": "db", "weight": 2.5, "bytes": 100}]}


def test_callgraph_round_trip_and_adjacency(tmp_path: Path) -> None:
    src = write(tmp_path / "g.jsonl.gz", json.dumps(GRAPH) + "\n\n" + json.dumps(GRAPH) + "\n")
    graphs = read_callgraphs(src)
    assert len(graphs) == 2
    g = graphs[0]
    assert g.nodes == ("USER", "front", "db") and g.labels == ("", "", "database")
    assert g.containers == ("front", "db")
    adj = g.adjacency()
    assert adj[0, 1] == 1 and adj[1, 2] == 2.5 and adj.sum() == 3.5
    assert g.rpctype == ("http", "") and math.isnan(g.bytes_per_call[0])
    out = tmp_path / "g2.jsonl"
    write_callgraphs(out, graphs)
    again = read_callgraphs(out)
    assert again[0].to_record() == g.to_record()


@pytest.mark.parametrize("text, match", [
    ("{not json", "invalid call graph"),
    (json.dumps({"nodes": ["a"], "edges": [{"source": "a", "target": "b", "weight": 1}]}),
     "target 'b' is not in 'nodes'"),
    (json.dumps({"nodes": ["a", "b"], "edges": [{"source": "a", "target": "b", "weight": 0}]}),
     "weight must be > 0"),
    (json.dumps({"nodes": ["a"]}), "'nodes' and 'edges' must both be lists"),
])
def test_callgraph_malformed_lines(tmp_path: Path, text: str, match: str) -> None:
    src = write(tmp_path / "g.jsonl", json.dumps(GRAPH) + "\n" + text + "\n")
    with raises_at(src, 2, match):
        read_callgraphs(src)
    st = convert("callgraphs", src, tmp_path / "ok.jsonl", skip_bad=True)
    assert (st.skipped_bad, st.written) == (1, 1)


# ---------------------------------------------------------------------------------- arrivals


def test_arrivals_round_trip_sorted(tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    write_arrivals(out, [ArrivalRow(10, 1, 2, 5, "x", "g"), ArrivalRow(0, 2, 4),
                         ArrivalRow(10, 0.5, 1, math.nan, "z")])
    arr = read_arrivals(out)
    np.testing.assert_array_equal(arr.t_s, [0, 10, 10])
    assert arr.ids == ("", "x", "z") and arr.groups == ("", "g", "")
    assert arr.lifetime_s[1] == 5 and math.isnan(arr.lifetime_s[0])
    bad = write(tmp_path / "b.csv", "t_s,cpu_cores,mem_gib\n0,1,1\n5,-2,1\n")
    with raises_at(bad, 3, "cpu_cores must be >= 0"):
        read_arrivals(bad)


# --------------------------------------------------------------------------------- bitbrains

BB_JOINED = (
    "vm_id,timestamp_s,cpu_cores,cpu_capacity_mhz,cpu_usage_mhz,cpu_usage_pct,mem_capacity_kb,"
    "mem_usage_kb,disk_read_kbps,disk_write_kbps,net_rx_kbps,net_tx_kbps\n"
    "7,1000,0,0,0,0,0,0,0,0,0,0\n"
    "7,1300,2,5000,1250,25,2097152,1048576,100,25,1000,0\n"
    "7,1600,2,5000,2500,50,2097152,524288,0,0,0,0\n")
BB_HEADER = ("Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\t"
             "CPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\t"
             "Disk read throughput [KB/s];\tDisk write throughput [KB/s];\t"
             "Network received throughput [KB/s];\tNetwork transmitted throughput [KB/s]\n")


def bb_line(*vals: object) -> str:
    """One row of an original per-VM file (disk and network zero)."""
    return ";\t".join(str(v) for v in (*vals, 0, 0, 0, 0)) + "\n"


def test_bitbrains_joined_mapping(tmp_path: Path) -> None:
    src = write(tmp_path / "bb.csv.gz", BB_JOINED)
    st = convert("bitbrains", src, tmp_path / "u.csv")
    assert st.dropped["vm not provisioned (0 cores, 0 MHz)"] == 1
    s = read_usage(tmp_path / "u.csv")["7"]
    np.testing.assert_allclose(s.cpu_cores, [0.5, 1.0])        # MHz / (MHz per core)
    np.testing.assert_allclose(s.mem_gib, [1.0, 0.5])          # KiB -> GiB
    np.testing.assert_allclose(s.net_rx_mbps, [8.192, 0.0])    # KiB/s -> Mbit/s
    np.testing.assert_allclose(s.disk_mbps, [125 * 0.008192, 0.0])
    np.testing.assert_allclose(s.cpu_request_cores, [2, 2])
    np.testing.assert_allclose(s.mem_request_gib, [2, 2])


def test_bitbrains_original_folder_and_bad_row(tmp_path: Path) -> None:
    d = tmp_path / "rnd"
    write(d / "2.csv", BB_HEADER + bb_line(1376314846, 1, 2000, 500, 25, 1024, 1024)
          + bb_line(1376315146000, 1, 2000, 1000, 50, 1024, 1024))
    write(d / "10.csv", BB_HEADER + bb_line(1376314846, 1, 2000, 2000, 100, 1024, 0))
    convert("bitbrains", d, tmp_path / "u.csv", id_prefix="bb-")
    series = read_usage(tmp_path / "u.csv")
    assert list(series) == ["bb-2", "bb-10"]                    # natural file order
    np.testing.assert_allclose(series["bb-2"].t_s, [1376314846, 1376315146])  # ms detected
    np.testing.assert_allclose(series["bb-2"].cpu_cores, [0.25, 0.5])
    bad = write(d / "11.csv", BB_HEADER + bb_line(1376314846, 1, 2000, "NaN?", 1, 1, 1))
    with raises_at(bad, 2, "CPU usage"):
        convert("bitbrains", bad, tmp_path / "x.csv")


# ------------------------------------------------------------------------------ alibaba 2018

ALI_USAGE = ("c_1,m_1,10,50,20,1,1,1,5,5,1\n"
             "c_1,m_1,20,-1,20,1,1,1,5,5,1\n"
             "c_1,m_1,30,250,101,1,1,1,5,5,1\n"
             "c_1,m_1,40,150,40,1,1,1,5,5,1\n"
             "c_2,m_1,10,100,10,1,1,1,5,5,1\n")
ALI_META = ("c_1,m_1,0,app_1,started,400,400,3.13\n"
            "c_1,m_1,5,app_1,started,200,400,1.56\n"
            "c_2,m_1,0,app_1,started,100,100,1.56\n")


def test_alibaba2018_mapping_and_invalid_values(tmp_path: Path) -> None:
    src = write(tmp_path / "container_usage.csv", ALI_USAGE)
    write(tmp_path / "container_meta.csv", ALI_META)
    st = convert("alibaba2018", src, tmp_path / "u.csv", machine_mem_gib=100.0)
    assert st.dropped["invalid cpu/mem value (-1, 101 or empty)"] == 2
    s = read_usage(tmp_path / "u.csv")
    c1 = s["c_1"]
    np.testing.assert_allclose(c1.t_s, [10, 40])
    np.testing.assert_allclose(c1.cpu_cores, [0.5, 1.5])            # 100 = one core
    np.testing.assert_allclose(c1.mem_gib, [0.2 * 1.56, 0.4 * 1.56])  # latest meta row
    np.testing.assert_allclose(c1.cpu_request_cores, [2, 2])
    st = convert("alibaba2018", src, tmp_path / "r.csv", cpu_basis="request")
    r = read_usage(tmp_path / "r.csv")
    np.testing.assert_allclose(r["c_1"].cpu_cores, [1.0, 3.0])     # fraction of 2 cores
    assert np.all(np.isnan(r["c_1"].mem_gib)) and any("machine_mem_gib" in n for n in st.notes)


def test_alibaba2018_malformed(tmp_path: Path) -> None:
    src = write(tmp_path / "container_usage.csv", ALI_USAGE + "c_3,m_1,10,5\n")
    with raises_at(src, 6, "expected 11 fields"):
        convert("alibaba2018", src, tmp_path / "u.csv", meta=write(tmp_path / "m.csv", ALI_META))


# --------------------------------------------------------------------------------- planetlab


def test_planetlab_folder(tmp_path: Path) -> None:
    d = tmp_path / "20110303"
    write(d / "vm_a", "10\n20\n\n30\n")
    write(d / "vm_b", "5\n")
    convert("planetlab", d, tmp_path / "u.csv", cores_per_vm=2.0)
    s = read_usage(tmp_path / "u.csv")
    np.testing.assert_allclose(s["vm_a"].t_s, [0, 300, 600])
    np.testing.assert_allclose(s["vm_a"].cpu_cores, [0.2, 0.4, 0.6])
    assert np.all(np.isnan(s["vm_a"].mem_gib))
    write(d / "vm_c", "10\n250\n30\n")
    with raises_at(d / "vm_c", 2, "must be <= 100"):
        convert("planetlab", d / "vm_c", tmp_path / "x.csv")
    st = convert("planetlab", d / "vm_c", tmp_path / "y.csv", skip_bad=True)
    assert st.skipped_bad == 1
    np.testing.assert_allclose(read_usage(tmp_path / "y.csv")["vm_c"].t_s, [0, 600])


# ------------------------------------------------------------------- alibaba microservices

CG21 = """,traceid,timestamp,rpcid,um,rpctype,dm,interface,rt
0,T1,100,0.1,(?),http,A,i,-10
1,T1,101,0.1.1,A,rpc,B,i,5
2,T1,101,0.1.1,A,rpc,(?),i,-5
3,T1,102,0.1.2,A,mc,C,i,1
4,T1,103,0.1.3,A,mc,C,i,1
5,T1,104,0.1.1.1,(?),db,D,i,1
6,T1,105,0.1.4,A,rpc,(?),i,1
7,T1,105,0.1.5,A,userDefined,A,i,1
8,T2,200,0.1.1,X,rpc,Y,i,1
"""


def test_alibaba2021_rebuilds_graphs_from_rpcid(tmp_path: Path) -> None:
    src = write(tmp_path / "Callgraph.csv", CG21)
    st = convert("alibaba2021-callgraph", src, tmp_path / "g.jsonl")
    g1, g2 = read_callgraphs(tmp_path / "g.jsonl")
    assert g1.app == "T1" and g1.service == "A"
    edges = {(g1.nodes[s], g1.nodes[t]): w
             for s, t, w in zip(g1.src, g1.dst, g1.weight, strict=True)}
    # both rows of 0.1.1 merge into one call; D's caller comes from 0.1.1's callee
    assert edges == {("USER", "A"): 1, ("A", "B"): 1, ("A", "C"): 2, ("B", "D"): 1}
    assert st.dropped["call with unknown callee"] == 1
    assert st.dropped["call of a service to itself (local call)"] == 1
    assert g2.app == "T2" and ("USER", "X") in {(g2.nodes[s], g2.nodes[t])
                                                for s, t in zip(g2.src, g2.dst, strict=True)}
    assert any("lacked their root" in n for n in st.notes)


def test_alibaba2021_bounded_buffer_and_bad_rpcid(tmp_path: Path) -> None:
    src = write(tmp_path / "Callgraph.csv", CG21)
    st = convert("alibaba2021-callgraph", src, tmp_path / "g.jsonl", max_open=1, idle_ms=1.0)
    assert st.written == 2
    bad = write(tmp_path / "bad.csv", CG21 + "9,T3,300,0.x,A,rpc,B,i,1\n")
    with raises_at(bad, 11, "rpcid"):
        convert("alibaba2021-callgraph", bad, tmp_path / "h.jsonl")


def test_alibaba2022_tidies_graphs(tmp_path: Path) -> None:
    rec = {"service": "S", "graph_file": "graph1.json", "num": 7,
           "nodes": [{"node": "a", "label": "normal"}, {"node": "USER", "label": "relay"},
                     {"node": "a", "label": "normal"}],
           "edges": [{"source": "USER", "target": "a", "weight": 1, "rpctype": "http"},
                     {"source": "a", "target": "m", "weight": 3, "rpctype": "mc"},
                     {"source": "a", "target": "m", "weight": 1, "rpctype": "mc"},
                     {"source": "a", "target": "a", "weight": 1, "rpctype": "rpc"}]}
    src = write(tmp_path / "cg.jsonl.gz", json.dumps(rec) + "\n")
    st = convert("alibaba2022-callgraph", src, tmp_path / "g.jsonl")
    (g,) = read_callgraphs(tmp_path / "g.jsonl")
    assert g.app == "S/graph1.json" and g.num == 7 and g.extra["graph_file"] == "graph1.json"
    assert g.nodes == ("a", "USER", "m") and list(g.weight) == [1, 4]
    assert st.dropped["self-loop edge"] == 1 and st.dropped["parallel edge (weights summed)"] == 1
    assert st.dropped["duplicate node entry"] == 1


# ------------------------------------------------------------------------- arrival sources


def azure_dir(tmp_path: Path) -> Path:
    d = tmp_path / "azure"
    write(d / "flav_map.txt", "1,0.75 a\n2,3.5 g\n")
    write(d / "v1.interval_map.txt", "0 0\n300 1\n600 2\n900 2\n")
    write(d / "v1.test.txt.gz", "600 a,a,|,g,|,\n900 g,\n")
    write(d / "v1.test.c99.txt.gz", "600 U0,U2,|,C1,|,\n900 U1,\n")
    return d


def test_azure_v1_mapping(tmp_path: Path) -> None:
    d = azure_dir(tmp_path)
    st = convert("azure-v1", d, tmp_path / "a.csv", scale=0.5)
    arr = read_arrivals(tmp_path / "a.csv")
    assert st.written == 4
    np.testing.assert_array_equal(arr.t_s, [600, 600, 600, 900])
    np.testing.assert_allclose(arr.cpu_cores, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(arr.mem_gib, [0.375, 0.375, 1.75, 1.75])
    # bin 0 covers [0, 300): 150; bin 2 covers [600, 1200): 900; C (running at the cut): unknown
    np.testing.assert_allclose(arr.lifetime_s[:2], [150, 900])
    assert math.isnan(arr.lifetime_s[2]) and arr.lifetime_s[3] == 450
    assert arr.groups == ("600-0", "600-0", "600-1", "900-0")


def test_azure_v1_bad_rows(tmp_path: Path) -> None:
    d = azure_dir(tmp_path)
    write(d / "v1.test.txt.gz", "600 a,a,|,g,|,\n900 z,\n")
    with raises_at(d / "v1.test.txt.gz", 2, "unknown flavour 'z'"):
        convert("azure-v1", d / "v1.test.txt.gz", tmp_path / "a.csv")
    write(d / "v1.test.txt.gz", "600 a,a,|,g,|,\n900 g,g,\n")
    with raises_at(d / "v1.test.c99.txt.gz", 2, "does not match"):
        convert("azure-v1", d, tmp_path / "a.csv")


def test_alibaba2023_pods(tmp_path: Path) -> None:
    src = write(tmp_path / "openb_pod_list_x.csv",
                "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
                "creation_time,deletion_time,scheduled_time\n"
                "p0,8000,30720,0,0,,BE,Running,100,400,150\n"
                "p1,500,1024,1,1000,V100,LS,Pending,50,90,\n"
                "p2,oops,1024,0,0,,LS,Running,50,90,50\n")
    with raises_at(src, 4, "cpu_milli is not a number"):
        convert("alibaba2023-pods", src, tmp_path / "a.csv")
    st = convert("alibaba2023-pods", src, tmp_path / "a.csv", skip_bad=True, scale=0.25)
    arr = read_arrivals(tmp_path / "a.csv")
    assert st.skipped_bad == 1 and arr.ids == ("p1", "p0")
    np.testing.assert_allclose(arr.cpu_cores, [0.125, 2.0])
    np.testing.assert_allclose(arr.mem_gib, [0.25, 7.5])
    assert math.isnan(arr.lifetime_s[0]) and arr.lifetime_s[1] == 250
    st = convert("alibaba2023-pods", src, tmp_path / "b.csv", skip_bad=True, drop_gpu_pods=True)
    assert read_arrivals(tmp_path / "b.csv").ids == ("p0",)


# ----------------------------------------------------------------------------- convert / CLI


def test_convert_rejects_unknown_format_and_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        convert("nope", tmp_path, tmp_path / "x")
    with pytest.raises(ValueError, match="takes no option"):
        convert("planetlab", tmp_path, tmp_path / "x", machine_mem_gib=1.0)


def test_cli_help_summary_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        main(["--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert "--from FORMAT" in out and "alibaba2021-callgraph" in out and "--skip-bad" in out
    src = write(tmp_path / "bad.csv", USAGE + "a,1,oops,1,\n")
    assert main(["--from", "usage", str(src), str(tmp_path / "o.csv")]) == 2
    assert f"{src}:6:" in capsys.readouterr().err
    assert main(["--from", "usage", str(src), str(tmp_path / "o.csv"), "--skip-bad"]) == 0
    assert "malformed rows skipped: 1" in capsys.readouterr().out


def test_shipped_slices_load() -> None:
    d = REPO / "data" / "traces"
    usage = read_usage(d / "bitbrains_rnd_vm01-25_2days.csv.gz")
    assert len(usage) == 25 and all(len(s) > 100 for s in usage.values())
    graphs = read_callgraphs(d / "alibaba2022_callgraphs_40.jsonl")
    assert len(graphs) == 40 and all(1 <= len(g.containers) <= 8 for g in graphs)
    arr = read_arrivals(d / "azure_v1_arrivals_6h.csv.gz")
    assert arr.t_s[0] == 0 and arr.t_s[-1] < 6 * 3600 and len(arr) > 1000


def test_packages_import_without_heavy_dependencies() -> None:
    code = ("import sys, hierarchy.traces.convert, hierarchy.features; "
            "bad = [m for m in ('scipy', 'pandas', 'torch', 'sim') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
