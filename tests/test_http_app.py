"""The app's shape: routers of small modules, dependencies for what a route needs, no closures.

Every route is a module-level function of one of the routes_* modules, taking the app's
context, the principal and the tenant's scope through `Depends`; `create_app` only wires.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from fastapi.routing import APIRoute
from http_support import api

from mot.adapters.http import app as app_module
from mot.adapters.http import (
    report_routes,
    routes_alerts,
    routes_erasure,
    routes_ingest,
    routes_operations,
    routes_queries,
    routes_webhooks,
)
from mot.adapters.http.deps import ApiContext

ROUTERS = (routes_ingest, routes_webhooks, routes_queries, report_routes, routes_operations,
           routes_alerts, routes_erasure)


def test_routes_are_module_functions_of_the_routers(tmp_path: Path) -> None:
    with api(str(tmp_path / "mot.db")) as client:
        app = client.client.app
        assert isinstance(app.state.mot, ApiContext)  # type: ignore[attr-defined]
        included = [getattr(r, "original_router", None) for r in app.routes]  # type: ignore[attr-defined]
        assert [r for r in included if r is not None] == [m.router for m in ROUTERS]
        routes = [(m, r) for m in ROUTERS for r in m.router.routes if isinstance(r, APIRoute)]
        # Every route the API serves, named: a route added or lost shows here by its path.
        assert sorted(f"{','.join(sorted(r.methods))} {r.path}" for _, r in routes) == sorted([
            "POST /v1/moments", "POST /v1/webhooks/{source}", "POST /v1/erasures",
            "GET /v1/relationships", "GET /v1/reciprocity", "GET /v1/transitions",
            "GET /v1/amplifications", "GET /v1/teams", "GET /v1/listening", "GET /v1/responses",
            "GET /v1/response-times", "GET /v1/persons", "GET /v1/persons/{customer_id}",
            "GET /v1/moments/{moment_id}", "GET /v1/report", "GET /healthz", "GET /metrics",
            "GET /v1/alerts", "POST /v1/alerts/{alert_id}/ack",
        ])
        for module, route in routes:
            assert route.endpoint.__module__ == module.__name__, route.path
            assert "<locals>" not in route.endpoint.__qualname__, route.path
            names = {getattr(d.call, "__name__", "") for d in route.dependant.dependencies}
            if route.path.startswith("/v1/") and route.path != "/v1/webhooks/{source}":
                assert names & {"_writer", "_reader", "_tenant_reader", "_admin"}, route.path
            assert "_context" in names, route.path


def test_create_app_only_wires() -> None:
    lines = inspect.getsource(app_module.create_app).splitlines()
    assert len(lines) < 70, len(lines)
    for path in Path(app_module.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) < 300, path.name
