"""`mot import` as a user meets it (issue 13 cases 6-9, issue 14's import items).

Every input checked before anything is recorded; damaged gzip recorded up to the damage
and reported with the line reached; huge lines and long runs of blank lines in bounded
memory; text that is not UTF-8 quarantined a line at a time; the CSV header checked once;
content that is not what the options say refused with the option that reads it;
`--max-rejects` and `--all-or-nothing`; Ctrl-C (a real SIGINT) exits 130 and says what was
committed, and running the command again completes the import.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_support import default_sigint
from click.testing import CliRunner, Result
from input_support import DAMAGES, damaged
from process_support import described, run

from mot.cli.main import cli

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"
COUNTS = ("read", "recorded", "amended", "retracted", "duplicates", "quarantined")
HEADER = "tenant,customer_id,occurred_at,channel,direction,kind,source.system,source.id"


def moment(n: int, **fields: Any) -> dict[str, Any]:
    return {"tenant": "acme", "customer_id": f"c{n}", "occurred_at": "2026-03-01T10:00:00Z",
            "channel": "email", "direction": "inbound", "kind": "question",
            "source": {"system": "crm", "id": str(n)}, **fields}


def jsonl(*numbers: int) -> bytes:
    return b"".join(orjson.dumps(moment(n)) + b"\n" for n in numbers)


def csv_row(n: int) -> str:
    return f"acme,c{n},2026-03-01T10:00:00Z,email,inbound,question,crm,{n}"


def mot(store: str, *args: str | Path, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["--store", store, *map(str, args)], input=input)


def counts(result: Result) -> dict[str, int]:
    data = json.loads(result.stdout)
    return {k: data[k] for k in COUNTS}


def recorded(store: str) -> dict[str, int]:
    """What the store holds: its moments (importing them all again says so) and quarantine."""
    listed = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    return {"quarantined": len(listed)}


def count_of(**given: int) -> dict[str, int]:
    return {k: given.get(k, 0) for k in COUNTS}


# -- every input checked first --------------------------------------------------------------------


def test_every_path_is_checked_before_anything_is_recorded(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(jsonl(1, 2))
    csv_as_txt = tmp_path / "crm.txt"
    csv_as_txt.write_text(f"{HEADER}\n{csv_row(3)}\n")
    store = tmp_path / "mot.db"
    result = mot(str(store), "import", good, tmp_path / "missing.jsonl", csv_as_txt)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: 2 of the 3 inputs cannot be imported; nothing was recorded:",
        f"  cannot read {tmp_path}/missing.jsonl: No such file or directory",
        f"  {csv_as_txt}: this looks like CSV, not JSON lines (its first line is "
        "'tenant,customer_id,occurred_at,channel,direction,kind,sou...'): import it with "
        "--format csv",
    ]
    assert not store.exists()  # the store was not even opened
    assert counts(mot(str(store), "import", "--summary-json", good)) == count_of(read=2, recorded=2)


def test_csv_on_stdin_or_from_a_source_system_is_refused_with_the_option(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    data = f"{HEADER}\n{csv_row(1)}\n".encode()
    result = mot(store, "import", "-", input=data)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: <stdin>: this looks like CSV, not JSON lines")
    assert result.stderr.strip().endswith("import it with --format csv")
    mentions = (FIXTURES / "mentions_listening_export.csv").read_bytes()
    result = mot(store, "import", "--from", "mentions", "-", input=mentions)
    assert result.exit_code == 1
    assert "import it with --format csv" in result.stderr
    assert "--from mentions" not in result.stderr.split("import it with")[1]
    result = mot(store, "import", "--format", "csv", "-", input=mentions)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: <stdin>: the header has no column of mot's wire format (Query Id, Query Name, "
        "Date, ...); these look like mentions records: import them with --from mentions\n")
    assert counts(mot(store, "import", "--summary-json", "--format", "csv", "-", input=data)) == \
        count_of(read=1, recorded=1)


def test_another_systems_records_are_refused_with_the_right_from(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    zendesk = FIXTURES / "zendesk_ticket_audits.jsonl"
    result = mot(store, "import", zendesk)
    assert result.exit_code == 1
    assert "import them with --from zendesk" in result.stderr
    result = mot(store, "import", "--from", "hubspot", zendesk)
    assert result.exit_code == 1
    assert "import them with --from zendesk" in result.stderr
    wire = tmp_path / "wire.jsonl"
    wire.write_bytes(jsonl(1, 2))
    result = mot(store, "import", "--from", "zendesk", wire)
    assert result.exit_code == 1
    assert "these are mot's own wire format" in result.stderr
    assert "import them without --from" in result.stderr
    assert not Path(store).exists()


def test_a_csv_separated_by_semicolons_or_tabs_is_named_so(tmp_path: Path) -> None:
    """A spreadsheet's "CSV" with ';' (or a tab) between columns: the error says so, where it
    said "unknown column 'tenant;customer_id;...' (did you mean 'customer_id'?)"."""
    paths = []
    for name, separator in (("semi.csv", ";"), ("tabs.csv", "\t")):
        path = tmp_path / name
        path.write_text(HEADER.replace(",", separator) + "\n" + csv_row(1).replace(",", separator)
                        + "\n")
        paths.append(path)
    store = tmp_path / "mot.db"
    result = mot(str(store), "import", *paths)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1:] == [
        f"  {path}: the header: its columns are separated by {separator!r}, not by commas: mot "
        "reads comma-separated CSV (save it with commas as the separator). Nothing of it was "
        "recorded" for path, separator in zip(paths, (";", "\t"), strict=True)]
    assert not store.exists()
    # One column alone, or a comma-separated header with a semicolon in a name, is as before.
    single = tmp_path / "one.csv"
    single.write_text("tenant;nothing;else\nacme;x;y\n")
    error = mot(str(store), "import", single).stderr
    assert "unknown column 'tenant;nothing;else'" in error


def test_a_csv_header_is_checked_once_and_refused_with_one_error(tmp_path: Path) -> None:
    rows = "\n".join(csv_row(n) for n in range(1, 1001))
    path = tmp_path / "crm.csv"
    path.write_text(f"tenant,custmer_id,occurred_at,channel,direction,kind,source.system,source.id\n{rows}\n")
    clash = tmp_path / "clash.csv"
    clash.write_text("customer_id,source,source.system,source.id,attributes,attributes.a.b\n")
    store = tmp_path / "mot.db"
    result = mot(str(store), "import", path, clash)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: 2 of the 2 inputs cannot be imported; nothing was recorded:",
        f"  {path}: the header: unknown column 'custmer_id' (did you mean 'customer_id'?). "
        "Nothing of it was recorded",
        f"  {clash}: the header: column 'attributes' (a JSON object) and 'attributes.a.b' both "
        "give attributes: keep one or the other; column 'source' (a JSON object) and "
        "'source.system', 'source.id' both give source: keep one or the other. Nothing of it "
        "was recorded",
    ]
    assert not store.exists()


def test_a_cell_under_a_column_the_header_does_not_name_is_quarantined_saying_so(
        tmp_path: Path) -> None:
    """A header ending in a comma is read (a spreadsheet's trailing separator), its column's
    cells must be empty; a row with text there was quarantined as "unknown field (not a field
    of wire format v1)" with the field '', naming neither the cell nor the column. It says
    which cell holds what under the unnamed column; an empty cell there is recorded."""
    path = tmp_path / "crm.csv"
    path.write_text(f"{HEADER},\n{csv_row(1)},\n{csv_row(2)},IMPORTANT\n")
    store = str(tmp_path / "mot.db")
    assert mot(store, "import", "--summary-json", path).exit_code == 0
    listed = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert [(e["origin"], e["field"], e["reason"]) for e in listed] == [
        (f"{path}:3", "", "cell 9 holds 'IMPORTANT' under a column the header does not name "
                          "(the header's column 9 is empty): name the column, or leave its "
                          "cells empty")]
    assert [r["customer_id"] for r in json.loads(mot(
        store, "query", "relationships", "--format", "json").stdout)] == ["c1"]


# -- damaged and hostile input --------------------------------------------------------------------


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_gzip_records_what_came_before_and_says_where(store_url: str, tmp_path: Path,
                                                                damage: str) -> None:
    whole = jsonl(*range(3000))
    path = tmp_path / "m.jsonl.gz"
    path.write_bytes(damaged(gzip.compress(whole), damage))
    result = mot(store_url, "import", "--summary-json", path)
    assert result.exit_code == 1
    got = counts(result)
    lines = got["read"]
    assert got == count_of(read=lines, recorded=lines)
    assert (lines == 3000) if damage != "truncated" else (0 < lines < 3000)
    why = {"truncated": "the compressed data ends early (the gzip file is truncated)",
           "crc": "corrupt gzip data (CRC check failed", "trailing": "corrupt gzip data (Not a gzipped"}
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"Error: {path}: {why[damage]}")
    assert error.endswith(f", after line {lines:,}")
    assert json.loads(result.stdout)["stopped"] == "InputFailed"
    # What was recorded is exactly the lines before the damage: the whole file now adds the rest.
    plain = tmp_path / "m.jsonl"
    plain.write_bytes(whole)
    assert counts(mot(store_url, "import", "--summary-json", plain)) == count_of(
        read=3000, recorded=3000 - lines, duplicates=lines)
    assert recorded(store_url) == {"quarantined": 0}


def test_a_key_holding_nul_is_quarantined_naming_it_on_either_store(store_url: str,
                                                                     tmp_path: Path) -> None:
    """A line whose key (an attribute's, or an unknown field's) holds U+0000 stopped the whole
    import into PostgreSQL ('store error: PostgreSQL text fields cannot contain NUL'): the
    rejection's field was that key, NUL and all, and the quarantine could not store it. It
    is quarantined naming the key as JSON writes it; the lines around it are recorded."""
    path = tmp_path / "nul.jsonl"
    path.write_bytes(orjson.dumps(moment(1)) + b"\n"
                     + orjson.dumps(moment(2, attributes={"k\u0000": 1})) + b"\n"
                     + orjson.dumps({**moment(3), "x\u0000y": 1}) + b"\n"
                     + orjson.dumps(moment(4)) + b"\n")
    result = mot(store_url, "import", "--summary-json", path)
    assert result.exit_code == 0, (result.output, result.exception)
    assert counts(result) == count_of(read=4, recorded=2, quarantined=2)
    listed = json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout)
    assert [(e["origin"], e["field"], e["reason"]) for e in listed] == [
        (f"{path}:2", "attributes.k\\u0000",
         "attributes.k\\u0000: contains a NUL character (U+0000), which text fields cannot hold"),
        (f"{path}:3", "x\\u0000y",
         "x\\u0000y: contains a NUL character (U+0000), which text fields cannot hold")]


def peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """Run `python -m mot ARGS` from a small parent that reports its child's peak RSS."""
    probe = ("import resource, subprocess, sys\n"
             "p = subprocess.run([sys.executable, '-m', 'mot', *sys.argv[1:]], capture_output=True)\n"
             "sys.stderr.buffer.write(p.stderr); sys.stdout.buffer.write(p.stdout)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
             "sys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, timeout=600)
    return proc, int(proc.stderr.decode().strip().splitlines()[-1]) / 1024


def test_a_gzip_of_one_huge_line_is_quarantined_by_its_head_in_bounded_memory(tmp_path: Path) -> None:
    # 512 MiB of one line (about half a megabyte of gzip), then a moment.
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    path = tmp_path / "bomb.jsonl.gz"
    with path.open("wb") as out:
        out.write(packer.compress(b'{"customer_id": "'))
        block = b"x" * (1 << 20)
        for _ in range(512):
            out.write(packer.compress(block))
        out.write(packer.compress(b'"}\n' + jsonl(1)))
        out.write(packer.flush())
    store = str(tmp_path / "mot.db")
    proc, peak = peak_rss_mb("--store", store, "import", "--summary-json", "-q", str(path))
    assert proc.returncode == 0, described(proc.args, proc.returncode, proc.stdout, proc.stderr)
    assert {k: v for k, v in json.loads(proc.stdout).items() if k in COUNTS} == count_of(
        read=2, recorded=1, quarantined=1)
    assert peak < 150, f"peak RSS {peak:.0f} MB"
    (entry,) = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert entry["origin"] == f"{path}:1"
    assert entry["reason"] == ("line of 536,870,931 bytes, over the limit of 8,388,608 "
                               "(--max-line-bytes); the quarantine keeps its first 1,024 bytes")
    assert entry["raw"] == '{"customer_id": "' + "x" * (1024 - 17)


def test_blank_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    path = tmp_path / "blank.jsonl.gz"
    with path.open("wb") as out:
        for _ in range(64):
            out.write(packer.compress(b"\n" * (1 << 20)))
        out.write(packer.compress(jsonl(1)))
        out.write(packer.flush())
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", "--summary-json", path)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["lines"], data["blank"], data["read"], data["recorded"]) == (
        64 * (1 << 20) + 1, 64 * (1 << 20), 1, 1)
    text = mot(store, "import", "-q", path).stdout
    assert text.startswith("read 1: recorded 0, amended 0, retracted 0, duplicates 1, quarantined 0 (")
    assert text.strip().endswith(", 67,108,864 blank lines skipped)")


