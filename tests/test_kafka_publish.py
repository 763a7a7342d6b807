"""`mot kafka publish`: projection changelogs on compacted topics, against a real broker.

Folding the latest message per key of mot.relationships, mot.reciprocity,
mot.amplifications and mot.persons gives what `mot query` gives; a retracted
amplification becomes a tombstone, and so does the key a link's merge absorbs;
a publisher killed mid-way resumes from the position it keeps in the store,
without a gap, and what it repeats carries the same version and value.
"""

from __future__ import annotations

import json
import signal
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka_support import (
    Broker,
    broker,
    import_lines,
    kafka_summary,
    lines_of,
    mot_process,
    project,
    query,
    read_topic,
    wait_until,
    without,
)

from mot.bootstrap import open_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
__all__ = ["broker"]

CHANGELOGS = ("relationships", "reciprocity", "amplifications", "persons", "responses")
KEY = {"relationships": lambda r: f"{r['tenant']}/{r['customer_id']}",
       "reciprocity": lambda r: f"{r['tenant']}/{r['customer_id']}",
       "amplifications": lambda r: f"{r['tenant']}/{r['amplification_id']}",
       "persons": lambda r: f"{r['tenant']}/{r['customer_id']}",
       "responses": lambda r: f"{r['tenant']}/{r['request_moment_id']}"}


publish = partial(kafka_summary, "publish")


def changelog(bootstrap: str, name: str) -> list[tuple[str, int, dict[str, Any] | None]]:
    """(key, version, row or None for a tombstone) of every message, in topic order."""
    out = []
    for message in read_topic(bootstrap, f"mot.{name}"):
        headers = dict(message.headers)
        version = int(headers["version"])
        assert headers["projection"] == name.encode()
        row = None if message.value is None else orjson.loads(message.value)
        if row is not None:
            assert row["version"] == version
        out.append((message.key.decode(), version, row))
    return out


def fold(messages: list[tuple[str, int, dict[str, Any] | None]]) -> dict[str, dict[str, Any]]:
    """What a consumer of the compacted topic keeps: per key, the message of the highest version."""
    latest: dict[str, tuple[int, dict[str, Any] | None]] = {}
    for key, version, row in messages:
        if key not in latest or version >= latest[key][0]:
            latest[key] = (version, row)
    return {key: row for key, (_, row) in latest.items() if row is not None}


def assert_changelogs_equal_queries(store: str, bootstrap: str) -> dict[str, list[Any]]:
    logs = {}
    for name in CHANGELOGS:
        logs[name] = changelog(bootstrap, name)
        expected = {KEY[name](r): r for r in without(query(store, name), "lapsed")}
        assert fold(logs[name]) == expected, name
    return logs


def test_publish_then_fold_equals_query_and_a_retraction_is_a_tombstone(
        broker: Broker, store_url: str, golden_path: Path) -> None:
    import_lines(store_url, lines_of(golden_path))
    first = publish(store_url, broker.bootstrap)  # brings the projections up to date first
    assert first["messages"] == 9 + 9 + 4 + 9 + 4 and first["tombstones"] == 0
    logs = assert_changelogs_equal_queries(store_url, broker.bootstrap)
    assert {key for key, _, _ in logs["relationships"]} == {
        f"{r['tenant']}/{r['customer_id']}" for r in query(store_url, "relationships")}

    # Nothing changed: nothing published.
    assert publish(store_url, broker.bootstrap)["messages"] == 0

    # Retract one amplification moment: its key gets a tombstone, its customer's rows a new version.
    amplification = query(store_url, "amplifications")[0]
    retract = {"type": "retract", "moment_id": amplification["amplification_id"], "reason": "test"}
    import_lines(store_url, [orjson.dumps(retract)])
    second = publish(store_url, broker.bootstrap)
    assert second["tombstones"] >= 1
    assert 1 <= second["messages"] < first["messages"]
    logs = assert_changelogs_equal_queries(store_url, broker.bootstrap)
    key, version, row = logs["amplifications"][-1]
    assert key == KEY["amplifications"](amplification) and row is None
    assert version > amplification["version"]
    assert KEY["amplifications"](amplification) not in fold(logs["amplifications"])

    # Retract an open request: mot.responses gets its tombstone.
    request, *_ = [r for r in query(store_url, "responses") if r["response_moment_id"] is None]
    import_lines(store_url, [orjson.dumps({"type": "retract", "moment_id": request[
        "request_moment_id"], "tenant": request["tenant"], "reason": "test"})])
    third = publish(store_url, broker.bootstrap)
    assert third["tombstones"] >= 1
    logs = assert_changelogs_equal_queries(store_url, broker.bootstrap)
    key, version, row = logs["responses"][-1]
    assert key == KEY["responses"](request) and row is None and version > request["version"]


