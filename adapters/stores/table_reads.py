"""Whole-table reads for analysts on SQL: the pages `mot export` and `mot verify` read, and
the counts `mot report` draws (the ports `TableReader` of service/export.py and
`ReportReads` of service/report.py).

A read runs in one read transaction, a page at a time (a server-side cursor on
PostgreSQL), so memory stays flat however many rows a table holds. Arrow pages of
a SQLite file come from the ADBC SQLite driver (`_arrow_stream`), of PostgreSQL from
the ADBC PostgreSQL driver (`_arrow_postgres`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mot.adapters.stores.sql import SqlBackend
    from mot.service.export import TableRead

PG_BATCH_BYTES = 1 << 20  # the ADBC PostgreSQL driver's batches (see `_arrow_postgres`)
GROUP_PAGE_ROWS = 65_536  # rows counted at a time by `grouped` on SQLite (see `_counted`)
# The tables whose counts on SQLite are made by hashing Arrow pages (`_counted`): the
# current moments, many rows in a few groups per day (direction, kind), where SQLite's sort
# of every row took twice the CPU. The other tables' groups grow with their rows (a
# response time, a post's delay): Arrow would hold them all at once, and peak RSS grew with
# N, while SQLite's sorter streams them in bounded memory (bench/NOTES.md).
HASHED = frozenset({"moments"})

# A text time of a projection (`micros_to_text`'s RFC 3339: seconds, then six digits of a
# fraction when there is one, then Z) read as its microseconds, under another name than
# the column's, so that an ORDER BY of the column still sorts by the column.
_SQLITE_MICROS = ("CAST(strftime('%s', substr({c}, 1, 19)) AS INTEGER) * 1000000"
                  " + CASE WHEN length({c}) > 20 THEN CAST(substr({c}, 21, 6) AS INTEGER)"
                  " ELSE 0 END AS {c}__us")
_PG_MICROS = ("extract(epoch FROM date_trunc('second', {c}::timestamptz))::bigint * 1000000"
              " + extract(microseconds FROM {c}::timestamptz)::bigint % 1000000 AS {c}__us")

# The value a typed placeholder row holds per stored type (see `_arrow_stream`).
_SENTINELS = {"text": "''", "json": "''", "list": "''", "int": "0", "bigint": "0", "real": "0.5", "bool": "0"}


def stored_type(table: str, column: str) -> str:
    """A column's declared type (projections/schema.py); `version` and the like are bigint."""
    # Imported here: the PostgreSQL export starts its connections (`open_early`) before
    # the schema's dataclasses are built.
    from mot.projections.schema import MOMENT_FIELDS, PROJECTIONS

    if table == "moments":
        types = {f.name: str(f.type) for f in MOMENT_FIELDS}
    else:
        types = {f.col: str(f.type) for f in PROJECTIONS[table].stored}
    return types.get(column, "bigint")