def test_progress_counts_blank_lines_before_any_message(tmp_path: Path) -> None:
    from mot.adapters.sources.inputs import FileInput
    from mot.bootstrap import open_store
    from mot.service.importing import ImportJob

    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n" * (3 << 20) + jsonl(1))
    seen: list[tuple[int, int]] = []
    source = FileInput(str(path), "jsonl")
    assert source.check() is None
    with open_store(str(tmp_path / "mot.db")) as services:
        report = ImportJob(services.ledger, progress=lambda r, done: seen.append(
            (r.lines, r.summary.read))).run([source])
    assert report.summary.recorded == 1
    assert (report.lines, report.blank) == ((3 << 20) + 1, 3 << 20)
    assert any(lines >= 1 << 20 and read == 0 for lines, read in seen)  # "0 read" no more


def test_text_that_is_not_utf8_is_quarantined_a_line_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_bytes(f"{HEADER}\n{csv_row(1)}\n".encode() + b"acme,Jos\xe9,2026-03-01T10:00:00Z,"
                     b"email,inbound,question,crm,2\n" + f"{csv_row(3)}\n".encode())
    lines = tmp_path / "m.jsonl"
    lines.write_bytes(jsonl(4) + b'{"customer_id": "Jos\xe9"}\n' + jsonl(5))
    store = str(tmp_path / "mot.db")
    assert counts(mot(store, "import", "--summary-json", path, lines)) == count_of(
        read=6, recorded=4, quarantined=2)
    listed = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert [(e["origin"], e["reason"]) for e in listed] == [
        (f"{path}:3", "not valid UTF-8 text: byte 0xe9 at position 9 of the line (invalid "
                      "continuation byte)"),
        (f"{lines}:2", "not valid UTF-8 text: byte 0xe9 at position 21 of the line (invalid "
                       "continuation byte)")]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "cr"])
