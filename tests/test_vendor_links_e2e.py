"""Vendor identity evidence recorded as links, end to end: `mot import --from VENDOR` and the
HubSpot webhook, on SQLite and the real PostgreSQL server (SPEC §2, Links; issue 15).

The link events are read back from the ledger's notification log; the SQLite store's files are
searched for the fixtures' email addresses, which must not be there in any form.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from http_support import api
from test_http_webhooks import HUBSPOT_SECRET, hubspot_headers

from mot.adapters.http.webhooks import WebhookSettings
from mot.bootstrap import open_store
from mot.cli.main import cli
from mot.domain.events import CustomersLinked

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"
CONFIG = FIXTURES / "mot.toml"


def email(address: str) -> str:
    return "email:" + hashlib.sha256(address.encode()).hexdigest()


def mot(*args: str | Path) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def vendor_import(store: str, source: str, name: str) -> dict[str, Any]:
    result = mot("--store", store, "import", "--summary-json", "--quiet", "--from", source,
                 "--config", CONFIG, FIXTURES / name)
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def recorded_links(store: str) -> list[tuple[tuple[str, str], str, str]]:
    """(pair, occurred_at, origin) of every CustomersLinked event, in the log's order."""
    services = open_store(store)
    try:
        log = services.notification_log
        events = [event for _, event in log.notifications(0, 10_000)]
    finally:
        services.close()
    return [(event.customer_ids, event.occurred_at, event.origin)
            for event in events if isinstance(event, CustomersLinked)]


def pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def test_zendesk_users_and_hubspot_merges_are_recorded_as_links(store_url: str) -> None:
    users = vendor_import(store_url, "zendesk", "zendesk_users.jsonl")
    # line 1: three links; line 2: one more, and 5001's first address again (a duplicate)
    assert (users["read"], users["linked"], users["duplicates"], users["quarantined"]) == (5, 4, 1, 0)
    assert users["vendor"]["links"] == 5
    again = vendor_import(store_url, "zendesk", "zendesk_users.jsonl")
    assert (again["linked"], again["duplicates"]) == (0, 5)
    merges = vendor_import(store_url, "hubspot", "hubspot_identity.jsonl")
    assert (merges["linked"], merges["quarantined"]) == (8, 0)
    found = recorded_links(store_url)
    users_file = str(FIXTURES / "zendesk_users.jsonl")
    assert found[:4] == [
        (pair("zendesk:5002", email("jo@martin-atelier.example")), "2025-05-06T12:00:00Z", f"{users_file}:1"),
        (pair("zendesk:5001", email("jo.martin@example.org")), "2025-04-30T17:02:44Z", f"{users_file}:1"),
        (pair("zendesk:5001", "x:@jomartin_lyon"), "2025-05-02T09:10:00Z", f"{users_file}:1"),
        (pair("zendesk:5001", email("jo@martin-atelier.example")), "2025-05-06T12:00:00Z", f"{users_file}:2"),
    ]
    hubspot = {p for p, *_ in found[4:]}
    assert hubspot == {pair("hubspot:601", "hubspot:733"), pair("hubspot:601", "hubspot:815"),
                       pair("hubspot:603", "hubspot:918"), pair("hubspot:603", "hubspot:921"),
                       pair("hubspot:604", email("ren.ito@example.net")),
                       pair("hubspot:601", email("jo.martin@example.org")),
                       pair("hubspot:601", email("jo@martin-atelier.example"))}


def test_every_fixture_imported_leaves_no_address_in_the_store(tmp_path: Path) -> None:
    """The email bridge stores `email:<sha256>` ids, never the addresses: not in the events, not
    in the quarantine (a record that cannot be mapped is kept with its addresses replaced)."""
    store = tmp_path / "mot.db"
    names = [("hubspot", "hubspot_engagements.jsonl"), ("hubspot", "hubspot_identity.jsonl"),
             ("salesforce", "salesforce_tasks.csv"), ("salesforce", "salesforce_activities.jsonl"),
             ("salesforce", "salesforce_leads.jsonl"), ("zendesk", "zendesk_ticket_audits.jsonl"),
             ("zendesk", "zendesk_users.jsonl"), ("mentions", "mentions_listening_export.csv"),
             ("x", "x_search_responses.jsonl")]
    linked = quarantined = 0
    for source, name in names:
        summary = vendor_import(str(store), source, name)
        linked += summary["linked"]
        quarantined += summary["quarantined"]
    assert linked >= 20 and quarantined >= 5
    mot("--store", store, "project")
    address = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
    wanted = {a.lower() for _, name in names for a in address.findall((FIXTURES / name).read_bytes())}
    assert b"jo.martin@example.org" in wanted and len(wanted) >= 8
    files = [path for path in tmp_path.iterdir() if path.name.startswith("mot.db")]
    assert files
    for path in files:
        data = path.read_bytes().lower()
        assert not [a for a in wanted if a in data], path
    # The email bridge id is recorded (the ledger seals it, SPEC §6: read back, not grepped).
    from mot.bootstrap import open_store
    from mot.domain.events import CustomersLinked

    with open_store(str(store)) as services:
        linked_ids = {cid for _, e in services.ledger_store.notifications(0, 100_000)
                      if isinstance(e, CustomersLinked) for cid in e.customer_ids}
    assert email("jo.martin@example.org") in linked_ids
    # ... and not in the ledger's rows as plain text (the persons projection lists a person's ids)
    with sqlite3.connect(store) as db:
        events = b"".join(bytes(state) for (state,) in db.execute("SELECT state FROM stored_events"))
    assert events and email("jo.martin@example.org").encode() not in events


