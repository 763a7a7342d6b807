"""Corrections that overtake their moment (SPEC §2, "Corrections").

An amend or retract rejected only because its moment is not recorded waits in
the quarantine and applies on its own, once, when the moment is recorded: in
the same transaction, several in the order they arrived, before any later
correction, whatever brings the moment (a file, Kafka, HTTP, a replay of the
quarantine). On SQLite, PostgreSQL and in memory; a store from before (schema 8)
gets its waiting corrections marked; a Kafka topic of several partitions,
unkeyed, gives the ledger the same messages in order give.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import BACKENDS
from kafka import KafkaProducer
from kafka_support import Broker, broker, create_topic, ingest_args, lines_of, mot_run
from process_support import run

from mot.adapters.stores.memory import MemoryLedger
from mot.bootstrap import open_store
from mot.domain.events import (
    CustomersLinked,
    CustomersUnlinked,
    LedgerEvent,
    MomentAmended,
    MomentRecorded,
    MomentRetracted,
)
from mot.domain.ledger import Outcome
from mot.service.importing import record_stream
from mot.service.ledger import Incoming, LedgerService
from mot.service.ports import LedgerStore

__all__ = ["broker"]  # the fixture, imported for the Kafka test below

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"
OTHER = "0b7e6c1d-2f3a-4b5c-9d8e-7f6a5b4c3d2e"
PERSONS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "persons.jsonl"


def moment(moment_id: str = MID, **fields: Any) -> dict[str, Any]:
    return {"moment_id": moment_id, "tenant": "acme", "customer_id": "c1",
            "occurred_at": "2026-03-01T09:00:00Z", "channel": "email", "direction": "outbound",
            "kind": "answer", **fields}


def amend(set_: dict[str, Any], reason: str = "typo", moment_id: str = MID,
          **fields: Any) -> dict[str, Any]:
    return {"type": "amend", "moment_id": moment_id, "set": set_, "reason": reason, **fields}


def retract(moment_id: str = MID, **fields: Any) -> dict[str, Any]:
    return {"type": "retract", "moment_id": moment_id, "reason": "wrong customer", **fields}


Ledger = tuple[LedgerService, LedgerStore]


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, make_store_url: Any) -> Iterator[Ledger]:
    if request.param == "memory":
        store = MemoryLedger()
        yield LedgerService(store, clock=lambda: NOW), store
        return
    with closing(open_store(make_store_url(request.param))) as services:
        yield LedgerService(services.ledger_store, clock=lambda: NOW), services.ledger_store


def record(ledger: Ledger, *messages: dict[str, Any], origin: str = "f") -> list[Outcome]:
    result = ledger[0].record([Incoming(orjson.dumps(m), f"{origin}:{n}")
                               for n, m in enumerate(messages, 1)])
    return [v.outcome for v in result.verdicts]


def history(store: LedgerStore, moment_id: str = MID) -> list[tuple[str, Any, str]]:
    """(event, what it changed, origin) of each event of the moment, in version order."""
    out = []
    for e in store.stream(moment_id, "acme"):
        change: Any = None
        if isinstance(e, MomentAmended):
            change = e.set
        elif isinstance(e, MomentRetracted):
            change = e.reason
        out.append((type(e).__name__, change, e.origin))
    return out


def test_corrections_wait_and_apply_with_their_moment_in_arrival_order(ledger: Ledger) -> None:
    store = ledger[1]
    # Three corrections arrive before their moment: they wait.
    assert record(ledger, amend({"sentiment": 0.1}, tenant="acme"), origin="a") == [
        Outcome.QUARANTINED]
    assert record(ledger, amend({"sentiment": 0.2}, tenant="acme"),
                  retract(OTHER), origin="b") == [Outcome.QUARANTINED] * 2
    waiting = store.quarantine()
    assert [e.waits_for for e in waiting] == [("acme", MID), ("acme", MID), (None, OTHER)]
    assert all(e.field == "moment_id" and "waits in the quarantine" in e.reason for e in waiting)
    # Another tenant's moment of that id lets in only what names no tenant (SPEC §2: the
    # moment with that id in whichever tenant has one).
    assert record(ledger, moment(tenant="globex"), moment(OTHER, tenant="globex"),
                  origin="c") == [Outcome.RECORDED] * 2
    assert [e.waits_for for e in store.quarantine()] == [("acme", MID), ("acme", MID)]
    assert [type(e) for e in store.stream(OTHER, "globex")] == [MomentRecorded, MomentRetracted]
    assert history(store) == []
    # The moment comes with a later amendment in the same batch: what waited goes first,
    # in the order it arrived.
    result = ledger[0].record([Incoming(orjson.dumps(moment()), "d:1"),
                               Incoming(orjson.dumps(amend({"sentiment": 0.3}, tenant="acme")),
                                        "d:2")])
    assert [v.outcome for v in result.verdicts] == [Outcome.RECORDED, Outcome.AMENDED]
    assert result.waited == 2
    assert history(store) == [
        ("MomentRecorded", None, "d:1"),
        ("MomentAmended", {"sentiment": 0.1}, "a:1"),
        ("MomentAmended", {"sentiment": 0.2}, "b:1"),
        ("MomentAmended", {"sentiment": 0.3}, "d:2"),
    ]
    assert store.quarantine_count() == 0
    # Once: the moment again and the latest amendment again are duplicates.
    assert record(ledger, moment(), amend({"sentiment": 0.3}, tenant="acme")) == [
        Outcome.DUPLICATE] * 2


def test_a_correction_sent_again_after_another_waits_again_as_it_would_apply_on_time(
        ledger: Ledger) -> None:
    """A -> B -> A applies three times (SPEC §2), also when all three overtake their moment:
    the second A is not a repeat of the first (B came between), so the late moment ends as
    an on-time one would, with A's values. A plain retry of the latest is a repeat."""
    store = ledger[1]
    a, b = amend({"sentiment": 0.5}, "a", tenant="acme"), amend({"sentiment": -0.5}, "b",
                                                                  tenant="acme")
    for origin, message in [("1", a), ("2", b), ("3", a), ("4", a)]:
        assert record(ledger, message, origin=origin) == [Outcome.QUARANTINED]
    assert [e.repeats for e in store.quarantine()] == [1, 1, 2]
    # And within one batch, for another moment.
    c, d = amend({"sentiment": 0.5}, "c", moment_id=OTHER, tenant="acme"), amend(
        {"sentiment": -0.5}, "d", moment_id=OTHER, tenant="acme")
    assert record(ledger, c, d, c, origin="5") == [Outcome.QUARANTINED] * 3
    assert record(ledger, moment(), moment(OTHER)) == [Outcome.RECORDED] * 2
    assert history(store) == [("MomentRecorded", None, "f:1"),
                              ("MomentAmended", {"sentiment": 0.5}, "1:1"),
                              ("MomentAmended", {"sentiment": -0.5}, "2:1"),
                              ("MomentAmended", {"sentiment": 0.5}, "3:1")]
    assert history(store, OTHER) == [("MomentRecorded", None, "f:2"),
                                     ("MomentAmended", {"sentiment": 0.5}, "5:1"),
                                     ("MomentAmended", {"sentiment": -0.5}, "5:2"),
                                     ("MomentAmended", {"sentiment": 0.5}, "5:3")]
    assert store.quarantine_count() == 0


