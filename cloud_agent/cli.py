"""`cloud-agent`: run the cloud agent and its REST API until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from cloud_agent.config import ConfigError, load_config, parse_hostport
from hierarchy.agent_config import configure_logging, with_mqtt_credentials


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="cloud-agent",
        description="The hierarchy's cloud agent: places what the edge agents offload (the "
        "cloud pool, or another site with room near the container's peers), keeps the "
        "global view and serves it over REST (OpenAPI docs at /docs).",
        epilog="The MQTT password may also come from the HIERARCHY_MQTT_PASSWORD environment "
        "variable.",
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
    ap.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides: dict[str, Any] = {
        "broker": args.broker, "scenario": args.scenario, "speed": args.speed,
        "advertised_broker": args.advertised_broker,
        "discovery_interfaces": args.discovery_interfaces, "log_level": args.log_level,
        "hierarchy": args.hierarchy,
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


if __name__ == "__main__":
    sys.exit(main())
