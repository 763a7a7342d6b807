"""Vendor identity evidence as link messages (SPEC §2, Links; issue 15): the exact messages each
vendor's records make, the switches in mot.toml, and no email address in anything mapped.

The fixtures are API responses as the vendors return them (tests/fixtures/vendors/*):
`hubspot_identity.jsonl` (webhook merges, a contact record), `salesforce_leads.jsonl` (a
converted lead, a contact, a Task queried with Who.Email), `zendesk_users.jsonl` (users with
their identities, and a user's identities after a merge), and the activity fixtures, whose
emails, sideloaded users and X usernames make links too.
"""

from __future__ import annotations

import csv
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from mot.adapters.sources.files import CsvTable, open_source
from mot.adapters.sources.vendor import VendorStats, map_value, vendor_records
from mot.adapters.vendors import SOURCES, ConfigError, NotAMoment, Unmappable, VendorConfig
from mot.adapters.vendors.base import email_id, without_addresses
from mot.domain.messages import Rejection, validate_message
from mot.service.queries import Query

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"
CONFIG = VendorConfig.load(FIXTURES / "mot.toml")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def email(address: str) -> str:
    """The bridge id SPEC §2 names: sha256 of the trimmed lowercase address, in hex."""
    return "email:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()


def link(a: str, b: str, occurred_at: str, reason: str, tenant: str = "acme") -> dict[str, Any]:
    return {"type": "link", "tenant": tenant, "customer_ids": [a, b], "occurred_at": occurred_at,
            "reason": reason}


def lines(name: str) -> list[Any]:
    return [orjson.loads(line) for line in (FIXTURES / name).read_bytes().splitlines()]


def lines_csv(name: str) -> list[dict[str, str]]:
    with open(FIXTURES / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def mapped(source: str, value: Any, config: VendorConfig = CONFIG) -> list[dict[str, Any]]:
    """Every message of one line (each record of it in turn; no-moment records give none)."""
    out: list[dict[str, Any]] = []
    for record in SOURCES[source].records(value):
        try:
            out += SOURCES[source].map(record, config)
        except (NotAMoment, Unmappable):
            continue  # their own tests say which and why
    return out


def links_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("type") == "link"]


# --- HubSpot ------------------------------------------------------------------------------------

HS_MERGE = "contacts merged in HubSpot (webhook event contact.merge (3541227605))"


def test_hubspot_merge_webhooks_link_every_merged_contact_to_the_primary() -> None:
    posted, contact, new_style = lines("hubspot_identity.jsonl")
    assert mapped("hubspot", posted) == [
        link("hubspot:601", "hubspot:733", "2025-05-02T08:45:00Z", HS_MERGE),
        link("hubspot:604", email("ren.ito@example.net"), "2025-05-02T08:46:00Z",
             "same email address in HubSpot (contact 604, webhook event contact.propertyChange "
             "(3541227606))"),
        # company.merge: companies are no customers
    ]
    merged = "contacts merged in HubSpot (webhook event object.merge (3541227700))"
    assert mapped("hubspot", new_style) == [
        link("hubspot:603", "hubspot:918", "2025-05-03T09:00:00Z", merged),
        link("hubspot:603", "hubspot:921", "2025-05-03T09:00:00Z", merged),
    ]
    created = "2025-02-11T09:20:41.306000Z"  # format_utc keeps microseconds
    assert mapped("hubspot", contact) == [
        link("hubspot:601", email("jo.martin@example.org"), created,
             "same email address in HubSpot (contact 601)"),
        link("hubspot:601", email("jo@martin-atelier.example"), created,
             "same email address in HubSpot (contact 601)"),
        link("hubspot:601", "hubspot:733", created, "merged into contact 601 in HubSpot"),
        link("hubspot:601", "hubspot:815", created, "merged into contact 601 in HubSpot"),
    ]


