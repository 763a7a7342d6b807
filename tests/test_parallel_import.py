"""Validating in worker processes changes nothing but the speed.

`mot import --workers N` parses batches in N processes while the main process
appends. These tests hold the two paths to the same results: the same parsed
messages (every case of the bad-input corpus included), the same stored
events byte for byte, the same summary and quarantine, on both stores.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from process_support import running, still_running

from mot.adapters.sources.sample import generate_lines
from mot.adapters.stores.codec import to_row
from mot.bootstrap import open_store
from mot.cli.main import cli
from mot.domain.events import EncodedMoment, MomentRecorded
from mot.domain.identity import moment_stream_id
from mot.domain.messages import RecordMoment
from mot.service.ledger import Incoming
from mot.service.parsing import ParsePool, parse_here
from mot.service.workers import OrderedPool, WorkerFailed

NOW = datetime.now(UTC)
CORPUS = Path(__file__).parent / "corpus" / "bad_moments.jsonl"


def corpus_items() -> list[Incoming]:
    """Every bad-input case, good moments, corrections, and an item its source could not map."""
    items = [Incoming(orjson.loads(line)["line"].encode(), f"corpus:{n}")
             for n, line in enumerate(CORPUS.read_bytes().splitlines(), 1)]
    items += [Incoming(line.strip(), f"sample:{n}")
              for n, line in enumerate(generate_lines(300, seed=3, corrections=True), 1)]
    items.append(Incoming(b"a,b,c", "export.csv:9", problem="CSV row has 3 cells, the header has 9"))
    return items


def test_workers_parse_exactly_as_this_process_does() -> None:
    items = corpus_items()
    batches = [items[i:i + 37] for i in range(0, len(items), 37)]
    here = list(parse_here(batches, lambda: NOW))
    with ParsePool(2) as pool:
        there = list(pool.map(batches, lambda: NOW))
    assert [batch for batch, _, _ in there] == batches
    assert [parsed for _, parsed, _ in there] == [parsed for _, parsed, _ in here]
    moments = [p for _, parsed, _ in there for p in parsed if isinstance(p, RecordMoment)]
    assert len(moments) > 250
    # A worker's moment arrives as its JSON and stays JSON until something reads it.
    assert all(type(m.moment) is EncodedMoment for m in moments)


def test_an_encoded_moment_is_stored_as_the_same_bytes_as_its_dict() -> None:
    moment = {"moment_id": "6f1c9e2a-3b4d-4c5e-8f70-123456789abc", "tenant": "acme",
              "sentiment": -0.25, "attributes": {"score": 9, "tags": ["a", "é"]}}
    encoded = EncodedMoment(orjson.dumps(moment))
    as_dict = to_row(MomentRecorded(moment["moment_id"], 1, moment, "2026-03-02T12:00:00Z", "f:1",
                                    "acme"),
                     "id")
    as_json = to_row(MomentRecorded(moment["moment_id"], 1, encoded, "2026-03-02T12:00:00Z", "f:1",
                                    "acme"),
                     "id")
    assert as_json == as_dict
    assert encoded == moment and moment == encoded and encoded["attributes"]["score"] == 9
    assert dict(encoded) == moment and len(encoded) == 4
    assert encoded != {**moment, "tenant": "globex"}
    with pytest.raises(TypeError):
        hash(encoded)


def stored_events(url: str) -> list[tuple[Any, ...]]:
    """(moment id, version, topic, state without the time of recording) in ledger order."""
    with closing(open_store(url)) as services:
        notes = services.ledger_store.notifications(0, 10_000_000)
    rows = []
    for _, event in notes:
        state = {name: getattr(event, name) for name in event.__slots__  # type: ignore[union-attr]
                 if name not in ("recorded_at",)}
        rows.append(orjson.dumps(state, default=dict, option=orjson.OPT_SORT_KEYS))
    return rows


def test_an_import_with_workers_stores_what_one_without_stores(
    make_store_url: Any, tmp_path: Path
) -> None:
    lines = [line.strip() for line in generate_lines(3_000, seed=11, corrections=True,
                                                     bad_lines=True)]
    source = tmp_path / "moments.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    results = {}
    for workers in ("0", "2"):
        for kind in ("sqlite", "postgres"):
            url = make_store_url(kind)
            result = CliRunner().invoke(cli, ["--store", url, "import", "--workers", workers,
                                              "--batch-size", "100", "--summary-json", "-q",
                                              str(source)])
            assert result.exit_code == 0, result.output
            summary = orjson.loads(result.output)
            summary.pop("seconds")
            with closing(open_store(url)) as services:
                quarantine = [(q.origin, q.field, q.reason, q.repeats)
                              for q in services.ledger_store.quarantine()]
            results[workers, kind] = (summary, stored_events(url), quarantine)
    reference = results["0", "sqlite"]
    summary, events, quarantine = reference
    assert summary["read"] == 3_000 and summary["recorded"] > 2_800
    assert summary["amended"] > 0 and summary["retracted"] > 0 and summary["quarantined"] > 0
    assert len(events) == summary["recorded"] + summary["amended"] + summary["retracted"]
    assert len(quarantine) > 0
    for key, result in results.items():
        assert result == reference, key


def test_a_sqlite_store_is_created_with_16_kb_pages(tmp_path: Path) -> None:
    path = tmp_path / "mot.db"
    with closing(open_store(str(path))):
        pass
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (16384,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_worker_process_that_dies_is_one_error_saying_what_to_do() -> None:
    # The pool both bulk paths (import, rebuild) share: results in order, and a dead
    # worker is an error the CLI prints as one line.
    with OrderedPool(2, "a worker stopped; run it again") as pool:
        assert list(pool.imap(pow, [(n, (n, 2)) for n in range(9)])) == [
            (n, n * n) for n in range(9)]
        with pytest.raises(WorkerFailed, match=r"^a worker stopped; run it again$"):
            list(pool.imap(os._exit, [(None, (3,))]))


def test_started_hands_its_first_tasks_to_the_workers_before_the_first_result_is_asked(
        tmp_path: Path) -> None:
    # A rebuild's workers extract moments while the main process reads the links.
    import time

    paths = [tmp_path / f"task-{n}" for n in range(7)]
    with OrderedPool(2, "a worker stopped") as pool:
        results = pool.started(Path.touch, [(path, (path,)) for path in paths])
        deadline = time.monotonic() + 60
        while not all(path.exists() for path in paths[:pool.ahead]):
            assert time.monotonic() < deadline, "the first tasks did not run"
            time.sleep(0.05)
        assert [context for context, _ in results] == paths


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A `mot import` or `mot replay` killed with SIGKILL cannot tell its workers to stop:
    they notice they were orphaned and exit, rather than hold the store's connections."""
    import signal
    import subprocess
    import sys

    script = (
        "import os, sys, time\n"
        "from mot.service.workers import OrderedPool\n"
        "if __name__ == '__main__':\n"
        "    pool = OrderedPool(2, 'stopped')\n"
        "    pids = [pid for _, pid in pool.imap(os.getpid, [(None, ())] * 8)]\n"
        "    print(*sorted(set(pids)), flush=True)\n"
        "    time.sleep(60)\n"
    )
    path = tmp_path / "pool.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(workers) in (1, 2) and all(running(pid) for pid in workers)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert still_running(set(workers)) == []


