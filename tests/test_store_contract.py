"""The ledger store's contract (SPEC §2), one suite run against memory, SQLite and real PostgreSQL.

As eventsourcing runs one recorder test case against its POPO, SQLite and
PostgreSQL recorders: whatever implements `mot.service.ports.LedgerStore` goes
through the service layer, as every entry point does: record, duplicates,
conflicts, amendments, retractions, the quarantine and its replay, the
notification log, units of work. The SQL stores are opened by `open_store(url)`;
the tests that open a second connection or process run on them alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import BACKENDS

from mot.adapters.stores.memory import MemoryLedger
from mot.bootstrap import Services, open_store
from mot.domain.events import MomentAmended, MomentRecorded, MomentRetracted
from mot.domain.identity import derived_moment_id
from mot.domain.ledger import AmbiguousMoment, Outcome
from mot.service.importing import record_stream
from mot.service.ledger import Incoming, LedgerService
from mot.service.ports import LedgerStore

MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"


@dataclass
class Ledgers:
    """What the suite uses of `Services`: the ledger's port and its use case on top."""

    ledger_store: LedgerStore
    ledger: LedgerService


@pytest.fixture(params=BACKENDS)
def services(request: pytest.FixtureRequest, make_store_url: Any) -> Iterator[Ledgers]:
    """A fresh ledger of each backend: in memory, a SQLite file, a PostgreSQL schema."""
    if request.param == "memory":
        store = MemoryLedger()
        yield Ledgers(store, LedgerService(store))
        return
    with closing(open_store(make_store_url(request.param))) as opened:
        yield Ledgers(opened.ledger_store, opened.ledger)


@pytest.fixture
def sql_services(store_url: str) -> Iterator[Services]:
    """A SQL store for the tests that look at it through a second connection too."""
    with closing(open_store(store_url)) as opened:
        yield opened


