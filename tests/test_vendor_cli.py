"""`mot import --from SOURCE` end to end, on SQLite and on the real PostgreSQL server.

Each vendor fixture is imported twice: the first time records its moments and quarantines
the records that cannot be mapped (with the reason and the origin), the second time records
nothing new. `--dry-run` prints the mapped moments and records nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mot.cli.main import cli

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"
CONFIG = FIXTURES / "mot.toml"
COUNTS = ("read", "recorded", "amended", "retracted", "linked", "duplicates", "quarantined")


def first_import(*, read: int, recorded: int, retracted: int, linked: int,
                 quarantined: int, duplicates: int = 0) -> dict[str, int]:
    return {"read": read, "recorded": recorded, "amended": 0, "retracted": retracted, "linked": linked,
            "duplicates": duplicates, "quarantined": quarantined}


# (source, file, first import's counts, mapping stats, quarantined origins -> words of the reason)
CASES: list[tuple[str, str, dict[str, int], dict[str, int], dict[str, str]]] = [
    ("hubspot", "hubspot_engagements.jsonl",  # two emails link their contact's address
     first_import(read=12, recorded=7, retracted=1, linked=2, quarantined=2),
     {"records": 14, "messages": 10, "links": 2, "unmappable": 2, "not_moments": 4},
     {":9": "has no associated contact", ":10#2": "carries none of its properties"}),
    ("salesforce", "salesforce_tasks.csv",
     first_import(read=6, recorded=5, retracted=0, linked=0, quarantined=1),
     {"records": 9, "messages": 5, "links": 0, "unmappable": 1, "not_moments": 3},
     {":9": "has no WhoId"}),
    ("salesforce", "salesforce_activities.jsonl",
     first_import(read=6, recorded=4, retracted=1, linked=0, quarantined=1),
     {"records": 6, "messages": 5, "links": 0, "unmappable": 1, "not_moments": 0},
     {":4": "only Task and Event records"}),
    ("zendesk", "zendesk_ticket_audits.jsonl",  # the sideloaded end-user's address
     first_import(read=12, recorded=10, retracted=0, linked=1, quarantined=1),
     {"records": 13, "messages": 11, "links": 1, "unmappable": 1, "not_moments": 3},
     {":4": "the ticket's requester is unknown"}),
    ("mentions", "mentions_listening_export.csv",  # authors on X: their handles
     first_import(read=10, recorded=6, retracted=0, linked=3, quarantined=1),
     {"records": 8, "messages": 9, "links": 3, "unmappable": 1, "not_moments": 1},
     {":9": "date (Date"}),
    ("x", "x_search_responses.jsonl",  # each customer's account to its handle, once: a second
     # post of an account repeats its link (dated at the account's creation), a duplicate
     first_import(read=11, recorded=5, retracted=0, linked=3, quarantined=1, duplicates=2),
     {"records": 7, "messages": 10, "links": 5, "unmappable": 1, "not_moments": 1},
     {":3": "has no author_id"}),
]


def mot(*args: str | Path, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def vendor_import(store: str, source: str, path: Path, *extra: str) -> dict[str, Any]:
    result = mot("--store", store, "import", "--summary-json", "--quiet", "--from", source,
                 "--config", CONFIG, path, *extra)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(("source", "name", "first", "mapped", "rejected"), CASES,
                         ids=[case[1] for case in CASES])
def test_fixture_imported_twice_records_nothing_the_second_time(
    store_url: str, source: str, name: str, first: dict[str, int], mapped: dict[str, int],
    rejected: dict[str, str],
) -> None:
    path = FIXTURES / name
    once = vendor_import(store_url, source, path)
    assert {k: once[k] for k in COUNTS} == first
    assert {k: once["vendor"][k] for k in mapped} == mapped
    twice = vendor_import(store_url, source, path)
    assert {k: twice[k] for k in COUNTS} == {
        **first, "recorded": 0, "retracted": 0, "linked": 0,
        "duplicates": first["recorded"] + first["retracted"] + first["linked"] + first["duplicates"],
        "quarantined": first["quarantined"],
    }
    entries = json.loads(mot("--store", store_url, "quarantine", "list", "--format", "json").stdout)
    assert len(entries) == len(rejected)  # the same records again are repeats, not new entries
    by_origin = {entry["origin"]: entry for entry in entries}
    for suffix, words in rejected.items():
        entry = by_origin[f"{path}{suffix}"]
        assert entry["reason"].startswith(f"{source}: ") and words in entry["reason"], entry
        assert entry["repeats"] == 2
        assert entry["raw"]  # the vendor record itself is kept, to be fixed and replayed


def test_all_sources_in_one_store_project_and_query(store_url: str) -> None:
    for source, name, *_ in CASES:
        vendor_import(store_url, source, FIXTURES / name)
    mot("--store", store_url, "project")
    amplifications = json.loads(mot("--store", store_url, "query", "amplifications", "--tenant", "acme",
                                    "--format", "json").stdout)
    # Jo's X account and the listening tool's author @jomartin_lyon are linked through the handle
    # (x:@jomartin_lyon): one person, whose id is the smallest of its ids with a moment (SPEC §2).
    jo = {"x:1500000000000000101", "mentions:@jomartin_lyon"}
    complaint = next(a for a in amplifications if a["customer_id"] in jo
                     and a["occurred_at"] == "2025-05-02T08:30:12Z")
    # the retweet is a share of the complaint: its reach adds to the cascade
    assert (complaint["cascade_size"], complaint["cascade_reach"]) == (1, 1840 + 45200)
    listening = next(a for a in amplifications if a["customer_id"] in jo
                     and a["occurred_at"] == "2025-06-02T08:12:00Z")
    assert (listening["cascade_size"], listening["polarity"]) == (1, "negative")
    teams = {row["function"]: row for row in json.loads(
        mot("--store", store_url, "query", "teams", "--tenant", "acme", "--format", "json").stdout)}
    assert {"sales", "service", "logistics", "product"} <= set(teams)
    shown = mot("--store", store_url, "show", "zendesk:ticket:666", "--tenant", "acme").stdout
    assert "recorded" in shown and "zendesk_ticket_audits.jsonl:1#1" in shown
    retracted = mot("--store", store_url, "show", "hubspot:note:88812340002", "--tenant", "acme").stdout
    assert "current: retracted" in retracted


def test_dry_run_prints_the_moments_and_records_nothing(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    path = FIXTURES / "hubspot_engagements.jsonl"
    result = mot("--store", store, "import", "--from", "hubspot", "--config", CONFIG, "--dry-run", path)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 10
    assert lines[0]["source"] == {"system": "hubspot", "id": "call:34018752001"}
    assert lines[-1]["type"] == "retract"
    assert [line["type"] for line in lines if "type" in line] == ["link", "link", "retract"]
    assert "14 records mapped to 10 messages (2 links)" in result.stderr
    assert "would be quarantined" in result.stderr and f"{path}:9" in result.stderr
    assert "no moment ×1: meeting not held" in result.stderr
    assert "nothing recorded" in result.stderr
    assert not Path(store).exists()  # the store was not even opened
    # The printed moments are plain wire JSONL: importing them records what --from would.
    wire = tmp_path / "mapped.jsonl"
    wire.write_text(result.stdout)
    plain = json.loads(mot("--store", store, "import", "--summary-json", "-q", wire).stdout)
    assert (plain["recorded"], plain["retracted"], plain["linked"], plain["quarantined"]) == (7, 1, 2, 0)
    again = vendor_import(store, "hubspot", path)
    assert (again["recorded"], again["duplicates"], again["quarantined"]) == (0, 10, 2)


def test_dry_run_summary_json_and_plain_files(tmp_path: Path) -> None:
    result = mot("import", "--from", "x", "--config", CONFIG, "--dry-run", "--summary-json",
                 FIXTURES / "x_search_responses.jsonl")
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["dry_run"] is True
    assert (summary["read"], summary["valid"], summary["quarantined"]) == (11, 10, 1)  # 5 links
    assert summary["vendor"]["not_moments"] == 1
    wire = tmp_path / "moments.jsonl"
    wire.write_text('{"moment_id":"6f1c9e2a-3b4d-4c5e-8f70-123456789abc","customer_id":"c1",'
                    '"occurred_at":"2025-01-01T00:00:00Z","channel":"email","direction":"inbound",'
                    '"kind":"praise"}\n{"customer_id":"c1"}\n')
    plain = mot("import", "--dry-run", wire)
    assert len(plain.stdout.splitlines()) == 1
    assert "occurred_at: required field is missing" in plain.stderr


def test_mot_toml_in_the_working_directory_is_the_default(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(CONFIG, tmp_path / "mot.toml")
    monkeypatch.chdir(tmp_path)
    result = mot("import", "--from", "zendesk", "--dry-run", FIXTURES / "zendesk_ticket_audits.jsonl")
    first = json.loads(result.stdout.splitlines()[0])
    assert (first["tenant"], first["function"]) == ("acme", "service")
    (tmp_path / "mot.toml").unlink()
    bare = mot("import", "--from", "zendesk", "--dry-run", FIXTURES / "zendesk_ticket_audits.jsonl")
    assert json.loads(bare.stdout.splitlines()[0])["tenant"] == "default"


def test_errors_are_one_line(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    no_from = mot("--store", store, "import", "--config", CONFIG, FIXTURES / "x_search_responses.jsonl",
                  ok=False)
    assert no_from.exit_code == 2 and "--config applies to imports --from" in no_from.output
    bad = tmp_path / "bad.toml"
    bad.write_text('[hubspot]\nowners = { "1" = "sale" }\n')
    wrong = mot("--store", store, "import", "--from", "hubspot", "--config", bad,
                FIXTURES / "hubspot_engagements.jsonl", ok=False)
    assert wrong.exit_code == 1
    assert "[hubspot] owners.1: 'sale' is not a function" in wrong.output
    assert "Traceback" not in wrong.output
    csv_for_json_source = mot("--store", store, "import", "--from", "hubspot", "--config", CONFIG,
                              FIXTURES / "mentions_listening_export.csv", ok=False)
    assert csv_for_json_source.exit_code == 1
    assert "--from hubspot reads jsonl, not csv" in csv_for_json_source.output
    unknown = mot("--store", store, "import", "--from", "intercom", FIXTURES / "x_search_responses.jsonl",
                  ok=False)
    assert unknown.exit_code == 2


def test_salesforce_json_lines_through_stdin(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    data = (FIXTURES / "salesforce_activities.jsonl").read_bytes()
    result = CliRunner().invoke(cli, ["--store", store, "import", "--summary-json", "-q", "--from",
                                      "salesforce", "--config", str(CONFIG), "-"], input=data)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["recorded"], summary["retracted"], summary["quarantined"]) == (4, 1, 1)


def test_a_vendor_record_giving_a_field_twice_is_quarantined_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "salesforce.jsonl"
    body = (FIXTURES / "salesforce_activities.jsonl").read_bytes().splitlines()[0]
    path.write_bytes(body.replace(b'"Subject":"Contract review"',
                                  b'"Subject":"Contract review","Subject":"Other"', 1) + b"\n")
    store = str(tmp_path / "mot.db")
    summary = vendor_import(store, "salesforce", path)
    assert (summary["recorded"], summary["quarantined"]) == (0, 1)
    [entry] = json.loads(mot("--store", store, "quarantine", "list", "--format", "json").stdout)
    assert entry["reason"].startswith("salesforce: records[0].Subject is given more than once")


def test_replaying_the_quarantine_keeps_an_unmapped_records_own_reason(store_url: str,
                                                                        tmp_path: Path) -> None:
    """A vendor record (or CSV row) a source could not map is no wire message: replayed as
    one, its reason became "id: unknown field ...; properties: unknown field ...", and the
    mapping's reason (what to fix) was lost. It stays as it is until `mot quarantine fix`."""
    path = tmp_path / "salesforce.jsonl"
    path.write_text(json.dumps({"Id": "00T5g00000Ab123", "WhoId": "0035g00000Cd123AAA",
                                "Status": "Completed", "TaskSubtype": "Call",
                                "CreatedDate": "yesterday"}) + "\n")
    assert vendor_import(store_url, "salesforce", path)["quarantined"] == 1
    [before] = json.loads(mot("--store", store_url, "quarantine", "list", "--format", "json").stdout)
    assert before["reason"].startswith("salesforce: Task ") and "CreatedDate" in before["reason"]
    replayed = mot("--store", store_url, "quarantine", "replay")
    assert "still rejected 1" in replayed.stdout, replayed.stdout
    [after] = json.loads(mot("--store", store_url, "quarantine", "list", "--format", "json").stdout)
    assert (after["field"], after["reason"]) == (before["field"], before["reason"])
