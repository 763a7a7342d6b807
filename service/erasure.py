"""Erasure of a person on request (SPEC §6): crypto-shredding, a receipt, suppression.

`ErasureService.erase` erases the whole person the named customer id belongs to,
in one transaction of the store (`ErasureStore.erase`): their data keys are
destroyed (the ledger keeps their personal fields only sealed under those keys,
adapters/stores/sealing.py), their rows leave every per-customer projection,
quarantined messages naming them are purged, keyed digests of their ids join the
suppression list, and a receipt with no personal data is kept and returned. The
erased moments stay, without personal fields, in every per-tenant sum.

Projections are brought up to date first, so that every moment the ledger holds of
the person is in the current-moments table the erasure clears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from mot.domain.schema import MAX_CUSTOMER_ID


class ErasureRefused(RuntimeError):
    """The erasure cannot run on this store as it is (a user error, said plainly)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an erasure erased; no personal data: the ids only as one keyed digest."""

    erasure: int
    tenant: str
    erased_at: str
    reason: str
    customer_ids_with_moments: int
    customer_ids_without_moments: int
    moments: int
    digest: str  # HMAC-SHA256, under the tenant's secret, of the erased ids (sorted, one a line)
    lifted_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ErasurePlan:
    """What an erasure would do (`mot erase --dry-run`); counts only."""

    tenant: str
    customer_ids_with_moments: int
    customer_ids_without_moments: int
    moments: int
    rows: dict[str, int]  # projection table -> rows that would go (or lose trigger_actor)
    quarantined: int  # quarantined messages that would be purged
    already_erased: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def holds_nothing(self) -> bool:
        """Whether the tenant holds nothing of the id: no moment, no link, nothing
        quarantined, not erased before (a typo of the id, or an id suppressed before its
        first moment)."""
        return (not self.moments and not self.customer_ids_with_moments
                and self.customer_ids_without_moments <= 1 and not self.quarantined
                and not self.already_erased)


def nothing_held(tenant: str, customer_id: str) -> str:
    """The warning for an erasure of an id its tenant holds nothing of: it goes on (the id's
    later messages are suppressed), but a zero-count receipt alone reads as 'done'."""
    return (f"tenant {tenant!r} holds nothing of {customer_id!r} (no moment, link or"
            f" quarantined message): nothing of theirs is erased, only their later messages"
            f" are suppressed (`mot erase --lift` ends it)")


class ErasureStore(Protocol):
    """The store side of erasure (adapters/stores/erasure.py)."""

    def plan(self, tenant: str, customer_id: str) -> ErasurePlan: ...

    def erase(self, tenant: str, customer_id: str, reason: str) -> Receipt: ...

    def lift(self, tenant: str, customer_id: str) -> int: ...

    def receipts(self, tenant: str | None = None) -> list[Receipt]: ...

    def encrypt(self) -> int: ...


class ErasureService:
    """`mot erase`, `mot erasures list`, POST /v1/erasures."""

    def __init__(self, store: ErasureStore, catch_up: Callable[[], Any],
                 has_person: Callable[[str, str], bool]) -> None:
        self.store = store
        self.catch_up = catch_up
        self.has_person = has_person  # (tenant, customer id): a projected person's

    def holds_nothing(self, tenant: str, customer_id: str) -> bool:
        """Whether `tenant` holds nothing of the id (ErasurePlan.holds_nothing); a projected
        person answers without the plan, which reads every moment of theirs."""
        if self.has_person(tenant, customer_id):
            return False
        return self.plan(tenant, customer_id).holds_nothing

    def erase(self, tenant: str, customer_id: str, reason: str) -> Receipt:
        _check_customer(customer_id)
        if not reason.strip():
            raise ErasureRefused("--reason: say why (a request number, say); it goes in the "
                                 "receipt, so keep personal data out of it")
        self.catch_up()
        return self.store.erase(tenant, customer_id, reason)

    def plan(self, tenant: str, customer_id: str) -> ErasurePlan:
        _check_customer(customer_id)
        self.catch_up()
        return self.store.plan(tenant, customer_id)

    def lift(self, tenant: str, customer_id: str) -> int:
        """End the suppression of the person's ids; how many digests left the list (of any
        length: a store may hold one suppressed before ids were checked for it)."""
        _check_customer(customer_id, longest=None)
        return self.store.lift(tenant, customer_id)

    def receipts(self, tenant: str | None = None) -> Sequence[Receipt]:
        return self.store.receipts(tenant)

    def encrypt(self) -> int:
        """Seal the personal fields of a store made before sealing (resumable); how many
        events it sealed."""
        return self.store.encrypt()


def _check_customer(customer_id: str, longest: int | None = MAX_CUSTOMER_ID) -> None:
    """An empty id is no customer's (the wire format refuses it): erasing it would keep a
    receipt and suppress nothing anyone sends."""
    if not customer_id:
        raise ErasureRefused("--customer: expected one of the person's customer ids, got an "
                             "empty text")
    if longest is not None and len(customer_id) > longest:
        # No customer id is longer (SPEC §2): a typo, or a file pasted in; POST /v1/erasures
        # refuses it the same way (a 422), and a receipt would suppress what nobody can send.
        raise ErasureRefused(f"--customer: expected at most {longest} characters (no "
                             f"customer id is longer), got {len(customer_id):,}")
