"""`mot export`: every projection and the current moments, one file per table, for analysts.

Parquet (for DuckDB, pandas, polars, a warehouse), CSV or JSONL; each file is
named after its table (`relationships.parquet`, `moments.csv`, ...) and holds
the fields `mot query` prints, in the same order, with their types kept in
Parquet: timestamps are timestamps (UTC, microseconds), counters are 64-bit
integers, `lapsed` is a boolean, `attributes` is JSON text.

Live tables are read through the `TableReader` port, a page of rows at a time,
and each page is written before the next is read: memory stays flat however
many moments the store holds. For Parquet the store may give its pages as Arrow
arrays (the SQL store does for a SQLite file: no Python object per value). A file is
written under a temporary name and renamed when complete, so a stopped export
never leaves a half file under a table's name. `--as-of` folds the projections
as the query service does (`service/as_of.py`), a read of persons at a time, and
writes them in the live export's order: the fold's (persons by key) where it is that,
and amplifications and responses sorted by their ids through the `RowSorter` port.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson

from mot.domain.timefmt import to_micros, utc_now
from mot.projections.lapsing import is_lapsed
from mot.projections.schema import MOMENT_FIELDS, PROJECTIONS, Field, MomentField

if TYPE_CHECKING:
    import pyarrow as pa

    # The query service folds --as-of exports only; a live export does without its import
    # (a measurable part of a PostgreSQL export's start-up: bench/NOTES.md).
    from mot.service.queries import QueryService

FORMATS = ("parquet", "csv", "jsonl")
EXPORTED = ("moments", *PROJECTIONS)  # the query service's PROJECTION_NAMES
PAGE_ROWS = 8_192  # rows read and written at a time (also a Parquet row group)
PROJECTION_SHARE = 2  # a live projection's page is PAGE_ROWS / 2 rows (see `Exporter.pages`)
READ_AHEAD = 2  # pages read ahead of the writer (see `_read_ahead`)
TABLES_AT_ONCE = 2  # Parquet files written at the same time (see `Exporter.export`)

Kind = Literal["text", "integer", "real", "boolean", "timestamp", "json"]


@dataclass(frozen=True, slots=True)
class Column:
    """One exported field: its name in the file and its type."""

    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class TableRead:
    """A whole-table read, page by page: the current moments (`moments`) or a projection."""

    table: str
    columns: tuple[str, ...]  # stored columns, in this order
    tenant: str | None = None
    occurred_until_us: int | None = None  # moments only: those that had occurred by then
    order: tuple[str, ...] = ()  # stored columns to sort by; (): the order the store keeps
    byte_order: bool = False  # text sorted by its bytes, the same on every store
    page_rows: int = PAGE_ROWS
    arrow: bool = False  # pages of Arrow arrays, where the store can read them so
    # Arrow reads only: text times (RFC 3339, as `micros_to_text` writes them) read as their
    # microseconds, which the Parquet writer takes as they are.
    micros: frozenset[str] = frozenset()


class TableReader(Protocol):
    """The port of whole-table reads (`mot export`, `mot verify`)."""

    def pages(self, read: TableRead) -> Iterator[list[Any]]:
        """The rows, a page at a time, as one list (or Arrow array) of values per column."""
        ...


@dataclass(frozen=True, slots=True)
class Exported:
    """A file written: its table, path and how many rows it holds."""

    table: str
    path: Path
    rows: int


def _kind(f: Field) -> Kind:
    """A projection field's exported type, from its declaration."""
    if f.micros_text:
        return "timestamp"
    kinds: dict[str, Kind] = {"text": "text", "int": "integer", "bigint": "integer",
                              "real": "real", "bool": "boolean", "list": "json"}
    return kinds[f.type]


def source_columns(table: str) -> tuple[str, ...]:
    """The columns read from the store for a table, in the order `mot query` prints them."""
    if table == "moments":  # the moment's time first, after its identity
        rest = [f.name for f in MOMENT_FIELDS if f.name not in ("occurred_us", "occurred_at")]
        return (*rest[:3], "occurred_at", *rest[3:], "version")
    return tuple(f.col for f in PROJECTIONS[table].read_fields)