def test_a_moment_split_by_a_worker_is_sealed_as_its_dict_is(
    make_store_url: Any, store_kind: str
) -> None:
    """For a ledger that seals, a worker hands a moment over split (plain JSON, the box's
    plaintext, the customer id); its sealed row is the dict's row, box aside, on both stores,
    and opens to the same moment. For a ledger that does not seal, the moment's JSON."""
    from mot.adapters.stores.topics import RECORDED

    items = [Incoming(line.strip(), f"sample:{n}")
             for n, line in enumerate(generate_lines(200, seed=5, corrections=False), 1)]
    with ParsePool(1, split=True) as pool:
        split = [p for _, parsed, _ in pool.map([items], lambda: NOW) for p in parsed]
    with ParsePool(1, split=False) as pool:
        whole = [p for _, parsed, _ in pool.map([items], lambda: NOW) for p in parsed]
    here = [p for _, parsed, _ in parse_here([items], lambda: NOW) for p in parsed]
    moments = [p for p in split if isinstance(p, RecordMoment)]
    assert len(moments) > 150
    assert all(type(m.moment) is EncodedMoment and m.moment.sealable is not None for m in moments)
    assert all(type(p.moment) is EncodedMoment and p.moment.sealable is None  # type: ignore[union-attr]
               for p in whole if isinstance(p, RecordMoment))
    assert split == here and whole == here
    # Each new moment's stream id, made in the worker, is the one the store would make.
    for parsed in (split, whole):
        made = [(p.moment.stream_id, moment_stream_id(p.tenant, p.moment_id))  # type: ignore[union-attr]
                for p in parsed if isinstance(p, RecordMoment)]
        assert len(made) == len(moments) and all(ahead == own for ahead, own in made)

    def recorded(parsed: list[Any]) -> list[MomentRecorded]:
        # An origin that JSON escapes: the row is written out byte by byte, not by orjson.
        return [MomentRecorded(p.moment_id, 1, p.moment, "2026-03-02T12:00:00Z",
                               f'f:"{n}"\\\u00e9\n', p.tenant)
                for n, p in enumerate(parsed) if isinstance(p, RecordMoment)]

    with closing(open_store(make_store_url(store_kind))) as services:
        ledger = services.ledger_store
        ids = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(len(moments))]
        with services.backend.write("ledger") as tx:
            from_split = ledger.sealing.sealed_rows(tx, recorded(split), ids)
            from_dict = ledger.sealing.sealed_rows(tx, recorded(here), ids)
        opened = [ledger.sealing.open_states(None, [(RECORDED, row[3])])[0]
                  for row in from_split]

    def without_box(row: tuple[Any, ...]) -> Any:
        state = orjson.loads(row[3])
        assert set(state["moment"]["sealed"]) == {"k", "v"}
        state["moment"]["sealed"].pop("v")
        return (*row[:3], state)

    assert [without_box(r) for r in from_split] == [without_box(r) for r in from_dict]
    assert all(b'"sealed":{"k":' in row[3] and b"customer_id" not in row[3] for row in from_split)
    # The bytes orjson writes for the same state, in the same order.
    assert all(orjson.dumps(orjson.loads(row[3])) == row[3] for row in from_split + from_dict)
    assert [orjson.loads(row[3])["origin"] for row in from_split] == [
        event.origin for event in recorded(split)]
    assert '\u00e9' in recorded(split)[0].origin and '"' in recorded(split)[0].origin
    assert [o["moment"] for o in opened] == [dict(m.moment) for m in moments]
    # The moment's JSON, made when asked for, is the moment.
    assert all(orjson.loads(m.moment.json) == dict(m.moment) for m in moments)
