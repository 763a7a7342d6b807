"""What a newcomer walking README.md on a clean clone met (the first-hour walk of Dec 2026):
each test runs the real CLI (click's CliRunner) on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import orjson
from cli_support import mot
from kafka_support import Broker, broker, create_topic, ingest_args, mot_process, produce

__all__ = ["broker"]


def moment(number: int) -> bytes:
    return orjson.dumps({
        "tenant": "acme", "customer_id": f"c{number}", "occurred_at": "2026-06-01T09:30:00Z",
        "channel": "email", "direction": "inbound", "kind": "question", "function": "service",
        "source": {"system": "crm", "id": str(number)}})


def test_one_blank_line_skipped_reads_in_the_singular(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    one = tmp_path / "one.jsonl"
    one.write_bytes(moment(1) + b"\n\n" + moment(2) + b"\n")
    assert mot(store, "import", one).stdout.endswith(" s, 1 blank line skipped)\n")
    two = tmp_path / "two.jsonl"
    two.write_bytes(moment(3) + b"\n\n\n" + moment(4) + b"\n")
    assert mot(store, "import", two).stdout.endswith(" s, 2 blank lines skipped)\n")


def test_erasing_an_id_the_tenant_never_held_names_no_empty_list_of_tables(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    path = tmp_path / "in.jsonl"
    path.write_bytes(moment(1) + b"\n")
    mot(store, "import", "-q", path)
    result = mot(store, "erase", "--tenant", "acme", "--customer", "x:maria", "--reason", "R-1")
    assert "()" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "erased in" in line]
    assert len(lines) == 1 and lines[0].endswith("s; no table held any of their rows")
    assert "the files hold none of it" not in result.stderr
    held = mot(store, "erase", "--tenant", "acme", "--customer", "c1", "--reason", "R-2")
    assert "removing the freed bytes from the files (" in held.stderr
    assert "moments" in held.stderr and "the files hold none of it" in held.stderr


def test_kafka_ingest_says_it_is_joining_its_group_not_zeros(broker: Broker, tmp_path: Path) -> None:
    create_topic(broker.bootstrap, "moments")
    produce(broker.bootstrap, "moments", [moment(1), moment(2)])
    log = tmp_path / "ingest.log"
    args = [arg for arg in ingest_args(broker.bootstrap, "moments", "g1", "--exit-when-idle", "2")
            if arg != "--quiet"]
    process = mot_process(str(tmp_path / "mot.db"), *args, log=log)
    assert process.wait(timeout=180) == 0, log.read_text()
    said = log.read_text()
    assert "partitions revoked: none" not in said
    assert "kafka ingest: joining the group g1 (waiting for its partitions)" in said
    assert "partitions assigned: moments/0" in said
    assert "0 read, 0 recorded" not in said.split("partitions assigned")[0]
