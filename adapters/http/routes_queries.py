"""The read side: every query of `mot query` and a moment's history, scoped to the token's tenant."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import AwareDatetime, BeforeValidator

from mot.adapters.http import errors
from mot.adapters.http.deps import Context, Reader, TenantReader
from mot.adapters.http.errors import ApiError
from mot.adapters.http.models import (
    RECORD_LISTS,
    HistoryRecord,
    Polarity,
    RequestKind,
    Stage,
    Status,
)
from mot.adapters.http.patterns import MOMENT_REF, NO_NUL, sort_pattern
from mot.domain.schema import MAX_CUSTOMER_ID
from mot.domain.vocabulary import Function
from mot.projections.schema import PROJECTIONS, SUMMARIES
from mot.service.access import Principal
from mot.service.moments import resolve_moment_id
from mot.service.queries import NotConfigured, QueryError
from mot.service.queries import Query as ProjectionQuery

router = APIRouter(tags=["queries"])

MAX_LIMIT: Final = 1_000_000
CustomerParam = Annotated[str | None, Query(min_length=1, max_length=MAX_CUSTOMER_ID, pattern=NO_NUL)]
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
                   for name, projection in (*PROJECTIONS.items(),
                                            *((n, p) for n, (p, _) in SUMMARIES.items()))}
QUERY_ERRORS: Final = errors.responses(400, 401, 403, 422, 429, 503)


def _sort(name: str) -> Any:
    fields = SORTABLE[name]
    return Query(None, pattern=sort_pattern(fields), description=(
        "Order by FIELD (numbers largest first); -FIELD / +FIELD to choose. FIELD is one of "
        + ", ".join(fields)))


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


def _run(context: Context, principal: Principal, name: str, refresh: bool,
         **filters: Any) -> Response:
    for key in ("since", "until", "as_of"):
        filters[key] = _utc(filters.get(key))
    if refresh:
        context.projector.project()
    if filters.get("overdue"):
        filters["targets"] = context.targets
    query = ProjectionQuery(name, tenant=principal.tenant, **filters)
    try:
        records = context.services.queries.run(query)
    except NotConfigured as error:  # a valid request: 409, the server's state is what lacks
        raise ApiError(409, str(error).replace("--", ""), code="not_configured") from error
    except QueryError as error:
        raise ApiError(400, str(error).replace("--", ""), code="invalid_query") from error
    return _json(records)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:  # a time within an offset of the ends of years 1 to 9999: the end
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


@router.get("/v1/relationships", response_model=None,
            responses={200: {"model": RECORD_LISTS["relationships"]}, **QUERY_ERRORS})
def relationships(context: Context, principal: TenantReader, customer: CustomerParam = None,
                  stage: Stage | None = None, since: SinceParam = None, until: UntilParam = None,
                  as_of: AsOfParam = None, sort: str | None = _sort("relationships"),
                  limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
    """Relationship stage per customer (SPEC §3.1), as `mot query relationships`."""
    return _run(context, principal, "relationships", refresh, customer=customer, stage=stage,
                since=since, until=until, as_of=as_of, sort=sort, limit=limit)


@router.get("/v1/reciprocity", response_model=None,
            responses={200: {"model": RECORD_LISTS["reciprocity"]}, **QUERY_ERRORS})
def reciprocity(context: Context, principal: TenantReader, customer: CustomerParam = None,
                status: Status | None = None, as_of: AsOfParam = None,
                sort: str | None = _sort("reciprocity"), limit: LimitParam = None,
                refresh: RefreshParam = False) -> Response:
    """Reciprocity balance per customer (SPEC §3.2), as `mot query reciprocity`."""
    return _run(context, principal, "reciprocity", refresh, customer=customer, status=status,
                as_of=as_of, sort=sort, limit=limit)


@router.get("/v1/transitions", response_model=None,
            responses={200: {"model": RECORD_LISTS["transitions"]}, **QUERY_ERRORS})
def transitions(context: Context, principal: TenantReader, customer: CustomerParam = None,
                stage: Stage | None = None, since: SinceParam = None, until: UntilParam = None,
                as_of: AsOfParam = None, sort: str | None = _sort("transitions"),
                limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
    """Stage changes per customer (SPEC §3.1); `stage` filters on the stage entered."""
    return _run(context, principal, "transitions", refresh, customer=customer, stage=stage,
                since=since, until=until, as_of=as_of, sort=sort, limit=limit)


@router.get("/v1/amplifications", response_model=None,
            responses={200: {"model": RECORD_LISTS["amplifications"]}, **QUERY_ERRORS})
def amplifications(context: Context, principal: TenantReader, customer: CustomerParam = None,
                   polarity: Polarity | None = None, function: Function | None = None,
                   since: SinceParam = None, until: UntilParam = None, as_of: AsOfParam = None,
                   sort: str | None = _sort("amplifications"), limit: LimitParam = None,
                   refresh: RefreshParam = False) -> Response:
    """Public-amplification moments (SPEC §3.3); `function` filters on the trigger's team."""
    return _run(context, principal, "amplifications", refresh, customer=customer,
                polarity=polarity, function=function, since=since, until=until, as_of=as_of,
                sort=sort, limit=limit)


@router.get("/v1/teams", response_model=None,
            responses={200: {"model": RECORD_LISTS["teams"]}, **QUERY_ERRORS})
def teams(context: Context, principal: TenantReader, function: Function | None = None,
          as_of: AsOfParam = None, sort: str | None = _sort("teams"), limit: LimitParam = None,
          refresh: RefreshParam = False) -> Response:
    """Team scoreboard (SPEC §3.4), as `mot query teams`."""
    return _run(context, principal, "teams", refresh, function=function, as_of=as_of,
                sort=sort, limit=limit)


