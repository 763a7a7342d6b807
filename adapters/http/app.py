"""The HTTP API: `create_app(services)` builds the FastAPI application over the service layer.

    POST /v1/moments               a JSON array or NDJSON batch; an answer per message
    POST /v1/webhooks/{source}     vendor webhooks, mapped by mot.adapters.vendors
    GET  /v1/relationships ...     every query of `mot query`, same filters, same JSON
    GET  /v1/moments/{moment_id}   a moment's history, as `mot show --format json`
    GET  /healthz, /metrics        liveness (store reachable) and Prometheus metrics

Every /v1 endpoint takes a bearer token (`mot token create`) and stays inside
its tenant. No SQL here: the routers (routes_*.py) call the service layer through
their dependencies (deps.py), and the blocking calls run in the threadpool, so
the event loop keeps answering. A batch is recorded in chunks (ingest.py) and
answered only after the last one committed: a 200 survives the process being
killed right after it. Every error is a problem (errors.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from mot import __version__
from mot.adapters.http import (
    errors,
    report_routes,
    routes_alerts,
    routes_erasure,
    routes_ingest,
    routes_operations,
    routes_queries,
    routes_webhooks,
)
from mot.adapters.http.bodies import DEFAULT_MAX_BODY
from mot.adapters.http.deps import ApiContext
from mot.adapters.http.ingest import Ingest, Limits
from mot.adapters.http.metrics import Metrics
from mot.adapters.http.middleware import Observe, known_query_only
from mot.adapters.http.projector import Projector
from mot.adapters.http.tenancy import Quotas, TenantQuotas
from mot.adapters.http.webhooks import WebhookSettings
from mot.bootstrap import Services
from mot.service.access import AccessService
from mot.service.targets import Targets


def create_app(
    services: Services,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    project_every: float | None = None,
    access: AccessService | None = None,
    webhooks: WebhookSettings | None = None,
    ingest_threads: int = 4,
    limits: Limits | None = None,
    stall_after_s: float | None = None,
    targets: Targets | None = None,
    config_path: str | None = None,
    quotas: Quotas | None = None, metrics_token: str | None = None,
) -> FastAPI:
    """The API over `services` (one per process). `project_every` seconds: run a background
    projector (None: queries rely on `refresh=true` or on another `mot project --follow`)."""
    limits = limits or Limits(max_body=max_body)
    services.serving()  # its own locks on the store stay while it serves (the report's reads)
    metrics = Metrics(services.projections.status, services.alerts.counts)
    context = ApiContext(
        services=services,
        access=access or services.access,
        ingest=Ingest(services.tenant_ledger, metrics, limits, ingest_threads),
        metrics=metrics,
        projector=Projector(services, config_path),
        webhooks=webhooks or WebhookSettings(),
        stall_after_s=stall_after_s,
        targets=targets or Targets(),
        quotas=TenantQuotas(quotas or Quotas()), metrics_token=metrics_token or None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if project_every is not None:
            context.projector.start(project_every)
        try:
            yield
        finally:
            context.projector.shutdown()

    app = FastAPI(
        title="mot — the moments-of-truth ledger",
        version=__version__,
        description=(
            "Record moments of truth and read the projections of one tenant. Authenticate with "
            "`Authorization: Bearer TOKEN` (`mot token create --tenant T --scope read,write`; "
            "`admin` to erase a person). "
            "Every error is an RFC 9457 problem (`application/problem+json`)."),
        lifespan=lifespan,
        dependencies=[Depends(known_query_only)],
    )
    app.state.mot = context
    app.add_middleware(Observe, metrics=metrics, max_body=limits.max_body)
    errors.install(app, _store_errors())
    for module in (routes_ingest, routes_webhooks, routes_queries, report_routes,
                   routes_operations, routes_alerts, routes_erasure):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(routes_ingest.WIRE_DEFINITIONS)
            components.update(errors.schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _store_errors() -> tuple[type[Exception], ...]:
    from eventsourcing.persistence import PersistenceError

    found: list[type[Exception]] = [PersistenceError, sqlite3.Error]
    try:
        import psycopg

        found.append(psycopg.Error)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return tuple(found)