def test_a_link_publishes_the_merged_person_and_a_tombstone_for_the_absorbed_key(
        broker: Broker, store_url: str) -> None:
    def moment(customer: str, n: str, kind: str, direction: str) -> bytes:
        return orjson.dumps({"tenant": "acme", "customer_id": customer,
                             "occurred_at": f"2026-04-01T0{n}:00:00Z", "channel": "chat",
                             "direction": direction, "kind": kind,
                             "source": {"system": "t", "id": n}})

    def pair(kind: str, hour: int) -> bytes:
        return orjson.dumps({"type": kind, "tenant": "acme", "customer_ids": ["zendesk:m1", "x:maria"],
                             "occurred_at": f"2026-04-02T0{hour}:00:00Z", "reason": "test"})

    import_lines(store_url, [moment("zendesk:m1", "1", "question", "inbound"),
                             moment("x:maria", "2", "answer", "outbound")])
    publish(store_url, broker.bootstrap)
    assert {key for key, _, _ in changelog(broker.bootstrap, "persons")} == {
        "acme/x:maria", "acme/zendesk:m1"}

    import_lines(store_url, [pair("link", 1)])
    merged = publish(store_url, broker.bootstrap)
    assert merged["by_projection"]["persons"] == 2  # the merged person's row, the tombstone
    logs = assert_changelogs_equal_queries(store_url, broker.bootstrap)
    (key, version, row), (gone, gone_at, nothing) = sorted(
        logs["persons"][-2:], key=lambda m: m[2] is None)
    assert key == "acme/x:maria" and row is not None and row["customer_ids"] == [
        "x:maria", "zendesk:m1"] and row["ids"] == 2 and row["suspect"] is False
    assert (gone, nothing) == ("acme/zendesk:m1", None) and gone_at == version

    import_lines(store_url, [pair("unlink", 2)])
    publish(store_url, broker.bootstrap)
    persons = fold(changelog(broker.bootstrap, "persons"))
    assert {key: row["customer_ids"] for key, row in persons.items()} == {
        "acme/x:maria": ["x:maria"], "acme/zendesk:m1": ["zendesk:m1"]}
    assert_changelogs_equal_queries(store_url, broker.bootstrap)


@pytest.mark.slow
def test_a_killed_publisher_resumes_without_gaps_and_repeats_carry_the_same_version(
        broker: Broker, tmp_path: Path) -> None:
    from mot.adapters.sources.sample import generate_lines

    store = str(tmp_path / "mot.db")
    import_lines(store, (line.rstrip(b"\n") for line in generate_lines(3000, seed=5,
                                                                       corrections=True)))
    project(store)
    log = tmp_path / "publish.log"
    process = mot_process(store, "kafka", "publish", "--bootstrap-servers", broker.bootstrap,
                          "--page-size", "5", "--no-refresh", log=log)

    def cursors() -> int:
        services = open_store(store)
        try:
            with services.backend.read() as tx:
                if not services.backend.table_exists(tx, "publisher_state"):
                    return 0
                return int(tx.scalar("SELECT COALESCE(SUM(position), 0) FROM publisher_state"))
        finally:
            services.close()

    wait_until(lambda: cursors() > 0, 120, "a first page published")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.returncode == -signal.SIGKILL, "the publisher finished before it was killed"
    before = {name: len(changelog(broker.bootstrap, name)) for name in CHANGELOGS}

    # Restart, following, then change something while it runs.
    process = mot_process(store, "kafka", "publish", "--bootstrap-servers", broker.bootstrap,
                          "--follow", "--poll", "0.2", "--summary-json", log=log)
    total = sum(len(query(store, name)) for name in CHANGELOGS)
    assert sum(before.values()) < total, "killed after the last page: nothing to resume"
    wait_until(lambda: sum(len(changelog(broker.bootstrap, n)) for n in CHANGELOGS) >= total,
               60, "every row published")
    amplification = query(store, "amplifications")[0]
    import_lines(store, [orjson.dumps({"type": "retract", "moment_id":
                                       amplification["amplification_id"], "reason": "test"})])
    wait_until(lambda: changelog(broker.bootstrap, "amplifications")[-1][2] is None, 120,
               "the tombstone published by the following publisher")
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, log.read_text()
    assert json.loads(out)["tombstones"] >= 1

    logs = assert_changelogs_equal_queries(store, broker.bootstrap)
    for name in CHANGELOGS:
        seen: dict[tuple[str, int], dict[str, Any] | None] = {}
        for key, version, row in logs[name]:
            # A repeated message (after the kill) is the same row at the same version.
            assert seen.setdefault((key, version), row) == row
