"""Operations: liveness and Prometheus metrics (no token; nothing about any tenant)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mot.adapters.http import errors
from mot.adapters.http.deps import Context
from mot.adapters.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mot.adapters.http.models import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=None,
            responses={200: {"model": Health}, **errors.responses(400, 503)})
def healthz(context: Context) -> Response:
    """Alive, and the store answers (no token needed; says nothing about any tenant); 503
    when events wait and the projections have made no progress for the configured time."""
    if context.stall_after_s is None:
        context.services.notification_log.head()  # the store answers
    else:
        status = context.services.projections.status()
        if status.stalled(context.stall_after_s):
            return errors.problem(503, f"the projections have made no progress for more than "
                                  f"{context.stall_after_s:g} s while {status.lag:,} events wait "
                                  f"(the oldest {status.lag_seconds:,.0f} s old)",
                                  code="projector_stalled")
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/metrics", response_model=None,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"},
                       **errors.responses(400)})
def prometheus_metrics(context: Context) -> Response:
    """Prometheus metrics: requests, latency, ingest outcomes, ledger and projection figures."""
    return Response(context.metrics.render(), media_type=METRICS_CONTENT_TYPE)