def test_hubspot_email_engagement_links_the_contacts_one_address() -> None:
    engagements = lines("hubspot_engagements.jsonl")
    incoming, outgoing = mapped("hubspot", engagements[1]), mapped("hubspot", engagements[2])
    assert links_of(incoming) == [link("hubspot:601", email("jo.martin@example.org"), "2025-03-03T11:02:17Z",
                                       "same email address in HubSpot (email 51230987001, contact 601)")]
    assert incoming[0]["customer_id"] == "hubspot:601" and "type" not in incoming[0]
    assert links_of(outgoing) == [link("hubspot:603", email("sam.lee@example.com"), "2025-03-05T16:45:00Z",
                                       "same email address in HubSpot (email 51230987002, contact 603)")]
    record = engagements[2]
    properties = record["properties"]
    two_recipients = {**record, "properties": {**properties,
                                               "hs_email_to_email": "sam.lee@example.com;kim@example.com"}}
    assert links_of(mapped("hubspot", two_recipients)) == []  # whose address is whose is unknown
    mailbox_too = "billing@acme.example; sam.lee@example.com"
    with_mailbox = {**record, "properties": {**properties, "hs_email_to_email": mailbox_too}}
    assert len(links_of(mapped("hubspot", with_mailbox))) == 1  # the brand's own mailbox is not the contact's
    two_contacts = {**record, "associations": {"contacts": {"results": [{"id": "603"}, {"id": "777"}]}}}
    assert links_of(mapped("hubspot", two_contacts)) == []


def test_hubspot_switches() -> None:
    posted, contact, _ = lines("hubspot_identity.jsonl")
    off = VendorConfig.from_dict({"tenant": "acme", "hubspot": {"links": False}})
    assert mapped("hubspot", posted, off) == [] and mapped("hubspot", contact, off) == []
    with pytest.raises(NotAMoment, match="links = false"):
        SOURCES["hubspot"].map(posted[0], off)
    no_bridge = VendorConfig.from_dict({"tenant": "acme", "hubspot": {"email_bridge": False}})
    assert [m["customer_ids"][1] for m in mapped("hubspot", contact, no_bridge)] == ["hubspot:733",
                                                                                    "hubspot:815"]
    assert mapped("hubspot", posted, no_bridge) == [mapped("hubspot", posted)[0]]
    prefixed = VendorConfig.from_dict({"tenant": "acme", "hubspot": {"customer_prefix": "hs-"}})
    assert mapped("hubspot", posted, prefixed)[0]["customer_ids"] == ["hs-601", "hs-733"]


# --- Salesforce ---------------------------------------------------------------------------------

LEAD, CONTACT = "salesforce:00Q5g00000LdA1bEAF", "salesforce:0035g00000Kq1AaAAJ"


def test_salesforce_converted_lead_merged_contact_and_addresses() -> None:
    page, task = lines("salesforce_leads.jsonl")
    assert mapped("salesforce", page) == [
        link(LEAD, CONTACT, "2025-03-28T00:00:00Z",
             "Lead 00Q5g00000LdA1bEAF converted into Contact 0035g00000Kq1AaAAJ in Salesforce"),
        link(LEAD, email("jo.martin@example.org"), "2025-03-20T10:02:11Z",
             "same email address in Salesforce (Lead 00Q5g00000LdA1bEAF)"),
        # the lead not converted, without Email: nothing
        link(CONTACT, email("jo.martin@example.org"), "2025-03-28T16:40:08Z",
             "same email address in Salesforce (Contact 0035g00000Kq1AaAAJ)"),
        # read with queryAll: a contact deleted by a merge names the one kept
        link("salesforce:0035g00000Kq1BbAAJ", CONTACT, "2025-04-12T15:20:05Z",
             "Contact 0035g00000Kq1BbAAJ merged into Contact 0035g00000Kq1AaAAJ in Salesforce"),
    ]
    with pytest.raises(NotAMoment, match="a Lead record"):
        SOURCES["salesforce"].map(page["records"][1], CONFIG)
    moment, bridge = mapped("salesforce", task)
    assert (moment["customer_id"], moment["kind"]) == ("salesforce:00Q5g00000LdA3dEAF", "other")
    assert bridge == link(
        "salesforce:00Q5g00000LdA3dEAF", email("ines.faure@example.com"), "2025-04-03T10:15:00Z",
        "same email address in Salesforce (Task 00T5g00000Ab1D7EAJ, WhoId 00Q5g00000LdA3dEAF)")


def test_salesforce_records_deleted_by_a_merge_name_the_one_kept() -> None:
    # SELECT Id, IsDeleted, MasterRecordId, ... FROM Contact, with queryAll: the loser of a merge
    loser = lines("salesforce_leads.jsonl")[0]["records"][3]
    assert SOURCES["salesforce"].map(loser, CONFIG) == [link(
        "salesforce:0035g00000Kq1BbAAJ", CONTACT, "2025-04-12T15:20:05Z",
        "Contact 0035g00000Kq1BbAAJ merged into Contact 0035g00000Kq1AaAAJ in Salesforce")]
    with pytest.raises(NotAMoment, match="a deleted Contact record"):
        SOURCES["salesforce"].map({**loser, "MasterRecordId": None}, CONFIG)


