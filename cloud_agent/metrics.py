"""The cloud agent's metrics in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_text: str,
               samples: list[tuple[dict[str, str], float | None]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            tag = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{tag}}} {float(value):g}" if tag
                              else f"{name} {float(value):g}")


def render(overview: dict[str, Any]) -> str:
    """Prometheus text for `CloudAgent.overview()`."""
    out = _Text()
    sites = overview["sites"]
    cloud, pool, offloads = overview["cloud"], overview["pool"], overview["offloads"]

    def per_site(key: str) -> list[tuple[dict[str, str], float | None]]:
        return [({"site": s["site"]}, s[key]) for s in sites]

    out.metric("hierarchy_cloud_mqtt_connected", "gauge",
               "Whether the cloud agent is connected to the broker.",
               [({}, 1.0 if cloud["mqtt_connected"] else 0.0)])
    out.metric("hierarchy_site_online", "gauge", "Whether the site's edge agent is online.",
               [({"site": s["site"]}, 1.0 if s["online"] else 0.0) for s in sites])
    out.metric("hierarchy_site_seen_ago_seconds", "gauge",
               "Seconds since the site's last message.", per_site("seen_ago_s"))
    out.metric("hierarchy_site_power_watts", "gauge", "Site power demand, W.",
               per_site("power_w"))
    out.metric("hierarchy_site_power_budget_watts", "gauge", "Site power budget, W.",
               per_site("budget_w"))
    out.metric("hierarchy_site_queue", "gauge", "Requests waiting at the site.",
               per_site("queue"))
    out.metric("hierarchy_site_containers", "gauge", "Containers running at the site.",
               per_site("containers"))
    out.metric("hierarchy_site_alloc_cpu_cores", "gauge", "CPU allocated at the site, cores.",
               per_site("alloc_cpu_cores"))
    out.metric("hierarchy_site_decisions_total", "counter", "Final decisions of the site.",
               [({"site": s["site"], "outcome": k}, v) for s in sites
                for k, v in s["decisions"].items()])
    out.metric("hierarchy_pool_cpu_cores", "gauge", "Cloud pool CPU, cores.",
               [({}, pool["cpu_cores"])])
    out.metric("hierarchy_pool_alloc_cpu_cores", "gauge", "Cloud pool CPU allocated, cores.",
               [({}, pool["alloc_cpu_cores"])])
    out.metric("hierarchy_pool_containers", "gauge", "Containers in the cloud pool.",
               [({}, pool["containers"])])
    out.metric("hierarchy_cloud_offloads_total", "counter", "Offloaded containers received.",
               [({}, offloads["offloads"])])
    out.metric("hierarchy_cloud_placements_total", "counter",
               "Offloaded containers by where they went.",
               [({"destination": "pool"}, offloads["to_pool"]),
                ({"destination": "site"}, offloads["to_sites"]),
                ({"destination": "rejected"}, offloads["rejected"])])
    out.metric("hierarchy_cloud_refused_messages_total", "counter",
               "Messages refused by validation.", [({}, offloads["refused_messages"])])
    return "\n".join(out.lines) + "\n"
