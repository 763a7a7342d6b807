"""A rebuild's first phase inside the database: current moments out of the ledger, into a table.

The ledger and the projection tables live in one database, so a rebuild loads
its moments table with one `INSERT ... SELECT` a page of the log: each moment
current at the rebuild's target, read at its latest event, its fields taken out
of the stored event's JSON by the database's own JSON functions. No row passes
through Python; on SQLite this phase runs about twice as fast as decoding the
events and inserting the rows from Python.

The columns are exactly what `mot.projections.engine.current_of` makes of a
moment (the incremental path), plus `occurred_at` and the version;
tests/test_rebuild.py holds the two equal on every kind of moment, on both
stores.
"""

from __future__ import annotations

from collections.abc import Sequence

from mot.adapters.stores.sql import SqlBackend
from mot.adapters.stores.topics import RETRACTED
from mot.projections.schema import MOMENT_FIELDS

TEXT_FIELDS = ("moment_id", "tenant", "customer_id", "direction", "kind", "function", "channel",
               "actor", "ask_type", "in_reply_to", "shares", "occurred_at")

# The fields of a moment the folds do not read, but the moments table keeps for analysts.
_UNFOLDED = [f for f in MOMENT_FIELDS if not f.folded and f.name != "occurred_at"]


def load_statement(backend: SqlBackend, table: str, columns: Sequence[str]) -> str:
    """`INSERT INTO table (columns) SELECT` of the moments whose latest event at or before
    position `as_of` lies in (after, upto] and does not retract them.

    Parameters, in order: version, after, upto, as_of.
    """
    position = backend.position_column
    events = (
        f"stored_events e WHERE e.{position} > ? AND e.{position} <= ?"
        f" AND e.topic <> '{RETRACTED}' AND NOT EXISTS (SELECT 1 FROM stored_events later"
        " WHERE later.originator_id = e.originator_id"
        f" AND later.originator_version > e.originator_version AND later.{position} <= ?"
        # Implied by the line above; said so the corrections index (ledger.py) is used.
        " AND later.originator_version > 1)"
    )
    if backend.kind == "sqlite":
        values, source = _sqlite_values(), f"(SELECT CAST(e.state AS TEXT) AS s FROM {events})"
    else:
        values = _postgres_values()
        # OFFSET 0 keeps the planner from pulling the subquery up, which would copy the
        # ::jsonb parse into every field's expression: each event is parsed once.
        source = (f"(SELECT convert_from(e.state, 'UTF8')::jsonb AS s FROM {events} OFFSET 0)"
                  " AS parsed")
    return (f"INSERT INTO {table} ({', '.join(columns)})"
            f" SELECT {', '.join(values[c] for c in columns)} FROM {source}")


def _sqlite_values() -> dict[str, str]:
    # CAST above: SQLite's JSON functions take text, and the recorder stores a BLOB.
    # SQLite keeps the last JSON texts a statement parsed: each event is parsed once,
    # and every further field is a lookup.
    values = {name: f"json_extract(s, '$.moment.{name}')"
              for name in (*TEXT_FIELDS, "sentiment", "reach")}
    when = values["occurred_at"]  # `...T12:34:56Z` or `...T12:34:56.123456Z`, in UTC
    fraction = f"substr(substr({when}, 21, length({when}) - 21) || '000000', 1, 6)"
    # strftime('%s') rather than unixepoch(): SQLite before 3.38 has only the former.
    values["occurred_us"] = (
        f"CAST(strftime('%s', substr({when}, 1, 19)) AS INTEGER) * 1000000"
        f" + CASE WHEN substr({when}, 20, 1) = '.' THEN CAST({fraction} AS INTEGER) ELSE 0 END"
    )
    for f in _UNFOLDED:
        # Objects come out as JSON text (numbers as written); the rest as SQLite values.
        values[f.name] = f"json_extract(s, '$.moment.{'.'.join(f.at)}')"
    values["version"] = "?"
    return values



def _postgres_values() -> dict[str, str]:
    # jsonb parses each event once for all its fields.
    values = {name: f"s #>> '{{moment,{name}}}'" for name in TEXT_FIELDS}
    values["occurred_us"] = ("(extract(epoch from (s #>> '{moment,occurred_at}')::timestamptz)"
                             " * 1000000)::bigint")
    values["sentiment"] = "(s #>> '{moment,sentiment}')::double precision"
    values["reach"] = "(s #>> '{moment,reach}')::bigint"
    for f in _UNFOLDED:
        path = ",".join(("moment", *f.at))
        values[f.name] = {"json": f"s #> '{{{path}}}'", "real": f"(s #>> '{{{path}}}')::double precision"
                          }.get(f.type, f"s #>> '{{{path}}}'")
    values["version"] = "?"
    return values
