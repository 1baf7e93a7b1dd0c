"""The MQTT client both agents use: paho-mqtt 2.x with the settings the hierarchy relies on.

- persistent sessions (a stable client id; MQTT 5 with clean_start off and a session expiry,
  or 3.1.1 with clean_session off, the session then kept as long as the broker's
  `persistent_client_expiration`), QoS 1 by default, so an outage loses nothing; a session
  expiry of 0 asks for a session that ends with the connection, in either version;
- subscriptions made in `on_connect`, so every reconnect restores them;
- reconnects with exponential backoff (in paho's network thread, or in `poll`);
- a retained status message on connect, and the same topic as last will (`offline`);
- TCP_NODELAY on every socket: without it a QoS 1 round trip on loopback costs ~88 ms
  (Nagle's algorithm and delayed ACKs), with it ~0.25 ms;
- username/password and TLS options;
- two ways to run the network: `start()` runs it in paho's thread (`publish` may then be
  called from any thread; incoming messages go to one callback, called in that thread: hand
  them to a queue, the callback must not block), or `open()` leaves it to the caller, who
  calls `poll()` in its own loop (callbacks run inside `poll`, publishes are written at once).
  The second spares a thread hand-off and a wake-up of paho's thread per message each way:
  the edge agent's decision loop runs the network itself for its latency and throughput.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class BrokerConfig(BaseModel):
    """Where the broker is and how to talk to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="broker port")
    username: str | None = Field(default=None, description="MQTT user name")
    password: str | None = Field(default=None, description="MQTT password", repr=False)
    tls: bool = Field(default=False, description="connect with TLS")
    ca_file: str | None = Field(default=None, description="CA bundle (TLS); default: system")
    cert_file: str | None = Field(default=None, description="client certificate (TLS)")
    key_file: str | None = Field(default=None, description="client key (TLS)")
    mqtt_version: Literal["5", "3.1.1"] = Field(default="5", description="protocol version")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="keepalive interval, s")
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, description="how long the broker keeps our session, s (MQTT "
        "5; with 3.1.1 the broker decides, and 0 means a clean session)"
    )
    reconnect_min_s: int = Field(default=1, ge=1, description="first reconnect delay, s")
    reconnect_max_s: int = Field(default=30, ge=1, description="longest reconnect delay, s")
    max_inflight: int = Field(default=1000, ge=1, description="QoS>0 messages in flight")

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> BrokerConfig:
        """`mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, default port 8883)."""
        text = url if "://" in url else f"mqtt://{url}"
        parts = urlsplit(text)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError(f"broker URL {url!r}: invalid port") from None
        fields: dict[str, Any] = {"host": parts.hostname, "port": port, "tls": tls}
        if parts.username:
            fields["username"] = unquote(parts.username)
        if parts.password:
            fields["password"] = unquote(parts.password)
        fields.update(overrides)
        return cls(**fields)

    @property
    def url(self) -> str:
        """The broker's address as a URL, without credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Incoming:
    """One received message."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


@dataclass(frozen=True)
class StatusMessages:
    """The retained status topic, what to publish there on connect and the last will."""

    topic: str
    online: bytes
    offline: bytes


