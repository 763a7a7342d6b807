"""The command line end to end (SPEC §5), on SQLite and on real PostgreSQL.

The golden fixture goes in through `mot import`, out through `mot project` and
`mot query NAME --format json`, and every field of golden.expected.json must
come back equal; then the same after `mot replay`. Around that: the other
output formats, `show`, the quarantine commands, CSV / gzip / stdin input,
and errors that are one line, not a traceback.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_support import mot
from click.testing import CliRunner, Result
from conftest import RECORD_KEYS
from process_support import run

from mot.cli.main import cli

NAMES = ("relationships", "reciprocity", "transitions", "amplifications", "teams", "listening")
COUNTS = ("read", "recorded", "amended", "retracted", "duplicates", "quarantined")
GOLDEN_COUNTS = {"read": 36, "recorded": 33, "amended": 1, "retracted": 1, "duplicates": 1,
                 "quarantined": 0}

MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"


def summary(store: str, *files: str | Path, input: bytes | None = None) -> dict[str, Any]:
    result = mot(store, "import", "--summary-json", "--quiet", *files, input=input)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return {k: data[k] for k in COUNTS}


def query(store: str, name: str, *extra: str) -> list[dict[str, Any]]:
    records = json.loads(mot(store, "query", name, "--format", "json", *extra).stdout)
    assert isinstance(records, list)
    return records


def key(name: str, record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[k] for k in RECORD_KEYS[name])


def assert_golden(store: str, expected: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Every golden record is in the output with every golden field equal; returns the output."""
    outputs: dict[str, Any] = {}
    for name in NAMES:
        records = query(store, name)
        outputs[name] = records
        by_key = {key(name, r): r for r in records}
        assert len(by_key) == len(records), f"{name}: duplicate keys in the output"
        wanted = expected[name]
        assert sorted(by_key) == sorted(key(name, r) for r in wanted), name
        for record in wanted:
            got = by_key[key(name, record)]
            projected = {field: got.get(field, "<missing>") for field in record}
            assert projected == record, f"{name} {key(name, record)}"
    return outputs


