"""Reading input files (issue 13 cases 6-9): bounded lines, line ends, text, CSV records.

The reader is tested on its own (no store): a stream that hands out its bytes in
chosen pieces shows that nothing depends on where a chunk ends — a line, a `\\r\\n`, an
over-long line or a CSV record split anywhere reads the same as in one piece.
"""

from __future__ import annotations

import codecs
import gzip
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from input_support import damaged

from mot.adapters.sources.files import (
    KEPT_BYTES,
    CsvTable,
    Opened,
    check_wire_header,
    csv_records,
    jsonl_lines,
    open_source,
)

MOMENT = {"tenant": "acme", "customer_id": "c1", "occurred_at": "2026-03-01T10:00:00Z",
          "channel": "email", "direction": "inbound", "kind": "question",
          "source": {"system": "crm", "id": "1"}}


class Pieces:
    """A stream whose reads return these pieces, one per read."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, size: int = -1, /) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def opened(pieces: list[bytes], max_line: int = 1 << 20) -> Opened:
    return Opened("t", Pieces(pieces), None, None, max_line=max_line)


def lines_of(pieces: list[bytes], max_line: int = 1 << 20) -> list[tuple[int, bytes, bool]]:
    return [(n, line, problem is not None) for n, line, problem in jsonl_lines(opened(pieces, max_line))]


def reference(data: bytes, limit: int) -> list[tuple[int, bytes, bool]]:
    """What reading `data` whole gives: lines end at \\n, \\r\\n or \\r; over the limit, a head."""
    out = []
    for number, line in enumerate(data.splitlines(), start=1):
        if len(line) > limit:
            out.append((number, line[:KEPT_BYTES], True))
        elif line.strip():
            out.append((number, line.strip(), not line.strip().isascii() and not _utf8(line)))
    return out


def _utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points) if b > a]


# -- line ends and pieces --------------------------------------------------------------------------


def test_lines_end_at_lf_crlf_and_a_lone_cr() -> None:
    data = b"a\nb\r\nc\rd\n\n\re"
    assert lines_of([data]) == [(1, b"a", False), (2, b"b", False), (3, b"c", False),
                                (4, b"d", False), (7, b"e", False)]


def test_a_crlf_split_between_two_reads_is_one_line_end() -> None:
    assert lines_of([b"a\r", b"\nb\r", b"\n", b"c"]) == [(1, b"a", False), (2, b"b", False),
                                                        (3, b"c", False)]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.binary(max_size=300).map(lambda b: b.translate(_SQUASH)),
       cuts=st.lists(st.integers(0, 400), max_size=8), limit=st.sampled_from([4, 16, 1 << 20]))
def test_any_bytes_in_any_pieces_read_as_in_one_piece(data: bytes, cuts: list[int], limit: int) -> None:
    assert lines_of(split(data, cuts), limit) == reference(data, limit)


# Bytes squashed onto a few that matter (line ends, spaces, JSON, invalid UTF-8), so that
# random data is made of lines rather than noise.
_SQUASH = bytes(b"ab\r\n \t{}\xff\xc3"[i % 10] for i in range(256))


# -- bounded lines ---------------------------------------------------------------------------------


def test_a_line_over_the_limit_keeps_its_head_and_the_next_line_reads() -> None:
    long = b"x" * 5000
    got = list(jsonl_lines(opened([b"{}\n", long[:2000], long[2000:] + b"\r", b"\n{}\n"], 1024)))
    assert [(n, len(line)) for n, line, _ in got] == [(1, 2), (2, KEPT_BYTES), (3, 2)]
    assert got[1][2] == ("line of 5,000 bytes, over the limit of 1,024 (--max-line-bytes); "
                         "the quarantine keeps its first 1,024 bytes")
    assert got[1][1] == b"x" * KEPT_BYTES
    assert got[0][2] is None and got[2][2] is None


def test_blank_lines_are_counted_and_progress_is_told_of_them() -> None:
    ticks: list[int] = []
    source = opened([b"\n" * 1000, b"\r\n" * 1000, b"  \n" * 1000, b"{}\n"])
    source.on_chunk = lambda: ticks.append(source.lines)
    assert [(n, line) for n, line, _ in jsonl_lines(source)] == [(3001, b"{}")]
    assert (source.lines, source.blank) == (3001, 3000)
    assert ticks == [0, 1000, 2000, 3000, 3001]  # told after each read, before any message


# -- compressed input that fails part-way ----------------------------------------------------------


def gzip_of(lines: int) -> bytes:
    return gzip.compress(b"".join(orjson.dumps({**MOMENT, "customer_id": f"c{n}"}) + b"\n"
                                  for n in range(lines)))


@pytest.mark.parametrize("damage, failure", [
    ("truncated", "the compressed data ends early (the gzip file is truncated)"),
    ("crc", "corrupt gzip data (CRC check failed"),
    ("trailing", "corrupt gzip data (Not a gzipped file"),
])
def test_a_damaged_gzip_ends_its_lines_with_the_failure(tmp_path: Path, damage: str,
                                                        failure: str) -> None:
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(damaged(gzip_of(2000), damage))
    source = open_source(str(path))
    got = list(jsonl_lines(source))
    source.close()
    assert source.failure is not None and source.failure.startswith(failure)
    # Every whole line before the failure, numbered, and no piece of a cut one.
    assert [n for n, _, _ in got] == list(range(1, len(got) + 1))
    assert all(orjson.loads(line)["customer_id"] == f"c{n - 1}" for n, line, _ in got)
    assert source.lines == len(got)
    assert len(got) == 2000 if damage != "truncated" else 0 < len(got) < 2000


# -- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding, bom", [
    ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
    ("utf-16-le", b""), ("utf-16-be", b""), ("utf-32-le", codecs.BOM_UTF32_LE),
])
def test_byte_order_marks_and_wide_text_read_as_utf8(tmp_path: Path, encoding: str, bom: bytes) -> None:
    text = orjson.dumps({**MOMENT, "customer_id": "Zoë 🙂"}).decode() + "\r\n{}\r\n"
    path = tmp_path / "m.jsonl"
    path.write_bytes(bom + text.encode(encoding))
    source = open_source(str(path))
    got = list(jsonl_lines(source))
    assert [(n, orjson.loads(line), problem) for n, line, problem in got] == [
        (1, {**MOMENT, "customer_id": "Zoë 🙂"}, None), (2, {}, None)]
    assert source.encoding == ("UTF-8" if encoding == "utf-8" else encoding[:6].upper())


def test_a_lone_surrogate_in_utf16_is_its_line_only(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(codecs.BOM_UTF16_LE + "{}\n".encode("utf-16-le") + b"\x00\xd8"
                     + "x\n{}\n".encode("utf-16-le"))
    source = open_source(str(path))
    assert [(n, problem) for n, _, problem in jsonl_lines(source)] == [
        (1, None), (2, "not valid UTF-16 text: a lone surrogate in the line"), (3, None)]


def test_invalid_utf8_is_named_on_its_line() -> None:
    got = list(jsonl_lines(opened([b'{"a": "ok"}\n{"a": "\xe9t\xe9"}\n{"a": "\xc3\xa9"}\n'])))
    assert [(n, problem) for n, _, problem in got] == [
        (1, None),
        (2, "not valid UTF-8 text: byte 0xe9 at position 8 of the line (invalid continuation byte)"),
        (3, None)]


# -- CSV -------------------------------------------------------------------------------------------


def csv_table(pieces: list[bytes], max_line: int = 1 << 20) -> CsvTable:
    return CsvTable(opened(pieces, max_line))


CSV = (b"customer_id,attributes.note,source.system,source.id\r\n"
       b"c1,\"two\r\nlines\",crm,1\r\n"
       b"\r\n"
       b"c2,\"say \"\"hi\"\"\",crm,2\r"
       b",,,\n"
       b"c3,caf\xff,crm,3\n"
       b"c4,plain,crm,4")


def test_csv_records_keep_their_exact_bytes_and_first_line() -> None:
    table = csv_table([CSV])
    assert table.columns == ["customer_id", "attributes.note", "source.system", "source.id"]
    rows = [(r.line, r.raw, r.cells, r.problem) for r in table]
    assert rows == [
        (2, b'c1,"two\r\nlines",crm,1', ["c1", "two\r\nlines", "crm", "1"], None),
        (5, b'c2,"say ""hi""",crm,2', ["c2", 'say "hi"', "crm", "2"], None),
        (7, b"c3,caf\xff,crm,3", [], "not valid UTF-8 text: byte 0xff at position 7 of the line "
                                   "(invalid start byte)"),
        (8, b"c4,plain,crm,4", ["c4", "plain", "crm", "4"], None),
    ]
    assert (table.opened.lines, table.opened.blank) == (8, 2)


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(CSV)), max_size=10))
def test_csv_in_any_pieces_reads_as_in_one_piece(cuts: list[int]) -> None:
    whole = [(r.line, r.raw, r.cells, r.problem) for r in csv_table([CSV])]
    assert [(r.line, r.raw, r.cells, r.problem) for r in csv_table(split(CSV, cuts))] == whole


