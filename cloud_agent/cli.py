"""`cloud-agent`: run the cloud agent and its REST API until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from cloud_agent.config import (
    CloudConfig,
    ConfigError,
    api_token_from_env,
    load_config,
    parse_hostport,
)
from hierarchy.agent_config import configure_logging, secret_in_url, with_mqtt_credentials

log = logging.getLogger("cloud_agent")
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cloud-agent",
        description="The hierarchy's cloud agent: places what the edge agents offload (the "
        "cloud pool, or another site with room near the container's peers), keeps the "
        "global view and serves it over REST (OpenAPI docs at /docs).",
        epilog="Secrets never go on the command line (ps shows it): the MQTT password comes "
        "from HIERARCHY_MQTT_PASSWORD or mqtt.password_file, the REST token from "
        "HIERARCHY_API_TOKEN or --api-token-file. See docs/security.md.",
    )
    ap.add_argument("--config", metavar="FILE", help="YAML configuration file")
    ap.add_argument("--broker", metavar="URL", help="mqtt://host:port (default 127.0.0.1:1883)")
    ap.add_argument("--http", metavar="HOST:PORT",
                    help="REST address (default 127.0.0.1:8080; loopback unless you say so)")
    ap.add_argument("--scenario", help="scenario whose cloud pool this cloud runs")
    ap.add_argument("--speed", type=float, help="simulated seconds per second (lifetimes)")
    ap.add_argument("--advertised-broker", metavar="URL",
                    help="broker URL announced to edge agents (default: --broker)")
    ap.add_argument("--no-advertise", action="store_true", help="do not announce with zeroconf")
    ap.add_argument("--hierarchy", metavar="NAME",
                    help="name announced with zeroconf; edge agents join only theirs "
                    "(default: default)")
    ap.add_argument("--discovery-interface", action="append", dest="discovery_interfaces",
                    metavar="ADDR", help="address zeroconf binds to (repeatable; default all)")
    ap.add_argument("--username", help="MQTT user name")
    ap.add_argument("--api-token-file", metavar="FILE",
                    help="file holding the REST bearer token (enables the endpoints that change "
                    "state; see docs/security.md)")
    ap.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides: dict[str, Any] = {
        "broker": args.broker, "scenario": args.scenario, "speed": args.speed,
        "advertised_broker": args.advertised_broker,
        "discovery_interfaces": args.discovery_interfaces, "log_level": args.log_level,
        "hierarchy": args.hierarchy, "api_token_file": args.api_token_file,
        "api_token": api_token_from_env(),
    }
    try:
        if args.http:
            overrides["http_host"], overrides["http_port"] = parse_hostport(args.http)
        if args.no_advertise:
            overrides["advertise"] = False
        config = with_mqtt_credentials(load_config(args.config, overrides), args.username)
    except ConfigError as exc:
        print(f"cloud-agent: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    warn_about_exposure(config, args.broker)
    import uvicorn  # after parsing: --help stays fast

    from cloud_agent.app import create_app

    try:
        app = create_app(config)
    except ValueError as exc:
        print(f"cloud-agent: {exc}", file=sys.stderr)
        return 2
    print(f"cloud agent: REST on {config.rest_url} (docs at {config.rest_url}/docs), "
          f"broker {config.broker}", flush=True)
    # uvicorn handles SIGTERM/SIGINT: it stops serving, runs the lifespan's shutdown, then
    # raises the signal again for the handler it found; a no-op there makes the exit code 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(app, host=config.http_host, port=config.http_port,
                log_level=config.log_level.lower())
    return 0


def warn_about_exposure(config: CloudConfig, broker_arg: str | None) -> None:
    """Say so when a secret sits on the command line or the REST API is reachable from the
    network without a token."""
    if secret_in_url(broker_arg):
        log.warning("--broker carries a password, which any local user can read with ps: "
                    "use HIERARCHY_MQTT_PASSWORD or mqtt.password_file instead")
    if config.http_host not in LOOPBACK and not config.protect_reads:
        log.warning("the REST API listens on %s, beyond loopback, and its read endpoints need "
                    "no token: set protect_reads (see docs/security.md)", config.http_host)


if __name__ == "__main__":
    sys.exit(main())
