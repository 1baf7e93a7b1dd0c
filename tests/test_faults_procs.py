"""Faults on a real edge agent process: killed with SIGKILL mid-stream and restarted on its
store, and its link to the broker cut and restored. A real Mosquitto, a cloud agent, bounded
in count and time.

The sender is an orchestrator as docs/protocol.md asks: a request with no decision after a
while is sent again with the same id. The guarantees checked:
- every request gets a final decision (none lost);
- no request id gets two different decisions (a repeat is the same decision, byte for byte);
- the agent's store holds exactly the decisions that were published, and no offload is left
  waiting.
The figures are printed (pytest -s) and in the assertion messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_procs import EdgeProcess, netns_available
from mqtt_fixtures import Broker, Probe, broker_fixture, wait  # noqa: F401
from test_faults import FAST_RECONNECT, SCENARIO, Figures, Sender, figures

from cloud_agent.agent import CloudAgent
from cloud_agent.config import CloudConfig
from edge_agent.store import Store
from hierarchy import protocol as p


def start_cloud(broker: Broker) -> CloudAgent:
    cloud = CloudAgent(CloudConfig(broker=broker.url, scenario=SCENARIO, advertise=False,
                                   status_interval_s=0.5, forward_timeout_s=2.0,
                                   mqtt=FAST_RECONNECT))
    cloud.start()
    wait(lambda: cloud.connected, 10, "the cloud agent")
    return cloud


@pytest.fixture
def cloud(broker: Broker) -> Iterator[CloudAgent]:
    agent = start_cloud(broker)
    try:
        yield agent
    finally:
        agent.stop()


class StatusWatch:
    """Every status a site's agent (or the broker, its last will) published, in order."""

    def __init__(self, broker: Broker, sites: tuple[str, ...]) -> None:
        self.probe = Probe(broker, [p.status_topic(s) for s in sites])

    def states(self, site: str) -> list[str]:
        return [json.loads(m)["state"] for m in self.probe.messages[p.status_topic(site)] if m]

    def wait_state(self, site: str, state: str, after: int, timeout_s: float) -> int:
        """Wait for `state` among the statuses after the first `after`; its index."""
        def seen() -> bool:
            return state in self.states(site)[after:]

        self.probe.wait_until(seen, timeout_s, f"{site} {state}")
        return after + self.states(site)[after:].index(state)

    def close(self) -> None:
        self.probe.close()


def stream(sender: Sender, sites: tuple[str, ...], n: int, rate_per_s: float,
           faults: Callable[[], None], prefix: str) -> None:
    """Send `n` requests round-robin over `sites` at `rate_per_s` (short-lived; every 7th too
    big for any edge node: offloaded), while `faults` runs in a thread; resend what is overdue."""
    errors: list[BaseException] = []

    def run_faults() -> None:
        try:
            faults()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    script = threading.Thread(target=run_faults, daemon=True)
    script.start()
    sender.send_paced(n, rate_per_s, lambda i: (sites[i % len(sites)], f"{prefix}-{i}",
                                                0.1 if i % 7 else 6.0, 0.3), retry_every=50)
    script.join(60)
    assert not script.is_alive(), "the fault script did not finish"
    if errors:
        raise errors[0]


def check_store(edge: EdgeProcess, got: dict[str, list[bytes]], ids: set[str]) -> None:
    """The stopped agent's store holds, for each id, exactly the decision it published, and
    no offload waits any more."""
    store = Store(edge.store)
    try:
        mismatched = [rid for rid in ids if store.decision(rid) != got[rid][0]]
        assert not mismatched, f"store and published decisions differ for {mismatched[:5]}"
        assert store.pending_count() == 0, "offloads still waiting in the store"
    finally:
        store.close()


def report(what: str, result: Figures, extra: str = "") -> None:
    print(f"\n{what}: {result}{extra}")


# --- an edge agent killed with SIGKILL mid-stream -------------------------------------------


def run_with_edge_kills(broker: Broker, tmp_path: Path, n: int, rate_per_s: float,
                        kills: int) -> None:
    site = "edge-0"
    edge = EdgeProcess(site, broker.host, broker.port, tmp_path, scenario=SCENARIO)
    status = StatusWatch(broker, (site,))
    sender = Sender(broker, retry_s=3.0, sites=(site,))
    at_kill: list[int] = []  # requests decided when each kill came
    sent_at_kill: list[int] = []
    try:
        edge.start()
        status.wait_state(site, "online", 0, 30)

        def faults() -> None:
            period = n / rate_per_s / (kills + 1)
            for j in range(kills):
                time.sleep(period if j == 0 else 0.2 + 0.1 * j)
                if j:  # the restarted process must be deciding again: a kill mid-stream
                    wait(lambda: len(sender.decisions()) >= at_kill[-1] + 20, 30,
                         "the restarted agent to decide", 0.05)
                edge.kill()
                at_kill.append(len(sender.decisions()))
                sent_at_kill.append(len(sender.sent_at))
                edge.start()  # at once, on the same store

        stream(sender, (site,), n, rate_per_s, faults, "kill")
        got = sender.settle(timeout_s=60)
        result = figures(sender, got)
        assert result.lost == 0, f"{result}\n{edge.log_tail()}"
        # The last process answers requests its killed predecessors decided from the store:
        # the same decision, byte for byte, nothing decided anew.
        early = [f"kill-{i}" for i in range(min(100, at_kill[0]))]
        for rid in early:
            sender.send(site, rid, cpu=0.3)  # (the payload does not matter: the id does)
        sender.probe.wait_for(p.decisions_topic(site), result.decided + result.repeats
                              + len(early), timeout_s=20)
        got = sender.decisions()
        result = figures(sender, got)
        outcomes = Counter(json.loads(b[0])["outcome"] for b in got.values())
        report(f"edge agent SIGKILLed {kills} times (with {at_kill} of {n} decided), {n} "
               f"requests, then {len(early)} of the first asked again", result,
               f"; outcomes {dict(outcomes)}")
        assert result.lost == 0 and result.conflicting == 0, str(result)
        # Each kill came after the process before it had decided something of its own.
        assert len(at_kill) == kills and 0 < at_kill[0] and at_kill == sorted(set(at_kill))
        assert max(sent_at_kill) < n, f"a kill came after the stream: {sent_at_kill}"
        assert edge.starts == kills + 1 and edge.stop() == 0, edge.log_tail()
        check_store(edge, got, set(sender.sent_at))
    finally:
        sender.probe.close()
        status.close()
        edge.close()


