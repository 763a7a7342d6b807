"""Reading the projection tables for `mot query`: filters become WHERE clauses on indexed columns.

The columns, their names in the output, the filters and the default order all come from
the projections' declarations (mot.projections.schema).
"""

from __future__ import annotations

from typing import Any

from mot.adapters.stores.sql import SqlBackend
from mot.projections.ports import ViewRead
from mot.projections.schema import PROJECTIONS, stored_decoder


def read_view(backend: SqlBackend, read: ViewRead) -> list[dict[str, Any]]:
    """Rows of one projection as records named as the output names them (computed fields
    not yet worked out), in `read.order` then the projection's default order."""
    projection = PROJECTIONS[read.name]
    fields = projection.read_fields
    where: list[str] = []
    params: list[Any] = []
    for column, value in read.equals.items():
        where.append(f"{column} = ?")
        params.append(value)
    where.extend(f"{column} IS NULL" for column in read.null)
    for column, least in read.at_least.items():
        where.append(f"{column} >= ?")
        params.append(least)
    if read.customers is not None:
        if not read.customers:
            return []
        where.append("(" + " OR ".join(["(tenant = ? AND customer_id = ?)"] * len(read.customers))
                     + ")")
        params.extend(value for key in read.customers for value in key)
    if read.since_us is not None:
        where.append(f"{projection.time} >= ?")
        params.append(read.since_us)
    if read.until_us is not None:
        where.append(f"{projection.time} <= ?")
        params.append(read.until_us)
    statement = f"SELECT {', '.join(f.col for f in fields)} FROM {projection.name}"
    if where:
        statement += " WHERE " + " AND ".join(where)
    order = [f"{column} {'DESC' if descending else 'ASC'}" for column, descending in read.order]
    statement += f" ORDER BY {', '.join([*order, *projection.default_order])}"
    if read.limit is not None:
        statement += " LIMIT ?"
        params.append(read.limit)
    with backend.read() as tx:
        if not backend.known_table(tx, projection.name):
            return []
        rows = tx.query(statement, params)
    names = [f.name for f in fields]
    decode = stored_decoder(fields)
    return [decode(dict(zip(names, row, strict=True))) for row in rows]