def without_versions(outputs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Outputs compared across runs: row versions record when a row was written, not what."""
    return {
        name: sorted(
            ({k: v for k, v in r.items() if k != "version"} for r in records),
            key=lambda r: json.dumps(r, sort_keys=True),
        )
        for name, records in outputs.items()
    }


# -- the golden fixture -----------------------------------------------------------------------


def test_golden_import_project_query_replay(
    store_url: str, golden_path: Path, golden_expected: dict[str, Any]
) -> None:
    assert summary(store_url, golden_path) == GOLDEN_COUNTS
    projected = mot(store_url, "project", "--quiet")
    assert "applied 35 events" in projected.stdout
    first = assert_golden(store_url, golden_expected)
    for name in NAMES:
        assert all(r["tenant"] in ("acme", "globex") for r in first[name])
    for record in first["relationships"]:
        assert record["lapsed"] in (True, False)
    # A second import changes nothing.
    assert summary(store_url, golden_path) == {
        "read": 36, "recorded": 0, "amended": 0, "retracted": 0, "duplicates": 36,
        "quarantined": 0,
    }
    assert "applied 0 events" in mot(store_url, "project").stdout
    again = assert_golden(store_url, golden_expected)
    assert again == first

    replayed = mot(store_url, "replay", "--quiet")
    assert "35" in replayed.stdout
    after = assert_golden(store_url, golden_expected)
    assert without_versions(after) == without_versions(first)
    status = json.loads(mot(store_url, "status", "--format", "json").stdout)
    assert status["ledger_head"] == status["projection_position"] == 35
    assert (status["lag"], status["quarantined"], status["rebuild"]) == (0, 0, None)


def test_query_refreshes_the_projections_itself(
    store_url: str, golden_path: Path, golden_expected: dict[str, Any]
) -> None:
    mot(store_url, "import", "-q", golden_path)
    assert_golden(store_url, golden_expected)  # no `mot project` in between


def test_golden_in_many_small_imports_gives_the_same_projections(
    store_url: str, golden_path: Path, golden_expected: dict[str, Any], tmp_path: Path
) -> None:
    # Projected after every few lines: incremental processing equals the rebuild.
    lines = golden_path.read_bytes().splitlines(keepends=True)
    for start in range(0, len(lines), 5):
        part = tmp_path / f"part-{start}.jsonl"
        part.write_bytes(b"".join(lines[start:start + 5]))
        mot(store_url, "import", "-q", "--batch-size", "2", part)
        mot(store_url, "project", "-q")
    assert_golden(store_url, golden_expected)


# -- output formats -----------------------------------------------------------------------------


def test_query_formats(store_url: str, golden_path: Path,
                       golden_expected: dict[str, Any]) -> None:
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", "-q")
    for name in NAMES:
        as_json = query(store_url, name)
        wanted = golden_expected[name]

        jsonl = mot(store_url, "query", name, "--format", "jsonl").stdout
        lines = jsonl.splitlines()
        assert len(lines) == len(wanted)
        assert [json.loads(line) for line in lines] == as_json

        text = mot(store_url, "query", name, "--format", "csv").stdout
        rows = list(csv.DictReader(io.StringIO(text)))
        header = text.splitlines()[0].split(",")
        assert set(wanted[0]) <= set(header), name
        assert len(rows) == len(wanted)
        for row, record in zip(rows, as_json, strict=True):
            for field in wanted[0]:
                value = record[field]
                cell = row[field]
                if value is None:
                    assert cell == ""
                elif isinstance(value, float):
                    assert float(cell) == value
                else:
                    assert cell == str(value), (name, field)

        table = mot(store_url, "query", name, "--format", "table").stdout.splitlines()
        assert set(wanted[0]) <= set(table[0].split()), name
        assert set(table[1]) <= {"-", " "}
        assert len(table) == 3 + len(wanted)  # header, rule, rows, row count
        assert table[-1] == f"({len(wanted)} row{'s' if len(wanted) != 1 else ''})"
    # Table cells for a known row.
    table = mot(store_url, "query", "reciprocity", "--format", "table", "--tenant", "acme",
                "--customer", "c3").stdout.splitlines()
    assert len(table) == 4
    assert table[2].split() == ["acme", "c3", "0", "2", "0", "-2", "2", "stop_asking",
                                *table[2].split()[8:]]


def test_query_filters_and_an_empty_result(store_url: str, golden_path: Path) -> None:
    mot(store_url, "import", "-q", golden_path)
    stages = query(store_url, "relationships", "--stage", "advocate")
    assert sorted(r["customer_id"] for r in stages) == ["c2", "c5"]
    assert [r["tenant"] for r in query(store_url, "listening", "--tenant", "globex")] == ["globex"]
    empty = ("relationships", "--tenant", "globex", "--since", "2099-01-01")
    assert query(store_url, *empty) == []
    assert mot(store_url, "query", *empty, "--format", "jsonl").stdout == ""
    assert "(no rows)" in mot(store_url, "query", *empty, "--format", "table").stdout
    # A tenant the store does not have is no empty answer: a misspelt one would pass for it.
    unknown = mot(store_url, "query", "teams", "--tenant", "nobody", ok=False)
    assert unknown.exit_code == 1 and unknown.stdout == ""
    assert "no tenant 'nobody' in this store (tenants: acme, globex)" in unknown.stderr
    bad = mot(store_url, "query", "teams", "--stage", "loyal", ok=False)
    assert bad.exit_code != 0
    assert "Traceback" not in bad.output


def test_a_recorded_tenant_not_yet_projected_is_no_misspelling(
        store_url: str, golden_path: Path, tmp_path: Path) -> None:
    mot(store_url, "import", "-q", golden_path)  # recorded, not projected
    # --no-refresh reads the projections as they are: acme has nothing there yet, and is known.
    assert query(store_url, "relationships", "--tenant", "acme", "--no-refresh") == []
    out = tmp_path / "x"
    export = mot(store_url, "export", "--format", "csv", "--out", out, "--tenant", "acme",
                 "--no-refresh")
    assert "relationships.csv  0 rows" in export.stdout
    unknown = mot(store_url, "query", "teams", "--tenant", "acm", "--no-refresh", ok=False)
    assert unknown.exit_code == 1
    assert "no tenant 'acm' in this store (tenants: acme, globex)" in unknown.stderr
    story = mot(store_url, "report", "--tenant", "acme", "--no-refresh", "--out", "-", ok=False)
    assert story.exit_code == 1
    assert "tenant 'acme' has no current moment in the projections (`mot project`" in story.stderr


# -- show ---------------------------------------------------------------------------------------


def test_show_by_id_and_by_source_reference(store_url: str, golden_path: Path) -> None:
    mot(store_url, "import", "-q", golden_path)
    acme = "e88d4563-5732-5223-bd77-0d144b0dde26"  # zendesk z-100 of acme
    by_id = mot(store_url, "show", acme).stdout
    assert f"moment {acme}" in by_id
    assert "v1 recorded" in by_id and "golden.jsonl:1" in by_id
    assert '"@acme_help"' in by_id
    assert mot(store_url, "show", "zendesk:z-100", "--tenant", "acme").stdout == by_id
    assert mot(store_url, "show", acme.upper()).stdout == by_id

    globex = json.loads(mot(store_url, "show", "zendesk:z-100", "--tenant", "globex",
                            "--format", "json").stdout)
    assert [r["event"] for r in globex] == ["recorded"]
    assert globex[0]["moment"]["tenant"] == "globex"
    assert globex[0]["moment"]["kind"] == "question"

    amended = json.loads(mot(store_url, "show", "15b9f36e-87db-5ff9-913a-7a92dd824303",
                             "--format", "json").stdout)
    assert [(r["version"], r["event"]) for r in amended] == [(1, "recorded"), (2, "amended")]
    assert amended[1]["set"] == {"sentiment": 0.6}
    assert amended[1]["moment"]["sentiment"] == 0.6
    assert amended[0]["moment"]["sentiment"] == 0.2

    retracted = mot(store_url, "show", "0b8f3c1e-6a2d-4f7b-8e9c-1d2a3b4c5d6e").stdout
    assert "v2 retracted" in retracted
    assert "recorded against the wrong customer" in retracted
    assert "current: retracted" in retracted

    for missing in (["zendesk:z-100"], [MID], ["not-a-reference"]):
        result = mot(store_url, "show", *missing, ok=False)
        assert result.exit_code != 0
        assert "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1


# -- the quarantine -------------------------------------------------------------------------------


def bad_file(tmp_path: Path) -> Path:
    moment = {"moment_id": MID, "tenant": "acme", "customer_id": "c1",
              "occurred_at": "2026-03-01T09:00:00Z", "channel": "email",
              "direction": "outbound", "kind": "answer"}
    lines = [
        b"{not json",
        orjson.dumps({"type": "amend", "moment_id": MID, "set": {"sentiment": 0.5},
                      "reason": "rescored"}),
        orjson.dumps({**{k: v for k, v in moment.items() if k != "moment_id"},
                      "source": {"system": "crm", "id": "1"}, "sentiment": 1.7}),
        orjson.dumps(moment),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_quarantine_list_show_replay_fix_drop(store_url: str, tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    result = mot(store_url, "import", path)
    # The amendment on line 2 waited for its moment (line 4) and went in with it (SPEC §2).
    assert "recorded 1, amended 1" in result.stdout and "quarantined 2" in result.stdout
    assert "mot quarantine list" in result.stderr

    listed = json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout)
    assert [(e["origin"], e["field"], e["repeats"]) for e in listed] == [
        (f"{path}:1", "", 1), (f"{path}:3", "sentiment", 1),
    ]
    assert listed[0]["raw"] == "{not json"
    broken, invalid = (e["id"] for e in listed)
    assert json.loads(mot(store_url, "quarantine", "list").stdout) == listed  # json when piped
    table = mot(store_url, "quarantine", "list", "--format", "table").stdout
    assert table.splitlines()[0].split() == ["id", "origin", "field", "reason", "repeats"]
    assert len(mot(store_url, "quarantine", "list", "--limit", "1", "--format",
                   "jsonl").stdout.splitlines()) == 1

    shown = mot(store_url, "quarantine", "show", str(broken)).stdout
    assert "{not json" in shown and f"{path}:1" in shown and "JSON" in shown

    replayed = mot(store_url, "quarantine", "replay").stdout
    assert "still rejected 2" in replayed and "2 messages in the quarantine" in replayed
    history = json.loads(mot(store_url, "show", MID, "--format", "json").stdout)
    assert [r["event"] for r in history] == ["recorded", "amended"]

    # The same file again: the bad lines count as repeats, the rest as duplicates.
    assert summary(store_url, path) == {"read": 4, "recorded": 0, "amended": 0, "retracted": 0,
                                        "duplicates": 2, "quarantined": 2}
    listed = json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout)
    assert [(e["id"], e["repeats"]) for e in listed] == [(broken, 2), (invalid, 2)]

    # A fix that is still wrong is refused and leaves the entry in place.
    still = mot(store_url, "quarantine", "fix", str(invalid), "-", input=b'{"tenant": 1}',
                ok=False)
    assert still.exit_code != 0 and "is not valid" in still.stderr
    corrected = json.dumps({"tenant": "acme", "customer_id": "c1",
                            "occurred_at": "2026-03-01T10:00:00Z", "channel": "email",
                            "direction": "outbound", "kind": "answer", "sentiment": 0.7,
                            "source": {"system": "crm", "id": "1"}})
    fixed = mot(store_url, "quarantine", "fix", str(invalid), "-", input=corrected)
    assert "recorded 1" in fixed.stdout
    assert "v1 recorded" in mot(store_url, "show", "crm:1", "--tenant", "acme").stdout

    assert "dropped 1 message;" in mot(store_url, "quarantine", "drop", str(broken)).stdout
    assert json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout) == []
    assert "0 messages in the quarantine" in mot(store_url, "quarantine", "replay").stdout

    for args in (["show", str(broken)], ["fix", str(broken), "-"]):
        gone = mot(store_url, "quarantine", *args, input=b"{}", ok=False)
        assert gone.exit_code != 0 and "no quarantined message" in gone.stderr


def test_replay_of_chosen_quarantine_ids(store_url: str, tmp_path: Path) -> None:
    path = bad_file(tmp_path)
    mot(store_url, "import", "-q", path)
    listed = json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout)
    broken, invalid = (e["id"] for e in listed)
    out = mot(store_url, "quarantine", "replay", str(broken)).stdout
    assert "replayed 1 message" in out and "still rejected 1" in out
    assert "2 messages in the quarantine" in out
    out = mot(store_url, "quarantine", "replay", str(invalid)).stdout
    assert "replayed 1 message" in out and "still rejected 1" in out


# -- input formats ------------------------------------------------------------------------------


def golden_as_csv(golden_path: Path) -> tuple[str, bytes]:
    """The golden moments as CSV (wire field names, dotted source columns); the rest as JSONL."""
    moments: list[dict[str, Any]] = []
    corrections: list[bytes] = []
    for line in golden_path.read_bytes().splitlines():
        data = json.loads(line)
        if "type" in data:
            corrections.append(line)
        else:
            moments.append(data)
    columns: list[str] = []
    for m in moments:
        for name in m:
            names = [f"{name}.system", f"{name}.id"] if name == "source" else [name]
            columns.extend(n for n in names if n not in columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for m in moments:
        row = []
        for column in columns:
            if column.startswith("source."):
                value = m.get("source", {}).get(column.split(".", 1)[1])
            else:
                value = m.get(column)
            if isinstance(value, dict):
                value = json.dumps(value)
            row.append("" if value is None else str(value))
        writer.writerow(row)
    return out.getvalue(), b"\n".join(corrections) + b"\n"


def test_import_csv(store_url: str, golden_path: Path, golden_expected: dict[str, Any],
                    tmp_path: Path) -> None:
    text, corrections = golden_as_csv(golden_path)
    assert "source.system,source.id" in text.splitlines()[0]
    path = tmp_path / "golden.csv"
    path.write_text(text, encoding="utf-8")
    rest = tmp_path / "corrections.jsonl"
    rest.write_bytes(corrections)
    assert summary(store_url, path, rest) == GOLDEN_COUNTS
    assert_golden(store_url, golden_expected)
    # The same moments as CSV again are duplicates.
    assert summary(store_url, path)["duplicates"] == 34


def test_import_csv_keeps_bad_rows_in_the_quarantine(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "tenant,customer_id,occurred_at,channel,direction,kind,sentiment,source.system,source.id\n"
        "acme,c1,2026-03-01T09:00:00Z,email,outbound,answer,0.5,crm,1\n"
        "acme,c1,2026-03-01T10:00:00Z,email,inbound\n"
        "acme,c1,2026-03-01T11:00:00Z,email,inbound,reply,lots,crm,3\n",
        encoding="utf-8",
    )
    assert summary(store_url, path) == {"read": 3, "recorded": 1, "amended": 0, "retracted": 0,
                                        "duplicates": 0, "quarantined": 2}
    listed = json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout)
    assert [e["origin"] for e in listed] == [f"{path}:3", f"{path}:4"]
    assert listed[0]["raw"] == "acme,c1,2026-03-01T10:00:00Z,email,inbound"
    assert "cells" in listed[0]["reason"]
    assert listed[1]["field"] == "sentiment"
    assert "as wire JSON" in mot(store_url, "quarantine", "show", str(listed[1]["id"])).stdout
    shown = json.loads(mot(store_url, "show", "crm:1", "--tenant", "acme",
                           "--format", "json").stdout)
    assert shown[0]["moment"]["sentiment"] == 0.5
    assert shown[0]["moment"]["source"] == {"system": "crm", "id": "1"}


def test_import_gzip_and_stdin(store_url: str, golden_path: Path, tmp_path: Path,
                               golden_expected: dict[str, Any]) -> None:
    data = golden_path.read_bytes()
    gz = tmp_path / "golden.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    assert summary(store_url, gz) == GOLDEN_COUNTS
    duplicates = dict(GOLDEN_COUNTS, recorded=0, amended=0, retracted=0, duplicates=36)
    assert summary(store_url, "-", input=data) == duplicates
    assert_golden(store_url, golden_expected)


def test_import_stdin_into_an_empty_store(store_url: str, golden_path: Path) -> None:
    assert summary(store_url, "-", input=golden_path.read_bytes()) == GOLDEN_COUNTS
    listed = json.loads(mot(store_url, "show", "zendesk:z-100", "--tenant", "acme",
                            "--format", "json").stdout)
    assert listed[0]["origin"] == "<stdin>:1"


def test_import_gzip_on_real_stdin(store_url: str, golden_path: Path) -> None:
    # A real pipe (not CliRunner's buffer) lets the source sniff gzip bytes on stdin.
    proc = run([sys.executable, "-m", "mot", "--store", store_url, "import", "--summary-json", "-"],
               input=gzip.compress(golden_path.read_bytes()), timeout=60)
    assert {k: v for k, v in json.loads(proc.stdout).items() if k in COUNTS} == GOLDEN_COUNTS


def test_summary_json_and_text_summary(store_url: str, golden_path: Path) -> None:
    result = mot(store_url, "import", "--summary-json", golden_path)
    data = json.loads(result.stdout)
    assert {k: data[k] for k in COUNTS} == GOLDEN_COUNTS
    assert isinstance(data["seconds"], int | float)
    text = mot(store_url, "import", "--quiet", golden_path).stdout.strip()
    assert text.startswith("read 36: recorded 0, amended 0, retracted 0, duplicates 36, "
                           "quarantined 0")
    assert len(text.splitlines()) == 1


# -- errors ---------------------------------------------------------------------------------------


def assert_one_line_error(result: Result, *words: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:")
    for word in words:
        assert word in lines[0]


def test_a_missing_file_is_a_one_line_error(store_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    result = mot(store_url, "import", missing, ok=False)
    assert_one_line_error(result, str(missing))


def test_a_missing_file_after_a_good_one(store_url: str, tmp_path: Path,
                                         golden_path: Path) -> None:
    result = mot(store_url, "import", "-q", golden_path, tmp_path / "nope.jsonl", ok=False)
    assert_one_line_error(result, "nope.jsonl")


@pytest.mark.parametrize("kind", ["unmakeable-dir", "directory"])
def test_a_bad_store_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    store = "/proc/no-such-dir/mot.db" if kind == "unmakeable-dir" else str(tmp_path)
    said = (f"no mot store at {store}; `mot import` creates one" if kind == "unmakeable-dir"
            else f"{store} is a directory, not a mot store")
    result = mot(store, "import", "-", input=b"", ok=False)
    # A directory is named as one by the import too.
    assert_one_line_error(result, "cannot open the store" if kind == "unmakeable-dir" else said,
                          store)
    # They only read: a path that cannot exist has no store yet.
    for args in (["status"], ["query", "teams"], ["quarantine", "list"]):
        result = mot(store, *args, input=b"", ok=False)
        assert_one_line_error(result, said)


def test_a_bad_store_via_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status"], env={"MOT_STORE": str(tmp_path)})
    assert_one_line_error(result, str(tmp_path))


def test_a_binary_file_is_quarantined_not_a_crash(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "noise.jsonl"
    # (Not starting \xff\xfe: that is UTF-16's byte order mark, and such a file is decoded.)
    path.write_bytes(b"\x80\xfe\x00garbage\n\x80\x81\n")
    assert summary(store_url, path) == {"read": 2, "recorded": 0, "amended": 0, "retracted": 0,
                                        "duplicates": 0, "quarantined": 2}
    listed = json.loads(mot(store_url, "quarantine", "list", "--format", "json").stdout)
    assert [e["origin"] for e in listed] == [f"{path}:1", f"{path}:2"]
    assert [e["reason"] for e in listed] == [
        "not valid UTF-8 text: byte 0x80 at position 1 of the line (invalid start byte)",
        "not valid UTF-8 text: byte 0x80 at position 1 of the line (invalid start byte)"]


def test_every_command_is_in_the_lazy_command_map() -> None:
    from importlib import import_module

    from mot.cli.main import COMMAND_MODULES

    defined = {command.name: module
               for module in sorted(set(COMMAND_MODULES.values()))
               for command in import_module(f"mot.cli.{module}").COMMANDS}
    assert defined == COMMAND_MODULES
    listed = mot("unused.db", "--help").stdout
    for name in COMMAND_MODULES:
        assert f"\n  {name} " in listed, name


def test_a_query_of_current_projections_loads_neither_folds_nor_recorder(
    tmp_path: Path, golden_path: Path
) -> None:
    """Start-up is most of a query's wall time: `mot query` on up-to-date projections
    imports neither eventsourcing, nor the engine and its folds, nor the ledger's events,
    nor the other commands."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    mot(store, "project")
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from mot.cli.main import cli\n"
        f"result = CliRunner().invoke(cli, ['--store', {store!r}, 'query', 'relationships',"
        " '--customer', 'c1', '--format', 'json'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sys.modules.keys() & {'eventsourcing', 'pydantic', 'mot.projections.engine',"
        " 'mot.projections.amplification', 'mot.cli.ledger_commands', 'mot.cli.kafka_commands',"
        " 'mot.cli.http_commands', 'hashlib', 'kafka', 'psycopg', 'multiprocessing',"
        " 'concurrent.futures', 'mot.domain.events', 'mot.projections.relationship', 'csv',"
        " 'matplotlib', 'pyarrow', 'mot.cli.tables', 'mot.cli.analyst_commands'})\n"
        "print(sorted(r['tenant'] for r in __import__('json').loads(result.stdout)))\n"
    )
    out = run([sys.executable, "-c", probe], text=True).stdout.splitlines()
    assert out == ["set()", "['acme', 'globex']"]  # c1 of both tenants


