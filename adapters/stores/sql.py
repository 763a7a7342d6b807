"""What the SQLite and PostgreSQL stores share: a transaction handle and the backend contract.

SQL in mot is written once, with `?` placeholders and a few type names that
differ between the engines (`{blob}`, `{real}`, `{bigint}`, `{serial}`); each
backend fills those in. The ledger itself (the `stored_events` table and its
notification log) belongs to eventsourcing's application recorder.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification

    from mot.adapters.stores.codec import StoredRow


class Tx:
    """One open transaction: execute statements written with `?` placeholders."""

    def __init__(self, cursor: Any, native: Any, placeholder: str) -> None:
        self.cursor = cursor
        self.native = native  # what the backend's recorder takes as its cursor
        self._convert = placeholder != "?"
        # True once the outermost `SqlBackend.write` that opened it has committed (the
        # keystore then keeps the keys made in it without reading them back).
        self.committed = False

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._convert else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(self.sql(statement), params)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cursor.executemany(self.sql(statement), rows)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(self.sql(statement), params)
        return [tuple(row) for row in self.cursor.fetchall()]

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        self.cursor.execute(self.sql(statement), params)
        row = self.cursor.fetchone()
        return None if row is None else row[0]


LOCK_SLICE_S = 0.25
"""A writer waiting for another process's writer lock with a `waiting` callback waits this
long at a time, then calls it (`SqlBackend.write`)."""

SCHEMA_VERSION = 16  # 2: stored_events_corrections; 3: no moments.doc; 4: every moment field;
# 5: share_roots; 6: analysts' views (adapters/stores/analyst_views.py); 7: streams scoped by
# tenant; 8: current moments and amplifications keyed by (tenant, id); 9: the alerts outbox
# (adapters/stores/alert_outbox.py); 10: responses; 11: keystore, sealing, erasures; 12: the
# quarantine's waiting corrections (waits_for, waits_tenant); 13: persons (links, members,
# moments.person, customer_ids, the persons projection); 14: the quarantine's names;
# 15: the quarantine's tenant (whose erasures may purge an entry); 16: the current moments'
# index of replies holds the amplification moments' alone
"""The version of mot's tables; a store at this version is opened without any DDL."""


