"""A customer's story: their moments in fold order, with the running stage and balance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mot.domain.timefmt import micros_to_text
from mot.projections.model import Current
from mot.projections.reciprocity import balances_along
from mot.projections.relationship import stages_along

if TYPE_CHECKING:
    from mot.service.bootstrap import Services


def customer_log(services: Services, tenant: str, customer: str) -> list[dict[str, Any]]:
    """The customer's current moments (after amendments) in fold order, as the ledger holds
    them: the projections give the order, the ledger the documents."""
    moments = _folded_moments(services, tenant, customer)
    documents = services.ledger_store.current_moments(tenant, [m.moment_id for m in moments])
    return [documents[m.moment_id] for m in moments if m.moment_id in documents]


def _folded_moments(services: Services, tenant: str, customer: str) -> list[Current]:
    with services.projection_store.reader() as session:
        return session.customer_moments([(tenant, customer)])[(tenant, customer)]


def customer_timeline(services: Services, tenant: str, customer: str) -> list[dict[str, Any]]:
    """One record per moment: what happened, and the stage and balance right after it."""
    moments = _folded_moments(services, tenant, customer)
    records = []
    for (m, stage), (_, balance) in zip(stages_along(moments), balances_along(moments),
                                        strict=True):
        records.append({
            "occurred_at": micros_to_text(m.occurred_us), "moment_id": m.moment_id,
            "direction": m.direction, "kind": m.kind, "function": m.function,
            "channel": m.channel, "sentiment": m.sentiment, "stage": stage,
            "given": balance.given, "asked": balance.asked, "received": balance.received,
            "balance": balance.balance, "unanswered_asks": balance.unanswered_asks,
            "status": balance.status,
        })
    return records
