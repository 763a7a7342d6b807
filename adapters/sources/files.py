"""File sources: JSONL (plain or gzip) and CSV, from a path or standard input.

Reading is bounded whatever the input: a source is read in chunks, and a line
longer than the limit (`max_line`, `mot import --max-line-bytes`) is never held
whole. Its first bytes go to the quarantine with its line number while the rest
is skipped up to the next line end. Lines end at `\\n`, `\\r\\n` or a lone `\\r`.
Blank lines are counted (progress shows them) and skipped a chunk at a time.

A read that fails part-way (a truncated or corrupt gzip, an I/O error) ends the
source's lines there; `Opened.failure` says why, and the caller records what came
before and reports the failure with the line reached.

Text: a UTF-8 byte order mark is dropped, UTF-16 and UTF-32 (by their byte order
mark, or the zero bytes of ASCII text) are decoded to UTF-8, and a line that is
not valid text is quarantined on its own with its line number.

Each source yields `Incoming` messages with their origin (`file:line`). CSV
columns are wire field names; `source.system`/`source.id` (and the same under
`in_reply_to` and `shares`) and `attributes.NAME` are dotted columns; numeric
fields are converted from text here, because the wire schema itself takes typed
JSON values. A CSV header is checked once, before any row (`check_wire_header`).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import math
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import IO, Any, Protocol

import orjson

from mot.service.ledger import Incoming

INTEGER_FIELDS = frozenset({"reach"})
NUMBER_FIELDS = frozenset({"sentiment", "value"})
OBJECT_FIELDS = frozenset({"source", "in_reply_to", "shares", "attributes", "set"})
REFERENCE_COLUMNS = frozenset({"source", "in_reply_to", "shares"})  # PARENT.system, PARENT.id

CHUNK = 1 << 20
"""Bytes read at a time; memory per source is about this plus the longest line."""
MAX_LINE_BYTES = 8 << 20
"""Default longest line: far above any valid moment (attributes are at most 16 KiB),
room for a vendor's list response on one line."""
KEPT_BYTES = 1024
"""Of a line over the limit, the bytes the quarantine keeps."""
HEAD_LINES = 20
HEAD_BYTES = 64 << 10
"""What is read ahead of the records to check a source's format and header."""

