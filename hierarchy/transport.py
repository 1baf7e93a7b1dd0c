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
  There, paho reads from a buffer filled by one large `recv` (`_BufferedClient`), not one
  system call per header byte, and a lone ack does not wake `poll` (a socket low-water mark,
  `_quiet_small_packets`): it is read with the next message, or when the wait ends.
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
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

# Below these many bytes a socket read by `poll` does not wake it (see _quiet_small_packets):
# a few PUBACKs (4 bytes each; in TLS 1.3 records of about 26), fewer than the smallest
# message the agents receive (a request, a result or a status is a hundred bytes or more).
_QUIET_BYTES = 24
_QUIET_BYTES_TLS = 64


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
        self.client = _BufferedClient(
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
        self.client.buffered_reads = True
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
        held = c.held_bytes()  # select cannot see bytes already read off the socket
        try:
            writable = select.select(
                [sock], [sock] if c.want_write() else [], [], 0.0 if held else timeout_s)[1]
        except (OSError, ValueError):  # closed under us: the reads below find out
            writable = []
        # Read even when select saw nothing: acks smaller than the socket's low-water mark
        # (see _quiet_small_packets) do not wake it; they are read here, at the latest when
        # `timeout_s` ends (one recv that would block, when there is nothing).
        rc = self._read(max_packets)
        if rc == mqtt.MQTT_ERR_SUCCESS and c.socket() is not None and (
                writable or c.want_write()):
            rc = c.loop_write()
        if rc == mqtt.MQTT_ERR_SUCCESS and c.socket() is not None:
            c.loop_misc()  # keepalive pings; drops a connection whose broker went quiet
        if c.socket() is None:
            self._connected.clear()
            self._retry_at = time.monotonic() + self._next_retry_delay()

    def _read(self, max_packets: int) -> int:
        """Read until the socket had nothing more at its last `recv` and nothing read is left
        unhandled: no `select` between packets."""
        c = self.client
        c.drained = False
        rc = mqtt.MQTT_ERR_SUCCESS
        for _ in range(max_packets):  # paho reads one packet or more per call
            rc = c.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS or c.socket() is None:
                break
            if c.drained and not c.held_bytes():
                break
        return rc

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
        if self._inline:
            _quiet_small_packets(client.socket(), self.config.tls)
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


_PUBACK = 0x40
_PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)
_PUBACK_PROPERTIES = Properties(PacketTypes.PUBACK)


class _BufferedClient(mqtt.Client):
    """A paho client whose reads, with `buffered_reads` on, come from a buffer, and which
    takes a plain PUBACK without decoding objects no one reads.

    paho 2.x reads a packet's fixed header one byte at a time, a `recv` each, then its
    body: 3-4 system calls a packet, and a `select` between packets. Here one `recv` of up
    to RECV_BYTES fills a buffer that serves those reads, so a packet, or a burst of them,
    costs one call. A reader must then keep reading while `held_bytes()` is non-zero
    (`select` cannot see bytes already taken off the socket), and `drained` says whether the
    last `recv` took all the socket had. Only for a caller that runs the network itself
    (`MqttTransport.poll`): paho's own thread selects between packets, so it reads unbuffered.
    It overrides two of paho's internal methods (`_sock_recv`, `_packet_handle`), which is why
    pyproject.toml holds paho-mqtt below 3; tests/test_transport.py runs both paths.
    """

    RECV_BYTES = 65536

    buffered_reads = False
    drained = False  # the last recv took all the socket had (or would have blocked)
    _held = b""
    _held_pos = 0
    _held_sock: Any = None  # the socket the held bytes came from

    def held_bytes(self) -> int:
        """Bytes received and not handed to paho yet: ours, then what TLS holds decrypted."""
        self._forget_other_sockets()
        pending = getattr(self._sock, "pending", None)
        return len(self._held) - self._held_pos + (pending() if pending is not None else 0)

    def _packet_handle(self) -> mqtt.MQTTErrorCode:
        # A plain PUBACK (2 bytes: its message id, success) without paho's decoding into
        # reason-code and properties objects, which no one reads without an on_publish.
        body = self._in_packet["packet"]
        if (self._in_packet["command"] & 0xF0) == _PUBACK and len(body) == 2 \
                and self.on_publish is None:
            mid = (body[0] << 8) | body[1]
            with self._out_message_mutex:
                if mid in self._out_messages:
                    return self._do_on_publish(mid, _PUBACK_SUCCESS, _PUBACK_PROPERTIES)
            return mqtt.MQTT_ERR_SUCCESS
        return super()._packet_handle()

    def _sock_recv(self, bufsize: int) -> bytes:
        if not self.buffered_reads:
            return super()._sock_recv(bufsize)
        self._forget_other_sockets()
        held, pos = self._held, self._held_pos
        if pos >= len(held):
            try:
                data = super()._sock_recv(self.RECV_BYTES)
            except BlockingIOError:
                self.drained = True
                raise
            # A short read took all the socket had: what comes after makes it readable
            # again for the next select (TLS: what it decrypted and holds, held_bytes counts).
            self.drained = len(data) < self.RECV_BYTES
            if len(data) <= bufsize:  # all of it wanted (or the connection closed: b"")
                return data
            held, pos = data, 0
            self._held = held
        chunk = held[pos:pos + bufsize]
        self._held_pos = pos + len(chunk)
        if self._held_pos >= len(held):
            self._held, self._held_pos = b"", 0
        return chunk

    def _forget_other_sockets(self) -> None:
        if self._held_sock is not self._sock:  # a new connection: the old bytes are void
            self._held, self._held_pos, self._held_sock = b"", 0, self._sock


class _QuietAfterDisconnect(logging.Filter):
    """Drops the error paho 2.x logs when its loop runs once more after a clean disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


def _quiet_small_packets(sock: Any, tls: bool) -> None:
    """Let only a packet bigger than an ack or two make the socket readable (SO_RCVLOWAT).

    Each decision the edge agent publishes comes back as a PUBACK (4 bytes) a few tens of
    microseconds later, just when the broker forwards the decision to its subscriber: a
    wake-up of the agent for it competes with that subscriber for the cores. Below the mark
    such packets wait in the socket and are read with the next message, or when `poll`'s
    timeout ends (`poll` reads then even though select saw nothing). Set once connected:
    during the (TLS) handshake the socket blocks, and a blocking read would wait for the
    mark. Where the option is missing, every packet wakes `poll`, as before."""
    if sock is None or not hasattr(socket, "SO_RCVLOWAT"):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT,
                        _QUIET_BYTES_TLS if tls else _QUIET_BYTES)
    except (OSError, AttributeError):
        pass


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
