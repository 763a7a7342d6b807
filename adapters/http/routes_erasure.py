"""POST /v1/erasures: erase a person of the token's tenant (SPEC §6); an `admin` token only."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from mot.adapters.http import errors
from mot.adapters.http.bodies import not_json, without_bom
from mot.adapters.http.deps import Admin, ApiContext, Context
from mot.adapters.http.errors import ApiError
from mot.adapters.http.patterns import NO_NUL
from mot.domain.messages import GIVEN_TWICE, duplicate_field
from mot.domain.schema import MAX_CUSTOMER_ID, MAX_TENANT
from mot.service.access import Principal
from mot.service.erasure import ErasureRefused, Receipt, nothing_held  # the answer: the receipt

router = APIRouter(tags=["erasure"])


class ErasureRequest(BaseModel, extra="forbid", strict=True):
    """Who to erase: one of the person's customer ids, of the token's tenant.

    Strict, as the wire format is: in lax mode `"dry_run": "yes"` (or "no", "1", "off", 0)
    became a boolean without a word, and `"customer_id": 42` the text "42"; now a JSON
    boolean and JSON texts only, or a 422 naming the field, nothing erased. No text holds
    U+0000, as no customer id of the ledger can (the wire format refuses it): such an id
    was erased, a receipt for an id nothing can ever hold, and the reason went into it."""

    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID, pattern=NO_NUL)
    reason: str = Field(min_length=1, max_length=2048, pattern=NO_NUL, description=(
        "Why (a request number, say): kept in the receipt; keep personal data out of it"))
    tenant: str | None = Field(None, min_length=1, max_length=MAX_TENANT, pattern=NO_NUL,
                               description="Must be the token's tenant when given")
    dry_run: bool = Field(False, description="Only say what would go (counts)")


@router.post("/v1/erasures", response_model=None,
             responses={200: {"model": Receipt}, **errors.responses(400, 401, 403, 409, 413, 415, 422, 429)},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": ErasureRequest.model_json_schema()}}}})
async def erase(request: Request, principal: Admin, context: Context) -> dict[str, Any]:
    """Erase the person a customer id of the token's tenant belongs to (SPEC §6): their
    personal fields become unreadable for good, their rows leave every per-customer
    projection, later messages naming them are suppressed. Answers the receipt (or, with
    `dry_run`, what would go) and `warning`: null, or why the receipt counts nothing (the
    tenant holds nothing of the id: only its later messages are suppressed). The body is a
    JSON object whatever its Content-Type says."""
    body = await _request(request, context, principal.tenant)
    return await run_in_threadpool(_erase, body, principal, context)


async def _request(request: Request, context: ApiContext, tenant: str) -> ErasureRequest:
    """The body read as JSON whatever its Content-Type (as /v1/moments reads it): `curl
    --data-binary '{...}'` sends form-urlencoded, and FastAPI's own reading answered 422
    'body: Input should be a valid dictionary' for the JSON object it was."""
    async with context.ingest.receive(request, tenant) as raw:
        try:
            text = without_bom(raw)
            value = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise not_json("the body", error, raw) from None
        # JSON keeps the last of a name given twice: `"dry_run": true, ..., "dry_run": false`
        # erased the person for good, the sender believing it a dry run.
        twice = duplicate_field(text, value)
    if twice is not None:
        raise RequestValidationError([{"loc": ("body", *twice.split(".")), "msg": GIVEN_TWICE,
                                       "type": "given_twice"}])
    try:
        return ErasureRequest.model_validate(value)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in error.errors()]) from None


def _erase(body: ErasureRequest, principal: Principal, context: ApiContext) -> dict[str, Any]:
    if body.tenant is not None and body.tenant != principal.tenant:
        raise ApiError(403, f"this token erases only in tenant {principal.tenant!r}",
                       code="other_tenant", field="tenant")
    erasures = context.services.erasures
    tenant, customer = principal.tenant, body.customer_id
    try:
        if body.dry_run:
            plan = erasures.plan(tenant, customer)
            answer, nothing = plan.as_dict(), plan.holds_nothing
        else:
            nothing = erasures.holds_nothing(tenant, customer)
            answer = erasures.erase(tenant, customer, body.reason).as_dict()
    except ErasureRefused as error:
        raise ApiError(409, str(error), code="erasure_refused") from None
    # As `mot erase` warns: a zero-count receipt alone read as "she is erased" when the id
    # was a typo. It still goes on (the id's later messages are suppressed); other tenants
    # holding the id are not named here, as the CLI names them: a token sees its tenant only.
    answer["warning"] = nothing_held(tenant, customer) if nothing else None
    return answer
