"""An embedded Mosquitto broker for the demo and the benchmarks: loopback only, throwaway.

`EmbeddedBroker` starts the `mosquitto` binary on a free 127.0.0.1 port with a generated
configuration fit for measuring: `set_tcp_nodelay true` (without it a QoS 1 round trip on
loopback costs ~88 ms), a raised `max_queued_messages` (the default 1000 silently drops
messages in a burst, at QoS 1 too), no persistence. It never listens beyond loopback. For a
production broker see `deploy/mosquitto.conf` and docs/deploy.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

MOSQUITTO_ENV = "HIERARCHY_MOSQUITTO"
_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto",
               "/opt/homebrew/sbin/mosquitto", "/usr/local/opt/mosquitto/sbin/mosquitto")
INSTALL_HINT = (
    "the demo needs the Mosquitto MQTT broker: install it (Debian/Ubuntu: `sudo apt-get "
    "install mosquitto`; Fedora: `sudo dnf install mosquitto`; macOS: `brew install "
    f"mosquitto`), or set {MOSQUITTO_ENV} to the path of a mosquitto binary"
)


class BrokerError(RuntimeError):
    """No broker could be started; the message says what to do."""


def find_mosquitto() -> str | None:
    """The mosquitto binary: $HIERARCHY_MOSQUITTO, then PATH, then the usual sbin places."""
    if env := os.environ.get(MOSQUITTO_ENV):
        return env if Path(env).is_file() else None
    return shutil.which("mosquitto") or next(
        (c for c in _CANDIDATES if Path(c).is_file()), None)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_config(port: int, max_queued_messages: int = 100_000) -> str:
    """A mosquitto.conf for a throwaway broker on 127.0.0.1:`port`."""
    return (
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "set_tcp_nodelay true\n"
        f"max_queued_messages {max_queued_messages}\n"
        "max_inflight_messages 1000\n"
        "log_dest stderr\n"
        "log_type error\n"
        "log_type warning\n"
    )


class EmbeddedBroker:
    """Mosquitto on 127.0.0.1:`port`, its config in `workdir`; a context manager."""

    def __init__(self, workdir: Path, binary: str | None = None,
                 start_timeout_s: float = 5.0) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise BrokerError(INSTALL_HINT)
        self.binary = found
        self.workdir = workdir
        self.start_timeout_s = start_timeout_s
        self.host = "127.0.0.1"
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        """The mosquitto.conf it runs with (a subclass may serve another one)."""
        return loopback_config(self.port)

    def start(self) -> None:
        """Start it and wait until it accepts connections; BrokerError if it does not."""
        self.conf.write_text(self.config_text())
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=log,
                                         stdin=subprocess.DEVNULL,
                                         # Its own session: a Ctrl-C meant for us must not
                                         # kill it before the agents have said goodbye.
                                         start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto ({self.binary}) exited with status "
                                  f"{self.proc.returncode}: {self._log_tail()}")
            with socket.socket() as s:
                if s.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.01)
        self.stop()
        raise BrokerError(f"mosquitto ({self.binary}) did not listen on {self.host}:"
                          f"{self.port} within {self.start_timeout_s} s: {self._log_tail()}")

    def stop(self) -> None:
        """Terminate it (kill after 5 s); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def _log_tail(self) -> str:
        try:
            text = self.log.read_text(errors="replace").strip()
        except OSError:
            return "(no log)"
        return text[-500:] or "(no output)"

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