def test_hubspot_merge_webhook_records_links(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "mot.toml"
    config.write_text(CONFIG.read_text() + f"""
[webhooks.hubspot]
secret = "{HUBSPOT_SECRET}"
url = "https://mot.example.com/v1/webhooks/hubspot?portal=62515&from=a%40b"
""")
    settings = WebhookSettings.load(config, {})
    body = (FIXTURES / "hubspot_identity.jsonl").read_bytes().splitlines()[0]
    with api(store_url, webhooks=settings) as client:
        answer = client.client.post("/v1/webhooks/hubspot", content=body, headers=hubspot_headers(body))
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["tenant"] == "acme"
        assert data["mapping"]["links"] == 2 and data["mapping"]["not_moments"] == 1  # company.merge
        assert [item["outcome"] for item in data["items"]] == ["linked", "linked"]
        retried = client.client.post("/v1/webhooks/hubspot", content=body, headers=hubspot_headers(body))
        assert [item["outcome"] for item in retried.json()["items"]] == ["duplicate", "duplicate"]
    found = recorded_links(store_url)
    assert [(p, at) for p, at, _ in found] == [
        (pair("hubspot:601", "hubspot:733"), "2025-05-02T08:45:00Z"),
        (pair("hubspot:604", email("ren.ito@example.net")), "2025-05-02T08:46:00Z")]
    assert all(origin.startswith(f"webhook:hubspot:acme:{data['request_id']}") for *_, origin in found)


@pytest.mark.parametrize("switch", ["links", "email_bridge"])
def test_the_switches_in_mot_toml(tmp_path: Path, switch: str) -> None:
    config = tmp_path / "mot.toml"
    config.write_text(CONFIG.read_text().replace("[zendesk]\n", f"[zendesk]\n{switch} = false\n"))
    store = str(tmp_path / "mot.db")
    result = mot("--store", store, "import", "--summary-json", "--quiet", "--from", "zendesk",
                 "--config", config, FIXTURES / "zendesk_users.jsonl")
    summary = json.loads(result.stdout)
    # with links off, nothing; without the email bridge, the X handle alone
    assert summary["linked"] == (0 if switch == "links" else 1)
    assert [p for p, *_ in recorded_links(store)] == (
        [] if switch == "links" else [pair("zendesk:5001", "x:@jomartin_lyon")])


def test_one_person_across_every_vendor(tmp_path: Path) -> None:
    """Jo Martin is a HubSpot contact (merged twice), a Salesforce lead converted into a contact
    (and a duplicate contact merged into it), two Zendesk users (one merged into the other), an X
    account and a listening tool's author: the vendors' own evidence makes her one person, joined
    by her addresses' `email:` ids and her handle's `x:@` id."""
    store = str(tmp_path / "mot.db")
    for source, name in [("zendesk", "zendesk_users.jsonl"), ("zendesk", "zendesk_ticket_audits.jsonl"),
                         ("x", "x_search_responses.jsonl"), ("hubspot", "hubspot_identity.jsonl"),
                         ("hubspot", "hubspot_engagements.jsonl"),
                         ("mentions", "mentions_listening_export.csv"),
                         ("salesforce", "salesforce_leads.jsonl")]:
        vendor_import(store, source, name)
    mot("--store", store, "project")
    shown = json.loads(mot("--store", store, "identity", "show", "--tenant", "acme", "x:1500000000000000101",
                           "--format", "json").stdout)
    assert shown["customer_id"] == "hubspot:601"  # the smallest of her ids with a moment
    assert shown["customer_ids"] == sorted([
        email("jo.martin@example.org"), email("jo@martin-atelier.example"),
        "hubspot:601", "hubspot:733", "hubspot:815", "mentions:@jomartin_lyon",
        "salesforce:0035g00000Kq1AaAAJ", "salesforce:0035g00000Kq1BbAAJ", "salesforce:00Q5g00000LdA1bEAF",
        "x:1500000000000000101", "x:@jomartin_lyon", "zendesk:5001", "zendesk:5002"])
    relationship, = json.loads(mot("--store", store, "query", "relationships", "--tenant", "acme",
                                   "--customer", "zendesk:5002", "--format", "json").stdout)
    assert relationship["customer_id"] == "hubspot:601"
    assert relationship["customer_ids"] == shown["customer_ids"]
