"""What `mot import` reads: each path checked before anything is recorded, then its messages.

`FileInput.check` opens a path, reads its first lines and says what is wrong, so that
`mot import a.jsonl b.csv missing.jsonl` refuses before recording `a.jsonl`: a path
that cannot be read; a CSV header with unknown, repeated or clashing columns; and
content that is not what the options say (CSV read as JSON lines, JSON lines read as
CSV, another source system's records than `--from` names, or mot's own wire format
read `--from` a source system), with the option that reads it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from mot.adapters.sources.files import (
    MAX_LINE_BYTES,
    CsvTable,
    InputError,
    Opened,
    check_wire_header,
    csv_records,
    jsonl_records,
    open_source,
    wire_columns,
)
from mot.adapters.sources.vendor import VendorStats, check_vendor_header, map_value, vendor_records
from mot.adapters.vendors import SOURCES, VendorConfig, VendorSource
from mot.domain.messages import Rejection, parse_message
from mot.domain.timefmt import utc_now
from mot.service.ledger import Incoming


def is_csv_path(path: str) -> bool:
    return path.lower().removesuffix(".gz").endswith(".csv")


@dataclass(eq=False)
class FileInput:
    """One path to import (`-` is standard input) in a format, maybe `--from` a source system."""

    path: str
    fmt: str  # "jsonl" or "csv"
    vendor: VendorSource | None = None
    config: VendorConfig = field(default_factory=VendorConfig)
    stats: VendorStats | None = None
    max_line: int = MAX_LINE_BYTES
    _opened: Opened | None = None
    _table: CsvTable | None = None
    _kept: Opened | None = None  # standard input, opened by check (it cannot be opened twice)

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else self.path

    @property
    def size(self) -> int | None:
        opened = self._opened or self._kept
        return opened.size if opened is not None else None

    def check(self) -> str | None:
        """What is wrong with this input, in one message naming it; None when it can be read."""
        if self.vendor is not None and self.fmt not in self.vendor.formats:
            return (f"{self.name}: --from {self.vendor.name} reads "
                    f"{' or '.join(self.vendor.formats)}, not {self.fmt}")
        try:
            opened = open_source(self.path, max_line=self.max_line)
        except InputError as error:
            return str(error)
        table = None
        try:
            lines = _head_lines(opened.head)
            problem = _not_text(opened.head)
            if problem is None:
                table = CsvTable(opened) if self.fmt == "csv" else None
                problem = (self._check_csv(table, lines) if table is not None
                           else self._check_jsonl(lines))
        finally:
            if self.path == "-":
                self._kept, self._table = opened, table
            else:
                opened.close()
        return None if problem is None else f"{self.name}: {problem}"

    def messages(self) -> Iterator[Incoming]:
        """The input's messages, one at a time (call `check` first)."""
        if self._kept is not None:
            opened, table, self._kept = self._kept, self._table, None
        else:
            opened = open_source(self.path, max_line=self.max_line)
            table = CsvTable(opened) if self.fmt == "csv" else None
        self._opened = opened
        source: CsvTable | Opened = table if table is not None else opened
        if self.vendor is not None and self.stats is not None:
            return vendor_records(source, self.vendor, self.config, self.stats)
        return csv_records(table) if table is not None else jsonl_records(opened)

    def watch(self, tick: Callable[[], None]) -> None:
        """Call `tick` after each chunk read (progress through long stretches of blank lines)."""
        if self._opened is not None:
            self._opened.on_chunk = tick

    def lines(self) -> tuple[int, int]:
        """(lines read so far, of them blank)."""
        return (self._opened.lines, self._opened.blank) if self._opened is not None else (0, 0)

    def done(self) -> float | None:
        """The fraction of the input read, when its size is known."""
        opened = self._opened
        if opened is None or not opened.size:
            return None
        position = opened.position()
        return None if position is None else position / opened.size

    def failure(self) -> str | None:
        """Why reading stopped before the end, naming the input and the line reached."""
        opened = self._opened
        if opened is None or opened.failure is None:
            return None
        return f"{self.name}: {opened.failure}, after line {opened.lines:,}"

    def close(self) -> None:
        """Close what is open (what was read, and how far, can still be asked)."""
        for opened in (self._opened, self._kept):
            if opened is not None:
                opened.close()
        self._kept = None

    # -- checks ------------------------------------------------------------------------------

    def _check_jsonl(self, lines: list[bytes]) -> str | None:
        values = [value for value in map(_json, lines) if value is not None]
        if not values:
            if lines and _looks_like_csv(lines):
                return self._csv_hint(lines)
            if len(lines) > 1 and lines[0].strip() in (b"{", b"["):
                # Every line of it would be quarantined as a piece of JSON.
                return ("this is one JSON document over several lines, not JSON lines (one "
                        "moment a line): put each moment on a line of its own, such as with "
                        "jq -c '.[]' (an array) or jq -c . (objects)")
            return None
        if self.vendor is None:
            if any(_is_wire(v) for v in values) or not _all_rejected(lines):
                return None
            found = self._other_vendor(values)
            return (f"these are not mot's wire format but look like {found.name} records: "
                    f"import them with --from {found.name}") if found else None
        if any(_maps(self.vendor, v, self.config) for v in values):
            return None
        return self._vendor_hint(values, lines)

    def _check_csv(self, table: CsvTable, lines: list[bytes]) -> str | None:
        if table.header_problem is not None:
            return f"the header (line {table.header_line}): {table.header_problem}"
        if lines and lines[0].lstrip()[:1] in (b"{", b"[") and _json(lines[0]) is not None:
            return "this is JSON lines, not CSV: import it with --format jsonl"
        columns = table.columns
        rows = _csv_head_rows(lines)
        if self.vendor is not None:
            problems = check_vendor_header(columns)
            if problems:
                return "the header: " + "; ".join(problems)
            if not rows or any(_maps(self.vendor, row, self.config) for row in rows):
                return None
            return self._vendor_hint(rows, [])
        problems = check_wire_header(columns)
        if not problems:
            return None
        plain, dotted = wire_columns()
        if not any(c in plain or c in dotted or c.startswith("attributes.") for c in columns):
            found = self._other_vendor(rows)
            if found is not None and "csv" in found.formats:
                shown = ", ".join(columns[:3]) + (", ..." if len(columns) > 3 else "")
                return (f"the header has no column of mot's wire format ({shown}); these look "
                        f"like {found.name} records: import them with --from {found.name}")
        return "the header: " + "; ".join(problems) + ". Nothing of it was recorded"

    def _csv_hint(self, lines: list[bytes]) -> str:
        first = lines[0].decode("utf-8", "replace").strip()
        shown = first if len(first) <= 60 else first[:57] + "..."
        option = "--format csv"
        if self.vendor is None:
            rows = _csv_head_rows(lines)
            found = self._other_vendor(rows)
            header = next(csv.reader([first]), [])
            plain, dotted = wire_columns()
            if found is not None and "csv" in found.formats and not any(
                    c.strip() in plain or c.strip() in dotted for c in header):
                option = f"--format csv --from {found.name}"
        elif "csv" not in self.vendor.formats:
            return (f"this looks like CSV (its first line is {shown!r}), and --from "
                    f"{self.vendor.name} reads JSON lines only")
        return f"this looks like CSV, not JSON lines (its first line is {shown!r}): import it with {option}"

    def _vendor_hint(self, values: list[Any], lines: list[bytes]) -> str | None:
        assert self.vendor is not None
        if lines and any(_is_wire(v) for v in values) and not _all_rejected(lines):
            return (f"these are mot's own wire format, not {self.vendor.name} records: "
                    "import them without --from")
        found = self._other_vendor(values)
        if found is not None:
            return (f"none of the first records is a {self.vendor.name} record; they look like "
                    f"{found.name} records: import them with --from {found.name}")
        return None

    def _other_vendor(self, values: list[Any]) -> VendorSource | None:
        """The source system (other than --from's) that maps most of these values, if any."""
        best, best_count = None, 0
        for source in SOURCES.values():
            if source is self.vendor:
                continue
            count = sum(_maps(source, value, self.config) for value in values)
            if count > best_count:
                best, best_count = source, count
        return best


