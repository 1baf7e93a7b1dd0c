"""What the demo measures: every request sent, its final decision, the latency between them.

`DecisionTracker` is fed by the demo's MQTT client (paho's network thread) and read by the
demo's main loop, so everything goes through one lock. Latency is request sent -> final
decision received, both stamped with this process's `perf_counter`: for an offloaded request
it includes the cloud's round trip. A decision carrying `offloaded_from` is a site's answer to
a request the cloud forwarded to it: the cloud's answer, not the request's final decision, so
it is counted apart (`forwarded`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hierarchy import protocol as p
from hierarchy.transport import Incoming

OUTCOMES = ("placed", "offloaded", "rejected")


@dataclass
class SiteTally:
    """One site's requests and final decisions so far."""

    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def decided(self) -> int:
        return sum(self.outcomes.values())


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    site: str
    requests: int
    placed: int
    offloaded: int
    rejected: int
    undecided: int
    duplicates: int
    p50_ms: float | None
    p99_ms: float | None


class DecisionTracker:
    """Requests sent and decisions seen; thread-safe."""

    def __init__(self, sites: list[str]) -> None:
        self.sites = sites
        self._lock = threading.Lock()
        self._sent: dict[str, tuple[str, float]] = {}  # request id -> (site, perf_counter)
        self.decisions: Counter[str] = Counter()  # final decisions per request id
        self.tally = {s: SiteTally() for s in sites}
        self.forwarded = 0
        self.errors: list[str] = []
        self.strays = 0  # decisions for request ids this demo never sent

    def sent(self, request_id: str, site: str) -> None:
        """Call just before publishing the request."""
        with self._lock:
            self._sent[request_id] = (site, time.perf_counter())
            self.tally[site].requests += 1

    def on_message(self, msg: Incoming) -> None:
        """The MQTT callback: decisions and error replies."""
        now = time.perf_counter()
        parsed = p.parse_site_topic(msg.topic)
        if parsed is None:
            return
        _, kind = parsed
        if kind == "errors":
            with self._lock:
                self.errors.append(msg.payload.decode("utf-8", "replace")[:300])
            return
        if kind != "decisions":
            return
        try:
            d = p.decode(msg.payload, p.Decision)
        except p.ProtocolError as exc:
            with self._lock:
                self.errors.append(f"unreadable decision on {msg.topic}: {exc.reason}")
            return
        with self._lock:
            if d.offloaded_from is not None:
                self.forwarded += 1
                return
            sent = self._sent.get(d.request_id)
            if sent is None:
                self.strays += 1
                return
            site, t0 = sent
            tally = self.tally[site]
            self.decisions[d.request_id] += 1
            if self.decisions[d.request_id] > 1:
                tally.duplicates += 1
                return
            tally.outcomes[d.outcome] += 1
            tally.latencies_ms.append((now - t0) * 1e3)

    # --- reading ---------------------------------------------------------------------------

    @property
    def requests_sent(self) -> int:
        with self._lock:
            return len(self._sent)

    def undecided(self) -> int:
        with self._lock:
            return len(self._sent) - len(self.decisions)

    def undecided_ids(self) -> list[str]:
        with self._lock:
            return [rid for rid in self._sent if rid not in self.decisions]

    def rows(self) -> list[Row]:
        """One row per site, then the total."""
        with self._lock:
            tallies = [(s, self.tally[s]) for s in self.sites]
            rows = [_row(s, [t]) for s, t in tallies]
            rows.append(_row("total", [t for _, t in tallies]))
        return rows

    def progress_line(self, elapsed_s: float) -> str:
        total = self.rows()[-1]
        return (f"{elapsed_s:6.1f} s  sent {total.requests:6d}  placed {total.placed:6d}  "
                f"offloaded {total.offloaded:5d}  rejected {total.rejected:5d}  waiting "
                f"{total.undecided:4d}  p50 {_ms(total.p50_ms)}  p99 {_ms(total.p99_ms)}")


def _row(site: str, tallies: list[SiteTally]) -> Row:
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    for t in tallies:
        outcomes.update(t.outcomes)
        latencies.extend(t.latencies_ms)
    requests = sum(t.requests for t in tallies)
    p50, p99 = (np.percentile(latencies, [50, 99]).tolist() if latencies else (None, None))
    return Row(site=site, requests=requests, placed=outcomes["placed"],
               offloaded=outcomes["offloaded"], rejected=outcomes["rejected"],
               undecided=requests - sum(outcomes.values()),
               duplicates=sum(t.duplicates for t in tallies), p50_ms=p50, p99_ms=p99)


def _ms(value: float | None) -> str:
    return "   -   " if value is None else f"{value:6.2f} ms" if value < 1000 else \
        f"{value / 1e3:6.2f} s "


def summary_table(rows: list[Row]) -> str:
    """The rows as an aligned text table (request -> decision latency in ms)."""
    head = ("site", "requests", "placed", "offloaded", "rejected", "no decision",
            "duplicates", "p50 ms", "p99 ms")
    body = [
        (r.site, str(r.requests), str(r.placed), str(r.offloaded), str(r.rejected),
         str(r.undecided), str(r.duplicates),
         "-" if r.p50_ms is None else f"{r.p50_ms:.2f}",
         "-" if r.p99_ms is None else f"{r.p99_ms:.2f}")
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    lines = [line(head), rule, *(line(b) for b in body[:-1]), rule, line(body[-1])]
    return "\n".join(lines)
