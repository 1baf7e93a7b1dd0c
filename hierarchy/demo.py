"""`hierarchy demo`: the whole hierarchy on one machine, with nothing to start by hand.

It starts, in this order, an embedded Mosquitto on a free loopback port (`hierarchy.broker`),
the cloud agent with its REST API on 127.0.0.1 (uvicorn in a thread), one edge agent per site
on the `sim` backend (threads), and a workload source replaying the scenario's generated apps
as requests (`hierarchy.demo_workload`). It sends for `duration_s`, waits at most `drain_s`
for the last decisions, prints a summary table, and stops everything it started (threads,
the broker process, the temporary directory), on Ctrl-C too.

Part of the composition root with `hierarchy/cli.py`: it wires the agents together, so it
imports `edge_agent` and `cloud_agent` (inside `run_demo`, so `hierarchy` stays importable
without them).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from hierarchy import protocol as p
from hierarchy.broker import BrokerError, EmbeddedBroker, free_port
from hierarchy.demo_report import DecisionTracker, Row, summary_table
from hierarchy.demo_workload import Scheduled, WorkloadSource
from hierarchy.scenario import Scenario, ScenarioError, load_scenario
from hierarchy.transport import BrokerConfig, Incoming, MqttTransport

if TYPE_CHECKING:
    from cloud_agent.config import CloudConfig

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """The demo cannot run; the message says what to change."""


@dataclass(frozen=True)
class DemoOptions:
    """What `hierarchy demo` runs."""

    scenario: str = "default"  # scenario name or YAML path
    sites: int | None = None  # edge sites (the scenario's first N); None: all of them
    duration_s: float = 20.0  # how long the workload source sends, s
    speed: float = 600.0  # simulated seconds per real second (arrivals and lifetimes)
    rate_rps: float | None = None  # requests per second in all; None: the scenario's rate
    http: str | None = None  # HOST:PORT of the cloud's REST API; None: a free loopback port
    policy: str = "learned"  # the edge agents' policy (the shipped one for the platform)
    seed: int = 0  # seed of the workload source
    drain_s: float = 5.0  # after sending: wait this long at most for the last decisions
    progress: bool | None = None  # live progress line; None: when the output is a terminal


@dataclass(frozen=True)
class DemoReport:
    """What happened: one row per site and the total, and the exactly-once check."""

    rows: list[Row]
    rest_url: str
    requests: int
    undecided: list[str]  # request ids that got no final decision
    duplicated: list[str]  # request ids that got more than one
    errors: list[str]  # error replies the agents sent
    interrupted: bool


def run_demo(opts: DemoOptions, out: TextIO = sys.stdout) -> DemoReport:
    """Run the demo as `opts` says, printing progress and the summary to `out`."""
    scenario = _load(opts.scenario)
    num_sites = len(scenario_sites(scenario))
    n = opts.sites or num_sites
    if not 1 <= n <= num_sites:
        raise DemoError(f"--sites {n}: scenario {scenario.name!r} has {num_sites} edge sites "
                        f"(choose 1..{num_sites}, or another --scenario)")
    if opts.duration_s <= 0 or opts.speed <= 0 or (opts.rate_rps is not None
                                                   and opts.rate_rps <= 0):
        raise DemoError("--duration, --speed and --rate must be positive")
    sites = [f"edge-{i}" for i in range(n)]
    http_host, http_port = _hostport(opts.http)
    source = WorkloadSource(scenario, sites, opts.speed, opts.rate_rps, opts.seed)
    schedule = source.schedule(opts.duration_s)
    show_progress = opts.progress if opts.progress is not None else out.isatty()

    from cloud_agent.config import CloudConfig
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import EdgeConfig

    tracker = DecisionTracker(sites)
    interrupted = False
    with contextlib.ExitStack() as stack:
        try:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hierarchy-demo-")))
            try:
                broker = stack.enter_context(EmbeddedBroker(tmp))
            except BrokerError as exc:
                raise DemoError(str(exc)) from None
            print(f"broker     {broker.url} (mosquitto {broker.binary})", file=out, flush=True)
            cloud = CloudConfig(broker=broker.url, scenario=opts.scenario, speed=opts.speed,
                                http_host=http_host, http_port=http_port, advertise=False,
                                status_interval_s=1.0, forward_timeout_s=3.0)
            stack.callback(_start_rest(cloud))
            print(f"cloud      REST on {cloud.rest_url} (try {cloud.rest_url}/status, docs at "
                  f"{cloud.rest_url}/docs)", file=out, flush=True)
            edges = []
            for site in sites:
                agent = EdgeAgent(EdgeConfig(
                    site=site, broker=broker.url, scenario=opts.scenario, speed=opts.speed,
                    policy=opts.policy, store=tmp / f"{site}.sqlite3",
                    telemetry_interval_s=1.0))
                agent.serve_in_thread()
                stack.callback(agent.shutdown)
                edges.append(agent)
            for agent in edges:
                if not agent.ready.wait(10.0):
                    raise DemoError(f"edge agent {agent.site} did not connect to {broker.url}")
            print(f"edges      {', '.join(sites)} (sim backend, policy "
                  f"{edges[0].decider.policy_label}, speed x{opts.speed:g})", file=out,
                  flush=True)
            client = _source_client(broker.url, tracker)
            stack.callback(client.stop)
            print(f"workload   {len(schedule)} requests over {opts.duration_s:g} s "
                  f"(~{source.requests_per_s:.1f}/s, scenario {scenario.name})", file=out,
                  flush=True)
            _send(client, schedule, tracker, opts, show_progress, out)
            _drain(tracker, opts.drain_s, show_progress, out, opts.duration_s)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: stopping", file=out, flush=True)
        finally:
            if show_progress:
                print(file=out, flush=True)
            print("stopping the agents and the broker...", file=out, flush=True)
    report = DemoReport(
        rows=tracker.rows(), rest_url=f"http://{http_host}:{http_port}",
        requests=tracker.requests_sent, undecided=tracker.undecided_ids(),
        duplicated=[rid for rid, c in tracker.decisions.items() if c > 1],
        errors=list(tracker.errors), interrupted=interrupted)
    _print_summary(report, out)
    return report


def scenario_sites(scenario: Scenario) -> list[int]:
    """The scenario's edge site indices."""
    from sim.topology import build_topology

    return list(range(build_topology(scenario).num_sites))


