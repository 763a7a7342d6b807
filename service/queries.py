"""Read-side use cases that every entry point shares: moment lookup and history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from mot.adapters.stores.projection_tables import SqlProjectionStore
from mot.adapters.stores.sql import SqlBackend
from mot.adapters.stores.views import FILTERS, TIME_COLUMN, VIEWS, read_view
from mot.domain.events import LedgerEvent, MomentAmended, MomentRecorded, as_dict
from mot.domain.identity import derived_moment_id
from mot.domain.timefmt import micros_to_text, to_micros, utc_now
from mot.projections.amplification import Amplification
from mot.projections.engine import Engine
from mot.projections.model import Current
from mot.projections.relationship import is_lapsed
from mot.projections.teams import listening_contribution, scoreboard


def resolve_moment_id(text: str, tenant: str) -> str | None:
    """A moment id from a UUID, or from `SYSTEM:ID` naming a source record in `tenant`."""
    try:
        return str(UUID(text))
    except ValueError:
        pass
    if ":" in text:
        system, source_id = text.split(":", 1)
        if system and source_id:
            return derived_moment_id(tenant, system, source_id)
    return None


def history_records(events: list[LedgerEvent]) -> list[dict[str, Any]]:
    """A moment's events as plain records, oldest first."""
    records: list[dict[str, Any]] = []
    for event in events:
        record: dict[str, Any] = {
            "version": event.version,
            "recorded_at": event.recorded_at,
            "origin": event.origin,
        }
        if isinstance(event, MomentRecorded):
            record |= {"event": "recorded", "moment": as_dict(event.moment)}
        elif isinstance(event, MomentAmended):
            record |= {"event": "amended", "set": event.set, "reason": event.reason,
                       "moment": event.moment}
        else:
            record |= {"event": "retracted", "reason": event.reason}
        records.append(record)
    return records


# -- projection queries -----------------------------------------------------------------

PROJECTION_NAMES = ("relationships", "reciprocity", "transitions", "amplifications", "teams",
                    "listening")


class QueryError(ValueError):
    """A query that cannot be answered as asked (a filter that does not apply, a bad field)."""


@dataclass(frozen=True, slots=True)
class Query:
    """What `mot query` asks: a projection name and its filters."""

    name: str
    tenant: str | None = None
    customer: str | None = None
    stage: str | None = None
    status: str | None = None
    polarity: str | None = None
    function: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None
    sort: str | None = None
    limit: int | None = None

    def equals(self) -> dict[str, str]:
        given = {"tenant": self.tenant, "customer": self.customer, "stage": self.stage,
                 "status": self.status, "polarity": self.polarity, "function": self.function}
        return {k: v for k, v in given.items() if v is not None}


class QueryService:
    """Answers `mot query` from the projection tables, or by folding as of a past time."""

    def __init__(self, backend: SqlBackend, projections: SqlProjectionStore, engine: Engine,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.backend = backend
        self.projections = projections
        self.engine = engine
        self.clock = clock

    def run(self, query: Query) -> list[dict[str, Any]]:
        name = query.name
        if name not in PROJECTION_NAMES:
            raise QueryError(f"unknown projection {name!r}; expected one of "
                             + ", ".join(PROJECTION_NAMES))
        for filter_name in query.equals():
            if name not in FILTERS[filter_name]:
                raise QueryError(f"--{filter_name} does not apply to {name}")
        if (query.since or query.until) and name not in TIME_COLUMN:
            raise QueryError(f"--since/--until do not apply to {name}")
        as_of = query.as_of or self.clock()
        records = self._live(query) if query.as_of is None else self._as_of(query)
        if name == "relationships":
            as_of_us = to_micros(as_of)
            for record in records:
                record["lapsed"] = is_lapsed(record.pop("last_customer_moment_us", None), as_of_us)
                record.pop("last_moment_us", None)
        if name == "transitions":
            for record in records:
                if "from_stage" in record:  # live rows; as-of records carry from/to already
                    record["from"] = record.pop("from_stage")
                    record["to"] = record.pop("to_stage")
        if query.as_of is not None:
            if name == "amplifications":
                records.sort(key=lambda r: r["amplification_id"])
            records = _sorted_and_limited(records, query.sort, query.limit)
        return records

    def _live(self, query: Query) -> list[dict[str, Any]]:
        columns = VIEWS[query.name][1]
        order = None
        if query.sort:
            field, descending = _sort_field(query.sort, columns)
            order = f"{field} {'DESC' if descending else 'ASC'}"
        return read_view(
            self.backend, query.name, query.equals(),
            None if query.since is None else to_micros(query.since),
            None if query.until is None else to_micros(query.until), order, query.limit,
        )

    def _as_of(self, query: Query) -> list[dict[str, Any]]:
        """Fold the current moments with occurred_at <= as_of, with the engine's own fold."""
        assert query.as_of is not None
        as_of_us = to_micros(query.as_of)
        name = query.name
        records: list[dict[str, Any]] = []
        moments_seen: list[Current] = []
        amplifications: list[Amplification] = []
        keep_all = name in ("teams", "listening")
        with self.projections.reader(as_of_us) as session:
            cursor = None
            while True:
                keys = session.customers_after(cursor, 2000, tenant=query.tenant,
                                               customer=query.customer)
                if not keys:
                    break
                cursor = keys[-1]
                moments = session.customer_moments(keys)
                for key, (rel, transitions, recip, amps) in self.engine.fold(session, moments).items():
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


def _sort_field(sort: str, columns: tuple[str, ...]) -> tuple[str, bool]:
    """`field` (numbers descending, text ascending), `-field` descending, `+field` ascending."""
    explicit = sort[:1] if sort[:1] in "+-" else ""
    field = sort.lstrip("+-")
    if field not in columns or field.endswith("_us"):
        raise QueryError(f"cannot sort by {field!r}; fields: "
                         + ", ".join(c for c in columns if not c.endswith("_us")))
    numeric = field in NUMERIC_FIELDS
    descending = explicit == "-" or (explicit == "" and numeric)
    return field, descending


NUMERIC_FIELDS = frozenset({
    "exchanges", "wants", "likes", "customer_moments", "brand_moments", "given", "asked",
    "received", "balance", "unanswered_asks", "reach", "cascade_size", "cascade_reach",
    "delay_seconds", "sentiment", "moments", "amplifications", "positive", "negative",
    "listening_share", "listening", "other", "version",
})


def _sorted_and_limited(records: list[dict[str, Any]], sort: str | None,
                        limit: int | None) -> list[dict[str, Any]]:
    if sort:
        columns = tuple(records[0]) if records else ()
        field, descending = _sort_field(sort, columns) if records else (sort.lstrip("+-"), False)
        records = sorted(records, key=lambda r: (r.get(field) is None, r.get(field) or 0)
                         if field in NUMERIC_FIELDS else (r.get(field) or ""), reverse=descending)
    return records[:limit] if limit is not None else records
