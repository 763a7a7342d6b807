"""Projection queries that every entry point shares (`mot query`, the HTTP API).

Live queries read the projection tables; `--as-of` queries fold the moments that
had occurred by then (service/as_of.py), loaded only when asked for: a live query
is mostly start-up time, and the folds are the heavier half of mot to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mot.adapters.stores.projection_tables import SqlProjectionStore
from mot.adapters.stores.sql import SqlBackend
from mot.adapters.stores.views import FILTERS, TIME_COLUMN, VIEWS, read_view
from mot.domain.timefmt import to_micros, utc_now
from mot.projections.lapsing import is_lapsed

if TYPE_CHECKING:
    from mot.projections.engine import Engine

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


DEFAULT_SORT: dict[str, str] = {"amplifications": "-cascade_reach",
                                "relationships": "-last_moment_at",
                                "reciprocity": "-unanswered_asks"}
"""The order a person wants first when a query does not say (CLI and HTTP alike)."""


class QueryService:
    """Answers `mot query` from the projection tables, or by folding as of a past time."""

    def __init__(self, backend: SqlBackend, projections: SqlProjectionStore,
                 engine: Callable[[], Engine], clock: Callable[[], datetime] = utc_now) -> None:
        self.backend = backend
        self.projections = projections
        self.engine = engine  # called only by an --as-of query
        self.clock = clock

    def run(self, query: Query) -> list[dict[str, Any]]:
        name = query.name
        if query.sort is None and name in DEFAULT_SORT:
            query = replace(query, sort=DEFAULT_SORT[name])
        if name not in PROJECTION_NAMES:
            raise QueryError(f"unknown projection {name!r}; expected one of "
                             + ", ".join(PROJECTION_NAMES))
        for filter_name in query.equals():
            if name not in FILTERS[filter_name]:
                raise QueryError(f"--{filter_name} does not apply to {name}")
        if (query.since or query.until) and name not in TIME_COLUMN:
            raise QueryError(f"--since/--until do not apply to {name}")
        as_of = query.as_of or self.clock()
        if query.as_of is None:
            records = self._live(query)
        else:
            from mot.service.as_of import fold_as_of

            records = fold_as_of(self.projections, self.engine(), query)
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