@router.get("/v1/listening", response_model=None,
            responses={200: {"model": RECORD_LISTS["listening"]}, **QUERY_ERRORS})
def listening(context: Context, principal: TenantReader, as_of: AsOfParam = None,
              sort: str | None = _sort("listening"), limit: LimitParam = None,
              refresh: RefreshParam = False) -> Response:
    """Listening share (SPEC §3.4), as `mot query listening`."""
    return _run(context, principal, "listening", refresh, as_of=as_of, sort=sort, limit=limit)


@router.get("/v1/responses", response_model=None,
            responses={200: {"model": RECORD_LISTS["responses"]}, **QUERY_ERRORS,
                       409: {**errors.responses(409)[409], "description": (
                           "overdue=true, and the server's mot.toml sets no first-response "
                           "targets: the request is right, the configuration lacks them")}})
def responses(context: Context, principal: TenantReader, customer: CustomerParam = None,
              kind: RequestKind | None = None, function: Function | None = None,
              open: Annotated[bool, Query(description="Only requests with no response yet "
                                                      "(at as_of, default now)")] = False,
              overdue: Annotated[bool, Query(
                  description="Only open requests waiting longer than their first-response "
                              "target (the server's mot.toml [targets.first_response]) at "
                              "as_of (default now)")] = False,
              since: SinceParam = None, until: UntilParam = None, as_of: AsOfParam = None,
              sort: str | None = _sort("responses"), limit: LimitParam = None,
              refresh: RefreshParam = False) -> Response:
    """Each customer request and its first response (SPEC §3.5), as `mot query responses`;
    `function` filters on the request's team."""
    return _run(context, principal, "responses", refresh, customer=customer, kind=kind,
                function=function, open=open, overdue=overdue, since=since, until=until,
                as_of=as_of, sort=sort, limit=limit)


@router.get("/v1/response-times", response_model=None,
            responses={200: {"model": RECORD_LISTS["response-times"]}, **QUERY_ERRORS})
def response_times(context: Context, principal: TenantReader, function: Function | None = None,
                   as_of: AsOfParam = None, sort: str | None = _sort("response-times"),
                   limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
    """Per request function: requests, answered, open, p50 and p90 response seconds (nearest
    rank; SPEC §3.5), as `mot query response-times`."""
    return _run(context, principal, "response-times", refresh, function=function,
                as_of=as_of, sort=sort, limit=limit)
MinIdsParam = Annotated[int | None, Query(ge=1, le=MAX_LIMIT,
                                         description="Only persons with at least this many ids")]
SuspectParam = Annotated[bool, Query(
    description="Only persons merge protection reports: more than 50 ids, or an email: id "
                "linked to more than 10")]


@router.get("/v1/persons", response_model=None,
            responses={200: {"model": RECORD_LISTS["persons"]}, **QUERY_ERRORS})
def persons(context: Context, principal: TenantReader, customer: CustomerParam = None,
            min_ids: MinIdsParam = None, suspect: SuspectParam = False,
            as_of: AsOfParam = None, sort: str | None = _sort("persons"),
            limit: LimitParam = None, refresh: RefreshParam = False) -> Response:
    """Persons: each one's ids (SPEC §2, links), as `mot query persons`; `customer` selects
    the person an id belongs to."""
    return _run(context, principal, "persons", refresh, customer=customer, min_ids=min_ids,
                suspect=suspect, as_of=as_of, sort=sort, limit=limit)


@router.get("/v1/persons/{customer_id}", response_model=None,
            responses={200: {"model": dict[str, Any]},
                       **errors.responses(400, 401, 403, 404, 422, 429, 503)})
def person(context: Context, principal: TenantReader,
           customer_id: Annotated[str, Path(min_length=1, max_length=MAX_CUSTOMER_ID,
                                            pattern=NO_NUL,
                                            description="Any of the person's customer ids")],
           refresh: RefreshParam = False) -> Response:
    """The person a customer id belongs to: its ids, each link (reason, time, origin) and its
    moments per id, as `mot identity show --format json`."""
    if refresh:
        context.projector.project()
    found = context.services.persons.show(principal.tenant, customer_id)
    if found is None:
        raise ApiError(404, f"no person with the id {customer_id!r} in tenant "
                       f"{principal.tenant!r}", code="no_such_person", field="customer_id")
    return _json(found)


@router.get("/v1/moments/{moment_id}", response_model=None,
            responses={200: {"model": list[HistoryRecord]},
                       **errors.responses(400, 401, 403, 404, 422, 429, 503)})
def moment_history(
    context: Context,
    principal: Reader,
    moment_id: Annotated[str, Path(max_length=1024, pattern=MOMENT_REF,
                                   description="A moment id, or SYSTEM:ID of its source")],
) -> Response:
    """A moment's events (recorded, amended, retracted), as `mot show --format json`."""
    resolved = resolve_moment_id(moment_id, principal.tenant)
    if resolved is None:
        raise ApiError(400, f"{moment_id!r} is neither a moment id nor SYSTEM:ID",
                       code="invalid_moment_reference", field="moment_id")
    records = context.services.moments.records(resolved, principal.tenant)
    first = records[0].get("moment") if records else None
    if not isinstance(first, dict) or first.get("tenant") != principal.tenant:
        raise ApiError(404, f"no moment {resolved} in tenant {principal.tenant!r}",
                       code="no_such_moment", field="moment_id")
    return _json(records)
