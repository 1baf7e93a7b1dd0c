"""Finding the hierarchy on the local network with zeroconf (DNS-SD, `_hierarchy._tcp.local.`).

The cloud agent advertises one service whose TXT record carries the broker's URL (`broker`)
and the REST address (`rest`); an edge agent with no broker configured browses for it.
Both always take the interfaces to bind to: tests pass `["127.0.0.1"]`, a deployment the
gateway's LAN address; None means zeroconf's default (every interface), for deployments only.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncZeroconf

SERVICE_TYPE = "_hierarchy._tcp.local."
TXT_VERSION = "1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """One advertised hierarchy."""

    name: str
    hierarchy: str  # the hierarchy's name: agents join only their own
    broker: str | None  # mqtt://host:port
    rest: str | None  # http://host:port
    addresses: tuple[str, ...]
    port: int


DEFAULT_HIERARCHY = "default"


def service_info(instance: str, host: str, port: int, broker_url: str,
                 rest_url: str | None, hierarchy: str = DEFAULT_HIERARCHY) -> ServiceInfo:
    """The record the cloud agent announces: `instance._hierarchy._tcp.local.` at host:port.

    `hierarchy` names the deployment, so that edge agents on a network shared by several
    hierarchies (or holding a stale record of a dead coordinator) join only their own.
    """
    props = {"broker": broker_url, "version": TXT_VERSION, "hierarchy": hierarchy}
    if rest_url:
        props["rest"] = rest_url
    safe = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in instance)[:60] or "cloud"
    return ServiceInfo(
        SERVICE_TYPE,
        f"{safe}.{SERVICE_TYPE}",
        port=port,
        addresses=[socket.inet_aton(_ipv4_of(host))],
        properties=props,
        server=f"{safe}.local.",
    )


def _ipv4_of(host: str) -> str:
    if host in ("", "0.0.0.0", "localhost"):
        return "127.0.0.1"
    try:
        return socket.gethostbyname(host)
    except OSError:
        return "127.0.0.1"


def _found(info: ServiceInfo) -> Found:
    props = {
        (k.decode() if isinstance(k, bytes) else str(k)):
        (v.decode() if isinstance(v, bytes) else v)
        for k, v in (info.properties or {}).items()
    }
    return Found(name=info.name, hierarchy=str(props.get("hierarchy") or DEFAULT_HIERARCHY),
                 broker=props.get("broker"), rest=props.get("rest"),
                 addresses=tuple(info.parsed_addresses()), port=info.port or 0)


class AsyncAdvertiser:
    """Announces the hierarchy from inside an event loop (the cloud agent's FastAPI lifespan)."""

    def __init__(self, info: ServiceInfo, interfaces: list[str] | None) -> None:
        self.info = info
        self.interfaces = interfaces
        self._zc: AsyncZeroconf | None = None
        self._announcing: object = None  # the announcement task: kept so it is not collected

    async def start(self) -> None:
        self._zc = _async_zeroconf(self.interfaces)
        self._announcing = await self._zc.async_register_service(self.info,
                                                                 allow_name_change=True)
        log.info("advertising %s on %s", self.info.name, self.interfaces or "all interfaces")

    async def close(self) -> None:
        if self._zc is not None:
            await self._zc.async_close()  # unregisters (sends goodbyes) first
            self._zc = None


class Advertiser:
    """Announces the hierarchy from a plain thread (scripts, the demo)."""

    def __init__(self, info: ServiceInfo, interfaces: list[str] | None) -> None:
        self.info = info
        self._zc = _zeroconf(interfaces)
        self._zc.register_service(info, allow_name_change=True)

    def close(self) -> None:
        self._zc.close()


def discover(timeout_s: float = 5.0, interfaces: list[str] | None = None,
             stop: threading.Event | None = None,
             hierarchy: str = DEFAULT_HIERARCHY) -> Found | None:
    """The first announcement of hierarchy `hierarchy` within `timeout_s` (with a broker URL),
    else None. Announcements of other hierarchies are ignored.

    Returns None early when `stop` is set."""
    zc = _zeroconf(interfaces)
    names: list[str] = []
    seen = threading.Event()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.append(name)
            seen.set()

    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return None
            if not seen.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
                continue
            seen.clear()
            while names:
                name = names.pop(0)
                remaining_ms = max(100, int(1000 * (deadline - time.monotonic())))
                info = zc.get_service_info(SERVICE_TYPE, name, timeout=min(remaining_ms, 3000))
                if info is not None:
                    found = _found(info)
                    if found.broker and found.hierarchy == hierarchy:
                        return found
        return None
    finally:
        browser.cancel()
        zc.close()


def _zeroconf(interfaces: list[str] | None) -> Zeroconf:
    if interfaces is None:
        return Zeroconf(ip_version=IPVersion.V4Only)
    return Zeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)


def _async_zeroconf(interfaces: list[str] | None) -> AsyncZeroconf:
    if interfaces is None:
        return AsyncZeroconf(ip_version=IPVersion.V4Only)
    return AsyncZeroconf(interfaces=list(interfaces), ip_version=IPVersion.V4Only)
