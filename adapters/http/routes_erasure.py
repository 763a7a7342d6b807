"""POST /v1/erasures: erase a person of the token's tenant (SPEC §6); an `admin` token only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mot.adapters.http import errors
from mot.adapters.http.deps import Admin, Context
from mot.adapters.http.errors import ApiError

router = APIRouter(tags=["erasure"])


class ErasureRequest(BaseModel):
    """Who to erase: one of the person's customer ids, of the token's tenant."""

    customer_id: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=2048, description=(
        "Why (a request number, say): kept in the receipt; keep personal data out of it"))
    tenant: str | None = Field(None, min_length=1, max_length=128,
                               description="Must be the token's tenant when given")
    dry_run: bool = Field(False, description="Only say what would go (counts)")


class ErasureReceipt(BaseModel):
    """What was erased: counts and a keyed digest of the ids, no personal data."""

    erasure: int
    tenant: str
    erased_at: str
    reason: str
    customer_ids_with_moments: int
    customer_ids_without_moments: int
    moments: int
    digest: str
    lifted_at: str | None = None


@router.post("/v1/erasures", response_model=None,
             responses={200: {"model": ErasureReceipt}, **errors.responses(400, 401, 403, 409, 422)})
def erase(body: ErasureRequest, principal: Admin, context: Context) -> dict[str, Any]:
    """Erase the person a customer id of the token's tenant belongs to (SPEC §6): their
    personal fields become unreadable for good, their rows leave every per-customer
    projection, later messages naming them are suppressed. Answers the receipt (or, with
    `dry_run`, what would go)."""
    from mot.service.erasure import ErasureRefused

    if body.tenant is not None and body.tenant != principal.tenant:
        raise ApiError(403, f"this token erases only in tenant {principal.tenant!r}",
                       code="other_tenant", field="tenant")
    erasures = context.services.erasures
    try:
        if body.dry_run:
            return erasures.plan(principal.tenant, body.customer_id).as_dict()
        return erasures.erase(principal.tenant, body.customer_id, body.reason).as_dict()
    except ErasureRefused as error:
        raise ApiError(409, str(error), code="erasure_refused") from None
