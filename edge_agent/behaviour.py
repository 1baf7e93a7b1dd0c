"""Per-service behaviour statistics on the gateway, so a policy sees what it saw in training.

The simulator's edge observation carries, for the pending container, what has been observed
of its service at its position (hierarchy.features.online: samples, predicted p95 CPU and
memory, CPU CV, behaviour class). The edge agent keeps the same statistics with the same
functions (`ServiceStats`): every `sample_every_s` seconds of the backend's time (300 s by
default, the simulator's monitor period) it adds one sample of every running container's
measured usage (CPU and memory used as fractions of its request) to the row of its
(service, container); before deciding a request it reads the row of the request's
(service, container) into the `EdgeView`.

The service is the request's optional `service` field, else its `app`; the container is its
`container` name, which plays the part of the simulator's position in the call graph (the
instances of one service name their containers alike). Memory is bounded: at most
`max_services` rows, the least recently observed dropped first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from hierarchy.features.online import (
    SAMPLE_EVERY_S,
    OnlineClasses,
    ServiceStats,
    default_online_classes,
)

if TYPE_CHECKING:
    from edge_agent.backends.base import Backend
    from hierarchy.protocol import Request

log = logging.getLogger(__name__)

DEFAULT_MAX_SERVICES = 4096

_F8 = np.float64


def service_of(req: Request) -> str:
    """The service name the statistics of `req` are kept under."""
    return req.service or req.app


class BehaviourBook:
    """The statistics of the services this site has run, fed from its backend's usage."""

    def __init__(self, max_services: int = DEFAULT_MAX_SERVICES,
                 sample_every_s: float = SAMPLE_EVERY_S,
                 classes: OnlineClasses | None = None) -> None:
        if max_services < 1:
            raise ValueError("max_services must be at least 1")
        if sample_every_s <= 0:
            raise ValueError("sample_every_s must be positive")
        if classes is None:
            try:
                classes = default_online_classes()
            except (OSError, ValueError) as exc:  # e.g. an install without models/
                log.warning("behaviour classes unavailable (%s): every service stays unknown "
                            "to the policy", exc)
        self.enabled = classes is not None
        self.stats = ServiceStats(classes, max_keys=max_services) if classes is not None \
            else None
        self.sample_every_s = float(sample_every_s)
        self._next_sample: float | None = None
        self.samples = 0  # usage samples taken so far (all containers together)

    @staticmethod
    def key(service: str, container: str) -> tuple[str, str]:
        return (service, container)

    def sample(self, backend: Backend) -> int:
        """Take a sample of every running container if one is due; how many were taken."""
        if self.stats is None:
            return 0
        now = backend.time_s()
        if self._next_sample is None:
            self._next_sample = now + self.sample_every_s  # a container's first sample comes
            return 0  # after it has run a period, as in the simulator
        if now < self._next_sample:
            return 0
        # One sample per period, however late this call comes (as the simulator's monitor).
        self._next_sample = max(self._next_sample + self.sample_every_s, now)
        taken = 0
        for u in backend.usage():
            self.stats.observe(self.key(u.service, u.container), u.cpu_used, u.cpu_req,
                               u.mem_used, u.mem_req)
            taken += 1
        self.samples += taken
        return taken

    def predict(self, req: Request) -> tuple[float, float, float, float, int]:
        """(samples, p95 CPU / request, p95 memory / request, CPU CV, class or -1) of `req`."""
        if self.stats is None:
            return 0.0, 0.0, 0.0, 0.0, -1
        return self.stats.predict(self.key(service_of(req), req.container), req.cpu_cores)

    def view_fields(self, req: Request | None) -> dict[str, np.ndarray | None]:
        """The EdgeView's behaviour fields for `req` pending (None: nothing pending)."""
        if req is None or self.stats is None:
            return {}
        n, cpu, mem, cv, cls = self.predict(req)
        return {"svc_samples": np.asarray(n, _F8), "pred_cpu_p95": np.asarray(cpu, _F8),
                "pred_mem_p95": np.asarray(mem, _F8), "cpu_cv": np.asarray(cv, _F8),
                "behaviour_class": np.asarray(cls, np.int64)}

    def __len__(self) -> int:
        return 0 if self.stats is None else len(self.stats.rows)
