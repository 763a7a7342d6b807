"""What a newcomer walking README.md on a clean clone met (the first-hour walk of Dec 2026):
each test runs the real CLI (click's CliRunner) on a real SQLite store."""

from __future__ import annotations

import re
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


def test_a_csv_row_with_too_few_or_too_many_cells_names_the_columns(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    path = tmp_path / "my.csv"
    header = "tenant,customer_id,occurred_at,channel,direction,kind,function,source.system,source.id"
    path.write_text(header + "\n"
                    "acme,c-1,2026-06-02T08:00:00Z,phone,inbound,complaint,logistics,crm,T-1\n"
                    "acme,c-2,2026-06-02T08:00:00Z,phone,inbound,complaint,logistics,crm\n"
                    "acme,c-3,2026-06-02T08:00:00Z,phone,inbound,complaint,logistics,crm,T-3,x y\n")
    assert "recorded 1," in mot(store, "import", path).stdout
    reasons = {entry["origin"]: entry["reason"] for entry in
               orjson.loads(mot(store, "quarantine", "list", "--format", "json").stdout)}
    assert reasons == {
        f"{path}:3": "CSV row has 8 cells, the header has 9: no cell for column 'source.id'",
        f"{path}:4": "CSV row has 10 cells, the header has 9: 'x y' past its last column "
                     "'source.id' (a comma in a value needs the value in double quotes)"}


def test_a_vendor_csv_row_short_of_cells_names_the_columns(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    path = tmp_path / "listening_export.csv"
    path.write_text("id,text,url\n1,hello\n")
    mot(store, "import", "--from", "mentions", path)
    [entry] = orjson.loads(mot(store, "quarantine", "list", "--format", "json").stdout)
    assert entry["reason"].endswith("CSV row has 2 cells, the header has 3: no cell for column 'url'")


def test_an_input_with_no_message_is_warned_about(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    empty, header, blank = tmp_path / "empty.jsonl", tmp_path / "header.csv", tmp_path / "b.jsonl"
    empty.write_bytes(b"")
    header.write_text("tenant,customer_id,occurred_at\r\n")
    blank.write_bytes(b"\n\r\n")
    said = mot(store, "import", empty).stderr
    assert said == (f"warning: no message in {empty}: nothing to import (an empty file, or a CSV "
                    "header alone; is it the file meant?)\n")
    assert f"warning: no message in {header}: nothing" in mot(store, "import", header).stderr
    assert f"no message in {blank} (only 2 blank lines): nothing" in mot(store, "import", blank).stderr
    assert mot(store, "import", "-q", empty).stderr == ""
    path = tmp_path / "in.jsonl"
    path.write_bytes(moment(1) + b"\n")
    assert "warning" not in mot(store, "import", path).stderr


def test_an_empty_input_among_full_ones_is_named(tmp_path: Path) -> None:
    """With several inputs the warning came only when none held a message: an empty one
    among full ones went unsaid."""
    store = str(tmp_path / "mot.db")
    full, empty, header = tmp_path / "full.jsonl", tmp_path / "empty.jsonl", tmp_path / "h.csv"
    full.write_bytes(moment(1) + b"\n")
    empty.write_bytes(b"")
    header.write_text("tenant,customer_id,occurred_at\r\n")
    said = mot(store, "import", full, empty).stderr
    assert said == (f"warning: no message in {empty}: nothing imported from it (an empty file, "
                    "or a CSV header alone; is it the file meant?)\n")
    assert f"warning: no message in {empty}, {header}: nothing imported from them" in mot(
        store, "import", empty, full, header).stderr
    assert mot(store, "import", "-q", full, empty).stderr == ""


def test_show_of_a_source_record_not_found_names_it_and_the_tenants(tmp_path: Path) -> None:
    store = str(tmp_path / "mot.db")
    path = tmp_path / "in.jsonl"
    path.write_bytes(moment(1) + b"\n")
    mot(store, "import", "-q", path)
    assert '"customer_id": "c1"' in mot(store, "show", "crm:1", "--tenant", "acme").stdout
    left_out = mot(store, "show", "crm:1", ok=False)
    assert left_out.exit_code == 1
    assert left_out.stderr.startswith(
        "Error: no moment from the source record 'crm:1' in tenant 'default' (its moment id would "
        "be ")
    assert left_out.stderr.endswith(
        "); without --tenant it is looked up in tenant 'default' (tenants: acme)\n")
    other = mot(store, "show", "crm:2", "--tenant", "acme", ok=False)
    assert other.stderr.startswith("Error: no moment from the source record 'crm:2' in tenant 'acme'")
    assert "without --tenant" not in other.stderr


def test_progress_never_counts_more_messages_read_than_lines(tmp_path: Path) -> None:
    from mot.adapters.sources.inputs import FileInput
    from mot.bootstrap import open_store
    from mot.service.importing import ImportJob, ImportOptions

    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(moment(n) + b"\n" for n in range(300)))
    seen: list[tuple[int, int]] = []
    source = FileInput(str(path), "jsonl")
    assert source.check() is None
    with open_store(str(tmp_path / "mot.db")) as services:
        report = ImportJob(services.ledger, ImportOptions(batch_size=50, workers=0),
                           progress=lambda r, done: seen.append((r.lines, r.summary.read))
                           ).run([source])
    assert (report.lines, report.summary.recorded) == (300, 300)
    assert len(seen) >= 5 and any(read for _, read in seen)
    assert all(lines >= read for lines, read in seen), seen


def test_a_large_sample_shows_its_progress_on_a_terminal(tmp_path: Path) -> None:
    """`mot sample 1000000` said nothing for a minute; on a terminal its count now shows,
    on standard error, while the lines go to the file."""
    import os
    import pty
    import subprocess
    import sys

    out = tmp_path / "s.jsonl"
    leader, follower = pty.openpty()
    mot_bin = Path(sys.executable).parent / "mot"
    # Enough lines to outlast the first update (0.5 s on a terminal) on a quiet machine: 40,000
    # were written before it there, and nothing was said.
    started = subprocess.run([str(mot_bin), "sample", "200000", "-o", str(out)],
                             stderr=follower, check=True, timeout=120)
    os.close(follower)
    said = b""
    while True:
        try:
            part = os.read(leader, 65536)
        except OSError:
            break
        if not part:
            break
        said += part
    os.close(leader)
    assert started.returncode == 0
    assert re.search(rb"sample: [0-9,]+ lines written \xc2\xb7 [0-9,]+/s \xc2\xb7 [0-9]+%, ETA", said), said
    assert out.read_bytes().count(b"\n") >= 200000


def test_what_is_no_text_mot_reads_is_refused_naming_what_it_is(tmp_path: Path) -> None:
    """A zip, another compression than gzip, a binary file, a pretty-printed JSON document
    and a directory: each refused before anything is recorded, in one line saying what it is
    and what to do (each line of them was quarantined, a directory 'cannot read d: Is a
    directory')."""
    import bz2
    import lzma
    import zipfile

    store = str(tmp_path / "mot.db")
    lines = moment(1) + b"\n" + moment(2) + b"\n"
    (tmp_path / "m.jsonl").write_bytes(lines)
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as archive:  # stored: its lines readable
        archive.write(tmp_path / "m.jsonl", "m.jsonl")
    (tmp_path / "m.jsonl.bz2").write_bytes(bz2.compress(lines))
    (tmp_path / "m.jsonl.xz").write_bytes(lzma.compress(lines))
    (tmp_path / "bin.jsonl").write_bytes(b"\x7fELF\x02\x01\x01" + b"\x00" * 60 + b"\n" * 3)
    (tmp_path / "one.json").write_bytes(b'{\n  "tenant": "acme",\n  "customer_id": "c1"\n}\n')
    (tmp_path / "folder").mkdir()
    unpack = "not JSON lines or CSV: unpack it first (mot import reads text, plain or gzip-compressed)"
    expected = {
        "m.zip": f"this is a zip archive, {unpack}",
        "m.jsonl.bz2": f"this is bzip2-compressed, {unpack}",
        "m.jsonl.xz": f"this is xz-compressed, {unpack}",
        "bin.jsonl": "this is a binary file, not JSON lines or CSV (its first bytes hold 60 zero"
                     " bytes): mot import reads text, plain or gzip-compressed",
        "one.json": "this is one JSON document over several lines, not JSON lines (one moment a"
                    " line): put each moment on a line of its own, such as with jq -c '.[]' (an"
                    " array) or jq -c . (objects)",
    }
    for name, problem in expected.items():
        refused = mot(store, "import", tmp_path / name, ok=False)
        assert refused.exit_code == 1
        assert refused.stderr == f"Error: {tmp_path / name}: {problem}\n"
        as_csv = mot(store, "import", "--format", "csv", tmp_path / name, ok=False)
        if name != "one.json":  # read as CSV, its header is named: "unknown column '{'"
            assert as_csv.stderr == refused.stderr
    folder = mot(store, "import", tmp_path / "folder", ok=False)
    assert folder.stderr == (f"Error: {tmp_path / 'folder'} is a directory: name the files in it,"
                             f" such as {tmp_path / 'folder' / '*.jsonl'}\n")
    # A stray zero byte is its line's: quarantined, the rest recorded.
    stray = tmp_path / "stray.jsonl"
    stray.write_bytes(lines + b'{"tenant": "ac\x00me"}\n')
    assert mot(store, "import", stray).stdout.startswith("read 3: recorded 2,")


def test_a_second_sample_into_one_store_is_warned_about_as_what_it_is(tmp_path: Path) -> None:
    """`mot sample 100 | mot import -` into make demo's store quarantined 69 of 100 (the same
    source ids, other content) and asked only 'is the input what --format and --from say?'."""
    from mot.adapters.sources.sample import generate_lines

    store = str(tmp_path / "mot.db")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_bytes(b"".join(generate_lines(600, seed=7)))
    second.write_bytes(b"".join(generate_lines(100, seed=7)))
    mot(store, "import", "-q", first)
    result = mot(store, "import", second)
    assert "were quarantined (mot quarantine summary says why): is the input what --format and " \
           "--from say, and not other versions of moments recorded before (another sample, " \
           "say)?" in result.stderr
    summary = mot(store, "quarantine", "summary", "--format", "json").stdout
    assert "is already recorded with other content" in summary


def test_a_sink_without_its_broker_names_the_address_it_tried() -> None:
    """mot kafka publish and export with no broker said 'Error: KafkaTimeoutError: Unable to
    bootstrap from ['127.0.0.1:1']'; they say what it was, as mot kafka ingest does."""
    import pytest

    from mot.adapters.kafka.client import KafkaSink
    from mot.service.streaming import StreamError

    with pytest.raises(StreamError) as raised:
        KafkaSink("127.0.0.1:1", bootstrap_timeout_ms=500)
    assert str(raised.value).startswith(
        "cannot reach the Kafka broker at 127.0.0.1:1 (--bootstrap-servers): ")