class SqlBackend(ABC):
    """A database that holds the ledger, the quarantine and the projections."""

    ready: bool = False  # the store's tables exist at SCHEMA_VERSION

    kind: str
    types: ClassVar[dict[str, str]]
    recorder: Any  # eventsourcing's application recorder for this database
    # How many ids one `IN (...)` may carry.
    max_params: int = 900
    # What makes ORDER BY sort text by its bytes (code points), as Python does.
    byte_order: str = ""
    # Whether CREATE INDEX fills every leaf of the index it builds (no fillfactor): then an
    # index whose keys arrive in no order (hashed ids) is given room after it is built.
    packed_builds: bool = False
    # Whether an UPDATE rewrites the index of every column it names, even set to the value it
    # had: then changed rows are updated naming only the indexed columns that changed.
    updates_touch_named_indexes: bool = False
    # The current time in microseconds since the epoch, as an SQL expression (the analysts'
    # views work out `lapsed` and `waiting_seconds` with it when they are read).
    now_us: ClassVar[str]

    def __init__(self) -> None:
        self._writes = threading.local()  # the write transaction this thread has open
        self._reads = threading.local()  # the read transaction `one_read` has open
        self._tables: set[str] = set()  # tables seen to exist (`known_table`)

    def ddl(self, statement: str) -> str:
        return statement.format(**self.types)

    def bound_shared_cache(self) -> None:
        """This process appends beside other writers for as long as it runs: where the
        database's pages are cached in this process (SQLite), keep fewer once another
        writer is seen. Nothing to do elsewhere."""
        return None

    def write(self, lock: str = "ledger", waiting: Callable[[], None] | None = None
              ) -> AbstractContextManager[Tx]:
        """A transaction that holds the writer lock named `lock` until it ends. While another
        process holds that lock, `waiting()` is called every `LOCK_SLICE_S` or so.

        Inside an open write transaction of this thread with the same lock, the open
        one is joined: what is written commits when the outermost one ends. A bulk
        import so commits many batches at once (a commit writes every page it
        dirtied; with random moment ids that is about a page a moment) while each
        batch is still checked and appended on its own.
        """
        joined = self._open_write()
        if joined is not None:
            open_lock, tx = joined
            if open_lock != lock:
                raise RuntimeError(f"a {lock!r} write inside an open {open_lock!r} write")
            return nullcontext(tx)
        return self._outermost_write(lock, waiting)

    @contextmanager
    def _outermost_write(self, lock: str, waiting: Callable[[], None] | None) -> Iterator[Tx]:
        with self.begin_write(lock, waiting) as tx:
            self._writes.open = (lock, tx)
            try:
                yield tx
            finally:
                self._writes.open = None
        tx.committed = True  # the block ended without an error: `begin_write` committed

    def _open_write(self) -> tuple[str, Tx] | None:
        return getattr(self._writes, "open", None)

    @abstractmethod
    def begin_write(self, lock: str, waiting: Callable[[], None] | None = None
                    ) -> AbstractContextManager[Tx]:
        """A new transaction that holds the writer lock named `lock` until it ends; while it
        waits for that lock, `waiting()` every `LOCK_SLICE_S` or so (without, one wait)."""

    def read(self) -> AbstractContextManager[Tx]:
        """A read-only transaction (a consistent snapshot); inside an open write
        transaction of this thread, that one (SQLite cannot nest them); inside `one_read`,
        its transaction."""
        joined = self._open_write()
        if joined is not None:
            return nullcontext(joined[1])
        reading: Tx | None = getattr(self._reads, "open", None)
        if reading is not None:
            return nullcontext(reading)
        return self.begin_read()

    @contextmanager
    def one_read(self) -> Iterator[None]:
        """The reads of this thread within the block in one read transaction, where each
        would begin and commit its own: an analyst's query (the person's groups, then the
        projection's rows) paid a transaction's begin and commit, and on PostgreSQL a pooled
        connection's check, twice. No write may begin within it."""
        if self._open_write() is not None or getattr(self._reads, "open", None) is not None:
            yield
            return
        with self.begin_read() as tx:
            self._reads.open = tx
            try:
                yield
            finally:
                self._reads.open = None

    def known_table(self, tx: Tx, name: str) -> bool:
        """`table_exists`, asked of the database until it says yes: a table of the store is
        never dropped while the store is open (a rebuild's swap drops and renames within one
        transaction), and on PostgreSQL each asking is a round trip to the catalog."""
        if name in self._tables:
            return True
        found = self.table_exists(tx, name)
        if found:
            self._tables.add(name)
        return found

    def erasing(self, tx: Tx) -> None:
        """Inside the ledger's write transaction of an erasure, which writes the projections'
        tables too: take their writer lock as well, and have what is deleted zeroed."""
        return None

    def scrub(self, tables: Sequence[str], waiting: Callable[[], None] | None = None) -> None:
        """After a committed deletion of personal data from these tables: its bytes out of
        the database files (and their write-ahead log). `waiting()`, once, when it first has
        to wait for other sessions' transactions to end."""
        return None

    @abstractmethod
    def begin_read(self) -> AbstractContextManager[Tx]:
        """A new read-only transaction."""

    @abstractmethod
    def insert_stored_events(self, tx: Tx, rows: Sequence[StoredRow]) -> None:
        """Append to the ledger inside `tx`, through eventsourcing's recorder."""

    @abstractmethod
    def select_notifications(self, after: int, limit: int) -> Sequence[Notification]:
        """The ledger's notifications with position > after, in order."""

    @abstractmethod
    def stream_id_param(self, stream_id: str) -> Any:
        """How a stream id is written in the stored events' `originator_id` column."""

    def moment_stream_param(self, tenant: str, moment_id: str) -> Any:
        """`stream_id_param` of the moment's stream (`moment_stream_id`)."""
        from mot.domain.identity import moment_stream_id

        return self.stream_id_param(moment_stream_id(tenant, moment_id))

    stream_id_text = "originator_id"  # the column read as `stream_id_param` writes ids
    stream_id_value = "?"  # a placeholder for a `stream_id_param` value in a statement

    def serving(self) -> None:
        """This process serves the store for as long as it runs (mot serve): its connections
        keep less cached. Nothing to change for PostgreSQL, whose cache is the server's."""
        return None

    def point_reads(self, tx: Tx) -> None:
        """Tell the database that `tx` reads rows by their keys (a recorded batch's look-ups):
        plans that pay off on a scan (parallel workers, compiled expressions) never pay off
        there. Nothing to say to SQLite, whose planner has no such plans."""
        return None

    def select_streams(self, tx: Tx, stream_ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        """(originator_id, version, topic, state) of these streams, as `stream_id_param` gives ids."""
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(stream_ids, self.max_params):
            rows += tx.query(
                "SELECT originator_id, originator_version, topic, state FROM stored_events"
                f" WHERE originator_id {self.in_list(len(chunk))}"
                " ORDER BY originator_id, originator_version",
                self.in_params(chunk),
            )
        return rows

    @abstractmethod
    def table_exists(self, tx: Tx, name: str) -> bool:
        """Whether a table of that name exists."""

    @abstractmethod
    def index_names(self, tx: Tx, tables: Sequence[str]) -> list[str]:
        """The names of these tables' secondary indexes."""

    def unavailable(self, error: BaseException) -> bool:
        """Whether `error` says the database could not be reached or dropped the connection
        (a service retries then), rather than that a statement failed."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    created = False  # this process made the store: no file, or no schema, before it opened it
    # The tables a new store fills as it is made; any other row means the store holds something.
    bookkeeping: ClassVar[frozenset[str]] = frozenset({"mot_schema", "mot_upgrades", "sqlite_sequence"})

    def discard(self) -> bool:
        """Close the store, and remove it when this process `created` it, it holds nothing
        yet and no other process has it open: a refused first import (`--all-or-nothing`, an
        input that ends part-way) leaves no empty store behind. False when it is kept."""
        self.close()
        return False

    def schema_ready(self) -> bool:
        """Whether the store was set up at this SCHEMA_VERSION (then opening it runs no DDL)."""
        try:
            with self.read() as tx:
                if not self.table_exists(tx, "mot_schema"):
                    return False
                return bool(tx.scalar("SELECT MAX(version) FROM mot_schema") == SCHEMA_VERSION)
        except Exception:  # a new PostgreSQL schema that does not exist yet, and the like
            return False

    def mark_ready(self) -> None:
        """Record that every table of SCHEMA_VERSION now exists."""
        with self.write("schema") as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS mot_schema (version INTEGER PRIMARY KEY)")
            tx.execute("DELETE FROM mot_schema")
            tx.execute("INSERT INTO mot_schema (version) VALUES (?)", (SCHEMA_VERSION,))
        self.ready = True

    def schema_lock(self) -> AbstractContextManager[None]:
        """Held while tables are created, so processes opening a new store at once take turns."""
        return nullcontext()

    @abstractmethod
    def process_lock(self, name: str, waiting: Callable[[], None] | None = None
                     ) -> AbstractContextManager[None]:
        """A lock named `name` on this store, held across transactions until the block ends
        or the process dies, so that one process at a time does what it guards. `waiting()`
        is called first when another process holds it."""

    def bulk_insert(self, tx: Tx, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Insert new rows (no conflicts) as fast as the engine allows."""
        tx.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
            rows,
        )

    # -- stages: scratch tables filled outside the store's transactions ----------------
    # A rebuild's worker processes extract the moments of ranges of the log into stages
    # at the same time (the JSON work is most of that phase), and the main process
    # copies each in, in order, with its position: a crash still loses and repeats
    # nothing, and an unfinished stage is only scratch (`drop_stages`).

    @abstractmethod
    def fill_stage(self, create: Callable[[str], str], fill: Callable[[Tx, str], int]
                   ) -> tuple[str, int]:
        """A new stage: a table made by the statement `create(name)` and filled by
        `fill(tx, table)`, which returns how many rows it put in, in a transaction that
        takes no writer lock and reads the store as one snapshot (`fill` may read the
        ledger through `tx` a part at a time). Returns the stage's name and how many rows
        it holds."""

    @abstractmethod
    def reading_stage(self, stage: str) -> AbstractContextManager[str]:
        """While open, a transaction this thread begins can read the stage's table by the
        name it gives; the stage is dropped when it closes."""

    @abstractmethod
    def drop_stages(self) -> None:
        """Drop every stage left over (by a rebuild that stopped)."""

    partitions: int = 0
    """How many parts the tables of persons' rows this process makes are split into by a
    hash of the person (`create_by_person`); 0: made whole."""
    split_tables = False
    """Whether the store's tables of persons' rows may be split (made so, or being made so
    by this process's replay): its writes and reads then take the paths that work on both
    layouts (an upsert as a deletion and an insertion, the erasure's parts)."""
    splits = False
    """Whether the backend can split tables by person (`create_by_person`) at all."""
    split_hint = ""
    """How to have this store's tables split, said when an erasure rewrote whole tables."""

    def create_by_person(self, tx: Tx, table: str, statement: str, column: str) -> None:
        """Create `table` (`statement`, a `CREATE TABLE IF NOT EXISTS`) whose rows belong to
        the person named by `column`: split into `partitions` by a hash of it where the
        backend splits tables, so that an erasure rewrites the part holding that person only
        (SPEC §6)."""
        tx.execute(statement)

    def is_split(self, tx: Tx, table: str) -> bool:
        """Whether `table` was made split (`create_by_person`)."""
        return False

    def holding(self, tx: Tx, table: str, where: str, params: Sequence[Any]) -> list[str]:
        """The tables that hold `table`'s rows matching `where`: the parts that do when it
        is split (`create_by_person`), else itself."""
        return [table]

    def by_index(self, tx: Tx) -> AbstractContextManager[None]:
        """Around a read of the current moments by a list of moment ids (`moment_id`,
        `shares`, `in_reply_to`): where the table is split by person, each id may lie in any
        part, so the planner expects every id in every part and reads whole parts instead of
        their indexes; a backend that splits makes the statement use the indexes."""
        return nullcontext()

    def drop_derived_tables(self, tx: Tx, tables: Sequence[str]) -> None:
        """Drop tables whose rows are all derived from the ledger (projections, a rebuild's)."""
        for table in tables:
            tx.execute(f"DROP TABLE IF EXISTS {table}")  # and its indexes

    statistics_follow_rename = False
    """Whether a table's planner statistics stay with it when it is renamed (a rebuild's swap):
    PostgreSQL keeps them by the table's oid; SQLite's sqlite_stat1 names the table."""

    def analyze(self, tables: Sequence[str]) -> None:
        """Refresh the planner's statistics of these tables."""
        with self.write("schema") as tx:
            for table in tables:
                tx.execute(f"ANALYZE {table}")

    def select_customers(self, tx: Tx, columns: str, table: str,
                         keys: Collection[tuple[str, str]], where: str = "",
                         order: Sequence[str] = (), column: str = "customer_id"
                         ) -> list[tuple[Any, ...]]:
        """`SELECT columns FROM table` of the rows of these (tenant, `column`) keys (`column`:
        customer_id, or the moments' person group), with the extra condition `where`
        (` AND ...`). With `order`, each customer's rows come in that order and a customer's
        rows together.

        Here one statement a tenant and chunk of keys (an IN list on the (tenant, `column`)
        index): a statement per key made a batch that touches a person of many ids read
        every id of it one by one, each time (bench/NOTES.md, "A large person's ids read
        per batch").
        """
        by_tenant: dict[str, list[str]] = defaultdict(list)
        for tenant, value in keys:
            by_tenant[tenant].append(value)
        sort = f" ORDER BY {', '.join((column, *order))}" if order else ""
        rows: list[tuple[Any, ...]] = []
        for tenant, values in by_tenant.items():
            for chunk in chunks(sorted(set(values)), self.max_params - 1):
                rows += tx.query(
                    f"SELECT {columns} FROM {table} WHERE tenant = ?"
                    f" AND {column} {self.in_list(len(chunk))}{where}{sort}",
                    (tenant, *self.in_params(chunk)))
        return rows

    # -- the stored events' JSON, in the engine's dialect (a rebuild's in-database load) --

    @abstractmethod
    def json_documents(self, events: str) -> str:
        """A FROM item: each stored event of `stored_events e WHERE ...` (`events`) as its
        parsed JSON document, the column `s`."""

    @abstractmethod
    def json_value(self, path: Sequence[str], type: str, document: str = "s") -> str:
        """The value at `path` of the document `s` (or the column `document`; NULL when
        absent) as a column of `type` (text, real, bigint, int; json: the JSON text of an
        object)."""

    @abstractmethod
    def json_micros(self, path: Sequence[str]) -> str:
        """The RFC 3339 UTC time at `path` of the document `s`, as microseconds since 1970."""

    def scratch_join(self, tx: Tx) -> None:
        """Settings for the rest of `tx`, which joins scratch tables of a rebuild's range
        (`projection_tables._load_opened`); none by default."""
        return None

    def stream_rows(self, tx: Tx, statement: str, params: Sequence[Any], page: int
                    ) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of `statement` in pages of `page` rows, inside the open transaction `tx`,
        without holding them all (see `row_cursor`)."""
        cursor = self.row_cursor(tx)
        try:
            cursor.execute(tx.sql(statement), params)
            while rows := cursor.fetchmany(page):
                yield rows
        finally:
            cursor.close()

    def local_file(self) -> str | None:
        """The one file the store lives in, for tools that read it directly (None: a server)."""
        return None

    def server_uri(self) -> str | None:
        """A libpq URI of the server the store lives on (its schema first on the search path),
        for tools that read it directly (None: a file)."""
        return None

    def row_cursor(self, tx: Tx) -> Any:
        """A cursor of `tx`'s connection that fetches rows as they are asked for: here the
        engine's own cursor, which steps through them."""
        return tx.cursor.connection.cursor()

    def in_list(self, count: int) -> str:
        """`IN (?, ?, ...)` for `count` values; see `in_params`."""
        return f"IN ({','.join('?' * count)})"

    def in_params(self, values: Sequence[Any]) -> Sequence[Any]:
        return values

    def rows_source(self, types: Sequence[str], count: int) -> str:
        """A row source of `count` rows of columns typed `types` (text, bytea), to insert
        from (`INSERT ... SELECT * FROM` it); see `rows_params`. Here a VALUES list."""
        row = f"({', '.join('?' * len(types))})"
        return f"(VALUES {', '.join([row] * count)}) AS v"

    def rows_params(self, rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
        return [value for row in rows for value in row]

    def insert_new(self, tx: Tx, table: str, columns: Sequence[str], types: Sequence[str],
                   unique: Sequence[str], rows: Sequence[Sequence[Any]]) -> set[Any]:
        """Insert those of `rows` whose `unique` columns match no stored row; the first column
        (an id new rows alone have) of those inserted. Here a statement of `rows_source` a
        chunk, the ids returned."""
        inserted: set[Any] = set()
        for part in chunks(rows, max(1, self.max_params // len(columns))):
            # WHERE TRUE: SQLite would read ON CONFLICT as a join's constraint.
            inserted |= {r[0] for r in tx.query(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM "
                + self.rows_source(types, len(part))
                + f" WHERE TRUE ON CONFLICT ({', '.join(unique)}) DO NOTHING RETURNING {columns[0]}",
                self.rows_params(part))}
        return inserted

    def head(self) -> int:
        with self.read() as tx:
            return int(tx.scalar(self.head_sql) or 0)

    head_sql: str
    position_column: str


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
