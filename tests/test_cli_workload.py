"""`hierarchy workload convert` through the main command."""

from __future__ import annotations

from pathlib import Path

from hierarchy.cli import main
from hierarchy.traces import read_usage


def test_workload_convert_through_the_hierarchy_command(tmp_path: Path) -> None:
    src = tmp_path / "planetlab"
    src.mkdir()
    (src / "vm-a").write_text("10\n20\n30\n")
    out = tmp_path / "usage.csv"
    assert main(["workload", "convert", "--from", "planetlab", str(src), str(out), "-q"]) == 0
    series = read_usage(out)
    assert list(series) == ["vm-a"]
    assert list(series["vm-a"].t_s) == [0.0, 300.0, 600.0]


def test_workload_without_convert_is_a_usage_error(capsys) -> None:
    assert main(["workload", "nonsense"]) == 2
    assert "hierarchy workload convert" in capsys.readouterr().err
