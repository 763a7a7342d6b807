"""A rebuild's first phase inside the database: current moments out of the ledger, into a table.

The ledger and the projection tables live in one database, so a rebuild loads
its moments table with one `INSERT ... SELECT` a page of the log: each moment
current at the rebuild's target, read at its latest event, its fields taken out
of the stored event's JSON by the database's own JSON functions. No row passes
through Python, which would otherwise decode every event and insert every row.

The columns and how each is taken from a moment come from the one field table,
`mot.projections.schema.MOMENT_FIELDS`, that `mot.projections.model.current_of`
(the incremental path) follows too; tests/test_rebuild.py holds the two equal
on every kind of moment, on both stores.
"""

from __future__ import annotations

from collections.abc import Sequence

from mot.adapters.stores.sql import SqlBackend
from mot.adapters.stores.topics import AMENDED, RECORDED
from mot.projections.schema import MOMENT_FIELDS


def load_statement(backend: SqlBackend, table: str, columns: Sequence[str],
                   groups: str | None = None, unseal: str | None = None) -> str:
    """`INSERT INTO table (columns) SELECT` of the moments whose latest event at or before
    position `as_of` lies in (after, upto] and does not retract them; with `groups` (the
    persons' members table), each also with its `person`: its customer id's group there, or
    the id itself. With `unseal`, for a ledger whose personal fields are sealed: the SQL
    function (tenant, moment id, key id, box) -> the opened box's JSON that the database
    calls for each event (`Sealing.in_database`, SQLite), whose fields it takes the personal
    ones from (an event without a box holds them itself).

    Parameters, in order: version, after, upto, as_of.
    """
    events = _current_events(backend)
    values = _values(backend)
    documents = backend.json_documents(events)
    if unseal is not None:
        # Here, not above: a store that seals nothing never loads the keystore (nor OpenSSL).
        from mot.adapters.stores.sealing import KEPT_FUNCTION, KEYED_UNSEAL_FUNCTION, box_field

        for f in MOMENT_FIELDS:
            name = box_field(f.at)
            if name is not None:
                values[f.name] = f"COALESCE(json_extract(p, '$.m.{name}'), {values[f.name]})"
        box = ", ".join(backend.json_value(("moment", *path), "text")
                        for path in (("tenant",), ("moment_id",), ("sealed", "k"), ("sealed", "v")))
        if unseal == KEYED_UNSEAL_FUNCTION:  # and the key's wrapped bytes, from this snapshot
            # unless the function holds its cipher already (argued just before its call)
            key = backend.json_value(("moment", "sealed", "k"), "text")
            box += (f", CASE WHEN {KEPT_FUNCTION}({key}) THEN NULL ELSE"
                    f" (SELECT wrapped FROM mot_keys WHERE key_id = {key}) END")
        # LIMIT -1 OFFSET 0: not flattened into the outer SELECT, which would call the
        # function once a personal field instead of once an event.
        documents = f"(SELECT s, {unseal}({box}) AS p FROM {documents} LIMIT -1 OFFSET 0)"
    select = f"SELECT {{}} FROM {documents}"
    if groups is None:
        return (f"INSERT INTO {table} ({', '.join(columns)}) "
                + select.format(", ".join(values[c] for c in columns)))
    # The version's parameter is typed: in a subquery nothing else tells PostgreSQL its type.
    values["version"] = "CAST(? AS BIGINT)"
    inner = select.format(", ".join(f"{values[c]} AS {c}" for c in columns))
    return (f"INSERT INTO {table} ({', '.join(columns)}, person)"
            f" SELECT {', '.join(f'x.{c}' for c in columns)}, COALESCE(g.person, x.customer_id)"
            f" FROM ({inner}) x LEFT JOIN {groups} g"
            " ON g.customer_id = x.customer_id AND g.tenant = x.tenant")


def select_statement(backend: SqlBackend, columns: Sequence[str]) -> str:
    """`SELECT` of the rows `load_statement` would insert, for a store in another database to
    copy in (`mot verify` rebuilds into a scratch store). Parameters: version, after, upto,
    as_of."""
    values = _values(backend)
    return (f"SELECT {', '.join(values[c] for c in columns)}"
            f" FROM {backend.json_documents(_current_events(backend))}")