def columns(table: str) -> list[Column]:
    """The fields of a table's export, in order: those `mot query` prints."""
    if table != "moments":
        return [Column(f.name, _kind(f)) for f in PROJECTIONS[table].output]
    kinds = {f.name: _moment_kind(f) for f in MOMENT_FIELDS}
    return [Column(name, kinds.get(name, "integer")) for name in source_columns(table)
            if not name.endswith("_us")]


def _moment_kind(f: MomentField) -> Kind:
    """A moment field's exported type, from its declaration."""
    if f.name.endswith("_at"):
        return "timestamp"
    kinds: dict[str, Kind] = {"text": "text", "int": "integer", "bigint": "integer",
                              "real": "real", "bool": "boolean", "json": "json"}
    return kinds[f.type]


class Sink(Protocol):
    """Where a table's pages go: a file of one format."""

    def write(self, page: list[list[Any]]) -> None:
        """Write a page given as one list of values per column."""
        ...

    def close(self) -> None: ...


class ParquetSink:
    """Row groups of a Parquet file, written with pyarrow."""

    def __init__(self, path: Path, cols: Sequence[Column]) -> None:
        import pyarrow as pa

        self.pa = pa
        self.types = [_arrow_type(pa, c.kind) for c in cols]
        self.schema = pa.schema([pa.field(c.name, t) for c, t in zip(cols, self.types,
                                                                     strict=True)])
        # No dictionary for nearly unique values (ids, urls, JSON, times): Arrow builds one and
        # throws it away when it grows too large; without those, 1M moments are written with
        # a fifth less CPU and into a smaller file (bench/NOTES.md).
        self.writer = parquet_writer(str(path), self.schema, [
            c.name for c in cols if not _nearly_unique(c)])
        self.wrote = False

    def write(self, page: list[list[Any]]) -> None:
        pa = self.pa
        arrays = []
        for values, arrow_type in zip(page, self.types, strict=True):
            if isinstance(values, pa.Array | pa.ChunkedArray):  # a column read as Arrow
                arrays.append(_typed(pa, values, arrow_type))
            elif pa.types.is_timestamp(arrow_type):
                # RFC 3339 text, parsed by Arrow's C++ ISO 8601 parser.
                arrays.append(pa.array(values, pa.string()).cast(arrow_type))
            else:
                arrays.append(pa.array(values, arrow_type))
        # One row group a page (a table of one chunk, or of the batches a page gathered).
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        self.writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.wrote = True

    def close(self) -> None:
        if not self.wrote:  # an empty table is still a file with its schema
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()


PARQUET_WRITER_OPTIONS: dict[str, Any] = {
    "version": "2.6", "compression": "snappy", "writer_engine_version": "V2",
    "data_page_version": "1.0"}
"""`pyarrow.parquet.ParquetWriter`'s defaults, which its compiled writer takes explicitly."""


def parquet_writer(path: str, schema: pa.Schema, dictionary: Sequence[str]) -> Any:
    """pyarrow's compiled Parquet writer (`pyarrow._parquet`), the one `pyarrow.parquet`'s
    ParquetWriter wraps, given that wrapper's defaults: the files are byte for byte the
    same (tests/test_export.py), and `pyarrow.parquet` imports `pyarrow.fs` and the
    filesystems of S3, GCS, Azure and HDFS, which an export to a local file never uses and
    whose import was a large part of its start-up (bench/NOTES.md)."""
    from pyarrow._parquet import ParquetWriter

    return ParquetWriter(path, schema, use_dictionary=list(dictionary),
                         **PARQUET_WRITER_OPTIONS)


def _typed(pa: Any, values: Any, arrow_type: Any) -> Any:
    """An Arrow column as `arrow_type`: microseconds (64-bit integers) are a timestamp's
    values as they are, so they are viewed as one; `cast` (which loads pyarrow's compute
    module, and numpy with it) only for another type, which the stores do not give."""
    if values.type == arrow_type:
        return values
    if pa.types.is_timestamp(arrow_type) and pa.types.is_int64(values.type):
        if isinstance(values, pa.ChunkedArray):
            return pa.chunked_array([chunk.view(arrow_type) for chunk in values.chunks],
                                    type=arrow_type)
        return values.view(arrow_type)
    return values.cast(arrow_type)


def _nearly_unique(c: Column) -> bool:
    """A column whose values seldom repeat: ids, a person's ids, urls, JSON, times."""
    return (c.kind in ("json", "timestamp") or c.name.endswith(("_id", "_ids"))
            or c.name in ("url", "shares", "in_reply_to"))


