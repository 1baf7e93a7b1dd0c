"""Helpers for the fault tests that run the edge agent as a real process.

- `EdgeProcess`: `python -m edge_agent` for one site, on a store that survives it; SIGKILL,
  SIGTERM, restart on the same store, its resident memory from /proc/PID/status.
- `Relay`: a small TCP (or unix-socket) relay between a site's agent and the broker; `cut()`
  stops the link silently (bytes stop flowing both ways, nothing is closed, new connections
  are refused) and `restore()` lets it flow again, as a real link that went down and came
  back would.
- Network namespaces: `netns_available()` says whether this machine lets an unprivileged
  `unshare -rn` create one. Where it does, `EdgeProcess(netns=True)` runs the agent in a
  namespace of its own whose only way out is its loopback interface (a relay in the agent's
  process forwards 127.0.0.1 there to a unix socket outside, which a relay in the test
  forwards to the broker); `cut()`/`restore()` then take that interface down and up
  (`ip link set lo down|up` inside the namespace, on SIGUSR1/SIGUSR2): a real link cut.
  The namespace lives as long as the agent process and goes with it.

Run as a script (`python fault_procs.py netns-edge SOCKET PORT -- EDGE-AGENT-ARGS`), this
file is that in-namespace launcher.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
Address = tuple[str, int] | str  # (host, port), or the path of a unix socket


def _connect(addr: Address) -> socket.socket:
    if isinstance(addr, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect(addr)
    return s


def _listen(addr: Address) -> socket.socket:
    if isinstance(addr, str):
        if os.path.exists(addr):
            os.unlink(addr)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen(64)
    return s


class Relay:
    """Forwards every connection made to `listen` to `target`, byte for byte (a thread per
    direction). `cut()`: nothing flows any more, either way, on the connections already made
    (they stay open, as over a link that went down) and new ones are refused; `restore()`:
    they flow again and new ones are accepted. Each side finds out about the cut the way it
    would over a real link: its keepalive times out."""

    def __init__(self, listen: Address, target: Address) -> None:
        self.listen_addr = listen
        self.target = target
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._closed = False
        self.accepted = 0

    def start(self) -> Relay:
        self._open()
        return self

    @property
    def port(self) -> int:
        assert not isinstance(self.listen_addr, str)
        return self.listen_addr[1]

    def _open(self) -> None:
        server = _listen(self.listen_addr)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True,
                         name="relay-accept").start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # the listener was closed (a cut, or the end)
            try:
                upstream = _connect(self.target)
            except OSError:
                client.close()
                continue
            if isinstance(self.listen_addr, tuple):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns += [client, upstream]
                self.accepted += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                 name="relay-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # what was on the wire when the link went down waits
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self._lock:
            self._conns = [c for c in self._conns if c not in (src, dst)]

    def cut(self) -> None:
        self._flowing.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def restore(self) -> None:
        self._open()
        self._flowing.set()

    def close(self) -> None:
        self.cut()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._flowing.set()  # let the pumps see their sockets closed and end


# --- network namespaces ----------------------------------------------------------------------


def netns_available() -> bool:
    """Whether `unshare -rn` can create a network namespace here (unprivileged user
    namespaces allowed) and `ip` can bring its loopback interface up."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return False
    try:
        done = subprocess.run([unshare, "-rn", ip, "link", "set", "lo", "up"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _netns_edge(argv: list[str]) -> int:
    """Inside the namespace: loopback up, a relay from 127.0.0.1:PORT to the unix socket
    outside, SIGUSR1/SIGUSR2 to take loopback down/up, then the edge agent itself."""
    sock_path, port, rest = argv[0], int(argv[1]), argv[2:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    ip = shutil.which("ip") or "ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)
    Relay(("127.0.0.1", port), sock_path).start()

    def link(state: str) -> None:
        subprocess.run([ip, "link", "set", "lo", state], check=False)
        print(f"netns: loopback {state}", flush=True)

    signal.signal(signal.SIGUSR1, lambda *_: link("down"))
    signal.signal(signal.SIGUSR2, lambda *_: link("up"))
    from edge_agent.cli import main

    return main([*rest, "--broker", f"mqtt://127.0.0.1:{port}"])


# --- the edge agent as a process ---------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid`, KiB (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) process `pid` has used so far, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class EdgeProcess:
    """`python -m edge_agent` for `site` on `store`; `start()` again after `kill()` restarts
    it on the same store. Its output goes to `log` (appended across restarts).

    `broker` is the broker's URL; with `relay=True` the agent reaches it through a `Relay`
    of this object's own (`cut()`/`restore()`), and with `netns=True` (which implies the
    relay path) from a network namespace whose loopback `cut()` takes down."""

    def __init__(self, site: str, broker_host: str, broker_port: int, folder: Path,
                 scenario: str = "small", relay: bool = False, netns: bool = False,
                 keepalive_s: int = 5, extra: tuple[str, ...] = ()) -> None:
        self.site = site
        self.folder = folder
        self.store = folder / f"{site}.sqlite3"
        self.log = folder / f"{site}.log"
        self.netns = netns
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.relay: Relay | None = None
        self.config = folder / f"{site}.yaml"
        # A short keepalive: a dead link is noticed in seconds (by the broker too, at 1.5x).
        self.config.write_text(f"mqtt:\n  keepalive_s: {keepalive_s}\n  reconnect_max_s: 1\n")
        broker: Address = (broker_host, broker_port)
        if netns:
            # A unix socket crosses namespaces (it is a file): the agent's only way out.
            self._sock = str(folder / f"{site}.link")
            self.relay = Relay(self._sock, broker).start()
            self.url = ""
        elif relay:
            from hierarchy.broker import free_port

            self.relay = Relay(("127.0.0.1", free_port()), broker).start()
            self.url = f"mqtt://127.0.0.1:{self.relay.port}"
        else:
            self.url = f"mqtt://{broker_host}:{broker_port}"
        self.args = ["--site", site, "--scenario", scenario, "--store", str(self.store),
                     "--config", str(self.config), "--telemetry-interval", "0.5",
                     "--log-level", "WARNING", *extra]

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        if self.netns:
            cmd = [shutil.which("unshare") or "unshare", "-rn", sys.executable, __file__,
                   "netns-edge", self._sock, "1883", "--", *self.args]
        else:
            cmd = [sys.executable, "-m", "edge_agent", *self.args, "--broker", self.url]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no goodbye; whatever was mid-batch is cut short."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (a clean stop), SIGKILL if it does not end in `timeout_s`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait(10)

    def cut(self) -> None:
        if self.netns:
            os.kill(self.pid, signal.SIGUSR1)
        else:
            assert self.relay is not None, "no relay to cut"
            self.relay.cut()

    def restore(self) -> None:
        if self.netns:
            os.kill(self.pid, signal.SIGUSR2)
        else:
            assert self.relay is not None
            self.relay.restore()

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if self.relay is not None:
            self.relay.close()


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "netns-edge":
        sys.exit(_netns_edge(sys.argv[2:]))
    print("usage: fault_procs.py netns-edge SOCKET PORT -- EDGE-AGENT-ARGS", file=sys.stderr)
    sys.exit(2)
