"""The cloud agent's configuration: one validated model, from a YAML file and the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hierarchy.agent_config import ConfigError, MqttOptions, load_model, read_secret

TOKEN_ENV = "HIERARCHY_API_TOKEN"
MIN_TOKEN_CHARS = 16  # a guessable token is no protection

__all__ = ["CloudConfig", "ConfigError", "load_config", "parse_hostport", "api_token_from_env"]


class CloudConfig(BaseModel):
    """Everything the cloud agent needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://host:port")
    mqtt: MqttOptions = Field(default_factory=MqttOptions)
    client_id: str = Field(default="hierarchy-cloud", description="MQTT client id")
    http_host: str = Field(default="127.0.0.1", description="REST address (loopback default)")
    http_port: int = Field(default=8080, ge=0, le=65535, description="REST port")
    scenario: str = Field(
        default="default", description="scenario whose cloud pool (and shape) this cloud runs")
    speed: float = Field(default=1.0, gt=0, description="simulated s per real s (lifetimes)")
    forward_timeout_s: float = Field(
        default=10.0, gt=0, description="wait for a site the cloud forwarded a container to")
    telemetry_stale_s: float = Field(
        default=30.0, gt=0, description="a site silent this long is not offered containers")
    status_interval_s: float = Field(default=5.0, gt=0, description="cloud status period, s")
    decisions_kept: int = Field(default=10_000, ge=1, description="decisions /decisions keeps")
    advertise: bool = Field(default=True, description="announce the hierarchy with zeroconf")
    hierarchy: str = Field(default="default", min_length=1, max_length=60,
                           description="name of this hierarchy, announced with zeroconf")
    discovery_interfaces: list[str] | None = Field(
        default=None, description="addresses zeroconf binds to (default: all interfaces)")
    advertised_broker: str | None = Field(
        default=None, description="broker URL announced to edges (default: `broker`)")
    api_token: str | None = Field(
        default=None, repr=False, description="bearer token the REST API's state-changing "
        "endpoints require (none: they are disabled); prefer api_token_file or "
        "$HIERARCHY_API_TOKEN")
    api_token_file: str | None = Field(
        default=None, description="file holding the REST bearer token (first line)")
    protect_reads: bool = Field(
        default=False, description="require the bearer token on the read endpoints too "
        "(/healthz stays open for liveness probes)")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")

    @model_validator(mode="after")
    def _reads_need_a_token(self) -> CloudConfig:
        if self.protect_reads and not (self.api_token or self.api_token_file):
            raise ValueError("protect_reads needs api_token or api_token_file (or "
                             f"${TOKEN_ENV})")
        if self.api_token is not None and len(self.api_token) < MIN_TOKEN_CHARS:
            raise ValueError(f"api_token: use at least {MIN_TOKEN_CHARS} characters")
        return self

    def token(self) -> str | None:
        """The REST bearer token: `api_token`, else the first line of `api_token_file`."""
        if self.api_token is not None:
            return self.api_token
        if self.api_token_file is not None:
            token = read_secret(self.api_token_file, "api_token_file")
            if len(token) < MIN_TOKEN_CHARS:
                raise ConfigError(f"api_token_file: use at least {MIN_TOKEN_CHARS} characters")
            return token
        return None

    @property
    def rest_url(self) -> str:
        host = "127.0.0.1" if self.http_host in ("", "0.0.0.0") else self.http_host
        return f"http://{host}:{self.http_port}"


def parse_hostport(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT`, or `PORT`) -> (host, port); host defaults to 127.0.0.1."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080") from None
    return host or "127.0.0.1", number


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CloudConfig:
    """The file's settings (if any) with `overrides` (unset ones: None) on top, validated."""
    return load_model(CloudConfig, path, overrides)



def api_token_from_env() -> str | None:
    """$HIERARCHY_API_TOKEN, if set: it wins over the configuration file (an environment file
    of mode 0600 is how the systemd unit passes secrets; a command line would show it)."""
    return os.environ.get(TOKEN_ENV) or None