def moment(**fields: Any) -> dict[str, Any]:
    """A valid outbound `answer` with an explicit id; `fields` override (None drops a field)."""
    base: dict[str, Any] = {
        "moment_id": MID,
        "tenant": "acme",
        "customer_id": "c1",
        "occurred_at": "2026-03-01T09:00:00Z",
        "channel": "email",
        "direction": "outbound",
        "kind": "answer",
        "function": "service",
        "actor": "dana",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def amend(set_: dict[str, Any], reason: str = "typo", moment_id: str = MID) -> dict[str, Any]:
    return {"type": "amend", "moment_id": moment_id, "set": set_, "reason": reason}


def retract(reason: str = "wrong customer", moment_id: str = MID) -> dict[str, Any]:
    return {"type": "retract", "moment_id": moment_id, "reason": reason}


def incoming(message: dict[str, Any] | bytes, origin: str = "test:1") -> Incoming:
    raw = message if isinstance(message, bytes) else orjson.dumps(message)
    return Incoming(raw, origin)


def record(services: Ledgers | Services, *messages: dict[str, Any] | bytes,
           origin: str = "test:1") -> list[Outcome]:
    result = services.ledger.record([incoming(m, origin) for m in messages])
    return [v.outcome for v in result.verdicts]


def versions(services: Ledgers | Services, moment_id: str = MID) -> list[tuple[int, type]]:
    return [(e.version, type(e)) for e in services.ledger_store.stream(moment_id)]


# -- an empty store -----------------------------------------------------------------------


def test_an_empty_store_has_head_0_no_notifications_and_no_quarantine(services: Ledgers) -> None:
    store = services.ledger_store
    assert store.head() == 0
    assert store.notifications(0, 10) == []
    assert store.quarantine() == []
    assert store.quarantine_count() == 0
    assert store.stream(MID) == []
    assert store.tenants() == []


def test_opening_a_store_twice_keeps_what_it_holds(store_url: str) -> None:
    first = open_store(store_url)
    try:
        assert record(first, moment()) == [Outcome.RECORDED]
    finally:
        first.close()
    second = open_store(store_url)
    try:
        assert second.ledger_store.head() == 1
        assert versions(second) == [(1, MomentRecorded)]
    finally:
        second.close()


# -- recording and duplicates -------------------------------------------------------------


def test_a_recorded_moment_is_version_1_of_its_stream(services: Ledgers) -> None:
    assert record(services, moment(), origin="file.jsonl:7") == [Outcome.RECORDED]
    [event] = services.ledger_store.stream(MID)
    assert isinstance(event, MomentRecorded)
    assert event.moment_id == MID
    assert event.version == 1
    assert event.origin == "file.jsonl:7"
    assert event.recorded_at.endswith("Z")
    stored = event.moment
    assert stored["moment_id"] == MID
    assert stored["customer_id"] == "c1"
    assert stored["kind"] == "answer"
    assert stored["occurred_at"] == "2026-03-01T09:00:00Z"
    assert stored["reach"] == 0  # the default is applied
    assert services.ledger_store.head() == 1


def test_the_same_content_again_is_a_duplicate_and_appends_nothing(services: Ledgers) -> None:
    record(services, moment())
    head = services.ledger_store.head()
    assert record(services, moment()) == [Outcome.DUPLICATE]
    assert services.ledger_store.head() == head
    assert versions(services) == [(1, MomentRecorded)]
    assert services.ledger_store.quarantine_count() == 0


def test_same_content_is_compared_after_normalisation(services: Ledgers) -> None:
    record(services, moment())
    # Another offset for the same instant, defaults spelled out, `type: moment`, other key order.
    same = moment(occurred_at="2026-03-01T10:00:00+01:00", reach=0, type="moment")
    reordered = dict(reversed(list(same.items())))
    assert record(services, same, reordered) == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert services.ledger_store.head() == 1


def test_a_duplicate_in_the_same_batch_is_recorded_once(services: Ledgers) -> None:
    assert record(services, moment(), moment()) == [Outcome.RECORDED, Outcome.DUPLICATE]
    assert versions(services) == [(1, MomentRecorded)]


def test_a_derived_id_makes_the_same_source_record_one_moment(services: Ledgers) -> None:
    crm = moment(moment_id=None, source={"system": "hubspot", "id": "e-1"})
    assert record(services, crm, crm) == [Outcome.RECORDED, Outcome.DUPLICATE]
    moment_id = derived_moment_id("acme", "hubspot", "e-1")
    assert moment_id == str(uuid.uuid5(uuid.NAMESPACE_URL, "mot:acme:hubspot:e-1"))
    assert versions(services, moment_id) == [(1, MomentRecorded)]
    # The same source in another tenant is another moment.
    other = dict(crm, tenant="globex")
    assert record(services, other) == [Outcome.RECORDED]
    assert services.ledger_store.head() == 2
    assert services.ledger_store.tenants() == ["acme", "globex"]


def test_the_same_id_with_other_content_is_a_conflict(services: Ledgers) -> None:
    record(services, moment())
    conflicting = moment(channel="phone", sentiment=0.5)
    raw = orjson.dumps(conflicting)
    outcomes = services.ledger.record([Incoming(raw, "crm.jsonl:12")]).verdicts
    assert [v.outcome for v in outcomes] == [Outcome.QUARANTINED]
    assert services.ledger_store.head() == 1
    assert versions(services) == [(1, MomentRecorded)]
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "moment_id"
    assert MID in entry.reason
    assert "channel" in entry.reason and "sentiment" in entry.reason
    assert "actor" not in entry.reason  # only the fields that differ are named
    assert entry.raw == raw
    assert entry.origin == "crm.jsonl:12"


# -- amendments ---------------------------------------------------------------------------


def test_an_amendment_is_version_2_with_the_merged_moment(services: Ledgers) -> None:
    record(services, moment(sentiment=0.1))
    assert record(services, amend({"sentiment": 0.7, "actor": None, "kind": "help"}, "rescored"),
                  origin="fix.jsonl:1") == [Outcome.AMENDED]
    events = services.ledger_store.stream(MID)
    assert [(e.version, type(e)) for e in events] == [(1, MomentRecorded), (2, MomentAmended)]
    amended = events[1]
    assert isinstance(amended, MomentAmended)
    assert amended.set == {"sentiment": 0.7, "actor": None, "kind": "help"}
    assert amended.reason == "rescored"
    assert amended.origin == "fix.jsonl:1"
    assert amended.moment["sentiment"] == 0.7
    assert amended.moment["kind"] == "help"
    assert "actor" not in amended.moment  # null removes the field
    # Everything else is carried over from the recorded moment.
    assert amended.moment["customer_id"] == "c1"
    assert amended.moment["channel"] == "email"
    assert amended.moment["occurred_at"] == "2026-03-01T09:00:00Z"
    assert amended.moment["moment_id"] == MID


def test_the_same_amendment_again_is_a_duplicate(services: Ledgers) -> None:
    record(services, moment())
    record(services, amend({"sentiment": 0.7}))
    head = services.ledger_store.head()
    assert record(services, amend({"sentiment": 0.7})) == [Outcome.DUPLICATE]
    assert services.ledger_store.head() == head
    assert versions(services) == [(1, MomentRecorded), (2, MomentAmended)]


def test_amendments_apply_in_the_order_recorded(services: Ledgers) -> None:
    record(services, moment())
    record(services, amend({"sentiment": 0.7}, "first"))
    record(services, amend({"sentiment": -0.2}, "second"))
    events = services.ledger_store.stream(MID)
    assert [e.version for e in events] == [1, 2, 3]
    assert isinstance(events[-1], MomentAmended)
    assert events[-1].moment["sentiment"] == -0.2


def test_the_original_content_stays_a_duplicate_after_an_amendment(services: Ledgers) -> None:
    record(services, moment())
    record(services, amend({"sentiment": 0.7}))
    # "Same content" is the moment as first recorded: a re-imported file is harmless.
    assert record(services, moment()) == [Outcome.DUPLICATE]
    # The amended content sent as a moment is not what was first recorded: a conflict.
    assert record(services, moment(sentiment=0.7)) == [Outcome.QUARANTINED]
    assert services.ledger_store.head() == 2


def test_an_amendment_that_leaves_an_invalid_moment_is_quarantined(services: Ledgers) -> None:
    record(services, moment())
    assert record(services, amend({"kind": "purchase"})) == [Outcome.QUARANTINED]
    assert versions(services) == [(1, MomentRecorded)]
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "set.kind"
    assert "purchase" in entry.reason


def test_an_amendment_of_a_fixed_field_is_quarantined(services: Ledgers) -> None:
    record(services, moment())
    assert record(services, amend({"customer_id": "c2"})) == [Outcome.QUARANTINED]
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "set.customer_id"
    assert versions(services) == [(1, MomentRecorded)]


def test_a_moment_and_its_amendment_in_the_same_batch(services: Ledgers) -> None:
    outcomes = record(services, moment(), amend({"sentiment": 0.4}), amend({"sentiment": 0.4}))
    assert outcomes == [Outcome.RECORDED, Outcome.AMENDED, Outcome.DUPLICATE]
    events = services.ledger_store.stream(MID)
    assert [(e.version, type(e)) for e in events] == [(1, MomentRecorded), (2, MomentAmended)]
    assert events[1].moment["sentiment"] == 0.4  # type: ignore[union-attr]


def test_a_moment_amended_and_retracted_in_one_batch(services: Ledgers) -> None:
    outcomes = record(services, moment(), amend({"sentiment": 0.4}), retract())
    assert outcomes == [Outcome.RECORDED, Outcome.AMENDED, Outcome.RETRACTED]
    assert versions(services) == [(1, MomentRecorded), (2, MomentAmended), (3, MomentRetracted)]


# -- retractions --------------------------------------------------------------------------


def test_retract_then_retract_again_then_amend(services: Ledgers) -> None:
    record(services, moment())
    record(services, amend({"sentiment": 0.7}))
    assert record(services, retract("logged twice"), origin="ops:1") == [Outcome.RETRACTED]
    events = services.ledger_store.stream(MID)
    assert [(e.version, type(e)) for e in events] == [
        (1, MomentRecorded), (2, MomentAmended), (3, MomentRetracted),
    ]
    retracted = events[2]
    assert isinstance(retracted, MomentRetracted)
    assert (retracted.reason, retracted.tenant, retracted.customer_id, retracted.origin) == (
        "logged twice", "acme", "c1", "ops:1",
    )
    head = services.ledger_store.head()
    assert record(services, retract("logged twice")) == [Outcome.DUPLICATE]
    assert services.ledger_store.head() == head
    assert services.ledger_store.quarantine_count() == 0
    assert record(services, amend({"sentiment": -0.1})) == [Outcome.QUARANTINED]
    assert services.ledger_store.head() == head
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "moment_id"
    assert "retracted" in entry.reason
    # The original moment sent again is still a duplicate, not a resurrection.
    assert record(services, moment()) == [Outcome.DUPLICATE]
    assert services.ledger_store.head() == head


# -- corrections of unknown moments, and replay ---------------------------------------------


@pytest.mark.parametrize("correction", ["amend", "retract"])
def test_a_correction_of_an_unknown_moment_waits_in_the_quarantine(
    services: Ledgers, correction: str
) -> None:
    message = amend({"sentiment": 0.5}) if correction == "amend" else retract()
    assert record(services, message, origin="early.jsonl:3") == [Outcome.QUARANTINED]
    assert services.ledger_store.head() == 0
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "moment_id"
    assert MID in entry.reason
    assert entry.origin == "early.jsonl:3"

    # Replayed while the moment is still unknown: it stays, counted once.
    summary = services.ledger.replay_quarantine()
    assert summary.quarantined == 1
    assert services.ledger_store.quarantine_count() == 1
    assert services.ledger_store.head() == 0

    # SPEC §2: recording the moment applies what waits for it, in the same transaction,
    # and it leaves the quarantine: no replay needed.
    assert record(services, moment()) == [Outcome.RECORDED]
    assert services.ledger_store.quarantine_count() == 0
    expected = MomentAmended if correction == "amend" else MomentRetracted
    assert versions(services) == [(1, MomentRecorded), (2, expected)]
    assert services.ledger_store.stream(MID)[1].origin == "early.jsonl:3"
    assert services.ledger.replay_quarantine().read == 0


def test_replay_takes_a_moment_and_its_amendment_in_either_order(services: Ledgers) -> None:
    # The amendment is quarantined first (unknown moment), then the moment (a bad field).
    record(services, amend({"sentiment": 0.5}), origin="a:1")
    record(services, moment(sentiment=3), origin="a:2")
    assert services.ledger_store.quarantine_count() == 2
    first, second = services.ledger_store.quarantine()
    services.ledger_store.set_quarantined_payload(second.id, orjson.dumps(moment(sentiment=0.1)))
    summary = services.ledger.replay_quarantine()
    assert (summary.recorded, summary.amended) == (1, 1)
    assert services.ledger_store.quarantine_count() == 0
    events = services.ledger_store.stream(MID)
    assert [e.version for e in events] == [1, 2]
    assert events[1].moment["sentiment"] == 0.5  # type: ignore[union-attr]
    assert first.raw == orjson.dumps(amend({"sentiment": 0.5}))


def test_replay_of_chosen_ids_leaves_the_others(services: Ledgers) -> None:
    other = "0b7e6c1d-2f3a-4b5c-9d8e-7f6a5b4c3d2e"
    record(services, moment(sentiment=3), moment(moment_id=other, sentiment=3))
    mine, theirs = services.ledger_store.quarantine()
    for entry, moment_id in ((mine, MID), (theirs, other)):
        services.ledger_store.set_quarantined_payload(
            entry.id, orjson.dumps(moment(moment_id=moment_id)))
    services.ledger.replay_quarantine([mine.id])
    assert [e.id for e in services.ledger_store.quarantine()] == [theirs.id]
    assert versions(services) == [(1, MomentRecorded)]
    assert versions(services, other) == []


def test_drop_removes_quarantined_messages(services: Ledgers) -> None:
    record(services, b"not json", b"{}", b"[1]")
    entries = services.ledger_store.quarantine()
    assert len(entries) == 3
    assert services.ledger_store.drop_quarantined([entries[0].id, entries[2].id, 10**9]) == 2
    assert [e.id for e in services.ledger_store.quarantine()] == [entries[1].id]
    assert services.ledger_store.quarantine(limit=1) == services.ledger_store.quarantine()


# -- the quarantine ---------------------------------------------------------------------------


def test_the_quarantine_keeps_raw_bytes_origin_field_and_reason(services: Ledgers) -> None:
    bad = [
        b"{not json",
        b'\xff\xfe{"binary": true}',
        orjson.dumps(moment(custmer_id="x")),
        orjson.dumps(moment(sentiment=1.7)),
    ]
    outcomes = services.ledger.record(
        [Incoming(raw, f"bad.jsonl:{n}") for n, raw in enumerate(bad, start=1)]
    )
    assert [v.outcome for v in outcomes.verdicts] == [Outcome.QUARANTINED] * 4
    entries = services.ledger_store.quarantine()
    assert [e.raw for e in entries] == bad
    assert [e.origin for e in entries] == [f"bad.jsonl:{n}" for n in range(1, 5)]
    assert [e.repeats for e in entries] == [1, 1, 1, 1]
    assert entries[0].field == ""
    assert "JSON" in entries[0].reason
    assert entries[2].field == "custmer_id"
    assert entries[3].field == "sentiment"
    for entry in entries:
        assert entry.reason
        assert entry.first_seen.endswith("Z") and entry.last_seen.endswith("Z")
        assert entry.payload is None
        assert entry.message == entry.raw
    assert services.ledger_store.head() == 0


def test_the_same_bad_bytes_twice_are_one_row_with_2_repeats(services: Ledgers) -> None:
    raw = b'{"tenant": "acme"'
    services.ledger.record([Incoming(raw, "first.jsonl:1")])
    services.ledger.record([Incoming(raw, "second.jsonl:9")])
    [entry] = services.ledger_store.quarantine()
    assert entry.repeats == 2
    assert entry.raw == raw
    assert entry.origin == "first.jsonl:1"
    assert entry.last_origin == "second.jsonl:9"
    assert services.ledger_store.quarantine_count() == 1


def test_bytes_two_readers_could_not_map_keep_each_readers_reason_once(
        services: Ledgers) -> None:
    """The same bytes no source could read (field ''), through two sources: the entry tells
    both reasons, the first source's first, each once however often it comes again."""
    raw = b'{"nothing": "here"}'
    for origin, problem in (("webhook:x:1", "x: no tweet"), ("webhook:mentions:2", "mentions: no id"),
                            ("webhook:x:3", "x: no tweet"), ("webhook:mentions:4", "mentions: no id")):
        services.ledger.record([Incoming(raw, origin, problem=problem)])
    [entry] = services.ledger_store.quarantine()
    assert (entry.field, entry.reason) == ("", "x: no tweet; mentions: no id")
    assert (entry.origin, entry.last_origin, entry.repeats) == ("webhook:x:1", "webhook:mentions:4", 4)


def test_the_same_bad_bytes_twice_in_one_batch_are_one_row(services: Ledgers) -> None:
    raw = b"garbage"
    services.ledger.record([Incoming(raw, "f:1"), Incoming(raw, "f:2")])
    [entry] = services.ledger_store.quarantine()
    assert entry.repeats == 2
    assert (entry.origin, entry.last_origin) == ("f:1", "f:2")


def test_a_source_that_could_not_map_a_record_quarantines_it(services: Ledgers) -> None:
    item = Incoming(b"a,b,c", "in.csv:4", problem="CSV row has 3 cells, the header has 9")
    payload_item = Incoming(b"x,y", "in.csv:5", payload=orjson.dumps(moment(sentiment=9)))
    verdicts = services.ledger.record([item, payload_item]).verdicts
    assert [v.outcome for v in verdicts] == [Outcome.QUARANTINED, Outcome.QUARANTINED]
    first, second = services.ledger_store.quarantine()
    assert (first.raw, first.origin) == (b"a,b,c", "in.csv:4")
    assert "3 cells" in first.reason
    assert second.raw == b"x,y"
    assert second.payload == orjson.dumps(moment(sentiment=9))
    assert second.field == "sentiment"


def test_the_quarantine_is_listed_by_field_and_reason_and_summed_by_rejection(
    services: Ledgers,
) -> None:
    record(services, moment(channel="fax", kind="purchase"), moment(sentiment=3),
           moment(moment_id=None, customer_id=None), moment(sentiment=3, customer_id="c2"))
    store = services.ledger_store
    entries = store.quarantine()
    assert len(entries) == 4
    first, second, third, fourth = entries
    # A message rejected for several fields is found under each of them.
    assert first.field == "channel" and "kind: " in first.reason
    assert [e.id for e in store.quarantine(field="kind")] == [first.id]
    assert [e.id for e in store.quarantine(field="sentiment")] == [second.id, fourth.id]
    assert [e.id for e in store.quarantine(field="sentiment", limit=1)] == [second.id]
    assert store.quarantine(field="sent") == []
    assert [e.id for e in store.quarantine(field="moment_id")] == [third.id]
    assert [e.id for e in store.quarantine(reason=third.reason[:12].upper())] == [third.id]
    assert store.quarantine(field="channel", reason="no such words") == []
    reasons = store.quarantine_reasons()
    assert [(f, n, example) for f, _, n, example in reasons] == [
        ("channel", 1, first.id), ("sentiment", 2, second.id), ("customer_id", 1, third.id),
    ]
    assert sum(n for _, _, n, _ in reasons) == 4


def test_a_fix_the_ledger_still_refuses_is_kept_and_merges_with_its_twin(
    services: Ledgers,
) -> None:
    early = amend({"sentiment": 0.5})
    record(services, early, origin="a:1")  # waits: the moment is unknown
    record(services, b"{broken", origin="a:2")
    waiting, broken = services.ledger_store.quarantine()
    # The broken line fixed into the same amendment: still refused, and now one message.
    fix = services.ledger.fix_quarantined(broken.id, orjson.dumps(early))
    assert fix.kept_as == waiting.id
    [entry] = services.ledger_store.quarantine()
    assert (entry.id, entry.repeats, entry.field) == (waiting.id, 2, "moment_id")
    # A fix of a lone entry keeps its payload as what it replays.
    other = amend({"sentiment": 0.9}, moment_id="0b7e6c1d-2f3a-4b5c-9d8e-7f6a5b4c3d2e")
    fix = services.ledger.fix_quarantined(entry.id, orjson.dumps(other))
    assert fix.kept_as == entry.id
    [entry] = services.ledger_store.quarantine()
    assert entry.payload == orjson.dumps(other)
    assert entry.raw == orjson.dumps(early)


def test_a_moment_id_without_tenant_names_the_one_tenant_that_has_it(services: Ledgers) -> None:
    record(services, moment())
    assert versions(services) == [(1, MomentRecorded)]
    assert services.ledger_store.stream(MID, "globex") == []
    record(services, moment(tenant="globex"))
    assert [e.tenant for e in services.ledger_store.stream(MID, "globex")] == ["globex"]
    with pytest.raises(AmbiguousMoment):
        services.ledger_store.stream(MID)


# -- the notification log ---------------------------------------------------------------------


def test_notifications_come_back_in_order_with_increasing_positions(services: Ledgers) -> None:
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(5)]
    record(services, *(moment(moment_id=i, customer_id=f"c{n}") for n, i in enumerate(ids)))
    record(services, amend({"sentiment": 0.3}, moment_id=ids[2]))
    record(services, retract(moment_id=ids[0]))
    notes = services.ledger_store.notifications(0, 100)
    positions = [p for p, _ in notes]
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions) == 7
    assert positions[-1] == services.ledger_store.head()
    got = [(e.moment_id, e.version, type(e)) for _, e in notes]
    assert got == [
        *((i, 1, MomentRecorded) for i in ids),
        (ids[2], 2, MomentAmended),
        (ids[0], 2, MomentRetracted),
    ]
    # Paging: `after` is exclusive, `limit` bounds the page.
    page = services.ledger_store.notifications(positions[1], 3)
    assert [p for p, _ in page] == positions[2:5]
    assert services.ledger_store.notifications(positions[-1], 10) == []