class SqlTableReader:
    """Implements `TableReader` and `ReportReads` on a SqlBackend."""

    def __init__(self, backend: SqlBackend) -> None:
        self.backend = backend
        self.adbc = _AdbcStores()
        # Whether a SQLite file may be read with the ADBC driver in this process (`serving`).
        self.arrow_here = True

    def serving(self) -> None:
        """This process keeps the store open beside other processes (mot serve): its reads
        of a SQLite file go through its own connections, never the ADBC driver's SQLite.
        POSIX locks are the process's: when the driver's SQLite released or closed the file,
        every lock of the process on it went, its own connections' too, and the next
        command to close the store, finding no one else, deleted the write-ahead log and
        its index under it; the server's later commits went to a deleted file, answered
        and seen by no other process. A command that only reads (mot report, mot export)
        writes nothing that could be lost so, and keeps the Arrow reads."""
        self.arrow_here = False

    def close(self) -> None:
        """Close the ADBC databases the Arrow reads opened."""
        self.adbc.close()

    def pages(self, read: TableRead) -> Iterator[list[Any]]:
        backend = self.backend
        params = _params(read)

        def statement(selected: Sequence[str]) -> str:
            return _statement(read, selected, backend.byte_order)

        sqlite_file = backend.local_file() if read.arrow and self.arrow_here else None
        if sqlite_file is not None:
            selected = [_SQLITE_MICROS.format(c=c) if c in read.micros else c
                        for c in read.columns]
            with backend.read():  # the store's own connection, open (see `_read_only`)
                yield from _arrow_stream(self.adbc.database("sqlite", sqlite_file), read,
                                         statement(selected), params)
            return
        server = backend.server_uri() if read.arrow else None
        if server is not None:
            yield from _postgres_pages(self.adbc.database("postgresql", server), read,
                                       backend.byte_order)
            return
        if read.micros:
            raise ValueError("times as microseconds are read as Arrow only")
        with backend.read() as tx:
            for rows in backend.stream_rows(tx, statement(read.columns), params,
                                            read.page_rows):
                yield [list(column) for column in zip(*rows, strict=True)]

    def grouped(self, table: str, columns: Sequence[str], *, tenant: str | None,
                since_us: int | None = None, until_us: int | None = None,
                per_day: bool = False) -> list[tuple[Any, ...]]:
        from mot.service.export import TableRead
        from mot.service.report import DAY_US

        where: list[str] = ["TRUE"]
        params: list[Any] = []
        for condition, value in (("tenant = ?", tenant), ("occurred_us >= ?", since_us),
                                 ("occurred_us <= ?", until_us)):
            if value is not None:
                where.append(condition)
                params.append(value)
        keys = ["tenant", *([f"occurred_us / {DAY_US}"] if per_day else []), *columns]
        sqlite_file = self.backend.local_file()
        selected = f"SELECT {', '.join(keys)} FROM {table} WHERE {' AND '.join(where)}"
        with self.backend.read() as tx:
            if not self.backend.table_exists(tx, table):
                return []
            if sqlite_file is None or table not in HASHED or not self.arrow_here:
                # PostgreSQL counts by hashing, on the server. SQLite sorts, in its sorter's
                # bounded memory and then streamed: `+tenant` keeps it from walking an index
                # on tenant that holds no other key of the group, a row read at random for
                # each entry, where a scan reads them in order (bench/NOTES.md).
                first = "+tenant" if sqlite_file is not None else "tenant"
                grouping = ", ".join(str(i) for i in range(1, len(keys) + 1))
                tx.cursor.execute(tx.sql(
                    f"SELECT {', '.join([first, *keys[1:]])}, COUNT(*) FROM {table}"
                    f" WHERE {' AND '.join(where)} GROUP BY {grouping}"), params)
                return _shared_texts(tx.cursor)
            read = TableRead(table, tuple(keys), page_rows=GROUP_PAGE_ROWS, arrow=True)
            return _counted(_arrow_stream(self.adbc.database("sqlite", sqlite_file), read,
                                          selected, params), len(keys))


class PostgresArrowReader:
    """Implements `TableReader` for Arrow reads of a PostgreSQL store through the ADBC
    driver alone, without the store's own driver and pool: what `mot export --format
    parquet --no-refresh` reads. Opening the store whole (psycopg's import, its pool's,
    a connection to check for the store and its schema) was a third of the export's CPU
    at 100,000 moments (bench/NOTES.md)."""

    def __init__(self, server_uri: str) -> None:
        self.server = server_uri
        self.adbc = _AdbcStores()
        self.opening: threading.Thread | None = None
        self.open_failed = False

    def open_early(self) -> None:
        """Start opening the ADBC database and a first connection in a thread of their own,
        while the command goes on importing what it runs on: the driver's loading, the
        server's connections (a process forked and authenticated for each) and its type
        catalogue are round trips and C code run without the GIL, which the export's
        start-up otherwise waited for one after the other (bench/NOTES.md). The connection
        is left idle for the first read; a failure is left for `schema_version` to report
        as no store (the whole store's opening then says why)."""

        def run() -> None:
            try:
                with self.adbc.database("postgresql", self.server).connection(()):
                    pass
            except Exception:
                self.open_failed = True

        self.opening = threading.Thread(target=run, name="export-connect", daemon=True)
        self.opening.start()

    def _opened(self) -> bool:
        """Whether the early opening (if any) has ended without failing."""
        if self.opening is not None:
            self.opening.join()
            self.opening = None
        return not self.open_failed

    def schema_version(self) -> int | None:
        """The store's schema version; None when the database holds no mot store at that
        schema (or cannot be read: the whole store's opening says why)."""
        if not self._opened():  # an unreachable server is not waited for twice
            return None
        import pyarrow as pa

        try:
            batches = list(_adbc_batches(self.adbc.database("postgresql", self.server),
                                         "SELECT MAX(version)::bigint FROM mot_schema", (), {}))
        except Exception:  # no such database, role, schema or table; no server
            return None
        found = pa.Table.from_batches(batches).column(0).to_pylist() if batches else []
        return int(found[0]) if found and found[0] is not None else None

    def pages(self, read: TableRead) -> Iterator[list[Any]]:
        if not read.arrow or read.byte_order:  # the export's reads: Arrow, in stored order
            raise ValueError("the ADBC reader reads Arrow pages in the tables' order only")
        yield from _postgres_pages(self.adbc.database("postgresql", self.server), read, "")

    def close(self) -> None:
        self._opened()  # the early opening's connection closes with the others
        self.adbc.close()


