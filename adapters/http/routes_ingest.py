"""The write side: `POST /v1/moments`, a batch of wire-format messages for the token's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter

from mot.adapters.http import errors
from mot.adapters.http.bodies import Batch, split_batch
from mot.adapters.http.deps import Context, Writer
from mot.adapters.http.models import BatchAnswer
from mot.domain.schema import AmendIn, MomentIn, RetractIn
from mot.service.access import Submitted

router = APIRouter(tags=["ingest"])

NDJSON: Final = "application/x-ndjson"


def _wire_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of a batch of wire messages, and the definitions it refers to."""
    adapter: TypeAdapter[Any] = TypeAdapter(list[MomentIn | AmendIn | RetractIn])
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


BATCH_SCHEMA, WIRE_DEFINITIONS = _wire_schema()


@router.post(
    "/v1/moments",
    summary="Record a batch of moments, amendments and retractions",
    response_model=None,
    responses={200: {"model": BatchAnswer}, **errors.responses(400, 401, 403, 408, 409, 413, 415, 429, 503)},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": BATCH_SCHEMA},
        NDJSON: {"schema": {**BATCH_SCHEMA, "description":
                            "The same messages, one JSON object per line"}},
    }}},
)
async def post_moments(request: Request, context: Context, principal: Writer) -> Response:
    """Record a JSON array, or NDJSON, of wire-format v1 messages (SPEC §2).

    The answer has one item per message, in order: recorded, amended, retracted, linked,
    unlinked, duplicate, quarantined (with the field and reason; the message is kept in the
    quarantine; an amend/retract of a moment the tenant has not recorded waits there and
    applies when it is), or rejected (refused by the token's tenant: a moment or link
    naming another tenant; nothing stored). A message without `tenant` gets the token's.
    The answer comes after the commit.
    Malformed JSON is a 400 naming the problem (and the line, for NDJSON), and nothing
    is recorded; a body over the size limit, or a batch of more messages than a request
    may carry, is a 413.
    """
    ingest = context.ingest
    limits = ingest.limits
    request_id = uuid.uuid4().hex[:16]
    origin = f"http:{principal.tenant}:{request_id}#"
    async with ingest.receive(request, principal.tenant) as body:

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