def test_salesforce_data_loader_rows_of_leads() -> None:
    # A Data Loader export: upper-case headers, 15-character ids, no attributes.type (00Q: a Lead).
    row = {"ID": "00Q5g00000LdA1b", "EMAIL": "", "ISCONVERTED": "true",
           "CONVERTEDCONTACTID": "0035g00000Kq1Aa", "CONVERTEDDATE": "2025-03-28",
           "CREATEDDATE": "2025-03-20T10:02:11.000Z", "ISDELETED": "false"}
    assert SOURCES["salesforce"].map(row, CONFIG) == [link(
        LEAD, CONTACT, "2025-03-28T00:00:00Z",
        "Lead 00Q5g00000LdA1bEAF converted into Contact 0035g00000Kq1AaAAJ in Salesforce")]
    off = VendorConfig.from_dict({"salesforce": {"links": False}})
    with pytest.raises(NotAMoment, match="nothing to link"):
        SOURCES["salesforce"].map(row, off)


# --- Zendesk ------------------------------------------------------------------------------------


def test_zendesk_users_and_identities() -> None:
    users, after_merge = lines("zendesk_users.jsonl")
    assert mapped("zendesk", users) == [
        # 5001's address comes from its email identity (below); 3001 is an agent: no links
        link("zendesk:5002", email("jo@martin-atelier.example"), "2025-05-06T12:00:00Z",
             "same email address in Zendesk (user 5002)"),
        link("zendesk:5001", email("jo.martin@example.org"), "2025-04-30T17:02:44Z",
             "same email address in Zendesk (user 5001, identity 40010001)"),
        link("zendesk:5001", "x:@jomartin_lyon", "2025-05-02T09:10:00Z",
             "X handle @JoMartin_Lyon of Zendesk user 5001, identity 40010002"),
    ]
    # 5002 was merged into 5001: its address is now one of 5001's identities, so both link to it
    assert mapped("zendesk", after_merge) == [
        link("zendesk:5001", email("jo.martin@example.org"), "2025-04-30T17:02:44Z",
             "same email address in Zendesk (user 5001, identity 40010001)"),
        link("zendesk:5001", email("jo@martin-atelier.example"), "2025-05-06T12:00:00Z",
             "same email address in Zendesk (user 5001, identity 40010009)"),
    ]
    x_prefix = VendorConfig.from_dict({"tenant": "acme", "x": {"customer_prefix": "tw:"}})
    assert mapped("zendesk", users, x_prefix)[-1]["customer_ids"] == ["zendesk:5001", "tw:@jomartin_lyon"]
    no_bridge = VendorConfig.from_dict({"tenant": "acme", "zendesk": {"email_bridge": False}})
    assert [m["customer_ids"] for m in mapped("zendesk", users, no_bridge)] == [
        ["zendesk:5001", "x:@jomartin_lyon"]]
    assert mapped("zendesk", users, VendorConfig.from_dict({"zendesk": {"links": False}})) == []


def test_zendesk_sideloaded_users_of_an_audit_page() -> None:
    page = lines("zendesk_ticket_audits.jsonl")[0]
    messages = mapped("zendesk", page)
    assert links_of(messages) == [link("zendesk:5001", email("jo.martin@example.org"), "2025-04-30T17:02:44Z",
                                       "same email address in Zendesk (user 5001)")]
    assert messages[-1]["type"] == "link"  # the users come after the audits, as one more record


USER_MERGED = {  # a Zendesk webhook's user event (Admin Center > Webhooks, user.merged)
    "type": "zen:event-type:user.merged", "account_id": 12514403,
    "id": "5c2b8f0e-3a51-4cc1-9d1a-0c4b1d7d9a21", "time": "2025-05-07T09:30:00Z",
    "zendesk_event_version": "2022-06-20", "subject": "zen:user:5003",
    "detail": {"created_at": "2025-05-06T08:00:00Z", "id": "5003", "role": "end-user",
               "email": "jo.martin@example.com", "updated_at": "2025-05-07T09:30:00Z"},
    "event": {"new_user_id": "5001"},
}


