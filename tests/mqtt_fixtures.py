"""A real Mosquitto broker for the agent tests, and a small MQTT probe client.

Each test gets its own broker on a free loopback port with a generated configuration
(`set_tcp_nodelay`, a large `max_queued_messages`, persistence off), so retained messages and
sessions never leak between tests. Tests using it are skipped, with the reason, when no
mosquitto binary is installed (`.ci/run` installs one; set HIERARCHY_MOSQUITTO to point at
another).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hierarchy.transport import BrokerConfig, Incoming, MqttTransport

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    if env := os.environ.get("HIERARCHY_MOSQUITTO"):
        return env if Path(env).is_file() else None
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _CANDIDATES if Path(c).is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.01)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


class Broker:
    """A mosquitto process on 127.0.0.1:`port`."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 1000\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


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
