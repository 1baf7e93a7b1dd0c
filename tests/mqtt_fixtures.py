"""A real Mosquitto broker for the agent tests, and a small MQTT probe client.

Each test gets its own broker on a free loopback port with a generated configuration
(`set_tcp_nodelay`, a large `max_queued_messages`, persistence off), so retained messages and
sessions never leak between tests. Tests using it are skipped, with the reason, when no
mosquitto binary is installed (`.ci/run` installs one; set HIERARCHY_MOSQUITTO to point at
another).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hierarchy.broker import EmbeddedBroker, find_mosquitto, free_port  # noqa: F401 (re-exported)
from hierarchy.transport import BrokerConfig, Incoming, MqttTransport


def mosquitto_binary() -> str | None:
    return find_mosquitto()


class Broker(EmbeddedBroker):
    """The product's throwaway Mosquitto (hierarchy.broker), started on creation; `stop()`
    then `start()` restarts it on the same port (a broker outage)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(workdir, binary)
        self.start()


@pytest.fixture(name="broker")
def broker_fixture(tmp_path: Path) -> Iterator[Broker]:
    """A fresh mosquitto for one test (import `broker_fixture` to use it as `broker`)."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto, or set "
                    "HIERARCHY_MOSQUITTO to its path): the agent tests need a real broker")
    b = Broker(binary, tmp_path)
    try:
        yield b
    finally:
        b.stop()


class Probe:
    """A test client: publishes, and records every message on its subscriptions."""

    def __init__(self, broker: Broker, subscriptions: list[str]) -> None:
        self.messages: dict[str, list[bytes]] = defaultdict(list)
        self._cond = threading.Condition()
        self.transport = MqttTransport(
            BrokerConfig.from_url(broker.url), client_id=f"probe-{uuid.uuid4().hex[:8]}",
            on_message=self._on_message, subscriptions=[(t, 1) for t in subscriptions])
        self.transport.start()
        if not self.transport.wait_connected(5.0):
            raise TimeoutError("the probe could not connect to the broker")
        # The SUBACK is not exposed: a round trip on our own topic proves subscriptions are in.
        marker = f"hierarchy/test/{uuid.uuid4().hex}"
        self.transport.client.subscribe(marker, 1)
        self.transport.publish(marker, b"ping", qos=1)
        self.wait_for(marker, 1)

    def _on_message(self, msg: Incoming) -> None:
        with self._cond:
            self.messages[msg.topic].append(msg.payload)
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes | dict[str, Any], qos: int = 1) -> None:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.transport.publish(topic, data, qos=qos)

    def wait_for(self, topic: str, count: int, timeout_s: float = 5.0) -> list[bytes]:
        """The first `count` messages on `topic`; TimeoutError if fewer came in time."""
        return self.wait_until(lambda: len(self.messages[topic]) >= count, timeout_s,
                               f"{count} messages on {topic}")[topic][:count]

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float,
                   what: str) -> dict[str, list[bytes]]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    got = {t: len(v) for t, v in self.messages.items()}
                    raise TimeoutError(f"waited {timeout_s} s for {what}; got {got}")
                self._cond.wait(left)
            return {t: list(v) for t, v in self.messages.items()}

    def json(self, topic: str) -> list[dict[str, Any]]:
        with self._cond:
            return [json.loads(m) for m in self.messages[topic]]

    def close(self) -> None:
        self.transport.stop()


def wait(predicate: Callable[[], bool], timeout_s: float, what: str,
         interval_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(interval_s)