def test_a_zendesk_user_merged_event_links_the_merged_user_to_the_one_kept() -> None:
    [merged] = mapped("zendesk", USER_MERGED)
    assert merged == link("zendesk:5001", "zendesk:5003", "2025-05-07T09:30:00Z",
                          "Zendesk user 5003 merged into user 5001"
                          " (webhook event 5c2b8f0e-3a51-4cc1-9d1a-0c4b1d7d9a21)")
    assert not isinstance(validate_message(merged, NOW), Rejection)
    # Only the subject when detail has no id; nothing with links off; no kept user: quarantined.
    subject_only = {**USER_MERGED, "detail": {}}
    assert mapped("zendesk", subject_only) == [merged]
    off = VendorConfig.from_dict({"tenant": "acme", "zendesk": {"links": False}})
    with pytest.raises(NotAMoment):
        SOURCES["zendesk"].map(USER_MERGED, off)
    with pytest.raises(Unmappable, match="the user it was merged into"):
        SOURCES["zendesk"].map({**USER_MERGED, "event": {}}, CONFIG)


# --- X ------------------------------------------------------------------------------------------


def test_x_links_an_account_to_its_handle() -> None:
    search = lines("x_search_responses.jsonl")[0]
    first = SOURCES["x"].records(search)[0]
    moment, handle = SOURCES["x"].map(first, CONFIG)
    assert moment["customer_id"] == "x:1500000000000000101"
    # Dated at the account's creation, which this response does not give: X's launch.
    assert handle == link("x:1500000000000000101", "x:@jomartin_lyon", "2006-03-21T00:00:00Z",
                          "X user 1500000000000000101 is @jomartin_lyon")
    assert links_of(SOURCES["x"].map(first, VendorConfig.from_dict({"x": {"links": False}}))) == []
    users = [{**u, "created_at": "2019-07-01T10:00:00.000Z"} for u in first["includes"]["users"]]
    with_created = {**first, "includes": {**first["includes"], "users": users}}
    assert links_of(SOURCES["x"].map(with_created, CONFIG))[0]["occurred_at"] == "2019-07-01T10:00:00Z"


def test_x_posts_after_a_manual_unlink_do_not_link_the_handle_again(tmp_path: Path) -> None:
    """A vendor's link does not override a later manual unlink (`handle_evidence_time`): every
    post of the account repeats one link, older than the unlink, so the pair stays unlinked."""
    from mot.bootstrap import open_store
    from mot.domain.ledger import Outcome
    from mot.service.ledger import Incoming

    first, later, *_ = lines("x_search_responses.jsonl")
    account, handle = "x:1500000000000000101", "x:@jomartin_lyon"
    unlink = {"type": "unlink", "tenant": "acme", "customer_ids": [account, handle],
              "occurred_at": "2025-05-03T00:00:00Z", "reason": "not her handle"}

    def record(services: Any, messages: list[dict[str, Any]]) -> list[Outcome]:
        return [v.outcome for v in services.ledger.record(
            [Incoming(orjson.dumps(m), f"test:{n}") for n, m in enumerate(messages)]).verdicts]

    with open_store(str(tmp_path / "mot.db")) as services:
        record(services, mapped("x", first))
        assert record(services, [unlink]) == [Outcome.UNLINKED]
        # Jo posts again on 2025-05-04, after the unlink: the link it carries is a duplicate.
        again = mapped("x", later)
        assert [m["occurred_at"] for m in links_of(again)] == ["2006-03-21T00:00:00Z"]
        assert Outcome.LINKED not in record(services, again)
        services.projections.project()
        [person] = services.queries.run(Query("persons", tenant="acme", customer=account))
        assert person["customer_ids"] == [account]


def test_a_listening_tools_author_on_x_is_linked_to_the_handle() -> None:
    first, *_ = lines_csv("mentions_listening_export.csv")
    moment, handle = SOURCES["mentions"].map(first, CONFIG)
    assert moment["customer_id"] == "mentions:@jomartin_lyon"
    assert handle == link("mentions:@jomartin_lyon", "x:@jomartin_lyon", "2025-06-02T08:12:00Z",
                          "the X handle of mention bw-90011's author")
    # on another platform, or when the author is a name rather than a handle: no link
    assert links_of(SOURCES["mentions"].map({**first, "Page Type": "blog", "Url": ""}, CONFIG)) == []
    assert links_of(SOURCES["mentions"].map({**first, "Author": "Jo Martin"}, CONFIG)) == []
    assert links_of(SOURCES["mentions"].map(first, VendorConfig.from_dict(
        {"mentions": {"links": False}}))) == []


# --- the configuration, the bridge id, and no address anywhere ---------------------------------


def test_switches_are_booleans_per_section() -> None:
    assert CONFIG["zendesk"].links and CONFIG["zendesk"].email_bridge
    config = VendorConfig.from_dict({"zendesk": {"links": False}, "hubspot": {"email_bridge": False}})
    assert (config["zendesk"].links, config["hubspot"].links, config["hubspot"].email_bridge) == (
        False, True, False)
    with pytest.raises(ConfigError, match=r"\[x\] links: expected true or false, got 'no'"):
        VendorConfig.from_dict({"x": {"links": "no"}})
    with pytest.raises(ConfigError, match="did you mean 'email_bridge'"):
        VendorConfig.from_dict({"x": {"email_bridges": False}})


