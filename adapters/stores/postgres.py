"""The PostgreSQL store, for real deployments (`postgresql://user@host:port/db[?schema=name]`).

The ledger table and notification log are eventsourcing's
`PostgresApplicationRecorder`, used without its database functions (they
have been seen to lose notifications). Appends take the recorder's EXCLUSIVE
table lock *before* checking for duplicates, so concurrent ingest workers
are serialised for the few milliseconds of an append and notification ids
commit in order (a projection never skips an id that commits later).
Projection workers serialise on a transaction-scoped advisory lock.
"""

from __future__ import annotations

import os
import struct
import weakref
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from mot.adapters.stores.codec import StoredRow
from mot.adapters.stores.sql import LOCK_SLICE_S, SqlBackend, Tx, chunks
from mot.adapters.stores.urls import Server, libpq_uri, postgres_server, redacted
from mot.domain.identity import moment_stream_id
from mot.service.ports import StoreNotFound, StoreUnavailable

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification
    from eventsourcing.postgres import PostgresApplicationRecorder

SPLIT_ENV = "MOT_PG_SPLIT_MOMENTS"
"""The layout of the current-moments and per-customer tables this process makes (a new
store's, a replay's): split by person (`PostgresBackend.create_by_person`,
projection_tables.SPLIT_BY) unless set to 0; set to 1, a replay splits a store made whole.
Unset, a store keeps the layout it was made with (an older store's tables are whole)."""
SPLIT_PARTS = 8
PART_STATISTICS = 10
"""The planner's statistics target of each column of a split table and of its parts (the
server's default is 100). `ANALYZE` of a split table samples the whole table (the statistics
its joins and groupings are planned with) and then each part: at 100 each part of 62,000
rows was sampled at 30,000, sixteen times a whole table's sample, and the whole table's own
sample at 100 was as dear as a whole table's analysis, so a rebuild's analysis cost 1.7
times a whole store's (bench/NOTES.md)."""
STAGE_PREFIX = "mot_stage_"  # a stage is the table `mot_stage_{random}` of the store's schema


