"""`hierarchy features IN --out DIR` (hierarchy.features.report) through the main command."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hierarchy.cli import main
from hierarchy.features import CLASS_NAMES, FEATURE_NAMES

BITBRAINS = Path(__file__).resolve().parents[1] / "data" / "traces" / \
    "bitbrains_rnd_vm01-25_2days.csv.gz"


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _check_outputs(out: Path, n_containers: int) -> dict[str, int]:
    feats = _rows(out / "features.csv")
    assert feats[0] == ["container_id", "class", *FEATURE_NAMES]
    assert len(feats) == 1 + n_containers
    assert all(r[1] in CLASS_NAMES and len(r) == 2 + len(FEATURE_NAMES) for r in feats[1:])
    classes = _rows(out / "classes.csv")
    assert classes[0] == ["class", "count"]
    assert [r[0] for r in classes[1:]] == list(CLASS_NAMES)
    counts = {r[0]: int(r[1]) for r in classes[1:]}
    assert sum(counts.values()) == n_containers
    for name in CLASS_NAMES:  # classes.csv agrees with features.csv
        assert counts[name] == sum(r[1] == name for r in feats[1:])
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == sorted(f"class_{c}.png" for c, n in counts.items() if n)
    assert all((out / "plots" / p).stat().st_size > 1000 for p in pngs)
    return counts


def test_features_on_bitbrains_slice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "feat"
    assert main(["features", str(BITBRAINS), "--out", str(out), "--limit", "8"]) == 0
    _check_outputs(out, 8)
    printed = capsys.readouterr().out
    assert "| class | containers | share |" in printed and "| total | 8 |" in printed


def test_features_on_converted_planetlab(tmp_path: Path) -> None:
    src = tmp_path / "planetlab"
    src.mkdir()
    (src / "vm-flat").write_text("".join(f"{v}\n" for v in [5] * 48))
    (src / "vm-wave").write_text("".join(f"{10 + 60 * (i % 12 < 3)}\n" for i in range(48)))
    (src / "vm-bad").write_text("10\n20\nnot-a-number\n30\n")
    out = tmp_path / "feat"
    # A malformed row stops it (one line, exit 2) unless --skip-bad.
    assert main(["features", str(src), "--format", "planetlab", "--out", str(out)]) == 2
    assert main(["features", str(src), "--format", "planetlab", "--out", str(out),
                 "--skip-bad"]) == 0
    _check_outputs(out, 3)
    ids = sorted(r[0] for r in _rows(out / "features.csv")[1:])
    assert ids == ["vm-bad", "vm-flat", "vm-wave"]


@pytest.mark.parametrize("args", [
    ["--format", "no-such-format"],
    ["--format", "azure-v1"],  # a converter, but not of usage series
])
def test_bad_format_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     args: list[str]) -> None:
    assert main(["features", str(BITBRAINS), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hierarchy: error: unknown --format")


def test_unreadable_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["features", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hierarchy: error: cannot read")
    bad = tmp_path / "bad.csv"
    bad.write_text("container_id,t_s,cpu_cores,mem_gib\na,0,0.5,1\na,300,oops,1\n")
    assert main(["features", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--skip-bad" in err[0]