def _params(read: TableRead) -> list[Any]:
    """The values of `_statement`'s placeholders, in order."""
    return [v for v in (read.tenant, read.occurred_until_us) if v is not None]


def _statement(read: TableRead, selected: Sequence[str], byte_order: str) -> str:
    """The SELECT of a whole-table read: `selected` of the table, of the tenant and the
    moments up to the time the read asks for, in its order."""
    where = [condition for condition, value in (("tenant = ?", read.tenant),
                                                ("occurred_us <= ?", read.occurred_until_us))
             if value is not None]
    collate = byte_order if read.byte_order else ""
    order = ", ".join(f"{c}{collate}" if stored_type(read.table, c) == "text" else c
                      for c in read.order)
    return (f"SELECT {', '.join(selected)} FROM {read.table}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + (f" ORDER BY {order}" if order else ""))


def _postgres_pages(database: _Database, read: TableRead, byte_order: str
                    ) -> Iterator[list[Any]]:
    """A whole-table read of a PostgreSQL store as Arrow pages (`_arrow_postgres`)."""
    # 32-bit integers as 64-bit ones, the exported type, by the server.
    selected = [_PG_MICROS.format(c=c) if c in read.micros
                else f"{c}::bigint AS {c}" if stored_type(read.table, c) == "int"
                else c for c in read.columns]
    yield from _arrow_postgres(database, read, _statement(read, selected, byte_order),
                               _params(read))


def _shared_texts(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The rows as tuples, each text value one object however many rows repeat it (a
    tenant, a team): the drivers make a new string per value, and groups of response times
    or delays grow with the store's rows."""
    texts: dict[str, str] = {}
    share = texts.setdefault
    return [tuple(share(v, v) if isinstance(v, str) else v for v in row) for row in rows]


def _counted(pages: Iterator[list[Any]], width: int) -> list[tuple[Any, ...]]:
    """(*key, count) of the rows of Arrow pages of `width` key columns, counted by hashing.

    SQLite groups by sorting every row; read as Arrow pages and counted a page at a time
    by Arrow's hash aggregation, the counts per tenant, day, direction and kind take about
    half the CPU of its sorter (measured at 1,000,000 moments: bench/NOTES.md). Memory
    holds a page and the groups, not the rows."""
    import pyarrow as pa

    names = [f"k{i}" for i in range(width)]
    parts = [pa.table(dict(zip(names, page, strict=True))).group_by(names, use_threads=False)
             .aggregate([([], "count_all")]) for page in pages]
    if not parts:
        return []
    summed = (pa.concat_tables(parts).group_by(names, use_threads=False)
              .aggregate([("count_all", "sum")]))
    return _shared_texts(zip(*(summed.column(name).to_pylist() for name in names),
                             summed.column("count_all_sum").to_pylist(), strict=True))


class _AdbcStores:
    """The ADBC databases of one store, opened at its first Arrow read and kept until the
    reader closes: the PostgreSQL driver loads the server's type catalogue when a
    database is first connected, CPU and a round trip that the export paid for each of its
    tables when each read opened its own (bench/NOTES.md). A read has a connection to
    itself while it runs (two tables are read at once, each in its own thread), and
    leaves it for the next read when it ends (`_Database`).

    The driver manager is used without its DB-API layer, which imports
    `pyarrow.dataset` (a tenth of a second of start-up that the export never uses)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: dict[tuple[str, str], _Database] = {}
        self.pins: list[Any] = []  # a connection per SQLite file, open as long as the database

    def database(self, driver: str, target: str) -> _Database:
        with self.lock:
            database = self.open.get((driver, target))
            if database is None:
                if driver == "sqlite":
                    import adbc_driver_sqlite

                    database = _Database(_connect(adbc_driver_sqlite, _read_only(target)))
                    self.pins.append(_pinned(database.database))
                else:
                    import adbc_driver_postgresql

                    database = _Database(_connect(adbc_driver_postgresql, target))
                self.open[(driver, target)] = database
            return database

    def close(self) -> None:
        with self.lock:
            databases, self.open = list(self.open.values()), {}
            pins, self.pins = self.pins, []
        for database in databases:  # the pinned connection last (see `_pinned`)
            database.close_idle()
        for pin in pins:
            pin.close()
        for database in databases:
            database.close()


def _connect(package: Any, uri: str) -> Any:
    """An ADBC database of a driver package (adbc_driver_sqlite, adbc_driver_postgresql) at
    `uri`: the shared library its wheel holds beside its module, as the package's own
    `connect` finds it first, but without importlib_resources, which that search imports
    with zipfile, tempfile, shutil, bz2 and lzma, a noticeable share of a PostgreSQL
    export's instructions (bench/NOTES.md). A driver installed otherwise
    (a system library) is found by the package."""
    import adbc_driver_manager

    library = os.path.join(os.path.dirname(package.__file__), f"lib{package.__name__}.so")
    if not os.path.isfile(library):
        return package.connect(uri)
    return adbc_driver_manager.AdbcDatabase(driver=library, uri=uri)


class _Database:
    """An ADBC database and its idle connections: a read takes one (or opens one) and gives
    it back when it has read every row, so the export's nine tables, read two at a time,
    are read through two connections. A new PostgreSQL connection is a server process
    started and authenticated, each paid in the export's wall time (bench/NOTES.md)."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.lock = threading.Lock()
        self.idle: list[Any] = []

    @contextmanager
    def connection(self, setup: Sequence[str]) -> Iterator[Any]:
        """A connection to itself for a read; `setup` runs on a new one (every read of a
        database gives the same)."""
        import adbc_driver_manager

        with self.lock:
            connection = self.idle.pop() if self.idle else None
        if connection is None:
            connection = adbc_driver_manager.AdbcConnection(self.database)
            try:
                for text in setup:
                    with adbc_driver_manager.AdbcStatement(connection) as first:
                        first.set_sql_query(text)
                        first.execute_update()
            except BaseException:
                connection.close()
                raise
        try:
            yield connection
        except BaseException:  # a read stopped part way (or failed): its connection ends
            connection.close()
            raise
        with self.lock:
            self.idle.append(connection)

    def close_idle(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()

    def close(self) -> None:
        self.close_idle()
        self.database.close()


def _pinned(database: Any) -> Any:
    """A connection of the driver's SQLite that holds the store's file and its log's index
    open, with their locks, until `_AdbcStores.close`.

    POSIX locks belong to the process, not to a SQLite library, and the driver's SQLite is
    not the one of Python's sqlite3: when its last connection to the file released its
    locks and closed the files, every lock of the process on them went, those of the
    store's own connections too (the shared lock on the database that says someone reads
    it, the one on the log's index that says it is in use). Another process then found no
    one else: closing the store, it checkpointed the log and deleted it and its index; or
    opening it, it cut the index to rebuild it, under the connections that map it (a
    SIGBUS), while `mot export` or `mot report` still read. While this connection lives,
    the driver's SQLite keeps its locks and defers closing the files of its other
    connections (as it does for any file one of its connections still locks)."""
    import adbc_driver_manager

    connection = adbc_driver_manager.AdbcConnection(database)
    try:
        with adbc_driver_manager.AdbcStatement(connection) as statement:
            statement.set_sql_query("SELECT COUNT(*) FROM sqlite_master")
            stream, _ = statement.execute_query()
            import pyarrow as pa

            pa.RecordBatchReader.from_stream(stream).read_all()
    except BaseException:
        connection.close()
        raise
    return connection


def _read_only(path: str) -> str:
    """A SQLite file's URI that opens it read-only, its write-ahead log's index too.

    The ADBC driver has a SQLite of its own, and two SQLite libraries in one process do
    not see each other's locks (POSIX locks are the process's), so the driver's acted as
    if no one else had the store open: opening, it cut the log's shared index (the -shm
    file) to 3 bytes to build it again, under the store's connections that map it (their
    next statement faulted: SIGBUS); closing its last connection, it checkpointed the log
    and deleted it and its index. Read-only it can do neither: it reads the index the
    store's connections keep, checked against the log (`readonly_shm`), and a reader holds
    one of those connections open while it reads, so the index exists."""
    from urllib.parse import quote

    return "file:" + quote(os.path.abspath(path)) + "?mode=ro&readonly_shm=1"


def _adbc_batches(database: _Database, statement: str, params: Sequence[Any],
                  options: dict[str, str], setup: Sequence[str] = ()) -> Iterator[Any]:
    """The record batches of a statement on a connection to an ADBC database that no other
    read uses meanwhile; `params` bound in order to its placeholders."""
    import adbc_driver_manager
    import pyarrow as pa

    # The statement ends before its connection goes back to the idle ones.
    with (database.connection(setup) as connection,
          adbc_driver_manager.AdbcStatement(connection) as query):
        query.set_options(**options)
        query.set_sql_query(statement)
        if params:
            query.bind(pa.record_batch([pa.array([value]) for value in params],
                                       names=[f"p{i}" for i in range(len(params))]))
        stream, _ = query.execute_query()
        reader = pa.RecordBatchReader.from_stream(stream)
        try:
            yield from reader
        finally:
            reader.close()


def _arrow_stream(database: _Database, read: TableRead, statement: str, params: Sequence[Any]
                  ) -> Iterator[list[Any]]:
    """The rows of a statement on a SQLite file as Arrow arrays, one list per page, read by
    the ADBC SQLite driver: Python's sqlite3 makes an object per value, which was most of
    an export's time.

    The driver infers each column's type from its first page, and a column that is NULL
    throughout that page would be typed INT64 and fail on a later REAL or TEXT. A first
    row of typed placeholders, flagged by `_placeholder` and dropped here, fixes the types
    to the stored ones (SQLite's column affinity keeps every later value of that type)."""
    placeholder = ", ".join(f"{_SENTINELS['bigint' if c in read.micros else stored_type(read.table, c)]}"
                            f" AS c{i}" for i, c in enumerate(read.columns))
    wrapped = (f"SELECT 1 AS _placeholder, {placeholder}"
               f" UNION ALL SELECT * FROM (SELECT 0, {statement[len('SELECT '):]})")
    from mot.adapters.stores.sqlite import BUSY_TIMEOUT_S

    # Wait for a lock as the store's own connections do (two tables are read at once,
    # and opening a file in WAL mode may briefly take one), rather than fail at once.
    busy = f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}"
    first = True
    for batch in _adbc_batches(database, wrapped, params,
                               {"adbc.sqlite.query.batch_rows": str(read.page_rows)}, (busy,)):
        if first:
            if batch.num_rows == 0 or batch.column(0)[0].as_py() != 1:
                raise RuntimeError(f"export of {read.table}: the type placeholder row did"
                                   " not come first")
            batch = batch.slice(1)
            first = False
        if batch.num_rows:
            yield batch.columns[1:]


def _arrow_postgres(database: _Database, read: TableRead, statement: str, params: Sequence[Any]
                    ) -> Iterator[list[Any]]:
    """The rows of a statement on PostgreSQL as Arrow arrays, read by the ADBC PostgreSQL
    driver: it fetches them by binary COPY and decodes them in C, where a psycopg cursor
    made a Python object per value. The driver's batches (PG_BATCH_BYTES, some 4,600 of
    the current moments) are gathered into pages of `page_rows`, each a Parquet row group:
    fewer, larger row groups cost the writer less CPU than a group a batch (measured:
    bench/NOTES.md)."""
    numbered = statement.split("?")
    statement = numbered[0] + "".join(f"${i}{rest}" for i, rest in enumerate(numbered[1:],
                                                                             start=1))
    # Batches of PG_BATCH_BYTES, not the driver's 16 MB: memory stays that of a few
    # batches (bench/export_bench.py's flat-memory check). A batch is the C library's
    # malloc, ~1.7 times its rows' bytes (its buffers grow by doubling), and a page holds
    # every batch it has a part of: with 2 MB batches a page of moments held 2-3 batches of
    # 3.3 MB, and the two pipelines' pages at 1,000,000 moments were peak RSS x1.23 of
    # 100,000's (bench/scaling_notes.toml).
    options = {"adbc.postgresql.batch_size_hint_bytes": str(PG_BATCH_BYTES)}
    import pyarrow as pa

    gathered: list[Any] = []  # batches (parts of one) making up the next page
    rows = 0
    for batch in _adbc_batches(database, statement, params, options):
        # JSONB arrives as Arrow's JSON extension type: its text, as on SQLite.
        batch = pa.record_batch([column.storage if hasattr(column, "storage") else column
                                 for column in batch.columns], names=batch.schema.names)
        start = 0
        while start < batch.num_rows:
            part = batch.slice(start, read.page_rows - rows)
            gathered.append(part)
            rows += part.num_rows
            start += part.num_rows
            if rows == read.page_rows:
                yield _page(gathered)
                gathered, rows = [], 0
    if rows:
        yield _page(gathered)


def _page(batches: Sequence[Any]) -> list[Any]:
    """A page of the batches' columns, one array per column (chunked when there are several
    batches: not copied into one)."""
    if len(batches) == 1:
        return list(batches[0].columns)
    import pyarrow as pa

    return list(pa.Table.from_batches(batches).columns)