def test_a_bom_wide_text_and_cr_line_ends_read_in_every_format(tmp_path: Path, encoding: str) -> None:
    lines = [orjson.dumps(moment(n)).decode() for n in (1, 2)]
    rows = [HEADER, csv_row(3), csv_row(4)]
    if encoding == "cr":
        jsonl_bytes, csv_bytes = "\r".join(lines).encode(), "\r".join(rows).encode()
    else:
        jsonl_bytes = "\r\n".join(lines).encode(encoding)
        csv_bytes = "\r\n".join(rows).encode(encoding)
    (tmp_path / "m.jsonl").write_bytes(jsonl_bytes)
    (tmp_path / "m.csv").write_bytes(csv_bytes)
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", "--summary-json", tmp_path / "m.jsonl", tmp_path / "m.csv")
    assert counts(result) == count_of(read=4, recorded=4), result.output


def test_utf16_without_a_bom_and_utf32_are_read(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(codecs.BOM_UTF32_LE + jsonl(1).decode().encode("utf-32-le"))
    other = tmp_path / "n.jsonl"
    other.write_bytes(jsonl(2).decode().encode("utf-16-le"))
    assert counts(mot(str(tmp_path / "mot.db"), "import", "--summary-json", path, other)) == count_of(
        read=2, recorded=2)


# -- rejects ---------------------------------------------------------------------------------------


def mixed(tmp_path: Path, good: int, bad: int) -> Path:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(jsonl(*range(good)) + b"".join(
        orjson.dumps(moment(1000 + n, channel="pigeon")) + b"\n" for n in range(bad)))
    return path


@pytest.mark.parametrize("limit, fails", [("2", True), ("3", False), ("20%", True), ("30%", False),
                                          ("0", True)])
def test_max_rejects_fails_after_recording_what_was_valid(tmp_path: Path, limit: str,
                                                          fails: bool) -> None:
    path = mixed(tmp_path, 7, 3)
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", "--summary-json", "--max-rejects", limit, path)
    assert counts(result) == count_of(read=10, recorded=7, quarantined=3)
    assert result.exit_code == (1 if fails else 0)
    if fails:
        error = result.stderr.splitlines().index(next(
            line for line in result.stderr.splitlines() if line.startswith("Error:")))
        assert result.stderr.splitlines()[error] == (
            f"Error: too many rejects: 3 of 10 messages read (30.0%) were rejected, over "
            f"--max-rejects {limit}; the valid ones are recorded, the rejected ones are in the "
            "quarantine")
        assert result.stderr.splitlines()[error + 1].startswith(f"  {path}:8: channel: ")
    assert recorded(store) == {"quarantined": 3}


def test_all_or_nothing_records_nothing_when_the_limit_is_passed(store_url: str,
                                                                 tmp_path: Path) -> None:
    path = mixed(tmp_path, 7, 3)
    result = mot(store_url, "import", "--all-or-nothing", "--max-rejects", "20%", path)
    assert result.exit_code == 1
    assert "were rejected, over --max-rejects 20%; so nothing was recorded (--all-or-nothing)" \
        in result.stderr
    assert f"  {path}:10: channel: " in result.stderr
    # Not "committed before it stopped: read 0: ..." beside the error's "10 messages read".
    assert result.stdout == "nothing was committed (--all-or-nothing: the import is one transaction)\n"
    assert no_store_at(store_url, tmp_path)  # nothing recorded, not even a store
    # Without a limit, --all-or-nothing means no reject at all; a clean file goes in whole.
    assert mot(store_url, "import", "--all-or-nothing", path).exit_code == 1
    assert counts(mot(store_url, "import", "--summary-json", "--all-or-nothing", "--max-rejects",
                      "3", path)) == count_of(read=10, recorded=7, quarantined=3)
    assert recorded(store_url) == {"quarantined": 3}


def no_store_at(store: str, tmp_path: Path) -> bool:
    """Whether a read finds no store there (and, for a file, nothing at all is left beside it)."""
    status = mot(store, "status")
    leftovers = [p.name for p in tmp_path.rglob("*") if "mot-" in p.name] if "://" not in store else []
    return status.exit_code == 1 and f"no mot store at {store}" in status.stderr and not leftovers


def test_a_refused_first_import_leaves_no_store_behind(store_kind: str, make_store_url: Any,
                                                       tmp_path: Path) -> None:
    """A new store path and an import that records nothing (refused --all-or-nothing, a gzip
    cut before its first line): no empty store (SQLite: no mot.db, no .lock) is left."""
    bad = mixed(tmp_path, 2, 1)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(jsonl(1, 2))[:20])
    made = []
    for args in (("--all-or-nothing", bad), ("--all-or-nothing", "--max-rejects", "0", bad), (cut,)):
        store = make_store_url(store_kind)
        if store_kind == "sqlite":
            store = str(tmp_path / "new" / "mot-new.db")  # its folder is made, and removed, too
        result = mot(store, "import", *args)
        assert result.exit_code == 1, result.output
        assert no_store_at(store, tmp_path), (args, result.stderr)
        assert not (tmp_path / "new").exists()
        made.append(store)
    # A store that was there before, even empty, is kept; what it holds is unchanged.
    store = made[0]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert mot(store, "import", empty).exit_code == 0
    assert mot(store, "import", "--all-or-nothing", bad).exit_code == 1
    assert mot(store, "status").exit_code == 0
    assert mot(store, "import", tmp_path / "cut.jsonl.gz").exit_code == 1
    assert counts(mot(store, "import", "--summary-json", bad)) == count_of(
        read=3, recorded=2, quarantined=1)
    assert mot(store, "import", "--all-or-nothing", bad).exit_code == 1
    assert counts(mot(store, "import", "--summary-json", bad)) == count_of(read=3, duplicates=2,
                                                                          quarantined=1)


