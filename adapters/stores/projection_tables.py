"""Projection tables on SQL: plain, documented tables an analyst can query with sqlite3 or psql.

`SqlProjectionStore` implements `mot.projections.ports.ProjectionStore`: the
engine opens a session (one write transaction holding the projection lock),
reads and writes rows through it, and saves its position in the same
transaction, so a page is applied exactly once. A rebuild writes to the same
tables under a `__rebuild` suffix and `swap` renames them in one transaction.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import orjson

from mot.adapters.stores.alert_outbox import COLUMNS as ALERT_COLUMNS
from mot.adapters.stores.alert_outbox import alert_rows, create_alert_tables
from mot.adapters.stores.analyst_views import create_views, drop_views
from mot.adapters.stores.moment_load import load_statement, select_statement
from mot.adapters.stores.sql import SqlBackend, Tx, chunks
from mot.adapters.stores.topics import ERASED
from mot.adapters.stores.views import read_view
from mot.domain.erasure import is_erased_customer
from mot.domain.timefmt import micros_to_text
from mot.projections.model import Current, CustomerKey, MomentKey
from mot.projections.persons import Member
from mot.projections.ports import (
    LIVE,
    REBUILD,
    Cascade,
    Checkpoint,
    ErasedDuringRebuild,
    Pair,
    Precedence,
    ProjectionState,
    RebuildPhase,
    StagedRange,
    ViewRead,
)
from mot.projections.schema import (
    AMPLIFICATIONS,
    AMPLIFYING_REPLY,
    LISTENING,
    MOMENT_FIELDS,
    MOMENT_INDEXES,
    PERSONS,
    PROJECTIONS,
    RECIPROCITY,
    RELATIONSHIPS,
    RESPONSES,
    TEAMS,
    TRANSITIONS,
    VERSION,
    Index,
    Projection,
    row_maker,
    value_maker,
)

Opener = Callable[[Tx, list[tuple[str, str, str, str]]], list[str]]
"""The opened JSON text of sealed moments' boxes (their personal fields under "m"), from
their (tenant, moment id, key id, box)."""
Unsealer = Callable[[], AbstractContextManager[str | None]]
"""The name of an SQL function that opens sealed moments' boxes in this thread's statements
while the context lasts; None when the database cannot (`Sealing.in_database`)."""

if TYPE_CHECKING:
    from mot.projections.alerts import Alert
    from mot.projections.amplification import Amplification
    from mot.projections.folding import CustomerProjections
    from mot.projections.relationship import Transition
    from mot.projections.teams import ListeningRow, TeamRow

SQL_TYPES: dict[str, str] = {"text": "{text}", "int": "INTEGER", "bigint": "{bigint}",
                             "real": "{real}", "bool": "INTEGER", "json": "{json}", "list": "{text}"}


def _create_table(columns: Sequence[tuple[str, str, bool]], key: Sequence[str]) -> str:
    """`CREATE TABLE` of (name, type, nullable) columns; `{t}` is the table's name."""
    parts = [f"{name} {SQL_TYPES[type_]}{'' if null else ' NOT NULL'}"
             for name, type_, null in columns]
    if key:
        parts.append(f"PRIMARY KEY ({', '.join(key)})")
    return f"CREATE TABLE IF NOT EXISTS {{t}} ({', '.join(parts)})"


def _create_index(index: Index) -> str:
    """`CREATE INDEX` of a declared index; `{i}` is its names' prefix, `{t}` its table."""
    where = " AND ".join([*([f"{index.columns[0]} IS NOT NULL"] if index.partial else []),
                          *([index.where] if index.where else [])])
    where = f" WHERE {where}" if where else ""
    return (f"CREATE {'UNIQUE ' if index.unique else ''}INDEX IF NOT EXISTS {{i}}_{index.role}"
            f" ON {{t}} ({', '.join(index.columns)}){where}")


MOMENT_ROW = (*(f.name for f in MOMENT_FIELDS), "version")
"""The current-moments table's columns from the moment, in order (then `person`)."""
MOMENT_TABLE_ROW = (*MOMENT_ROW, "person")
"""Every column of the current-moments table: `person` is the group of its customer id."""

# Table name -> DDL, from the declarations (mot.projections.schema). `{t}` is the table
# name (with the rebuild suffix when building).
TABLES: dict[str, str] = {
    "moments": _create_table([*((f.name, f.type, f.null) for f in MOMENT_FIELDS),
                              ("version", "bigint", False), ("person", "text", False)], ()),
    **{p.name: _create_table([(f.col, f.type, f.null) for f in p.stored], p.key)
       for p in PROJECTIONS.values()},
    "tombstones": """CREATE TABLE IF NOT EXISTS {t} (
        projection {text} NOT NULL, row_key {text} NOT NULL, version {bigint} NOT NULL,
        PRIMARY KEY (projection, row_key))""",
    # Each share whose chain leads up to an amplification moment: that moment (its root),
    # and the share's reach. A post's cascade is one indexed sum of its shares' rows, and
    # a share appended to a chain takes its parent's root: no walk along the chain.
    "share_roots": """CREATE TABLE IF NOT EXISTS {t} (
        tenant {text} NOT NULL, moment_id {text} NOT NULL, root {text} NOT NULL,
        reach {bigint} NOT NULL, PRIMARY KEY (tenant, moment_id))""",
    # Each pair's latest evidence (SPEC §2, links): its precedence, (occurred_us, 1 for an
    # unlink); the pair is linked when `unlink` is 0.
    "links": """CREATE TABLE IF NOT EXISTS {t} (
        tenant {text} NOT NULL, low {text} NOT NULL, high {text} NOT NULL,
        occurred_us {bigint} NOT NULL, unlink INTEGER NOT NULL,
        PRIMARY KEY (tenant, low, high))""",
    # Each id of a linked person: its group (the person's smallest id) and how many ids it
    # is linked to. An id in no linked pair is its own group and has no row.
    "members": """CREATE TABLE IF NOT EXISTS {t} (
        customer_id {text} NOT NULL, tenant {text} NOT NULL, person {text} NOT NULL,
        degree INTEGER NOT NULL, PRIMARY KEY (customer_id, tenant))""",
}

# Table name -> its secondary indexes. `{i}` is the index names' prefix: the table's
# name for tables created live, `{table}_{tag}` for a rebuild's (see `index_rebuild`).
INDEXES: dict[str, list[str]] = {
    "moments": [_create_index(index) for index in MOMENT_INDEXES],
    **{p.name: [_create_index(index) for index in p.indexes] for p in PROJECTIONS.values()},
    "tombstones": ["CREATE INDEX IF NOT EXISTS {i}_version ON {t} (version)"],
    "share_roots": ["CREATE INDEX IF NOT EXISTS {i}_root ON {t} (root, tenant, reach)"],
    "links": ["CREATE INDEX IF NOT EXISTS {i}_high ON {t} (tenant, high)"],
    "members": ["CREATE INDEX IF NOT EXISTS {i}_person ON {t} (person, tenant)"],
}

_INDEXED: dict[str, tuple[int, ...]] = {
    p.name: tuple(i for i, c in enumerate(p.columns) if c != "version" and c not in p.key
                  and any(c in index.columns for index in p.indexes))
    for p in PROJECTIONS.values()
}
"""Of each projection's columns (but its key and version, which an update sets always or
never), where those its secondary indexes hold are (`SqlSession._update`)."""

ROOM_EVERY = 16
"""About one entry in this many of a moment index declared with `room` is left free in its
leaves when a rebuild builds it on SQLite (`SqlProjectionStore._index_with_room`)."""

_STAND_IN: dict[str, str] = {
    **{f.name: "NULL" if f.null else ("0" if f.type in ("int", "bigint", "real") else "''")
       for f in MOMENT_FIELDS},
    "moment_id": "lower(hex(randomblob(16)))", "version": "0", "person": "''",
}
"""What a stand-in row of `_index_with_room` holds: a random id of 32 hex digits, spread over
the index as moment ids (UUIDs, hex digits and dashes) are and never one of them; the least
every other column."""

SHARE_ROOT_COLUMNS = ("tenant", "moment_id", "root", "reach")

# Schema 5 keeps share roots: a store projected before fills them from its current moments,
# walking down from every amplification moment (a share has one parent, so the walk ends).
FILL_SHARE_ROOTS = """WITH RECURSIVE tree (tenant, moment_id, root, reach) AS (
    SELECT s.tenant, s.moment_id, p.moment_id, s.reach FROM moments p JOIN moments s
        ON s.shares = p.moment_id AND s.tenant = p.tenant AND s.kind = 'share'
    WHERE p.direction = 'public' AND p.kind IN ('post', 'review', 'mention')
    UNION
    SELECT s.tenant, s.moment_id, tree.root, s.reach FROM tree JOIN moments s
        ON s.shares = tree.moment_id AND s.tenant = tree.tenant AND s.kind = 'share'
) INSERT INTO share_roots (tenant, moment_id, root, reach)
SELECT tenant, moment_id, root, reach FROM tree"""

STATE_DDL = """CREATE TABLE IF NOT EXISTS projection_state (
    name TEXT PRIMARY KEY, position {bigint} NOT NULL, phase TEXT NOT NULL,
    cursor_tenant TEXT, cursor_customer TEXT, target {bigint}, updated_at TEXT NOT NULL)"""

MOMENT_COLUMNS = ", ".join(f.name for f in MOMENT_FIELDS if f.folded)
"""What the folds read of a current moment: `Current`'s fields, in order."""

REBUILD_SUFFIX = REBUILD.removeprefix(LIVE)
SWAPPED = "__swapped"
"""The suffix of a split live table a rebuild's swap replaced, until it is dropped."""