def test_a_rejected_batch_member_does_not_block_the_rest(services: Ledgers) -> None:
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(3)]
    outcomes = record(services, moment(moment_id=ids[0]), b"{oops", moment(moment_id=ids[1]),
                      amend({"kind": "gift"}, moment_id=ids[2]), moment(moment_id=ids[2]))
    # The amendment before its moment waits, and goes in right after it (SPEC §2).
    assert outcomes == [Outcome.RECORDED, Outcome.QUARANTINED, Outcome.RECORDED,
                        Outcome.AMENDED, Outcome.RECORDED]
    assert services.ledger_store.head() == 4
    assert services.ledger_store.quarantine_count() == 1


# -- units of work: several batches, one commit --------------------------------------------


def test_batches_in_one_unit_of_work_commit_together(sql_services: Services, store_url: str) -> None:
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(4)]
    with sql_services.ledger_store.transaction():
        record(sql_services, moment(moment_id=ids[0]), moment(moment_id=ids[1]))
        # A later batch of the same unit sees the earlier one: an amendment goes in,
        # the same moment again is a duplicate.
        assert record(sql_services, amend({"sentiment": 0.5}, moment_id=ids[0]),
                      moment(moment_id=ids[1])) == [Outcome.AMENDED, Outcome.DUPLICATE]
        record(sql_services, moment(moment_id=ids[2]), b"{oops")
        with closing(open_store(store_url)) as other:  # another connection sees nothing yet
            assert other.ledger_store.head() == 0
            assert other.ledger_store.quarantine_count() == 0
    assert len(sql_services.ledger_store.notifications(0, 100)) == 4
    assert sql_services.ledger_store.quarantine_count() == 1


