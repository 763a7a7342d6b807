"""Fuzzing the wire format and every vendor adapter through `mot import`'s own path (issue 13).

Each generated input is a whole file: hostile lines (SQL and shell metacharacters, NUL,
invalid UTF-8, deep nesting, NaN and Infinity, numbers beyond 64 bits, timestamps without
offsets, duplicate keys, byte order marks, LF/CRLF/CR mixes, blank lines, cut-off lines,
gzip whole or truncated) built around valid moments or the vendors' own fixture records.
It goes through what `mot import` runs: `FileInput.check` (a whole-file refusal is allowed,
as one message), then `ImportJob` into a real SQLite ledger. Never a traceback, and the
counts add up: every message read is recorded, amended, retracted, a duplicate or
quarantined; for the wire format every non-blank line is one message; for a vendor every
message read is a mapped moment or an unmappable record (records that are by rule no
moment are counted apart, as the summary reports them).

`make test` runs a few thousand inputs; `make fuzz` runs the same checks on well over
100,000 (the tests marked `fuzz`, left out of `make test` by pyproject's addopts) and
prints what became of them.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from random import Random
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mot.adapters.sources.inputs import FileInput
from mot.adapters.sources.vendor import VendorStats
from mot.adapters.vendors import SOURCES, VendorConfig
from mot.bootstrap import Services, open_store
from mot.service.importing import ImportJob, ImportOptions, InputFailed

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"
OUTCOMES: Counter[str] = Counter()

# Generation is plain `random` seeded by hypothesis (one draw per input): drawing every
# choice through hypothesis cost some 90 ms an input, ten times the import it feeds, and
# 100,000 inputs must run in minutes. A failing input is reported with its seed.
HOSTILE_TEXT = [
    "'; DROP TABLE stored_events; --", "\" OR 1=1 --", "$(rm -rf ~)", "`reboot`", "; ls -la |",
    "a\x00b", "\u202eevil", "🙂", "\ufeffbom", "", " ", "%s%n%x", "../../etc/passwd",
    "<script>alert(1)</script>", "\\", '"', "\r\n", "\r", "\t", "NaN", "Infinity", "1e999",
    "x" * 3000, "é" * 300, "\u0000", "null", "{}", "[]", "acme", "email", "inbound", "question",
    "\udcff".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
]
HOSTILE_NUMBER: list[Any] = [
    10**30, -(10**30), 2**63, 2**64, -(2**63) - 1, 1e308, -0.0, 0.1, 5e-324, 1e32, 0, -1, 1.5, 7,
]
HOSTILE_TIME = [
    "2026-03-01T10:00:00", "2026-03-01", "2026-03-01T10:00:00.123456789Z", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00", "2026-02-30T00:00:00Z", "tomorrow", "1700000000000",
    "2026-03-01T10:00:00+25:00", "2026-03-01 10:00:00Z", "2026-03-01T10:00:00z",
]
LINE_ENDS = [b"\n", b"\r\n", b"\r"]
WIRE_FIELDS = ["moment_id", "tenant", "customer_id", "occurred_at", "channel", "direction", "kind",
               "function", "actor", "ask_type", "sentiment", "reach", "value", "currency",
               "in_reply_to", "shares", "url", "source", "attributes", "type", "set", "reason",
               "amendment_id", "custmer_id", "source.id"]


def dump(value: Any) -> bytes:
    """JSON as a sender may write it (the standard library's: integers of any size)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def moment(n: int) -> dict[str, Any]:
    return {"tenant": "acme", "customer_id": f"c{n}", "occurred_at": "2026-03-01T10:00:00Z",
            "channel": "email", "direction": "inbound", "kind": "question",
            "source": {"system": "fuzz", "id": str(n)}}


def text(r: Random) -> str:
    if r.random() < 0.7:
        return r.choice(HOSTILE_TEXT)
    points = [r.choice([r.randrange(32, 127), r.randrange(0, 0x2FFF), r.randrange(0xE000, 0x10FFFF)])
              for _ in range(r.randrange(0, 20))]
    return "".join(map(chr, points))


def leaf(r: Random) -> Any:
    return r.choice([None, True, False, r.choice(HOSTILE_NUMBER), r.uniform(-2, 2),
                     r.randrange(-(2**70), 2**70), text(r), r.choice(HOSTILE_TIME)])


def value(r: Random, depth: int = 0) -> Any:
    """Any JSON value (a few levels deep at most)."""
    roll = r.random()
    if depth > 2 or roll < 0.6:
        return leaf(r)
    if roll < 0.8:
        return [value(r, depth + 1) for _ in range(r.randrange(0, 4))]
    return {text(r): value(r, depth + 1) for _ in range(r.randrange(0, 4))}


def corrupted(r: Random, line: bytes) -> bytes:
    """The line's bytes as a careless or hostile sender may send them."""
    how = r.choice(["as is"] * 4 + ["duplicate key", "nan", "infinity", "deep", "huge number",
                                    "invalid utf-8", "bom", "cut", "nul", "inner line end"])
    if how == "duplicate key" and line.startswith(b"{") and len(line) > 2:
        return b'{"channel": "phone", ' + line[1:]
    if how in ("nan", "infinity") and line.startswith(b"{"):
        return b'{"sentiment": ' + (b"NaN" if how == "nan" else b"-Infinity") + b", " + line[1:]
    if how == "deep" and line.startswith(b"{"):
        depth = r.randrange(100, 3000)
        return b'{"attributes": {"a": ' + b"[" * depth + b"]" * depth + b"}, " + line[1:]
    if how == "huge number" and line.startswith(b"{"):
        return b'{"reach": 1' + b"0" * r.randrange(20, 400) + b", " + line[1:]
    at = r.randrange(0, len(line) + 1)
    if how == "invalid utf-8":
        return line[:at] + r.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + line[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + line
    if how == "cut":
        return line[:at]
    if how == "nul":
        return line[:at] + b"\x00" + line[at:]
    if how == "inner line end":
        return line[:at] + r.choice(LINE_ENDS) + line[at:]
    return line


def mutated(r: Random, record: Any, fields: list[str]) -> Any:
    """A JSON record with a few fields set to hostile values or taken out."""
    if not isinstance(record, dict):
        return record
    record = dict(record)
    for _ in range(r.randrange(0, 4)):
        key = r.choice(fields + list(record))
        if r.random() < 0.5 and key in record:
            del record[key]
        else:
            record[key] = value(r)
    return record


def joined(r: Random, lines: list[bytes]) -> bytes:
    """Lines joined by mixed line ends, with blank lines here and there, maybe a BOM first."""
    parts = [b"\xef\xbb\xbf"] if r.random() < 0.2 else []
    for line in lines:
        parts.append(line + r.choice(LINE_ENDS))
        if r.random() < 0.1:
            parts.append(r.choice([b"\n", b"\r\n", b"  \n", b"\r", b"\t\r\n"]))
    if parts and r.random() < 0.2:
        parts[-1] = parts[-1].rstrip(b"\r\n")  # no line end after the last line
    return b"".join(parts)


def packed(r: Random, data: bytes) -> tuple[bytes, bool]:
    """(the file's bytes, whether it may end part-way): plain, gzip, or a truncated gzip."""
    how = r.choice(["plain", "plain", "plain", "gzip", "truncated gzip"])
    if how == "plain":
        return data, False
    compressed = gzip.compress(data, compresslevel=1)
    if how == "gzip":
        return compressed, False
    return compressed[:r.randrange(10, max(11, len(compressed)))], True


# -- inputs ----------------------------------------------------------------------------------------

Input = Callable[[Random], tuple[bytes, bool]]


def wire_file(r: Random) -> tuple[bytes, bool]:
    lines = []
    for _ in range(r.randrange(1, 13)):
        kind = r.choice(["moment", "moment", "moment", "value", "amend", "retract"])
        record: Any = mutated(r, moment(r.randrange(0, 50)), WIRE_FIELDS)
        if kind == "value":
            record = value(r)
        elif kind in ("amend", "retract"):
            record = {"type": kind, "moment_id": str(UUID(int=r.getrandbits(128))), "reason": text(r),
                      **({"set": mutated(r, {}, WIRE_FIELDS)} if kind == "amend" else {})}
        lines.append(corrupted(r, dump(record)))
    return packed(r, joined(r, lines))


def wire_csv(r: Random) -> tuple[bytes, bool]:
    columns = ["tenant", "customer_id", "occurred_at", "channel", "direction", "kind",
               "source.system", "source.id", "sentiment", "reach", "attributes.note"]
    rows = [",".join(columns).encode()]
    for _ in range(r.randrange(1, 13)):
        cells = ["acme", f"c{r.randrange(0, 50)}", "2026-03-01T10:00:00Z", "email", "inbound",
                 "question", "fuzz", str(r.randrange(0, 50)), "0.5", "10", "note"]
        for _ in range(r.randrange(0, 4)):
            cells[r.randrange(0, len(cells))] = str(leaf(r))
        if r.random() < 0.15:
            cells = cells[:r.randrange(0, len(cells) + 1)]
        rows.append(corrupted(r, csv_line(cells)))
    return packed(r, joined(r, rows))


def csv_line(cells: list[str]) -> bytes:
    return ",".join('"' + c.replace('"', '""') + '"' if any(x in c for x in ',"\r\n') else c
                    for c in cells).encode("utf-8", "surrogatepass")


def fixture_records(name: str) -> list[Any]:
    """The values of a vendor fixture's lines (JSONL), to be mutated."""
    return [orjson.loads(line) for line in (FIXTURES / name).read_bytes().splitlines() if line.strip()]


def _leaves(item: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(item, dict):
        for key, inner in item.items():
            yield from _leaves(inner, (*path, key))
    elif isinstance(item, list):
        for index, inner in enumerate(item):
            yield from _leaves(inner, (*path, index))
    else:
        yield path


def _set(item: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(item) if isinstance(item, dict) else list(item)
    copy[path[0]] = _set(copy[path[0]], path[1:], new)  # type: ignore[index]
    return copy


def vendor_value(r: Random, records: list[Any]) -> Any:
    """A fixture record with some of its leaves (at any depth) set to hostile values."""
    item = r.choice(records)
    for _ in range(r.randrange(0, 5)):
        leaves = list(_leaves(item))
        if leaves:
            item = _set(item, r.choice(leaves), value(r))
    return mutated(r, item, ["id", "type", "created_at", "properties", "data", "results"])


def vendor_jsonl(records: list[Any]) -> Input:
    def make(r: Random) -> tuple[bytes, bool]:
        lines = [corrupted(r, dump(vendor_value(r, records))) for _ in range(r.randrange(1, 7))]
        return packed(r, joined(r, lines))
    return make


def vendor_csv(name: str) -> Input:
    lines = (FIXTURES / name).read_bytes().splitlines()
    body = [next(csv.reader([line.decode()])) for line in lines[1:]]

    def make(r: Random) -> tuple[bytes, bool]:
        rows = [lines[0]]
        for _ in range(r.randrange(1, 9)):
            cells = list(r.choice(body))
            for _ in range(r.randrange(0, 5)):
                cells[r.randrange(0, len(cells))] = str(leaf(r))
            rows.append(corrupted(r, csv_line(cells)))
        return packed(r, joined(r, rows))
    return make


# -- the checks ------------------------------------------------------------------------------------


class Env:
    """One SQLite ledger and a folder for the generated files, for a whole module."""

    def __init__(self, folder: Path, services: Services) -> None:
        self.folder = folder
        self.services = services
        self.config = VendorConfig.load(str(FIXTURES / "mot.toml"))
        self.names = itertools.count()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    with tempfile.TemporaryDirectory() as folder, open_store(str(Path(folder) / "fuzz.db")) as services:
        yield Env(Path(folder), services)
    if OUTCOMES:
        import sys

        print(f"\nfuzz inputs: {sum(OUTCOMES[k] for k in ('imported', 'refused', 'cut')):,}; "
              + ", ".join(f"{k} {v:,}" for k, v in sorted(OUTCOMES.items())), file=sys.stderr)


def check(env: Env, data: bytes, may_end_early: bool, fmt: str, vendor: str | None) -> None:
    path = env.folder / f"in-{next(env.names) % 50}.{fmt}"
    path.write_bytes(data)
    source = SOURCES[vendor] if vendor is not None else None
    stats = VendorStats(vendor) if vendor is not None else None
    given = FileInput(str(path), fmt, source, env.config, stats)
    problem = given.check()
    if problem is not None:  # refused whole, before anything is recorded: one clear message
        assert problem.startswith(str(path)) and "Traceback" not in problem, problem
        OUTCOMES["refused"] += 1
        return
    try:
        report = ImportJob(env.services.ledger, ImportOptions(workers=0)).run([given])
        OUTCOMES["imported"] += 1
    except InputFailed as stop:
        assert may_end_early, stop
        assert str(stop).startswith(f"{path}: ") and ", after line " in str(stop)
        report = stop.report  # what was committed: everything read before the damage
        OUTCOMES["cut"] += 1
    s = report.summary
    assert s.read == (s.recorded + s.amended + s.retracted + s.linked + s.unlinked + s.duplicates
                      + s.quarantined)
    if vendor is None and fmt == "jsonl":
        assert report.lines - report.blank == s.read
    if stats is not None:
        assert s.read == stats.messages + stats.unmappable
        assert stats.records >= stats.unmappable + sum(stats.not_moments.values())
        OUTCOMES["vendor records"] += stats.records
    opened = given._opened
    assert opened is not None
    if not may_end_early and opened.encoding == "UTF-8":
        body = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        assert report.lines == len(body.removeprefix(b"\xef\xbb\xbf").splitlines())
    for outcome in ("recorded", "amended", "retracted", "linked", "duplicates", "quarantined"):
        OUTCOMES[outcome] += getattr(s, outcome)


QUICK = 250  # examples of each check in `make test`
SETTINGS: dict[str, Any] = {"deadline": None, "suppress_health_check": list(HealthCheck),
                            "derandomize": False}


def fuzz_tests(make_input: Input, fmt: str, vendor: str | None,
               long: int) -> tuple[Callable[..., None], Callable[..., None]]:
    """The same check twice: a few hundred inputs in `make test`, `long` in `make fuzz`."""
    def make(examples: int) -> Callable[..., None]:
        @settings(max_examples=examples, **SETTINGS)
        @given(r=st.randoms(use_true_random=True))
        def test(env: Env, r: Random) -> None:
            data, may_end_early = make_input(r)
            check(env, data, may_end_early, fmt, vendor)
        return test
    return make(QUICK), pytest.mark.fuzz(make(long))


test_wire_jsonl, test_wire_jsonl_long = fuzz_tests(wire_file, "jsonl", None, 30_000)
test_wire_csv, test_wire_csv_long = fuzz_tests(wire_csv, "csv", None, 20_000)
test_hubspot, test_hubspot_long = fuzz_tests(
    vendor_jsonl(fixture_records("hubspot_engagements.jsonl")), "jsonl", "hubspot", 8_000)
test_salesforce, test_salesforce_long = fuzz_tests(
    vendor_jsonl(fixture_records("salesforce_activities.jsonl")), "jsonl", "salesforce", 8_000)
test_zendesk, test_zendesk_long = fuzz_tests(
    vendor_jsonl(fixture_records("zendesk_ticket_audits.jsonl")), "jsonl", "zendesk", 8_000)
test_x, test_x_long = fuzz_tests(
    vendor_jsonl(fixture_records("x_search_responses.jsonl")), "jsonl", "x", 8_000)
test_mentions_csv, test_mentions_csv_long = fuzz_tests(
    vendor_csv("mentions_listening_export.csv"), "csv", "mentions", 8_000)
test_salesforce_csv, test_salesforce_csv_long = fuzz_tests(
    vendor_csv("salesforce_tasks.csv"), "csv", "salesforce", 8_000)
test_mentions_jsonl, test_mentions_jsonl_long = fuzz_tests(
    vendor_jsonl([dict(row) for row in csv.DictReader(
        (FIXTURES / "mentions_listening_export.csv").read_text().splitlines())]),
    "jsonl", "mentions", 8_000)
