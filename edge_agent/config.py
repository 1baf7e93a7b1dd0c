"""The edge agent's configuration: one validated model, from a YAML file and the command line.

Command-line options override the file; every field has a default except the site id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hierarchy.agent_config import ConfigError, MqttOptions, load_model
from hierarchy.protocol import check_site_id

__all__ = ["ConfigError", "EdgeConfig", "MqttOptions", "load_config"]


class EdgeConfig(BaseModel):
    """Everything an edge agent needs to run one site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: str = Field(description="this site's id (a topic level: letters, digits, _ . -)")
    broker: str | None = Field(
        default=None, description="mqtt://host:port; none: find it with zeroconf")
    mqtt: MqttOptions = Field(default_factory=MqttOptions)
    client_id: str | None = Field(default=None, description="default: hierarchy-edge-{site}")
    policy: str = Field(
        default="learned", min_length=1, max_length=4096,
        description="`learned` (the default: the shipped policy trained for this site's "
        "platform, models/*; refused where none fits), `learned:DIR` (an exported policy: "
        "DIR/policy.npz + DIR/policy.json, run with NumPy) or a heuristic of the registry "
        "(power-aware, first-fit, ...)")
    seed: int = Field(default=0, description="seed of the policy's random tie-breaking")
    backend: Literal["sim"] = Field(default="sim", description="what the agent controls")
    scenario: str = Field(default="default", description="sim backend: scenario name or path")
    site_index: int | None = Field(
        default=None, ge=0, description="sim backend: the scenario's site (default: the "
        "trailing number of the site id)")
    speed: float = Field(default=1.0, gt=0, description="sim backend: simulated s per real s")
    usage_frac: float = Field(
        default=0.6, gt=0, le=1, description="sim backend: CPU used / CPU allocated")
    store: Path | None = Field(
        default=None, description="SQLite file of decisions and the outbox (default: "
        "./edge-{site}.sqlite3)")
    telemetry_interval_s: float = Field(default=5.0, gt=0, description="telemetry period, s")
    queue_max: int = Field(
        default=10_000, ge=1, description="request ids waiting for a decision, at most; "
        "beyond, requests are rejected (copies of one waiting or decided do not count)")
    batch_max: int = Field(default=256, ge=1, description="requests decided per commit")
    outbox_inflight_max: int = Field(
        default=5_000, ge=1, description="outbox messages handed to MQTT before their ack")
    offload_retry_s: float = Field(
        default=15.0, gt=0, description="send offloads still unanswered after this long "
        "again (a broker that crashed may have lost them; the cloud answers each once)")
    behaviour_sample_s: float = Field(
        default=300.0, gt=0, description="backend seconds between usage samples of the "
        "running containers for their services' statistics (the simulator's 300 s)")
    behaviour_max_services: int = Field(
        default=4096, ge=1, description="(service, container) statistics kept, at most (the "
        "least recently observed are dropped)")
    decision_retention_s: float = Field(
        default=7 * 86400.0, gt=0, description="how long decided request ids are remembered")
    discovery_timeout_s: float = Field(default=10.0, gt=0, description="zeroconf wait, s")
    hierarchy: str = Field(default="default", min_length=1, max_length=60,
                           description="the hierarchy to join when finding it with zeroconf")
    discovery_interfaces: list[str] | None = Field(
        default=None, description="addresses zeroconf binds to (default: all interfaces)")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")

    @field_validator("site")
    @classmethod
    def _site_id(cls, value: str) -> str:
        return check_site_id(value)

    @property
    def store_path(self) -> Path:
        return self.store or Path(f"edge-{self.site}.sqlite3")

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"hierarchy-edge-{self.site}"


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> EdgeConfig:
    """The file's settings (if any) with `overrides` (unset ones: None) on top, validated."""
    return load_model(EdgeConfig, path, overrides)
