"""`--as-of` queries: the projections as they were at a past time, folded on demand.

Only the moments that had occurred by then are folded, with the engine's own
fold, so an as-of answer and a live one cannot disagree about the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from mot.adapters.stores.projection_tables import SqlProjectionStore
from mot.domain.timefmt import micros_to_text, to_micros
from mot.projections.amplification import Amplification
from mot.projections.engine import Engine
from mot.projections.model import Current
from mot.projections.teams import listening_contribution, scoreboard

if TYPE_CHECKING:
    from mot.service.queries import Query


def fold_as_of(projections: SqlProjectionStore, engine: Engine, query: Query
               ) -> list[dict[str, Any]]:
    """Fold the current moments with occurred_at <= as_of, with the engine's own fold."""
    assert query.as_of is not None
    as_of_us = to_micros(query.as_of)
    name = query.name
    records: list[dict[str, Any]] = []
    moments_seen: list[Current] = []
    amplifications: list[Amplification] = []
    keep_all = name in ("teams", "listening")
    with projections.reader(as_of_us) as session:
        cursor = None
        while True:
            keys = session.customers_after(cursor, 2000, tenant=query.tenant,
                                           customer=query.customer)
            if not keys:
                break
            cursor = keys[-1]
            moments = session.customer_moments(keys)
            for key, (rel, transitions, recip, amps) in engine.fold(session, moments).items():
                if keep_all:
                    moments_seen.extend(moments[key])
                    amplifications.extend(amps)
                elif name == "relationships":
                    record = rel.as_record() | {"version": None}
                    record["last_customer_moment_us"] = rel.last_customer_moment_us
                    records.append(record)
                elif name == "reciprocity":
                    records.append(recip.as_record() | {"version": None})
                elif name == "transitions":
                    records.extend(
                        {**t.as_record(), "version": None} for t in transitions
                    )
                elif name == "amplifications":
                    records.extend(_amplification_record(a) for a in amps)
    if keep_all:
        board = scoreboard(moments_seen, amplifications)
        if name == "teams":
            records = [r.as_record() | {"version": None} for r in board.teams]
        else:
            counts: dict[str, list[int]] = {}
            for m in moments_seen:
                listening, talking = listening_contribution(m)
                tally = counts.setdefault(m.tenant, [0, 0, 0])
                tally[0] += 1
                tally[1] += listening
                tally[2] += talking
            records = [
                r.as_record() | dict(zip(("moments", "listening", "other"), counts[r.tenant],
                                         strict=True)) | {"version": None}
                for r in board.listening
            ]
    return [r for r in records if _matches(r, query)]


def _amplification_record(a: Amplification) -> dict[str, Any]:
    return {"amplification_id": a.amplification_id, "tenant": a.tenant,
            "customer_id": a.customer_id, "occurred_at": micros_to_text(a.occurred_us),
            "channel": a.channel, "sentiment": a.sentiment,
            **{k: v for k, v in a.as_record().items()
               if k not in ("amplification_id", "tenant", "customer_id")},
            "trigger_actor": a.trigger_actor, "version": None}


def _matches(record: dict[str, Any], query: Query) -> bool:
    fields = {"tenant": "tenant", "customer": "customer_id", "stage": "stage" if query.name ==
              "relationships" else "to", "status": "status", "polarity": "polarity",
              "function": "function" if query.name == "teams" else "trigger_function"}
    for filter_name, value in query.equals().items():
        if record.get(fields[filter_name]) != value:
            return False
    if query.since or query.until:
        stamp_field = {"relationships": "last_moment_at"}.get(query.name, "occurred_at")
        stamp = record.get(stamp_field)
        if stamp is None:
            return False
        when = datetime.fromisoformat(stamp)
        if query.since and when < query.since:
            return False
        if query.until and when > query.until:
            return False
    return True