def test_email_id() -> None:
    assert email_id("  Jo.Martin@Example.ORG ") == email("jo.martin@example.org")
    assert email_id("jo.martin@example.org") == (
        "email:" + hashlib.sha256(b"jo.martin@example.org").hexdigest())
    for not_an_address in (None, "", "jo", "@jomartin", "jo@localhost", "Jo <jo@example.org>", 42):
        assert email_id(not_an_address) is None, not_an_address
    raw = b'{"email":"Jo.Martin@Example.org","to":"a@b.example, c@d.example","at":"@handle"}'
    redacted = without_addresses(raw)
    assert orjson.loads(redacted) == {"email": email("jo.martin@example.org"),
                                      "to": f"{email('a@b.example')}, {email('c@d.example')}",
                                      "at": "@handle"}


ADDRESS = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
FILES = [("hubspot", "hubspot_engagements.jsonl"), ("hubspot", "hubspot_identity.jsonl"),
         ("salesforce", "salesforce_tasks.csv"), ("salesforce", "salesforce_activities.jsonl"),
         ("salesforce", "salesforce_leads.jsonl"), ("zendesk", "zendesk_ticket_audits.jsonl"),
         ("zendesk", "zendesk_users.jsonl"), ("mentions", "mentions_listening_export.csv"),
         ("x", "x_search_responses.jsonl")]


def fixture_addresses() -> set[bytes]:
    found = {address.lower() for _, name in FILES
             for address in ADDRESS.findall((FIXTURES / name).read_bytes())}
    assert b"jo.martin@example.org" in found and b"ana@acme.example" in found
    return found


@pytest.mark.parametrize(("source", "name"), FILES, ids=[name for _, name in FILES])
def test_no_address_in_any_message_or_quarantined_record(source: str, name: str) -> None:
    """What a vendor import hands the ledger (the messages, and the bytes the quarantine would keep
    of a record) holds no email address of the fixtures, in any case."""
    addresses = fixture_addresses()
    stats = VendorStats(source)
    opened = open_source(str(FIXTURES / name))
    try:
        table = CsvTable(opened) if name.endswith(".csv") else opened
        items = list(vendor_records(table, SOURCES[source], CONFIG, stats))
    finally:
        opened.close()
    assert items
    for item in items:
        for data in (item.raw, item.payload or b""):
            assert not {a.lower() for a in ADDRESS.findall(data)} & addresses, (item.origin, data)
    # with the email bridge off, the record is kept as the vendor sent it
    off = VendorConfig.from_dict({"tenant": "acme", source: {"email_bridge": False}})
    [kept] = map_value(SOURCES[source], {"id": 1, "note": "jo.martin@example.org"}, off, "t:1",
                       b'{"id":1,"note":"jo.martin@example.org"}', VendorStats(source))[:1]
    assert b"jo.martin@example.org" in kept.raw


def test_lines_that_are_not_records_are_kept_without_their_addresses(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_bytes(b'{"users":[{"id":5001,"email":"jo.martin@example.org"\n'
                     b'{"users":[{"id":5001,"email":"jo.martin@example.org","created_at":"2025-04-30T17:02:44Z"}]}\n')
    opened = open_source(str(path))
    try:
        broken, user = list(vendor_records(opened, SOURCES["zendesk"], CONFIG, VendorStats("zendesk")))
    finally:
        opened.close()
    assert broken.problem is not None and "not valid JSON" in broken.problem
    assert broken.raw == b'{"users":[{"id":5001,"email":"' + email("jo.martin@example.org").encode() + b'"'
    assert user.payload is not None and orjson.loads(user.payload)["customer_ids"][1] == email(
        "jo.martin@example.org")
    assert b"jo.martin@" not in user.raw


@pytest.mark.parametrize(("source", "name"), FILES, ids=[name for _, name in FILES])
def test_every_link_is_a_valid_wire_message(source: str, name: str) -> None:
    """The messages the mappings make are accepted by the wire parser (SPEC §2)."""
    for value in lines_csv(name) if name.endswith(".csv") else lines(name):
        for message in links_of(mapped(source, value)):
            parsed = validate_message(message, NOW)
            assert not isinstance(parsed, Rejection), (message, parsed)
            assert type(parsed).__name__ == "LinkCustomers"