def test_in_one_batch_a_correction_before_its_moment_applies_after_it(ledger: Ledger) -> None:
    assert record(ledger, retract(), amend({"sentiment": 0.5}, moment_id=OTHER),
                  moment(), moment(OTHER)) == [
        Outcome.RETRACTED, Outcome.AMENDED, Outcome.RECORDED, Outcome.RECORDED]
    assert [t for t, _, _ in history(ledger[1])] == ["MomentRecorded", "MomentRetracted"]
    assert [t for t, _, _ in history(ledger[1], OTHER)] == ["MomentRecorded", "MomentAmended"]
    assert ledger[1].quarantine_count() == 0


def test_a_waiting_correction_that_breaks_another_rule_stays_and_no_longer_waits(
    ledger: Ledger,
) -> None:
    store = ledger[1]
    record(ledger, amend({"kind": "praise"}), amend({"sentiment": 0.5}, reason="later"))
    assert record(ledger, moment()) == [Outcome.RECORDED]
    # The first breaks the kinds of its direction; the second still applies, after it.
    assert history(store) == [("MomentRecorded", None, "f:1"),
                              ("MomentAmended", {"sentiment": 0.5}, "f:2")]
    [left] = store.quarantine()
    assert (left.field, left.waits_for) == ("set.kind", None)
    assert "'praise' is not a kind of direction 'outbound'" in left.reason


