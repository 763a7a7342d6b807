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
    """Alive, and the store answers (no token needed; says nothing about any tenant)."""
    context.services.ledger_store.head()
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/metrics", response_model=None,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"},
                       **errors.responses(400)})
def prometheus_metrics(context: Context) -> Response:
    """Prometheus metrics: requests, latency, ingest outcomes, ledger and projection figures."""
    return Response(context.metrics.render(), media_type=METRICS_CONTENT_TYPE)
