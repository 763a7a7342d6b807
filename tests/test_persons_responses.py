"""The persons fixture's `responses` and `response_times` sections (SPEC §3.5 per person, §2
links), exact end to end: `mot import persons.jsonl`, `mot project`, `mot query responses` and
`response-times --format json`, then the same after `mot replay`; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from cli_support import mot, query
from conftest import SHARED

PERSONS = SHARED / "fixtures" / "persons.jsonl"
EXPECTED = json.loads((SHARED / "fixtures" / "persons.expected.json").read_text())


def without_version(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "version"} for r in records]


def test_the_persons_fixture_responses_exact(store_url: str) -> None:
    mot(store_url, "import", "-q", PERSONS)
    mot(store_url, "project", "-q")
    for _ in ("incremental", "rebuilt"):
        assert without_version(query(store_url, "responses")) == EXPECTED["responses"]
        assert query(store_url, "response-times") == EXPECTED["response_times"]
        mot(store_url, "replay", "-q")
    # Any id of a person selects its requests: zendesk:m1's complaint is hubspot:501's person's.
    by_id = {r["request_moment_id"]: r for r in EXPECTED["responses"]}
    person = [r for r in by_id.values() if r["customer_id"] == "hubspot:501"]
    assert len(person) == 2
    for any_id in ("hubspot:501", "zendesk:m1", "x:maria"):
        assert without_version(query(store_url, "responses", "--customer", any_id)) == person