def test_a_moment_let_in_by_a_quarantine_replay_lets_in_what_waits(ledger: Ledger) -> None:
    store = ledger[1]
    record(ledger, moment(sentiment=3), origin="m")  # rejected for its sentiment
    record(ledger, retract(), origin="r")  # waits for it
    first, second = store.quarantine()
    assert (first.waits_for, second.waits_for) == (None, (None, MID))
    fixed = ledger[0].fix_quarantined(first.id, orjson.dumps(moment(sentiment=0.3)))
    assert fixed.still_rejected is None
    assert [t for t, _, _ in history(store)] == ["MomentRecorded", "MomentRetracted"]
    assert store.quarantine_count() == 0


def test_a_replay_of_both_the_moment_and_its_correction_applies_it_once(ledger: Ledger) -> None:
    store = ledger[1]
    record(ledger, amend({"sentiment": 0.5}), origin="a")
    record(ledger, moment(sentiment=3), origin="m")
    _, bad = store.quarantine()
    store.set_quarantined_payload(bad.id, orjson.dumps(moment()))
    summary = ledger[0].replay_quarantine()
    assert (summary.recorded, summary.amended, summary.read) == (1, 1, 2)
    assert [t for t, _, _ in history(store)] == ["MomentRecorded", "MomentAmended"]


def test_a_store_from_before_marks_its_waiting_corrections(tmp_path: Path) -> None:
    store = str(tmp_path / "old.db")
    with closing(open_store(store)) as services:
        record_stream(services.ledger, [Incoming(orjson.dumps(amend({"sentiment": 0.5})), "a:1"),
                                        Incoming(orjson.dumps(retract(OTHER)), "a:2"),
                                        Incoming(orjson.dumps(moment(OTHER)), "a:3")])
    # Made as schema 8 made it: no waiting columns, the reason of then; OTHER is recorded
    # meanwhile (its retraction is a replay's to put in, as it was).
    with closing(sqlite3.connect(store)) as db:
        db.executescript(
            "DROP INDEX quarantine_waiting; ALTER TABLE quarantine DROP COLUMN waits_for;"
            " ALTER TABLE quarantine DROP COLUMN waits_tenant; UPDATE mot_schema SET version = 8;"
            " DELETE FROM stored_events WHERE originator_version > 1;"
            " UPDATE quarantine SET reason = 'no recorded moment ' || id || ' to be amended"
            " (replay this from the quarantine once the moment is recorded)';")
        db.execute("INSERT INTO quarantine (digest, raw, origin, last_origin, field, reason,"
                   " first_seen, last_seen, repeats) VALUES ('x', ?, 'a:2', 'a:2', 'moment_id',"
                   " 'no recorded moment to be retracted', '', '', 1)",
                   (orjson.dumps(retract(OTHER)),))
        db.commit()
    with closing(open_store(store)) as services:
        entries = services.ledger_store.quarantine()
        assert [e.waits_for for e in entries] == [(None, MID), None]
        result = services.ledger.record([Incoming(orjson.dumps(moment()), "b:1")])
        assert result.waited == 1
        assert [type(e) for e in services.ledger_store.stream(MID)] == [MomentRecorded,
                                                                         MomentAmended]
        assert services.ledger.replay_quarantine().retracted == 1
        assert services.ledger_store.quarantine_count() == 0


# -- through Kafka: partitions and no keys --------------------------------------------------


def content(store: str) -> dict[str, list[Any]]:
    """The ledger's content, without positions, times of recording or origins: each moment's
    events in version order; each pair's links and unlinks as a set (their order of arrival
    does not matter, SPEC §2)."""
    out: dict[str, list[Any]] = {}
    with closing(open_store(store)) as services:
        events: list[LedgerEvent] = [e for _, e in services.ledger_store.notifications(0, 10**6)]
    for e in events:
        if isinstance(e, CustomersLinked | CustomersUnlinked):
            out.setdefault(f"pair:{e.link_id}", []).append(
                (type(e).__name__, e.customer_ids, e.occurred_at, e.reason))
        else:
            what: Any = (e.moment if isinstance(e, MomentRecorded | MomentAmended) else e.reason)
            out.setdefault(f"moment:{e.tenant}:{e.moment_id}", []).append(
                (e.version, type(e).__name__, dict(what) if isinstance(what, dict) else what))
    return {key: sorted(value) if key.startswith("pair:") else value
            for key, value in out.items()}


