"""The edge agent's decision loop: requests in, exactly one decision per request id out.

One thread, the loop, owns the MQTT connection (it runs the network itself: no hand-off
between threads per message, see hierarchy.transport), the backend, the policy and the store:

1. read what the broker sent and queue it; requests are validated as they come, and each
   request id waiting counts once towards `queue_max` (a redelivered copy, or a copy of a
   request decided already, never does: it gets the stored decision);
2. take a batch of messages; in one store transaction handle each: refusals are answered on
   the site's errors topic, a request id seen before gets its stored decision again, a new
   one is decided (view -> shared encoder and mask -> policy -> guard -> backend) and its
   decision and the messages to send are recorded in the outbox;
3. after the commit, hand outbox rows to MQTT and acknowledge the batch to the broker
   (manual QoS 1 acks: a message the agent has not made durable is redelivered after a
   crash);
4. delete outbox rows the broker has acknowledged; send telemetry; let backend time pass.

An offloaded request's final decision is published when the cloud's offload-result comes
back. While the broker or the cloud is unreachable the agent keeps deciding what it can place;
everything it has to send waits in the outbox, and pending offloads are sent again whenever
the cloud agent (re)announces itself online.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from edge_agent.backends.base import Backend, Placement
from edge_agent.behaviour import BehaviourBook, service_of
from edge_agent.config import EdgeConfig
from edge_agent.decide import PeerBook, SiteDecider, load_policy
from edge_agent.store import PendingOffload, Store
from hierarchy import protocol as p
from hierarchy.discovery import discover
from hierarchy.policies.base import Policy, PolicyContext
from hierarchy.transport import Incoming, MqttTransport, StatusMessages, acknowledged

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
CONFIRM_INTERVAL_S = 1.0  # the longest an acknowledged outbox row waits to be forgotten
_KEY_SEP = "\x1f"  # never inside a request id (no control characters), never in a site id


def request_key(req: p.Request) -> str:
    """The store key of a request: its id, prefixed by its origin site when forwarded."""
    if req.offloaded_from is None:
        return req.request_id
    return f"{req.offloaded_from}{_KEY_SEP}{req.request_id}"


@dataclass(slots=True)
class Queued:
    """A received message waiting for the loop, with what its admission found out."""

    msg: Incoming
    request: p.Request | None = None  # a request, validated on arrival
    error: Exception | None = None  # why its payload was refused (raised when its turn comes)
    key: str | None = None  # the request's store key
    earlier: bytes | None = None  # its decision, when one was stored before it came
    first: bool = False  # no copy of it was waiting, decided or offloaded when it came


def make_backend(config: EdgeConfig) -> Backend:
    if config.backend == "sim":
        from edge_agent.backends.sim import SimSiteBackend

        return SimSiteBackend(config.scenario, config.site, config.site_index,
                              speed=config.speed, usage_frac=config.usage_frac)
    raise ValueError(f"unknown backend {config.backend!r}")


class _Nudge:
    """An object whose allocation the garbage collector counts (no free list)."""


@contextmanager
def collection_deferred() -> Iterator[None]:
    """CPython's cyclic garbage collector runs when allocations pass a threshold, wherever
    that falls: in the loop, mostly inside a request's handling, where a young collection
    took ~50 us and a middle one ~0.5 ms (one request in ~150, the p99 of a lone request).
    Inside this block it waits; at the end, if one is due, it runs then, choosing the
    generations by its own rules. The switch is the process's: a thread that allocates
    meanwhile has its collection at the end of this block too (20 ms at most, the loop's
    longest wait); where the collector was off already, this leaves it alone."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        if gc.get_count()[0] > gc.get_threshold()[0]:
            _Nudge()  # an allocation with the collector on: it collects here, if due