class MqttTransport:
    """A paho client with the hierarchy's settings; `start()` returns at once, it connects
    (and reconnects) in the background."""

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        on_message: Callable[[Incoming], None],
        subscriptions: Sequence[tuple[str, int]] = (),
        status: StatusMessages | None = None,
        manual_ack: bool = False,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.status = status
        self.manual_ack = manual_ack
        self._on_message = on_message
        self._on_connect_hook = on_connect
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._inline = False  # open(): the caller runs the network with poll()
        self._retry_at = 0.0  # inline: when to try to connect again
        self._retry_delay_s = 0.0
        self.connects = 0  # successful connections so far (reconnects included)
        v5 = config.mqtt_version == "5"
        self._v5 = v5
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else config.session_expiry_s == 0,
            manual_ack=manual_ack,
        )
        c = self.client
        paho_log = logging.getLogger(f"{__name__}.paho")
        if not any(isinstance(f, _QuietAfterDisconnect) for f in paho_log.filters):
            paho_log.addFilter(_QuietAfterDisconnect())
        c.enable_logger(paho_log)
        c.max_inflight_messages_set(config.max_inflight)
        c.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        if config.username is not None:
            c.username_pw_set(config.username, config.password)
        if config.tls:
            # Verifies the broker's certificate and host name; TLS 1.2 at least.
            context = ssl.create_default_context(cafile=config.ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if config.cert_file:
                context.load_cert_chain(config.cert_file, config.key_file)
            c.tls_set_context(context)
        if status is not None:
            c.will_set(status.topic, status.offline, qos=1, retain=True)
        c.on_connect = self._handle_connect
        c.on_disconnect = self._handle_disconnect
        c.on_message = self._handle_message
        c.on_socket_open = _set_nodelay

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; reconnects with backoff until `stop()`."""
        if self._started:
            return
        self._started = True
        props = None
        kwargs: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.config.session_expiry_s
            kwargs["clean_start"] = False
        self.client.connect_async(self.config.host, self.config.port,
                                  keepalive=self.config.keepalive_s, properties=props, **kwargs)
        if not self._inline:
            self.client.loop_start()

    def open(self) -> None:
        """Like `start()`, but no thread: the caller runs the network with `poll()` (from one
        thread, the one that publishes and acknowledges too)."""
        self._inline = True
        self.start()

    def poll(self, timeout_s: float, max_packets: int = 10_000) -> None:
        """(After `open()`.) Wait up to `timeout_s` for the broker, then read what it sent
        (callbacks run here, up to about `max_packets` packets), write what is queued, keep
        the connection alive; while disconnected, connect again with backoff."""
        c = self.client
        sock = c.socket()
        if sock is None:
            self._reconnect_when_due(timeout_s)
            return
        # TLS may hold decrypted bytes the socket no longer shows as readable.
        buffered = bool(getattr(sock, "pending", lambda: 0)())
        try:
            readable, writable, _ = select.select(
                [sock], [sock] if c.want_write() else [], [], 0.0 if buffered else timeout_s)
        except (OSError, ValueError):  # closed under us: the reads below find out
            readable, writable = [sock], []
        rc = mqtt.MQTT_ERR_SUCCESS
        for _ in range(max_packets):  # paho reads about one packet per call
            if not (readable or buffered) or c.socket() is None:
                break
            rc = c.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS or c.socket() is None:
                break
            sock = c.socket()
            buffered = bool(getattr(sock, "pending", lambda: 0)())
            readable = select.select([sock], [], [], 0.0)[0] if not buffered else [sock]
        if rc == mqtt.MQTT_ERR_SUCCESS and c.socket() is not None and (
                writable or c.want_write()):
            rc = c.loop_write()
        if rc == mqtt.MQTT_ERR_SUCCESS and c.socket() is not None:
            c.loop_misc()  # keepalive pings; drops a connection whose broker went quiet
        if c.socket() is None:
            self._connected.clear()
            self._retry_at = time.monotonic() + self._next_retry_delay()

    def _reconnect_when_due(self, timeout_s: float) -> None:
        wait_s = self._retry_at - time.monotonic()
        if wait_s > 0:
            time.sleep(min(wait_s, timeout_s))
            return
        try:
            self.client.reconnect()  # the CONNACK comes in a later poll
        except OSError as exc:
            log.debug("connecting to %s failed: %s", self.config.url, exc)
            self._retry_at = time.monotonic() + self._next_retry_delay()

    def _next_retry_delay(self) -> float:
        """Exponential backoff between reconnect_min_s and reconnect_max_s, as paho's thread
        does; a successful connection starts it afresh."""
        self._retry_delay_s = min(max(self._retry_delay_s * 2, self.config.reconnect_min_s),
                                  self.config.reconnect_max_s)
        return self._retry_delay_s

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Publish `offline` (a clean disconnect sends no will), disconnect, stop the thread."""
        if not self._started:
            return
        self._started = False
        if self.status is not None and self.connected:
            info = self.publish(self.status.topic, self.status.offline, qos=1, retain=True)
            self._wait_published(info, timeout_s)
        self._connected.clear()  # a disconnect we asked for is no warning
        self.client.disconnect()
        if self._inline:
            if self.client.socket() is not None:
                self.client.loop_write()  # the DISCONNECT, if it is still queued
        else:
            self.client.loop_stop()
        self._connected.clear()

    def _wait_published(self, info: mqtt.MQTTMessageInfo, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not acknowledged(info):
            if time.monotonic() > deadline:
                return False
            if self._inline:
                self.poll(0.005)
            else:
                time.sleep(0.002)
        return True

    # --- sending ---------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 1,
                retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a message (thread-safe). QoS>0 messages published while disconnected are sent
        on reconnect; `info.is_published()` turns true when the broker acknowledged it."""
        with self._lock:
            return self.client.publish(topic, payload, qos=qos, retain=retain)

    @contextmanager
    def corked(self) -> Iterator[None]:
        """(After `open()`.) What is published or acknowledged inside leaves at the end, in
        as few TCP segments as it fits in (Linux TCP_CORK; elsewhere as it comes): one
        wake-up of the broker for a group of messages, not one per message."""
        sock = self.client.socket() if self._inline else None
        cork = getattr(socket, "TCP_CORK", None)
        corked = False
        if sock is not None and cork is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
                corked = True
            except (OSError, AttributeError):  # not a TCP socket: send as it comes
                pass
        try:
            yield
        finally:
            if corked:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, cork, 0)  # sends what is held
                except (OSError, AttributeError):  # the connection went: paho finds out
                    pass

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (only with `manual_ack`), once it is safe to."""
        if self.manual_ack and qos > 0:
            with self._lock:
                self.client.ack(mid, qos)

    # --- paho callbacks (paho's network thread, or inside poll) --------------------------------

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                        reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("broker %s refused the connection: %s", self.config.url, reason_code)
            return
        self.connects += 1
        self._retry_delay_s = 0.0
        log.info("connected to %s as %s (session present: %s)", self.config.url,
                 self.client_id, getattr(flags, "session_present", None))
        if self.subscriptions:
            client.subscribe([(topic, qos) for topic, qos in self.subscriptions])
        if self.status is not None:
            client.publish(self.status.topic, self.status.online, qos=1, retain=True)
        self._connected.set()
        if self._on_connect_hook is not None:
            try:
                self._on_connect_hook()
            except Exception:  # a hook must never kill the network thread
                log.exception("on_connect hook failed")

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                           reason_code: Any, properties: Any) -> None:
        if self._connected.is_set():
            log.warning("disconnected from %s: %s", self.config.url, reason_code)
        self._connected.clear()

    def _handle_message(self, client: mqtt.Client, userdata: Any,
                        message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.ack(message.mid, message.qos)
            return
        try:
            self._on_message(Incoming(topic, bytes(message.payload), message.qos,
                                      bool(message.retain), message.mid))
        except Exception:
            log.exception("message handler failed on %s", topic)


class _QuietAfterDisconnect(logging.Filter):
    """Drops the error paho 2.x logs when its loop runs once more after a clean disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


def _set_nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # e.g. a unix socket
        pass


def acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged a message handed to `publish`.

    paho's `is_published()` raises for a message published while disconnected (rc NO_CONN),
    although paho keeps such a message and sends it on reconnect: read its flag instead, so
    a broker outage is a delay, not an exception in the caller's loop."""
    if info.rc == mqtt.MQTT_ERR_NO_CONN:
        with info._condition:
            return bool(info._published)
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # never queued (e.g. paho's queue was full)
        return False
