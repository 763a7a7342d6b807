"""`mot kafka ingest` against a real Kafka-protocol broker, into SQLite and real PostgreSQL.

The golden fixture through a topic gives the golden projections; rejects go to
the quarantine (with topic/partition/offset) and to the dead-letter topic;
SIGTERM finishes the batch, commits and exits 0; kill -9 mid-stream and a
restart give the ledger of a clean run; the broker going away (and coming
back empty, or coming back with its log) neither stops the consumer nor loses
what it had recorded.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RECORD_KEYS
from kafka import KafkaConsumer
from kafka_support import (
    Broker,
    Proxy,
    broker,
    committed,
    create_topic,
    free_port,
    group_members,
    head,
    import_lines,
    ingest_args,
    ledger_events,
    lines_of,
    mot_process,
    mot_run,
    produce,
    project,
    projections,
    query,
    read_topic,
    stop,
    wait_until,
)

from mot.bootstrap import open_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
__all__ = ["broker"]  # the fixture, imported for the tests below

BAD = b'{"tenant":"acme","customer_id":"c9","occurred_at":"2026-03-01T09:00:00Z","channel":"email",' \
      b'"direction":"outbound","kind":"purchase","source":{"system":"crm","id":"bad-1"}}'
NOT_JSON = b"{not json"


def assert_golden(store: str, expected: dict[str, list[dict[str, Any]]]) -> None:
    for name, wanted in expected.items():
        got = {tuple(r[k] for k in RECORD_KEYS[name]): r for r in query(store, name)}
        assert sorted(got) == sorted(tuple(r[k] for k in RECORD_KEYS[name]) for r in wanted), name
        for record in wanted:
            row = got[tuple(record[k] for k in RECORD_KEYS[name])]
            assert {f: row.get(f, "<missing>") for f in record} == record, name


def test_golden_through_a_topic(broker: Broker, store_url: str, golden_path: Path,
                                golden_expected: dict[str, list[dict[str, Any]]],
                                tmp_path: Path) -> None:
    """The golden fixture and two bad messages go through a topic: golden projections, rejects kept."""
    create_topic(broker.bootstrap, "moments", partitions=3)
    lines = lines_of(golden_path)
    produce(broker.bootstrap, "moments", [*lines, BAD, NOT_JSON])
    out = mot_run(store_url, *ingest_args(broker.bootstrap, "moments", "g1", "--dlq-topic",
                                          "moments.dlq", "--exit-when-idle", "1", "--summary-json"))
    summary = json.loads(out)
    assert {k: summary[k] for k in ("read", "recorded", "amended", "retracted", "duplicates",
                                    "quarantined", "dead_lettered")} == {
        "read": 38, "recorded": 33, "amended": 1, "retracted": 1, "duplicates": 1,
        "quarantined": 2, "dead_lettered": 2}
    # the CPU it used, its parse workers' apart (none on a machine of one CPU)
    assert summary["cpu_seconds"] > 0 and summary["workers_cpu_seconds"] >= 0
    project(store_url)
    assert_golden(store_url, golden_expected)

    # Rejects: in the quarantine with their topic/partition/offset, and in the DLQ with the reason.
    services = open_store(store_url)
    try:
        quarantined = services.ledger_store.quarantine()
    finally:
        services.close()
    assert sorted(q.raw for q in quarantined) == sorted([BAD, NOT_JSON])
    assert all(q.origin.startswith("kafka:moments/") for q in quarantined)
    letters = read_topic(broker.bootstrap, "moments.dlq")
    assert sorted(m.value for m in letters) == sorted([BAD, NOT_JSON])
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["origin"] in {q.origin for q in quarantined}
        if letter.value == BAD:
            assert headers["field"] == "kind"
            assert "'purchase' is not a kind of direction 'outbound'" in headers["reason"]
        else:
            assert headers["field"] == "" and "not valid JSON" in headers["reason"]
    # Offsets were committed after the batches (a restart reads nothing again: see the SIGTERM test).
    assert sum(v or 0 for v in committed(broker.bootstrap, "g1", "moments").values()) == 38


@pytest.mark.slow
def test_sigterm_finishes_the_batch_commits_and_exits_0(broker: Broker, tmp_path: Path,
                                                       golden_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    create_topic(broker.bootstrap, "moments", partitions=2)
    produce(broker.bootstrap, "moments", lines_of(golden_path))
    # A long session: had this member not left the group, a new member would wait for that
    # session to end before it got the partitions (44 s measured with a kill -9). The broker
    # (Tansu) also holds each join for half the group's session, 12 s here, left or not.
    session_ms = 24_000
    process = mot_process(store, *ingest_args(broker.bootstrap, "moments", "g", "--summary-json",
                                              "--session-timeout-ms", str(session_ms)),
                          log=tmp_path / "ingest.log")
    wait_until(lambda: sum(v or 0 for v in committed(broker.bootstrap, "g", "moments").values())
               == 36, 90, "the golden lines committed")
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, (tmp_path / "ingest.log").read_text()
    assert json.loads(out)["read"] == 36
    # It left the group: the broker holds no member of it now (a member that did not leave,
    # killed, stays listed until its session ends) ...
    assert group_members(broker.bootstrap, "g") == []
    # ... so a new member (in this process, so that no start-up is timed) gets the partitions
    # without waiting for that session: the broker holds its join for half of it (12 s; up to
    # 24.9 s measured at load 20), against 44 s measured after a kill -9 ...
    assert joined_within(broker.bootstrap, "moments", "g") < 1.5 * session_ms / 1000
    # ... and a new ingest reads nothing twice.
    again = json.loads(mot_run(store, *ingest_args(broker.bootstrap, "moments", "g",
                                                  "--exit-when-idle", "1", "--summary-json")))
    assert again["read"] == 0


def joined_within(bootstrap: str, topic: str, group: str) -> float:
    """Seconds a new member of `group` (a 4 s session) waits for its partitions of `topic`;
    it leaves without committing."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, session_timeout_ms=4000,
                             heartbeat_interval_ms=400, max_poll_interval_ms=5000)
    try:
        started = time.monotonic()
        while not consumer.assignment() and time.monotonic() - started < 120:
            consumer.poll(100)
        return time.monotonic() - started
    finally:
        consumer.close(autocommit=False)


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_equals_a_clean_run(broker: Broker, tmp_path: Path,
                                                           sample_lines: list[bytes]) -> None:
    clean = str(tmp_path / "clean.db")
    import_lines(clean, sample_lines)

    store = str(tmp_path / "mot.db")
    create_topic(broker.bootstrap, "moments", partitions=3)
    produce(broker.bootstrap, "moments", sample_lines)
    # Small batches and transactions, watched closely: a whole run takes well under a
    # second here, and the kill has to land mid-stream.
    process = mot_process(store, *ingest_args(broker.bootstrap, "moments", "g", "--batch-size", "50",
                                              "--commit-every", "100"),
                          log=tmp_path / "ingest.log")
    wait_until(lambda: head(store) > 500, 180, "part of the sample recorded", every=0.01)
    process.kill()
    process.wait(10)
    assert 0 < head(store) < head(clean)
    # The killed member's session has to time out before its partitions are handed out again.
    out = mot_run(store, *ingest_args(broker.bootstrap, "moments", "g", "--exit-when-idle", "1",
                                      "--summary-json"))
    assert json.loads(out)["read"] > 0
    assert ledger_events(store) == ledger_events(clean)
    project(store)
    project(clean)
    assert projections(store) == projections(clean)