def test_an_error_in_a_unit_of_work_rolls_back_every_batch_of_it(services: Ledgers) -> None:
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(2)]
    with pytest.raises(RuntimeError), services.ledger_store.transaction():
        record(services, moment(moment_id=ids[0]), b"{oops")
        record(services, moment(moment_id=ids[1]))
        raise RuntimeError("the process dies here")
    assert services.ledger_store.head() == 0
    assert services.ledger_store.quarantine_count() == 0
    assert record(services, moment(moment_id=ids[0])) == [Outcome.RECORDED]


def test_record_stream_commits_every_n_messages(sql_services: Services, store_url: str) -> None:
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(10)]
    items = [incoming(moment(moment_id=i, customer_id=f"c{n}")) for n, i in enumerate(ids)]
    heads: list[int] = []

    def seen_by_another_connection(summary: Any) -> None:
        with closing(open_store(store_url)) as other:
            heads.append(other.ledger_store.head() and len(other.ledger_store.notifications(0, 99)))

    summary = record_stream(sql_services.ledger, items, batch_size=2, commit_every=4,
                                            progress=seen_by_another_connection)
    assert summary.recorded == 10
    # Progress after each batch of 2: a commit once 4 are in, and at the end.
    assert heads == [0, 4, 4, 8, 8]
    assert sql_services.ledger_store.head() > 0
    assert len(sql_services.ledger_store.notifications(0, 99)) == 10


