"""What a newcomer walking README.md on a clean clone met (the first-hour walk of Dec 2026):
each test runs the real CLI (click's CliRunner) on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import orjson
from cli_support import mot


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