@pytest.mark.slow
def test_broker_restarts_empty_the_consumer_survives_and_resumes(tmp_path: Path,
                                                                 golden_path: Path) -> None:
    """This broker keeps its log in memory: after a restart it is empty (topic, offsets, group)."""
    port = free_port()
    b = Broker(port)
    b.start()
    store = str(tmp_path / "mot.db")
    lines = lines_of(golden_path)
    process = None
    try:
        create_topic(b.bootstrap, "moments")
        produce(b.bootstrap, "moments", lines[:20])
        process = mot_process(store, *ingest_args(b.bootstrap, "moments", "g", "--summary-json"),
                              log=tmp_path / "ingest.log")
        wait_until(lambda: head(store) >= 20, 120, "the first 20 lines recorded")
        recorded = ledger_events(store)
        b.stop()
        time.sleep(3)
        assert process.poll() is None, "the consumer exited when the broker went away"
        assert ledger_events(store) == recorded
        b.start()
        # The producers send what they have again, into the new, empty broker.
        create_topic(b.bootstrap, "moments")
        produce(b.bootstrap, "moments", lines)
        wait_until(lambda: head(store) >= 35, 180, "the rest recorded after the restart")
        assert process.poll() is None
        out = stop(process)
        assert process.returncode == 0, (tmp_path / "ingest.log").read_text()
        summary = json.loads(out)
        assert summary["recorded"] == 33 and summary["quarantined"] == 0
        events = ledger_events(store)
        assert events[: len(events)] == sorted(set(events))  # each event once
        assert set(recorded) <= set(events)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        b.stop()