class PostgresBackend(SqlBackend):
    kind = "postgresql"
    splits = True
    split_hint = f"`{SPLIT_ENV}=1 mot replay` splits them by person"
    # Text in byte order ("C"): equality is the same in every deterministic collation, and
    # byte order is what mot sorts by anyway (`byte_order`, SQLite's, Python's); the
    # database's own collation (C.UTF-8, en_US...) compares with strcoll and without
    # abbreviated keys, which made most of an index build's sort (and so of the scrub's
    # VACUUM FULL, a rebuild's indexes, every insertion into an index of text).
    types: ClassVar[dict[str, str]] = {"text": 'TEXT COLLATE "C"', "blob": "BYTEA",
                                       "real": "DOUBLE PRECISION", "bigint": "BIGINT",
                                       "serial": "BIGSERIAL PRIMARY KEY", "json": "JSONB"}
    position_column = "notification_id"  # the notification id
    now_us = "CAST(extract(epoch from clock_timestamp()) * 1000000 AS BIGINT)"
    head_sql = "SELECT MAX(notification_id) FROM stored_events"
    max_params = 5000
    byte_order = ' COLLATE "C"'  # the database's collation may sort text otherwise

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__()
        self._on_path: weakref.WeakSet[Any] = weakref.WeakSet()  # connections `_transaction` set
        server, self.schema = postgres_server(url)
        # One direct connection first: the pool below retries a server it cannot reach
        # for its whole timeout and then says only that it got no connection, where
        # the driver says at once why (refused, no such database, no such role).
        if not _holds_a_store(server, self.schema, redacted(url)) and not create:
            raise StoreNotFound(redacted(url))
        self._server = server
        # eventsourcing once the server answered: a store that cannot be reached fails
        # without waiting for it to load.
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

        self.datastore = PostgresDatastore(
            **server,
            schema=self.schema,
            pool_size=2,
            max_overflow=8,
            connect_timeout=10,
            # A pooled connection is checked before use: after a server restart the first
            # round of a service gets a fresh connection instead of a dead one.
            pre_ping=True,
        )
        self.ready = self.schema_ready()
        # The current-moments table split by a hash of the person group, the per-customer
        # tables by one of the customer id (SPEC §6): an erasure's scrub (VACUUM FULL) then
        # rewrites the parts that held her rows, not the tables (mostly index builds). A new
        # store is made split unless MOT_PG_SPLIT_MOMENTS=0; one made before keeps its layout
        # (whole, an older store's) until a replay asked otherwise (bench/NOTES.md).
        layout = self._moments_layout()
        asked = os.environ.get(SPLIT_ENV, "").strip()
        split = asked == "1" or (asked != "0" and layout != "r")
        self.partitions = SPLIT_PARTS if split else 0
        self.split_tables = split or layout == "p"
        if self.ready:
            self.recorder = PostgresApplicationRecorder(self.datastore)
            return
        with self.schema_lock():
            if self.schema != "public":
                with self.datastore.transaction(commit=True) as curs:
                    # A schema made here is this process's to `discard`; one that was there
                    # (made for the store, with its grants) is never dropped.
                    curs.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
                    self.created = curs.fetchone() is None
                    curs.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            self.recorder = PostgresApplicationRecorder(self.datastore)
            self.recorder.create_table()

    def server_uri(self) -> str | None:
        return libpq_uri(self._server, self.schema)

    def schema_lock(self) -> AbstractContextManager[None]:
        # PostgreSQL refuses concurrent CREATE ... IF NOT EXISTS of the same catalog
        # entries ("tuple concurrently updated"); a session advisory lock on a
        # connection of its own makes processes opening the store take turns.
        return self._session_lock(_lock_key("ddl"), None)

    def process_lock(self, name: str, waiting: Callable[[], None] | None = None
                     ) -> AbstractContextManager[None]:
        # Keyed by schema too: stores in other schemas of the database do not wait.
        return self._session_lock(_lock_key(f"{self.schema}:{name}"), waiting)

    @contextmanager
    def _session_lock(self, key: int, waiting: Callable[[], None] | None) -> Iterator[None]:
        # A session advisory lock on a connection held for the block: the server releases
        # it when that connection ends, as it does when the process dies.
        with self.datastore.get_connection() as conn:
            locked = conn.cursor(row_factory=tuple_row).execute(
                "SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if not (locked and locked[0]):
                if waiting is not None:
                    waiting()
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    @contextmanager
    def _transaction(self, lock: str | None, waiting: Callable[[], None] | None = None
                     ) -> Iterator[Tx]:
        with self.datastore.get_connection() as conn:
            if conn not in self._on_path:
                # The store's schema on the connection's path for its session (every connection
                # of this pool is this store's, and nothing sets another path but for a
                # transaction): once, where a SET LOCAL cost every transaction a round trip.
                conn.execute(f'SET search_path TO "{self.schema}"')
                self._on_path.add(conn)
            with conn.transaction():
                cursor = conn.cursor(row_factory=tuple_row)
                if lock == "ledger":
                    # The recorder's own lock, taken before we look for duplicates.
                    if waiting is None:
                        lock_ledger(self.recorder, conn.cursor())
                    else:
                        _lock_ledger_waiting(self.recorder, conn, waiting)
                elif lock is not None:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(lock),))
                yield Tx(cursor, conn.cursor(), "%s")

    def begin_write(self, lock: str, waiting: Callable[[], None] | None = None) -> Any:
        return self._transaction(lock, waiting)

    def begin_read(self) -> Any:
        return self._transaction(None)

    def unavailable(self, error: BaseException) -> bool:
        import psycopg
        import psycopg_pool
        from eventsourcing.persistence import InterfaceError, OperationalError

        # OperationalError: refused, reset, terminated by the administrator, shutting down.
        # A statement that fails (a constraint, a syntax error) is a DatabaseError, not these.
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError
                          | psycopg_pool.PoolTimeout | OperationalError | InterfaceError)

    def insert_stored_events(self, tx: Tx, rows: Sequence[StoredRow]) -> None:
        if not rows:
            return
        # Into the recorder's table, under the recorder's lock (held since `write`
        # began, so notification ids are assigned in commit order), with COPY: the
        # recorder's unnest() of composite values costs far more per row to encode
        # than COPY. The rows are encoded here in COPY's binary format in one
        # buffer (psycopg's row writer spends more per row than the server does).
        # The NOTIFY keeps eventsourcing's subscribers informed.
        notify_ledger(self.recorder, tx.native)
        with tx.cursor.copy(
            f'COPY "{self.schema}".stored_events (originator_id, originator_version, topic, state)'
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(copy_binary(rows))

    def point_reads(self, tx: Tx) -> None:
        # Without statistics (a table never analyzed: autovacuum off) the planner takes an
        # `= ANY` of a thousand keys to match the whole ledger: at a million stored events it
        # read them in two parallel workers and compiled the plan (JIT), for every batch
        # (bench/NOTES.md).
        tx.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        tx.execute("SET LOCAL jit = off")

    def scratch_join(self, tx: Tx) -> None:
        # Two temporary tables of a range's ~100,000 moments, never analyzed: with the
        # default work_mem the planner sorted both on disk to merge them, and compiled the
        # plan (JIT), three times slower (EXPLAIN ANALYZE, bench/NOTES.md).
        tx.execute("SET LOCAL jit = off")
        tx.execute("SET LOCAL work_mem = '64MB'")

    def select_streams(self, tx: Tx, stream_ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        # The ids as one array literal: psycopg dumps a list of UUIDs element by element.
        # Ordered by the column, not by the text it is selected as (the same order): the
        # primary key's order, which the planner then reads the rows in. Ordered by the text,
        # a table without statistics (never analyzed: autovacuum off) was read whole, in
        # parallel, and sorted, for every batch, more each batch as the ledger grew.
        return tx.query(
            "SELECT originator_id::text, originator_version, topic, state FROM stored_events"
            " WHERE originator_id = ANY(?::uuid[])"
            " ORDER BY stored_events.originator_id, originator_version",
            ("{" + ",".join(stream_ids) + "}",),
        )

    def select_notifications(self, after: int, limit: int) -> Sequence[Notification]:
        return list(self.recorder.select_notifications(after, limit, inclusive_of_start=False))

    def bulk_insert(self, tx: Tx, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        # COPY: an executemany sends a statement per row, even pipelined.
        with tx.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def select_customers(self, tx: Tx, columns: str, table: str,
                         keys: Collection[tuple[str, str]], where: str = "",
                         order: Sequence[str] = (), column: str = "customer_id"
                         ) -> list[tuple[Any, ...]]:
        # The keys as two arrays joined in one statement a chunk: a round trip to the
        # server per customer would cost far more than the server's work.
        sort = "".join(f", m.{column}" for column in order)
        rows: list[tuple[Any, ...]] = []
        with self._key_by_key(tx):
            for chunk in chunks(sorted(keys), self.max_params):
                rows += tx.query(
                    f"SELECT {columns} FROM {table} m"
                    " JOIN unnest(?::text[], ?::text[]) AS k(k_tenant, k_customer)"
                    f" ON m.tenant = k.k_tenant AND m.{column} = k.k_customer"
                    f" WHERE TRUE{where}" + (f" ORDER BY m.tenant, m.{column}{sort}"
                                             if order else ""),
                    ([key[0] for key in chunk], [key[1] for key in chunk]),
                )
        return rows

    @contextmanager
    def _key_by_key(self, tx: Tx) -> Iterator[None]:
        """Around a join of a split table (`create_by_person`) on a list of its person keys:
        the planner, costing sixteen parts' index probes a key, hashed or merged whole parts
        instead (at 1,000,000 moments 1,500 customers' relationships 114 ms against 42 ms
        probed key by key, each key's part found at run time; bench/NOTES.md)."""
        if not self.split_tables:
            yield
            return
        tx.execute("SELECT set_config('enable_hashjoin', 'off', true),"
                   " set_config('enable_mergejoin', 'off', true)")
        yield
        tx.execute("SELECT set_config('enable_hashjoin', 'on', true),"
                   " set_config('enable_mergejoin', 'on', true)")

    def json_documents(self, events: str) -> str:
        # jsonb parses each event once for all its fields. OFFSET 0 keeps the planner from
        # pulling the subquery up, which would copy the ::jsonb parse into every field's
        # expression.
        return f"(SELECT convert_from(e.state, 'UTF8')::jsonb AS s FROM {events} OFFSET 0) AS parsed"

    def json_value(self, path: Sequence[str], type: str, document: str = "s") -> str:
        where = "{" + ",".join(path) + "}"
        if type == "json":
            return f"{document} #> '{where}'"
        return f"({document} #>> '{where}'){_JSON_CASTS[type]}"

    def json_micros(self, path: Sequence[str]) -> str:
        return f"(extract(epoch from {self.json_value(path, 'text')}::timestamptz) * 1000000)::bigint"

    def row_cursor(self, tx: Tx) -> Any:
        # A server-side cursor: a client-side one would receive every row at once.
        return tx.cursor.connection.cursor(name=f"mot_rows_{os.urandom(4).hex()}",
                                           row_factory=tuple_row)

    def in_list(self, count: int) -> str:
        # One array parameter: planning and binding a thousand separate
        # parameters costs PostgreSQL far more than unpacking one array.
        return "= ANY(?)"

    def in_params(self, values: Sequence[Any]) -> Sequence[Any]:
        return [array_literal(values)]

    def rows_source(self, types: Sequence[str], count: int) -> str:
        # One array a column: a statement of one parameter a value is parsed anew by the
        # driver and planned anew by the server for every count of rows.
        return f"unnest({', '.join(f'?::{t}[]' for t in types)})"

    def rows_params(self, rows: Sequence[Sequence[Any]]) -> Sequence[Any]:
        return [array_literal(column) for column in zip(*rows, strict=True)]

    def stream_id_param(self, stream_id: str) -> Any:
        return stream_id  # canonical UUID text; COPY and queries convert it

    def moment_stream_param(self, tenant: str, moment_id: str) -> Any:
        # The id as it is (`stream_id_param` changes nothing), without the base class's
        # import statement and second call: this runs for every message recorded.
        return moment_stream_id(tenant, moment_id)

    stream_id_text = "originator_id::text"
    stream_id_value = "CAST(? AS uuid)"

    statistics_follow_rename = True

    def analyze(self, tables: Sequence[str]) -> None:
        # VACUUM too (it cannot run in a transaction; the pool's connections autocommit):
        # it marks freshly loaded pages all-visible, so a read that one index covers, as
        # the fold's range reads are, skips the table and its sort.
        with self.datastore.get_connection() as conn:
            for table in tables:
                conn.execute(f'VACUUM (ANALYZE) "{self.schema}".{table}')

    def create_by_person(self, tx: Tx, table: str, statement: str, column: str) -> None:
        if self.table_exists(tx, table):
            return  # made before (split or not: an older store's stays whole until a replay)
        tx.execute(f"{statement} PARTITION BY HASH ({column})")
        # Parts named anew each time: a rebuild's keep their names when its table is
        # renamed into place, beside the next rebuild's.
        tag = os.urandom(4).hex()
        stem = table.split("__", 1)[0]
        columns = [str(name) for name, in tx.query(
            "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ?"
            " AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self.schema, table))]
        statistics = ", ".join(f"ALTER COLUMN {column} SET STATISTICS {PART_STATISTICS}"
                               for column in columns)
        tx.execute(f"ALTER TABLE ONLY {table} {statistics}")
        for part in range(self.partitions):
            name = f"{stem}_p{part}_{tag}"
            tx.execute(f"CREATE TABLE {name} PARTITION OF {table}"
                       f" FOR VALUES WITH (MODULUS {self.partitions}, REMAINDER {part})")
            tx.execute(f"ALTER TABLE {name} {statistics}")

    def _moments_layout(self) -> str | None:
        """The current-moments table's kind: 'p' split, 'r' whole, None when there is none."""
        with self.datastore.get_connection() as conn:
            row = conn.cursor(row_factory=tuple_row).execute(
                "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = 'moments'", (self.schema,)).fetchone()
        return None if row is None else str(row[0])

    def is_split(self, tx: Tx, table: str) -> bool:
        return bool(tx.scalar("SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n"
                              " ON n.oid = c.relnamespace WHERE n.nspname = ? AND c.relname = ?"
                              " AND c.relkind = 'p'", (self.schema, table)))

    def holding(self, tx: Tx, table: str, where: str, params: Sequence[Any]) -> list[str]:
        return [str(row[0]) for row in tx.query(
            f"SELECT c.relname FROM pg_class c WHERE c.oid IN"
            f" (SELECT DISTINCT tableoid FROM {table} WHERE {where})", params)]

    @contextmanager
    def by_index(self, tx: Tx) -> Iterator[None]:
        if not self.split_tables:
            yield
            return
        # Local to the transaction, and set back for the statements after this read.
        tx.execute("SELECT set_config('enable_seqscan', 'off', true)")
        yield
        tx.execute("SELECT set_config('enable_seqscan', 'on', true)")

    def erasing(self, tx: Tx) -> None:
        # What is deleted stays in dead tuples until `scrub` (VACUUM FULL) after the commit.
        tx.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key("projections"),))

    scrub_connections = 3
    """How many tables an erasure's scrub rewrites at once, each on a connection of its own."""

    def scrub(self, tables: Sequence[str], waiting: Callable[[], None] | None = None) -> None:
        # Deleted and updated rows stay in the pages as dead tuples until vacuumed, and a
        # plain VACUUM leaves their bytes in the freed space: FULL writes the table and its
        # indexes anew and unlinks the old files. The tables are rewritten at once on
        # connections of their own, the largest first (each rewrite is one server process,
        # mostly waiting on its own CPU and writes: the small tables go by while the
        # largest is copied).
        if not tables:
            return
        import threading
        from concurrent.futures import ThreadPoolExecutor

        with self.datastore.get_connection() as conn:
            sizes: dict[str, int] = {str(name): int(size) for name, size in conn.cursor(
                row_factory=tuple_row).execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = ANY(%s)",
                (self.schema, list(tables))).fetchall()}
        pending = sorted(tables, key=lambda t: (-sizes.get(t, 0), t))
        self._await_horizon(waiting)
        taking = threading.Lock()

        def rewrite() -> None:
            with self.datastore.get_connection() as conn:
                # The rewrite sorts each index anew: in memory rather than in temporary files.
                conn.execute("SET maintenance_work_mem = '256MB'")
                try:
                    while True:
                        with taking:
                            if not pending:
                                return
                            table = pending.pop(0)
                        self._vacuum_full(conn, table)
                finally:
                    with suppress(psycopg.Error):  # the connection goes back to the pool
                        conn.execute("RESET maintenance_work_mem")

        with ThreadPoolExecutor(min(self.scrub_connections, len(pending))) as pool:
            for running in [pool.submit(rewrite) for _ in range(min(self.scrub_connections,
                                                                    len(pending)))]:
                running.result()

    HORIZON_WAIT_S = 250.0
    """How long `scrub` waits for older transactions before rewriting anyway (then
    `_vacuum_full` retries, and says which table a long transaction keeps readable)."""

    def _await_horizon(self, waiting: Callable[[], None] | None = None) -> None:
        """Wait until every transaction begun before now has ended: those of the whole server
        (a `VACUUM FULL` keeps a snapshot, and a snapshot's xmin is the oldest transaction
        running anywhere, so another database's import keeps the erased rows "not removable
        yet"), and this database's readers' snapshots. Rewriting before that copies the
        erased rows, and each retry of `_vacuum_full` rewrote the whole table again (at
        1,000,000 moments several seconds of the server's CPU a retry, on a busy server many
        retries); waiting costs one query every few hundredths of a second. The snapshots of
        other users' sessions are not shown to a role without pg_read_all_stats: those are
        left to `_vacuum_full`'s retries."""
        import time

        with self.datastore.get_connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            row = cursor.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
            assert row is not None
            target = int(row[0])  # every transaction begun before now has an older id
            deadline = time.monotonic() + self.HORIZON_WAIT_S
            pause = 0.01
            while time.monotonic() < deadline:
                row = cursor.execute(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint >= %s"
                    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname ="
                    " current_database() AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL"
                    " AND age(backend_xmin) > age(%s::text::xid))",
                    (target, str(target % 2**32))).fetchone()
                if row is not None and row[0]:
                    return
                if waiting is not None and pause == 0.01:
                    waiting()
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    def _vacuum_full(self, conn: Any, table: str) -> None:
        """`VACUUM FULL` of one table. It copies the dead rows a transaction begun before the
        deletion may still see ("cannot be removed yet", in its verbose report): then it
        runs again once that transaction is over."""
        import re
        import time

        notices: list[str] = []

        def heard(notice: Any) -> None:
            notices.append(f"{notice.message_primary} {notice.message_detail or ''}")

        conn.add_notice_handler(heard)
        try:
            for attempt in range(100):
                notices.clear()
                conn.execute(f'VACUUM (FULL, VERBOSE) "{self.schema}".{table}')
                kept = [int(m.group(1)) for n in notices
                        for m in [re.search(r"(\d+) dead row versions cannot be removed", n)] if m]
                if not any(kept):
                    return
                time.sleep(0.05 * (attempt + 1))
            raise RuntimeError(f"{table}: a long transaction keeps erased rows readable;"
                               " run the erasure again once it ends")
        finally:
            conn.remove_notice_handler(heard)

    def index_names(self, tx: Tx, tables: Sequence[str]) -> list[str]:
        # Primary keys are told apart by the catalog, not by name: a table renamed by a
        # swap keeps its key's name, and the next rebuild's key becomes `..._pkey1`.
        rows = tx.query("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                        " JOIN pg_class t ON t.oid = i.indrelid"
                        " JOIN pg_namespace n ON n.oid = t.relnamespace"
                        " WHERE n.nspname = ? AND t.relname = ANY(?) AND NOT i.indisprimary"
                        " ORDER BY c.relname", (self.schema, list(tables)))
        return [str(row[0]) for row in rows]

    def table_exists(self, tx: Tx, name: str) -> bool:
        # The catalog itself: information_schema.tables checks privileges row by row (an
        # erasure asks a dozen times).
        return bool(tx.scalar(
            "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ? AND c.relname = ? AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (self.schema, name),
        ))

    # -- stages: UNLOGGED tables of the store's schema -----------------------------------
    # Unlogged: scratch written without WAL. A server crash empties them; the rebuild
    # then finds a stage short of the moments it was filled with, stops, and run again
    # stages that range anew.
    def fill_stage(self, create: Callable[[str], str], fill: Callable[[Tx, str], int]
                   ) -> tuple[str, int]:
        name = f"{STAGE_PREFIX}{os.urandom(8).hex()}"
        statement = create(name)
        assert statement.startswith("CREATE TABLE")
        with self._transaction(None) as tx:
            tx.execute(statement.replace("CREATE TABLE", "CREATE UNLOGGED TABLE", 1))
            count = fill(tx, name)
        return name, count

    @contextmanager
    def reading_stage(self, stage: str) -> Iterator[str]:
        try:
            yield stage
        finally:
            with self._transaction(None) as tx:
                tx.execute(f"DROP TABLE IF EXISTS {stage}")

    def drop_stages(self) -> None:
        with self._transaction(None) as tx:
            for (name,) in tx.query("SELECT tablename FROM pg_tables WHERE schemaname = ?"
                                    " AND starts_with(tablename, ?)", (self.schema, STAGE_PREFIX)):
                tx.execute(f'DROP TABLE IF EXISTS "{name}"')

    def close(self) -> None:
        self.datastore.close()

    def discard(self) -> bool:
        try:
            if not self.created:
                return False
            with self.schema_lock(), self.datastore.transaction(commit=True) as curs:
                curs.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))
                names = [row["tablename"] for row in curs.fetchall()]  # eventsourcing's dict rows
                tables = [sql.Identifier(self.schema, name) for name in names]
                # NOWAIT: a process that has the store in use keeps it; once locked, no other
                # can write to it before it is gone (a statement after that fails, nothing is
                # lost unseen).
                curs.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT").format(
                    sql.SQL(", ").join(tables)))
                for name, table in zip(names, tables, strict=True):
                    if name in self.bookkeeping:
                        continue
                    curs.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(table))
                    if curs.fetchone() is not None:
                        return False
                curs.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.schema)))
            return True
        except Exception:  # locked by another process, or gone: kept, as it is
            return False
        finally:
            self.close()


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_row_head = struct.Struct("!hi16siqi").pack  # 4 fields; uuid (16 bytes); int8; topic length
_length = struct.Struct("!i").pack