def test_a_topic_of_several_partitions_without_keys_gives_the_ledger_in_order(
    broker: Broker, store_kind: str, make_store_url: Any, golden_path: Path,
) -> None:
    lines = lines_of(golden_path) + lines_of(PERSONS)
    in_order, through_kafka = make_store_url(store_kind), make_store_url(store_kind)
    with closing(open_store(in_order)) as services:
        summary = record_stream(services.ledger, [Incoming(line, f"f:{n}")
                                                  for n, line in enumerate(lines, 1)])
        assert summary.quarantined == 0
    corrections = [line for line in lines if orjson.loads(line).get("type") in ("amend", "retract")]
    rest = [line for line in lines if line not in corrections]
    create_topic(broker.bootstrap, "moments", partitions=3)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        # The corrections first, ingested before their moments: they wait.
        for line in corrections:
            producer.send("moments", value=line, partition=0)
        producer.flush(30)
        args = ingest_args(broker.bootstrap, "moments", "g", "--exit-when-idle", "2",
                           "--batch-size", "7", "--summary-json")
        first = orjson.loads(mot_run(through_kafka, *args))
        assert (first["read"], first["quarantined"]) == (len(corrections), len(corrections))
        # Then everything else, without keys, dealt over the partitions.
        for n, line in enumerate(rest):
            producer.send("moments", value=line, partition=n % 3)
        producer.flush(30)
        second = orjson.loads(mot_run(through_kafka, *args))
    finally:
        producer.close(10)
    assert second["read"] == len(rest)
    assert (second["quarantined"], second["waited"]) == (0, len(corrections))
    with closing(open_store(through_kafka)) as services:
        assert services.ledger_store.quarantine_count() == 0
    assert content(through_kafka) == content(in_order)


def test_kafka_export_carries_links_and_a_reimport_gives_the_same_ledger(
    broker: Broker, store_kind: str, make_store_url: Any, golden_path: Path,
) -> None:
    from kafka_support import read_topic

    source, copy = make_store_url(store_kind), make_store_url(store_kind)
    with closing(open_store(source)) as services:
        record_stream(services.ledger, [Incoming(line, f"f:{n}") for n, line in
                                        enumerate(lines_of(PERSONS) + lines_of(golden_path), 1)])
        head = services.ledger_store.head()
    summary = orjson.loads(mot_run(source, "kafka", "export", "--bootstrap-servers",
                                   broker.bootstrap, "--topic", "ledger", "--quiet",
                                   "--summary-json"))
    assert summary["sent"] == summary["read"]
    messages = read_topic(broker.bootstrap, "ledger")
    kinds = [dict(m.headers)["event"] for m in messages]
    assert kinds.count(b"linked") == 6 and kinds.count(b"unlinked") == 3
    for message in messages:
        if dict(message.headers)["event"] in (b"linked", b"unlinked"):
            wire = orjson.loads(message.value)
            assert wire["type"] in ("link", "unlink") and set(wire) == {
                "type", "tenant", "customer_ids", "occurred_at", "reason"}
    again = orjson.loads(mot_run(copy, *ingest_args(broker.bootstrap, "ledger", "g",
                                                    "--exit-when-idle", "2", "--summary-json")))
    assert again["quarantined"] == 0
    with closing(open_store(copy)) as services:
        assert services.ledger_store.head() == head
    assert content(copy) == content(source)


# -- kill -9 -------------------------------------------------------------------------------


def test_an_import_killed_while_corrections_wait_then_run_again(
    store_url: str, tmp_path: Path,
) -> None:
    """Corrections first, their moments after: killed once moments are going in, then run
    again to the end, each moment holds its recording and its amendment once, and nothing
    waits any more."""
    import signal
    import subprocess

    from kafka_support import MOT, wait_until

    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(6000)]
    path = tmp_path / "late.jsonl"
    path.write_bytes(b"\n".join(
        [orjson.dumps(amend({"sentiment": 0.5}, moment_id=m, tenant="acme")) for m in ids]
        + [orjson.dumps(moment(m)) for m in ids]) + b"\n")
    args = [str(MOT), "--store", store_url, "import", str(path), "--batch-size", "50",
            "--commit-every", "100", "--workers", "0", "-q"]

    def head() -> int:
        with closing(open_store(store_url)) as services:
            return services.ledger_store.head()

    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: process.poll() is not None or head() >= 400, 120,
                   "the moments going in", every=0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert process.returncode == -signal.SIGKILL  # killed mid-way, not finished
    assert 0 < head() < 2 * len(ids)
    run(args)
    with closing(open_store(store_url)) as services:
        store = services.ledger_store
        assert store.count(store.head()) == 2 * len(ids)  # (PostgreSQL's positions have gaps)
        assert store.quarantine_count() == 0
        for moment_id in ids[::50]:
            events = store.stream(moment_id, "acme")
            assert [(type(e), e.version) for e in events] == [(MomentRecorded, 1),
                                                              (MomentAmended, 2)]
