"""The live edge agent's speed: in-process decisions, request -> decision over MQTT, throughput.

    python benchmarks/runtime.py            # about a minute
    python benchmarks/runtime.py --quick    # about 20 s
    python benchmarks/runtime.py --floor    # also a responder that only answers: the floor

Measures, in one run, on loopback only (an embedded Mosquitto, `hierarchy.broker`):
1. in-process decision latency (no broker): the edge agent's own request handler on one
   request -- validate, look the id up, view -> encoder and mask -> policy -> guard -> place,
   record the decision and its outgoing message in SQLite, one commit per request (the agent
   commits once per batch, so this is its worst case), and the same in batches of 64 requests
   per commit (the agent's group commit under load), per request; with the CPU time per
   request beside, which other processes on the machine disturb less than wall time;
2. the broker's own QoS 1 round trip: one client (the agents' `MqttTransport`: same paho
   settings, TCP_NODELAY) publishes to a topic it subscribes to, one message at a time;
3. end-to-end request -> decision latency through the broker, one request at a time, with
   the edge agent in its own process (`edge-agent`, started with its defaults and any
   `--agent-arg`), and its ratio to (2); with the CPU time the agent's process used per
   request meanwhile (Linux: from /proc). (2) and (3) are interleaved, one ping then one
   request (then the other way round), with the same client while the agent runs, so the
   ratio compares them under the same conditions;
4. sustained decisions per second of that one edge agent: the load generator publishes at a
   fixed rate for a few seconds per step, rates increasing; a rate is sustained when the
   decisions keep up (>= 97% decided within the step, the rest within 1 s after it).

Requests are small (0.01 cores, short lifetimes) so the site never fills up: every request
is placed, none offloaded (no cloud agent runs), and the figures are the agent's, not the
site's capacity. Say where it ran: the broker, the generator and the agent share the cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.agent import EdgeAgent
from edge_agent.backends.base import Placement
from edge_agent.config import EdgeConfig
from hierarchy import protocol as p
from hierarchy.broker import EmbeddedBroker
from hierarchy.transport import BrokerConfig, Incoming, MqttTransport

SCENARIO = "default"
SITE = "edge-0"


def request(rid: str) -> p.Request:
    # Lifetimes in simulated seconds; the agent runs at --speed 1000, so 1 s lasts 1 ms.
    return p.Request(request_id=rid, app="bench", container=rid, cpu_cores=0.01,
                     mem_gib=0.01, slo_ms=100.0, lifetime_s=1.0)


def pct(values: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(values, [50, 99])
    return float(p50), float(p99)


# --- 1. in process ---------------------------------------------------------------------------


def bench_in_process(tmp: Path, n: int) -> dict[str, Any]:
    agent = EdgeAgent(EdgeConfig(site=SITE, broker="mqtt://127.0.0.1:1", scenario=SCENARIO,
                                 speed=1000.0, store=tmp / "inproc.sqlite3"))
    topic = p.requests_topic(SITE)
    times: list[float] = []
    try:
        for i in range(n + 200):
            msg = Incoming(topic, request(f"in-{i}").to_bytes(), 1, False, i + 1)
            t0 = time.perf_counter()
            with agent.store.transaction():
                agent._handle(msg, [])  # the agent's request handler, minus MQTT
            t1 = time.perf_counter()
            agent.backend.advance()  # what the loop does between batches: releases
            if i >= 200:  # warm-up
                times.append((t1 - t0) * 1e6)
        # Group commit: batches of 64 requests per transaction, as the loop takes them.
        batch, batched, cpu_single = 64, [], 0.0
        for j in range((n + 200) // batch):
            msgs = [Incoming(topic, request(f"b-{j}-{k}").to_bytes(), 1, False, k + 1)
                    for k in range(batch)]
            t0, c0 = time.perf_counter(), time.process_time()
            with agent.store.transaction():
                for msg in msgs:
                    agent._handle(msg, [])
            t1, c1 = time.perf_counter(), time.process_time()
            agent.backend.advance()
            if j * batch >= 200:
                batched.append((t1 - t0) * 1e6 / batch)
                cpu_single += c1 - c0
        batched_cpu_us = cpu_single * 1e6 / (len(batched) * batch)
        c0 = time.process_time()
        for i in range(n):
            msg = Incoming(topic, request(f"cpu-{i}").to_bytes(), 1, False, i + 1)
            with agent.store.transaction():
                agent._handle(msg, [])
            agent.backend.advance()
        single_cpu_us = (time.process_time() - c0) * 1e6 / n
        counts = dict(agent.counts)
        policy_label = agent.decider.policy_label
        # The decision alone: view -> encoder, mask -> policy -> guard -> place, no SQLite.
        decide: list[float] = []
        for i in range(n + 200):
            req = request(f"d-{i}")
            t0 = time.perf_counter()
            view = agent.decider.view(req, 0.0, 1.0, agent.peers)
            choice = agent.decider.choose(req, view)
            if choice.kind == "place":
                agent.backend.place(Placement(
                    key=req.request_id, app=req.app, container=req.container,
                    node=choice.node, cpu_cores=choice.cpu_cores, mem_gib=choice.mem_gib,
                    lifetime_s=req.lifetime_s))
            t1 = time.perf_counter()
            agent.backend.advance()
            if i >= 200:
                decide.append((t1 - t0) * 1e6)
    finally:
        agent.store.close()
        agent.backend.close()
    p50, p99 = pct(times)
    d50, d99 = pct(decide)
    b50, b99 = pct(batched)
    return {"p50_us": p50, "p99_us": p99, "decide_p50_us": d50, "decide_p99_us": d99,
            "batched_p50_us": b50, "batched_p99_us": b99, "cpu_us": single_cpu_us,
            "batched_cpu_us": batched_cpu_us, "n": float(n), "placed": float(counts["placed"]),
            "policy": policy_label}


# --- MQTT helpers ----------------------------------------------------------------------------


class Client:
    """A `MqttTransport` that timestamps every message it receives (its session ends with it:
    a broker keeping messages for a benchmark client gone would be measured too)."""

    def __init__(self, url: str, subscriptions: list[str]) -> None:
        self.cond = threading.Condition()
        self.received: dict[str, float] = {}  # key -> perf_counter at receipt
        self.marker = f"hierarchy/bench/{uuid.uuid4().hex}"
        self.transport = MqttTransport(
            BrokerConfig.from_url(url, session_expiry_s=0),
            client_id=f"bench-{uuid.uuid4().hex[:8]}",
            on_message=self._on_message,
            subscriptions=[(t, 1) for t in [*subscriptions, self.marker]])
        self.transport.start()
        if not self.transport.wait_connected(5.0):
            raise RuntimeError(f"could not connect to {url}")
        self.transport.publish(self.marker, b"ready", qos=1)
        self.wait_for("ready", 5.0)

    def _on_message(self, msg: Incoming) -> None:
        now = time.perf_counter()
        if msg.topic.endswith("/decisions"):
            key = msg.payload.split(b'"request_id":"', 1)[1].split(b'"', 1)[0].decode()
        else:
            key = msg.payload.decode()
        with self.cond:
            self.received[key] = now
            self.cond.notify_all()

    def wait_for(self, key: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while key not in self.received:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer for {key} within {timeout_s} s")
                self.cond.wait(left)
            return self.received[key]

    def count(self) -> int:
        with self.cond:
            return len(self.received)

    def close(self) -> None:
        self.transport.stop()


# --- 3 and 4. through the edge agent ---------------------------------------------------------


def echo_responder(url: str) -> None:
    """(--floor) The least an agent can do, in this process until killed: the edge agent's
    transport and loop shape (`MqttTransport.open`, `poll`, manual acks after the reply), no
    validation, no decision, no SQLite; each request gets a fixed decision naming its id."""
    topic = p.decisions_topic(SITE)
    todo: list[Incoming] = []
    transport = MqttTransport(BrokerConfig.from_url(url), client_id="bench-floor",
                              on_message=todo.append, manual_ack=True,
                              subscriptions=[(p.requests_topic(SITE), 1)])
    transport.open()
    while True:
        transport.poll(0.0 if todo else 0.02)
        with transport.corked():
            for msg in todo:
                rid = msg.payload.split(b'"request_id":"', 1)[1].split(b'"', 1)[0]
                transport.publish(topic, b'{"schema":1,"request_id":"' + rid + b'"}', qos=1)
                transport.ack(msg.mid, msg.qos)
        todo.clear()


def start_floor(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--echo-responder", url],
                            stdin=subprocess.DEVNULL)


def measure_floor(url: str, n: int) -> dict[str, float]:
    responder = start_floor(url)
    client = Client(url, [p.decisions_topic(SITE)])
    try:
        wait_agent_serving(client)
        floor = bench_through_broker(client, n, responder.pid)
    finally:
        client.close()
        responder.terminate()
        responder.wait(10)
    print(f"  floor (a responder that only answers): broker RTT {floor['rtt_p50_ms']:.3f} / "
          f"{floor['rtt_p99_ms']:.3f} ms; end to end {floor['p50_ms']:.3f} / "
          f"{floor['p99_ms']:.3f} ms", flush=True)
    return floor


def start_agent(url: str, tmp: Path, extra_args: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "edge_agent", "--site", SITE, "--broker", url,
           "--scenario", SCENARIO, "--speed", "1000", "--store", str(tmp / "agent.sqlite3"),
           "--log-level", "WARNING", *extra_args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def wait_agent_serving(client: Client, timeout_s: float = 30.0) -> None:
    topic = p.requests_topic(SITE)
    deadline = time.monotonic() + timeout_s
    i = 0
    while time.monotonic() < deadline:
        rid = f"hello-{i}"
        client.transport.publish(topic, request(rid).to_bytes(), qos=1)
        try:
            client.wait_for(rid, 1.0)
            return
        except TimeoutError:
            i += 1
    raise RuntimeError("the edge agent did not answer within 30 s")


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system, s) process `pid` has used so far; None where /proc is not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def bench_through_broker(client: Client, n: int, agent_pid: int) -> dict[str, float]:
    """(2) and (3) interleaved: a ping through the broker and a request to the agent, one at a
    time, in alternating order, so both see the machine in the same state (on a shared
    machine the broker's round trip drifts by several times within minutes)."""
    topic = p.requests_topic(SITE)
    rtt, e2e = [], []

    def ping(key: str) -> float:
        t0 = time.perf_counter()
        client.transport.publish(client.marker, key.encode(), qos=1)
        return (client.wait_for(key, 5.0) - t0) * 1e3

    def ask(rid: str) -> float:
        t0 = time.perf_counter()
        client.transport.publish(topic, request(rid).to_bytes(), qos=1)
        return (client.wait_for(rid, 10.0) - t0) * 1e3

    for i in range(100):  # warm-up
        ping(f"warm-{i}")
        ask(f"warm-e2e-{i}")
    cpu0 = process_cpu_s(agent_pid)
    for i in range(n):
        if i % 2:
            rtt.append(ping(f"ping-{i}"))
            e2e.append(ask(f"e2e-{i}"))
        else:
            e2e.append(ask(f"e2e-{i}"))
            rtt.append(ping(f"ping-{i}"))
    cpu1 = process_cpu_s(agent_pid)
    rtt_p50, rtt_p99 = pct(rtt)
    e2e_p50, e2e_p99 = pct(e2e)
    # The agent's CPU per request when each one finds it asleep (cold caches), all its
    # threads and its wake-ups for the broker's acks included.
    agent_cpu_us = (cpu1 - cpu0) * 1e6 / n if cpu0 is not None and cpu1 is not None \
        else float("nan")
    return {"rtt_p50_ms": rtt_p50, "rtt_p99_ms": rtt_p99, "p50_ms": e2e_p50,
            "p99_ms": e2e_p99, "n": float(n), "agent_cpu_us": agent_cpu_us}


class LoadGenerator:
    """The load of (4): one thread publishes requests on a schedule and reads the decisions
    between sends, running the network itself (`MqttTransport.open`: no hand-off to paho's
    thread and back per message), payloads serialised beforehand. On a small machine the
    generator shares the cores with the agent and the broker: it must not be what runs out
    first, so it spends as little CPU per request as it can (180-300 us in our runs)."""

    def __init__(self, url: str) -> None:
        self.received: dict[bytes, float] = {}  # request id -> perf_counter at receipt
        self.waiting: set[bytes] = set()  # request ids of this step not decided yet
        self.transport = MqttTransport(
            BrokerConfig.from_url(url, session_expiry_s=0),
            client_id=f"bench-load-{uuid.uuid4().hex[:8]}",
            on_message=self._on_message, subscriptions=[(p.decisions_topic(SITE), 1)])
        self.transport.open()
        deadline = time.monotonic() + 5.0
        while not self.transport.connected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not connect to {url}")
            self.transport.poll(0.01)

    def _on_message(self, msg: Incoming) -> None:
        rid = msg.payload.split(b'"request_id":"', 1)[1].split(b'"', 1)[0]
        if rid in self.waiting:
            self.waiting.discard(rid)
            self.received[rid] = time.perf_counter()

    def run(self, rate: float, seconds: float, tag: str) -> dict[str, float]:
        """Publish at `rate` per second for `seconds`; how many decisions kept up."""
        topic = p.requests_topic(SITE)
        ids = [f"{tag}-{i}" for i in range(int(rate * seconds))]
        payloads = [request(rid).to_bytes() for rid in ids]
        keys = [rid.encode() for rid in ids]
        received, transport = self.received, self.transport
        self.waiting = set(keys)
        start = time.perf_counter()
        sent = 0
        while sent < len(payloads):
            due = min(len(payloads), int((time.perf_counter() - start) * rate) + 1)
            for payload in payloads[sent:due]:
                transport.publish(topic, payload, qos=1)
            sent = due
            transport.poll(max(0.0, start + sent / rate - time.perf_counter()))
        end = time.perf_counter()
        in_time = sent - len(self.waiting)
        deadline = end + 1.0
        while self.waiting and time.perf_counter() < deadline:
            transport.poll(0.005)
        done = sent - len(self.waiting)
        last = max((received[k] for k in keys if k in received), default=end)
        return {"rate": rate, "sent_rate": sent / (end - start), "sent": float(sent),
                "in_time": float(in_time), "done": float(done),
                "decided_rate": done / max(last - start, 1e-9),
                "kept_up": float(in_time >= 0.97 * sent and done == sent)}

    def close(self) -> None:
        self.transport.stop()


# --- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, shorter steps")
    ap.add_argument("--agent-arg", action="append", default=[], metavar="ARG",
                    help="an option for the edge agent, e.g. --agent-arg=--policy=power-aware "
                    "(repeatable)")
    ap.add_argument("--floor", action="store_true",
                    help="also measure (3) with a responder that does nothing but answer: "
                    "the least any agent in Python adds on this machine")
    ap.add_argument("--echo-responder", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.echo_responder:
        echo_responder(args.echo_responder)
        return 0
    n_in, n_rtt, step_s = (2000, 500, 1.5) if args.quick else (5000, 2000, 3.0)
    rates = [500, 1000, 2000, 3000, 4000, 6000]
    print(f"runtime benchmark on {os.cpu_count()} CPU(s): broker, load generator and edge "
          "agent share them; loopback only", flush=True)
    with tempfile.TemporaryDirectory(prefix="hierarchy-bench-") as tmpdir:
        tmp = Path(tmpdir)
        inproc = bench_in_process(tmp, n_in)
        over_mqtt = f"; over MQTT with {' '.join(args.agent_arg)}" if args.agent_arg else ""
        print(f"  edge agent policy: {inproc['policy']} (its default{over_mqtt})", flush=True)
        print(f"  in-process: {inproc['decide_p50_us']:.0f} / {inproc['decide_p99_us']:.0f} us "
              f"(decision), {inproc['p50_us']:.0f} / {inproc['p99_us']:.0f} us (handler), "
              f"{inproc['batched_p50_us']:.0f} / {inproc['batched_p99_us']:.0f} us (handler, "
              "batches of 64)", flush=True)
        with EmbeddedBroker(tmp) as broker:
            floor = measure_floor(broker.url, n_rtt) if args.floor else None
            agent = start_agent(broker.url, tmp, args.agent_arg)
            client = Client(broker.url, [p.decisions_topic(SITE)])
            load: LoadGenerator | None = None
            try:
                wait_agent_serving(client)
                e2e = bench_through_broker(client, n_rtt, agent.pid)
                print(f"  broker RTT: {e2e['rtt_p50_ms']:.3f} / {e2e['rtt_p99_ms']:.3f} ms; "
                      f"end to end: {e2e['p50_ms']:.3f} / {e2e['p99_ms']:.3f} ms", flush=True)
                client.close()  # the load generator alone from here on
                load = LoadGenerator(broker.url)
                steps = []
                for rate in rates:
                    step = load.run(rate, step_s, f"r{rate}")
                    steps.append(step)
                    print(f"  {rate:5d}/s offered: sent {step['sent_rate']:.0f}/s, decided "
                          f"{step['decided_rate']:.0f}/s, kept up: {bool(step['kept_up'])}",
                          flush=True)
                    if not step["kept_up"]:
                        break
            finally:
                client.close()
                if load is not None:
                    load.close()
                agent.terminate()
                agent.wait(10)
    sustained = max((s["rate"] for s in steps if s["kept_up"]), default=0.0)
    peak = max(s["decided_rate"] for s in steps)
    print()
    print("| measure | p50 | p99 |")
    print("|---|---|---|")
    print(f"| in-process decision alone (view, encode, policy, guard, place), n={n_in} | "
          f"{inproc['decide_p50_us']:.0f} us | {inproc['decide_p99_us']:.0f} us |")
    print(f"| in-process request handler (validate + decide + SQLite commit), n={n_in} | "
          f"{inproc['p50_us']:.0f} us | {inproc['p99_us']:.0f} us |")
    print(f"| the same, 64 requests per commit (group commit), per request | "
          f"{inproc['batched_p50_us']:.0f} us | {inproc['batched_p99_us']:.0f} us |")
    print(f"| broker QoS 1 round trip (same client, interleaved with the next), n={n_rtt} | "
          f"{e2e['rtt_p50_ms']:.3f} ms | {e2e['rtt_p99_ms']:.3f} ms |")
    print(f"| request -> decision through the broker, n={n_rtt} | {e2e['p50_ms']:.3f} ms | "
          f"{e2e['p99_ms']:.3f} ms |")
    print(f"| end to end / broker round trip | {e2e['p50_ms'] / e2e['rtt_p50_ms']:.1f}x | "
          f"{e2e['p99_ms'] / e2e['rtt_p99_ms']:.1f}x |")
    if floor is not None:
        print(f"| floor: request -> fixed answer, no agent work (--floor), n={n_rtt} | "
              f"{floor['p50_ms']:.3f} ms | {floor['p99_ms']:.3f} ms |")
        print(f"| floor / its interleaved broker round trip ({floor['rtt_p50_ms']:.3f} / "
              f"{floor['rtt_p99_ms']:.3f} ms) | {floor['p50_ms'] / floor['rtt_p50_ms']:.1f}x | "
              f"{floor['p99_ms'] / floor['rtt_p99_ms']:.1f}x |")
    print()
    print(f"CPU time per request in process: {inproc['cpu_us']:.0f} us with a commit each, "
          f"{inproc['batched_cpu_us']:.0f} us with 64 per commit; the edge agent's process, "
          f"one request at a time through the broker: {e2e['agent_cpu_us']:.0f} us")
    print(f"sustained: {sustained:.0f} decisions/s (highest offered rate kept up, steps of "
          f"{step_s:g} s); peak decided rate seen: {peak:.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