def plain_statement(backend: SqlBackend, table: str, columns: Sequence[str]) -> str:
    """`CREATE TEMPORARY TABLE table AS SELECT` of the rows `load_statement` would insert,
    and then the sealed box of each (`sealed_k`, `sealed_v`: its key id and text, NULL when
    not sealed) and its row's number (`sealed_n`, what its opened box is joined by), for a
    ledger whose personal fields are sealed where the database cannot open them
    (PostgreSQL): Python reads the boxes alone back out and opens them, and
    `joined_statement` loads the rows. Parameters: version, after, upto, as_of."""
    values = _values(backend)
    values["version"] = "CAST(? AS BIGINT)"  # nothing else tells PostgreSQL its type
    box = [backend.json_value(("moment", "sealed", "k"), "text"),
           backend.json_value(("moment", "sealed", "v"), "text")]
    return (f"CREATE TEMPORARY TABLE {table} AS SELECT"
            f" {', '.join(f'{values[c]} AS {c}' for c in columns)},"
            f" {box[0]} AS sealed_k, {box[1]} AS sealed_v, row_number() OVER () AS sealed_n"
            f" FROM {backend.json_documents(_current_events(backend))}")


def joined_statement(backend: SqlBackend, table: str, columns: Sequence[str], plain: str,
                     opened: str, groups: str | None = None) -> str:
    """`INSERT INTO table (columns) SELECT` of the rows of `plain` (`plain_statement`), each
    personal field taken from its moment's opened box in `opened` (n: the row's `sealed_n`;
    p: the box's JSON, its fields under "m"), an unsealed event's from its own row; with
    `groups`, each also with its `person` (as `load_statement`). No parameters."""
    from mot.adapters.stores.sealing import box_field

    values = {c: f"x.{c}" for c in columns}
    for f in MOMENT_FIELDS:
        name = box_field(f.at)
        if name is not None and f.name in values:
            values[f.name] = f"COALESCE({backend.json_value(('m', name), f.type, 'o.p')}, x.{f.name})"
    source = f" FROM {plain} x LEFT JOIN {opened} o ON o.n = x.sealed_n"
    if groups is None:
        return (f"INSERT INTO {table} ({', '.join(columns)})"
                f" SELECT {', '.join(values[c] for c in columns)}{source}")
    customer = values["customer_id"]
    return (f"INSERT INTO {table} ({', '.join(columns)}, person)"
            f" SELECT {', '.join(values[c] for c in columns)}, COALESCE(g.person, {customer})"
            f"{source} LEFT JOIN {groups} g ON g.customer_id = {customer} AND g.tenant = x.tenant")


def sealed_statement(backend: SqlBackend, columns: Sequence[str]) -> str:
    """`SELECT` of the rows `load_statement` would insert, and then the sealed box of each
    (its key id and text, NULL when not sealed), for a ledger whose personal fields are
    sealed (adapters/stores/sealing.py): the database takes out every other field; the
    personal ones (absent from the JSON, so NULL) are opened in Python and put in place.
    Parameters: version, after, upto, as_of."""
    values = _values(backend)
    box = [backend.json_value(("moment", "sealed", "k"), "text"),
           backend.json_value(("moment", "sealed", "v"), "text")]
    return (f"SELECT {', '.join([*(values[c] for c in columns), *box])}"
            f" FROM {backend.json_documents(_current_events(backend))}")


def _current_events(backend: SqlBackend) -> str:
    position = backend.position_column
    return (
        f"stored_events e WHERE e.{position} > ? AND e.{position} <= ?"
        # A moment's recording or amendment: not a retraction, nor a pair's link or unlink.
        f" AND e.topic IN ('{RECORDED}', '{AMENDED}') AND NOT EXISTS (SELECT 1 FROM stored_events later"
        " WHERE later.originator_id = e.originator_id"
        f" AND later.originator_version > e.originator_version AND later.{position} <= ?"
        # Implied by the line above; said so the corrections index (ledger.py) is used.
        " AND later.originator_version > 1)"
    )


def _values(backend: SqlBackend) -> dict[str, str]:
    """Each column's expression over the event's JSON document `s`, in the backend's dialect."""
    values = {"version": "?"}
    for f in MOMENT_FIELDS:
        if f.micros_of:
            values[f.name] = backend.json_micros(("moment", f.micros_of))
        else:
            values[f.name] = backend.json_value(("moment", *f.at), f.type)
    return values