_UNFOLDED = [(f.at, f.type == "json") for f in MOMENT_FIELDS if not f.folded]


def _unfolded(doc: dict[str, Any]) -> list[Any]:
    """The moment's fields the folds do not read, as the moments table keeps them."""
    values: list[Any] = []
    for path, json in _UNFOLDED:
        value: Any = doc
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        values.append(orjson.dumps(value).decode() if json and value is not None else value)
    return values


def _moment_rows(rows: Sequence[tuple[Current, dict[str, Any], int]],
                 groups: Mapping[CustomerKey, str]) -> list[tuple[Any, ...]]:
    return [(*current, *_unfolded(doc), version,
             groups.get((current.tenant, current.customer_id), current.customer_id))
            for current, doc, version in rows]


# A stage holds the moments' own columns; `load_staged` adds each one's group.
_STAGE_DDL = _create_table([*((f.name, f.type, f.null) for f in MOMENT_FIELDS),
                            ("version", "bigint", False)], ())

_PERSONAL_COLUMNS = [(MOMENT_ROW.index(name), name) for name in
                     ("customer_id", "actor", "url", "source_id", "attributes")]
_MOMENT_ID, _TENANT = MOMENT_ROW.index("moment_id"), MOMENT_ROW.index("tenant")


# Ledger positions whose sealed moments are read and opened in Python at once, when the
# database cannot open them itself (PostgreSQL; SQLite past keystore.CACHED_KEYS keys): a
# rebuild's range of 100,000 positions read whole held ~2.5 kB a moment in each worker.
OPENED_POSITIONS = 10_000


def _keep_keys() -> None:
    """A store that seals nothing keeps no data keys to drop."""


def _load_opened(backend: SqlBackend, tx: Tx, opener: Opener, forget_keys: Callable[[], None],
                 table: str, groups: str | None, after: int, upto: int, as_of: int) -> int:
    """Load into `table` what `load_statement` would (with `groups`, as it does), where the
    database cannot open the sealed boxes itself (PostgreSQL; SQLite past the keystore's
    cache): the database takes the rows' plain fields out into a temporary table; only the
    boxes are read out, opened here OPENED_POSITIONS at a time and copied, as their opened
    JSON, into a second one; one statement joins the two into `table`. The moments' rows
    never pass through Python: reading them out, rebuilding them and copying them back was
    most of a sealed rebuild's extra CPU on PostgreSQL (bench/NOTES.md). The data keys are
    dropped after each part (it has mostly other customers: keys kept would grow with the
    ledger's, up to the keystore's cache). Both tables are dropped in this transaction (a
    rollback drops them too)."""
    from mot.adapters.stores.moment_load import joined_statement, plain_statement

    tag = os.urandom(6).hex()
    plain, opened = f"mot_plain_{tag}", f"mot_opened_{tag}"
    tx.execute(plain_statement(backend, plain, MOMENT_ROW), (as_of, after, upto, as_of))
    tx.execute(backend.ddl(f"CREATE TEMPORARY TABLE {opened} (n {{bigint}} NOT NULL,"
                           " p {json} NOT NULL)"))
    for part in backend.stream_rows(
            tx, f"SELECT sealed_n, tenant, moment_id, sealed_k, sealed_v FROM {plain}"
            " WHERE sealed_k IS NOT NULL", (), OPENED_POSITIONS):
        texts = opener(tx, [(str(t), str(m), str(k), str(v)) for _, t, m, k, v in part])
        backend.bulk_insert(tx, opened, ("n", "p"),
                            [(row[0], text) for row, text in zip(part, texts, strict=True)])
        forget_keys()
    backend.scratch_join(tx)
    tx.execute(joined_statement(backend, table, MOMENT_ROW, plain, opened, groups))
    count = int(tx.cursor.rowcount)
    tx.execute(f"DROP TABLE {plain}")
    tx.execute(f"DROP TABLE {opened}")
    return count


def _opened_moment_rows(backend: SqlBackend, tx: Tx, opener: Opener, after: int, upto: int,
                        as_of: int) -> list[tuple[Any, ...]]:
    """The rows `load_statement` would load, from sealed events: the database takes out the
    plain fields, the sealed ones are opened here (adapters/stores/sealing.py)."""
    from mot.adapters.stores.moment_load import sealed_statement

    selected = tx.query(sealed_statement(backend, MOMENT_ROW), (as_of, after, upto, as_of))
    width = len(MOMENT_ROW)
    sealed = [i for i, row in enumerate(selected) if row[width] is not None]
    personal = [orjson.loads(text)["m"] for text in opener(
        tx, [(str(selected[i][_TENANT]), str(selected[i][_MOMENT_ID]),
              str(selected[i][width]), str(selected[i][width + 1])) for i in sealed])]
    rows = [list(row[:width]) for row in selected]
    for i, fields in zip(sealed, personal, strict=True):
        row = rows[i]
        for at, name in _PERSONAL_COLUMNS:
            value = fields.get(name)
            row[at] = orjson.dumps(value).decode() if name == "attributes" and value is not None \
                else value
    return [tuple(row) for row in rows]


BULK_UPSERT_ROWS = 100
"""From this many rows a server store upserts in bulk (`SqlSession._bulk_upsert`): psycopg's
`executemany` sends a statement a row, each a round of the server's work; a merge of two
persons of 10,000 moments rewrites ~8,000 responses rows, a rebuild's range of customers
saves thousands of share roots and raises hundreds of alerts (bench/NOTES.md)."""
_SCRATCHES = itertools.count()

CUSTOMER_TABLES = ("relationships", "reciprocity", "transitions", "amplifications", "responses",
                   "persons")

SPLIT_BY: dict[str, str] = {"moments": "person",
                             **{name: "customer_id" for name in (*CUSTOMER_TABLES, "members")}}
"""The tables a backend may split by a hash of a column naming the person, and that column
(SPEC §6: an erasure's rows lie in one part of each, and the scrub rewrites the parts that
held them, not the tables): the current moments by person group (SPEC §2 links), the
per-customer tables by customer id. A split table's unique keys then carry that column too,
as PostgreSQL requires; an upsert whose key lacks it deletes and inserts
(`SqlSession._upsert`)."""


def _split_index(index: str, column: str) -> str:
    """A unique index of a split table: with the person column last."""
    if not index.startswith("CREATE UNIQUE"):
        return index
    head, _, tail = index.rpartition(")")
    return f"{head}, {column}){tail}"


def _split_key(statement: str, column: str) -> str:
    """A split table's `CREATE TABLE`: its primary key with the person column last."""
    head, found, tail = statement.partition("PRIMARY KEY (")
    if not found:
        return statement
    key, _, rest = tail.partition(")")
    if column in (c.strip() for c in key.split(",")):
        return statement
    return f"{head}{found}{key}, {column}){rest}"


# Domain values to rows and back, from the projections' declarations.
_relationship_row = row_maker(RELATIONSHIPS)
_reciprocity_row = row_maker(RECIPROCITY)
_transition_row = row_maker(TRANSITIONS)
_amplification_row = row_maker(AMPLIFICATIONS)


def _response_row(r: Any, version: int) -> tuple[Any, ...]:
    """A `Response`'s stored row, stamped `version`: `row_maker(RESPONSES)` written out, since a
    rebuild encodes one per request and this makes it in two thirds of the time (a test holds
    the two equal, and RESPONSE_VALUES holds the fields' order to the columns')."""
    (request, tenant, customer, kind, channel, function, occurred, response, response_function,
     responded, seconds) = r
    return (request, tenant, customer, kind, channel, function, micros_to_text(occurred),
            occurred, response, response_function,
            None if responded is None else micros_to_text(responded), responded, seconds, version)


RESPONSE_VALUES = ", ".join(f.col for f in RESPONSES.stored
                            if f.name != "version" and not f.micros_text)
"""The responses columns that hold a `Response`'s fields, in its order: all but the times'
texts (a test holds it to `Response._fields`)."""
_RESPONSE_CUSTOMER = RESPONSE_VALUES.split(", ").index("customer_id")
_team_row = row_maker(TEAMS)
_listening_row = row_maker(LISTENING)


def _sums(projection: Projection) -> str:
    """The counters a per-tenant sum keeps, as its table declares them: the whole-number
    columns but the key and `version` (in `TeamRow`'s and `ListeningRow`'s order; the
    listening share is worked out from its counters)."""
    return ", ".join(f.col for f in projection.stored if f.type in ("int", "bigint")
                     and f.col not in projection.key and f is not VERSION)


_TEAM_SUMS = _sums(TEAMS)
_LISTENING_SUMS = _sums(LISTENING)
_person_row = row_maker(PERSONS)


def _transition_rows(transitions: list[Transition]) -> list[tuple[Any, ...]]:
    return [_transition_row(t, seq) for seq, t in enumerate(transitions)]


@cache
def _amplification_of() -> Callable[[Any], Amplification]:
    # Made on first use: the amplification module is a fold, which queries never load.
    from mot.projections.amplification import Amplification

    return value_maker(AMPLIFICATIONS, Amplification)


def column_names(tx: Tx, table: str) -> list[str]:
    """A table's columns, in order."""
    tx.execute(f"SELECT * FROM {table} WHERE 1 = 0")
    return [str(column[0]) for column in tx.cursor.description]