def test_all_or_nothing_stops_at_a_count_without_reading_on(tmp_path: Path) -> None:
    path = mixed(tmp_path, 0, 5000)
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", "--all-or-nothing", "--batch-size", "100", "--summary-json", path)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["read"] == 0  # what was committed: nothing
    assert ("Error: too many rejects: 100 of 100 messages read (100.0%) were rejected, over "
            "--max-rejects 0; so nothing was recorded (--all-or-nothing)") in result.stderr


def test_mostly_rejected_without_a_limit_warns_and_q_prints_no_hints(tmp_path: Path) -> None:
    path = mixed(tmp_path, 1, 3)
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", path)
    assert result.exit_code == 0
    assert "see them with: mot quarantine list" in result.stderr
    assert ("warning: 3 of the 4 messages read (75%) were quarantined (mot quarantine summary says "
            "why): is the input what --format and --from say, and not other versions of moments "
            "recorded before (another sample, say)? With --max-rejects (say 0 or 1%) such an "
            "import fails instead.") in result.stderr
    quiet = mot(store, "import", "-q", path)
    assert "see them" not in quiet.stderr
    assert quiet.stderr.startswith("warning: ")  # a warning is no hint
    assert mot(store, "import", "-q", "--max-rejects", "100%", path).stderr == ""