def _arrow_type(pa: Any, kind: Kind) -> pa.DataType:
    return {"text": pa.string(), "json": pa.string(), "integer": pa.int64(),
            "real": pa.float64(), "boolean": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC")}[kind]


class CsvSink:
    """A CSV file with a header; values as `mot query --format csv` writes them."""

    def __init__(self, path: Path, cols: Sequence[Column]) -> None:
        import csv

        self.file = path.open("w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow([c.name for c in cols])

    def write(self, page: list[list[Any]]) -> None:
        self.writer.writerows([[_csv_cell(v) for v in row] for row in zip(*page, strict=True)])

    def close(self) -> None:
        self.file.close()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class JsonlSink:
    """One JSON object a line, as `mot query --format jsonl` prints them."""

    def __init__(self, path: Path, cols: Sequence[Column]) -> None:
        self.file = path.open("wb")
        self.names = [c.name for c in cols]
        self.json = [i for i, c in enumerate(cols) if c.kind == "json"]

    def write(self, page: list[list[Any]]) -> None:
        names = self.names
        for i in self.json:  # JSON objects stay objects in JSON lines
            page[i] = [None if v is None else orjson.Fragment(v) for v in page[i]]
        for row in zip(*page, strict=True):
            record = dict(zip(names, row, strict=True))
            self.file.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        self.file.close()


SINKS: dict[str, Callable[[Path, Sequence[Column]], Sink]] = {
    "parquet": ParquetSink, "csv": CsvSink, "jsonl": JsonlSink,
}


def _read_ahead(pages: Iterator[list[Any]]) -> Generator[list[Any], None, None]:
    """The pages, read by a thread of their own up to READ_AHEAD pages ahead: the store's
    driver and Arrow's Parquet writer both work without the GIL, so reading a table and
    writing it overlap on a second CPU. Memory holds at most READ_AHEAD + 1 pages."""
    import queue

    done = object()
    ready: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()  # the writer has stopped: a failed write, Ctrl-C

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for page in pages:
                if not offer(page):
                    break
            else:
                offer(done)
        except BaseException as error:  # given to the writer's thread, which raises it
            offer(error)
        finally:
            close = getattr(pages, "close", None)
            if close is not None:  # the store's read ends in the thread that began it
                close()

    reader = threading.Thread(target=read, name="export-read", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


FOLD_UNORDERED = frozenset({"amplifications", "responses"})
"""Projections whose `--as-of` rows the fold gives a person at a time, not in their
default order (by their own ids: service/as_of.py's `as_of_pages`); the other projections'
fold order is theirs (persons by key)."""


def _order_names(table: str) -> list[str]:
    """The exported fields a projection's default order sorts by."""
    by_column = {f.col: f.name for f in PROJECTIONS[table].output}
    return [by_column[c] for c in PROJECTIONS[table].default_order]


class RowSorter(Protocol):
    """The port of an `--as-of` export's sort: the fold gives amplifications and responses a
    person at a time, and the file holds them in their default order. An external sort (the
    composition root's is a scratch SQLite file): memory holds a page, not the table."""

    def __call__(self, pages: Iterator[list[Any]], cols: Sequence[Column], order: Sequence[str]
                 ) -> Iterator[list[Any]]:
        """The rows of `pages` (one list of values per column of `cols`, as `Exporter.pages`
        gives them) sorted by the fields `order` names, text by its bytes, in pages of the
        same shape."""
        ...


def _at_once(tables: Sequence[str], one: Callable[[str], Exported], stop: threading.Event
             ) -> list[Exported]:
    """`one(table)` of every table, TABLES_AT_ONCE threads taking the next table in order,
    the results in the tables' order. The first failure (or a Ctrl-C here) sets `stop`: the
    other threads end their table at its next page and take no other, and it is raised.
    Two threads of their own rather than `concurrent.futures`, whose import (`logging` with
    it) weighed on the export's start-up (bench/NOTES.md)."""
    done: dict[str, Exported] = {}
    failures: list[BaseException] = []
    left = iter(tables)
    taking = threading.Lock()

    def work() -> None:
        while not stop.is_set():
            with taking:
                table = next(left, None)
            if table is None:
                return
            try:
                done[table] = one(table)
            except BaseException as error:  # raised by the command's thread, below
                failures.append(error)
                stop.set()
                return

    workers = [threading.Thread(target=work, name=f"export-{i}") for i in range(TABLES_AT_ONCE)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except BaseException:  # Ctrl-C while waiting: the tables stop at their next page
        stop.set()
        for worker in workers:
            worker.join()
        raise
    if failures:
        raise failures[0]
    return [done[table] for table in tables]


class ExportStopped(Exception):
    """A table's export stopped because another's failed."""


class Exporter:
    """Writes each table of a store to a directory, in one format."""

    def __init__(self, tables: TableReader, queries: QueryService | None,
                 sort: RowSorter) -> None:
        self.tables = tables
        # None: live exports only, read from the tables as they are (an --as-of export
        # folds the projections with the query service).
        self.queries = queries
        self.clock = queries.clock if queries is not None else utc_now
        # How an --as-of export sorts a table whose fold is not in its order. Its rows hold
        # personal fields: the composition root's sort leaves nothing an erasure does not
        # remove, even when the export is killed (SPEC 6).
        self.sort = sort

    def export(self, out: Path, fmt: str, *, tenant: str | None = None,
               as_of: datetime | None = None, tables: Sequence[str] = EXPORTED,
               progress: Callable[[str, int], None] | None = None) -> list[Exported]:
        """Write every table to `out/TABLE.FMT`; return what was written."""
        if fmt not in SINKS:
            raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
        out.mkdir(parents=True, exist_ok=True)
        stop = threading.Event()  # another table's export failed, or Ctrl-C
        shown = threading.Lock()

        def one(table: str) -> Exported:
            def report(rows: int) -> None:
                if progress is not None:
                    with shown:
                        progress(table, rows)
            return self._export_table(out, fmt, table, tenant=tenant, as_of=as_of,
                                      progress=report, stop=stop)

        if fmt != "parquet" or as_of is not None:
            return [one(table) for table in tables]
        # Parquet: two tables at a time. Reading (the store's driver) and writing (Arrow)
        # run in C without the GIL, and the current moments are as much work as all the
        # projections together: while one thread pair reads and writes them, another
        # does the projections. Each table is its own read, as it is one at a time.
        return _at_once(tables, one, stop)

    def _export_table(self, out: Path, fmt: str, table: str, *, tenant: str | None,
                      as_of: datetime | None, progress: Callable[[int], None],
                      stop: threading.Event) -> Exported:
        """Write one table to `out/TABLE.FMT` (under a scratch name until it is whole)."""
        path = out / f"{table}.{fmt}"
        scratch = out / f".{table}.{fmt}.{uuid.uuid4().hex[:8]}.part"
        sink = SINKS[fmt](scratch, columns(table))
        rows = 0
        closed = False
        pages = self.pages(table, tenant=tenant, as_of=as_of, arrow=fmt == "parquet")
        if fmt == "parquet" and (as_of is None or table == "moments"):
            pages = _read_ahead(pages)  # Arrow pages: C on both sides, no GIL held
        try:
            for page in pages:
                if stop.is_set():
                    raise ExportStopped(table)
                sink.write(page)
                rows += len(page[0])
                progress(rows)
            closed = True
            sink.close()
            os.replace(scratch, path)
        except BaseException:
            if not closed:
                sink.close()
            scratch.unlink(missing_ok=True)  # also when the file could not be put in place
            raise
        finally:
            # The store's read ends now, not when the failure's traceback is let go: its
            # connection is closed before the store is.
            pages.close()
        return Exported(table, path, rows)

    def pages(self, table: str, *, tenant: str | None = None, as_of: datetime | None = None,
              arrow: bool = False) -> Generator[list[Any], None, None]:
        """A table's exported rows, a page at a time, as one list of values per column; with
        `arrow`, from a SQLite file, as one Arrow array per column where the store can give
        them (read in C, with no Python object per value)."""
        names = [c.name for c in columns(table)]
        if as_of is not None and table != "moments":
            lists = {f.name for f in PROJECTIONS[table].output if f.type == "list"}

            def as_columns(chunk: list[dict[str, Any]]) -> list[Any]:
                # A list (a person's ids) as the JSON text the table holds.
                return [[orjson.dumps(r[name]).decode() if name in lists else r.get(name)
                         for r in chunk] for name in names]

            from mot.service.queries import Query

            queries = self.queries
            if queries is None:
                raise ValueError("an --as-of export needs the query service")

            def folded() -> Iterator[list[Any]]:
                # Folded a read of persons at a time and written a page at a time: memory
                # holds a page and a read, not the whole answer.
                chunk: list[dict[str, Any]] = []
                for records in queries.as_of_pages(Query(table, tenant=tenant,
                                                         as_of=as_of)):
                    chunk.extend(records)
                    while len(chunk) >= PAGE_ROWS:
                        yield as_columns(chunk[:PAGE_ROWS])
                        del chunk[:PAGE_ROWS]
                if chunk:
                    yield as_columns(chunk)

            if table in FOLD_UNORDERED:
                yield from self.sort(folded(), columns(table), _order_names(table))
            else:
                yield from folded()
            return
        source = source_columns(table)
        # The moments in the table's own order: a sort, or an index walk that visits the rows
        # at random, took a third of reading the table.
        order = () if table == "moments" else PROJECTIONS[table].default_order
        # Arrow pages take a moment's time as its microseconds, which become a timestamp
        # as they are (the projections' times are read so too), rather than its RFC 3339
        # text to read and parse.
        stored = ({f.col for f in PROJECTIONS[table].stored} if table != "moments"
                  else {"occurred_us"})
        read_columns = tuple(f"{c[:-3]}_us" if arrow and c.endswith("_at")
                             and f"{c[:-3]}_us" in stored else c for c in source)
        # The other times are text only (a relationship's first moment): the store turns
        # them into microseconds (SQLite's strftime, cheap in C), so that no column is
        # parsed here and the export needs none of pyarrow's compute functions, whose import
        # was a large part of its start-up (bench/NOTES.md).
        micros = frozenset(f.col for f in PROJECTIONS[table].read_fields
                           if f.micros_text and f.col in read_columns
                           ) if arrow and table != "moments" else frozenset()
        # Pages small enough that a store of 100,000 moments fills the pipeline as one of
        # 1,000,000 does (READ_AHEAD + 2 pages a table), so the export's peak memory does not
        # grow with the store: the moments' 8,192 rows (their 98,000 were three pages of
        # 32,768, fewer than the pipeline holds; with pages of 16,384 the two pipelines at
        # 1,000,000 still held ~20 MB more than at 100,000 on PostgreSQL), a projection's
        # half that, written beside them (a projection of 100,000 moments was about one
        # 32,768-row page: bench/NOTES.md, bench/scaling_notes.toml).
        page_rows = PAGE_ROWS if table == "moments" else max(1, PAGE_ROWS // PROJECTION_SHARE)
        read = TableRead(table, read_columns, tenant=tenant, order=order, page_rows=page_rows,
                         occurred_until_us=to_micros(as_of) if as_of is not None else None,
                         arrow=arrow, micros=micros)
        finish = self._finisher(table, source, as_of)
        for page in self.tables.pages(read):
            yield finish(page)

    def _finisher(self, table: str, source: Sequence[str], as_of: datetime | None
                  ) -> Callable[[list[Any]], list[Any]]:
        """What turns a page of table columns into the exported columns."""
        if table == "moments":
            kept = [i for i, name in enumerate(source) if not name.endswith("_us")]
            json = {i for i in kept if source[i] == "attributes"}

            def moments(page: list[Any]) -> list[Any]:
                # JSON text on both stores (PostgreSQL's JSONB comes back as objects).
                return [[v if v is None or isinstance(v, str) else orjson.dumps(v).decode()
                         for v in page[i]] if i in json and isinstance(page[i], list)
                        else page[i] for i in kept]
            return moments
        output = PROJECTIONS[table].output
        at = {name: i for i, name in enumerate(source)}
        as_of_us = to_micros(as_of or self.clock())

        def finish(page: list[Any]) -> list[Any]:
            out: list[Any] = []
            for f in output:
                if f.computed:  # lapsed, the only one, from last_customer_moment_us
                    needed = page[at[f.needs[0]]]
                    if not isinstance(needed, list):  # an Arrow array
                        needed = needed.to_pylist()
                    out.append([is_lapsed(us, as_of_us) for us in needed])
                elif f.type == "bool":  # stored as 0 or 1
                    stored = page[at[f.col]]
                    if not isinstance(stored, list):  # an Arrow array
                        stored = stored.to_pylist()
                    out.append([None if v is None else bool(v) for v in stored])
                else:
                    out.append(page[at[f.col]])
            return out
        return finish