def test_log_shows_current_moments_in_fold_order_as_the_ledger_holds_them(
    store_url: str, golden_path: Path
) -> None:
    mot(store_url, "import", "-q", golden_path)
    log = json.loads(mot(store_url, "log", "--tenant", "acme", "--customer", "c5",
                         "--format", "json").stdout)
    assert [(r["moment_id"][:8], r["occurred_at"]) for r in log] == [
        ("b2af06eb", "2026-01-20T10:00:00Z"), ("50bc947c", "2026-01-20T11:00:00Z"),
        ("975fd23c", "2026-01-21T11:00:00Z"), ("f72efa6a", "2026-01-22T11:00:00Z"),
        ("a53e5207", "2026-01-25T11:00:00Z"), ("85aae637", "2026-01-26T11:00:00Z"),
        ("15b9f36e", "2026-01-27T11:00:00Z"),
    ]
    assert log[-1]["sentiment"] == 0.6  # amended from 0.2
    assert all(r["source"]["system"] and r["customer_id"] == "c5" for r in log)
    timeline = json.loads(mot(store_url, "timeline", "acme", "c5", "--format", "json").stdout)
    assert [r["moment_id"] for r in timeline] == [r["moment_id"] for r in log]
    # c6's first moment was retracted: only the other one is left.
    c6 = json.loads(mot(store_url, "log", "--tenant", "acme", "--customer", "c6",
                        "--format", "json").stdout)
    assert [r["moment_id"][:8] for r in c6] == ["7d0e9a52"]
