"""A real Mosquitto broker for the agent tests, and a small MQTT probe client.

Each test gets its own broker on a free loopback port with a generated configuration
(`set_tcp_nodelay`, a large `max_queued_messages`, persistence off), so retained messages and
sessions never leak between tests. Tests using it are skipped, with the reason, when no
mosquitto binary is installed (`.ci/run` installs one; set HIERARCHY_MOSQUITTO to point at
another).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
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

    def __init__(self, broker: EmbeddedBroker | BrokerConfig, subscriptions: list[str],
                 marker_topic: str | None = None) -> None:
        self.messages: dict[str, list[bytes]] = defaultdict(list)
        self._cond = threading.Condition()
        config = broker if isinstance(broker, BrokerConfig) else BrokerConfig.from_url(broker.url)
        self.transport = MqttTransport(
            config, client_id=f"probe-{uuid.uuid4().hex[:8]}",
            on_message=self._on_message, subscriptions=[(t, 1) for t in subscriptions])
        self.transport.start()
        if not self.transport.wait_connected(5.0):
            raise TimeoutError("the probe could not connect to the broker")
        # The SUBACK is not exposed: a round trip on our own topic proves subscriptions are in
        # (under an ACL, pass a topic this user may read and write; "" for none, where the
        # broker's in-order handling of one connection's packets has to do).
        if marker_topic == "":
            return
        marker = marker_topic or f"hierarchy/test/{uuid.uuid4().hex}"
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


# --- a broker as deployed: TLS, passwords, the shipped ACL ----------------------------------

REPO = Path(__file__).resolve().parent.parent
SHIPPED_ACL = REPO / "deploy" / "mosquitto.acl"


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a broker certificate it signed for 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("hierarchy test CA"))
          .issuer_name(name("hierarchy test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"ca": folder / "ca.crt", "cert": folder / "broker.crt", "key": folder / "broker.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key, paths["key"])
    return paths


def make_password_file(path: Path, users: dict[str, str]) -> None:
    """A mosquitto password file: written in plain text, then hashed in place by
    mosquitto_passwd -U (no password on any command line)."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed (it comes with mosquitto)")
    path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()))
    subprocess.run([tool, "-U", str(path)], check=True, capture_output=True, timeout=30)


class SecureBroker(EmbeddedBroker):
    """Mosquitto as docs/deploy.md sets it up, on a free loopback port: TLS only, no anonymous
    clients, a password per user, the shipped ACL. `passwords` maps each user to its own."""

    USERS = ("cloud", "orchestrator", "edge-0", "edge-1")

    def __init__(self, binary: str, workdir: Path) -> None:
        super().__init__(workdir, binary)
        self.certs = make_certificates(workdir / "certs")
        self.passwords = {user: secrets.token_urlsafe(16) for user in self.USERS}
        self.password_file = workdir / "mosquitto.passwd"
        make_password_file(self.password_file, self.passwords)
        self.start()

    @property
    def url(self) -> str:
        return f"mqtts://{self.host}:{self.port}"

    def config_text(self) -> str:
        # Run as root (CI containers), mosquitto drops to its own user unless told otherwise,
        # and could then not read the test's private temporary folder.
        stay = "user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
        return (
            f"{stay}per_listener_settings false\n"
            "allow_anonymous false\n"
            f"password_file {self.password_file}\n"
            f"acl_file {SHIPPED_ACL}\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 100000\n"
            f"listener {self.port} 127.0.0.1\n"
            f"certfile {self.certs['cert']}\n"
            f"keyfile {self.certs['key']}\n"
            f"cafile {self.certs['ca']}\n"
            "tls_version tlsv1.2\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
        )

    def client_config(self, user: str | None, password: str | None = None,
                      ca: bool = True) -> BrokerConfig:
        """How `user` connects (its own password unless `password` says otherwise)."""
        return BrokerConfig.from_url(
            self.url, username=user,
            password=password if password is not None else self.passwords.get(user or ""),
            ca_file=str(self.certs["ca"]) if ca else None)


@pytest.fixture(name="secure_broker")
def secure_broker_fixture(tmp_path: Path) -> Iterator[SecureBroker]:
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("mosquitto is not installed: the security tests need a real broker")
    b = SecureBroker(binary, tmp_path)
    try:
        yield b
    finally:
        b.stop()


# --- the cloud agent's REST API on a real HTTP server ------------------------------------------


class RestServer:
    """The cloud agent's app served by uvicorn in a thread on a free loopback port (a real
    HTTP server, its lifespan and MQTT client included); a context manager."""

    def __init__(self, config: Any) -> None:
        import uvicorn

        from cloud_agent.app import create_app

        self.port = free_port()
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="rest", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def agent(self) -> Any:
        return self.app.state.agent

    def __enter__(self) -> RestServer:
        self.thread.start()
        wait(lambda: self.server.started or not self.thread.is_alive(), 15, "uvicorn to start")
        if not self.server.started:
            raise RuntimeError("the REST server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10.0)