def test_a_csv_record_over_the_limit_is_its_head_and_the_next_reads() -> None:
    data = (b"customer_id,source.id\nc1,1\nc2,\"" + b"y" * 3000 + b"\nmore\"\nc3,3\nc4,"
            + b"z" * 3000 + b"\nc5,5\n")
    rows = [(r.line, len(r.raw), r.cells, (r.problem or "")[:24]) for r in csv_table([data], 2048)]
    # Line 3 is over the limit by itself: the quote it opens is lost with it, so line 4 is a
    # record of its own (with one cell, so that it is quarantined for that).
    assert rows == [(2, 4, ["c1", "1"], ""), (3, KEPT_BYTES, [], "line of 3,004 bytes, ove"),
                    (4, 5, ['more"'], ""), (5, 4, ["c3", "3"], ""),
                    (6, KEPT_BYTES, [], "line of 3,003 bytes, ove"), (7, 4, ["c5", "5"], "")]
    many = b"customer_id,note\nc1,\"" + b"y\n" * 1500 + b"\"\nc2,2\n"
    rows = [(r.line, len(r.raw), r.cells, (r.problem or "")[:24]) for r in csv_table([many], 2048)]
    assert rows[0] == (2, KEPT_BYTES, [], "line of 2,049 bytes, ove")  # counted up to the limit
    # The reader starts afresh after it, without the open quote: the closing quote on line
    # 1502 opens one, never closed, so that the last record is that line and the next,
    # quarantined with both (not lost, nor read as one cell holding the rest of the file).
    assert rows[-1] == (1502, 6, [], "not valid CSV: the quote")


