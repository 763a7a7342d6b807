"""Links and unlinks in the ledger (SPEC §2, "Links"), on SQLite, PostgreSQL and in memory.

The wire format of `link`/`unlink` (each rule named by the field it breaks), one
stream per pair, duplicates (same type, pair and `occurred_at`, whatever the
reason), the events in the notification log, and the persons fixture imported
with nothing quarantined.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_support import mot
from conftest import BACKENDS
from http_support import api

from mot.adapters.stores.codec import from_stored, to_row
from mot.adapters.stores.memory import MemoryLedger
from mot.bootstrap import Services, open_store
from mot.domain.events import CustomersLinked, CustomersUnlinked, MomentAmended, MomentRecorded
from mot.domain.ledger import Outcome
from mot.domain.links import link_stream_id
from mot.domain.messages import LinkCustomers, Rejection, parse_message
from mot.service.importing import record_stream
from mot.service.ledger import Incoming, LedgerService
from mot.service.ports import LedgerStore
from mot.service.queries import Query
from mot.service.streaming import wire_message

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
PERSONS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "persons.jsonl"


def link(a: str = "zendesk:m1", b: str = "x:maria", **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "link", "tenant": "acme", "customer_ids": [a, b],
                               "occurred_at": "2026-04-01T14:00:00+02:00",
                               "reason": "handle in the ticket"}
    message.update(fields)
    return {k: v for k, v in message.items() if v is not None}


def parsed(message: dict[str, Any] | bytes, now: datetime = NOW) -> LinkCustomers | Rejection:
    result = parse_message(message if isinstance(message, bytes) else orjson.dumps(message), now)
    assert isinstance(result, LinkCustomers | Rejection)
    return result


def reason(message: dict[str, Any]) -> str:
    result = parsed(message)
    assert isinstance(result, Rejection), result
    return result.reason


# -- the wire format -----------------------------------------------------------------------


def test_a_link_is_one_pair_in_code_point_order_at_a_utc_time() -> None:
    message = parsed(link())
    assert isinstance(message, LinkCustomers)
    assert message.type == "link"
    assert message.customer_ids == ("x:maria", "zendesk:m1")
    assert message.occurred_at == "2026-04-01T12:00:00Z"
    assert message.link_id == link_stream_id("acme", "zendesk:m1", "x:maria")
    assert message.reason == "handle in the ticket"
    swapped = parsed(link("x:maria", "zendesk:m1"))
    assert isinstance(swapped, LinkCustomers) and swapped.link_id == message.link_id


def test_a_link_defaults_its_tenant_and_its_time() -> None:
    message = parsed(link(tenant=None, occurred_at=None, type="unlink"))
    assert isinstance(message, LinkCustomers)
    assert (message.type, message.tenant, message.occurred_at) == (
        "unlink", "default", "2026-04-10T12:00:00Z")


def test_occurred_at_is_kept_to_the_microsecond() -> None:
    message = parsed(link(occurred_at="2026-04-01T10:00:00.1234567-01:30"))
    assert isinstance(message, LinkCustomers)
    assert message.occurred_at == "2026-04-01T11:30:00.123456Z"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"customer_ids": ["x:maria", "x:maria"]},
     "customer_ids: expected two different customer ids, got 'x:maria' twice"),
    ({"customer_ids": ["x:maria"]},
     'customer_ids: expected a list of two customer ids, got ["x:maria"]'),
    ({"customer_ids": ["a", "b", "c"]}, "customer_ids: expected a list of two customer ids"),
    ({"customer_ids": ["", "b"]}, "customer_ids.0: expected at least 1 character"),
    ({"customer_ids": ["a", "b" * 257]}, "customer_ids.1: expected at most 256 characters"),
    ({"customer_ids": "a,b"}, "customer_ids: expected a list of two customer ids, got 'a,b'"),
    ({"customer_ids": None}, "customer_ids: required field is missing"),
    ({"occurred_at": "2026-04-01T10:00:00"},
     "occurred_at: expected an RFC 3339 timestamp with an offset"),
    ({"occurred_at": "2026-04-11T12:00:01Z"},
     "occurred_at: 2026-04-11T12:00:01Z is more than 24 h after the time of recording"),
    ({"reason": None}, "reason: required field is missing"),
    ({"reason": 5}, "reason: expected a valid string"),
    ({"tenant": ""}, "tenant: expected at least 1 character"),
    ({"customer_id": "x:maria"}, "customer_id: unknown field"),
    ({"moment_id": "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"}, "moment_id: unknown field"),
])
def test_a_bad_link_is_rejected_naming_the_field(fields: dict[str, Any], expected: str) -> None:
    assert reason(link(**fields)).startswith(expected)


def test_an_unknown_type_names_every_type() -> None:
    assert reason(link(type="lnk")) == (
        "type: expected 'moment', 'amend', 'retract', 'link' or 'unlink', got 'lnk' "
        "(did you mean 'link'?)")


def test_the_codec_and_the_wire_message_give_back_the_link() -> None:
    event = CustomersUnlinked("5d3c", 3, "acme", ("a", "b"), "2026-04-01T12:00:00.5Z", "typo",
                              "2026-04-10T12:00:00Z", "f.jsonl:3")
    _, version, topic, state = to_row(event, "5d3c")
    assert from_stored(version, topic, state) == event
    assert topic == "mot.domain.events:CustomersUnlinked"
    assert wire_message(event) == {"type": "unlink", "tenant": "acme", "customer_ids": ["a", "b"],
                                   "occurred_at": "2026-04-01T12:00:00.5Z", "reason": "typo"}


# -- recording, on every store ---------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, make_store_url: Any
           ) -> Iterator[tuple[LedgerService, LedgerStore]]:
    """The ledger service over SQLite, PostgreSQL or MemoryLedger."""
    if request.param == "memory":
        store = MemoryLedger()
        yield LedgerService(store, clock=lambda: NOW), store
        return
    with closing(open_store(make_store_url(request.param))) as services:
        yield LedgerService(services.ledger_store, clock=lambda: NOW), services.ledger_store


def record(ledger: tuple[LedgerService, LedgerStore], *messages: dict[str, Any],
           origin: str = "test:1") -> list[Outcome]:
    result = ledger[0].record([Incoming(orjson.dumps(m), origin) for m in messages])
    return [v.outcome for v in result.verdicts]


def link_events(store: LedgerStore) -> list[Any]:
    return [e for _, e in store.notifications(0, 1000)
            if isinstance(e, CustomersLinked | CustomersUnlinked)]


def test_a_pair_is_one_stream_and_the_same_message_again_is_a_duplicate(
    ledger: tuple[LedgerService, LedgerStore],
) -> None:
    store = ledger[1]
    assert record(ledger, link(), origin="f:1") == [Outcome.LINKED]
    # The same type, pair and time: a duplicate, whatever the reason or the ids' order.
    assert record(ledger, link(reason="again"), link("x:maria", "zendesk:m1"),
                  link(occurred_at="2026-04-01T12:00:00Z")) == [Outcome.DUPLICATE] * 3
    # Another time, or an unlink at the same time: new versions of the pair's stream.
    assert record(ledger, link(occurred_at="2026-04-02T12:00:00Z", reason="seen again"),
                  link(type="unlink", reason="wrong"), origin="f:2") == [
        Outcome.LINKED, Outcome.UNLINKED]
    assert record(ledger, link(type="unlink", reason="wrong again")) == [Outcome.DUPLICATE]
    events = link_events(store)
    pair = link_stream_id("acme", "x:maria", "zendesk:m1")
    assert [(type(e), e.version, e.link_id, e.occurred_at, e.reason, e.origin) for e in events] == [
        (CustomersLinked, 1, pair, "2026-04-01T12:00:00Z", "handle in the ticket", "f:1"),
        (CustomersLinked, 2, pair, "2026-04-02T12:00:00Z", "seen again", "f:2"),
        (CustomersUnlinked, 3, pair, "2026-04-01T12:00:00Z", "wrong", "f:2"),
    ]
    assert all(e.customer_ids == ("x:maria", "zendesk:m1") and e.tenant == "acme"
               and e.recorded_at == "2026-04-10T12:00:00Z" for e in events)
    assert store.quarantine_count() == 0


def test_pairs_of_two_tenants_are_two_streams(ledger: tuple[LedgerService, LedgerStore]) -> None:
    assert record(ledger, link(), link(tenant="globex")) == [Outcome.LINKED, Outcome.LINKED]
    assert [(e.tenant, e.version, e.link_id) for e in link_events(ledger[1])] == [
        ("acme", 1, link_stream_id("acme", "x:maria", "zendesk:m1")),
        ("globex", 1, link_stream_id("globex", "x:maria", "zendesk:m1")),
    ]


def test_the_link_events_read_in_parts_by_position_are_the_whole_once(
    ledger: tuple[LedgerService, LedgerStore],
) -> None:
    # A rebuild's fold workers each read a part of them (position modulo their number).
    store = ledger[1]
    record(ledger, *(link("x:maria", f"zendesk:m{i}", occurred_at=f"2026-04-0{1 + i % 3}T12:00:00Z")
                     for i in range(7)), link(type="unlink"), link(tenant="globex"))
    head = store.head()
    whole = store.link_events_upto(head)
    assert len(whole) == 9
    for parts in (1, 2, 3, 4):
        read = [e for i in range(parts) for e in store.link_events_upto(head, (i, parts))]
        assert sorted(read, key=repr) == sorted(whole, key=repr)
    assert store.link_events_upto(head - 1) == whole[:-1]
    assert [e.tenant for e in store.link_events_upto(head, (0, head))] == ["globex"]


def test_a_bad_link_goes_to_the_quarantine_naming_the_field(
    ledger: tuple[LedgerService, LedgerStore],
) -> None:
    assert record(ledger, link(customer_ids=["a", "a"]), origin="links.jsonl:4") == [
        Outcome.QUARANTINED]
    [entry] = ledger[1].quarantine()
    assert (entry.field, entry.origin) == ("customer_ids", "links.jsonl:4")
    assert entry.raw == orjson.dumps(link(customer_ids=["a", "a"]))


def test_links_and_moments_interleave_in_the_log(services: Services) -> None:
    moment = {"moment_id": "6f1c9e2a-3b4d-4c5e-8f70-123456789abc", "tenant": "acme",
              "customer_id": "x:maria", "occurred_at": "2026-04-01T10:00:00Z",
              "channel": "twitter", "direction": "public", "kind": "post"}
    summary = record_stream(services.ledger, [
        Incoming(orjson.dumps(m), f"f:{n}")
        for n, m in enumerate([link(), moment, link(type="unlink"), link(reason="dup")], 1)])
    counts = summary.as_dict()
    assert {k: counts[k] for k in ("read", "recorded", "linked", "unlinked", "duplicates",
                                   "quarantined")} == {
        "read": 4, "recorded": 1, "linked": 1, "unlinked": 1, "duplicates": 1, "quarantined": 0}
    log = services.ledger_store.notifications(0, 10)
    assert [type(e) for _, e in log] == [CustomersLinked, MomentRecorded, CustomersUnlinked]
    assert [p for p, _ in log] == sorted(p for p, _ in log)
    # A rebuild loads moments only: the links' events are not moments.
    services.projections.replay()
    [row] = services.queries.run(Query("relationships"))
    assert row["customer_id"] == "x:maria"


def test_the_persons_fixture_imports_with_nothing_quarantined(services: Services) -> None:
    lines = [line for line in PERSONS.read_bytes().splitlines() if line.strip()]
    summary = record_stream(services.ledger, [Incoming(line, f"persons.jsonl:{n}")
                                              for n, line in enumerate(lines, 1)])
    assert (summary.read, summary.quarantined) == (len(lines), 0)
    messages = [json.loads(line) for line in lines]
    links = [m for m in messages if m.get("type") in ("link", "unlink")]
    assert summary.linked + summary.unlinked + summary.duplicates == len(links)
    assert services.ledger_store.quarantine_count() == 0
    # Its amendment arrives before its moment: it waited and went in right after it.
    [amendment] = [m for m in messages if m.get("type") == "amend"]
    events = services.ledger_store.stream(amendment["moment_id"])
    assert [type(e) for e in events] == [MomentRecorded, MomentAmended]
    assert events[1].moment["sentiment"] == amendment["set"]["sentiment"]  # type: ignore[union-attr]
    # Imported again: every message is a duplicate.
    again = record_stream(services.ledger, [Incoming(line, "again") for line in lines])
    assert again.duplicates == len(lines)


# -- the command line ------------------------------------------------------------------------


ACME_MOMENT = {"tenant": "acme", "customer_id": "c-1", "occurred_at": "2026-03-01T09:00:00Z",
               "channel": "email", "direction": "inbound", "kind": "question",
               "function": "service", "source": {"system": "zendesk", "id": "ZD-1"}}


def test_mot_identity_link_and_unlink(store_url: str) -> None:
    mot(store_url, "import", "-q", "-", input=orjson.dumps(ACME_MOMENT) + b"\n")
    out = mot(store_url, "identity", "link", "--tenant", "acme", "zendesk:m1", "x:maria",
              "--reason", "handle in the ticket", "--at", "2026-04-01T14:00:00+02:00").stdout
    assert out == "linked x:maria and zendesk:m1 (tenant acme, as of 2026-04-01T12:00:00Z)\n"
    again = mot(store_url, "identity", "link", "--tenant", "acme", "x:maria", "zendesk:m1",
                "--reason", "seen again", "--at", "2026-04-01T12:00:00Z").stdout
    assert again.startswith("duplicate: x:maria and zendesk:m1 (tenant acme")
    out = mot(store_url, "identity", "unlink", "--tenant", "acme", "x:maria", "zendesk:m1",
              "--reason", "typo").stdout
    assert out.startswith("unlinked x:maria and zendesk:m1 (tenant acme, as of 20")
    # Bad input is refused naming the field; nothing is recorded or quarantined.
    for args, field in ((["x:ben", "x:ben"], "customer_ids"),
                        (["x:ben", "x:maria", "--at", "2026-04-01"], "occurred_at"),
                        (["x:ben", "x:maria", "--tenant", ""], "tenant")):
        bad = mot(store_url, "identity", "link", *args, "--reason", "r", ok=False)
        assert bad.exit_code == 1 and f"Error: not recorded: {field}: " in bad.stderr
    with closing(open_store(store_url)) as services:
        events = link_events(services.ledger_store)
        assert [(type(e), e.version, e.origin) for e in events] == [
            (CustomersLinked, 1, "cli:identity link"), (CustomersUnlinked, 2, "cli:identity unlink")]
        assert services.ledger_store.quarantine_count() == 0


def test_mot_identity_link_refuses_a_tenant_the_store_does_not_know_unless_said(
        store_url: str) -> None:
    """`mot identity link --tenant acm ...` (acme misspelt) said "linked" and recorded the
    pair in a new tenant acm, where none of the customers' moments is. Refused now, naming
    the known tenants, nothing recorded; `--new-tenant` links before a tenant's first moment
    (SPEC §2), as `mot erase --new-tenant` suppresses before it."""
    mot(store_url, "import", "-q", "-", input=orjson.dumps(ACME_MOMENT) + b"\n")
    for verb in ("link", "unlink"):
        refused = mot(store_url, "identity", verb, "--tenant", "acm", "zendesk:m1", "x:maria",
                      "--reason", "r", ok=False)
        assert refused.exit_code == 1
        assert refused.stderr == (
            "Error: no tenant 'acm' in this store (tenants: acme); nothing recorded"
            " (--new-tenant: link ids of a tenant that has recorded no moment yet)\n")
    left_out = mot(store_url, "identity", "link", "zendesk:m1", "x:maria", "--reason", "r",
                   ok=False)
    assert left_out.stderr.startswith("Error: no tenant 'default' in this store (tenants: acme)"
                                      " (the default: --tenant was not given); nothing recorded")
    with closing(open_store(store_url)) as services:
        assert link_events(services.ledger_store) == []
        assert services.ledger_store.quarantine_count() == 0
    out = mot(store_url, "identity", "link", "--tenant", "globex", "zendesk:m1", "x:maria",
              "--reason", "before its first moment", "--at", "2026-04-01T12:00:00Z",
              "--new-tenant").stdout
    assert out == "linked x:maria and zendesk:m1 (tenant globex, as of 2026-04-01T12:00:00Z)\n"
    with closing(open_store(store_url)) as services:
        [event] = link_events(services.ledger_store)
        assert (type(event), event.tenant, event.customer_ids) == (
            CustomersLinked, "globex", ("x:maria", "zendesk:m1"))


# -- HTTP: a token links only its own tenant's ids ---------------------------------------------


def test_a_token_links_only_its_own_tenants_ids(store_url: str) -> None:
    with api(store_url) as client:
        answer = client.post("acme", [link(tenant=None), link(tenant="acme", type="unlink"),
                                      link(tenant="globex"), link(customer_ids=["a", "a"]),
                                      link(tenant=None, reason="again")])
        assert answer.status_code == 200
        body = answer.json()
        assert [(i["outcome"], i["field"]) for i in body["items"]] == [
            ("linked", None), ("unlinked", None), ("rejected", "tenant"),
            ("quarantined", "customer_ids"), ("duplicate", None)]
        assert body["counts"] == {"linked": 1, "unlinked": 1, "rejected": 1, "quarantined": 1,
                                  "duplicate": 1}
        assert "this token writes only tenant 'acme'" in body["items"][2]["reason"]
        events = link_events(client.services.ledger_store)
        assert [(e.tenant, e.origin.startswith("http:")) for e in events] == [("acme", True)] * 2
        # The same pair for globex, through globex's token, is globex's own stream.
        assert client.post("globex", [link()]).json()["items"][0]["outcome"] == "rejected"
        assert client.post("globex", [link(tenant=None)]).json()["counts"] == {"linked": 1}
        assert [e.tenant for e in link_events(client.services.ledger_store)] == [
            "acme", "acme", "globex"]


def test_the_documented_links_are_valid() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "importing.md").read_text()
    lines = re.findall(r'(?m)^(\{"type": "(?:link|unlink)".*\})$', text)
    assert len(lines) == 2
    assert [type(parsed(line.encode())) for line in lines] == [LinkCustomers, LinkCustomers]