def test_bad_max_rejects_values_are_usage_errors(tmp_path: Path) -> None:
    for value, message in (("ten", "'ten' is neither a count (10) nor a percentage (0.5%)"),
                           ("120%", "'120%': a percentage is at most 100%"),
                           ("1.5", "'1.5': a count of rejects is a whole number")):
        result = mot(str(tmp_path / "mot.db"), "import", "--max-rejects", value, "x.jsonl")
        assert result.exit_code == 2
        assert message in result.stderr


def test_dry_run_applies_the_limit_too(tmp_path: Path) -> None:
    path = mixed(tmp_path, 2, 2)
    result = mot(str(tmp_path / "mot.db"), "import", "--dry-run", "--max-rejects", "1", path)
    assert result.exit_code == 1
    assert "Error: 2 of 4 messages would be rejected, over --max-rejects 1" in result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert not (tmp_path / "mot.db").exists()


def test_vendor_summary_words_are_in_the_singular_for_one(tmp_path: Path) -> None:
    line = (FIXTURES / "zendesk_ticket_audits.jsonl").read_bytes().splitlines()[0]
    audit = orjson.loads(line)
    audit["audits"] = audit["audits"][:1]
    del audit["users"]  # whose address would be one more record, a link
    path = tmp_path / "one.jsonl"
    path.write_bytes(orjson.dumps(audit) + b"\n")
    result = mot(str(tmp_path / "mot.db"), "import", "--from", "zendesk", path)
    assert result.exit_code == 0, result.output
    assert "zendesk: 1 record mapped to 1 message; 0 could not be mapped (quarantined), " \
           "0 are no moments" in result.stderr


