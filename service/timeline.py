"""A customer's story: their moments in fold order, with the running stage and balance."""

from __future__ import annotations

from typing import Any

import orjson

from mot.adapters.stores.projection_tables import SqlProjectionStore
from mot.domain.timefmt import micros_to_text
from mot.projections.reciprocity import balances_along
from mot.projections.relationship import stages_along


def customer_log(store: SqlProjectionStore, tenant: str, customer: str) -> list[dict[str, Any]]:
    """The customer's current moments (after amendments) in fold order, as stored."""
    with store.backend.read() as tx:
        rows = tx.query(
            "SELECT doc FROM moments WHERE tenant = ? AND customer_id = ?"
            " ORDER BY occurred_us, moment_id", (tenant, customer),
        )
    return [orjson.loads(row[0]) for row in rows]


def customer_timeline(store: SqlProjectionStore, tenant: str, customer: str
                      ) -> list[dict[str, Any]]:
    """One record per moment: what happened, and the stage and balance right after it."""
    with store.reader() as session:
        moments = session.customer_moments([(tenant, customer)])[(tenant, customer)]
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
