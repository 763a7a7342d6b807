"""GET /v1/alerts: the alerts raised for the token's tenant (SPEC §3.6), as `mot alerts list`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Response

from mot.adapters.http import errors
from mot.adapters.http.deps import Context, TenantReader
from mot.adapters.http.routes_queries import LimitParam, SinceParam
from mot.domain.timefmt import to_micros
from mot.service.alerting import AlertQuery, stored_record

router = APIRouter(tags=["alerts"])

Rule = Literal["detractor", "stop_asking", "negative_amplification", "overdue"]


@router.get("/v1/alerts", response_model=None,
            responses={200: {"model": list[dict[str, Any]]}, **errors.responses(400, 401, 403, 422, 503)})
def alerts(context: Context, principal: TenantReader, rule: Rule | None = None,
           since: SinceParam = None,
           failed: Annotated[bool, Query(description="Only alerts whose delivery failed for good")
                             ] = False,
           limit: LimitParam = None) -> Response:
    """Alerts of the tenant, oldest first, with each destination's delivery state
    (`since`: raised at or after)."""
    found = context.services.alerts.find(AlertQuery(
        principal.tenant, rule, None if since is None else to_micros(since), failed, limit=limit))
    return Response(orjson.dumps([stored_record(s) for s in found]), media_type="application/json")
