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
from mot.projections.amplification import Amplification
from mot.projections.engine import Engine
from mot.projections.model import Current, CustomerKey
from mot.projections.ports import ProjectionStore, RangeReader
from mot.projections.schema import PROJECTIONS, Projection, record_maker
from mot.projections.teams import scoreboard

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
    assert query.as_of is not None
    name = query.name
    make = _maker(name)
    values: list[Any] = []
    moments_seen: list[Current] = []
    amplifications: list[Amplification] = []
    with projections.reader(to_micros(query.as_of)) as session:
        for keys in _person_groups(session, query, groups):
            moments = session.customer_moments(keys)
            for key, folded in engine.fold(session, moments, session.members(keys)).items():
                if name in ("teams", "listening"):
                    moments_seen.extend(moments[key])
                amplifications.extend(folded.amplifications)
                if name == "relationships":
                    values.append(folded.relationship)
                elif name == "reciprocity":
                    values.append(folded.reciprocity)
                elif name == "transitions":
                    values.extend(folded.transitions)
                elif name == "responses":
                    values.extend(folded.responses)
                elif name == "persons":
                    values.append(folded.person)
    if name == "amplifications":
        values = sorted(amplifications, key=lambda a: a.amplification_id)
    elif name == "responses":
        values.sort(key=lambda r: (r.request_moment_id, r.tenant))
    elif name in ("teams", "listening"):
        board = scoreboard(moments_seen, amplifications)
        values = list(board.teams if name == "teams" else board.listening)
    projection = PROJECTIONS[name]
    return [record for record in map(make, values) if _matches(projection, record, query)]


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
