"""What the edge and cloud agents' configurations share: MQTT options and YAML loading."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hierarchy.transport import BrokerConfig

C = TypeVar("C", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


class MqttOptions(BaseModel):
    """How to talk to the broker (its address comes separately, as a URL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str | None = Field(default=None, description="MQTT user name")
    password: str | None = Field(
        default=None, repr=False,
        description="MQTT password; prefer password_file or $HIERARCHY_MQTT_PASSWORD")
    password_file: str | None = Field(
        default=None, description="file holding the MQTT password (first line), e.g. a "
        "systemd credential; read at start")
    tls: bool | None = Field(default=None, description="force TLS on/off (default: from URL)")
    ca_file: str | None = Field(default=None, description="CA bundle for TLS")
    cert_file: str | None = Field(default=None, description="client certificate for TLS")
    key_file: str | None = Field(default=None, description="client key for TLS")
    mqtt_version: Literal["5", "3.1.1"] = Field(
        default="3.1.1", description="protocol version: 3.1.1 (the default) costs paho-mqtt "
        "less CPU per message than 5, and gives the agents all they use (persistent sessions, "
        "last will, retained status); with 5 the agent also sets how long the broker keeps "
        "its session")
    keepalive_s: int = Field(default=30, ge=5, description="keepalive, s")
    reconnect_max_s: int = Field(default=30, ge=1, description="longest reconnect delay, s")

    def broker_config(self, url: str) -> BrokerConfig:
        fields = self.model_dump(exclude_none=True, exclude={"password_file"})
        if self.password is None and self.password_file is not None:
            fields["password"] = read_secret(self.password_file, "mqtt.password_file")
        return BrokerConfig.from_url(url, **fields)


def read_secret(path: str | Path, what: str) -> str:
    """The first line of the file at `path` (a password or a token), without its newline;
    ConfigError, naming `what` and the file, when it cannot be read or is empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from None
    secret = text.splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise ConfigError(f"{what}: {path} is empty")
    return secret


def load_model(model: type[C], path: str | Path | None,
               overrides: dict[str, Any] | None = None) -> C:
    """`model` from the YAML file at `path` (if any) with `overrides` on top (None: unset)."""
    raw: dict[str, Any] = {}
    origin = "command line"
    if path is not None:
        origin = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the configuration must be a YAML mapping")
        raw.update(loaded)
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from None


PASSWORD_ENV = "HIERARCHY_MQTT_PASSWORD"


def with_mqtt_credentials(config: C, username: str | None) -> C:
    """`config` with the MQTT user name from the command line and the password from
    $HIERARCHY_MQTT_PASSWORD (never from the command line, where `ps` shows it)."""
    update: dict[str, Any] = {}
    if username:
        update["username"] = username
    if os.environ.get(PASSWORD_ENV):
        update["password"] = os.environ[PASSWORD_ENV]
    if not update:
        return config
    return config.model_copy(update={"mqtt": config.mqtt.model_copy(update=update)})


def secret_in_url(url: str | None) -> bool:
    """Whether a broker URL carries a password (`mqtt://user:secret@host`): on a command line
    every local user can read it with `ps`, so the CLIs warn about it."""
    if not url or "://" not in url:
        return False
    return urlsplit(url).password is not None


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
