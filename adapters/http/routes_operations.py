"""Operations: liveness and Prometheus metrics (no tenant's token; nothing about any tenant).

/healthz tells anyone only whether the server is well: never a count (its 503 names no
number of waiting events; the server's log and /metrics do).

The metrics are the server's totals (messages by outcome, the ledger's head): a tenant
reading them twice learns how much the others sent meanwhile. With `--metrics-token`
(MOT_METRICS_TOKEN) only the operator's scraper, sending that token, reads them.
"""

from __future__ import annotations

import hmac
import logging
from functools import partial

from fastapi import APIRouter, Request, Response

from mot.adapters.http import errors
from mot.adapters.http.deps import ApiContext, Context
from mot.adapters.http.errors import ApiError
from mot.adapters.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mot.adapters.http.models import Health

router = APIRouter(tags=["operations"])
log = logging.getLogger("mot.http")


@router.get("/healthz", response_model=None,
            responses={200: {"model": Health}, **errors.responses(400, 503)})
async def healthz(context: Context) -> Response:
    """Alive, and the store answers (no token needed; says nothing about any tenant); 503
    when events wait and the projections have made no progress for the configured time.
    The answer is the store's of the last second (a flood of /healthz asks it once a second)."""
    stalled = await context.health.answer(partial(_stalled, context))
    if stalled is not None:
        return errors.problem(503, stalled, code="projector_stalled")
    return Response(b'{"status":"ok"}', media_type="application/json")


def _stalled(context: ApiContext) -> str | None:
    """Why the server is not well (the projections stall), or None; the store's error raised."""
    if context.stall_after_s is None:
        context.services.notification_log.head()  # the store answers
        return None
    status = context.services.projections.status()
    if not status.stalled(context.stall_after_s):
        return None
    # Anyone may ask /healthz: how many events wait, and how old, are every tenant's
    # (sampled twice, how much the others sent), so they go to the server's log and
    # /metrics, not to the answer.
    log.warning("the projections have made no progress for more than %g s while %s "
                "events wait (the oldest %.0f s old)", context.stall_after_s,
                f"{status.lag:,}", status.lag_seconds)
    return (f"the projections have made no progress for more than {context.stall_after_s:g} s "
            f"while events wait (how many: mot status, or /metrics' mot_projection_lag)")


@router.get("/metrics", response_model=None,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"},
                       **errors.responses(400, 401)})
def prometheus_metrics(context: Context, request: Request) -> Response:
    """Prometheus metrics: requests, latency, ingest outcomes, ledger and projection figures
    (with `--metrics-token`, for `Authorization: Bearer` that token only)."""
    expected = context.metrics_token
    if expected is not None:
        # Read here, not declared as the API's bearer scheme: by default /metrics is open,
        # and its schema must not say it needs a token.
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        credentials = given.strip() if scheme.lower() == "bearer" else None
        given = credentials or ""
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                                   expected.encode("utf-8", "surrogatepass")):
            raise ApiError(401, "/metrics needs the metrics token (mot serve --metrics-token, "
                                "MOT_METRICS_TOKEN) as Authorization: Bearer; a tenant's token "
                                "does not read the server's totals",
                           code="missing_token" if credentials is None else "invalid_token",
                           headers={"WWW-Authenticate": "Bearer"})
    return Response(context.metrics.render(), media_type=METRICS_CONTENT_TYPE)
