"""`--as-of` queries: the projections as they were at a past time, folded on demand.

Only the moments that had occurred by then are folded, with the engine's own
fold, so an as-of answer and a live one cannot disagree about the rules; the
records carry the fields the projection's declaration shows, as live ones do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mot.domain.timefmt import to_micros
from mot.projections.engine import Engine
from mot.projections.model import Current, CustomerKey
from mot.projections.ports import ProjectionStore, RangeReader
from mot.projections.schema import PROJECTIONS, Projection, record_maker
from mot.projections.teams import ListeningRow, TeamTotals, scoreboard

if TYPE_CHECKING:
    from mot.service.queries import Query

CUSTOMERS_PER_READ = 2000


def _maker(name: str) -> Callable[[Any], dict[str, Any]]:
    """A domain value's output record (computed fields still to be worked out)."""
    projection = PROJECTIONS[name]
    shown = record_maker(projection, ("record", "detail"))
    needs = [column for f in projection.fields for column in f.needs]

    def record(value: Any) -> dict[str, Any]:
        return shown(value) | {"version": None} | {column: getattr(value, column)
                                                  for column in needs}

    return record


def fold_as_of(projections: ProjectionStore, engine: Engine, query: Query,
               groups: Sequence[CustomerKey] | None = None) -> list[dict[str, Any]]:
    """Fold the current moments with occurred_at <= as_of, with the engine's own fold: the
    records of `query.name` in its default order; with `groups`, only those persons'.

    Persons are those of the current links (SPEC §2: links are about who someone is, not
    about when it was known)."""
    values = [v for batch in _folded(projections, engine, query, groups) for v in batch]
    if query.name == "amplifications":
        values.sort(key=lambda a: a.amplification_id)
    elif query.name == "responses":
        values.sort(key=lambda r: (r.request_moment_id, r.tenant))
    return _records(query, values)


def as_of_pages(projections: ProjectionStore, engine: Engine, query: Query
                ) -> Iterator[list[dict[str, Any]]]:
    """`fold_as_of`'s records a read of persons at a time, in the fold's order (persons by
    key; amplifications and responses not sorted by id): memory holds one read's persons,
    not the whole answer (`mot export --as-of`)."""
    for values in _folded(projections, engine, query, None):
        records = _records(query, values)
        if records:
            yield records


def _records(query: Query, values: Sequence[Any]) -> list[dict[str, Any]]:
    make = _maker(query.name)
    projection = PROJECTIONS[query.name]
    return [record for record in map(make, values) if _matches(projection, record, query)]


def _folded(projections: ProjectionStore, engine: Engine, query: Query,
            groups: Sequence[CustomerKey] | None) -> Iterator[list[Any]]:
    """The domain values of `query.name` as of `query.as_of`, a read of persons at a time;
    the scoreboard's (teams, listening) once, at the end, summed a read at a time."""
    assert query.as_of is not None
    name = query.name
    teams = TeamTotals()
    listening: dict[str, list[int]] = {}  # tenant -> [moments, L, M]
    with projections.reader(to_micros(query.as_of)) as session:
        for keys in _person_groups(session, query, groups):
            moments = session.customer_moments(keys)
            values: list[Any] = []
            seen: list[Current] = []
            amplifications: list[Any] = []
            for key, folded in engine.fold(session, moments, session.members(keys)).items():
                if name in ("teams", "listening"):
                    seen.extend(moments[key])
                    amplifications.extend(folded.amplifications)
                elif name == "amplifications":
                    values.extend(folded.amplifications)
                elif name == "relationships":
                    values.append(folded.relationship)
                elif name == "reciprocity":
                    values.append(folded.reciprocity)
                elif name == "transitions":
                    values.extend(folded.transitions)
                elif name == "responses":
                    values.extend(folded.responses)
                elif name == "persons":
                    values.append(folded.person)
            if seen:  # the scoreboard's sums add up in any order: one read's at a time
                board = scoreboard(seen, amplifications)
                for row in board.teams:
                    teams.add(row)
                for tenant_row in board.listening:
                    counts = listening.setdefault(tenant_row.tenant, [0, 0, 0])
                    for i, count in enumerate((tenant_row.moments, tenant_row.listening,
                                               tenant_row.other)):
                        counts[i] += count
            yield values
    if name == "teams":
        yield teams.rows()
    elif name == "listening":
        yield [ListeningRow(tenant, *counts) for tenant, counts in sorted(listening.items())
               if counts[0]]


def _person_groups(session: RangeReader, query: Query, groups: Sequence[CustomerKey] | None
                   ) -> Iterator[list[CustomerKey]]:
    """The persons to fold, as (tenant, group) keys, a read at a time."""
    if groups is not None:
        yield [key for key in groups if query.tenant in (None, key[0])]
        return
    cursor = None
    while True:
        keys = session.customers_after(cursor, CUSTOMERS_PER_READ, tenant=query.tenant)
        if not keys:
            return
        cursor = keys[-1]
        yield keys


def _matches(projection: Projection, record: dict[str, Any], query: Query) -> bool:
    for filter_name, value in query.equals().items():
        if record.get(projection.field(projection.filters[filter_name]).name) != value:
            return False
    if query.suspect and not record.get("suspect"):
        return False
    if query.min_ids is not None and record.get("ids", 0) < query.min_ids:
        return False
    if query.since or query.until:
        stamp_field = next(f.name for f in projection.fields
                           if f.micros_text and f.source == projection.time)
        stamp = record.get(stamp_field)
        if stamp is None:
            return False
        when = datetime.fromisoformat(stamp)
        if query.since and when < query.since:
            return False
        if query.until and when > query.until:
            return False
    return True
