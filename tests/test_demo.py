"""`hierarchy demo` end to end: a real Mosquitto, the cloud agent, two edge agents, a workload."""

from __future__ import annotations

import io
import threading

import pytest

from hierarchy.broker import find_mosquitto
from hierarchy.cli import main
from hierarchy.demo import DemoOptions, run_demo

needs_mosquitto = pytest.mark.skipif(
    find_mosquitto() is None,
    reason="mosquitto is not installed (apt-get install mosquitto, or set HIERARCHY_MOSQUITTO)")


@needs_mosquitto
def test_demo_every_request_gets_exactly_one_decision() -> None:
    out = io.StringIO()
    report = run_demo(DemoOptions(scenario="small", sites=2, duration_s=3.0, rate_rps=40.0,
                                  drain_s=8.0), out=out)
    text = out.getvalue()
    assert report.requests > 20
    assert report.undecided == [] and report.duplicated == []
    assert not report.interrupted
    total = report.rows[-1]
    assert [r.site for r in report.rows] == ["edge-0", "edge-1", "total"]
    assert total.requests == report.requests
    assert total.placed + total.offloaded + total.rejected == report.requests
    assert total.p50_ms is not None and total.p99_ms is not None
    assert report.rest_url in text
    assert "every one of the" in text and "exactly one final decision" in text
    assert any(line.startswith("site ") and "no decision" in line for line in text.splitlines())
    # Everything it started is gone: agent threads, the REST server.
    names = {t.name for t in threading.enumerate()}
    assert not any(n.startswith(("edge-agent-", "demo-cloud-rest", "cloud-agent"))
                   for n in names), names


def test_demo_refuses_more_sites_than_the_scenario_has(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "small", "--sites", "9", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "--sites 9" in err and "3 edge sites" in err