@pytest.mark.slow
def test_broker_goes_away_with_its_log_kept_nothing_is_read_twice(tmp_path: Path,
                                                                  golden_path: Path) -> None:
    """A durable restart, seen from the clients: a proxy cuts every connection, then lets them back.

    The broker keeps its log and the group's committed offsets, so the consumer
    resumes where it was and a later member of the group reads nothing again.
    """
    broker_port, proxy_port = free_port(), free_port()
    b = Broker(broker_port, advertise=proxy_port)
    proxy = Proxy(proxy_port, broker_port)
    proxy.open()
    b.start()
    store = str(tmp_path / "mot.db")
    lines = lines_of(golden_path)
    process = None
    try:
        create_topic(b.bootstrap, "moments")
        produce(b.bootstrap, "moments", lines[:20])
        process = mot_process(store, *ingest_args(b.bootstrap, "moments", "g", "--summary-json"),
                              log=tmp_path / "ingest.log")
        wait_until(lambda: head(store) >= 20, 120, "the first 20 lines recorded")
        wait_until(lambda: committed(b.bootstrap, "g", "moments")[0] == 20, 120, "offset 20 committed")
        proxy.cut()
        time.sleep(4)
        assert process.poll() is None, "the consumer exited when the broker went away"
        proxy.open()
        produce(b.bootstrap, "moments", lines[20:])
        wait_until(lambda: committed(b.bootstrap, "g", "moments")[0] == len(lines), 180,
                   "every line committed after the outage")
        summary = json.loads(stop(process))
        assert process.returncode == 0, (tmp_path / "ingest.log").read_text()
        assert summary["read"] == len(lines)  # nothing read twice
        assert summary["duplicates"] == 1  # the fixture's own duplicate line
        again = json.loads(mot_run(store, *ingest_args(b.bootstrap, "moments", "g",
                                                      "--exit-when-idle", "1", "--summary-json")))
        assert again["read"] == 0
    finally:
        if process is not None and process.poll() is None:
            process.kill()
        proxy.cut()
        b.stop()


@pytest.fixture(scope="module")
def sample_lines() -> list[bytes]:
    from mot.adapters.sources.sample import generate_lines

    return [line.rstrip(b"\n") for line in generate_lines(4000, seed=11, corrections=True,
                                                          bad_lines=False)]


