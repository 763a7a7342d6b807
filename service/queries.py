"""Projection queries that every entry point shares (`mot query`, the HTTP API).

Live queries read the projection tables; `--as-of` queries fold the moments that
had occurred by then (service/as_of.py), loaded only when asked for: a live query
is mostly start-up time, and the folds are the heavier half of mot to import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mot.domain.timefmt import parse_utc, reversed_window, to_micros, utc_now
from mot.projections.lapsing import is_lapsed
from mot.projections.model import CustomerKey
from mot.projections.ports import ProjectionStore, ViewRead
from mot.projections.schema import NUMERIC_TYPES, PROJECTIONS, SUMMARIES, Projection, record_maker

if TYPE_CHECKING:
    from mot.projections.engine import Engine
    from mot.service.targets import Targets

PROJECTION_NAMES = tuple(PROJECTIONS)
QUERY_NAMES = (*PROJECTION_NAMES, *SUMMARIES)
"""What `mot query` answers: the projections, and the sums worked out from one (response-times)."""

# Fields worked out when queried, from the stored columns they need.
COMPUTED: dict[str, Callable[[dict[str, Any], int], Any]] = {
    "lapsed": lambda record, as_of_us: is_lapsed(record["last_customer_moment_us"], as_of_us),
}


DEFAULT_SORT: dict[str, str] = {"amplifications": "-cascade_reach",
                                "relationships": "-last_moment_at",
                                "reciprocity": "-unanswered_asks"}
"""The order a person wants first when a query does not say (CLI and HTTP alike)."""


class QueryError(ValueError):
    """A query that cannot be answered as asked (a filter that does not apply, a bad field)."""


class NotConfigured(QueryError):
    """A well-formed query that this installation's configuration cannot answer (overdue
    without first-response targets): the request is right, the server's mot.toml lacks."""


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
    kind: str | None = None
    open: bool = False  # responses: only requests with no response yet
    overdue: bool = False  # responses: only open requests past their first-response target
    targets: Targets | None = None  # mot.toml's first-response targets, for `overdue`
    min_ids: int | None = None  # persons with at least this many ids
    suspect: bool = False  # only persons that merge protection reports

    def equals(self) -> dict[str, str]:
        given = {"tenant": self.tenant, "customer": self.customer, "stage": self.stage,
                 "status": self.status, "polarity": self.polarity, "function": self.function,
                 "kind": self.kind}
        return {k: v for k, v in given.items() if v is not None}


