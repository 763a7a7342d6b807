"""A customer's story: their moments in fold order, with the running stage and balance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from mot.domain.timefmt import micros_to_text
from mot.projections.model import Current
from mot.projections.ports import ProjectionStore
from mot.projections.reciprocity import balances_along
from mot.projections.relationship import stages_along


class MomentDocuments(Protocol):
    """The ledger's current documents of moments (`adapters/stores/ledger.py`)."""

    def current_moments(self, tenant: str, moment_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


class Timelines:
    """One customer's moments: `log` as the ledger holds them, `timeline` with the running
    stage and reciprocity balance."""

    def __init__(self, documents: MomentDocuments, projections: ProjectionStore) -> None:
        self.documents = documents
        self.projections = projections

    def log(self, tenant: str, customer: str) -> list[dict[str, Any]]:
        return customer_log(self.documents, self.projections, tenant, customer)

    def timeline(self, tenant: str, customer: str) -> list[dict[str, Any]]:
        return customer_timeline(self.projections, tenant, customer)


def customer_log(documents: MomentDocuments, projections: ProjectionStore, tenant: str,
                 customer: str) -> list[dict[str, Any]]:
    """The customer's current moments (after amendments) in fold order, as the ledger holds
    them: the projections give the order, the ledger the documents."""
    moments = _folded_moments(projections, tenant, customer)
    found = documents.current_moments(tenant, [m.moment_id for m in moments])
    return [found[m.moment_id] for m in moments if m.moment_id in found]


def _folded_moments(projections: ProjectionStore, tenant: str, customer: str) -> list[Current]:
    """The moments of the person `customer` belongs to (SPEC §3: per person), in fold order."""
    with projections.reader() as session:
        key = (tenant, session.groups([(tenant, customer)]).get((tenant, customer), customer))
        return session.customer_range(key, key).get(key, [])


def customer_timeline(projections: ProjectionStore, tenant: str, customer: str
                      ) -> list[dict[str, Any]]:
    """One record per moment: what happened, and the stage and balance right after it."""
    moments = _folded_moments(projections, tenant, customer)
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