def test_a_quarantined_csv_row_keeps_its_exact_bytes() -> None:
    data = b'customer_id,reach,source.system,source.id\nc1,"lots",crm,  1\n'
    (item,) = list(csv_records(csv_table([data])))
    assert item.raw == b'c1,"lots",crm,  1'  # not re-serialised (which gave c1,lots,crm,  1)
    assert orjson.loads(item.message) == {"customer_id": "c1", "reach": "lots",
                                          "source": {"system": "crm", "id": "  1"}}


@pytest.mark.parametrize("header, problems", [
    ("customer_id,attributes,attributes.a.b", [
        "column 'attributes' (a JSON object) and 'attributes.a.b' both give attributes: keep one "
        "or the other"]),
    ("customer_id,source,source.system,source.id", [
        "column 'source' (a JSON object) and 'source.system', 'source.id' both give source: keep "
        "one or the other"]),
    ("custmer_id,occured_at,chanel,source.sytem,colour", [
        "unknown column 'custmer_id' (did you mean 'customer_id'?)",
        "unknown column 'occured_at' (did you mean 'occurred_at'?)",
        "unknown column 'chanel' (did you mean 'channel'?)",
        "unknown column 'source.sytem' (did you mean 'source.system'?)",
        "unknown column 'colour'"]),
    ("customer_id,kind,kind", ["column 'kind' appears twice"]),
    ("customer_id,source.system,source.id,attributes.a.b,in_reply_to.id,,", []),
])
def test_csv_header_problems_are_named_with_suggestions(header: str, problems: list[str]) -> None:
    assert check_wire_header(header.split(",")) == problems


def test_a_utf16_csv_reads_like_utf8(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "customer_id,source.id\r\nZoë,1\r\n".encode("utf-16-le"))
    table = CsvTable(open_source(str(path)))
    assert [(r.line, r.cells) for r in table] == [(2, ["Zoë", "1"])]
    assert table.columns == ["customer_id", "source.id"]


