"""The cloud agent: keeps the global view and places what the edge sites offload.

An offload (`cloud/offload`) goes, by the cloud-level rule (cloud_agent.placement), to:
- another edge site with room: the cloud forwards the request to that site's requests topic
  with `offloaded_from` set; that site places it or rejects it (it never offloads it back),
  and its decision tells the cloud what to answer; if it refuses, or says nothing within
  `forward_timeout_s`, the container goes to the pool instead;
- the cloud pool, which the cloud agent allocates itself;
- nowhere (rejected) when nothing has room.
The answer goes to `sites/{origin}/offload-results`. Offloads are idempotent by (origin site,
request id): a repeated offload gets the same answer again.

Threads: paho's network thread queues messages; one loop thread handles them and the periodic
work; `lock` guards the state the REST handlers read.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cloud_agent.config import CloudConfig
from cloud_agent.placement import choose
from cloud_agent.state import CloudPool, DecisionLog, Locations, SiteState
from hierarchy import protocol as p
from hierarchy.policies.cloud_level import NearPeersCloudRule
from hierarchy.scenario import load_scenario
from hierarchy.transport import Incoming, MqttTransport, StatusMessages

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
CLOUD_POLICY = f"{NearPeersCloudRule.name}@1"


@dataclass
class Forward:
    """An offloaded request the cloud forwarded to another site, waiting for its decision."""

    offload: p.Offload
    site: str
    deadline: float  # monotonic
    started: float  # perf_counter when the offload came in
    excluded: frozenset[str]  # sites tried before (they refused or did not answer)


class CloudAgent:
    """The coordinator's MQTT side. `start()`/`stop()`; state is read under `lock`."""

    def __init__(self, config: CloudConfig) -> None:
        self.config = config
        sc = load_scenario(config.scenario)
        edge_types = [sc.node_types[n] for g in sc.sites for n in g.nodes]
        self.encoder_shape = (sc.max_app_size, max(t.cpu_cores for t in edge_types),
                              max(t.mem_gib for t in edge_types))
        self.pool = CloudPool.from_scenario(sc, speed=config.speed)
        self.sites: dict[str, SiteState] = {}
        self.locations = Locations()
        self.decisions = DecisionLog(config.decisions_kept)
        self.results: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self.forwards: dict[tuple[str, str], Forward] = {}
        self.stats = {"offloads": 0, "to_pool": 0, "to_sites": 0, "rejected": 0,
                      "refused_messages": 0, "duplicate_offloads": 0, "forward_timeouts": 0}
        self.lock = threading.RLock()
        self.started_at = time.time()
        self.incoming: queue.SimpleQueue[Incoming] = queue.SimpleQueue()
        self.transport: MqttTransport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_status = 0.0
        self._last_free: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def status(self, state: str) -> p.Status:
        return p.Status(agent="cloud", id="cloud", state=state, started_at_s=self.started_at,
                        version=AGENT_VERSION, policy=CLOUD_POLICY,
                        rest_url=self.config.rest_url,
                        pool_free_cpu_frac=min(max(self.pool.free_cpu_frac(), 0.0), 1.0))

    def start(self) -> None:
        self.transport = MqttTransport(
            self.config.mqtt.broker_config(self.config.broker),
            client_id=self.config.client_id,
            on_message=self.incoming.put,
            subscriptions=[(p.site_topic("+", "status"), 1), (p.site_topic("+", "telemetry"), 0),
                           (p.site_topic("+", "decisions"), 1), (p.OFFLOAD_TOPIC, 1)],
            status=StatusMessages(p.CLOUD_STATUS_TOPIC, self.status("online").to_bytes(),
                                  self.status("offline").to_bytes()),
        )
        self.transport.start()
        self._thread = threading.Thread(target=self._loop, name="cloud-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self.transport is not None:
            self.transport.stop()

    @property
    def connected(self) -> bool:
        return self.transport is not None and self.transport.connected

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.incoming.get(timeout=0.05)
            except queue.Empty:
                msg = None
            with self.lock:
                if msg is not None:
                    self.handle(msg)
                self._periodic()

    # --- messages ----------------------------------------------------------------------------

    def handle(self, msg: Incoming) -> None:
        """Act on one message; a refused one is answered on the sender's errors topic."""
        parsed = p.parse_site_topic(msg.topic)
        try:
            if msg.topic == p.OFFLOAD_TOPIC:
                self._on_offload(msg)
            elif parsed is not None:
                site, kind = parsed
                if kind == "status":
                    self._on_status(site, msg)
                elif kind == "telemetry":
                    self._on_telemetry(site, msg)
                elif kind == "decisions":
                    self._on_decision(site, msg)
        except p.ProtocolError as exc:
            self.stats["refused_messages"] += 1
            log.info("refused a message on %s: %s", msg.topic, exc.reason)
            self._error(msg, exc.ref, exc.reason)
        except Exception as exc:  # bad input must never stop the cloud
            log.exception("failed on a message on %s", msg.topic)
            self._error(msg, None, f"internal error: {type(exc).__name__}")

    def _error(self, msg: Incoming, ref: str | None, reason: str) -> None:
        parsed = p.parse_site_topic(msg.topic)
        site = parsed[0] if parsed else _site_in(msg.payload)
        if parsed and parsed[1] == "errors":
            return
        topic = p.errors_topic(site) if site else p.CLOUD_ERRORS_TOPIC
        self._publish(topic, p.ErrorReply(ref=ref, topic=msg.topic[:512],
                                          reason=reason[:1000]).to_bytes())

    def _publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        if self.transport is not None:
            self.transport.publish(topic, payload, qos=qos, retain=retain)

    def site(self, name: str) -> SiteState:
        if name not in self.sites:
            self.sites[name] = SiteState(name)
        return self.sites[name]

    def _on_status(self, site: str, msg: Incoming) -> None:
        if not msg.payload:  # a cleared retained status: the site was removed
            self.sites.pop(site, None)
            return
        status = p.decode(msg.payload, p.Status)
        st = self.site(site)
        st.status = status
        st.online = status.state == "online"
        st.seen()

    def _on_telemetry(self, site: str, msg: Incoming) -> None:
        t = p.decode(msg.payload, p.Telemetry)
        if t.site != site:
            raise p.ProtocolError(f"telemetry of site {t.site!r} on the topic of {site!r}")
        st = self.site(site)
        st.telemetry = t
        st.telemetry_at = time.monotonic()
        st.seen()

    def _on_decision(self, site: str, msg: Incoming) -> None:
        d = p.decode(msg.payload, p.Decision)
        if d.site != site:
            raise p.ProtocolError(f"decision of site {d.site!r} on the topic of {site!r}",
                                  d.request_id)
        st = self.site(site)
        st.seen()
        st.decisions_seen[d.outcome] += 1
        self.decisions.add(d)
        if d.app and d.container:
            if d.outcome == "placed":
                self.locations.record(d.app, d.container, site)
            elif d.outcome == "offloaded" and d.location:
                self.locations.record(d.app, d.container, d.location)
        if d.offloaded_from is not None:
            self._on_forward_decided(site, d)

    # --- offloads ------------------------------------------------------------------------------

    def _on_offload(self, msg: Incoming) -> None:
        t0 = time.perf_counter()
        offload = p.decode(msg.payload, p.Offload)
        key = (offload.site, offload.request.request_id)
        self.site(offload.site).seen()
        if key in self.results:  # asked again: the same answer
            self.stats["duplicate_offloads"] += 1
            self._publish(p.offload_results_topic(offload.site), self.results[key])
            return
        if key in self.forwards:
            self.stats["duplicate_offloads"] += 1
            return
        self.stats["offloads"] += 1
        self._place(offload, t0, exclude=frozenset())

    def _place(self, offload: p.Offload, t0: float, exclude: frozenset[str]) -> None:
        dest = choose(offload, self.sites, self.pool, self.locations, self.encoder_shape,
                      self.config.telemetry_stale_s, len(self.forwards) / 128.0, exclude)
        req = offload.request
        if dest.kind == "site" and dest.site is not None:
            forwarded = req.model_copy(update={"offloaded_from": offload.site})
            self.forwards[(offload.site, req.request_id)] = Forward(
                offload, dest.site, time.monotonic() + self.config.forward_timeout_s, t0,
                exclude)
            self._publish(p.requests_topic(dest.site), forwarded.to_bytes())
            return
        if dest.kind == "pool":
            node = self.pool.place(f"{offload.site}/{req.request_id}", req.cpu_cores,
                                   req.mem_gib, req.lifetime_s)
            if node is not None:
                self.stats["to_pool"] += 1
                self.locations.record(req.app, req.container, p.CLOUD_LOCATION)
                self._answer(offload, t0, "placed", p.CLOUD_LOCATION, self.pool.nodes[node].id,
                             req.cpu_cores, req.mem_gib)
                return
        self.stats["rejected"] += 1
        self._answer(offload, t0, "rejected", None, None, 0.0, 0.0,
                     reason="no edge site and no cloud node has room for it")

    def _on_forward_decided(self, site: str, d: p.Decision) -> None:
        key = (d.offloaded_from or "", d.request_id)
        fwd = self.forwards.get(key)
        if fwd is None or fwd.site != site:
            return  # not ours, or already settled (e.g. timed out)
        del self.forwards[key]
        if d.outcome == "placed":
            self.stats["to_sites"] += 1
            self._answer(fwd.offload, fwd.started, "placed", site, d.node, d.cpu_cores,
                         d.mem_gib)
        else:  # the site refused after all: try elsewhere, never the same site again
            self._place(fwd.offload, fwd.started, exclude=fwd.excluded | {site})

    def _answer(self, offload: p.Offload, t0: float, outcome: str, location: str | None,
                node: str | None, cpu: float, mem: float, reason: str | None = None) -> None:
        result = p.OffloadResult(
            request_id=offload.request.request_id, site=offload.site,
            outcome=outcome,  # type: ignore[arg-type]
            location=location, node=node, cpu_cores=cpu, mem_gib=mem, policy=CLOUD_POLICY,
            cloud_us=(time.perf_counter() - t0) * 1e6, reason=reason,
        ).to_bytes()
        key = (offload.site, offload.request.request_id)
        self.results[key] = result
        while len(self.results) > 200_000:
            self.results.popitem(last=False)
        self._publish(p.offload_results_topic(offload.site), result)

    # --- periodic ------------------------------------------------------------------------------

    def _periodic(self) -> None:
        now = time.monotonic()
        self.pool.expire()
        for key, fwd in list(self.forwards.items()):
            if now >= fwd.deadline:
                del self.forwards[key]
                self.stats["forward_timeouts"] += 1
                log.warning("site %s did not answer for %s within %.1f s; trying elsewhere",
                            fwd.site, key[1], self.config.forward_timeout_s)
                self._place(fwd.offload, fwd.started, exclude=fwd.excluded | {fwd.site})
        free = round(self.pool.free_cpu_frac(), 3)
        if now >= self._next_status or (self._last_free is not None
                                        and abs(free - self._last_free) >= 0.05):
            if self.connected:
                self._next_status = now + self.config.status_interval_s
                self._last_free = free
                self._publish(p.CLOUD_STATUS_TOPIC, self.status("online").to_bytes(), retain=True)

    # --- what the REST API shows ---------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        with self.lock:
            now = time.time()
            return {
                "cloud": {
                    "mqtt_connected": self.connected,
                    "broker": self.transport.config.url if self.transport else None,
                    "started_at_s": self.started_at,
                    "version": AGENT_VERSION,
                    "policy": CLOUD_POLICY,
                },
                "sites": [self.sites[s].summary(now) for s in sorted(self.sites)],
                "pool": self.pool.summary(),
                "offloads": {**self.stats, "waiting_on_sites": len(self.forwards)},
            }

    def forget_site(self, site: str) -> bool:
        """Drop `site` from the view and clear its retained status; False if unknown."""
        with self.lock:
            if site not in self.sites or not p.is_site_id(site):
                return False
            del self.sites[site]
        self._publish(p.status_topic(site), b"", retain=True)  # empty retained: cleared
        return True

    def site_detail(self, site: str) -> dict[str, Any] | None:
        with self.lock:
            st = self.sites.get(site)
            if st is None:
                return None
            out = st.summary(time.time())
            out["status"] = st.status.model_dump(by_alias=True) if st.status else None
            out["telemetry"] = (st.telemetry.model_dump(by_alias=True)
                                if st.telemetry else None)
            return out


def _site_in(payload: bytes) -> str | None:
    """The `site` field of a payload that failed validation, when it names a site."""
    try:
        obj = json.loads(payload[: p.MAX_PAYLOAD_BYTES])
    except (ValueError, RecursionError):
        return None
    site = obj.get("site") if isinstance(obj, dict) else None
    return site if isinstance(site, str) and p.is_site_id(site) else None