def array_literal(values: Sequence[Any]) -> Any:
    """A list of str, or of bytes, as one array literal in PostgreSQL's text form (a str, sent
    untyped, which the statement's cast or column types); any other list as a list.

    psycopg dumps a list element by element in Python, and searches each text element with a
    regular expression for what to quote (a bytea element is escaped by another): for the
    keys a sealed import makes, that was most of the keystore's cost in the recording process.
    Here every element is quoted, so none reads as NULL, and a backslash or a double quote in
    it is escaped."""
    if values and all(type(v) is str for v in values):
        joined = "\x00".join(values)  # PostgreSQL's text holds no NUL: a safe separator
        if joined.count("\x00") != len(values) - 1:
            return list(values)
        if "\\" in joined or '"' in joined:
            joined = joined.replace("\\", "\\\\").replace('"', '\\"')
        return '{"' + joined.replace("\x00", '","') + '"}'
    if values and all(type(v) is bytes for v in values):
        return "{" + ",".join(['"\\\\x' + v.hex() + '"' for v in values]) + "}"
    return list(values)


def copy_binary(rows: Sequence[StoredRow]) -> bytes:
    """Stored events in COPY's binary format (signature, rows, trailer)."""
    parts: list[bytes | bytearray] = [_COPY_SIGNATURE]
    topics: dict[str, bytes] = {}
    for moment_id, version, topic, state in rows:
        encoded = topics.get(topic)
        if encoded is None:
            encoded = topics[topic] = topic.encode()
        parts.append(_row_head(4, 16, bytes.fromhex(moment_id.replace("-", "")), 8, version,
                               len(encoded)))
        parts.append(encoded)
        parts.append(_length(len(state)))
        parts.append(state)
    parts.append(_COPY_TRAILER)
    return b"".join(parts)