def test_null_and_unreadable_values_are_quarantined_not_fatal(broker: Broker, tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    create_topic(broker.bootstrap, "moments")
    produce(broker.bootstrap, "moments", [b"\xff\xfe", b"[]"], key=lambda v: None)
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("moments", key=b"k", value=None)
    producer.flush(10)
    producer.close(5)
    summary = json.loads(mot_run(store, *ingest_args(broker.bootstrap, "moments", "g",
                                                    "--exit-when-idle", "1", "--summary-json")))
    assert summary["quarantined"] == 3
    services = open_store(store)
    try:
        reasons = [q.reason for q in services.ledger_store.quarantine()]
    finally:
        services.close()
    assert any("null" in r for r in reasons)


@pytest.mark.slow
def test_started_before_the_broker_it_waits_for_it(tmp_path: Path, golden_path: Path) -> None:
    b = Broker(free_port())
    store = str(tmp_path / "mot.db")
    process = mot_process(store, *ingest_args(b.bootstrap, "moments", "g", "--summary-json"),
                          log=tmp_path / "ingest.log")
    try:
        time.sleep(2)
        assert process.poll() is None, (tmp_path / "ingest.log").read_text()
        b.start()
        create_topic(b.bootstrap, "moments")
        produce(b.bootstrap, "moments", lines_of(golden_path))
        wait_until(lambda: head(store) >= 35, 180, "the golden lines recorded")
        out = stop(process)
        assert process.returncode == 0, (tmp_path / "ingest.log").read_text()
        assert json.loads(out)["recorded"] == 33
    finally:
        if process.poll() is None:
            process.kill()
        b.stop()


def test_sigterm_while_it_waits_for_an_absent_broker_ends_it_at_once(tmp_path: Path) -> None:
    """An attempt to reach the broker lasts up to 30 s, and SIGTERM was looked at only
    between attempts: sent during the wait for a broker that is gone, it left `mot kafka
    ingest` running ~25 s more (measured: 24.3 s), past docker stop's 10 s. Now it exits at
    once, status 0, saying nothing was read."""
    store = str(tmp_path / "mot.db")
    process = mot_process(store, "kafka", "ingest", "--bootstrap-servers",
                          f"127.0.0.1:{free_port()}", "--topic", "moments", "--group", "g",
                          "--wait-for-broker", "300", log=tmp_path / "ingest.log")
    try:
        # SIGTERM once it says it is waiting: sent at a fixed 3 s, a loaded machine had not yet
        # installed the handler, and the process died of the signal (-15) instead of stopping.
        deadline = time.monotonic() + 180
        while "waiting for the broker" not in (tmp_path / "ingest.log").read_text():
            assert process.poll() is None, (tmp_path / "ingest.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "ingest.log").read_text()
            time.sleep(0.1)
        assert process.poll() is None, (tmp_path / "ingest.log").read_text()
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        took = time.monotonic() - sent
        log = (tmp_path / "ingest.log").read_text()
        assert process.returncode == 0, log
        # At once: the attempt's rest (~25 s before) is not waited for. The bound leaves room
        # for the exit itself on a loaded machine (3.3 s at load 30 failed a bound of 3 s).
        assert took < 12, (took, log)
        assert "stopped before the broker could be reached; nothing read" in log
    finally:
        if process.poll() is None:
            process.kill()


def rewind(bootstrap: str, group: str, topic: str) -> None:
    """Set the group's committed offsets back to 0, as an operator's offset reset does: the
    broker then delivers everything again, as it does after a crash between the commits."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in partitions})
    finally:
        consumer.close(autocommit=False)


def test_redelivered_messages_are_skipped_by_their_offsets(broker: Broker, store_url: str) -> None:
    """A topic delivered again in full (committed offsets rewound) changes nothing: the store
    keeps each partition's next offset with the moments, so even an amendment A repeated after
    a later amendment B of the same moment (which the ledger would record anew) is skipped."""
    from mot.domain.identity import derived_moment_id

    moment = (b'{"tenant":"acme","customer_id":"c1","occurred_at":"2026-03-01T09:00:00Z",'
              b'"channel":"web","direction":"inbound","kind":"purchase","value":10.0,'
              b'"currency":"EUR","source":{"system":"shop","id":"aba-1"}}')
    moment_id = derived_moment_id("acme", "shop", "aba-1")
    amend_a = f'{{"type":"amend","moment_id":"{moment_id}","set":{{"value":20.0}},"reason":"A"}}'.encode()
    amend_b = f'{{"type":"amend","moment_id":"{moment_id}","set":{{"value":30.0}},"reason":"B"}}'.encode()
    create_topic(broker.bootstrap, "aba", partitions=1)
    produce(broker.bootstrap, "aba", [moment, amend_a, amend_b, amend_a])
    first = json.loads(mot_run(store_url, *ingest_args(broker.bootstrap, "aba", "g-aba",
                                                      "--exit-when-idle", "1", "--summary-json")))
    assert (first["recorded"], first["amended"], first["redelivered"]) == (1, 3, 0)
    before = ledger_events(store_url)
    assert len(before) == 4

    rewind(broker.bootstrap, "g-aba", "aba")
    again = json.loads(mot_run(store_url, *ingest_args(broker.bootstrap, "aba", "g-aba",
                                                      "--exit-when-idle", "1", "--summary-json")))
    assert (again["read"], again["redelivered"], again["recorded"], again["amended"]) == (4, 4, 0, 0)
    assert ledger_events(store_url) == before
    assert committed(broker.bootstrap, "g-aba", "aba") == {0: 4}


def test_a_group_committed_inside_a_record_batch_reads_from_that_offset(broker: Broker,
                                                                         store_url: str) -> None:
    """The consumer hands on whole record batches (the parse workers decode them); a group
    whose committed offset falls inside one records only the messages from that offset on."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from mot.domain.identity import derived_moment_id

    lines = [(b'{"tenant":"acme","customer_id":"c%d","occurred_at":"2026-03-01T09:00:00Z",'
              b'"channel":"web","direction":"inbound","kind":"purchase",'
              b'"source":{"system":"shop","id":"mid-%d"}}') % (i, i) for i in range(6)]
    create_topic(broker.bootstrap, "mid", partitions=1)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=2000, batch_size=1 << 20)
    for line in lines:  # one record batch: all six wait for the linger
        producer.send("mid", value=line)
    producer.flush(30)
    producer.close(10)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="g-mid",
                             enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition("mid", 0)])
        consumer.commit({TopicPartition("mid", 0): OffsetAndMetadata(4, "", -1)})
    finally:
        consumer.close(autocommit=False)

    summary = json.loads(mot_run(store_url, *ingest_args(broker.bootstrap, "mid", "g-mid",
                                                        "--exit-when-idle", "1", "--summary-json")))
    assert (summary["read"], summary["recorded"], summary["redelivered"]) == (2, 2, 0)
    assert {moment for moment, _, _ in ledger_events(store_url)} == {
        derived_moment_id("acme", "shop", f"mid-{i}") for i in (4, 5)}
    assert committed(broker.bootstrap, "g-mid", "mid") == {0: 6}


