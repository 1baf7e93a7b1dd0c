"""The cloud agent's REST API (FastAPI). `create_app()` builds it; its lifespan owns the MQTT
client (through `CloudAgent`) and the zeroconf announcement, both in `app.state`."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse

from cloud_agent import metrics
from cloud_agent.agent import AGENT_VERSION, CloudAgent
from cloud_agent.auth import DISABLED, UNAUTHORIZED, token_checker
from cloud_agent.config import CloudConfig
from hierarchy.discovery import AsyncAdvertiser, service_info
from hierarchy.scenario import load_scenario

log = logging.getLogger(__name__)


def get_agent(request: Request) -> CloudAgent:
    return request.app.state.agent


Agent = Annotated[CloudAgent, Depends(get_agent)]


def create_app(config: CloudConfig | None = None) -> FastAPI:
    """The app; starting it (uvicorn, or `with TestClient(app)`) connects and advertises."""
    config = config or CloudConfig()
    load_scenario(config.scenario)  # fail here, not at startup, on a bad scenario
    token = config.token()  # likewise an unreadable token file
    reader = [Depends(token_checker(token, required=config.protect_reads))]
    writer = [Depends(token_checker(token, required=True))]
    read_errors = UNAUTHORIZED if config.protect_reads else {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        agent = CloudAgent(config)
        agent.start()
        app.state.agent = agent
        app.state.advertiser = None
        if config.advertise:
            info = service_info(
                f"hierarchy-cloud-{socket.gethostname()}", config.http_host, config.http_port,
                config.advertised_broker or config.broker, config.rest_url, config.hierarchy)
            advertiser = AsyncAdvertiser(info, config.discovery_interfaces)
            try:
                await advertiser.start()
                app.state.advertiser = advertiser
            except Exception:  # no multicast here: serve anyway, edges need --broker
                log.exception("could not advertise the hierarchy with zeroconf")
        try:
            yield
        finally:
            if app.state.advertiser is not None:
                await app.state.advertiser.close()
            agent.stop()

    app = FastAPI(
        title="hierarchy cloud agent",
        version=AGENT_VERSION,
        description="The global view of the edge-cloud hierarchy: every edge site, the cloud "
        "pool, the offloads and the latest decisions.",
        lifespan=lifespan,
    )

    @app.get("/healthz", summary="liveness")
    def healthz(agent: Agent) -> dict[str, Any]:
        return {"ok": True, "mqtt_connected": agent.connected}

    @app.get("/status", summary="every site, the cloud pool and the offloads",
             dependencies=reader, responses=read_errors)
    def status(agent: Agent) -> dict[str, Any]:
        return agent.overview()

    @app.get("/sites/{site}", summary="one site: status, latest telemetry, decisions so far",
             dependencies=reader, responses={404: {"description": "unknown site"}, **read_errors})
    def site(site: str, agent: Agent) -> dict[str, Any]:
        detail = agent.site_detail(site)
        if detail is None:
            raise HTTPException(404, f"unknown site {site!r}: no message from it yet")
        return detail

    @app.get("/decisions", summary="the latest decisions, newest first",
             dependencies=reader, responses=read_errors)
    def decisions(agent: Agent, site: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        with agent.lock:
            return {"decisions": agent.decisions.recent(site, limit)}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
             dependencies=reader, responses=read_errors)
    def prometheus(agent: Agent) -> PlainTextResponse:
        return PlainTextResponse(metrics.render(agent.overview()),
                                 media_type=metrics.CONTENT_TYPE)

    # Its own path rather than DELETE /sites/{site}: Starlette's 405 answers list the methods
    # of one route only, and a path of one method keeps the Allow header truthful.
    @app.post("/sites/{site}/forget", summary="forget a decommissioned site (needs the token)",
                dependencies=writer, status_code=200,
                responses={404: {"description": "unknown site"}, **UNAUTHORIZED, **DISABLED})
    def forget_site(site: str, agent: Agent) -> dict[str, Any]:
        """Drops the site from the view and clears its retained status on the broker, so a
        gateway taken out of service stops showing as offline. A site that comes back
        reappears with its next message."""
        if not agent.forget_site(site):
            raise HTTPException(404, f"unknown site {site!r}: no message from it yet")
        return {"forgotten": site}

    return app