def test_the_cli_defaults_are_the_services() -> None:
    from mot.cli.ledger_commands import import_
    from mot.service.ledger import DEFAULT_BATCH, DEFAULT_COMMIT

    defaults = {p.name: p.default for p in import_.params}
    assert (defaults["batch_size"], defaults["commit_every"]) == (DEFAULT_BATCH, DEFAULT_COMMIT)


# -- the golden fixture through the service ------------------------------------------------


def golden_items(path: Path) -> list[Incoming]:
    lines = path.read_bytes().splitlines()
    return [Incoming(line, f"{path.name}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


def test_the_golden_fixture_records_and_reimports_as_duplicates(
    services: Ledgers, golden_path: Path
) -> None:
    items = golden_items(golden_path)
    assert len(items) == 36
    summary = record_stream(services.ledger, items, batch_size=7)
    counts = summary.as_dict()
    assert {k: counts[k] for k in ("read", "recorded", "amended", "retracted", "duplicates",
                                   "quarantined")} == {
        "read": 36, "recorded": 33, "amended": 1, "retracted": 1, "duplicates": 1,
        "quarantined": 0,
    }
    head = services.ledger_store.head()
    assert head == 35
    assert services.ledger_store.quarantine_count() == 0

    again = record_stream(services.ledger, golden_items(golden_path))
    assert (again.read, again.duplicates, again.recorded, again.amended, again.retracted,
            again.quarantined) == (36, 36, 0, 0, 0, 0)
    assert services.ledger_store.head() == head
    events = [e for _, e in services.ledger_store.notifications(0, 1000)]
    assert len(events) == 35
    assert len({e.moment_id for e in events}) == 33
    assert sum(isinstance(e, MomentAmended) for e in events) == 1
    assert sum(isinstance(e, MomentRetracted) for e in events) == 1


# -- regressions ---------------------------------------------------------------------------


def test_reimporting_amend_then_retract_is_all_duplicates(services: Ledgers) -> None:
    batch = (moment(), amend({"sentiment": 0.5}), retract())
    assert record(services, *batch) == [Outcome.RECORDED, Outcome.AMENDED, Outcome.RETRACTED]
    head = services.ledger_store.head()
    assert record(services, *batch) == [Outcome.DUPLICATE] * 3
    assert services.ledger_store.head() == head
    assert services.ledger_store.quarantine_count() == 0


def test_a_new_amendment_of_a_retracted_moment_is_still_refused(services: Ledgers) -> None:
    record(services, moment(), retract())
    assert record(services, amend({"sentiment": 0.1})) == [Outcome.QUARANTINED]


def test_processes_opening_one_store_at_once_take_turns(store_url: str) -> None:
    import subprocess
    import sys

    # An import of nothing: the first command of a new store, which creates it.
    procs = [subprocess.Popen([sys.executable, "-m", "mot", "--store", store_url, "import", "-q", "-"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate()[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors


def test_an_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store("mysql://host/db")


def test_a_writer_waiting_for_another_ones_lock_is_called_back_then_writes(store_url: str) -> None:
    """While another connection holds the ledger's writer lock, a unit of work given `waiting`
    calls it every fraction of a second until the lock is free (`mot kafka ingest` polls its
    consumer group so: SQLite's lock is not fair, and a member waited 8.4 s for another's
    back-to-back transactions, past its max poll interval), then records as usual."""
    with closing(open_store(store_url)) as holder, closing(open_store(store_url)) as waiter:
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with holder.ledger_store.transaction():
                held.set()
                release.wait(30)

        thread = threading.Thread(target=hold)
        thread.start()
        assert held.wait(30)
        calls: list[float] = []

        def waiting() -> None:
            calls.append(time.monotonic())
            if len(calls) == 4:
                release.set()

        started = time.monotonic()
        try:
            with waiter.ledger_store.transaction(waiting):
                outcomes = waiter.ledger.record([Incoming(orjson.dumps(moment()), "test:1")])
        finally:
            release.set()
            thread.join(30)
        assert len(calls) >= 4
        gaps = [b - a for a, b in zip([started, *calls], calls, strict=False)]
        assert max(gaps) < 1.0, gaps
        assert [v.outcome for v in outcomes.verdicts] == [Outcome.RECORDED]
        assert len(waiter.ledger_store.notifications(0, 10)) == 1
