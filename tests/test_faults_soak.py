"""A soak run: a stream of requests through one edge agent process (a real Mosquitto), its
resident memory (VmRSS) measured after a warm-up and at the end.

The bound: the agent's memory may grow by at most `RSS_GROWTH_BOUND_MIB` over the run. What
it keeps per request lives in its SQLite store (on disk; SQLite's page cache is bounded),
so anything that grows in memory with the number of requests is a leak. The sender keeps at
most `WINDOW` requests undecided, as an orchestrator with a bounded queue would, and sends a
request again (same id) when no decision came within `RETRY_S`. The figures are printed
(pytest -s) and in the assertion messages.

`test_soak_100k` (marked slow) is the run of issue #7: 100,000 requests. The suite also runs
`test_soak_10k`, the same with 10,000.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from fault_procs import EdgeProcess
from mqtt_fixtures import Broker, broker_fixture, wait  # noqa: F401

from hierarchy import protocol as p
from hierarchy.transport import BrokerConfig, Incoming, MqttTransport

SITE = "edge-0"
WARM_UP = 2_000
WINDOW = 2_000
RETRY_S = 10.0
RSS_GROWTH_BOUND_MIB = 50.0


def request(rid: str) -> bytes:
    # Tiny and short-lived: even a whole window of them (2,000 x 0.002 cores) fits on one node
    # of the site, so every one is placed locally (there is no cloud here to take offloads).
    return json.dumps({"schema": 1, "request_id": rid, "app": "soak", "container": "c",
                       "cpu_cores": 0.002, "mem_gib": 0.002, "slo_ms": 200.0,
                       "lifetime_s": 0.2}).encode()


class Soaker:
    """Sends requests to one site and keeps, per request id, only what the check needs: the
    first decision and whether a later one differed (nothing else, so the sender's own
    memory stays flat over 100,000 requests)."""

    def __init__(self, broker: Broker) -> None:
        self._cond = threading.Condition()
        self.first: dict[str, bytes] = {}
        self.conflicting: set[str] = set()
        self.repeats = 0
        self.outcomes: Counter[str] = Counter()
        self.outstanding: dict[str, float] = {}
        self.sent = 0
        self.resends = 0
        self.transport = MqttTransport(
            BrokerConfig.from_url(broker.url), client_id=f"soak-{uuid.uuid4().hex[:8]}",
            on_message=self._on_message, subscriptions=[(p.decisions_topic(SITE), 1),
                                                        (p.status_topic(SITE), 1)])
        self.online = threading.Event()
        self.transport.start()
        if not self.transport.wait_connected(5.0):
            raise TimeoutError("the sender could not connect")
        time.sleep(0.2)  # the SUBACK

    def _on_message(self, msg: Incoming) -> None:
        if msg.topic == p.status_topic(SITE):
            if msg.payload and json.loads(msg.payload)["state"] == "online":
                self.online.set()
            return
        decision = json.loads(msg.payload)
        rid = decision["request_id"]
        with self._cond:
            earlier = self.first.get(rid)
            if earlier is None:
                self.first[rid] = msg.payload
                self.outcomes[decision["outcome"]] += 1
                self.outstanding.pop(rid, None)
                if len(self.outstanding) <= WINDOW // 2:  # wake the sender now and then only
                    self._cond.notify_all()
            else:
                self.repeats += 1
                if earlier != msg.payload:
                    self.conflicting.add(rid)

    def _resend_overdue(self) -> None:
        now = time.monotonic()
        with self._cond:
            overdue = [rid for rid, at in self.outstanding.items() if now - at > RETRY_S]
            for rid in overdue:
                self.outstanding[rid] = now
        for rid in overdue:
            self.resends += 1
            self.transport.publish(p.requests_topic(SITE), request(rid), qos=1)

    def run(self, prefix: str, n: int, timeout_s: float) -> None:
        """Send `n` requests, at most WINDOW undecided at a time; wait for all decisions."""
        deadline = time.monotonic() + timeout_s
        next_scan = time.monotonic() + 1.0
        i = 0
        while i < n:
            rid = f"{prefix}-{i}"
            with self._cond:
                full = len(self.outstanding) >= WINDOW
                if full:  # until half the window is free
                    self._cond.wait(0.5)
            if full:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(self.first)} decided of {self.sent} sent")
                if time.monotonic() > next_scan:
                    next_scan = time.monotonic() + 1.0
                    self._resend_overdue()
                continue
            with self._cond:
                self.outstanding[rid] = time.monotonic()
            self.transport.publish(p.requests_topic(SITE), request(rid), qos=1)
            self.sent += 1
            i += 1
            if time.monotonic() > next_scan:
                next_scan = time.monotonic() + 1.0
                self._resend_overdue()
        while True:
            with self._cond:
                if not self.outstanding:
                    return
                self._cond.wait(0.5)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.first)} decided of {self.sent} sent")
            self._resend_overdue()

    def close(self) -> None:
        self.transport.stop()


def soak(broker: Broker, tmp_path: Path, n: int, timeout_s: float) -> None:
    edge = EdgeProcess(SITE, broker.host, broker.port, tmp_path)
    soaker = Soaker(broker)
    try:
        edge.start()
        t_start = time.monotonic()
        assert soaker.online.wait(30), edge.log_tail()
        soaker.run("warm", WARM_UP, timeout_s=60)  # the first connect included
        time.sleep(1.0)  # let the last containers end and the allocator settle
        rss_start, cpu_start = edge.rss_kib(), edge.cpu_s()
        t0 = time.monotonic()
        soaker.run("soak", n, timeout_s=timeout_s)
        elapsed = time.monotonic() - t0
        time.sleep(1.0)
        rss_end, cpu_used = edge.rss_kib(), edge.cpu_s() - cpu_start
        growth_mib = (rss_end - rss_start) / 1024
        sent = n + WARM_UP
        decided = len(soaker.first)
        figures = (f"{n:,} requests after a {WARM_UP:,} warm-up in {elapsed:.1f} s "
                   f"({n / elapsed:,.0f}/s; {time.monotonic() - t_start:.1f} s in all; the "
                   f"agent used {cpu_used:.1f} CPU s, {cpu_used / n * 1e6:.0f} us a request): sent "
                   f"{sent:,}, decided {decided:,}, lost {sent - decided}, decided twice "
                   f"differently {len(soaker.conflicting)}, identical repeats "
                   f"{soaker.repeats}, re-sent {soaker.resends}; outcomes "
                   f"{dict(soaker.outcomes)}; agent RSS {rss_start / 1024:.1f} MiB after "
                   f"warm-up, {rss_end / 1024:.1f} MiB at the end ({growth_mib:+.1f} MiB; "
                   f"bound {RSS_GROWTH_BOUND_MIB:.0f}); store "
                   f"{edge.store.stat().st_size / 2**20:.1f} MiB on disk")
        print(f"\nsoak: {figures}")
        assert decided == sent and not soaker.conflicting, figures
        assert growth_mib <= RSS_GROWTH_BOUND_MIB, figures
        assert edge.stop() == 0, edge.log_tail()
    finally:
        soaker.close()
        edge.close()


def test_soak_10k(broker: Broker, tmp_path: Path) -> None:
    soak(broker, tmp_path, 10_000, timeout_s=60)


@pytest.mark.slow
def test_soak_100k(broker: Broker, tmp_path: Path) -> None:
    soak(broker, tmp_path, 100_000, timeout_s=240)