# -- Ctrl-C ----------------------------------------------------------------------------------------


def stored_events(store: str) -> int:
    import sqlite3

    try:
        with sqlite3.connect(store) as db:
            return int(db.execute("SELECT count(*) FROM stored_events").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["0", "1"])
def test_ctrl_c_exits_130_says_what_was_committed_and_a_rerun_completes(tmp_path: Path,
                                                                        workers: str) -> None:
    store = str(tmp_path / "mot.db")
    lines = jsonl(*range(2000))
    first = b"".join(lines.splitlines(keepends=True)[:1000])
    proc = subprocess.Popen(
        [sys.executable, "-m", "mot", "--store", store, "import", "-", "--summary-json",
         "--batch-size", "50", "--commit-every", "100", "--workers", workers],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=default_sigint)
    assert proc.stdin is not None
    proc.stdin.write(first)
    proc.stdin.flush()
    # Wait until what was sent is committed (all of it here, but the batches a worker holds),
    # while the import waits for more input.
    deadline = time.monotonic() + 120
    while stored_events(store) < 800 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    committed = stored_events(store)
    assert committed >= 800
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["stopped"] == "Interrupted"
    assert (summary["read"], summary["recorded"]) == (committed, committed)
    assert err.decode().splitlines()[-1] == (
        f"interrupted: {committed:,} messages committed before it (reading <stdin>); running the "
        "same command again is safe and continues: what is in counts as duplicates")
    assert "Traceback" not in err.decode()
    again = run([sys.executable, "-m", "mot", "--store", store, "import", "-", "--summary-json"],
                input=lines, timeout=300)
    done = json.loads(again.stdout)
    assert (done["recorded"], done["duplicates"]) == (2000 - committed, committed)


def test_a_field_given_twice_is_quarantined_naming_it(tmp_path: Path) -> None:
    """A line with one name twice (a decoder would keep the last value and lose the other
    without a word) goes to the quarantine naming the field; the lines around it record."""
    lines = tmp_path / "m.jsonl"
    lines.write_bytes(jsonl(1) + orjson.dumps(moment(2))[:-1] + b',"customer_id":"c9"}\n'
                      + jsonl(3))
    store = str(tmp_path / "mot.db")
    assert counts(mot(store, "import", "--summary-json", lines)) == count_of(
        read=3, recorded=2, quarantined=1)
    [entry] = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert entry["origin"] == f"{lines}:2"
    assert entry["reason"].startswith("customer_id: is given more than once in its object")


