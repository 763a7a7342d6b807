"""The embedded store: one SQLite file (the default, `./mot.db`).

The ledger table and its notification log are eventsourcing's
`SQLiteApplicationRecorder`. mot's own transactions begin IMMEDIATE: a
writer takes SQLite's write lock before it reads, so checking for a
duplicate and appending happen under one lock, and two processes importing
at once are serialised rather than failing on a lock upgrade.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, suppress
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from mot.adapters.stores.sql import LOCK_SLICE_S, SqlBackend, Tx, chunks
from mot.domain.identity import moment_stream_hex
from mot.service.ports import StoreNotFound

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    from mot.adapters.stores.codec import StoredRow

BUSY_TIMEOUT_S = 300.0
# The page cache of a connection that appends to the ledger, in KiB: a command's (see
# `begin_write`), mot serve's (see `serving`), and an ingest's once it has seen another writer
# commit (see `bound_shared_cache`).
LEDGER_CACHE_KIB = 65536
SERVER_LEDGER_CACHE_KIB = 4096
SHARED_LEDGER_CACHE_KIB = 16384
STAGE_INFIX = ".stage-"  # a stage is the file `{store}.stage-{random}` beside the store


def _sync_mode() -> str:
    mode = os.environ.get("MOT_SQLITE_SYNC", "NORMAL").upper()
    return mode if mode in ("OFF", "NORMAL", "FULL", "EXTRA") else "NORMAL"


class SQLiteBackend(SqlBackend):
    kind = "sqlite"
    types: ClassVar[dict[str, str]] = {"text": "TEXT", "blob": "BLOB", "real": "REAL", "bigint": "INTEGER",
             "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "json": "TEXT"}
    position_column = "rowid"  # the notification id
    now_us = "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
    head_sql = "SELECT MAX(rowid) FROM stored_events"
    # SQLite's CREATE INDEX leaves < 1 % of a leaf free (PostgreSQL's leaves 10 %, its
    # fillfactor), so the first key a catch-up inserts into a leaf splits it.
    packed_builds = True
    # SQLite rewrites the index of every column an UPDATE sets (PostgreSQL follows values).
    updates_touch_named_indexes = True

    def __init__(self, path: str, *, create: bool = True) -> None:
        super().__init__()
        self.path = path
        self._made_folders: list[str] = []
        self._made_key = False
        if path != ":memory:":
            if not create and not _may_hold_a_store(path):
                raise StoreNotFound(path)
            self.created = not os.path.exists(path)
            # The default master key file beside a store made here is made for it alone.
            self._made_key = self.created and not os.path.exists(f"{path}.key")
            # os rather than pathlib, which a query would load for this line alone.
            folder = os.path.dirname(path)
            while folder and not os.path.exists(folder):
                self._made_folders.append(folder)
                folder = os.path.dirname(folder)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._local = threading.local()
        self._ledger_cache_kib = LEDGER_CACHE_KIB
        self._bounded_when_shared = False  # `bound_shared_cache`
        # Every thread's connection, with its thread (see `_connection` and `close`).
        self._opened: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._opened_lock = threading.Lock()
        self.ready = self.schema_ready()
        if not self.ready:
            if not create and not self._holds_a_ledger():
                self.close()
                raise StoreNotFound(path)
            with self.schema_lock():
                self.recorder.create_table()

    def _holds_a_ledger(self) -> bool:
        """Whether the store's tables exist, at an older SCHEMA_VERSION (opening upgrades it)."""
        with self.read() as tx:
            return self.table_exists(tx, "stored_events")

    # eventsourcing's datastore and recorder are made on first use: mot reads the
    # projection tables on its own connection, so a query never loads them.
    @cached_property
    def datastore(self) -> SQLiteDatastore:
        from eventsourcing.sqlite import SQLiteDatastore

        return SQLiteDatastore(self.path, lock_timeout=int(BUSY_TIMEOUT_S))

    @cached_property
    def recorder(self) -> SQLiteApplicationRecorder:
        from eventsourcing.sqlite import SQLiteApplicationRecorder

        return SQLiteApplicationRecorder(self.datastore)

    def schema_lock(self) -> AbstractContextManager[None]:
        # Switching a new file to WAL takes a lock SQLite's busy timeout does not wait
        # for ("database is locked"): processes opening a new store take turns on a
        # lock file beside it instead.
        return self._file_lock(f"{self.path}.lock", None)

    def process_lock(self, name: str, waiting: Callable[[], None] | None = None
                     ) -> AbstractContextManager[None]:
        return self._file_lock(f"{self.path}.{name}.lock", waiting)

    @contextmanager
    def _file_lock(self, path: str, waiting: Callable[[], None] | None) -> Iterator[None]:
        # flock: released by the system when the process dies, however it dies.
        if self.path == ":memory:":
            yield
            return
        with open(path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S,
                                   check_same_thread=False)
            # 16 KB pages (SQLite's default is 4 KB), chosen when the file is created:
            # a stored event is ~600 bytes and its id index is written at random
            # places, so larger pages mean fewer splits and fewer pages to write per
            # commit. No effect on an existing file.
            conn.execute("PRAGMA page_size=16384")
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL: a commit survives the process being killed
            # (what "a crash loses nothing" needs); only a power cut may lose the last
            # commits, and re-running an import is idempotent. FULL costs an fsync
            # per batch. Set MOT_SQLITE_SYNC=FULL to choose that.
            conn.execute(f"PRAGMA synchronous={_sync_mode()}")
            # Checkpoint the WAL every ~64 MB rather than every 4 MB: as many pages
            # written back, far fewer fsyncs during a bulk import.
            conn.execute("PRAGMA wal_autocheckpoint=16384")
            # ANALYZE samples each index (about a thousand rows) instead of reading it
            # whole: a rebuild's tables get the planner's statistics without a full read.
            conn.execute("PRAGMA analysis_limit=1000")
            # Large sorts (CREATE INDEX after a rebuild's bulk load, big ORDER BYs) may use
            # helper threads, on the CPUs the process is otherwise not using.
            conn.execute(f"PRAGMA threads={min(4, os.cpu_count() or 1)}")
            self._local.conn = conn
            with self._opened_lock:
                # A thread that ended will not use its connection again: close it now.
                ended = [c for thread, c in self._opened if not thread.is_alive()]
                self._opened = [(thread, c) for thread, c in self._opened
                                if thread.is_alive()]
                self._opened.append((threading.current_thread(), conn))
            for old in ended:
                old.close()
        return conn

    @contextmanager
    def _transaction(self, begin: str, waiting: Callable[[], None] | None = None) -> Iterator[Tx]:
        conn = self._connection()
        cursor = conn.cursor()
        if waiting is None:
            cursor.execute(begin)
        else:
            _begin_waiting(cursor, begin, waiting)
        try:
            yield Tx(cursor, cursor, "?")
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cursor.close()

    def begin_write(self, lock: str, waiting: Callable[[], None] | None = None) -> Any:
        # SQLite has one writer at a time; IMMEDIATE takes that lock up front.
        if lock == "ledger":
            self._size_ledger_cache()
        return self._transaction("BEGIN IMMEDIATE", waiting)

    def bound_shared_cache(self) -> None:
        """This process appends for as long as it runs (mot kafka ingest): once another
        connection is seen committing to the file, this thread's appending connection keeps
        at most SHARED_LEDGER_CACHE_KIB of pages. Each commit of another writer empties the
        cache anyway; what it held at most was the pages one transaction of its own read,
        more the larger the ledger's index: a pair of ingests into one file grew 1M/100k
        x1.54 by it (bench/scaling_notes.toml). One process alone keeps the large cache,
        which saves its appends a read each."""
        self._bounded_when_shared = True

    def _size_ledger_cache(self) -> None:
        local = self._local
        wanted = self._ledger_cache_kib
        if self._bounded_when_shared:
            if not getattr(local, "shared", False):
                # data_version moves when another connection commits, never for this one's.
                version = self._connection().execute("PRAGMA data_version").fetchone()[0]
                seen, local.data_version = getattr(local, "data_version", None), version
                local.shared = seen is not None and version != seen
            if local.shared:
                wanted = min(wanted, SHARED_LEDGER_CACHE_KIB)
        if getattr(local, "cache_kib", None) != wanted:
            # The ledger's moment-id index is written at random places: a page cache
            # that holds it (64 MB is about a million moments' worth) saves a read per
            # append. Only appending connections get it: projection work goes mostly in
            # order (a rebuild ran no faster with it) and its memory stays flat.
            self._connection().execute(f"PRAGMA cache_size=-{wanted}")
            local.cache_kib = wanted

    def serving(self) -> None:
        # mot serve's ledger connections keep a small cache: each of its ingest threads has
        # one, and another's commit empties it (WAL), so a connection holds about one
        # transaction's pages, and those are more pages of the hashed indexes the larger the
        # store. A command's one appending connection keeps its large cache.
        self._ledger_cache_kib = SERVER_LEDGER_CACHE_KIB

    def begin_read(self) -> Any:
        return self._transaction("BEGIN")

    def insert_stored_events(self, tx: Tx, rows: Sequence[StoredRow]) -> None:
        # The recorder's own table and INSERT statement, batched: its _insert_events
        # executes row by row to collect rowids, which mot does not need.
        tx.cursor.executemany(self.recorder.insert_events_statement, rows)

    def insert_new(self, tx: Tx, table: str, columns: Sequence[str], types: Sequence[str],
                   unique: Sequence[str], rows: Sequence[Sequence[Any]]) -> set[Any]:
        # One prepared statement of a row, run for each: SQLite took about twice the CPU a row
        # for an INSERT ... SELECT from a VALUES list with RETURNING (bench/NOTES.md). The rows
        # inserted are counted; only when some were not are they looked for by their ids.
        if not rows:
            return set()
        tx.cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            f" ON CONFLICT ({', '.join(unique)}) DO NOTHING", rows)
        if tx.cursor.rowcount == len(rows):
            return {row[0] for row in rows}
        inserted: set[Any] = set()
        for part in chunks([row[0] for row in rows], self.max_params):
            inserted |= {r[0] for r in tx.query(
                f"SELECT {columns[0]} FROM {table} WHERE {columns[0]} {self.in_list(len(part))}",
                self.in_params(part))}
        return inserted

    def select_notifications(self, after: int, limit: int) -> Sequence[Notification]:
        return list(self.recorder.select_notifications(after, limit, inclusive_of_start=False))

    def stream_id_param(self, stream_id: str) -> Any:
        return stream_id.replace("-", "")

    def moment_stream_param(self, tenant: str, moment_id: str) -> Any:
        return moment_stream_hex(tenant, moment_id)

    def index_names(self, tx: Tx, tables: Sequence[str]) -> list[str]:
        rows = tx.query("SELECT name FROM sqlite_master WHERE type = 'index'"
                        f" AND tbl_name {self.in_list(len(tables))} AND sql IS NOT NULL"
                        " ORDER BY name", self.in_params(tables))
        return [str(row[0]) for row in rows]

    def table_exists(self, tx: Tx, name: str) -> bool:
        return bool(tx.scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ))

    def drop_derived_tables(self, tx: Tx, tables: Sequence[str]) -> None:
        # This SQLite may be built to zero every page it frees (secure_delete on): dropping
        # a million-row projection table then writes it all again, most of a rebuild's
        # swap. Its rows are derived from the ledger, which still holds
        # every moment, so zeroing them hides nothing: FAST leaves freed pages as they are.
        # Everything else keeps the build's setting.
        previous = ("OFF", "ON", "FAST")[int(tx.scalar("PRAGMA secure_delete"))]
        tx.execute("PRAGMA secure_delete=FAST")
        try:
            super().drop_derived_tables(tx, tables)
        finally:
            tx.execute(f"PRAGMA secure_delete={previous}")  # by name: `=2` would mean ON

    def erasing(self, tx: Tx) -> None:
        # One writer at a time: the ledger's lock is the projections' too. Freed bytes are
        # zeroed (most builds, this one included, have it on already; say so regardless).
        tx.execute("PRAGMA secure_delete=ON")

    def scrub(self, tables: Sequence[str], waiting: Callable[[], None] | None = None) -> None:
        # The deletion zeroed what it freed (secure_delete=ON, set by the erasure's
        # transaction); the WAL still holds the pages as they were until it is checkpointed
        # into the file and truncated. A reader holding an old snapshot keeps it busy.
        conn = self._connection()
        # Pages freed while secure_delete was FAST (a rebuild's swap drops the old projection
        # tables so, `drop_derived_tables`) keep what they held: write zeros over every free
        # page by taking them all for a scratch table of zeros, then drop it (zeroed again).
        with self.write("ledger") as tx:
            tx.execute("PRAGMA secure_delete=ON")
            free = int(tx.scalar("PRAGMA freelist_count") or 0)
            if free:
                page = int(tx.scalar("PRAGMA page_size") or 4096)
                tx.execute("CREATE TABLE mot_scrub (zeros BLOB)")
                per_row = 16
                tx.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                           " WHERE i < ?) INSERT INTO mot_scrub SELECT zeroblob(?) FROM n",
                           (free // per_row + 1, page * per_row))
                tx.execute("DROP TABLE mot_scrub")
        for _ in range(50):
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy[0]:
                return
            import time

            time.sleep(0.1)
        raise sqlite3.OperationalError(
            "the WAL could not be checkpointed: another process holds an old snapshot; "
            "run the command again when it is done")

    # -- stages: a file of their own beside the store, attached while in use ----------------
    def fill_stage(self, create: Callable[[str], str], fill: Callable[[Tx, str], int]
                   ) -> tuple[str, int]:
        path = f"{self.path}{STAGE_INFIX}{os.urandom(8).hex()}"
        conn = self._connection()
        conn.execute("ATTACH DATABASE ? AS stage", (path,))
        try:
            # Scratch: no journal, no syncs (a stage that did not finish is dropped).
            conn.execute("PRAGMA stage.journal_mode=OFF")
            conn.execute("PRAGMA stage.synchronous=OFF")
            conn.execute(create("stage.staged"))
            # A deferred BEGIN: the transaction writes only the stage's file, so it never
            # takes the store's writer lock, and it reads the ledger as one snapshot.
            with self._transaction("BEGIN") as tx:
                count = fill(tx, "stage.staged")
        except BaseException:
            # A failed COMMIT (a full disk, say) leaves the transaction open, and DETACH
            # refuses to run inside one: roll back first, and let no clean-up error hide
            # the one that matters.
            with suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.rollback()
                conn.execute("DETACH DATABASE stage")
            _unlink(path)
            raise
        conn.execute("DETACH DATABASE stage")
        return path, count

    @contextmanager
    def reading_stage(self, stage: str) -> Iterator[str]:
        conn = self._connection()
        # Attached before the transaction that reads it begins, detached after it ends
        # (DETACH cannot run inside one).
        conn.execute("ATTACH DATABASE ? AS staged", (stage,))
        try:
            yield "staged.staged"
        finally:
            conn.execute("DETACH DATABASE staged")
            _unlink(stage)

    def drop_stages(self) -> None:
        if self.path != ":memory:":
            import glob

            for stage in glob.glob(glob.escape(self.path) + STAGE_INFIX + "*"):
                _unlink(stage)

    def local_file(self) -> str | None:
        return self.path if self.path != ":memory:" and os.path.exists(self.path) else None

    def json_documents(self, events: str) -> str:
        # CAST: SQLite's JSON functions take text, and the recorder stores a BLOB. SQLite
        # keeps the last JSON texts a statement parsed: each event is parsed once, and
        # every further field is a lookup.
        return f"(SELECT CAST(e.state AS TEXT) AS s FROM {events})"

    def json_value(self, path: Sequence[str], type: str, document: str = "s") -> str:
        # json_extract keeps the JSON type (REAL, INTEGER); objects come out as JSON text
        # (numbers as written).
        return f"json_extract({document}, '$.{'.'.join(path)}')"

    def json_micros(self, path: Sequence[str]) -> str:
        when = self.json_value(path, "text")  # `...T12:34:56Z` or `...T12:34:56.123456Z`, in UTC
        fraction = f"substr(substr({when}, 21, length({when}) - 21) || '000000', 1, 6)"
        # strftime('%s') rather than unixepoch(): SQLite before 3.38 has only the former.
        return (f"CAST(strftime('%s', substr({when}, 1, 19)) AS INTEGER) * 1000000"
                f" + CASE WHEN substr({when}, 20, 1) = '.' THEN CAST({fraction} AS INTEGER)"
                " ELSE 0 END")

    def close(self) -> None:
        # Every thread's connection, not only the caller's: one a worker thread opened (the
        # export's readers) was left to the garbage collector, and a reference cycle kept it
        # open after the store was closed. SQLite shares a file's write-ahead-log index
        # among a process's connections, so the next opening of the store in this process
        # used that connection's index after another process had deleted the file (an
        # open index, no -shm on disk), and the ADBC driver's read-only connection, which
        # needs that file, failed: "unable to open database file".
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for _, conn in opened:
            conn.close()
        self._local = threading.local()
        if "datastore" in self.__dict__:
            self.datastore.close()


    def discard(self) -> bool:
        self.close()
        if not self.created:
            return False
        with self.schema_lock():  # a process making this store anew waits until it is gone
            try:
                with closing(sqlite3.connect(self.path, isolation_level=None, timeout=0)) as conn:
                    # SQLite leaves WAL mode only when no other connection has the file open;
                    # the exclusive lock then keeps out whoever connects before it is removed.
                    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                    if conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
                        return False
                    conn.execute("BEGIN EXCLUSIVE")
                    if not self._holds_nothing(conn):
                        conn.execute("ROLLBACK")
                        conn.execute("PRAGMA journal_mode=WAL")  # a mot store's mark
                        return False
                    # Nothing was sealed under a key file made with the store: it goes too.
                    key = (".key",) if self._made_key else ()
                    for suffix in ("", "-wal", "-shm", "-journal", ".lock", *key):
                        with suppress(FileNotFoundError):
                            os.unlink(self.path + suffix)
            except sqlite3.Error:  # busy, or not ours to judge: kept
                return False
        for folder in self._made_folders:  # innermost first; one that holds anything stays
            with suppress(OSError):
                os.rmdir(folder)
        return True

    def _holds_nothing(self, conn: sqlite3.Connection) -> bool:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'") if name not in self.bookkeeping]
        return not any(conn.execute(f'SELECT 1 FROM "{name}" LIMIT 1').fetchone() for name in tables)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _may_hold_a_store(path: str) -> bool:
    """Whether the file at `path` may hold a mot store, looked at without changing anything:
    no file is created, and one that is not a store is not switched to WAL.

    mot's stores are in WAL mode, which the file's header says (bytes 18 and 19): such a
    file is opened as usual, and its tables tell. Another file is opened read-only to look.
    """
    try:
        with open(path, "rb") as file:
            header = file.read(20)
    except OSError:  # missing, a directory, unreadable
        return False
    if not header.startswith(_SQLITE_MAGIC):
        return False
    if header[18:20] == b"\x02\x02":
        return True
    # A read-only URI: the path's own '%', '?' and '#' escaped.
    uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            found = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                                 " AND name IN ('stored_events', 'mot_schema')").fetchone()
    except sqlite3.DatabaseError:  # not a database at all
        return False
    return bool(found and found[0])


def _unlink(path: str) -> None:
    with suppress(FileNotFoundError):
        os.remove(path)


def _begin_waiting(cursor: sqlite3.Cursor, begin: str, waiting: Callable[[], None]) -> None:
    """`begin`, waiting for another connection's writer lock `LOCK_SLICE_S` at a time with
    `waiting()` between (rather than in one busy wait of up to `BUSY_TIMEOUT_S`), up to
    `BUSY_TIMEOUT_S` in all. SQLite's lock is not fair: a writer that commits and begins
    again at once takes it back ahead of a waiting one; a member of a Kafka consumer group
    waited so past its max poll interval (bench/NOTES.md)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    cursor.execute(f"PRAGMA busy_timeout = {int(LOCK_SLICE_S * 1000)}")
    try:
        while True:
            try:
                cursor.execute(begin)
                return
            except sqlite3.OperationalError as error:
                busy = getattr(error, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF
                if busy != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            waiting()
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