class EdgeAgent:
    """One site's daemon. `run(stop)` blocks; `serve_in_thread()`/`shutdown()` for tests."""

    def __init__(self, config: EdgeConfig, backend: Backend | None = None,
                 policy: Policy | None = None) -> None:
        self.config = config
        self.site = config.site
        self.backend = backend or make_backend(config)
        self.policy = policy or load_policy(
            config.policy,
            PolicyContext(self.backend.encoder, self.backend.cloud_encoder, seed=config.seed))
        self.decider = SiteDecider(self.backend, self.policy, BehaviourBook(
            config.behaviour_max_services, config.behaviour_sample_s))
        self.store = Store(config.store_path, background_checkpoints=True)
        self.peers = PeerBook(self.site)
        self.counts = {k: 0 for k in ("placed", "offloaded", "rejected")}
        self.counts.update(self.store.decision_counts())
        self.refused = 0
        self.duplicates = 0
        self.started_at = time.time()
        self.incoming: deque[Queued] = deque()
        self._arrived: list[Incoming] = []  # read from the broker, not yet queued
        self._waiting: dict[str, int] = {}  # request key -> its copies queued, undecided
        # Topic names built once: each build checks the site id again.
        self._requests_topic = p.requests_topic(self.site)
        self._decisions_topic = p.decisions_topic(self.site)
        self._offload_results_topic = p.offload_results_topic(self.site)
        self.transport: MqttTransport | None = None
        self.broker_url: str | None = None
        self._inflight: deque[tuple[int, mqtt.MQTTMessageInfo]] = deque()
        self._handed_id = 0  # outbox rows up to this id are with MQTT
        self._cloud_online = False
        self._cloud_started: float | None = None
        self._cloud_free = 1.0
        self._resend_offloads = False
        self._next_telemetry = 0.0
        self._next_scan = 0.0
        self._next_confirm = 0.0
        self._next_prune = 0.0
        self._next_offload_retry = time.monotonic() + config.offload_retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once connected and serving
        self._warm_up()

    # --- lifecycle -----------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Run the encoder and the policy once, so the first request pays no compile/load."""
        self.backend.warm_up()
        view = self.decider.view(None)
        obs, mask = self.backend.encoder.encode_and_mask(view)
        self.policy.edge(view, mask, obs)

    def _status(self, state: str) -> bytes:
        return p.Status(agent="edge", id=self.site, state=state, started_at_s=self.started_at,
                        version=AGENT_VERSION, policy=self.decider.policy_label).to_bytes()

    def _resolve_broker(self) -> str | None:
        if self.config.broker:
            return self.config.broker
        while not self._stop.is_set():
            log.info("no broker configured: looking for the hierarchy with zeroconf")
            found = discover(self.config.discovery_timeout_s, self.config.discovery_interfaces,
                             stop=self._stop, hierarchy=self.config.hierarchy)
            if found is not None and found.broker:
                refusal = self._discovered_broker_refusal(found.broker)
                if refusal is None:
                    log.info("found %s: broker %s", found.name, found.broker)
                    return found.broker
                log.warning("ignoring %s announced by %s: %s", found.broker, found.name,
                            refusal)
                self._stop.wait(1.0)
                continue
            if not self._stop.is_set():
                log.warning("no hierarchy announced within %.0f s; still looking",
                            self.config.discovery_timeout_s)
        return None

    def _discovered_broker_refusal(self, url: str) -> str | None:
        """Why a broker URL found with zeroconf must not be used, None when it may. Anyone on
        the link can announce a hierarchy: an agent that holds credentials sends them only
        over TLS, where the broker's certificate is checked against its CA."""
        try:
            broker = self.config.mqtt.broker_config(url)
        except ValueError as exc:
            return str(exc)
        if (broker.username or broker.password) and not broker.tls:
            return "it is not TLS (mqtts://) and this agent would send its credentials"
        return None

    def connect(self) -> bool:
        """Find the broker and start the MQTT client; False if stopped first."""
        url = self._resolve_broker()
        if url is None:
            return False
        self.broker_url = url
        site = self.site
        self.transport = MqttTransport(
            self.config.mqtt.broker_config(url),
            client_id=self.config.mqtt_client_id,
            on_message=self._arrived.append,
            subscriptions=[(self._requests_topic, 1), (self._offload_results_topic, 1),
                           (p.CLOUD_STATUS_TOPIC, 1)],
            status=StatusMessages(p.status_topic(site), self._status("online"),
                                  self._status("offline")),
            manual_ack=True,
            on_connect=self._on_connected,
        )
        self.transport.open()  # this loop runs the network: see step()
        return True

    def _on_connected(self) -> None:
        # (Called inside poll, while paho reads: only a flag.) A broker that crashed may have
        # lost offloads it had acknowledged, or the cloud's answers to them: ask again; the
        # cloud answers each (site, request id) once and repeats that answer.
        self._resend_offloads = True

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set (or `shutdown()`), then close cleanly."""
        if stop is not None:
            self._stop = stop
        try:
            if not self.connect():
                return
            assert self.transport is not None
            while not self._stop.is_set():
                try:
                    self.step(0.02)
                except Exception:  # the site must outlive any one failure (each batch is
                    log.exception("the decision loop failed; carrying on")  # one transaction)
                    self._stop.wait(0.1)
                if not self.ready.is_set() and self.transport.connected:
                    self.ready.set()
        finally:
            self.close()

    def serve_in_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name=f"edge-agent-{self.site}",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def close(self) -> None:
        if self.transport is not None:
            deadline = time.monotonic() + 1.0
            while self._inflight and self.transport.connected and time.monotonic() < deadline:
                self._confirm_sent(full=True)
                self.transport.poll(0.005)  # for the broker's acks (what else comes waits
                # unacknowledged in the broker for the next start)
            self._confirm_sent(full=True)
            self.transport.stop()
            self.transport = None
        self.store.close()
        self.backend.close()
        log.info("edge agent %s stopped", self.site)

    # --- the loop ------------------------------------------------------------------------------

    def step(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the broker (not at all while work is queued), then
        decide a batch and do what is due."""
        transport = self.transport
        assert transport is not None
        with collection_deferred():  # from the read of a request to its decision sent
            self._serve(transport, timeout_s)
        self._flush_outbox()
        self._confirm_sent()
        self._periodic()

    def _serve(self, transport: MqttTransport, timeout_s: float) -> None:
        """Read, decide a batch, commit, send its decisions and acks."""
        transport.poll(0.0 if self.incoming else timeout_s)
        batch: list[Queued] = []
        replies: list[tuple[str, bytes]] = []
        if self._arrived or self.incoming:
            # Admission's look-up of request ids joins the batch's transaction: a read
            # transaction of its own would cost its locking twice per lone request.
            with self.store.transaction():
                self._admit()
                batch = self._take()
                # Rows the broker acknowledged since are forgotten in this commit: no commit
                # of their own (the outbox's last page is written for this batch anyway).
                self.store.sent(self._acknowledged_rows())
                for queued in batch:
                    self._handle(queued.msg, replies, queued)
        if batch:
            # Committed: the decisions, then the acks, in as few TCP segments as they fit in
            # (one for a lone request: one wake-up of the broker, which reads the decision
            # first and forwards it before it looks at the acks).
            with transport.corked():
                self._flush_outbox()
                for topic, payload in replies:
                    transport.publish(topic, payload, qos=1)
                for queued in batch:
                    transport.ack(queued.msg.mid, queued.msg.qos)

    def _admit(self) -> None:
        """Queue what arrived. Requests are validated now, so that each request key waiting
        counts once: copies of one waiting, decided or offloaded already do not count."""
        if not self._arrived:
            return
        entries = [self._queued(msg) for msg in self._arrived]
        fresh = {q.key for q in entries if q.key is not None and q.key not in self._waiting}
        decided = self.store.decided(list(fresh)) if fresh else {}
        self._arrived.clear()  # (the list the transport appends to) queued now
        for q in entries:
            key = q.key
            if key is not None:
                if key in self._waiting:
                    self._waiting[key] += 1
                elif key in decided:
                    q.earlier = decided[key]
                elif not self.store.is_pending(key):
                    self._waiting[key] = 1
                    q.first = True
            self.incoming.append(q)

    def _queued(self, msg: Incoming) -> Queued:
        """`msg` as the queue holds it: a request validated, anything else as it came."""
        if msg.topic != self._requests_topic:
            return Queued(msg)
        try:
            req = p.decode(msg.payload, p.Request)
        except Exception as exc:  # answered when its turn comes, in order
            return Queued(msg, error=exc)
        return Queued(msg, req, key=request_key(req))

    def _take(self) -> list[Queued]:
        batch: list[Queued] = []
        while self.incoming and len(batch) < self.config.batch_max:
            batch.append(self.incoming.popleft())
        return batch

    def _handle(self, msg: Incoming, replies: list[tuple[str, bytes]],
                queued: Queued | None = None) -> None:
        """Act on one message (`queued`: what its admission found, when it was queued; a
        message handed in directly is validated here and finds nothing known of it)."""
        try:
            if queued is None:
                queued = self._queued(msg)
            if queued.key is not None:
                self._leave_queue(queued.key)
            if queued.error is not None:
                raise queued.error
            if queued.request is not None:
                self._on_request(queued, replies)
            elif msg.topic == self._offload_results_topic:
                self._on_offload_result(msg, replies)
            elif msg.topic == p.CLOUD_STATUS_TOPIC:
                self._on_cloud_status(msg)
        except p.ProtocolError as exc:
            self.refused += 1
            log.info("refused a message on %s: %s", msg.topic, exc.reason)
            replies.append(self._error(exc.ref, msg.topic, exc.reason))
        except Exception as exc:  # bad input must never stop the site
            log.exception("failed on a message on %s", msg.topic)
            replies.append(self._error(None, msg.topic, f"internal error: {type(exc).__name__}"))

    def _error(self, ref: str | None, topic: str, reason: str) -> tuple[str, bytes]:
        reply = p.ErrorReply(ref=ref, topic=topic[:512], reason=reason[:1000])
        return p.errors_topic(self.site), reply.to_bytes()

    # --- requests ------------------------------------------------------------------------------

    def _leave_queue(self, key: str) -> None:
        copies = self._waiting.get(key, 0)
        if copies > 1:
            self._waiting[key] = copies - 1
        elif copies:
            del self._waiting[key]

    def _waiting_count(self, key: str | None = None) -> int:
        """Request ids waiting in the queue, `key` (being decided now) left out."""
        return len(self._waiting) - (key in self._waiting if key is not None else 0)

    def _on_request(self, queued: Queued, replies: list[tuple[str, bytes]]) -> None:
        t0 = time.perf_counter()
        received_at = time.time()
        req, key = queued.request, queued.key
        assert req is not None and key is not None  # (a request validated in _queued)
        if queued.first:  # nothing came before it with its key: nothing decided it since
            earlier = None
        else:  # a copy: decided before it came, or maybe since
            earlier = queued.earlier or self.store.decision(key)
        if earlier is not None:  # a redelivery: the same decision again, nothing placed
            self.duplicates += 1
            self.store.enqueue(self._decisions_topic, earlier)
            return
        if self.store.is_pending(key):
            self.duplicates += 1  # offloaded already; its decision comes with the cloud's result
            return
        if self._waiting_count(key) >= self.config.queue_max:
            self._decide_final(req, key, "rejected", None, None, 0.0, 0.0, t0,
                               reason=f"queue full ({self.config.queue_max} requests waiting)")
            return
        view = self.decider.view(req, self._queue_fill(), self._cloud_free, self.peers)
        choice = self.decider.choose(req, view)
        if choice.kind == "place":
            node_id = self.backend.node_ids[choice.node]
            placed = self.backend.place(Placement(
                key=key, app=req.app, container=req.container, node=choice.node,
                cpu_cores=choice.cpu_cores, mem_gib=choice.mem_gib, lifetime_s=req.lifetime_s,
                service=service_of(req), cpu_req=req.cpu_cores, mem_req=req.mem_gib))
            if placed:
                if choice.headroom >= 0:
                    self.backend.set_knob(choice.headroom)
                self._decide_final(req, key, "placed", node_id, node_id, choice.cpu_cores,
                                   choice.mem_gib, t0, reason=choice.reason or None)
                return
            # The backend's own guard refused it (its state moved since the view was taken):
            # never break capacity or the budget, hand it on instead.
            reason = "the backend's guard refused the placement"
        else:
            reason = choice.reason
        if choice.kind == "reject" or req.offloaded_from is not None:
            self._decide_final(req, key, "rejected", None, None, 0.0, 0.0, t0,
                               reason=reason or "no node fits")
            return
        self._offload(req, key, received_at, reason)

    def _queue_fill(self) -> float:
        return self._waiting_count() / self.config.queue_max

    def _decide_final(self, req: p.Request, key: str, outcome: str, location: str | None,
                      node: str | None, cpu: float, mem: float, t0: float,
                      reason: str | None = None, policy: str | None = None,
                      decision_us: float | None = None) -> None:
        decision = p.Decision(
            request_id=req.request_id, site=self.site, outcome=outcome,  # type: ignore[arg-type]
            location=location, node=node, cpu_cores=cpu, mem_gib=mem,
            policy=policy or self.decider.policy_label,
            decision_us=decision_us if decision_us is not None
            else (time.perf_counter() - t0) * 1e6,
            app=req.app, container=req.container, reason=reason,
            offloaded_from=req.offloaded_from, decided_at_s=time.time(),
        )
        payload = decision.to_bytes()
        self._waiting.pop(key, None)  # copies still queued get this decision from the store
        self.store.put_decision(key, outcome, payload)
        self.store.enqueue(self._decisions_topic, payload)
        self.counts[outcome] += 1

    def _offload(self, req: p.Request, key: str, received_at: float, reason: str) -> None:
        nodes = self.backend.nodes()
        cores = float(nodes.cores[nodes.exists].sum()) or 1.0
        mem = float(nodes.mem_gib[nodes.exists].sum()) or 1.0
        offload = p.Offload(
            site=self.site, request=req, reason=reason or "offloaded",
            context=p.SiteContext(
                site_index=self.backend.site_index, power_w=self.backend.power_w(),
                budget_w=self.backend.budget_w,
                free_cpu_frac=1.0 - float(nodes.alloc_cpu.sum()) / cores,
                free_mem_frac=1.0 - float(nodes.alloc_mem.sum()) / mem,
                wan_rtt_ms=self.backend.wan_rtt_ms, queue=self._waiting_count()),
            offloaded_at_s=time.time(),
        ).to_bytes()
        self._waiting.pop(key, None)  # copies still queued are duplicates of a pending offload
        self.store.put_pending(PendingOffload(key, req.to_bytes(), offload, received_at))
        self.store.enqueue(p.OFFLOAD_TOPIC, offload)

    # --- offload results and the cloud's status ------------------------------------------------

    def _on_offload_result(self, msg: Incoming, replies: list[tuple[str, bytes]]) -> None:
        result = p.decode(msg.payload, p.OffloadResult)
        if result.site != self.site:
            raise p.ProtocolError(f"offload result for site {result.site!r} sent to "
                                  f"{self.site!r}", result.request_id)
        pending = self.store.pending(result.request_id)
        if pending is None:
            if self.store.decision(result.request_id) is not None:
                return  # a redelivered result: already final
            raise p.ProtocolError("no offload is pending for this request id", result.request_id)
        req = p.Request.model_validate_json(pending.request)
        placed = result.outcome == "placed"
        self.store.drop_pending(pending.key)
        if placed and result.location:
            self.peers.record(req.app, req.container, result.location)
        self._decide_final(
            req, pending.key, "offloaded" if placed else "rejected",
            result.location if placed else None, result.node if placed else None,
            result.cpu_cores if placed else 0.0, result.mem_gib if placed else 0.0, 0.0,
            reason=result.reason, policy=f"{self.decider.policy_label}+{result.policy}"[:128],
            decision_us=max(0.0, (time.time() - pending.received_at) * 1e6),
        )

    def _on_cloud_status(self, msg: Incoming) -> None:
        if not msg.payload:  # the retained status was cleared: no cloud agent any more
            self._cloud_online = False
            return
        status = p.decode(msg.payload, p.Status)
        if status.agent != "cloud":
            return
        was_online, started = self._cloud_online, self._cloud_started
        self._cloud_online = status.state == "online"
        if status.pool_free_cpu_frac is not None:
            self._cloud_free = status.pool_free_cpu_frac
        if self._cloud_online and (not was_online or status.started_at_s != started):
            self._resend_offloads = True  # a (re)started cloud may have missed them
        self._cloud_started = status.started_at_s

    # --- outbox ------------------------------------------------------------------------------

    def _flush_outbox(self) -> None:
        transport = self.transport
        if transport is None or not transport.connected:
            return
        room = self.config.outbox_inflight_max - len(self._inflight)
        if room <= 0:
            return
        for row in self.store.outbox_after(self._handed_id, room):
            info = transport.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            self._inflight.append((row.id, info))
            self._handed_id = row.id

    def _acknowledged_rows(self) -> list[int]:
        """Outbox ids at the head of the in-flight queue that the broker acknowledged, taken
        off it (acks come in order but for the odd one: `_confirm_sent` finds those)."""
        done: list[int] = []
        while self._inflight and acknowledged(self._inflight[0][1]):
            done.append(self._inflight.popleft()[0])
        return done

    def _confirm_sent(self, full: bool = False) -> None:
        """Forget outbox rows the broker acknowledged (lazily: a row forgotten late is at
        worst sent twice after a crash, and every message is idempotent). While requests
        come, each batch's commit forgets them (step); this commit of its own is for quiet
        times, at most every CONFIRM_INTERVAL_S: a commit on the loop delays a request
        that arrives meanwhile, which every 50 ms was one request in fifty at 1,000/s."""
        now = time.monotonic()
        if not full and now < self._next_confirm and len(self._inflight) < 256:
            return
        self._next_confirm = now + CONFIRM_INTERVAL_S
        done = self._acknowledged_rows()
        if self._inflight and (full or now >= self._next_scan):
            self._next_scan = now + 1.0  # acks can come out of order: look at all now and then
            keep: deque[tuple[int, mqtt.MQTTMessageInfo]] = deque()
            for row_id, info in self._inflight:
                (done.append(row_id) if acknowledged(info) else keep.append((row_id, info)))
            self._inflight = keep
        if done:
            with self.store.transaction():
                self.store.sent(done)

    # --- periodic work ---------------------------------------------------------------------------

    def _periodic(self) -> None:
        now = time.monotonic()
        self.backend.advance()
        self.decider.sample_usage()  # the services' statistics
        if now >= self._next_offload_retry:
            self._next_offload_retry = now + self.config.offload_retry_s
            if self.store.pending_count():
                self._resend_offloads = True  # the ultimate recovery: a timeout
        if self._resend_offloads:
            self._resend_offloads = False
            pending = self.store.all_pending()
            if pending:
                log.info("sending %d pending offloads to the cloud again", len(pending))
                with self.store.transaction():
                    for item in pending:
                        self.store.enqueue(p.OFFLOAD_TOPIC, item.offload)
        if now >= self._next_telemetry:
            self._next_telemetry = now + self.config.telemetry_interval_s
            self._send_telemetry()
        if now >= self._next_prune:
            self._next_prune = now + 3600.0
            with self.store.transaction():
                self.store.prune_decisions(time.time() - self.config.decision_retention_s)

    def telemetry(self) -> p.Telemetry:
        n = self.backend.nodes()
        nodes = [
            p.NodeState(
                id=n.ids[j], cores=float(n.cores[j]), mem_gib=float(n.mem_gib[j]),
                alloc_cpu_cores=float(n.alloc_cpu[j]), alloc_mem_gib=float(n.alloc_mem[j]),
                used_cpu_cores=float(n.used_cpu[j]), asleep=bool(n.asleep[j]),
                power_w=float(n.power_w[j]), idle_w=float(n.idle_w[j]),
                max_w=float(n.max_w[j]), sleep_w=float(n.sleep_w[j]),
                containers=int(n.containers[j]),
            )
            for j in range(len(n.ids)) if n.exists[j]
        ]
        return p.Telemetry(
            site=self.site, site_index=self.backend.site_index, time_s=time.time(),
            power_w=self.backend.power_w(), budget_w=self.backend.budget_w,
            throttle=min(max(self.backend.throttle(), 0.0), 1.0),
            wan_rtt_ms=self.backend.wan_rtt_ms, queue=self._waiting_count(),
            pending_offloads=self.store.pending_count(), containers=self.backend.containers(),
            decisions=p.DecisionCounts(**self.counts), policy=self.decider.policy_label,
            knob=self.backend.knob(), nodes=nodes,
        )

    def _send_telemetry(self) -> None:
        if self.transport is None or not self.transport.connected:
            return
        try:
            payload = self.telemetry().to_bytes()
        except Exception:
            log.exception("could not build telemetry")
            return
        self.transport.publish(p.telemetry_topic(self.site), payload, qos=0)