def test_a_file_whose_first_lines_nest_too_deep_is_read_as_json_lines_and_quarantined(
        tmp_path: Path) -> None:
    """A JSON-lines file whose first line nests deeper than the parser reads (1,024 levels)
    was refused whole as 'this looks like CSV, not JSON lines ... --format csv' (the line did
    not parse, and its commas made it a CSV row): nothing was quarantined, and the advice was
    wrong. Such a line is quarantined naming the limit."""
    from cli_support import mot

    store = str(tmp_path / "mot.db")
    moment = {"tenant": "acme", "customer_id": "c1", "occurred_at": "2026-03-01T09:00:00Z",
              "channel": "email", "direction": "inbound", "kind": "question",
              "source": {"system": "crm", "id": "deep"}}
    deep = orjson.dumps(moment)[:-1] + b',"attributes":{"a":' + b"[" * 1100 + b"]" * 1100 + b"}}"
    source = tmp_path / "in.jsonl"
    source.write_bytes(deep + b"\n" + deep.replace(b'"deep"', b'"deeper"') + b"\n")
    done = mot(store, "import", source)
    assert "recorded 0," in done.output and "quarantined 2 " in done.output, done.output
    entry = json.loads(mot(store, "quarantine", "list").stdout)[0]
    assert entry["reason"] == ("not valid JSON: nested deeper than 1,024 arrays and objects at"
                               " character 1211 (the most mot reads)"), entry["reason"]


def test_a_new_store_another_process_has_open_is_kept(tmp_path: Path) -> None:
    """The discard of a refused first import never removes a store someone else has open."""
    from mot.bootstrap import open_store

    path = str(tmp_path / "mot.db")
    made = open_store(path)
    other = open_store(path)
    try:
        with other.backend.read() as tx:
            assert tx.scalar("SELECT COUNT(*) FROM stored_events") == 0
        assert made.discard() is False
        assert Path(path).exists()
    finally:
        other.close()
    again = open_store(path)
    assert again.discard() is False  # not made by this opening: kept even with no one else
    assert Path(path).exists()


def test_a_csv_quote_never_closed_quarantines_the_rows_it_swallowed(tmp_path: Path) -> None:
    """A quote opened in a cell and never closed made the rest of the file that cell's text:
    `read 2: recorded 2`, rows 3 and 4 recorded as the actor of row 2, lost as moments and
    not counted. Now the record is quarantined with every line it holds, naming the line
    where the quote opened; text after a closing quote is quarantined too (it was joined)."""
    path = tmp_path / "crm.csv"
    path.write_text(f"{HEADER},actor\r\n{csv_row(1)},a\r\n{csv_row(2)},\"unterminated\r\n"
                    f"{csv_row(3)},b\r\n{csv_row(4)},b\r\n", newline="")
    store = str(tmp_path / "mot.db")
    result = mot(store, "import", "--summary-json", "--format", "csv", path)
    assert result.exit_code == 0, result.output
    assert counts(result) == count_of(read=2, recorded=1, quarantined=1)
    [held] = json.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert held["origin"] == f"{path}:3"
    assert held["reason"] == (
        "not valid CSV: the quoted value opened on line 3 is never closed, so the 3 lines "
        "from there to the end of the input were read as one record; close the quote (a "
        "double quote inside a quoted value is written twice)")
    assert held["raw"] == (f"{csv_row(2)},\"unterminated\r\n{csv_row(3)},b\r\n{csv_row(4)},b")
    joined = tmp_path / "joined.csv"
    joined.write_text(f"{HEADER},actor\n{csv_row(5)},\"a\"b\n{csv_row(6)},\"multi\nline\"\n")
    result = mot(store, "import", "--summary-json", "--format", "csv", joined)
    assert counts(result) == count_of(read=2, recorded=1, quarantined=1)
    reasons = [q["reason"] for q in json.loads(
        mot(store, "quarantine", "list", "--format", "json").stdout)]
    assert reasons[1] == ("not valid CSV: text follows the quote that closes a quoted value (a "
                          "double quote inside a quoted value is written twice: \"say \"\"hi\"\"\")")
