"""`POST /v1/webhooks/{source}`: a vendor's webhook, mapped to moments and recorded in chunks."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from mot.adapters.http import errors
from mot.adapters.http.auth import Credentials, authenticate
from mot.adapters.http.bodies import (
    MalformedBody,
    TooManyItems,
    not_json,
    split_batch,
    without_bom,
)
from mot.adapters.http.deps import ApiContext, Context
from mot.adapters.http.errors import ApiError
from mot.adapters.http.ingest import UNVERIFIED
from mot.adapters.http.webhooks import Source, check_hubspot, check_zendesk
from mot.adapters.sources.vendor import VendorStats, map_value
from mot.adapters.vendors import SOURCES
from mot.domain.messages import GIVEN_TWICE, duplicate_field
from mot.service.access import Principal, Submitted

router = APIRouter(tags=["ingest"])


@router.post(
    "/v1/webhooks/{source}",
    summary="Receive a vendor's webhook",
    response_model=None,
    responses=errors.responses(400, 401, 403, 408, 409, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"description": "The vendor's webhook body"}}}}},
)
async def webhook(source: Source, request: Request, context: Context,
                  credentials: Credentials) -> Response:
    """A vendor's webhook body (one event, or the array the vendor posts), mapped to moments.

    HubSpot and Zendesk requests are checked against their signature when a secret is
    configured; otherwise, and for the other sources, a bearer token with `write` is
    needed. The answer is that of POST /v1/moments, plus what the mapping did
    (`mapping`: records, messages, unmappable, not_moments and their reasons).
    """
    request_id = uuid.uuid4().hex[:16]
    settings = context.webhooks
    principal: Principal | None = None
    if settings.secrets.get(source) is None:  # authenticate before reading the body
        principal = await run_in_threadpool(authenticate, context.access, credentials, "write")
        context.quotas.admit(principal.tenant)
        holder = principal.tenant
    else:
        # A signed webhook's body is read before its signature can be checked: it is held in
        # the unverified bodies' own small share of the memory budget, so that forged bodies,
        # which anyone can send, take no room from the vendor's tenant's other requests nor
        # more than an eighth of the server's. Its tenant's request rate is charged once the
        # signature verifies.
        holder = UNVERIFIED
    async with context.ingest.receive(request, holder) as body:
        return await _receive(source, request, request_id, body, principal, context)


async def _receive(source: str, request: Request, request_id: str, body: bytes,
                   principal: Principal | None, context: ApiContext) -> Response:
    settings = context.webhooks
    ingest = context.ingest
    secret = settings.secrets.get(source)
    if secret is not None:
        now = time.time()
        if source == "hubspot":
            uri = settings.urls.get(source) or str(request.url)
            problem = check_hubspot(secret, request.method, uri, body, request.headers, now,
                                    settings.window_seconds)
        else:
            problem = check_zendesk(secret, body, request.headers, now, settings.window_seconds)
        if problem is not None:
            raise ApiError(401, f"{source} webhook refused: {problem}", code="bad_signature")
        principal = Principal(0, settings.vendors[source].tenant, frozenset({"write"}))
        context.quotas.admit(principal.tenant)
        config = settings.vendors
    else:
        assert principal is not None
        vendor = settings.vendors[source]
        config = replace(settings.vendors, sections={
            **settings.vendors.sections, source: replace(vendor, tenant=principal.tenant)})

    stats = VendorStats(source)

    def prepare() -> tuple[int, Iterator[list[Submitted]]]:
        # An array of more records than a request may carry is refused before it is decoded
        # whole (the vendor's mapping builds all its messages at once).
        split_batch(body, ingest.limits.max_items, keep=0)
        try:
            value = orjson.loads(without_bom(body))
        except orjson.JSONDecodeError as error:
            raise not_json("the body", error, body) from None
        twice = duplicate_field(body, value)
        if twice is not None:
            raise MalformedBody(f"{twice} {GIVEN_TWICE}; nothing was recorded")
        incoming = map_value(SOURCES[source], value, config,
                             f"webhook:{source}:{principal.tenant}:{request_id}", body, stats)
        if len(incoming) > ingest.limits.max_items:
            raise TooManyItems(ingest.limits.max_items)
        submitted = [
            Submitted(item.raw, None if item.payload is None else orjson.loads(item.payload),
                      item.origin, item.payload, item.problem, item.names)
            for item in incoming
        ]
        size = ingest.limits.chunk
        return len(submitted), (submitted[at:at + size] for at in range(0, len(submitted), size))

    recorded = await ingest.record(f"webhook:{source}", principal, prepare)
    return Response(recorded.answer(request_id, principal.tenant, mapping=stats.as_dict()),
                    media_type="application/json", headers={"X-Request-ID": request_id})