def test_an_edge_agent_killed_mid_stream_resumes_from_its_store(
        broker: Broker, cloud: CloudAgent, tmp_path: Path) -> None:
    run_with_edge_kills(broker, tmp_path, n=1200, rate_per_s=200, kills=2)


@pytest.mark.slow
def test_an_edge_agent_killed_five_times_in_a_faster_stream(
        broker: Broker, cloud: CloudAgent, tmp_path: Path) -> None:
    run_with_edge_kills(broker, tmp_path, n=6000, rate_per_s=500, kills=5)


# --- a link cut between one site and the broker -----------------------------------------------


def test_a_site_cut_off_from_the_broker_and_reconnected_loses_and_doubles_nothing(
        broker: Broker, cloud: CloudAgent, tmp_path: Path) -> None:
    netns = netns_available()
    how = ("its network namespace's loopback taken down" if netns
           else "the relay between it and the broker stopped")
    cut_site, other = "edge-0", "edge-1"
    sites = (cut_site, other)
    edges = {
        cut_site: EdgeProcess(cut_site, broker.host, broker.port, tmp_path, scenario=SCENARIO,
                              relay=not netns, netns=netns),
        other: EdgeProcess(other, broker.host, broker.port, tmp_path, scenario=SCENARIO),
    }
    status = StatusWatch(broker, sites)
    sender = Sender(broker, retry_s=3.0, sites=sites)
    timeline: dict[str, float] = {}
    decided_during_cut: dict[str, int] = {}
    try:
        for edge in edges.values():
            edge.start()
        for site in sites:
            status.wait_state(site, "online", 0, 30)
        n, rate = 3000, 150.0  # 20 s: requests before, during and after the cut
        t0 = time.monotonic()

        def count(site: str) -> int:
            return sum(1 for b in sender.decisions().values()
                       if json.loads(b[0])["site"] == site)

        def faults() -> None:
            time.sleep(3.0)
            before = len(status.states(cut_site))
            edges[cut_site].cut()
            timeline["cut"] = time.monotonic() - t0
            time.sleep(0.5)  # what was already past the cut arrives
            at_cut = {s: count(s) for s in sites}
            # Until the broker itself sees the site gone (its keepalive: 1.5 x 5 s) and says
            # so with the site's last will; then a little longer.
            status.wait_state(cut_site, "offline", before, 30)
            timeline["broker saw it"] = time.monotonic() - t0
            time.sleep(1.0)
            decided_during_cut.update({s: count(s) - at_cut[s] for s in sites})
            after = len(status.states(cut_site))
            edges[cut_site].restore()
            timeline["restored"] = time.monotonic() - t0
            status.wait_state(cut_site, "online", after, 30)
            timeline["back online"] = time.monotonic() - t0

        stream(sender, sites, n, rate, faults, "cut")
        got = sender.settle(timeout_s=60)
        result = figures(sender, got)
        per_site = {s: sum(1 for rid in got if int(rid.rsplit("-", 1)[1]) % 2 == i)
                    for i, s in enumerate(sites)}
        report(f"link cut ({how}), {n} requests over {len(sites)} sites", result,
               f"; timeline s {({k: round(v, 1) for k, v in timeline.items()})}; decided "
               f"during the cut {decided_during_cut}; decided per site {per_site}")
        assert result.lost == 0, f"{result}\n{edges[cut_site].log_tail()}"
        assert result.conflicting == 0, str(result)
        # The cut was real: the cut site decided nothing the sender could see while the other
        # went on deciding.
        assert decided_during_cut[cut_site] == 0 and decided_during_cut[other] > 0
        for site, edge in edges.items():
            assert edge.stop() == 0, edge.log_tail()
            check_store(edge, got, {rid for rid in sender.sent_at
                                    if int(rid.rsplit("-", 1)[1]) % 2 == sites.index(site)})
    finally:
        sender.probe.close()
        status.close()
        for edge in edges.values():
            edge.close()
