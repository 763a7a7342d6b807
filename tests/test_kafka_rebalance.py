"""A consumer group rebalancing mid-stream: two `mot kafka ingest` processes, one store.

The bench's pair of processes hung here: the member already reading counted the
rebalance that a second member's join started as quiet time (kafka-python keeps a
revoked assignment until the rebalance ends and polls nothing meanwhile), so
`--exit-when-idle` made it leave mid-rebalance with a backlog to go; this broker
then kept naming the departed member as the leader of every new generation, and
the other member rejoined forever. Each member must stay until the stream is
read, then both exit on their own, and each moment is recorded once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka_support import (
    GROUP_OPTIONS,
    Broker,
    broker,
    create_topic,
    head,
    import_lines,
    ledger_events,
    message_key,
    mot_process,
    wait_until,
)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]
__all__ = ["broker"]

LINES = 12_000
PER_SECOND = 1_000  # a live stream, slower than a member records: its polls come back empty


def member(store: str, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    # Not --quiet: the log says when the group revoked and assigned partitions.
    return mot_process(store, "kafka", "ingest", "--bootstrap-servers", bootstrap, "--topic",
                       "moments", "--group", "pair", "--batch-size", "200", *GROUP_OPTIONS,
                       "--exit-when-idle", "1", "--summary-json", log=log)


def group_events(log: Path) -> list[str]:
    """'assigned' / 'revoked' / 'lost', in the order the member said them."""
    return [line.split("partitions ", 1)[1].split(":", 1)[0]
            for line in log.read_text().replace("\r", "\n").splitlines()
            if "partitions " in line and ": " in line.split("partitions ", 1)[1]]


def test_a_member_joining_mid_stream_neither_hangs_nor_loses(broker: Broker, tmp_path: Path) -> None:
    from mot.adapters.sources.sample import generate_lines

    lines = [line.rstrip(b"\n") for line in generate_lines(LINES, seed=29, corrections=True,
                                                           bad_lines=False)]
    clean = str(tmp_path / "clean.db")
    import_lines(clean, lines)
    store = str(tmp_path / "pair.db")
    create_topic(broker.bootstrap, "moments", partitions=4)

    def stream() -> None:
        step = PER_SECOND // 10
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        try:
            for start in range(0, len(lines), step):
                for line in lines[start:start + step]:
                    producer.send("moments", key=message_key(line), value=line)
                producer.flush(30)
                time.sleep(0.1)
        finally:
            producer.close(10)

    producer = threading.Thread(target=stream, daemon=True)
    producer.start()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = member(store, broker.bootstrap, logs[0])
    processes = [a]
    try:
        wait_until(lambda: head(store) > 500, 180, "the first member under way", logs=logs)
        b = member(store, broker.bootstrap, logs[1])  # its join rebalances the group
        processes.append(b)
        wait_until(lambda: "partitions assigned: moments/" in logs[1].read_text(), 180,
                   "the second member to get partitions", logs=logs)
        producer.join(60)
        assert not producer.is_alive()
        # Each exits once the stream is read and it has been quiet for a second in a
        # settled group. Before, this waited forever for the second member.
        summaries = []
        for process, log in zip(processes, logs, strict=True):
            out, _ = process.communicate(timeout=90)
            assert process.returncode == 0, log.read_text()[-3000:]
            summaries.append(json.loads(out))
        # The first member left a settled group: its last word on the group before the
        # revocation of its close is an assignment, not a rebalance it walked out of.
        events = group_events(logs[0])
        assert events[-1] == "revoked" and events[-2] == "assigned", events
        assert all(s["read"] > 0 for s in summaries), summaries
        assert sum(s["read"] - s["redelivered"] for s in summaries) == len(lines)
        assert ledger_events(store) == ledger_events(clean)  # each moment once, none lost
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
