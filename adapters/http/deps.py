"""The dependencies of the routes: the app's context, the principal, the tenant's scope.

One `ApiContext` per app (on `app.state.mot`) holds what `create_app` wired: the
services, the token checks, the ingest, the metrics and the projector. The routes take
what they need through `Depends`, never from a closure.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Final

import anyio
from fastapi import Depends, Query, Request

from mot.adapters.http.auth import Credentials, authenticate
from mot.adapters.http.errors import ApiError
from mot.adapters.http.ingest import Ingest
from mot.adapters.http.metrics import Metrics
from mot.adapters.http.patterns import NO_NUL
from mot.adapters.http.projector import Projector
from mot.adapters.http.tenancy import Quotas, TenantQuotas
from mot.adapters.http.webhooks import WebhookSettings
from mot.bootstrap import Services
from mot.domain.schema import MAX_TENANT
from mot.service.access import AccessService, Principal
from mot.service.targets import Targets

# How long /healthz's answer is given again without asking the store: anyone may ask it, as
# often as they like, and each answer read the store on a thread of the pool ingest uses.
HEALTH_FRESH_S: Final = 1.0


class HealthAnswers:
    """/healthz's last answer, reused for HEALTH_FRESH_S: one look at the store a second
    however many ask, made by one request while the others wait without a thread."""

    def __init__(self) -> None:
        self._answer: str | Exception | None = None  # a stall's detail, or the store's error
        self._at: float | None = None
        self._lock: anyio.Lock | None = None

    def _fresh(self) -> bool:
        return self._at is not None and time.monotonic() - self._at < HEALTH_FRESH_S

    async def answer(self, check: Callable[[], str | None]) -> str | None:
        """None when well, else why not (a stall); the store's error is raised again."""
        if not self._fresh():
            if self._lock is None:
                self._lock = anyio.Lock()
            async with self._lock:
                if not self._fresh():
                    try:
                        self._answer = await anyio.to_thread.run_sync(check)
                    except Exception as error:  # answered as any request's (errors.py)
                        self._answer = error
                    self._at = time.monotonic()
        if isinstance(self._answer, Exception):
            raise self._answer
        return self._answer


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What one app serves with."""

    services: Services
    access: AccessService
    ingest: Ingest
    metrics: Metrics
    projector: Projector
    webhooks: WebhookSettings
    # /healthz answers 503 when events wait and the projections have made no progress
    # for this long (None: the projector's progress is not part of health).
    stall_after_s: float | None = None
    # mot.toml's first-response targets (the responses' overdue filter)
    targets: Targets = field(default_factory=Targets)
    # each tenant's request rate and reports (tenancy.py)
    quotas: TenantQuotas = field(default_factory=lambda: TenantQuotas(Quotas()))
    # the bearer /metrics asks for (None: it is open, as /healthz)
    metrics_token: str | None = None
    health: HealthAnswers = field(default_factory=HealthAnswers)


# Dependencies that do not block are coroutines: FastAPI runs a plain function on its
# thread pool, a trip per dependency per request.
async def _context(request: Request) -> ApiContext:
    context = request.app.state.mot
    assert isinstance(context, ApiContext)
    return context


Context = Annotated[ApiContext, Depends(_context)]


def _admitted(context: ApiContext, credentials: Credentials, scope: str) -> Principal:
    """The token's principal, once its tenant's request rate allows one more (429)."""
    principal = authenticate(context.access, credentials, scope)
    context.quotas.admit(principal.tenant)
    return principal


def _writer(context: Context, credentials: Credentials) -> Principal:
    return _admitted(context, credentials, "write")


def _read_token(context: Context, credentials: Credentials) -> Principal:
    return _admitted(context, credentials, "read")


async def _reader(context: Context, principal: Annotated[Principal, Depends(_read_token)]
                  ) -> AsyncIterator[Principal]:
    """A reader, holding one of its tenant's read turns (tenancy.TenantReads) for the request:
    a tenant's flood of slow queries waits for its own, not on the thread pool."""
    async with context.quotas.reads.turn(principal.tenant):
        yield principal


def _admin(context: Context, credentials: Credentials) -> Principal:
    return _admitted(context, credentials, "admin")


Writer = Annotated[Principal, Depends(_writer)]
Admin = Annotated[Principal, Depends(_admin)]
Reader = Annotated[Principal, Depends(_reader)]


async def _tenant_reader(principal: Reader, tenant: Annotated[str | None, Query(
        min_length=1, max_length=MAX_TENANT, pattern=NO_NUL,
        description="Must be the token's tenant when given (every answer is of that tenant "
                    "only)")] = None) -> Principal:
    """A reader whose `tenant` parameter, when given, is its own (every answer is scoped to it)."""
    if tenant is not None and tenant != principal.tenant:
        raise ApiError(403, f"this token reads only tenant {principal.tenant!r}",
                       code="other_tenant", field="tenant")
    return principal


TenantReader = Annotated[Principal, Depends(_tenant_reader)]