class QueryService:
    """Answers `mot query` from the projection tables, or by folding as of a past time."""

    def __init__(self, projections: ProjectionStore, engine: Callable[[], Engine],
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.projections = projections
        self.engine = engine  # called only by an --as-of query
        self.clock = clock

    def run(self, query: Query) -> list[dict[str, Any]]:
        """The records of one projection, each with the fields its declaration shows, in its
        order: live and `--as-of` answers alike."""
        name = query.name
        if name in SUMMARIES:
            return self._summary(query)
        projection = PROJECTIONS.get(name)
        if projection is None:
            raise QueryError(f"unknown projection {name!r}; expected one of "
                             + ", ".join(QUERY_NAMES))
        for filter_name in query.equals():
            if filter_name not in projection.filters:
                raise QueryError(f"--{filter_name} does not apply to {name}")
        if (query.min_ids is not None or query.suspect) and name != "persons":
            raise QueryError(f"--min-ids and --suspect apply to persons, not {name}")
        # A live query reads the person's groups and then the projection's rows in one read
        # transaction: each in its own cost PostgreSQL two begins, commits and pooled
        # connection checks.
        with self.projections.one_read() if query.as_of is None else nullcontext():
            groups: list[CustomerKey] | None = None
            if query.customer is not None:
                # SPEC §3: `--customer X` selects the person X belongs to, by any of its ids.
                found = self.projections.persons_of(query.customer, query.tenant)
                query = replace(query, customer=None)
                persons: tuple[CustomerKey, ...] = tuple(key for key, _ in found)
                groups = [(key[0], group) for key, group in found]
            else:
                persons = ()
            if (query.since or query.until) and projection.time is None:
                raise QueryError(f"--since/--until do not apply to {name}")
            backwards = reversed_window(query.since, query.until)
            if backwards is not None:
                raise QueryError(f"--since/--until: {backwards}")
            _check_waiting(query)
            if query.sort is None and name in DEFAULT_SORT:
                query = replace(query, sort=DEFAULT_SORT[name])
            as_of_us = to_micros(query.as_of or self.clock())
            if query.as_of is None:
                records = self._live(query, projection, persons if groups is not None else None)
            else:
                from mot.service.as_of import fold_as_of

                records = fold_as_of(self.projections, self.engine(), query, groups)
        records = _output(projection, records, as_of_us)
        if query.open or query.overdue:
            records = _waiting(records, query, as_of_us)
        if query.as_of is not None or query.overdue:
            records = _sorted_and_limited(projection, records, query.sort, query.limit)
        return records

    @staticmethod
    def fields(name: str) -> list[str]:
        """The fields of query `name`'s records, in their order (a CSV's header even when no
        record matches)."""
        if name in SUMMARIES:
            return [f.name for f in SUMMARIES[name][0].output if not f.computed
                    and not f.position and f.name != "version"]
        return [f.name for f in PROJECTIONS[name].output]

    def as_of_pages(self, query: Query) -> Iterator[list[dict[str, Any]]]:
        """A whole projection as of `query.as_of` (one tenant's with `tenant`), with the fields
        `run` gives, a read of persons at a time in the fold's order rather than sorted:
        memory holds one read, not the answer (`mot export --as-of` at a million moments)."""
        from mot.service.as_of import as_of_pages

        assert query.as_of is not None
        projection = PROJECTIONS[query.name]
        as_of_us = to_micros(query.as_of)
        for records in as_of_pages(self.projections, self.engine(), query):
            yield _output(projection, records, as_of_us)

    def _summary(self, query: Query) -> list[dict[str, Any]]:
        """Response times (SPEC §3.5): per tenant and request function, summed from the
        responses the same query (tenant, function, --as-of) selects."""
        from mot.projections.responses import sum_response_times

        projection, source = SUMMARIES[query.name]
        for filter_name in query.equals():
            if filter_name not in projection.filters:
                raise QueryError(f"--{filter_name} does not apply to {query.name}")
        if query.since or query.until or query.open or query.overdue:
            raise QueryError(f"--since/--until/--open/--overdue do not apply to {query.name}")
        requests = self.run(replace(query, name=source, sort=None, limit=None))
        rows = sum_response_times((r["tenant"], r["function"], r["response_seconds"])
                                  for r in requests)
        records = list(map(record_maker(projection), rows))
        return _sorted_and_limited(projection, records, query.sort, query.limit)

    def _live(self, query: Query, projection: Projection,
              persons: tuple[CustomerKey, ...] | None) -> list[dict[str, Any]]:
        order: tuple[tuple[str, bool], ...] = ()
        if query.sort:
            field, descending = _sort_field(query.sort, projection)
            order = ((projection.field(field).col, descending),)
        equals: dict[str, Any] = {projection.filters[f]: v for f, v in query.equals().items()}
        if query.suspect:
            equals["suspect"] = 1
        return self.projections.read_view(ViewRead(
            query.name, equals,
            None if query.since is None else to_micros(query.since),
            None if query.until is None else to_micros(query.until), order,
            None if query.overdue else query.limit,  # overdue is judged after the read
            ("response_moment_id",) if query.open or query.overdue else (),
            customers=persons,
            at_least={} if query.min_ids is None else {"ids": query.min_ids},
        ))


def _check_waiting(query: Query) -> None:
    """`--open` and `--overdue` select requests (SPEC §3.5); overdue needs the targets: without
    any, every answer would be empty, which reads as "nothing is late" (`mot query` and
    GET /v1/responses say so alike)."""
    if not (query.open or query.overdue):
        return
    if query.name != "responses":
        raise QueryError(f"--open/--overdue do not apply to {query.name}")
    if query.overdue and (query.targets is None or not query.targets.configured):
        from mot.service.targets import NO_TARGETS

        raise NotConfigured(NO_TARGETS)


def _waiting(records: list[dict[str, Any]], query: Query, as_of_us: int
             ) -> list[dict[str, Any]]:
    """The open requests (at the as-of time), and with `overdue` only those that have waited
    longer than their tenant's target for their function."""
    from mot.projections.responses import waited_past_target

    records = [r for r in records if r["response_moment_id"] is None]
    if not query.overdue:
        return records
    assert query.targets is not None
    targets = query.targets
    return [r for r in records if waited_past_target(
        r["function"], to_micros(parse_utc(r["occurred_at"])), as_of_us,
        targets.first_response_for(r["tenant"]))]


def _output(projection: Projection, records: list[dict[str, Any]], as_of_us: int
            ) -> list[dict[str, Any]]:
    """Records as every output shows them: computed fields worked out, in declared order."""
    # The declaration is read once, not once a record: a million-row answer spent more
    # time building `projection.output` than reading its rows.
    output = projection.output
    names = [f.name for f in output]
    computed = [(f.name, COMPUTED[f.name]) for f in output if f.computed]
    shown = []
    for record in records:
        for name, work in computed:
            record[name] = work(record, as_of_us)
        shown.append({name: record[name] for name in names})
    return shown


def _sort_field(sort: str, projection: Projection) -> tuple[str, bool]:
    """`field` (numbers descending, text ascending), `-field` descending, `+field` ascending."""
    explicit = sort[:1] if sort[:1] in "+-" else ""
    name = sort.lstrip("+-")
    sortable = [f.name for f in projection.output if f.sortable]
    if name not in sortable:
        from mot.service.config import did_you_mean

        raise QueryError(f"cannot sort by {name!r}{did_you_mean(name, sortable)}; fields: "
                         + ", ".join(sortable))
    numeric = projection.field(name).type in NUMERIC_TYPES
    descending = explicit == "-" or (explicit == "" and numeric)
    return name, descending


def _sorted_and_limited(projection: Projection, records: list[dict[str, Any]], sort: str | None,
                        limit: int | None) -> list[dict[str, Any]]:
    if sort:
        field, descending = _sort_field(sort, projection)
        if projection.field(field).type in NUMERIC_TYPES:
            records = sorted(records, key=lambda r: (r[field] is None, r[field] or 0),
                             reverse=descending)
        else:
            records = sorted(records, key=lambda r: r[field] or "", reverse=descending)
    return records[:limit] if limit is not None else records