def _load(name: str) -> Scenario:
    try:
        return load_scenario(name)
    except ScenarioError as exc:
        raise DemoError(str(exc)) from None


def _hostport(text: str | None) -> tuple[str, int]:
    if text is None:
        return "127.0.0.1", free_port()
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise DemoError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080") from None
    if not 0 < number < 65536:
        raise DemoError(f"--http {text!r}: port must be 1..65535")
    return host or "127.0.0.1", number


def _start_rest(config: CloudConfig) -> Callable[[], None]:
    """Serve the cloud agent's app with uvicorn in a thread; returns a function that stops it."""
    import uvicorn

    from cloud_agent.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(config), host=config.http_host,
                                           port=config.http_port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-cloud-rest", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(5.0)
            raise DemoError(f"the cloud agent's REST API could not start on "
                            f"{config.http_host}:{config.http_port} (is the port taken? "
                            "choose another with --http HOST:PORT)")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10.0)

    return stop


def _source_client(url: str, tracker: DecisionTracker) -> MqttTransport:
    """The workload source's MQTT client, subscribed to every decision and error reply."""
    marker = f"hierarchy/demo/{uuid.uuid4().hex}"
    ready = threading.Event()

    def on_message(msg: Incoming) -> None:
        if msg.topic == marker:
            ready.set()
        else:
            tracker.on_message(msg)

    client = MqttTransport(
        BrokerConfig.from_url(url), client_id=f"hierarchy-demo-{uuid.uuid4().hex[:8]}",
        on_message=on_message,
        subscriptions=[(p.decisions_topic("+"), 1), (p.errors_topic("+"), 1), (marker, 1)])
    client.start()
    if not client.wait_connected(5.0):
        client.stop()
        raise DemoError(f"the workload source could not connect to {url}")
    # The SUBACK is not exposed: our own message coming back proves the subscriptions are in.
    client.publish(marker, b"ping", qos=1)
    if not ready.wait(5.0):
        client.stop()
        raise DemoError("the workload source's subscriptions did not take")
    return client


def _send(client: MqttTransport, schedule: list[Scheduled], tracker: DecisionTracker,
          opts: DemoOptions, show_progress: bool, out: TextIO) -> None:
    start = time.perf_counter()
    next_line = 0.0
    i = 0
    while True:
        now = time.perf_counter() - start
        while i < len(schedule) and schedule[i].t_s <= now:
            item = schedule[i]
            req = item.request.model_copy(update={"sent_at_s": time.time()})
            tracker.sent(req.request_id, item.site)
            client.publish(p.requests_topic(item.site), req.to_bytes(), qos=1)
            i += 1
        if now >= opts.duration_s:
            return
        next_line = _progress(tracker, now, next_line, show_progress, out)
        upcoming = schedule[i].t_s - now if i < len(schedule) else 0.05
        time.sleep(min(max(upcoming, 0.0), 0.05))


def _drain(tracker: DecisionTracker, drain_s: float, show_progress: bool, out: TextIO,
           elapsed0: float) -> None:
    start = time.perf_counter()
    next_line = 0.0
    while tracker.undecided() > 0 and time.perf_counter() - start < drain_s:
        next_line = _progress(tracker, elapsed0 + time.perf_counter() - start, next_line,
                              show_progress, out)
        time.sleep(0.02)
    if show_progress:
        _progress(tracker, elapsed0 + time.perf_counter() - start, 0.0, True, out)


def _progress(tracker: DecisionTracker, elapsed_s: float, next_line: float,
              show_progress: bool, out: TextIO) -> float:
    """Redraw the progress line (a terminal: 4 times a second; otherwise a line every 5 s)."""
    if elapsed_s < next_line:
        return next_line
    line = tracker.progress_line(elapsed_s)
    if show_progress:
        print(f"\r{line}", end="", file=out, flush=True)
        return elapsed_s + 0.25
    print(line, file=out, flush=True)
    return elapsed_s + 5.0


def _print_summary(report: DemoReport, out: TextIO) -> None:
    print(file=out)
    print(summary_table(report.rows), file=out)
    print("(latency: request sent -> final decision received, through the broker; an "
          "offloaded request's includes the cloud's answer)", file=out)
    if not report.undecided and not report.duplicated:
        print(f"every one of the {report.requests} requests got exactly one final decision",
              file=out)
    else:
        print(f"{len(report.undecided)} request(s) without a decision, "
              f"{len(report.duplicated)} with more than one", file=out)
    if report.errors:
        print(f"{len(report.errors)} error replies; first: {report.errors[0]}", file=out)
    out.flush()