def test_the_reader_holds_memory_of_a_chunk_not_of_a_line() -> None:
    # A 64 MiB line read through a 1 KiB limit: what is held is the chunk and the head.
    class Endless:
        def __init__(self) -> None:
            self.left = 64

        def read1(self, size: int = -1, /) -> bytes:
            self.left -= 1
            return b"x" * (1 << 20) if self.left >= 0 else b"\n{}\n" if self.left == -1 else b""

    source = Opened("t", Endless(), None, None, max_line=1024)
    biggest = 0
    for block in source.blocks():
        biggest = max(biggest, len(block.head) if not isinstance(block, bytes) else len(block))
    assert biggest <= 1 << 20
    source = Opened("t", Endless(), None, None, max_line=1024)
    assert [(n, len(line)) for n, line, _ in jsonl_lines(source)] == [(1, KEPT_BYTES), (2, 2)]


def test_csv_numbers_json_cannot_carry_stay_text_for_the_schema_to_name() -> None:
    # (Found by the fuzz suite: a 30-digit reach raised in the encoder; 1e999 became null.)
    data = (b"customer_id,reach,sentiment,source.system,source.id\n"
            b"c1,100000000000000000000000000000,1e999,crm,1\nc2,12,nan,crm,2\n")
    messages = [orjson.loads(item.message) for item in csv_records(csv_table([data]))]
    assert [(m["reach"], m["sentiment"]) for m in messages] == [
        ("100000000000000000000000000000", "1e999"), (12, "nan")]


def test_a_vendor_value_of_an_unexpected_shape_is_unmappable_not_a_crash() -> None:
    # (Found by the fuzz suite: a list as a Zendesk audit's author_id raised in the unwrapping.)
    from mot.adapters.sources.vendor import VendorStats, map_value
    from mot.adapters.vendors import SOURCES, VendorConfig

    stats = VendorStats("zendesk")
    value = {"audits": [{"id": 1, "ticket_id": 2, "author_id": [], "events": []}], "tickets": []}
    (item,) = map_value(SOURCES["zendesk"], value, VendorConfig(), "f:1", None, stats)
    assert item.problem == "zendesk: cannot map this record (TypeError: unhashable type: 'list')"
    assert (stats.records, stats.unmappable) == (1, 1)


@pytest.mark.parametrize("reach, problem", [
    (10**30, "x: reach: 1000000000000000000000000000000 is beyond 64 bits"),
    (float("nan"), "x: reach: nan is not a number JSON can carry"),
])
def test_a_mapped_number_json_cannot_carry_makes_the_record_unmappable(reach: Any, problem: str) -> None:
    # (Found by the fuzz suite: a 30-digit follower count raised in the encoder; a NaN would
    # have been recorded as null.)
    from mot.adapters.sources.vendor import VendorSource, VendorStats, map_record
    from mot.adapters.vendors import VendorConfig

    source = VendorSource("x", "X", ("jsonl",), lambda value: [value],
                          lambda record, config: [{**MOMENT, "reach": record["reach"]}],
                          lambda record, config: [])
    stats = VendorStats("x")
    (item,) = map_record(source, {"reach": reach}, VendorConfig(), "f:1", b"{}", stats)
    assert item.problem == problem
    assert (stats.records, stats.messages, stats.unmappable) == (1, 0, 1)


def test_an_overflow_in_a_mapping_makes_the_record_unmappable() -> None:
    # (Found by the fuzz suite on HubSpot records: a date out of range raised OverflowError.)
    from datetime import datetime

    from mot.adapters.sources.vendor import VendorSource, VendorStats, map_record
    from mot.adapters.vendors import VendorConfig

    source = VendorSource("hubspot", "HubSpot", ("jsonl",), lambda value: [value],
                          lambda record, config: [{"at": datetime.fromtimestamp(record["t"])}],
                          lambda record, config: [])
    stats = VendorStats("hubspot")
    (item,) = map_record(source, {"t": 1e20}, VendorConfig(), "f:1", b"{}", stats)
    assert item.problem is not None and item.problem.startswith(
        "hubspot: cannot map this record (OverflowError: ")
