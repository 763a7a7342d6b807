"""The HTTP API: `create_app(services)` builds the FastAPI application over the service layer.

    POST /v1/moments               a JSON array or NDJSON batch; an answer per message
    POST /v1/webhooks/{source}     vendor webhooks, mapped by mot.adapters.vendors
    GET  /v1/relationships ...     every query of `mot query`, same filters, same JSON
    GET  /v1/moments/{moment_id}   a moment's history, as `mot show --format json`
    GET  /healthz, /metrics        liveness (store reachable) and Prometheus metrics

Every /v1 endpoint takes a bearer token (`mot token create`) and stays inside
its tenant. No SQL here: the endpoints call the service layer, and the blocking
calls run in the threadpool, so the event loop keeps answering. A batch is
recorded in chunks (adapters/http/ingest.py) and answered only after the last
one committed: a 200 survives the process being killed right after it.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request, Response
from pydantic import AwareDatetime, BeforeValidator, TypeAdapter
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mot import __version__
from mot.adapters.http import errors
from mot.adapters.http.auth import Reader, Writer, authenticate
from mot.adapters.http.bodies import (
    DEFAULT_MAX_BODY,
    Batch,
    BodyTooLarge,
    declared_length,
    split_batch,
)
from mot.adapters.http.errors import ApiError
from mot.adapters.http.ingest import Ingest, Limits
from mot.adapters.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mot.adapters.http.metrics import Metrics, route_of
from mot.adapters.http.models import (
    RECORD_LISTS,
    BatchAnswer,
    Health,
    HistoryRecord,
    Polarity,
    Stage,
    Status,
)
from mot.adapters.http.webhooks import WebhookSettings, add_webhook_routes
from mot.domain.schema import AmendIn, MomentIn, RetractIn
from mot.domain.vocabulary import Function
from mot.projections.schema import PROJECTIONS
from mot.service.access import (
    AccessService,
    Principal,
    Submitted,
    TenantLedger,
    access_for,
)
from mot.service.bootstrap import Services
from mot.service.moments import history_records, resolve_moment_id
from mot.service.queries import Query as ProjectionQuery
from mot.service.queries import QueryError

log = logging.getLogger("mot.http")

WIRE_SCHEMA_REF = "#/components/schemas/{model}"
NDJSON: Final = "application/x-ndjson"
MAX_LIMIT: Final = 1_000_000

TenantParam = Annotated[str | None, Query(
    min_length=1, max_length=128, pattern=r"^[^\x00]*$",
    description="Must be the token's tenant when given (every answer is of that tenant only)")]
CustomerParam = Annotated[str | None, Query(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]
MOMENT_REF: Final = (r"^([0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?"
                     r"[0-9A-Fa-f]{12}|[^:\x00]+:[^\x00]+)$")
# Times are RFC 3339 with an offset, as on the wire (not a Unix time, not a naive time).
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 timestamp with an offset, such as 2026-03-01T10:00:00Z")
    return value


QueryTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
SinceParam = Annotated[QueryTime | None, Query(description="Only rows at or after this time")]
UntilParam = Annotated[QueryTime | None, Query(description="Only rows at or before this time")]
AsOfParam = Annotated[QueryTime | None, Query(
    description="The state as it was then: folds only moments that had occurred by then")]
LimitParam = Annotated[int | None, Query(ge=1, le=MAX_LIMIT)]
RefreshParam = Annotated[bool, Query(
    description="Bring the projections up to date before answering (otherwise the server's "
                "background projector keeps them a poll interval behind at most)")]

# The fields each query sorts by, live and --as-of alike (as mot query --sort).
SORTABLE: Final = {name: tuple(f.name for f in projection.output if f.sortable)
                   for name, projection in PROJECTIONS.items()}


def _sort(name: str) -> Any:
    fields = SORTABLE[name]
    return Query(None, pattern=f"^[+-]?({'|'.join(fields)})$", description=(
        "Order by FIELD (numbers largest first); -FIELD / +FIELD to choose. FIELD is one of "
        + ", ".join(fields)))




class Projector:
    """Brings the projections up to date: in the background, or on demand (`refresh=true`).

    One at a time per process: the projection engine is single-threaded.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def project(self) -> int:
        with self.lock:
            return self.services.projections.project()

    def start(self, every: float) -> None:
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, args=(every,), name="mot-projector",
                                       daemon=True)
        self.thread.start()

    def _run(self, every: float) -> None:
        while not self.stop.is_set():
            try:
                applied = self.project()
            except Exception:  # keep serving; say why, and try again a little later
                log.exception("projecting failed; retrying in %.1f s", every * 10)
                self.stop.wait(every * 10)
                continue
            if not applied:
                self.stop.wait(every)

    def shutdown(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None


class _Observe:
    """Pure ASGI middleware: refuses a declared oversized body (413) before anything reads it,
    and records every answer in the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            declared = declared_length(Headers(scope=scope))
            if declared is not None and declared > self.max_body:
                refusal = errors.problem(413, str(BodyTooLarge(self.max_body)),
                                         code="body_too_large", headers={"Connection": "close"})
                await refusal(scope, receive, observed)
                return
            await self.app(scope, receive, observed)
        finally:
            self.metrics.observe(scope["method"], route_of(scope), status[0],
                                 time.perf_counter() - started)


def _known_query_only(request: Request) -> None:
    """A query parameter no operation takes is a 400: a typo in a filter must not be ignored."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = _query_names(dependant) if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise ApiError(400, f"unknown query parameter {', '.join(map(repr, unknown))} "
                            f"(expected: {expected})", code="unknown_parameter", field=unknown[0])


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json",
                    headers=headers)