# The first bytes of what is no text mot reads: archives, and compressions other than gzip
# (which is read), named so that a user knows what to do; each line of them would be
# quarantined as bytes that are no UTF-8 (a zip's stored file, its lines among them).
_PACKED = ((b"PK\x03\x04", "a zip archive"), (b"PK\x05\x06", "a zip archive"),
           (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"\xfd7zXZ\x00", "xz-compressed"),
           (b"\x28\xb5\x2f\xfd", "zstd-compressed"), (b"BZh", "bzip2-compressed"))


def _not_text(head: bytes) -> str | None:
    """Why a source's head (decompressed, decoded) is no text mot reads, or None. A stray
    zero byte is its line's to be quarantined for; many are a binary file's."""
    for magic, what in _PACKED:
        if head.startswith(magic) and (magic != b"BZh" or head[3:10].startswith(
                tuple(b"%d1AY&SY" % level for level in range(1, 10)))):
            return (f"this is {what}, not JSON lines or CSV: unpack it first (mot import reads "
                    "text, plain or gzip-compressed)")
    zeros = head.count(b"\x00")
    if zeros > max(len(head) // 100, 1):
        return (f"this is a binary file, not JSON lines or CSV (its first bytes hold {zeros:,}"
                " zero bytes): mot import reads text, plain or gzip-compressed")
    return None


def _head_lines(head: bytes) -> list[bytes]:
    """The complete, non-blank lines of a source's head (the last one may be cut short)."""
    lines = head.splitlines()
    if len(lines) > 1 and head[-1:] not in (b"\n", b"\r"):
        lines.pop()
    return [line for line in lines if line.strip()]


def _json(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return None


def _looks_like_csv(lines: list[bytes]) -> bool:
    """A first line of at least two comma-separated cells, and rows of as many cells; not
    one that begins as JSON does (a line nested too deeply for the parser, say, is JSON that
    each line's quarantine reason explains, not CSV)."""
    if lines[0].lstrip()[:1] in (b"{", b"["):
        return False
    try:
        rows = list(csv.reader(line.decode("utf-8", "replace") for line in lines[:5]))
    except csv.Error:
        return False
    return len(rows[0]) >= 2 and all(len(row) == len(rows[0]) for row in rows[1:])


def _csv_head_rows(lines: list[bytes]) -> list[dict[str, str]]:
    """The records of a CSV head (header -> cell), as far as it parses."""
    try:
        rows = list(csv.reader(line.decode("utf-8", "replace") for line in lines))
    except csv.Error:
        return []
    if not rows:
        return []
    header = [cell.strip() for cell in rows[0]]
    return [dict(zip(header, row, strict=False)) for row in rows[1:] if len(row) == len(header)]


def _is_wire(value: Any) -> bool:
    """Whether a JSON value looks like a wire message: an object with two or more wire fields."""
    if not isinstance(value, dict):
        return False
    plain, _ = wire_columns()
    return sum(key in plain for key in value) >= 2


def _all_rejected(lines: list[bytes]) -> bool:
    now = utc_now()
    return all(isinstance(parse_message(line, now), Rejection) for line in lines)


def _maps(source: VendorSource, value: Any, config: VendorConfig) -> bool:
    """Whether a source system's mapping understands this value (a moment, or by rule none)."""
    stats = VendorStats(source.name)
    try:
        messages = map_value(source, value, config, "check", None, stats)
    except Exception:  # any failure of a mapping on a foreign value means: not this system's
        return False
    return bool(stats.not_moments) or any(m.problem is None for m in messages)