class SqlProjectionStore:
    """Creates the projection tables and opens sessions on them."""

    opener: Opener | None = None  # see SqlSession.opener
    unsealer: Unsealer | None = None
    forget_keys: Callable[[], None] = staticmethod(_keep_keys)  # see SqlSession.forget_keys

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        # Rebuild tables analyzed by this process since they were indexed (`index_rebuild`),
        # which the swap need not analyze again where statistics follow a rename.
        self._analyzed: set[str] = set()
        if not backend.ready:
            made = self._create_split("")
            with backend.write("projections") as tx:
                tx.execute(backend.ddl(STATE_DDL))
                self._unscoped_to_rebuild(tx)
                self._groupless_to_rebuild(tx)
                def before(name: str) -> bool:  # there before this opening made any
                    return name not in made and backend.table_exists(tx, name)

                older = before("moments")
                rootless = older and not before("share_roots")
                unanswered = older and not before("responses")
                self._create(tx, "")
                self._upgrade(tx, rootless)
                if unanswered:
                    self._fill_responses(tx)
                create_views(backend, tx)
                create_alert_tables(backend, tx)

    def _unscoped_to_rebuild(self, tx: Tx) -> None:
        """Schema 8 keys current moments and amplifications by (tenant, id), as the ledger
        keys streams since schema 7. Projections are derived: tables made before are dropped
        here, and the next `mot project` builds them anew from the ledger."""
        if not self.backend.table_exists(tx, "moments"):
            return
        if any(name.endswith("_key") for name in self.backend.index_names(tx, ["moments"])):
            return
        if not self.backend.index_names(tx, ["moments"]):
            return  # a store whose tables were made but never indexed holds no moments yet
        self._drop_projections(tx)

    def _groupless_to_rebuild(self, tx: Tx) -> None:
        """Schema 13 keeps current moments by person group and folds per person (SPEC §2,
        links). Projections are derived: tables made before are dropped here, as for schema
        8, and the next `mot project` (or, faster, `mot replay`) builds them anew."""
        if not self.backend.table_exists(tx, "moments") or "person" in column_names(tx, "moments"):
            return
        self._drop_projections(tx)

    def _drop_projections(self, tx: Tx) -> None:
        """Every projection table, live and rebuilding, and their positions: an upgrade whose
        tables the projections cannot be carried into leaves the next `mot project` (or
        `mot replay`) to build them anew from the ledger."""
        drop_views(tx)
        self.backend.drop_derived_tables(
            tx, [name + suffix for name in TABLES for suffix in ("", REBUILD_SUFFIX, SWAPPED)])
        tx.execute("DELETE FROM projection_state")

    def _upgrade(self, tx: Tx, rootless: bool) -> None:
        """Bring tables made by an earlier schema version to this one."""
        if rootless:
            tx.execute(FILL_SHARE_ROOTS)
            # An unfinished rebuild has no share roots: the next replay starts it anew.
            tx.execute("DELETE FROM projection_state WHERE name = ?", (REBUILD,))
        # Schema 3: the moments table no longer keeps each moment's JSON (`doc`); the
        # ledger holds it. (SQLite rewrites the table here, once.)
        # Schema 4: it carries every field of the moment (value, currency, url, source,
        # attributes); rows loaded before have them empty until `mot replay`.
        for table in ("moments", f"moments{REBUILD_SUFFIX}"):
            if not self.backend.table_exists(tx, table):
                continue
            have = column_names(tx, table)
            if "doc" in have:
                tx.execute(f"ALTER TABLE {table} DROP COLUMN doc")
            for f in MOMENT_FIELDS:
                if f.name not in have:
                    tx.execute(self.backend.ddl(
                        f"ALTER TABLE {table} ADD COLUMN {f.name} {SQL_TYPES[f.type]}"))
            self._amplifying_replies(tx, table)

    def _amplifying_replies(self, tx: Tx, table: str) -> None:
        """Schema 16: the index of replies holds only the amplification moments' (`_amplifying`,
        AMPLIFYING_REPLY) in place of every reply's (`_reply`). The live table got it from
        `_create`; an indexed rebuild table gets it here, under its old index's names' prefix,
        so a resumed rebuild keeps its indexes."""
        names = self.backend.index_names(tx, [table])
        for old in (name for name in names if name.endswith("_reply")):
            tx.execute(f"DROP INDEX {old}")
            if not any(name.endswith("_amplifying") for name in names):
                statement = next(i for i in INDEXES["moments"] if "{i}_amplifying " in i)
                tx.execute(statement.replace("{i}", old.removesuffix("_reply"))
                           .replace("{t}", table))

    def _fill_responses(self, tx: Tx) -> None:
        """Schema 9 keeps responses (SPEC §3.5): a store projected before folds the requests of
        its current moments once, here, stamped with the position they were projected to (only
        the customers with a request are read). An unfinished rebuild has no responses table:
        the next replay starts it anew."""
        from mot.projections.responses import REQUEST_KINDS, fold_responses

        tx.execute("DELETE FROM projection_state WHERE name = ?", (REBUILD,))
        position = int(tx.scalar("SELECT position FROM projection_state WHERE name = ?",
                                 (LIVE,)) or 0)
        kinds = sorted(REQUEST_KINDS)
        keys = [(str(t), str(c)) for t, c in tx.query(
            "SELECT DISTINCT tenant, customer_id FROM moments WHERE direction = 'inbound'"
            f" AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY tenant, customer_id", kinds)]
        session = SqlSession(self.backend, tx, LIVE, "")
        for some in chunks(keys, 1000):
            moments = session.customer_moments(some)
            session._insert("responses", RESPONSES.columns, [
                _response_row(r, position)
                for (_, customer), ms in moments.items() for r in fold_responses(ms, customer)])

    def _create(self, tx: Tx, suffix: str, *, indexes: bool = True,
                tables: Collection[str] = tuple(TABLES)) -> None:
        for name in tables:
            statement = self.backend.ddl(TABLES[name].replace("{t}", name + suffix))
            if name in SPLIT_BY and self.backend.partitions:
                self.backend.create_by_person(tx, name + suffix,
                                              _split_key(statement, SPLIT_BY[name]), SPLIT_BY[name])
            else:
                tx.execute(statement)
        if indexes:
            self._index(tx, suffix, tables=tables)

    def _create_split(self, suffix: str, *, indexes: bool = True) -> set[str]:
        """Make the tables split by person (`create_by_person`) that are not there, each in
        a transaction of its own; the tables made. A split table is `partitions` parts, each
        with its indexes and TOAST table, every one locked by the transaction that makes it:
        the eight made in one held 1,586 locks at 16 parts, of a shared lock table of
        max_locks_per_transaction x max_connections (6,400 on a default server), which a
        few stores made at once could exhaust (bench/NOTES.md)."""
        made: set[str] = set()
        if not self.backend.partitions:
            return made
        for name in SPLIT_BY:
            with self.backend.write("projections") as tx:
                if not self.backend.table_exists(tx, name + suffix):
                    self._create(tx, suffix, indexes=indexes, tables=(name,))
                    made.add(name)
        return made

    def _drop_alone(self, names: Iterable[str]) -> None:
        """Drop these tables a transaction each: a split table's drop locks every part and
        index of it (`_create_split`)."""
        for name in names:
            with self.backend.write("projections") as tx:
                self.backend.drop_derived_tables(tx, [name])

    def _index(self, tx: Tx, suffix: str, tag: str = "",
               tables: Collection[str] = tuple(TABLES)) -> None:
        for name in tables:
            prefix = f"{name}_{tag}" if tag else name + suffix
            # An index whose role (`_fold`, `_id`, ...) a table already has, under a
            # rebuild's tagged name, is not made twice when a store's schema is upgraded.
            existing = self.backend.index_names(tx, [name + suffix])
            split = name in SPLIT_BY and self.backend.is_split(tx, name + suffix)
            for index in INDEXES[name]:
                role = index.split("{i}", 1)[1].split(" ", 1)[0]
                if not any(have.endswith(role) for have in existing):
                    if split:
                        index = _split_index(index, SPLIT_BY[name])
                    tx.execute(index.replace("{i}", prefix).replace("{t}", name + suffix))

    def _index_with_room(self, tx: Tx, prefix: str) -> None:
        """Build the rebuild's moment indexes declared with `room` with a free slot in every
        ROOM_EVERY of their leaves' entries, as a fillfactor would (SQLite has none).

        CREATE INDEX packs every leaf full, and a moment id is a hash: each new moment of
        the first catch-up after a rebuild split a leaf of its own, 2.6 pages written an
        insertion at 1,000,000 moments (bench/scaling_notes.toml, catch-up). Built before
        the load instead, the index cost a rebuild a sixth more CPU (every range's commit
        wrote most of its leaves again). So: stand-in rows, one for every ROOM_EVERY
        moments, with random ids (`_STAND_IN`), the index built, the stand-ins deleted, in
        one transaction; SQLite leaves a leaf as it is while it stays a third full.
        """
        table = f"moments{REBUILD_SUFFIX}"
        existing = self.backend.index_names(tx, [table])
        wanted = [index for index in MOMENT_INDEXES if index.room
                  and not any(have.endswith(f"_{index.role}") for have in existing)]
        last = tx.scalar(f"SELECT MAX(rowid) FROM {table}")
        if not wanted or last is None:
            return
        tx.execute(f"WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                   f" INSERT INTO {table} ({', '.join(MOMENT_TABLE_ROW)})"
                   f" SELECT {', '.join(_STAND_IN[c] for c in MOMENT_TABLE_ROW)} FROM n",
                   (max(1, int(last) // ROOM_EVERY),))
        for index in wanted:
            tx.execute(_create_index(index).replace("{i}", prefix).replace("{t}", table))
        tx.execute(f"DELETE FROM {table} WHERE rowid > ?", (last,))

    def index_rebuild(self, tables: Literal["moments", "folded"]) -> None:
        """Build secondary indexes of rebuild tables once their bulk of rows is in: the
        moments table's, or those of the tables the fold filled.

        Sorting a million keys once is several times faster than keeping the
        indexes up to date row by row while the rows go in. The indexes get
        names of their own (SQLite cannot rename an index), which they keep when
        `swap` renames the tables: the swap then builds no index again.
        """
        # The persons' members are read by group during the fold: indexed with the moments.
        read_by_fold = ("moments", "members", "links")
        names = (list(read_by_fold) if tables == "moments"
                 else [t for t in TABLES if t not in read_by_fold])
        tag = f"g{os.urandom(4).hex()}"
        for name in names:  # a table a transaction (`_create_split`); a resumed rebuild's
            with self.backend.write("projections") as tx:  # indexes made before are kept
                if name == "moments" and self.backend.packed_builds:
                    self._index_with_room(tx, f"{name}_{tag}")
                self._index(tx, REBUILD_SUFFIX, tag=tag, tables=(name,))
        if tables == "moments":
            self.backend.analyze([f"moments{REBUILD_SUFFIX}", f"members{REBUILD_SUFFIX}"])
            self._analyzed = {"moments", "members"}

    @contextmanager
    def session(self, name: str = LIVE) -> Iterator[SqlSession]:
        """A write transaction on the live tables (or the rebuild tables for REBUILD)."""
        suffix = REBUILD_SUFFIX if name == REBUILD else ""
        with self.backend.write("projections") as tx:
            session = SqlSession(self.backend, tx, name, suffix, walk=False)
            session.opener, session.unsealer = self.opener, self.unsealer
            session.forget_keys = self.forget_keys
            yield session

    def start_rebuild(self, target: int, now: str) -> None:
        """Fresh rebuild tables; any earlier unfinished rebuild is discarded."""
        self._analyzed = set()
        # Split tables a swap left (`SWAPPED`), whatever the layout since (a replay that made
        # them whole, MOT_PG_SPLIT_MOMENTS=0, and stopped before dropping the old ones).
        self._drop_alone([name + SWAPPED for name in SPLIT_BY])
        apart: list[str] = []  # tables that are or may be split: dropped and made alone
        if self.backend.split_tables:
            apart = list(SPLIT_BY)
            with self.backend.write("projections") as tx:
                tx.execute("DELETE FROM projection_state WHERE name = ?", (REBUILD,))
            self._drop_alone([name + REBUILD_SUFFIX for name in apart])
            self._create_split(REBUILD_SUFFIX, indexes=False)
        with self.backend.write("projections") as tx:
            self.backend.drop_derived_tables(tx, [name + REBUILD_SUFFIX for name in TABLES
                                                  if name not in apart or not self.backend.partitions])
            self._create(tx, REBUILD_SUFFIX, indexes=False)
            tx.execute("DELETE FROM projection_state WHERE name = ?", (REBUILD,))
            tx.execute(
                "INSERT INTO projection_state (name, position, phase, target, updated_at)"
                " VALUES (?, 0, 'moments', ?, ?)", (REBUILD, target, now),
            )

    def rebuild_lock(self, waiting: Callable[[], None] | None = None
                     ) -> AbstractContextManager[None]:
        """Held for a whole rebuild, so that one process rebuilds at a time."""
        return self.backend.process_lock("rebuild", waiting)

    @property
    def staging(self) -> SqlProjectionStore:
        """Any process can open the store: its workers stage ranges of the log (below)."""
        return self

    def stage_moments(self, after: int, upto: int, as_of: int) -> StagedRange:
        """What `load_moments(after, upto, as_of)` copies in, extracted into a stage of its own
        (any process may do this while the rebuild writes); `load_staged` copies it in."""
        backend = self.backend
        params = (as_of, after, upto, as_of)

        def loaded(statement: Callable[[str], str]) -> Callable[[Tx, str], int]:
            def fill(tx: Tx, table: str) -> int:
                tx.execute(statement(table), params)
                return int(tx.cursor.rowcount)
            return fill

        opener, forget_keys = self.opener, self.forget_keys
        if opener is not None:
            # Sealed personal fields: opened by the database's own statement where it can
            # call Python (SQLite), else here, in Python, a part of the range at a time.
            with nullcontext() if self.unsealer is None else self.unsealer() as function:
                if function is not None:
                    return self._stage(loaded(
                        lambda table: load_statement(backend, table, MOMENT_ROW, unseal=function)))

            def opened(tx: Tx, table: str) -> int:
                return _load_opened(backend, tx, opener, forget_keys, table, None, after, upto,
                                    as_of)
            return self._stage(opened)
        return self._stage(loaded(lambda table: load_statement(backend, table, MOMENT_ROW)))

    def _stage(self, fill: Callable[[Tx, str], int]) -> StagedRange:
        """A new stage of moment rows, filled by `fill(tx, table)` (see `SqlBackend.fill_stage`)."""
        backend = self.backend
        return StagedRange(*backend.fill_stage(
            lambda table: backend.ddl(_STAGE_DDL.replace("{t}", table)), fill))

    def moment_rows(self, after: int, upto: int, as_of: int, *, tenant: str | None = None
                    ) -> list[tuple[Any, ...]]:
        """The rows `load_moments(after, upto, as_of)` copies in (only `tenant`'s when given),
        read out of the ledger (sealed fields opened), for a stage (`stage_rows`) in this
        store or in another one: `mot verify` rebuilds into a scratch store."""
        with self.backend.read() as tx:
            if self.opener is not None:
                rows = _opened_moment_rows(self.backend, tx, self.opener, after, upto, as_of)
            else:
                rows = [tuple(row) for row in tx.query(select_statement(self.backend, MOMENT_ROW),
                                                       (as_of, after, upto, as_of))]
        return rows if tenant is None else [row for row in rows if row[_TENANT] == tenant]

    def stage_rows(self, rows: Sequence[tuple[Any, ...]]) -> StagedRange:
        """A stage holding these moment rows (`moment_rows`, of this store or another)."""
        def fill(tx: Tx, table: str) -> int:
            if rows:
                self.backend.bulk_insert(tx, table, MOMENT_ROW, rows)
            return len(rows)
        return self._stage(fill)

    @contextmanager
    def staged_session(self, stage: StagedRange) -> Iterator[SqlSession]:
        """A write transaction on the rebuild tables that can `load_staged(stage)`; the stage
        is dropped once it ends."""
        with self.backend.reading_stage(stage.name) as table, self.session(REBUILD) as session:
            session.stages[stage.name] = table
            yield session

    def drop_stages(self) -> None:
        """Drop the stages a stopped rebuild left."""
        self.backend.drop_stages()

    def swap(self, now: str) -> None:
        """Put the rebuilt tables in place of the live ones, in one transaction; unless an
        erasure came after the rebuild began (ErasedDuringRebuild)."""
        with self.backend.write("projections") as tx:
            rows = tx.query("SELECT position, target FROM projection_state WHERE name = ?",
                            (REBUILD,))
            position, target = rows[0] if rows else (None, None)
            # An erasure updates the rebuild's tables too, but not what a rebuild read before
            # it and writes after it (a stage extracted ahead, a range folded): its event
            # after the rebuild's target says one may have. The rebuild's tables go, zeroed
            # (SQLite) as an erasure's deletions are, and the rebuild starts again.
            if target is not None and tx.query(
                    f"SELECT 1 FROM stored_events WHERE {self.backend.position_column} > ?"
                    " AND topic = ? LIMIT 1", (int(target), ERASED)):
                self.backend.erasing(tx)
                for name in TABLES:
                    tx.execute(f"DROP TABLE IF EXISTS {name}{REBUILD_SUFFIX}")
                tx.execute("DELETE FROM projection_state WHERE name = ?", (REBUILD,))
                discarded = True
            else:
                discarded = False
                self._swap(tx, position, now)
        if discarded:
            self.backend.scrub([])  # the dropped tables' pages out of the files and the WAL
            raise ErasedDuringRebuild("an erasure came during the rebuild: it starts again")
        self._drop_alone([name + SWAPPED for name in SPLIT_BY if self.backend.split_tables])
        # Fresh tables have no planner statistics yet (and autovacuum may be off). Those
        # analyzed once indexed keep theirs on PostgreSQL: analyzing the current moments again
        # costs the server a sample of the whole table (of each part, split) for the few rows
        # the fold's catch-up added since (bench/NOTES.md, "A rebuild's statistics").
        done = self._analyzed if self.backend.statistics_follow_rename else set()
        self._analyzed = set()
        self.backend.analyze([t for t in TABLES if t not in done])

    def _swap(self, tx: Tx, position: Any, now: str) -> None:
        """`swap`'s renames, inside its transaction."""
        drop_views(tx)  # they depend on the tables replaced here
        # Split tables are renamed out of the way, and dropped once this is committed, a
        # table a transaction (`_create_split`): dropped here, every part and index of the
        # live tables was locked at once (1,357 locks at 16 parts). One left by a stop in
        # between goes with the next rebuild's start; an erasure meanwhile erases it too.
        apart = list(SPLIT_BY) if self.backend.split_tables else []
        self.backend.drop_derived_tables(tx, [name for name in TABLES if name not in apart])
        for name in apart:
            tx.execute(f"ALTER TABLE IF EXISTS {name} RENAME TO {name}{SWAPPED}")
        for name in TABLES:
            tx.execute(f"ALTER TABLE {name}{REBUILD_SUFFIX} RENAME TO {name}")
        create_views(self.backend, tx)
        tx.execute("DELETE FROM projection_state WHERE name IN (?, ?)", (LIVE, REBUILD))
        tx.execute(
            "INSERT INTO projection_state (name, position, phase, updated_at)"
            " VALUES (?, ?, 'live', ?)", (LIVE, position or 0, now),
        )

    @contextmanager
    def reader(self, as_of_us: int | None = None, *, name: str = LIVE) -> Iterator[SqlSession]:
        """A read transaction on the live tables (or the rebuild tables for REBUILD),
        optionally seeing only moments up to a time."""
        with self.backend.read() as tx:
            yield SqlSession(self.backend, tx, name, REBUILD_SUFFIX if name == REBUILD else "",
                             as_of_us)

    def read_view(self, read: ViewRead) -> list[dict[str, Any]]:
        """The live rows of a projection, named as its output names them."""
        return read_view(self.backend, read)

    def one_read(self) -> AbstractContextManager[None]:
        """The reads within the block in one read transaction (`SqlBackend.one_read`)."""
        return self.backend.one_read()

    def persons_of(self, customer: str, tenant: str | None = None
                   ) -> list[tuple[CustomerKey, str]]:
        """The persons an id belongs to: its group where it is linked, else itself, and the
        person row of that group."""
        by_tenant = "" if tenant is None else " AND tenant = ?"
        extra: tuple[str, ...] = () if tenant is None else (tenant,)
        with self.backend.read() as tx:
            if not self.backend.known_table(tx, "persons"):
                return []
            # In a tenant where the id is in no linked pair it is its own group, and that
            # group's person row is keyed by the id itself: naming the id as customer_id lets
            # a store split by customer id read one part, where the group id alone is looked
            # for in every part (bench/NOTES.md, the relationships query at 1M). Its links
            # (members) and that row in one statement: one round trip to the server.
            found = tx.query("SELECT 0, tenant, person, NULL FROM members WHERE customer_id = ?"
                             + by_tenant + " UNION ALL SELECT 1, tenant, customer_id, group_id"
                             " FROM persons WHERE customer_id = ? AND group_id = ?" + by_tenant,
                             (customer, *extra, customer, customer, *extra))
            linked = {tenant: person for member, tenant, person, _ in found if member == 0}
            rows = [(t, c, g) for member, t, c, g in found if member == 1]
            if linked:
                wanted = sorted(set(linked.values()))
                rows += tx.query(
                    f"SELECT tenant, customer_id, group_id FROM persons WHERE group_id"
                    f" {self.backend.in_list(len(wanted))}{by_tenant}",
                    (*self.backend.in_params(wanted), *extra))
        return sorted({((str(t), str(c)), str(g)) for t, c, g in rows
                       if g == linked.get(t, customer)})

    def progress_time(self, name: str = LIVE) -> str | None:
        with self.backend.read() as tx:
            if not self.backend.table_exists(tx, "projection_state"):
                return None
            value = tx.scalar("SELECT updated_at FROM projection_state WHERE name = ?", (name,))
        return None if value is None else str(value)

    def state(self, name: str = LIVE) -> ProjectionState | None:
        """A projection run's position, phase and target, or None before its first page."""
        with self.backend.read() as tx:
            if not self.backend.table_exists(tx, "projection_state"):
                return None
            rows = tx.query(
                "SELECT position, phase, target FROM projection_state WHERE name = ?", (name,)
            )
        if not rows:
            return None
        position, phase, target = rows[0]
        return ProjectionState(int(position), RebuildPhase(phase),
                               None if target is None else int(target))


class SqlSession:
    """One transaction of projection work (implements `ProjectionSession`)."""

    # Opens sealed events' personal fields (adapters/stores/sealing.py) for a rebuild's
    # moment load, when the ledger seals them; set by the store.
    opener: Opener | None = None
    unsealer: Unsealer | None = None
    # Drops the data keys the opener has kept (a rebuild's load opens a range in parts).
    forget_keys: Callable[[], None] = staticmethod(_keep_keys)

    def __init__(self, backend: SqlBackend, tx: Tx, name: str, suffix: str,
                 as_of_us: int | None = None, *, walk: bool = True) -> None:
        self.backend = backend
        # Cascades walked down the share trees (a rebuild's fold, before its share roots are
        # kept; --as-of, whose trees end at that time), or summed from the kept roots.
        self.walk = walk
        self.tx = tx
        self.name = name
        self.s = suffix
        # An as-of reader sees only moments that had occurred by then (SPEC §5, --as-of).
        self.when = "" if as_of_us is None else f" AND occurred_us <= {int(as_of_us)}"
        self.stages: dict[str, str] = {}  # stage -> the name this transaction reads it by

    # -- alerts (the outbox is one table, live and rebuild alike: an alert is raised once)
    def raise_alerts(self, alerts: Sequence[Alert]) -> None:
        # As `insert_alerts` does, in bulk on a server: a rebuild's range raises hundreds.
        self._upsert("alerts", ALERT_COLUMNS, alert_rows(alerts), key=("alert_id",),
                     update=False, suffix="")

    # -- position -------------------------------------------------------------------
    def progress(self) -> Checkpoint:
        rows = self.tx.query(
            "SELECT position, phase, cursor_tenant, cursor_customer FROM projection_state"
            " WHERE name = ?", (self.name,),
        )
        if not rows:
            return Checkpoint(0, RebuildPhase.LIVE, None)
        position, phase, tenant, customer = rows[0]
        return Checkpoint(int(position), RebuildPhase(phase),
                          (tenant, customer) if tenant is not None else None)

    def save_progress(self, position: int, phase: RebuildPhase, cursor: CustomerKey | None,
                      now: str) -> None:
        tenant, customer = cursor if cursor is not None else (None, None)
        self.tx.execute(
            "INSERT INTO projection_state (name, position, phase, cursor_tenant, cursor_customer,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " position = excluded.position, phase = excluded.phase,"
            " cursor_tenant = excluded.cursor_tenant, cursor_customer = excluded.cursor_customer,"
            " updated_at = excluded.updated_at",
            (self.name, position, str(phase), tenant, customer, now),
        )

    # -- current moments --------------------------------------------------------------
    def _moments_where(self, column: str, keys: Collection[MomentKey],
                       extra: str = "") -> list[Current]:
        """Current moments whose `column` names one of these moments of their own tenant."""
        out: list[Current] = []
        for chunk in chunks(sorted({moment_id for _, moment_id in keys}), self.backend.max_params):
            with self.backend.by_index(self.tx):
                rows = self.tx.query(
                    f"SELECT {MOMENT_COLUMNS} FROM moments{self.s}"
                    f" WHERE {column} {self.backend.in_list(len(chunk))}{extra}{self.when}",
                    self.backend.in_params(chunk),
                )
            out.extend(Current._make(row) for row in rows)
        return out

    def moments_by_key(self, keys: Collection[MomentKey]) -> dict[MomentKey, Current]:
        wanted = set(keys)
        return {(m.tenant, m.moment_id): m for m in self._moments_where("moment_id", wanted)
                if (m.tenant, m.moment_id) in wanted}

    def children(self, parents: Collection[MomentKey]) -> list[Current]:
        """Current public shares whose `shares` names one of `parents` (in its tenant)."""
        wanted = set(parents)
        return [m for m in self._moments_where("shares", wanted, " AND kind = 'share'")
                if (m.tenant, m.shares) in wanted]

    def amplifications_replying_to(self, keys: Collection[MomentKey]) -> list[Current]:
        # Word for word the index's condition (AMPLIFYING_REPLY), which SQLite needs to
        # read the partial index.
        wanted = set(keys)
        return [m for m in self._moments_where("in_reply_to", wanted,
                                               f" AND {AMPLIFYING_REPLY}")
                if (m.tenant, m.in_reply_to) in wanted]

    def cascades(self, posts: Sequence[Current]) -> dict[str, Cascade]:
        if self.walk:
            # Here, not at the top: it loads the folds, which a query of live rows never needs.
            from mot.projections.folding import walk_cascades

            return walk_cascades(self.children, posts)
        from mot.projections.amplification import capped_reach  # a fold's, as above

        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for chunk in chunks(sorted({p.moment_id for p in posts}), self.backend.max_params):
            # The reaches summed in two halves, each far from overflowing (a reach is at
            # most 2**53): one SUM of them passed SQLite's 64-bit integer with 1,025 shares
            # of the largest reach, and the error stopped every tenant's projections.
            for tenant, root, size, high, low in self.tx.query(
                f"SELECT tenant, root, COUNT(*), SUM(reach >> 32), SUM(reach & 4294967295)"
                f" FROM share_roots{self.s}"
                f" WHERE root {self.backend.in_list(len(chunk))} GROUP BY root, tenant",
                self.backend.in_params(chunk),
            ):
                totals[(tenant, root)] = (int(size), (int(high) << 32) + int(low))
        out = {}
        for post in posts:
            size, reach = totals.get((post.tenant, post.moment_id), (0, 0))
            out[post.moment_id] = Cascade(size, capped_reach(post.reach + reach))
        return out

    def share_roots(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
        # Read by the table's key, tenant then moment id, a statement a tenant: by the moment
        # id alone no index serves, and PostgreSQL read the whole table, twice a page of a
        # catch-up (bench/NOTES.md, "The PostgreSQL catch-up's statements at 100k and 1M").
        by_tenant: dict[str, set[str]] = defaultdict(set)
        for tenant, moment_id in keys:
            by_tenant[tenant].add(moment_id)
        out: dict[tuple[str, str], str] = {}
        for tenant, ids in by_tenant.items():
            for chunk in chunks(sorted(ids), self.backend.max_params - 1):
                for moment_id, root in self.tx.query(
                    f"SELECT moment_id, root FROM share_roots{self.s} WHERE tenant = ?"
                    f" AND moment_id {self.backend.in_list(len(chunk))}",
                    (tenant, *self.backend.in_params(chunk)),
                ):
                    out[(tenant, moment_id)] = root
        return out

    def _keyed_rows(self, table: str, columns: str, column: str,
                    keys: Collection[tuple[str, str]]) -> Iterator[tuple[Any, ...]]:
        """The rows of `table` (`columns`, the first two tenant and `column`) whose (tenant,
        `column`) is one of `keys`: one IN list of values a chunk, the tenant checked here."""
        wanted = set(keys)
        for chunk in chunks(sorted({value for _, value in wanted}), self.backend.max_params):
            for row in self.tx.query(
                f"SELECT {columns} FROM {table}{self.s}"
                f" WHERE {column} {self.backend.in_list(len(chunk))}",
                self.backend.in_params(chunk),
            ):
                if (row[0], row[1]) in wanted:
                    yield row

    def save_share_roots(self, roots: Iterable[tuple[Current, str]],
                         removed: Iterable[tuple[str, str]]) -> None:
        self._upsert("share_roots", SHARE_ROOT_COLUMNS,
                    [(share.tenant, share.moment_id, root, share.reach) for share, root in roots],
                    key=("tenant", "moment_id"))
        self._delete_rows("share_roots", ("tenant", "moment_id"), removed)

    def write_moments(self, rows: Sequence[tuple[Current, dict[str, Any], int]],
                      deletes: Collection[MomentKey], *,
                      existing: Collection[MomentKey],
                      groups: Mapping[CustomerKey, str]) -> None:
        """Write moments; those not in `existing` are new and go in by bulk insert."""
        values = _moment_rows(rows, groups)
        self._insert("moments", MOMENT_TABLE_ROW,
                     [v for v in values if (v[1], v[0]) not in existing])
        self._upsert("moments", MOMENT_TABLE_ROW, [v for v in values if (v[1], v[0]) in existing],
                     key=("moment_id", "tenant"))
        self.tx.executemany(f"DELETE FROM moments{self.s} WHERE moment_id = ? AND tenant = ?",
                            [(moment_id, tenant) for tenant, moment_id in deletes])

    def load_moments(self, after: int, upto: int, as_of: int) -> int:
        """Copy in, from the ledger, each moment whose latest event at or before `as_of` lies
        in (after, upto] and does not retract it (a rebuild's first phase); return how many."""
        if self.opener is not None:  # sealed personal fields: by the database, or in Python
            with nullcontext() if self.unsealer is None else self.unsealer() as function:
                if function is not None:
                    self.tx.execute(load_statement(self.backend, f"moments{self.s}", MOMENT_ROW,
                                                   groups=f"members{self.s}", unseal=function),
                                    (as_of, after, upto, as_of))
                    return int(self.tx.cursor.rowcount)
            return _load_opened(self.backend, self.tx, self.opener, self.forget_keys,
                                f"moments{self.s}", f"members{self.s}", after, upto, as_of)
        self.tx.execute(load_statement(self.backend, f"moments{self.s}", MOMENT_ROW,
                                       groups=f"members{self.s}"),
                        (as_of, after, upto, as_of))
        return int(self.tx.cursor.rowcount)

    def load_staged(self, stage: StagedRange) -> int:
        """Copy in the moments of a stage (`SqlProjectionStore.stage_moments`); return how many."""
        columns = ", ".join(MOMENT_ROW)
        self.tx.execute(
            f"INSERT INTO moments{self.s} ({columns}, person)"
            f" SELECT {', '.join(f's.{c}' for c in MOMENT_ROW)}, COALESCE(g.person, s.customer_id)"
            f" FROM {self.stages[stage.name]} s LEFT JOIN members{self.s} g"
            " ON g.customer_id = s.customer_id AND g.tenant = s.tenant")
        return int(self.tx.cursor.rowcount)

    def customer_moments(self, keys: Collection[CustomerKey]) -> dict[CustomerKey, list[Current]]:
        """Each customer's current moments in fold order."""
        out: dict[CustomerKey, list[Current]] = {key: [] for key in keys}
        for row in self.backend.select_customers(
                self.tx, f"{MOMENT_COLUMNS}, person", f"moments{self.s}", out, self.when,
                ("occurred_us", "moment_id"), column="person"):
            out[(row[1], row[-1])].append(Current._make(row[:-1]))
        return out

    def customer_range(self, first: CustomerKey, last: CustomerKey
                       ) -> dict[CustomerKey, list[Current]]:
        """The moments of every customer from `first` to `last` in key order, in fold order."""
        out: dict[CustomerKey, list[Current]] = {}
        params: tuple[str, ...]
        if first[0] == last[0]:
            # One tenant (all ranges but those at a tenant's edge): PostgreSQL estimates
            # this form well and reads the index; for the row comparison below it guesses
            # a third of the table and scans all of it, for every range.
            where, params = "tenant = ? AND person >= ? AND person <= ?", (
                first[0], first[1], last[1])
        else:
            where, params = "(tenant, person) >= (?, ?) AND (tenant, person) <= (?, ?)", (
                *first, *last)
        rows = self.tx.query(
            f"SELECT person, {MOMENT_COLUMNS} FROM moments{self.s} WHERE {where}{self.when}"
            " ORDER BY tenant, person, occurred_us, moment_id", params)
        make = Current._make
        last_key: CustomerKey | None = None
        moments: list[Current] = []
        for row in rows:
            key = (row[2], row[0])
            if key != last_key:
                moments = out[key] = []
                last_key = key
            moments.append(make(row[1:]))
        return out

    def customers_after(self, cursor: CustomerKey | None, limit: int, *,
                        tenant: str | None = None,
                        customer: str | None = None) -> list[CustomerKey]:
        """The next `limit` customers (in key order) that have current moments."""
        where = ["TRUE"]
        params: list[Any] = []
        if cursor is not None:
            # A row-value comparison: both engines use it as an index bound (the
            # OR form made PostgreSQL scan the index from the start on every chunk).
            where.append("(tenant, person) > (?, ?)")
            params += [cursor[0], cursor[1]]
        if tenant is not None:
            where.append("tenant = ?")
            params.append(tenant)
        if customer is not None:
            where.append("person = ?")
            params.append(customer)
        rows = self.tx.query(
            f"SELECT DISTINCT tenant, person FROM moments{self.s}"
            f" WHERE {' AND '.join(where)}{self.when} ORDER BY tenant, person LIMIT ?",
            (*params, limit),
        )
        return [(str(t), str(c)) for t, c in rows]

    # -- persons ----------------------------------------------------------------------------
    def groups(self, ids: Collection[CustomerKey]) -> dict[CustomerKey, str]:
        """The group of each of these ids that is in a linked pair."""
        return {(tenant, customer): person for tenant, customer, person in self._keyed_rows(
            "members", "tenant, customer_id, person", "customer_id", ids)}

    def members(self, groups: Collection[CustomerKey]) -> dict[CustomerKey, list[Member]]:
        """The ids of each of these groups that has several, with their degrees."""
        out: dict[CustomerKey, list[Member]] = {}
        for tenant, person, customer, degree in self._keyed_rows(
                "members", "tenant, person, customer_id, degree", "person", groups):
            out.setdefault((tenant, person), []).append((customer, int(degree)))
        return out

    def pair_states(self, pairs: Collection[Pair]) -> dict[Pair, Precedence]:
        out: dict[Pair, Precedence] = {}
        for pair in pairs:
            for occurred_us, unlink in self.tx.query(
                f"SELECT occurred_us, unlink FROM links{self.s}"
                " WHERE tenant = ? AND low = ? AND high = ?", pair):
                out[pair] = (int(occurred_us), int(unlink))
        return out

    def save_pair_states(self, states: Mapping[Pair, Precedence]) -> None:
        self._upsert("links", ("tenant", "low", "high", "occurred_us", "unlink"),
                     [(*pair, *precedence) for pair, precedence in states.items()],
                     key=("tenant", "low", "high"))

    def linked_pairs(self, tenant: str, ids: Collection[str], *, unlinked: bool = False
                     ) -> list[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        state = "" if unlinked else " AND unlink = 0"
        for chunk in chunks(sorted(ids), self.backend.max_params):
            for side in ("low", "high"):
                found.update((str(low), str(high)) for low, high in self.tx.query(
                    f"SELECT low, high FROM links{self.s} WHERE tenant = ?"
                    f" AND {side} {self.backend.in_list(len(chunk))}{state}",
                    (tenant, *self.backend.in_params(chunk))))
        return sorted(found)

    def regroup(self, tenant: str, new: Mapping[str, tuple[str, int] | None],
                old: Mapping[str, str]) -> None:
        # Only the rows that change: a link added to a person of many ids changes the degree
        # of two of them and the group of those that join, not the rest.
        stored = {customer: (person, int(degree)) for _, customer, person, degree in
                  self._keyed_rows("members", "tenant, customer_id, person, degree",
                                   "customer_id", [(tenant, customer) for customer in new])}
        changed = {customer: group for customer, group in new.items()
                   if stored.get(customer) != group}
        self.tx.executemany(f"DELETE FROM members{self.s} WHERE customer_id = ? AND tenant = ?",
                            [(customer, tenant) for customer in changed if customer in stored])
        self._insert("members", ("customer_id", "tenant", "person", "degree"),
                     [(customer, tenant, *group) for customer, group in changed.items()
                      if group is not None])
        # The moments of an id whose group changed move to the new one: a range of the old
        # group's (the fold index), not a scan.
        self.tx.executemany(
            f"UPDATE moments{self.s} SET person = ?"
            " WHERE tenant = ? AND person = ? AND customer_id = ?",
            [(customer if group is None else group[0], tenant, old[customer], customer)
             for customer, group in new.items()
             if (customer if group is None else group[0]) != old[customer]])

    def load_links(self, states: Mapping[Pair, Precedence]) -> int:
        """Every pair's latest evidence, and the groups the linked pairs make."""
        from mot.projections.persons import groups

        self.tx.execute(f"DELETE FROM links{self.s}")
        self.tx.execute(f"DELETE FROM members{self.s}")
        self._insert("links", ("tenant", "low", "high", "occurred_us", "unlink"),
                     [(*pair, *precedence) for pair, precedence in states.items()])
        linked: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for (tenant, low, high), (_, unlink) in states.items():
            if not unlink:
                linked[tenant].append((low, high))
        self._insert("members", ("customer_id", "tenant", "person", "degree"),
                     [(customer, tenant, *group) for tenant, pairs in linked.items()
                      for customer, group in groups(pairs).items()])
        return len(states)

    # -- customers' projections -----------------------------------------------------------
    def encode_customers(self, folded: Iterable[CustomerProjections],
                         version: int) -> dict[str, list[tuple[Any, ...]]]:
        """The customers' rows, table by table, stamped `version` (`add_customers` writes
        them): a rebuild's worker processes build them while they fold."""
        out: dict[str, list[tuple[Any, ...]]] = {name: [] for name in CUSTOMER_TABLES}
        relationships, reciprocity = out["relationships"], out["reciprocity"]
        transitions, amplifications = out["transitions"], out["amplifications"]
        responses = out["responses"]
        persons = out["persons"]
        for f in folded:
            responses.extend(_response_row(r, version) for r in f.responses)
            if is_erased_customer(f.relationship.customer_id):
                # An erased person's moments (SPEC §6): in the sums (response times from the
                # responses rows, under the erasure's pseudo id), no other row.
                continue
            persons.append((*_person_row(f.person), version))
            relationships.append((*_relationship_row(f.relationship), version))
            reciprocity.append((*_reciprocity_row(f.reciprocity), version))
            transitions.extend((*row, version) for row in _transition_rows(f.transitions))
            amplifications.extend((*_amplification_row(a), version) for a in f.amplifications)
        return out

    def add_customers(self, encoded: dict[str, list[tuple[Any, ...]]]) -> None:
        for table, rows in encoded.items():
            self._insert(table, PROJECTIONS[table].columns, rows)

    def replace_customers(self, folded: Mapping[CustomerKey, CustomerProjections],
                          gone: Collection[CustomerKey], version: int) -> list[Amplification]:
        """Write the rows whose content changed (stamped `version`), delete those of `gone`
        and of amplifications no longer there (leaving tombstones); return the
        amplifications stored before."""
        # An erased person's moments (SPEC §6) keep counting in the per-tenant sums, response
        # times included (summed from their responses rows, kept under the erasure's pseudo
        # id); they have no other per-customer row.
        every, every_key = folded, [*folded, *gone]
        if any(is_erased_customer(c) for _, c in folded):
            folded = {key: f for key, f in folded.items() if not is_erased_customer(key[1])}
        keys = [*folded, *gone]
        had = self._replace_per_customer(RELATIONSHIPS, keys, version, {
            key: _relationship_row(f.relationship) for key, f in folded.items()})
        self._replace_per_customer(RECIPROCITY, keys, version, {
            key: _reciprocity_row(f.reciprocity) for key, f in folded.items()})
        self._replace_per_customer(PERSONS, keys, version, {
            key: _person_row(f.person) for key, f in folded.items()})
        removed = [key for key in gone if key in had]
        if removed:
            for projection in ("relationships", "reciprocity", "persons"):
                self._delete_customers(projection, removed)
                self._tombstones(projection, [f"{t}/{c}" for t, c in removed], version)
        revived = [f"{t}/{c}" for t, c in folded if (t, c) not in had]
        for projection in ("relationships", "reciprocity", "persons"):
            self._revive(projection, revived)
        self._replace_transitions(folded, gone, version)
        self._replace_responses(every, every_key, version)
        return self._replace_amplifications(folded, keys, version)

    def _old_rows(self, projection: Projection, keys: Collection[CustomerKey]
                  ) -> list[tuple[Any, ...]]:
        """The stored rows of these customers, without their version."""
        return [row[:-1] for row in self._rows(projection.name, keys,
                                               ", ".join(projection.columns))]

    def _replace_per_customer(self, projection: Projection, keys: Collection[CustomerKey],
                              version: int, new: dict[CustomerKey, tuple[Any, ...]]
                              ) -> set[CustomerKey]:
        """Upsert a one-row-per-customer projection's changed rows; the customers it had."""
        old = {(r[0], r[1]): r for r in self._old_rows(projection, keys)}
        self._write_changed(projection, old, new, version)
        return set(old)

    def _write_changed(self, projection: Projection, old: Mapping[Any, tuple[Any, ...]],
                       new: Mapping[Any, tuple[Any, ...]], version: int) -> None:
        """Write the rows of `new` (without their version) that differ from `old`'s rows of
        the same key: those `old` lacks by upsert, the others, on SQLite, by `_update`."""
        if not self.backend.updates_touch_named_indexes:
            # The indexes follow the values an update changes, not the columns it names
            # (PostgreSQL): one bulk upsert statement.
            self._upsert(projection.name, projection.columns,
                         [(*row, version) for key, row in new.items() if old.get(key) != row],
                         key=projection.key, stored=self._stored(projection, old))
            return
        self._upsert(projection.name, projection.columns,
                     [(*row, version) for key, row in new.items() if key not in old],
                     key=projection.key)
        self._update(projection, [(before, row) for key, row in new.items()
                                  if (before := old.get(key)) is not None and before != row],
                     version)

    def _stored(self, projection: Projection, old: Mapping[Any, tuple[Any, ...]]
                ) -> dict[Any, Any] | None:
        """Of `old` rows (in `projection.columns`' order), each key's split column's value
        where the key lacks it (`_split_apart`): which part each key's row is in."""
        split = self._split_apart(projection.name, projection.key)
        if split is None:
            return None
        at = projection.columns.index(split)
        return {key: row[at] for key, row in old.items()}

    def _update(self, projection: Projection,
                rows: Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]], version: int) -> None:
        """Update stored rows (each as it was and as it is now, without their version),
        setting an indexed column only where its value changed: SQLite rewrites the index
        of every column an UPDATE names, even set to the value it had (300 updates of a
        scratch table: 302 -> 533 pages written with `stage = stage`), and a refold's
        changed rows mostly keep their stage, status or polarity (bench/scaling_notes.toml,
        catch-up). One statement for each set of indexed columns that changed."""
        columns = projection.columns
        indexed = _INDEXED[projection.name]
        plain = [i for i, c in enumerate(columns)
                 if c != "version" and c not in projection.key and i not in indexed]
        at = [columns.index(c) for c in projection.key]
        groups: dict[tuple[int, ...], list[tuple[Any, ...]]] = defaultdict(list)
        for before, row in rows:
            changed = tuple(i for i in indexed if before[i] != row[i])
            groups[changed].append((*(row[i] for i in (*plain, *changed)), version,
                                    *(row[i] for i in at)))
        for changed, values in groups.items():
            names = [columns[i] for i in (*plain, *changed)]
            self.tx.executemany(
                f"UPDATE {projection.name}{self.s} SET "
                + ", ".join(f"{c} = ?" for c in (*names, "version"))
                + " WHERE " + " AND ".join(f"{c} = ?" for c in projection.key), values)

    def _replace_transitions(self, folded: Mapping[CustomerKey, CustomerProjections],
                             gone: Collection[CustomerKey], version: int) -> None:
        """A customer's transitions are rewritten whole when any of them changed."""
        old: dict[CustomerKey, list[tuple[Any, ...]]] = defaultdict(list)
        for r in sorted(self._old_rows(TRANSITIONS, [*folded, *gone]), key=lambda r: r[2]):
            old[(r[0], r[1])].append(r)
        new = {key: _transition_rows(f.transitions) for key, f in folded.items()}
        changed = [key for key, rows in new.items() if old.get(key, []) != rows]
        self._delete_customers("transitions", [key for key in (*changed, *gone) if key in old])
        self._insert("transitions", TRANSITIONS.columns,
                     [(*row, version) for key in changed for row in new[key]])

    def _replace_amplifications(self, folded: Mapping[CustomerKey, CustomerProjections],
                                keys: Collection[CustomerKey], version: int
                                ) -> list[Amplification]:
        old = self._replace_keyed(AMPLIFICATIONS, keys, version, {
            (a.tenant, a.amplification_id): _amplification_row(a)
            for f in folded.values() for a in f.amplifications})
        amplification_of = _amplification_of()
        return [amplification_of(row) for row in old]

    def _replace_responses(self, folded: Mapping[CustomerKey, CustomerProjections],
                           keys: Collection[CustomerKey], version: int) -> None:
        """Write the requests whose response changed, delete those gone.

        Compared as the fold's values (the stored columns but the two times' texts, which
        follow from their microseconds), so only a changed request's row is encoded and
        written: a merge or a split of large persons refolds thousands of requests.
        """
        old = {(r[1], r[0]): r for r in self._rows("responses", keys, RESPONSE_VALUES)}
        changed: list[tuple[Any, ...]] = []
        added: list[tuple[Any, ...]] = []
        new: set[tuple[str, str]] = set()
        for f in folded.values():
            for r in f.responses:
                key = (r.tenant, r.request_moment_id)
                new.add(key)
                before = old.get(key)
                if before is None:
                    added.append(_response_row(r, version))
                elif before != r:
                    changed.append(_response_row(r, version))
        self._insert("responses", RESPONSES.columns, added)
        # Each request's customer as stored: a merge moves thousands of requests to another
        # customer id, and a request is then deleted from the part that holds it.
        stored = {key: r[_RESPONSE_CUSTOMER] for key, r in old.items()}
        self._upsert("responses", RESPONSES.columns, changed, key=RESPONSES.key, stored=stored)
        removed = [key for key in old if key not in new]
        self._delete_rows("responses", RESPONSES.key, removed, stored)
        # Published to Kafka (mot.responses): a request retracted, or no longer one, leaves a
        # tombstone under "tenant/request_moment_id"; one that comes back takes it away.
        self._tombstones("responses", [f"{t}/{i}" for t, i in removed], version)
        self._revive("responses", [f"{row[1]}/{row[0]}" for row in added])

    def _replace_keyed(self, projection: Projection, keys: Collection[CustomerKey], version: int,
                       new: dict[tuple[str, str], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows of the customers `keys` keyed (tenant, moment id), as moment ids are scoped by
        tenant: upsert those changed, delete those gone (leaving tombstones for the changelog);
        the old rows."""
        at = [projection.columns.index(column) for column in projection.key]
        old = {tuple(r[i] for i in at): r for r in self._old_rows(projection, keys)}
        self._write_changed(projection, old, new, version)
        removed = [key for key in old if key not in new]
        self._delete_rows(projection.name, projection.key, removed, self._stored(projection, old))
        self._tombstones(projection.name, [f"{t}/{i}" for t, i in removed], version)
        self._revive(projection.name, [f"{t}/{i}" for t, i in new if (t, i) not in old])
        return list(old.values())

    # -- per-tenant sums -----------------------------------------------------------------
    def team_sums(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], TeamRow]:
        from mot.projections.teams import TeamRow

        out: dict[tuple[str, str], TeamRow] = {}
        for tenant, function in keys:
            rows = self.tx.query(
                f"SELECT {_TEAM_SUMS} FROM teams{self.s} WHERE tenant = ? AND function = ?",
                (tenant, function),
            )
            if rows:
                out[(tenant, function)] = TeamRow(tenant, function, *(int(v) for v in rows[0]))
        return out

    def save_team_sums(self, rows: Iterable[TeamRow], removed: Iterable[tuple[str, str]],
                       version: int) -> None:
        self._upsert("teams", TEAMS.columns, [(*_team_row(row), version) for row in rows],
                     key=TEAMS.key)
        self._delete_rows("teams", TEAMS.key, list(removed))

    def listening_sums(self, tenants: Collection[str]) -> dict[str, ListeningRow]:
        from mot.projections.teams import ListeningRow

        out: dict[str, ListeningRow] = {}
        for tenant in tenants:
            rows = self.tx.query(
                f"SELECT {_LISTENING_SUMS} FROM listening{self.s} WHERE tenant = ?",
                (tenant,),
            )
            if rows:
                out[tenant] = ListeningRow(tenant, *(int(v) for v in rows[0]))
        return out

    def save_listening_sums(self, rows: Iterable[ListeningRow], removed: Iterable[str],
                            version: int) -> None:
        self._upsert("listening", LISTENING.columns,
                     [(*_listening_row(row), version) for row in rows], key=LISTENING.key)
        self._delete_rows("listening", LISTENING.key, [(tenant,) for tenant in removed])

    # -- projection rows -----------------------------------------------------------------
    def _rows(self, table: str, keys: Collection[CustomerKey], columns: str) -> list[tuple[Any, ...]]:
        """Rows of a per-customer table (relationships, reciprocity, transitions, amplifications)."""
        if not keys:
            return []
        return self.backend.select_customers(self.tx, columns, f"{table}{self.s}", keys)

    def _delete_customers(self, table: str, keys: Collection[CustomerKey]) -> None:
        self.tx.executemany(f"DELETE FROM {table}{self.s} WHERE tenant = ? AND customer_id = ?",
                            list(keys))

    def _insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Rows that are new (no conflict possible): the backend's fastest bulk path."""
        rows = list(rows)
        if rows:
            self.backend.bulk_insert(self.tx, table + self.s, columns, rows)

    def _split_apart(self, table: str, key: Sequence[str]) -> str | None:
        """The column `table` is split by (SPLIT_BY) where this backend splits it and `key`
        lacks it: then a row of a key may lie in any part."""
        column = SPLIT_BY.get(table)
        return column if column is not None and column not in key \
            and self.backend.split_tables else None

    def _upsert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               key: Sequence[str], update: bool = True, suffix: str | None = None,
               stored: Mapping[tuple[Any, ...], Any] | None = None) -> None:
        """Insert the rows, updating (or with `update` False keeping) those whose key is taken;
        `suffix` other than the session's names a table that rebuilds share (the alerts).
        `stored`: where the caller read them, the split column's value (`_split_apart`) each
        key's row has now."""
        rows = list(rows)
        if not rows:
            return
        target = table + (self.s if suffix is None else suffix)
        split = self._split_apart(table, key)
        if split is not None:
            # A split table has no unique index of `key` alone for ON CONFLICT (a whole
            # table a replay is splitting, MOT_PG_SPLIT_MOMENTS, is written alike).
            self._replace(target, columns, rows, key, split, stored or {})
            return
        conflict = f"ON CONFLICT ({', '.join(key)}) " + (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
            if update else "DO NOTHING")
        if len(rows) >= BULK_UPSERT_ROWS and self.backend.server_uri() is not None:
            self._bulk_upsert(target, columns, rows, key, conflict, update)
            return
        self.tx.executemany(
            f"INSERT INTO {target} ({', '.join(columns)})"
            f" VALUES ({','.join('?' * len(columns))}) {conflict}", rows,
        )

    def _replace(self, target: str, columns: Sequence[str], rows: list[Sequence[Any]],
                 key: Sequence[str], split: str, stored: Mapping[tuple[Any, ...], Any]) -> None:
        """`_upsert` on a table split by `split`, which `key` lacks, as a deletion of the rows'
        keys and an insertion (the last row of a key wins, as it does one upsert a row).
        A key whose stored row's part is known (`stored`) is deleted from that part alone;
        any other is looked for in every part."""
        at = [columns.index(column) for column in key]
        rows = list({tuple(row[i] for i in at): row for row in rows}.values())
        keys = [tuple(row[i] for i in at) for row in rows]
        self._delete_where(target, (*key, split),
                           [(*k, stored[k]) for k in keys if k in stored])
        self._delete_where(target, key, [k for k in keys if k not in stored])
        self.backend.bulk_insert(self.tx, target, columns, rows)

    def _delete_where(self, target: str, key: Sequence[str], keys: Sequence[Sequence[Any]]
                      ) -> None:
        """Delete the rows of `target` whose `key` columns hold one of `keys`. Many at once on
        a server: a statement for each value of the key's other columns (the tenant, and the
        split column where given), with the ids as one array, which reads each id's entry of
        the key's index (and, split, of the one part a customer's rows are in). A join with a
        scratch table of the keys read every part of a split table whole (a merge of two
        persons of 10,000 moments hashed every responses row of the store), or, joined key
        by key, scanned the customer's rows for each key (bench/NOTES.md)."""
        if not keys:
            return
        ids = [i for i, column in enumerate(key) if column not in ("tenant", *SPLIT_BY.values())]
        if len(keys) >= BULK_UPSERT_ROWS and len(ids) == 1 \
                and self.backend.server_uri() is not None:
            at = ids[0]
            fixed = [i for i in range(len(key)) if i != at]
            grouped: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
            for k in keys:
                grouped[tuple(k[i] for i in fixed)].append(k[at])
            self.tx.executemany(
                f"DELETE FROM {target} WHERE " + " AND ".join(f"{key[i]} = ?" for i in fixed)
                + f" AND {key[at]} {self.backend.in_list(2)}",
                [(*values, *self.backend.in_params(sorted(set(found))))
                 for values, found in grouped.items()])
            return
        self.tx.executemany(f"DELETE FROM {target} WHERE " + " AND ".join(f"{c} = ?" for c in key),
                            keys)

    def _bulk_upsert(self, target: str, columns: Sequence[str], rows: list[Sequence[Any]],
                     key: Sequence[str], conflict: str, update: bool) -> None:
        """`_upsert` on a server: the rows copied into a scratch table (the backend's bulk
        insert, a COPY), then one `INSERT ... SELECT ... ON CONFLICT`."""
        if update:
            # One statement may not update a row twice: the last row of a key wins, as it
            # does one statement a row (DO NOTHING keeps the first either way).
            at = [columns.index(column) for column in key]
            rows = list({tuple(row[i] for i in at): row for row in rows}.values())
        names = ", ".join(columns)
        scratch = f"mot_upsert_{next(_SCRATCHES)}"  # dropped when the transaction ends
        self.tx.execute(f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS"
                        f" SELECT {names} FROM {target} WITH NO DATA")
        self.backend.bulk_insert(self.tx, scratch, columns, rows)
        self.tx.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {scratch} {conflict}")

    def _tombstones(self, projection: str, keys: Iterable[str], version: int) -> None:
        self._upsert("tombstones", ("projection", "row_key", "version"),
                    [(projection, key, version) for key in keys], key=("projection", "row_key"))

    def _revive(self, projection: str, keys: Iterable[str]) -> None:
        self.tx.executemany(f"DELETE FROM tombstones{self.s} WHERE projection = ? AND row_key = ?",
                            [(projection, key) for key in keys])

    def _delete_rows(self, table: str, key_columns: Sequence[str],
                    keys: Iterable[Sequence[Any]],
                    stored: Mapping[tuple[Any, ...], Any] | None = None) -> None:
        """Delete the rows of these keys; `stored` as for `_upsert`: then a key's row is
        looked for in its part alone."""
        split = self._split_apart(table, key_columns) if stored is not None else None
        listed = [tuple(k) for k in keys]
        if split is None or stored is None:
            self._delete_where(table + self.s, key_columns, listed)
            return
        self._delete_where(table + self.s, (*key_columns, split),
                           [(*k, stored[k]) for k in listed if k in stored])
        self._delete_where(table + self.s, key_columns, [k for k in listed if k not in stored])