@pytest.mark.parametrize("compression", [0, 1])  # none (read by mot), gzip (left to kafka-python)
def test_record_batches_decode_as_kafka_python_reads_them(compression: int) -> None:
    """The parse workers read uncompressed v2 record batches themselves (`decode_chunk`):
    the same offsets, keys and values as kafka-python's reader, from a start offset inside
    the batch on, whatever the keys, values (absent, empty, past one varint byte) and
    headers; a batch they do not read (compressed) goes to kafka-python's reader."""
    import random

    from kafka.record import MemoryRecords
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from mot.adapters.kafka.client import decode_chunk

    rnd = random.Random(19)
    for _ in range(40):
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
            producer_epoch=-1, base_sequence=-1, batch_size=1 << 24)
        for delta in range(rnd.randrange(1, 200)):
            key = None if rnd.random() < 0.2 else rnd.randbytes(rnd.randrange(0, 300))
            value = (None if rnd.random() < 0.1
                     else rnd.randbytes(rnd.choice([0, 5, 63, 64, 127, 128, 20_000])))
            headers = [(f"h{i}", rnd.randbytes(rnd.randrange(0, 200)))
                       for i in range(rnd.randrange(0, 3))]
            builder.append(delta, timestamp=rnd.randrange(0, 1 << 41), key=key, value=value,
                           headers=headers)
        base = rnd.randrange(0, 1 << 40)  # the CRC does not cover the base offset
        data = base.to_bytes(8, "big") + bytes(builder.build())[8:]
        data *= 2  # and a second batch after it, as a fetch may hold
        start = base + rnd.randrange(0, 50)
        expected: tuple[list[int], list[bytes | None], list[bytes | None]] = ([], [], [])
        records = MemoryRecords(data)
        while (batch := records.next_batch()) is not None:
            for record in batch:
                if record.offset >= start:
                    expected[0].append(record.offset)
                    expected[1].append(record.key)
                    expected[2].append(record.value)
        assert decode_chunk((data, start)) == (expected, expected[2])


@pytest.mark.parametrize("magic", [0, 1])
def test_a_short_message_of_the_old_formats_decodes(magic: int) -> None:
    """A broker on message format v0 or v1 (before 0.11) hands each message on as a batch
    of its own (`_BatchRecords`), which may be shorter than a v2 batch's header: it still
    decodes, as kafka-python reads it, instead of being passed over while its offset is
    committed (the message lost)."""
    from kafka.record import MemoryRecords
    from kafka.record.legacy_records import LegacyRecordBatchBuilder

    from mot.adapters.kafka.client import decode_chunk

    for value in (b"{}", b'{"tenant":"acme"}', b"x" * 200):
        builder = LegacyRecordBatchBuilder(magic=magic, compression_type=0, batch_size=1 << 20)
        builder.append(7, timestamp=None if magic == 0 else 1_700_000_000_000, key=None,
                       value=value)
        data = bytes(builder.build())
        batch = MemoryRecords(data).next_batch()
        assert batch is not None
        expected = ([r.offset for r in batch], [r.key for r in batch], [r.value for r in batch])
        assert expected == ([7], [None], [value])
        assert decode_chunk((data, 0)) == (expected, expected[2])


def test_a_partition_with_nothing_new_holds_a_busy_members_fetch_briefly(broker: Broker) -> None:
    """A member sends one fetch at a time to a broker, for the partitions it holds nothing of:
    one that ran dry, asked alone, kept the other partitions' next fetch waiting for the
    broker's fetch wait (kafka-python's 500 ms, a 0.47 s stall in a 1.7 s ingest of 100,000
    messages). While it polls without waiting (batches on their way to the ledger) its fetches
    wait 100 ms at most; an idle member's keep the longer wait (fewer requests)."""
    from mot.adapters.kafka.client import BUSY_FETCH_WAIT_MS, ConsumerSettings, KafkaSource

    create_topic(broker.bootstrap, "dry", partitions=2)
    source = KafkaSource(ConsumerSettings(broker.bootstrap, ("dry",), "g-dry"))
    fetcher = source.consumer._fetcher
    try:
        source.poll(0.0, 1000)
        assert fetcher.config["fetch_max_wait_ms"] == BUSY_FETCH_WAIT_MS == 100
        source.poll(0.1, 1000)
        assert fetcher.config["fetch_max_wait_ms"] == 500
    finally:
        source.close()
