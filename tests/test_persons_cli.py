"""The persons fixture end to end (issue 15), on SQLite and on real PostgreSQL: `mot import`
(links and unlinks among the moments, in files like any message), `mot project`, `mot query
NAME --format json`; every section but the responses must equal persons.expected.json,
and the same after `mot replay` and after an import a few lines at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import mot
from conftest import SHARED
from persons_support import SECTIONS, assert_expected

FIXTURE = SHARED / "fixtures" / "persons.jsonl"
EXPECTED = SHARED / "fixtures" / "persons.expected.json"


def outputs(store: str) -> dict[str, list[dict[str, Any]]]:
    return {name: json.loads(mot(store, "query", name, "--format", "json").stdout)
            for name in SECTIONS}


def without_versions(got: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {name: sorted(json.dumps({k: v for k, v in r.items() if k not in ("version", "lapsed")},
                                    sort_keys=True) for r in records)
            for name, records in got.items()}


def test_the_persons_fixture_through_the_command_line(store_url: str) -> None:
    mot(store_url, "import", "-q", FIXTURE)
    mot(store_url, "project", "-q")
    first = outputs(store_url)
    assert_expected(first, EXPECTED)
    mot(store_url, "replay", "-q")
    assert without_versions(outputs(store_url)) == without_versions(first)
    shown = json.loads(mot(store_url, "identity", "show", "--tenant", "acme", "x:maria",
                           "--format", "json").stdout)
    assert shown["customer_id"] == "hubspot:501" and len(shown["links"]) == 3
    assert all(link["origin"].startswith(str(FIXTURE)) for link in shown["links"])
    text = mot(store_url, "identity", "show", "--tenant", "acme", "x:maria").stdout
    # The link history names the link taken back, with its time, reason and origin.
    [typo] = [line for line in text.splitlines() if "'typo'" in line]
    assert typo.split()[:4] == ["2026-04-02T09:00:00Z", "linked", "x:ben", "-"]
    assert str(FIXTURE) in typo and not typo.endswith("*")
    [fixed] = [line for line in text.splitlines() if "'typo fixed'" in line]
    assert fixed.split()[:2] == ["2026-04-03T09:00:00Z", "unlinked"] and fixed.endswith("*")


def test_the_persons_fixture_a_few_lines_at_a_time(store_url: str, tmp_path: Path) -> None:
    lines = FIXTURE.read_bytes().splitlines(keepends=True)
    for start in range(0, len(lines), 4):
        part = tmp_path / f"part-{start}.jsonl"
        part.write_bytes(b"".join(lines[start:start + 4]))
        mot(store_url, "import", "-q", part)
        mot(store_url, "project", "-q")
    assert_expected(outputs(store_url), EXPECTED)