def _store_errors() -> tuple[type[Exception], ...]:
    from eventsourcing.persistence import PersistenceError

    errors: list[type[Exception]] = [PersistenceError, sqlite3.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return tuple(errors)


def _wire_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of a batch of wire messages, and the definitions it refers to."""
    adapter: TypeAdapter[Any] = TypeAdapter(list[MomentIn | AmendIn | RetractIn])
    schema = adapter.json_schema(ref_template=WIRE_SCHEMA_REF)
    definitions = schema.pop("$defs", {})
    return schema, definitions


def create_app(
    services: Services,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    project_every: float | None = None,
    access: AccessService | None = None,
    webhooks: WebhookSettings | None = None,
    ingest_threads: int = 4,
    limits: Limits | None = None,
) -> FastAPI:
    """The API over `services` (one per process). `project_every` seconds: run a background
    projector (None: queries rely on `refresh=true` or on another `mot project --follow`)."""
    access = access or access_for(services)
    limits = limits or Limits(max_body=max_body)
    max_body = limits.max_body
    tenant_ledger = TenantLedger(services.ledger_store)
    metrics = Metrics(services.projections.status)
    projector = Projector(services)
    ingest = Ingest(tenant_ledger, metrics, limits, ingest_threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if project_every is not None:
            projector.start(project_every)
        try:
            yield
        finally:
            projector.shutdown()

    app = FastAPI(
        title="mot — the moments-of-truth ledger",
        version=__version__,
        description=(
            "Record moments of truth and read the projections of one tenant. Authenticate with "
            "`Authorization: Bearer TOKEN` (`mot token create --tenant T --scope read,write`)."),
        lifespan=lifespan,
        dependencies=[Depends(_known_query_only)],
    )
    app.state.services = services
    app.state.access = access
    app.state.projector = projector
    app.state.metrics = metrics
    app.add_middleware(_Observe, metrics=metrics, max_body=max_body)

    errors.install(app, _store_errors())

    # -- ingest ---------------------------------------------------------------------------

    batch_schema, wire_definitions = _wire_schema()

    @app.post(
        "/v1/moments",
        summary="Record a batch of moments, amendments and retractions",
        response_model=None,
        responses={200: {"model": BatchAnswer},
                   **errors.responses(400, 401, 403, 408, 409, 413, 503)},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": batch_schema},
            NDJSON: {"schema": {**batch_schema, "description":
                                "The same messages, one JSON object per line"}},
        }}},
        tags=["ingest"],
    )
    async def post_moments(request: Request, principal: Writer) -> Response:
        """Record a JSON array, or NDJSON, of wire-format v1 messages (SPEC §2).

        The answer has one item per message, in order: recorded, amended, retracted,
        duplicate, quarantined (with the field and reason; the message is kept in the
        quarantine), or rejected (refused by the token's tenant: a moment naming another
        tenant, an amend/retract of a moment that is not the tenant's; nothing stored). A
        moment without `tenant` gets the token's. The answer comes after the commit.
        Malformed JSON is a 400 naming the problem (and the line, for NDJSON), and nothing
        is recorded; a body over the size limit is a 413.
        """
        request_id = uuid.uuid4().hex[:16]
        async with ingest.receive(request) as body:
            origin = f"http:{principal.tenant}:{request_id}#"

            def prepare() -> tuple[int, Iterator[list[Submitted]]]:
                batch = split_batch(body, limits.max_items, limits.chunk)
                return len(batch), chunks(batch)

            def chunks(batch: Batch) -> Iterator[list[Submitted]]:
                index = 0
                for chunk in batch.chunks(limits.chunk):
                    yield [Submitted(raw, data, f"{origin}{index + at}")
                           for at, (raw, data) in enumerate(chunk)]
                    index += len(chunk)

            recorded = await ingest.record("moments", principal, prepare)
            return Response(recorded.answer(request_id, principal.tenant),
                            media_type="application/json", headers={"X-Request-ID": request_id})

    # -- queries --------------------------------------------------------------------------

    def run_query(principal: Principal, name: str, tenant: str | None, refresh: bool,
                  **filters: Any) -> Response:
        if tenant is not None and tenant != principal.tenant:
            raise ApiError(403, f"this token reads only tenant {principal.tenant!r}",
                           code="other_tenant", field="tenant")
        for key in ("since", "until", "as_of"):
            filters[key] = _utc(key, filters.get(key))
        if refresh:
            projector.project()
        query = ProjectionQuery(name, tenant=principal.tenant, **filters)
        try:
            records = services.queries.run(query)
        except QueryError as error:
            raise ApiError(400, str(error).replace("--", ""), code="invalid_query") from error
        return _json(records)

    query_responses = errors.responses(400, 401, 403, 422, 503)

    @app.get("/v1/relationships", response_model=None, tags=["queries"],
             responses={200: {"model": RECORD_LISTS["relationships"]}, **query_responses})
    def relationships(principal: Reader, tenant: TenantParam = None, customer: CustomerParam = None,
                      stage: Stage | None = None, since: SinceParam = None,
                      until: UntilParam = None, as_of: AsOfParam = None,
                      sort: str | None = _sort("relationships"),
                      limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
        """Relationship stage per customer (SPEC §3.1), as `mot query relationships`."""
        return run_query(principal, "relationships", tenant, refresh, customer=customer,
                         stage=stage, since=since, until=until, as_of=as_of, sort=sort, limit=limit)

    @app.get("/v1/reciprocity", response_model=None, tags=["queries"],
             responses={200: {"model": RECORD_LISTS["reciprocity"]}, **query_responses})
    def reciprocity(principal: Reader, tenant: TenantParam = None, customer: CustomerParam = None,
                    status: Status | None = None, as_of: AsOfParam = None,
                      sort: str | None = _sort("reciprocity"),
                    limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
        """Reciprocity balance per customer (SPEC §3.2), as `mot query reciprocity`."""
        return run_query(principal, "reciprocity", tenant, refresh, customer=customer,
                         status=status, as_of=as_of, sort=sort, limit=limit)

    @app.get("/v1/transitions", response_model=None, tags=["queries"],
             responses={200: {"model": RECORD_LISTS["transitions"]}, **query_responses})
    def transitions(principal: Reader, tenant: TenantParam = None, customer: CustomerParam = None,
                    stage: Stage | None = None, since: SinceParam = None,
                    until: UntilParam = None, as_of: AsOfParam = None,
                      sort: str | None = _sort("transitions"),
                    limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
        """Stage changes per customer (SPEC §3.1); `stage` filters on the stage entered."""
        return run_query(principal, "transitions", tenant, refresh, customer=customer,
                         stage=stage, since=since, until=until, as_of=as_of, sort=sort, limit=limit)

    @app.get("/v1/amplifications", response_model=None, tags=["queries"],
             responses={200: {"model": RECORD_LISTS["amplifications"]}, **query_responses})
    def amplifications(principal: Reader, tenant: TenantParam = None,
                       customer: CustomerParam = None, polarity: Polarity | None = None,
                       function: Function | None = None, since: SinceParam = None,
                       until: UntilParam = None, as_of: AsOfParam = None,
                      sort: str | None = _sort("amplifications"),
                       limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
        """Public-amplification moments (SPEC §3.3); `function` filters on the trigger's team."""
        return run_query(principal, "amplifications", tenant, refresh, customer=customer,
                         polarity=polarity, function=function, since=since, until=until,
                         as_of=as_of, sort=sort, limit=limit)

    @app.get("/v1/teams", response_model=None, tags=["queries"],
             responses={200: {"model": RECORD_LISTS["teams"]}, **query_responses})
    def teams(principal: Reader, tenant: TenantParam = None, function: Function | None = None,
              as_of: AsOfParam = None, sort: str | None = _sort("teams"), limit: LimitParam = None,
              refresh: RefreshParam = False) -> Response:
        """Team scoreboard (SPEC §3.4), as `mot query teams`."""
        return run_query(principal, "teams", tenant, refresh, function=function, as_of=as_of,
                         sort=sort, limit=limit)

    @app.get("/v1/listening", response_model=None, tags=["queries"],
             responses={200: {"model": RECORD_LISTS["listening"]}, **query_responses})
    def listening(principal: Reader, tenant: TenantParam = None, as_of: AsOfParam = None,
                  sort: str | None = _sort("listening"), limit: LimitParam = None,
                  refresh: RefreshParam = False) -> Response:
        """Listening share (SPEC §3.4), as `mot query listening`."""
        return run_query(principal, "listening", tenant, refresh, as_of=as_of, sort=sort,
                         limit=limit)

    @app.get("/v1/moments/{moment_id}", response_model=None, tags=["queries"],
             responses={200: {"model": list[HistoryRecord]},
                        **errors.responses(400, 401, 403, 404, 422, 503)})
    def moment_history(
        principal: Reader,
        moment_id: Annotated[str, Path(max_length=1024, pattern=MOMENT_REF,
                                       description="A moment id, or SYSTEM:ID of its source")],
    ) -> Response:
        """A moment's events (recorded, amended, retracted), as `mot show --format json`."""
        resolved = resolve_moment_id(moment_id, principal.tenant)
        if resolved is None:
            raise ApiError(400, f"{moment_id!r} is neither a moment id nor SYSTEM:ID",
                           code="invalid_moment_reference", field="moment_id")
        events = services.ledger_store.stream(resolved)
        records = history_records(events)
        first = records[0].get("moment") if records else None
        if not isinstance(first, dict) or first.get("tenant") != principal.tenant:
            raise ApiError(404, f"no moment {resolved} in tenant {principal.tenant!r}",
                           code="no_such_moment", field="moment_id")
        return _json(records)

    # -- operations -----------------------------------------------------------------------

    @app.get("/healthz", response_model=None, tags=["operations"],
             responses={200: {"model": Health}, **errors.responses(400, 503)})
    def healthz() -> Response:
        """Alive, and the store answers (no token needed; says nothing about any tenant)."""
        services.ledger_store.head()
        return _json({"status": "ok"})

    @app.get("/metrics", response_model=None, tags=["operations"],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition"}})
    def prometheus_metrics() -> Response:
        """Prometheus metrics: requests, latency, ingest outcomes, ledger and projection figures."""
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    add_webhook_routes(app, webhooks or WebhookSettings(), ingest,
                       lambda credentials: authenticate(access, credentials, "write"))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(wire_definitions)
            components.update(errors.schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _utc(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # a time within an offset of the ends of years 1 to 9999: the end
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)
