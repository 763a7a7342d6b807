"""Reading the projection tables for `mot query`: filters become WHERE clauses on indexed columns."""

from __future__ import annotations

from typing import Any

from mot.adapters.stores.sql import SqlBackend

# Projection -> (table, output columns in order, default order). Output names are SPEC's.
VIEWS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "relationships": ("relationships", (
        "tenant", "customer_id", "stage", "exchanges", "wants", "likes", "customer_moments",
        "brand_moments", "first_moment_at", "last_moment_at", "last_customer_moment_at",
        "last_customer_moment_us", "version"), "tenant, customer_id"),
    "reciprocity": ("reciprocity", (
        "tenant", "customer_id", "given", "asked", "received", "balance", "unanswered_asks",
        "status", "version"), "tenant, customer_id"),
    "transitions": ("transitions", (
        "tenant", "customer_id", "from_stage", "to_stage", "occurred_at", "moment_id", "version"),
        "tenant, customer_id, occurred_us, seq"),
    "amplifications": ("amplifications", (
        "amplification_id", "tenant", "customer_id", "occurred_at", "channel", "sentiment",
        "trigger_moment_id", "trigger_function", "trigger_channel", "trigger_actor",
        "delay_seconds", "polarity", "reach", "cascade_size", "cascade_reach", "version"),
        "amplification_id"),
    "teams": ("teams", (
        "tenant", "function", "moments", "given", "asked", "amplifications", "positive",
        "negative", "cascade_reach", "version"), "tenant, function"),
    "listening": ("listening", ("tenant", "listening_share", "moments", "listening", "other",
                                "version"), "tenant"),
}

# Filter -> column, per projection (a filter absent here does not apply to that projection).
FILTERS: dict[str, dict[str, str]] = {
    "tenant": {name: "tenant" for name in VIEWS},
    "customer": {"relationships": "customer_id", "reciprocity": "customer_id",
                 "transitions": "customer_id", "amplifications": "customer_id"},
    "stage": {"relationships": "stage", "transitions": "to_stage"},
    "status": {"reciprocity": "status"},
    "polarity": {"amplifications": "polarity"},
    "function": {"teams": "function", "amplifications": "trigger_function"},
}
# --since/--until compare against this timestamp column.
TIME_COLUMN = {"relationships": "last_moment_us", "transitions": "occurred_us",
               "amplifications": "occurred_us"}


def read_view(backend: SqlBackend, name: str, equals: dict[str, str], since: int | None,
              until: int | None, order: str | None, limit: int | None) -> list[dict[str, Any]]:
    """Rows of one projection as records; `order` is a vetted `column [ASC|DESC]` or None."""
    table, columns, default_order = VIEWS[name]
    where: list[str] = []
    params: list[Any] = []
    for filter_name, value in equals.items():
        where.append(f"{FILTERS[filter_name][name]} = ?")
        params.append(value)
    if since is not None:
        where.append(f"{TIME_COLUMN[name]} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{TIME_COLUMN[name]} <= ?")
        params.append(until)
    statement = f"SELECT {', '.join(columns)} FROM {table}"
    if where:
        statement += " WHERE " + " AND ".join(where)
    statement += f" ORDER BY {order + ', ' if order else ''}{default_order}"
    if limit is not None:
        statement += " LIMIT ?"
        params.append(limit)
    with backend.read() as tx:
        if not backend.table_exists(tx, table):
            return []
        rows = tx.query(statement, params)
    return [dict(zip(columns, row, strict=True)) for row in rows]
