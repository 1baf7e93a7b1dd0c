"""`edge-agent`: run the edge agent of one site until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
import threading
from typing import Any

from edge_agent.config import ConfigError, load_config
from hierarchy.agent_config import configure_logging, secret_in_url, with_mqtt_credentials


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="edge-agent",
        description="The hierarchy's edge agent: places and sizes the containers requested at "
        "one edge site, within the site's power budget, and offloads the rest to the cloud "
        "agent. Options override the configuration file.",
        epilog="The MQTT password comes from the HIERARCHY_MQTT_PASSWORD environment variable "
        "or mqtt.password_file in the configuration, never the command line. Stop with "
        "SIGTERM or Ctrl-C: the agent finishes its batch, says offline and "
        "keeps unsent messages in its store for the next start.",
    )
    ap.add_argument("--site", help="this site's id, e.g. edge-0 (required here or in --config)")
    ap.add_argument("--config", metavar="FILE", help="YAML configuration file")
    ap.add_argument("--broker", metavar="URL",
                    help="mqtt://host:port or mqtts://...; default: found with zeroconf")
    ap.add_argument("--policy", metavar="NAME|learned|learned:DIR",
                    help="`learned` (default: the shipped policy trained for this site's "
                    "platform), `learned:DIR` for an exported one (DIR/policy.npz + "
                    "policy.json) or a heuristic, e.g. power-aware")
    ap.add_argument("--backend", choices=["sim"], help="what the agent controls (default: sim)")
    ap.add_argument("--scenario", help="sim backend: scenario name or YAML path")
    ap.add_argument("--site-index", type=int, help="sim backend: the scenario's site index")
    ap.add_argument("--speed", type=float, help="sim backend: simulated seconds per second")
    ap.add_argument("--store", metavar="FILE", help="SQLite store (default ./edge-SITE.sqlite3)")
    ap.add_argument("--client-id", help="MQTT client id (default hierarchy-edge-SITE)")
    ap.add_argument("--username", help="MQTT user name")
    ap.add_argument("--telemetry-interval", type=float, dest="telemetry_interval_s",
                    metavar="S", help="telemetry period in seconds (default 5)")
    ap.add_argument("--hierarchy", metavar="NAME",
                    help="the hierarchy to join when finding it with zeroconf (default: default)")
    ap.add_argument("--discovery-interface", action="append", dest="discovery_interfaces",
                    metavar="ADDR", help="address zeroconf binds to (repeatable; default all)")
    ap.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items()
        if k not in ("config", "username") and v is not None
    }
    try:
        config = with_mqtt_credentials(load_config(args.config, overrides), args.username)
    except ConfigError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    if secret_in_url(args.broker):
        logging.getLogger("edge_agent").warning(
            "--broker carries a password, which any local user can read with ps: use "
            "HIERARCHY_MQTT_PASSWORD or mqtt.password_file instead")
    from edge_agent.agent import EdgeAgent  # after parsing: --help stays fast

    try:
        agent = EdgeAgent(config)
    except (ValueError, RuntimeError, OSError) as exc:
        # A policy that cannot be used (unknown, missing, tampered, trained for another
        # observation), a backend or store that cannot start: one line, no traceback.
        print(f"edge-agent: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    # What start-up made (NumPy, numba, pydantic, the policy: some 140k objects) never
    # becomes garbage: frozen, a full collection no longer walks it (60 ms -> well under 1).
    gc.freeze()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("edge_agent").info(
        "edge agent %s: policy %s, backend %s, store %s", config.site,
        agent.decider.policy_label, config.backend, config.store_path)
    agent.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
