"""`GET /v1/report`: the page `mot report` writes, for the token's tenant only.

The same service call as the command (service/report.py), run in the threadpool;
the page carries its Content-Security-Policy as a header too. Errors are the API's
problems (JSON); only the page is HTML.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from mot.adapters.http import errors
from mot.adapters.http.deps import Context, TenantReader
from mot.adapters.http.errors import ApiError
from mot.adapters.http.routes_queries import SinceParam, UntilParam, _utc

router = APIRouter(tags=["report"])


@router.get("/v1/report", response_model=None,
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}},
                             "description": "One self-contained HTML page"},
                       **errors.responses(400, 401, 403, 422, 429, 503)})
def report(context: Context, principal: TenantReader, since: SinceParam = None,
           until: UntilParam = None) -> HTMLResponse:
    """The report page of the token's tenant, as `mot report --tenant T --out -`: stage funnel
    and weekly movement, reciprocity, amplification, team scoreboard, listening share."""
    from mot.domain.timefmt import reversed_window
    from mot.service.report import CSP

    backwards = reversed_window(_utc(since), _utc(until))
    if backwards is not None:  # an empty page would pass for a quiet period
        raise ApiError(422, backwards, code="invalid_parameter", field="until")
    # A page computed whole per request: one at a time per tenant, and a few a minute.
    with context.quotas.report(principal.tenant):
        page = context.services.report(tenant=principal.tenant, since=_utc(since),
                                       until=_utc(until))
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP,
                                       "Cache-Control": "no-store"})
