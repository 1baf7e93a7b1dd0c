"""The inline MQTT transport (`MqttTransport.open` + `poll`) against a real broker: buffered
reads, acks below the socket's low-water mark, and the edge loop's garbage-collector window."""

from __future__ import annotations

import gc
import socket
import sys
import time
import uuid

import pytest
from mqtt_fixtures import Broker, broker_fixture  # noqa: F401

from edge_agent.agent import collection_deferred
from hierarchy.transport import BrokerConfig, Incoming, MqttTransport, acknowledged


def _inline(broker: Broker, received: list[Incoming],
            subscriptions: list[tuple[str, int]]) -> MqttTransport:
    transport = MqttTransport(BrokerConfig.from_url(broker.url, session_expiry_s=0),
                              f"inline-{uuid.uuid4().hex[:8]}", received.append,
                              subscriptions=subscriptions)
    transport.open()
    deadline = time.monotonic() + 5.0
    while not transport.connected:
        assert time.monotonic() < deadline, "no connection within 5 s"
        transport.poll(0.01)
    # The SUBACK may still be on its way: make sure the subscription is in place.
    marker = f"{subscriptions[0][0].rstrip('#')}ready"
    transport.publish(marker, b"ready", qos=1)
    while not any(m.topic == marker for m in received):
        assert time.monotonic() < deadline, "the subscription did not take within 5 s"
        transport.poll(0.01)
    received.clear()
    return transport


def test_a_burst_of_messages_of_every_size_arrives_whole_and_in_order(
        broker: Broker) -> None:
    received: list[Incoming] = []
    rx = _inline(broker, received, [("burst/#", 1)])
    tx = MqttTransport(BrokerConfig.from_url(broker.url, session_expiry_s=0), "tx",
                       lambda m: None)
    tx.start()
    try:
        assert tx.wait_connected(5.0)
        # Sizes around the one-byte header reads and the receive buffer (64 KiB), so that
        # packets straddle buffer fills; far more bytes than one recv takes.
        sizes = [0, 1, 2, 126, 127, 128, 16_383, 16_384, 65_535, 65_536, 100_000] * 3 + [40] * 400
        sent = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
        infos = [tx.publish("burst/x", payload, qos=1) for payload in sent]
        deadline = time.monotonic() + 10.0
        while len(received) < len(sent) and time.monotonic() < deadline:
            rx.poll(0.05)
        assert [m.payload for m in received] == sent
        assert rx.client.held_bytes() == 0
        assert all(acknowledged(info) for info in infos)
    finally:
        tx.stop()
        rx.stop()


def test_every_publish_of_an_inline_transport_is_acknowledged(broker: Broker) -> None:
    received: list[Incoming] = []
    transport = _inline(broker, received, [("echo/#", 1)])
    try:
        infos = [transport.publish("echo/x", f"m{i}".encode(), qos=1) for i in range(300)]
        deadline = time.monotonic() + 10.0
        while not all(acknowledged(i) for i in infos) and time.monotonic() < deadline:
            transport.poll(0.02)
        assert all(acknowledged(i) for i in infos)
        assert transport.client._inflight_messages == 0  # paho's count, kept by the fast path
        while len(received) < 300 and time.monotonic() < deadline:
            transport.poll(0.02)
        assert [m.payload for m in received] == [f"m{i}".encode() for i in range(300)]
    finally:
        transport.stop()


def test_a_lone_ack_is_read_when_the_wait_ends_at_the_latest(broker: Broker) -> None:
    """A PUBACK is below the socket's low-water mark: it does not wake `poll`, which still
    reads it before it returns."""
    received: list[Incoming] = []
    transport = _inline(broker, received, [("lone/#", 1)])
    try:
        sock = transport.client.socket()
        if sys.platform == "linux":
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) > 4
        info = transport.publish("elsewhere/x", b"m", qos=1)  # no one subscribes: acks only
        t0 = time.monotonic()
        transport.poll(0.2)
        waited_s = time.monotonic() - t0
        assert acknowledged(info)
        assert waited_s < 1.0
    finally:
        transport.stop()


def test_bytes_held_from_a_closed_connection_are_never_read_on_the_next() -> None:
    client = MqttTransport(BrokerConfig(), "held", lambda m: None).client
    client.buffered_reads = True
    old, old_peer = socket.socketpair()
    new, new_peer = socket.socketpair()
    try:
        old.setblocking(False)
        new.setblocking(False)
        old_peer.send(b"\x40\x02\x00\x01" * 3)  # three PUBACKs
        client._sock = old
        assert client._sock_recv(1) == b"\x40"  # one recv took all 12 bytes
        assert client.held_bytes() == 11
        client._sock = new  # reconnected
        assert client.held_bytes() == 0
        with pytest.raises(BlockingIOError):
            client._sock_recv(1)  # nothing on the new socket yet, and nothing old
    finally:
        client._sock = None
        for s in (old, old_peer, new, new_peer):
            s.close()


def test_the_collector_waits_for_the_end_of_the_block_and_then_runs() -> None:
    assert gc.isenabled()
    collections = sum(s["collections"] for s in gc.get_stats())
    kept = []
    with collection_deferred():
        assert not gc.isenabled()
        kept.extend([i] for i in range(5 * gc.get_threshold()[0]))
    assert gc.isenabled()
    assert sum(s["collections"] for s in gc.get_stats()) > collections  # it ran at the end
    gc.disable()
    try:
        with collection_deferred():
            pass
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()
