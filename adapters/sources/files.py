"""File sources: JSONL (plain or gzip) and CSV, from a path or standard input.

Each yields `Incoming` messages with their origin (`file:line`), reading one
record at a time so memory does not grow with the file. CSV columns are wire
field names; `source.system`/`source.id` and `attributes.NAME` are dotted
columns; numeric fields are converted from text here, because the wire schema
itself takes typed JSON values.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from mot.service.ledger import Incoming

INTEGER_FIELDS = frozenset({"reach"})
NUMBER_FIELDS = frozenset({"sentiment", "value"})
OBJECT_FIELDS = frozenset({"source", "in_reply_to", "shares", "attributes"})


@dataclass
class Opened:
    """A readable source and how far through it we are (for progress and ETA)."""

    name: str
    stream: IO[bytes] | gzip.GzipFile
    raw: IO[bytes] | None  # the underlying file, whose position tells progress
    size: int | None

    def position(self) -> int | None:
        try:
            return self.raw.tell() if self.raw is not None else None
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        self.stream.close()
        if self.raw is not None and self.raw is not self.stream:
            self.raw.close()


def open_source(path: str) -> Opened:
    """Open a path (`-` is standard input); `.gz` files, or gzip bytes on stdin, are decompressed."""
    if path == "-":
        stdin = sys.stdin.buffer
        head = stdin.peek(2)[:2] if hasattr(stdin, "peek") else b""
        if head == b"\x1f\x8b":
            return Opened("<stdin>", gzip.GzipFile(fileobj=stdin), None, None)
        return Opened("<stdin>", stdin, None, None)
    raw = open(path, "rb")  # noqa: SIM115 - closed by Opened.close
    size = os.fstat(raw.fileno()).st_size
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return Opened(path, gzip.GzipFile(fileobj=raw), raw, size)
    raw.seek(0)
    return Opened(path, raw, raw, size)


def jsonl_records(opened: Opened) -> Iterator[Incoming]:
    """One message per non-blank line."""
    name = opened.name
    for number, line in enumerate(opened.stream, start=1):
        stripped = line.strip()
        if stripped:
            yield Incoming(stripped, f"{name}:{number}")


def csv_rows(opened: Opened) -> Iterator[tuple[str, bytes, list[str], list[str]]]:
    """(origin, raw row, header columns, cells) for each non-blank row after the header.

    utf-8-sig: exports saved by spreadsheet tools start with a byte order mark.
    """
    text = io.TextIOWrapper(opened.stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    columns = [column.strip() for column in header]
    for row in reader:
        if any(cell.strip() for cell in row):
            yield f"{opened.name}:{reader.line_num}", _csv_line(row), columns, row


def csv_records(opened: Opened) -> Iterator[Incoming]:
    """One message per CSV row after the header; the row is mapped to a wire JSON object."""
    for origin, raw, columns, row in csv_rows(opened):
        if len(row) != len(columns):
            problem = f"CSV row has {len(row)} cells, the header has {len(columns)}"
            yield Incoming(raw, origin, problem=problem)
            continue
        yield Incoming(raw, origin, orjson.dumps(csv_row_to_wire(columns, row)))


def csv_row_to_wire(columns: list[str], row: list[str]) -> dict[str, Any]:
    """A CSV row as a wire object: empty cells are absent, dotted columns nest."""
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
    # A cell that does not convert stays text, so the schema names the field in its error.
    try:
        if column in INTEGER_FIELDS:
            return int(cell)
        if column in NUMBER_FIELDS:
            return float(cell)
        if column in OBJECT_FIELDS and cell.startswith("{"):
            return orjson.loads(cell)
    except (ValueError, orjson.JSONDecodeError):
        return cell
    return cell


def _csv_line(row: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue().encode()