UTF8_BOM = codecs.BOM_UTF8
_WIDE_BOMS = (  # longest first: a UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"), (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"), (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


class InputError(Exception):
    """A source that cannot be read as asked; the message names it and says what to do."""


class Readable(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Oversized:
    """A line longer than the limit: its first bytes and its length (or a lower bound of it)."""

    head: bytes
    size: int

    def problem(self, limit: int) -> str:
        return (f"line of {self.size:,} bytes, over the limit of {limit:,} (--max-line-bytes); "
                f"the quarantine keeps its first {min(len(self.head), KEPT_BYTES):,} bytes")


@dataclass(eq=False)
class Opened:
    """A readable source and how far through it we are (for progress and ETA)."""

    name: str
    stream: Readable
    raw: IO[bytes] | None  # the underlying file, whose position tells progress
    size: int | None
    max_line: int = MAX_LINE_BYTES
    compressed: bool = False
    encoding: str = "UTF-8"
    head: bytes = b""  # read ahead (to check the format); the lines start with it
    lines: int = 0  # lines read so far, blank ones included
    blank: int = 0
    failure: str | None = None  # why reading stopped before the end
    on_chunk: Callable[[], None] | None = None  # called after each chunk (progress through blanks)
    _closers: list[Any] = field(default_factory=list)

    def position(self) -> int | None:
        try:
            return self.raw.tell() if self.raw is not None else None
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        for closer in self._closers:
            closer.close()

    def read(self) -> bytes:
        """The next chunk, b"" at the end or once reading failed (see `failure`)."""
        if self.failure is not None:
            return b""
        try:
            chunk = self.stream.read1(CHUNK)
        except EOFError:
            self.failure = ("the compressed data ends early (the gzip file is truncated)"
                            if self.compressed else "the input ends early")
            return b""
        except (OSError, zlib.error, UnicodeDecodeError) as error:  # gzip.BadGzipFile is an OSError
            self.failure = _describe(error, self.compressed, self.encoding)
            return b""
        if self.on_chunk is not None:
            self.on_chunk()
        return chunk

    def blocks(self) -> Iterator[bytes | Oversized]:
        """The source as blocks of whole lines (each up to a line end, the last one maybe
        not), with an `Oversized` in place of each line over the limit. At a failure the
        unfinished line is dropped: the caller reports it with the failure."""
        limit = self.max_line
        data, self.head = self.head, b""
        eof = skip_break = False
        while not eof or data:
            if not eof:
                chunk = self.read()
                if chunk:
                    data = data + chunk if data else chunk
                else:
                    eof = True
            if skip_break and data:
                # The skipped line's own line end: a \r\n may come in two chunks.
                if data == b"\r" and not eof:
                    continue
                data = data[2:] if data.startswith(b"\r\n") else data[1:]
                skip_break = False
            if not data:
                continue
            # A final \r may be the first half of \r\n: that line ends in the next chunk.
            end = len(data) - 1 if data[-1] == 13 and not eof else len(data)
            cut = max(data.rfind(b"\n", 0, end), data.rfind(b"\r", 0, end)) + 1
            if cut:
                block, data = data[:cut], data[cut:]
                yield block
            if eof:
                if data and self.failure is None:  # the last line, without a line end
                    yield Oversized(data[:KEPT_BYTES], len(data)) if len(data) > limit else data
                return
            line = len(data) - 1 if data[-1:] == b"\r" else len(data)
            if line > limit:
                if line < len(data):  # a whole line, ended by that \r
                    yield Oversized(data[:min(line, KEPT_BYTES)], line)
                    data = data[line:]
                else:
                    oversized, data, eof = self._skip_line(data)
                    yield oversized
                skip_break = bool(data)

    def _skip_line(self, start: bytes) -> tuple[Oversized, bytes, bool]:
        """Read past the rest of an over-long line: (its head and length, what follows it
        starting with its line end, whether the source ended)."""
        head, size = start[:KEPT_BYTES], len(start)
        while True:
            chunk = self.read()
            if not chunk:
                return Oversized(head, size), b"", True
            ends = [at for at in (chunk.find(b"\n"), chunk.find(b"\r")) if at >= 0]
            at = min(ends) if ends else len(chunk)
            if len(head) < KEPT_BYTES:
                head += chunk[:min(at, KEPT_BYTES - len(head))]
            size += at
            if ends:
                return Oversized(head, size), chunk[at:], False


def _describe(error: Exception, compressed: bool, encoding: str) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"the {encoding} text ends in the middle of a character"
    if isinstance(error, gzip.BadGzipFile):
        return f"corrupt gzip data ({error})"
    if isinstance(error, zlib.error):
        return f"corrupt compressed data ({error})"
    if isinstance(error, OSError):
        return f"read error ({error.strerror or error})"
    return str(error)


def count_lines(block: bytes) -> int:
    """Lines in a block of whole lines (its last one may lack a line end)."""
    lines = block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
    return lines + (1 if block and block[-1] not in (10, 13) else 0)


# -- opening ---------------------------------------------------------------------------------------


def open_source(path: str, *, max_line: int = MAX_LINE_BYTES) -> Opened:
    """Open a path (`-` is standard input) and read its head; `.gz` files, or gzip bytes on
    stdin, are decompressed, wide text is decoded. Raises InputError when it cannot be read."""
    closers: list[Any] = []
    try:
        if path == "-":
            stdin = sys.stdin.buffer
            head = stdin.peek(2)[:2] if hasattr(stdin, "peek") else b""
            name, raw, size = "<stdin>", None, None
            stream: Any = stdin
        else:
            name = path
            raw = open(path, "rb")  # noqa: SIM115 - closed by Opened.close
            closers.append(raw)
            size = os.fstat(raw.fileno()).st_size
            head = raw.read(2)
            raw.seek(0)
            stream = raw
        compressed = head == b"\x1f\x8b"
        if compressed:
            stream = gzip.GzipFile(fileobj=stream)
            closers.insert(0, stream)
        opened = Opened(name, stream, raw, size, max_line=max_line, compressed=compressed,
                        _closers=closers)
        _read_head(opened)
    except OSError as error:
        for closer in closers:
            closer.close()
        if isinstance(error, IsADirectoryError):
            raise InputError(f"{path} is a directory: name the files in it, such as "
                             f"{os.path.join(path, '*.jsonl')}") from error
        raise InputError(f"cannot read {path}: {error.strerror or error}") from error
    return opened


def _read_head(opened: Opened) -> None:
    """Read ahead a few lines, drop a UTF-8 byte order mark, decode wide text."""
    head = _read_ahead(opened)
    if head.startswith(UTF8_BOM):
        head = head[len(UTF8_BOM):]
    wide = _wide_encoding(head)
    if wide is not None:
        codec, label = wide
        opened.stream = _Transcoded(_Prefixed(head, opened.stream), codec)
        opened.encoding = label
        head = _read_ahead(opened)
    opened.head = head


def _read_ahead(opened: Opened) -> bytes:
    head = b""
    while len(head) < HEAD_BYTES and head.count(b"\n") + head.count(b"\r") <= HEAD_LINES:
        chunk = opened.read()
        if not chunk:
            break
        head += chunk
    return head


def _wide_encoding(head: bytes) -> tuple[str, str] | None:
    """The codec of UTF-16 or UTF-32 text (by its byte order mark, or the zero byte beside
    every ASCII character), or None for byte-wide text."""
    for bom, codec, label in _WIDE_BOMS:
        if head.startswith(bom):
            return codec, label
    if len(head) >= 4 and head[0] and not head[1] and head[2] and not head[3]:
        return "utf-16-le", "UTF-16"
    if len(head) >= 4 and not head[0] and head[1] and not head[2] and head[3]:
        return "utf-16-be", "UTF-16"
    return None


class _Prefixed:
    """Bytes already read, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream: Readable) -> None:
        self.prefix = prefix
        self.stream = stream

    def read1(self, size: int = -1, /) -> bytes:
        if self.prefix:
            out, self.prefix = self.prefix, b""
            return out
        return self.stream.read1(size)


class _Transcoded:
    """Wide text read as UTF-8. A lone surrogate stays in (as the bytes UTF-8 cannot
    hold), so that its line, and only its line, is quarantined as not valid text."""

    def __init__(self, stream: Readable, codec: str) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(codec)("surrogatepass")
        self.done = False

    def read1(self, size: int = -1, /) -> bytes:
        while not self.done:
            data = self.stream.read1(size)
            text = self.decoder.decode(data, final=not data)
            self.done = not data
            if text:
                return text.encode("utf-8", "surrogatepass")
        return b""


# -- JSONL -----------------------------------------------------------------------------------------


def jsonl_lines(opened: Opened) -> Iterator[tuple[int, bytes, str | None]]:
    """(line number, line without surrounding whitespace, problem) for each non-blank line;
    the problem is set for a line over the limit (then the line is its head) or not valid text."""
    limit = opened.max_line
    number = 0
    for block in opened.blocks():
        if type(block) is Oversized:
            number += 1
            opened.lines = number
            yield number, block.head, block.problem(limit)
            continue
        assert isinstance(block, bytes)
        if len(block) <= limit and not block.strip():
            skipped = count_lines(block)
            number += skipped
            opened.blank += skipped
            opened.lines = number
            continue
        lines = block.splitlines()
        # The block's lines count as read before its first is handed on: counted at its end,
        # the progress line said "282,875 lines, 284,000 read" (more messages than lines).
        opened.lines = number + len(lines)
        for line in lines:
            number += 1
            if len(line) > limit:  # as over the limit as one blocks() finds across chunks
                yield number, line[:KEPT_BYTES], Oversized(line, len(line)).problem(limit)
                continue
            stripped = line.strip()
            if not stripped:
                opened.blank += 1
            elif stripped.isascii():
                yield number, stripped, None
            else:
                yield number, stripped, text_problem(stripped, opened.encoding)
        opened.lines = number


def text_problem(line: bytes, encoding: str = "UTF-8") -> str | None:
    """Why these bytes are not valid text (read as UTF-8, or decoded to it from `encoding`)."""
    try:
        line.decode()
    except UnicodeDecodeError as error:
        if encoding != "UTF-8":  # decoded to UTF-8: only a lone surrogate is left undecodable
            return f"not valid {encoding} text: a lone surrogate in the line"
        return (f"not valid UTF-8 text: byte 0x{line[error.start]:02x} at position "
                f"{error.start + 1} of the line ({error.reason})")
    return None


def jsonl_records(opened: Opened) -> Iterator[Incoming]:
    """One message per non-blank line."""
    name = opened.name
    for number, line, problem in jsonl_lines(opened):
        if problem is None:
            yield Incoming(line, f"{name}:{number}")
        else:
            yield Incoming(line, f"{name}:{number}", problem=problem)


# -- CSV -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One record of a CSV file: where it starts, its exact bytes, its cells (or why it has none)."""

    line: int
    raw: bytes
    cells: list[str]
    problem: str | None = None


class _TooLong(Exception):
    """Raised by the csv reader's line feed: the current record is over the line limit."""

    def __init__(self, oversized: Oversized) -> None:
        super().__init__("record over the line limit")
        self.oversized = oversized


class _Cut(Exception):
    """Raised by the line feed: the source failed in the middle of a record."""


class CsvTable:
    """A CSV source: its header (read on opening), then its records one at a time.

    The csv module parses; this class feeds it the source's lines and keeps, for each
    record, the exact bytes it came from and the line where it starts. A record that
    does not parse, is not valid text or is longer than the line limit comes out with
    its problem (its first bytes as `raw` when too long), and the reader starts afresh
    on the next line. Blank lines between records are skipped, and rows of empty cells.
    """

    def __init__(self, opened: Opened) -> None:
        self.opened = opened
        self.number = 0  # lines handed to the csv reader so far
        self.start = 0  # where the current record starts
        self.pending: list[bytes] = []  # the current record's lines
        self.size = 0
        self.bad: tuple[int, str] | None = None  # the current record's first text problem, its line
        self._blocks = opened.blocks()
        self._lines: Iterator[bytes] = iter(())
        if csv.field_size_limit() < opened.max_line:
            csv.field_size_limit(opened.max_line)  # the line limit is what bounds a field
        self._reader = csv.reader(self._feed(), strict=True)
        header = next(self._records(), None)
        self.header_line = header.line if header is not None else 0
        self.header_problem = header.problem if header is not None else None
        self.columns = [column.strip() for column in header.cells] if header is not None else []

    def __iter__(self) -> Iterator[CsvRow]:
        return self._records()

    def _feed(self) -> Iterator[str]:
        opened, limit = self.opened, self.opened.max_line
        while True:
            for line in self._lines:
                self.number += 1
                if not self.pending:
                    if not line.strip():
                        opened.blank += 1
                        continue
                    self.start = self.number
                    self.size = 0
                self.size += len(line)
                self.pending.append(line)
                if self.size > limit:  # (its size without the line end that ends it)
                    ending = len(line) - len(line.rstrip(b"\r\n"))
                    raise _TooLong(Oversized(b"".join(self.pending)[:KEPT_BYTES], self.size - ending))
                try:
                    text = line.decode()
                except UnicodeDecodeError:
                    text = line.decode("utf-8", "surrogateescape")
                    if self.bad is None:
                        self.bad = (self.number, text_problem(line, opened.encoding) or "")
                yield text
            opened.lines = self.number
            block = next(self._blocks, None)
            if block is None:
                if self.pending and opened.failure is not None:
                    raise _Cut()
                return
            if type(block) is Oversized:
                self.number += 1
                if not self.pending:
                    self.start, self.size = self.number, 0
                head = b"".join(self.pending)[:KEPT_BYTES] if self.pending else block.head
                self.pending.append(b"")
                raise _TooLong(Oversized(head, self.size + block.size))
            assert isinstance(block, bytes)
            if not self.pending and len(block) <= limit and not block.strip():
                skipped = count_lines(block)
                self.number += skipped
                opened.blank += skipped
                opened.lines = self.number
                continue
            self._lines = iter(block.splitlines(keepends=True))

    def _records(self) -> Iterator[CsvRow]:
        limit = self.opened.max_line
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except _Cut:
                return
            except _TooLong as error:
                yield self._take([], error.oversized.problem(limit), error.oversized.head)
                self._reader = csv.reader(self._feed(), strict=True)
                continue
            except csv.Error as error:
                yield self._take([], self._csv_problem(error))
                self._reader = csv.reader(self._feed(), strict=True)
                continue
            if self.bad is not None:
                number, problem = self.bad
                yield self._take([], problem if number == self.start else f"line {number}: {problem}")
            elif cells and not "".join(cells).strip():
                self.opened.blank += 1  # a row of empty cells, as spreadsheets leave at the end
                self.pending = []
            elif self.pending:
                yield self._take(cells, None)

    def _csv_problem(self, error: csv.Error) -> str:
        # strict: a quote left open to the end was a value holding every row after it, those
        # rows recorded as its text and not counted (they are this quarantined record's now)
        if str(error) == "unexpected end of data" and self.pending:
            return (f"not valid CSV: the quoted value opened on line {self.start} is never "
                    f"closed, so the {len(self.pending)} lines from there to the end of the "
                    "input were read as one record; close the quote (a double quote inside a "
                    "quoted value is written twice)")
        if str(error).endswith("expected after '\"'"):
            return ("not valid CSV: text follows the quote that closes a quoted value (a double "
                    "quote inside a quoted value is written twice: \"say \"\"hi\"\"\")")
        return f"not valid CSV ({error})"

    def _take(self, cells: list[str], problem: str | None, raw: bytes | None = None) -> CsvRow:
        if raw is None:
            raw = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
            # Its exact bytes, without the line end that ended the record.
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw[-1:] in (b"\n", b"\r") else raw
        row = CsvRow(self.start, raw, cells, problem)
        self.pending = []
        self.bad = None
        return row


# -- CSV in the wire format ------------------------------------------------------------------------


def wire_columns() -> tuple[frozenset[str], frozenset[str]]:
    """(plain columns, dotted columns with a fixed name) a wire-format CSV may have."""
    from mot.domain.messages import SOURCE_FIELDS, TOP_FIELDS

    dotted = frozenset(f"{parent}.{child}" for parent in REFERENCE_COLUMNS for child in SOURCE_FIELDS)
    return frozenset(TOP_FIELDS), dotted


def check_wire_header(columns: list[str]) -> list[str]:
    """What is wrong with a wire-format CSV header (empty when nothing): unknown columns
    (with the nearest known names), repeated ones, and a column given twice over (`source`
    beside `source.id`, `attributes` beside `attributes.NAME`)."""
    plain, dotted = wire_columns()
    separator = _other_separator(columns, plain | dotted)
    if separator is not None:
        return [f"its columns are separated by {separator!r}, not by commas: mot reads "
                "comma-separated CSV (save it with commas as the separator)"]
    problems: list[str] = []
    seen: set[str] = set()
    for column in columns:
        if not column:
            continue  # a trailing separator: its cells must be empty (a row is checked)
        if column in seen:
            problems.append(f"column {column!r} appears twice")
        elif column not in plain and column not in dotted and not _is_attribute_column(column):
            near = get_close_matches(column, sorted(plain | dotted), n=1, cutoff=0.7)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            problems.append(f"unknown column {column!r}{hint}")
        seen.add(column)
    for parent in sorted(OBJECT_FIELDS):
        children = [c for c in columns if c.startswith(parent + ".")]
        if parent in columns and children:
            named = ", ".join(repr(c) for c in children)
            problems.append(f"column {parent!r} (a JSON object) and {named} both give {parent}: "
                            "keep one or the other")
    return problems


def _other_separator(columns: list[str], known: frozenset[str]) -> str | None:
    """The separator of a header read as one column that another separator splits into
    known columns (a spreadsheet's semicolon-separated "CSV"), else None."""
    if len(columns) != 1:
        return None
    for separator in (";", "\t", "|"):
        names = columns[0].split(separator)
        if len(names) > 1 and sum(n.strip() in known for n in names) * 2 > len(names):
            return separator
    return None


def _is_attribute_column(column: str) -> bool:
    return column.startswith("attributes.") and len(column) > len("attributes.")


def csv_records(table: CsvTable) -> Iterator[Incoming]:
    """One message per CSV record after the header; the row is mapped to a wire JSON object."""
    columns = table.columns
    name = table.opened.name
    unnamed = [i for i, column in enumerate(columns) if not column]
    for row in table:
        origin = f"{name}:{row.line}"
        if row.problem is not None:
            yield Incoming(row.raw, origin, problem=row.problem)
        elif len(row.cells) != len(columns):
            yield Incoming(row.raw, origin, problem=cell_count_problem(row.cells, columns))
        elif held := [i for i in unnamed if row.cells[i]]:
            yield Incoming(row.raw, origin, problem=_unnamed_cell(held[0], row.cells[held[0]]))
        else:
            yield Incoming(row.raw, origin, orjson.dumps(csv_row_to_wire(columns, row.cells)))


def cell_count_problem(cells: list[str], columns: list[str]) -> str:
    """Why a row with another number of cells than the header's is refused, naming the columns
    it gives no cell (or the cells past the last column): "CSV row has 8 cells, the header has 9"
    alone left the reader to count commas to find which field went missing."""
    said = f"CSV row has {len(cells)} cells, the header has {len(columns)}"
    if len(cells) < len(columns):
        missing = columns[len(cells):]
        named = ", ".join(repr(c) for c in missing[:5]) + (", ..." if len(missing) > 5 else "")
        return f"{said}: no cell for {'column' if len(missing) == 1 else 'columns'} {named}"
    extra = cells[len(columns):]
    shown = ", ".join(repr(c if len(c) <= 40 else c[:37] + "...") for c in extra[:3])
    return (f"{said}: {shown}{', ...' if len(extra) > 3 else ''} past its last column "
            f"{columns[-1]!r} (a comma in a value needs the value in double quotes)")


def _unnamed_cell(index: int, cell: str) -> str:
    # Mapped, the cell became the field '' ("unknown field"), naming neither it nor its column.
    shown = cell if len(cell) <= 40 else cell[:37] + "..."
    return (f"cell {index + 1} holds {shown!r} under a column the header does not name (the "
            f"header's column {index + 1} is empty): name the column, or leave its cells empty")


def csv_row_to_wire(columns: list[str], row: list[str]) -> dict[str, Any]:
    """A CSV row as a wire object: empty cells are absent, dotted columns nest
    (`attributes.a.b` is the attribute named `a.b`)."""
    wire: dict[str, Any] = {}
    for column, cell in zip(columns, row, strict=True):
        if cell == "":
            continue
        if "." in column:
            parent, child = column.split(".", 1)
            nested = wire.setdefault(parent, {})
            if isinstance(nested, dict):
                nested[child] = cell
            continue
        wire[column] = _typed(column, cell)
    return wire


def _typed(column: str, cell: str) -> Any:
    # A cell that does not convert stays text, so the schema names the field in its error;
    # so does a number JSON cannot carry as sent (beyond 64 bits, inf, nan), which would
    # otherwise become null or a rounded value.
    try:
        if column in INTEGER_FIELDS:
            number = int(cell)
            return number if -(2**63) <= number < 2**64 else cell
        if column in NUMBER_FIELDS:
            real = float(cell)
            return real if math.isfinite(real) else cell
        if column in OBJECT_FIELDS and cell.startswith("{"):
            return orjson.loads(cell)
    except (ValueError, orjson.JSONDecodeError):
        return cell
    return cell