_JSON_CASTS = {"text": "", "real": "::double precision", "bigint": "::bigint", "int": "::integer"}
CONNECT_TIMEOUT_S = 2  # the least libpq and psycopg accept


def _holds_a_store(server: Server, schema: str, shown: str) -> bool:
    """Whether the database holds a mot store in `schema`, asked on a connection of its own
    that changes nothing; `StoreUnavailable` with the driver's reason when the server
    cannot be reached or refuses us."""
    try:
        with psycopg.connect(**server, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            found = conn.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s"
                " AND table_name IN ('stored_events', 'mot_schema')", (schema,)).fetchone()
    except psycopg.OperationalError as error:
        raise StoreUnavailable(f"cannot reach the store {shown}: {_reason(error)}") from None
    return bool(found and found[0])


def _reason(error: Exception) -> str:
    """The driver's reason in one line: `connection to server at "h", port 5433 failed:
    Connection refused` (its hints on further lines dropped)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.removeprefix("connection failed: ").replace("FATAL:  ", "")


# -- eventsourcing's recorder, through its public attributes only --------------------------
# mot appends to the recorder's table itself (COPY) and must take the same table lock and
# send the same NOTIFY as the recorder's own inserts, so that notification ids commit in
# order and eventsourcing's subscribers hear of them. The recorder exposes the statements
# (`lock_table_statements`, `channel_name`); tests/test_postgres_backend.py fails if it
# stops doing so or if the lock is no longer taken.

def lock_ledger(recorder: PostgresApplicationRecorder, cursor: Any) -> None:
    """Take the recorder's EXCLUSIVE lock of the stored events table (held to commit)."""
    for statement in recorder.lock_table_statements:
        cursor.execute(statement, prepare=True)


def _lock_ledger_waiting(recorder: PostgresApplicationRecorder, conn: Any,
                         waiting: Callable[[], None]) -> None:
    """`lock_ledger`, waiting for the lock `LOCK_SLICE_S` at a time (lock_timeout, in a
    savepoint that a refusal rolls back) with `waiting()` between. The recorder's statements
    are its own lock_timeout setting, then the LOCK TABLE: set again after, so the rest of
    the transaction has the recorder's setting."""
    *settings, lock = recorder.lock_table_statements
    cursor = conn.cursor()
    while True:
        try:
            with conn.transaction():
                cursor.execute(f"SET LOCAL lock_timeout = '{int(LOCK_SLICE_S * 1000)}ms'")
                cursor.execute(lock)
            break
        except psycopg.errors.LockNotAvailable:
            waiting()
    for statement in settings:
        cursor.execute(statement, prepare=True)


def notify_ledger(recorder: PostgresApplicationRecorder, cursor: Any) -> None:
    """Tell the recorder's listeners that events were appended (sent at commit)."""
    cursor.execute(sql.SQL("NOTIFY {0}").format(sql.Identifier(recorder.channel_name)))


def _lock_key(name: str) -> int:
    return zlib.crc32(f"mot:{name}".encode())
