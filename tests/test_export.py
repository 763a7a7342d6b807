"""`mot export`: every table to Parquet, CSV or JSONL, read back as analysts would.

Each Parquet file is read back with DuckDB and must hold exactly the rows
`mot query NAME --format json` prints (and the moments `mot log` prints), with
timestamps as timestamps and counters as integers; CSV and JSONL likewise.
On SQLite and on real PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cli_support import mot, query
from conftest import RECORD_KEYS
from process_support import run

NAMES = ("relationships", "reciprocity", "transitions", "amplifications", "teams", "listening",
         "responses", "persons")
AS_OF = "2026-01-22T12:00:00Z"






def keyed(table: str, records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in RECORD_KEYS[table]): r for r in records}


def rfc3339(value: datetime) -> str:
    """A DuckDB timestamp back as `mot query` writes it."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def duckdb_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The rows of a Parquet file as DuckDB reads them (timestamps as text again), and
    each column's DuckDB type."""
    with duckdb.connect() as con:
        relation = con.sql(f"SELECT * FROM read_parquet('{path}')")
        names = relation.columns
        types = dict(zip(names, map(str, relation.types), strict=True))
        rows = relation.fetchall()
    records = [{n: rfc3339(v) if isinstance(v, datetime) else v for n, v in zip(names, row,
                                                                            strict=True)}
               for row in rows]
    for record in records:  # a person's ids are JSON text in Parquet, as `attributes` is
        if isinstance(record.get("customer_ids"), str):
            record["customer_ids"] = json.loads(record["customer_ids"])
    return records, types


def current_moments(store: str) -> list[dict[str, Any]]:
    """Every current moment, as `mot log` prints it, customer by customer."""
    out = []
    for r in query(store, "relationships"):
        out += json.loads(mot(store, "log", "--tenant", r["tenant"], "--customer",
                              r["customer_id"], "--format", "json").stdout)
    return out


def test_parquet_read_back_with_duckdb_equals_mot_query(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    mot(store_url, "import", "-q", golden_path)
    extra = tmp_path / "extra.jsonl"  # every optional field of a moment, attributes too
    extra.write_text(json.dumps({
        "tenant": "acme", "customer_id": "c-export", "occurred_at": "2026-02-01T10:00:00.25+01:00",
        "channel": "web", "direction": "inbound", "kind": "purchase", "function": "sales",
        "value": 120, "currency": "EUR", "url": "https://shop.example/o/1",
        "source": {"system": "export-test", "id": "o-1"},
        "attributes": {"plan": "pro", "seats": 3, "ratio": 1.25e3, "note": "naïve \"q\""}}) + "\n")
    mot(store_url, "import", "-q", extra)
    out = tmp_path / "exports"
    listing = mot(store_url, "export", "--format", "parquet", "--out", out, "-q").stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{t}.parquet" for t in ("moments", *NAMES))
    for name in NAMES:
        expected = query(store_url, name)
        rows, types = duckdb_rows(out / f"{name}.parquet")
        assert f"{name}.parquet  {len(expected):,} rows" in listing
        assert len(rows) == len(expected) and expected
        assert keyed(name, rows) == keyed(name, expected), name
        assert list(rows[0]) == [k for k in expected[0] if k in rows[0]]
        assert set(rows[0]) == set(expected[0])
        for field, value in expected[0].items():
            if field.endswith("_at") and value is not None:
                assert types[field] == "TIMESTAMP WITH TIME ZONE", field
            elif isinstance(value, bool):
                assert types[field] == "BOOLEAN", field
            elif isinstance(value, int):
                assert types[field] == "BIGINT", field
    # The current moments: every field of mot log's that the moments table holds.
    moments, types = duckdb_rows(out / "moments.parquet")
    logged = keyed("moments", current_moments(store_url))
    assert len(moments) == len(logged) == 33
    for moment in moments:
        document = logged[(moment["moment_id"],)]
        source = document.get("source") or {}
        document |= {"source_system": source.get("system"), "source_id": source.get("id")}
        for field, value in moment.items():
            if field == "attributes":
                assert (value and json.loads(value)) == document.get(field), moment["moment_id"]
            elif field == "value":
                assert value == document.get(field) and (value is None or type(value) is float)
            elif field != "version":
                assert value == document.get(field), (field, moment["moment_id"])
    assert any(m["attributes"] for m in moments) and any(m["value"] for m in moments)
    assert any(m["url"] for m in moments) and any(m["source_system"] for m in moments)
    assert types["attributes"] == types["currency"] == "VARCHAR" and types["value"] == "DOUBLE"
    assert types["occurred_at"] == "TIMESTAMP WITH TIME ZONE" and types["reach"] == "BIGINT"
    # What an analyst asks first, answered by DuckDB from the files alone.
    with duckdb.connect() as con:
        stages = con.sql(f"SELECT stage, count(*) FROM '{out}/relationships.parquet'"
                         " WHERE tenant = 'acme' GROUP BY 1 ORDER BY 1").fetchall()
    expected_stages: dict[str, int] = {}
    for r in query(store_url, "relationships", "--tenant", "acme"):
        expected_stages[r["stage"]] = expected_stages.get(r["stage"], 0) + 1
    assert stages == sorted(expected_stages.items())


def test_a_parquet_export_without_refresh_reads_the_tables_alone_and_writes_the_same_rows(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    """`--no-refresh`: the tables are read by the ADBC driver, the store not opened whole
    (psycopg and eventsourcing are not even imported, nor the projection tables' adapter, nor
    `mot query`'s command module for the `--as-of` option's type);
    the files hold the same rows in the same order as an export of the store opened whole,
    a tenant's too."""
    mot(store_url, "import", "-q", golden_path)
    for options in ([], ["--tenant", "acme"]):
        whole, alone = tmp_path / f"whole{len(options)}", tmp_path / f"alone{len(options)}"
        # Each in a process of its own, as `mot` runs: the first refreshes, so it opens the
        # store whole.
        for out, refresh in ((whole, []), (alone, ["--no-refresh"])):
            run = subprocess.run([sys.executable, "-c", EXPORT, store_url, str(out), *refresh,
                                  *options], capture_output=True, text=True, check=True)
            loaded = json.loads(run.stdout.splitlines()[-1])
            if refresh:
                assert loaded == [], loaded
            else:  # opened whole (eventsourcing loads when a refresh projects something)
                assert "mot.adapters.stores.projection_tables" in loaded, loaded
                assert ("psycopg" in loaded) == store_url.startswith("postgresql://"), loaded
        for name in ("moments", *NAMES):
            expected, expected_types = duckdb_rows(whole / f"{name}.parquet")
            rows, types = duckdb_rows(alone / f"{name}.parquet")
            assert rows == expected and types == expected_types, (name, options)
            assert rows or (name in ("listening", "teams") and options), (name, options)
            if options:
                assert {r["tenant"] for r in rows} <= {"acme"}, name


EXPORT = """
import json, sys
from mot.cli.main import cli
cli.main(["--store", sys.argv[1], "export", "--format", "parquet", "--out", sys.argv[2], "-q",
          *sys.argv[3:]], prog_name="mot", standalone_mode=False)
print(json.dumps(sorted(m for m in sys.modules if m in ("eventsourcing", "psycopg",
                                                      "mot.adapters.stores.projection_tables",
                                                      "mot.cli.projection_commands"))))
"""


def test_numpy_left_out_of_the_exports_pyarrow_is_absent_not_broken_for_the_other_threads(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    """The export imports pyarrow without numpy in a thread while the command's thread opens
    the store. numpy was hidden by a None in sys.modules, which psycopg takes for numpy
    itself: a PostgreSQL connection opened meanwhile failed (an integer literal's dumper
    read `numpy.integer` off None), and the export after a pool timeout (CI, 1 of 1,712).
    Here the loading thread is held inside pyarrow's import while another thread looks."""
    mot(store_url, "import", "-q", golden_path)
    run = subprocess.run([sys.executable, "-c", HELD_EXPORT, store_url, str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.splitlines()[-1])
    assert seen == ["'absent'", "1"], seen
    rows, _ = duckdb_rows(tmp_path / "out" / "relationships.parquet")
    assert keyed("relationships", rows) == keyed("relationships", query(store_url,
                                                                        "relationships"))


HELD_EXPORT = """
import json, sys, threading
inside, looked, seen = threading.Event(), threading.Event(), []


class Held:  # holds the export's loading thread inside its numpy-less import of pyarrow
    def find_spec(self, name, path, target=None):  # (under the global import lock: no wait)
        if name != "pyarrow._parquet" or threading.current_thread().name != "export-imports":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path, target)
        run = spec.loader.exec_module

        def held(module):
            inside.set()
            looked.wait(60)
            run(module)

        spec.loader.exec_module = held
        return spec


def look():
    inside.wait(60)
    seen.append(repr(sys.modules.get("numpy", "absent")))
    try:  # an integer's dumper looks for numpy in sys.modules
        seen.append(psycopg.sql.Literal(1).as_string(None))
    except Exception as error:
        seen.append(repr(error))
    looked.set()


# psycopg imported before the threads start: two threads importing one package at once can
# meet it partly initialised (its circular imports), which is not what this test is about.
import psycopg.sql
sys.meta_path.insert(0, Held())
threading.Thread(target=look).start()
from mot.cli.main import cli
cli.main(["--store", sys.argv[1], "export", "--format", "parquet", "--out", sys.argv[2], "-q"],
         prog_name="mot", standalone_mode=False)
print(json.dumps(seen))
"""


def test_the_parquet_export_allocates_with_jemalloc_where_arrow_has_it_unless_told_otherwise(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    """Arrow's default pool in a Parquet export is jemalloc where the pyarrow build has it,
    else the C library's malloc, not the wheels' default mimalloc (whose per-thread heaps held
    more memory: bench/NOTES.md); a pool the user names in ARROW_DEFAULT_MEMORY_POOL is kept.
    The files read back the same either way."""
    import pyarrow

    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", "-q")
    chosen = "jemalloc" if "jemalloc" in pyarrow.supported_memory_backends() else "system"
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    files = {}
    for pool, told in ((chosen, None), ("mimalloc", "mimalloc")):
        out = tmp_path / pool
        done = run([sys.executable, "-c", POOL_EXPORT, store_url, str(out), "--no-refresh"],
                   text=True, env=env if told is None
                   else env | {"ARROW_DEFAULT_MEMORY_POOL": told})
        assert json.loads(done.stdout.splitlines()[-1]) == pool
        assert "memory pool" not in done.stderr.lower(), done.stderr  # no warning of Arrow's
        files[pool] = {name: duckdb_rows(out / f"{name}.parquet")
                       for name in ("moments", "relationships")}
    assert files[chosen] == files["mimalloc"] and files[chosen]["moments"][0]


POOL_EXPORT = """
import json, sys
from mot.cli.main import cli
cli.main(["--store", sys.argv[1], "export", "--format", "parquet", "--out", sys.argv[2], "-q",
          *sys.argv[3:]], prog_name="mot", standalone_mode=False)
import pyarrow
print(json.dumps(pyarrow.default_memory_pool().backend_name))
"""


def test_a_store_at_another_schema_version_is_opened_whole_by_an_export_without_refresh(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    """The ADBC-only read is for a store at this schema version: one at an earlier version is
    opened whole (which brings its schema up to date) and exported as any other."""
    from mot.adapters.stores.sql import SCHEMA_VERSION
    from mot.bootstrap import open_store

    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", "-q")
    with open_store(store_url, create=False) as services, \
            services.backend.write("schema") as tx:
        tx.execute("UPDATE mot_schema SET version = ?", (SCHEMA_VERSION - 1,))
    mot(store_url, "export", "--out", tmp_path / "x", "--no-refresh", "-q")
    with open_store(store_url, create=False) as services, services.backend.read() as tx:
        assert tx.scalar("SELECT MAX(version) FROM mot_schema") == SCHEMA_VERSION
    rows, _ = duckdb_rows(tmp_path / "x" / "relationships.parquet")
    assert keyed("relationships", rows) == keyed("relationships", query(store_url,
                                                                        "relationships"))


def test_csv_and_jsonl_hold_the_query_rows_and_tenant_and_as_of_filter(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "export", "--format", "jsonl", "--out", tmp_path / "j", "-q",
        "--tenant", "acme")
    mot(store_url, "export", "--format", "csv", "--out", tmp_path / "c", "-q",
        "--as-of", AS_OF)
    for name in NAMES:
        expected = query(store_url, name, "--tenant", "acme")
        lines = (tmp_path / "j" / f"{name}.jsonl").read_text().splitlines()
        exported = [json.loads(line) for line in lines]
        assert exported and list(exported[0]) == list(expected[0])
        assert keyed(name, exported) == keyed(name, expected), name
        as_of = query(store_url, name, "--as-of", AS_OF)
        with (tmp_path / "c" / f"{name}.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        assert keyed(name, rows) == keyed(name, [
            {k: "" if v is None else "true" if v is True else "false" if v is False
             else json.dumps(v, separators=(",", ":")) if isinstance(v, list) else str(v)
             for k, v in r.items()} for r in as_of]), name
    moments = [json.loads(line) for line in
               (tmp_path / "j" / "moments.jsonl").read_text().splitlines()]
    assert moments and {m["tenant"] for m in moments} == {"acme"}
    with (tmp_path / "c" / "moments.csv").open(newline="") as file:
        early = list(csv.DictReader(file))
    assert early and max(m["occurred_at"] for m in early) <= AS_OF


def test_an_as_of_export_after_every_moment_is_the_live_export_line_for_line(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    """The same rows in the same order with or without --as-of (amplifications and
    responses, which the fold gives a person at a time, sorted by their ids as well)."""
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "export", "--format", "jsonl", "--out", tmp_path / "live", "-q")
    mot(store_url, "export", "--format", "jsonl", "--out", tmp_path / "past", "-q",
        "--as-of", "2100-01-01T00:00:00Z")
    for name in ("moments", *NAMES):
        live = (tmp_path / "live" / f"{name}.jsonl").read_text().splitlines()
        past = (tmp_path / "past" / f"{name}.jsonl").read_text().splitlines()
        assert live, name
        # A row's version is the live table's (none as of a time); lapsed is worked out at
        # each export's own time.
        live, past = ([{k: v for k, v in json.loads(line).items()
                        if k not in ("version", "lapsed") or name == "moments"}
                       for line in lines] for lines in (live, past))
        assert past == live, name


def test_an_empty_store_exports_empty_files_with_their_columns(tmp_path: Path) -> None:
    store = str(tmp_path / "empty.db")
    with_nothing = tmp_path / "nothing.jsonl"
    with_nothing.write_bytes(b"")
    mot(store, "import", "-q", with_nothing)  # export only reads: an import creates the store
    mot(store, "export", "--out", tmp_path / "x", "-q")
    rows, types = duckdb_rows(tmp_path / "x" / "relationships.parquet")
    assert rows == [] and types["lapsed"] == "BOOLEAN" and types["exchanges"] == "BIGINT"
    assert not [p for p in (tmp_path / "x").iterdir() if p.name.endswith(".part")]


def test_an_out_that_exists_and_is_no_directory_is_refused_naming_the_option(
        tmp_path: Path) -> None:
    """`mot export --out /dev/null` (a device: click's file_okay=False passes it) failed
    with a bare 'Error: /dev/null: File exists' once the store was open."""
    store = str(tmp_path / "s.db")
    mot(store, "import", "-q", "-", input=b"")
    refused = mot(store, "export", "--out", "/dev/null", "-q", ok=False)
    assert refused.exit_code == 2
    assert ("Invalid value for '--out': '/dev/null' exists and is not a directory: --out names"
            " a directory the TABLE.FORMAT files are written into (created if missing)"
            in refused.stderr)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_streams_a_page_at_a_time(fmt: str, tmp_path: Path, golden_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages smaller than a table: every page is written, in key order, none twice."""
    import mot.service.export as export

    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    monkeypatch.setattr(export, "PAGE_ROWS", 4)
    mot(store, "export", "--format", fmt, "--out", tmp_path / "x", "-q")
    expected = query(store, "relationships", "--sort", "+tenant")  # the tables' key order
    if fmt == "parquet":
        rows, _ = duckdb_rows(tmp_path / "x" / "relationships.parquet")
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in
                (tmp_path / "x" / "relationships.jsonl").read_text().splitlines()]
    else:
        with (tmp_path / "x" / "relationships.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
    assert [(r["tenant"], r["customer_id"]) for r in rows] == [
        (r["tenant"], r["customer_id"]) for r in expected]


def test_parquet_pages_keep_their_types_with_tenant_and_as_of(
    tmp_path: Path, golden_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two rows: a column NULL throughout a first page (a moment's `value`) is still
    DOUBLE, and the tenant and as-of filters give the rows the JSON lines export gives."""
    import mot.service.export as export

    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    monkeypatch.setattr(export, "PAGE_ROWS", 2)
    for options in (["--tenant", "acme"], ["--as-of", AS_OF]):
        mot(store, "export", "--format", "parquet", "--out", tmp_path / "p", "-q", *options)
        mot(store, "export", "--format", "jsonl", "--out", tmp_path / "j", "-q", *options)
        for name in ("moments", *NAMES):
            rows, types = duckdb_rows(tmp_path / "p" / f"{name}.parquet")
            lines = (tmp_path / "j" / f"{name}.jsonl").read_text().splitlines()
            expected = [json.loads(line) for line in lines]
            if name == "moments":
                assert types["value"] == "DOUBLE" and types["sentiment"] == "DOUBLE"
                assert types["occurred_at"] == "TIMESTAMP WITH TIME ZONE"
                rows = [r | {"attributes": r["attributes"] and json.loads(r["attributes"])}
                        for r in rows]
            assert rows and len(rows) == len(expected), (name, options)
            assert keyed(name, rows) == keyed(name, expected), (name, options)


def test_as_of_export_streams_with_flat_memory(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`--as-of` folds a read of persons at a time and writes each page as it fills: the
    Python memory an export of four times the moments needs at its peak stays within
    1.5x of the smaller one's (it grew with the store when every record was held)."""
    import tracemalloc

    import mot.service.as_of as as_of
    import mot.service.export as export
    from mot.adapters.sources.sample import generate_lines

    # Reads and pages small next to the stores, as 2,000 persons and 32,768 rows are next
    # to a million moments.
    monkeypatch.setattr(as_of, "CUSTOMERS_PER_READ", 10)
    monkeypatch.setattr(export, "PAGE_ROWS", 100)
    peaks = []
    for n in (1500, 6000):
        store = str(tmp_path / f"n{n}.db")
        sample = tmp_path / f"n{n}.jsonl"
        sample.write_bytes(b"".join(generate_lines(n, seed=3)))
        mot(store, "import", "-q", sample)
        mot(store, "project", "-q")
        args = ("export", "--format", "parquet", "--out", tmp_path / f"x{n}", "-q",
                "--no-refresh", "--as-of", "2026-06-01T00:00:00Z")
        mot(store, *args)  # modules loaded and caches filled before measuring
        tracemalloc.start()
        try:
            mot(store, *args)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        rows, _ = duckdb_rows(tmp_path / f"x{n}" / "relationships.parquet")
        assert len(rows) == len(query(store, "relationships", "--as-of", "2026-06-01T00:00:00Z"))
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_a_failed_parquet_export_leaves_no_part_file(tmp_path: Path, golden_path: Path) -> None:
    """Two tables are written at once: when one cannot be put in place (its name is taken
    by a directory), the export fails naming it, and no table's scratch file is left."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    out = tmp_path / "x"
    (out / "relationships.parquet").mkdir(parents=True)
    (out / "relationships.parquet" / "keep").write_text("not a table")
    failed = mot(store, "export", "--format", "parquet", "--out", out, "-q", ok=False)
    assert failed.exit_code != 0 and "relationships.parquet" in failed.output, failed.output
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    assert (out / "relationships.parquet" / "keep").read_text() == "not a table"


def test_an_arrow_read_leaves_the_write_ahead_log_to_the_stores_connections(
    tmp_path: Path, golden_path: Path
) -> None:
    """The ADBC driver's SQLite (a second SQLite in the process) closing its connections must
    not checkpoint and delete the write-ahead log and its index that the store's own open
    connection maps: it did, and that connection's next statement faulted (SIGBUS)."""
    from mot.bootstrap import open_store
    from mot.service.queries import Query

    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    services = open_store(store, create=False)
    try:
        teams = services.queries.run(Query("teams"))  # the store's connection, in WAL mode
        log, index = Path(store + "-wal"), Path(store + "-shm")
        assert log.exists() and index.exists()
        services.exporter.export(tmp_path / "x", "parquet")
        assert log.exists() and index.exists()
        assert services.queries.run(Query("teams")) == teams
    finally:
        services.close()


def test_an_arrow_read_keeps_the_processs_locks_so_no_other_process_deletes_the_log(
        tmp_path: Path, golden_path: Path) -> None:
    """POSIX locks are the process's: when the ADBC driver's SQLite released its locks on
    the store and closed its files, every lock of the process on them went, those of the
    store's own connection too. Another process closing the store (a `mot query` run while
    `mot export` or `mot report` read) then found no one else and deleted the write-ahead
    log and its index under this process: its next commit went to a deleted log, seen by
    no other process."""
    import sys

    from mot.bootstrap import open_store
    from mot.service.ledger import Incoming

    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    mot(store, "project")
    services = open_store(store, create=False)
    try:
        services.exporter.export(tmp_path / "x", "parquet")
        services.report()
        command = [str(Path(sys.executable).parent / "mot"), "--store", store]
        run([*command, "query", "teams", "--format", "json"])
        assert Path(store + "-wal").exists() and Path(store + "-shm").exists()
        moment = (b'{"tenant": "acme", "customer_id": "c-after", "occurred_at":'
                  b' "2026-03-01T09:00:00Z", "channel": "email", "direction": "inbound",'
                  b' "kind": "question", "source": {"system": "s", "id": "after-export"}}')
        assert services.ledger.record([Incoming(moment, "test")]).outcomes()
    finally:
        services.close()
    shown = run([*command, "show", "s:after-export", "--tenant", "acme", "--format", "json"],
                text=True)
    assert json.loads(shown.stdout), shown.stderr


def test_a_second_export_in_one_process_after_another_process_closed_the_store(
        tmp_path: Path, golden_path: Path) -> None:
    """Exports in one process, another process opening and closing the store between them:
    the second failed with "unable to open database file". The first export's reader
    threads left their connections of the store to the garbage collector, which a
    reference cycle kept open; the other process, last to close, deleted the write-ahead
    log's index; the next opening here shared the open connection's index (deleted, so
    none on disk), and the ADBC driver's read-only connection needs the file."""
    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    mot(store, "project")
    other = [str(Path(sys.executable).parent / "mot"), "--store", store, "query", "teams",
             "--format", "json"]
    teams = query(store, "teams")
    for attempt, refresh in enumerate((["--no-refresh"], ["--no-refresh"], [], [])):
        out = tmp_path / f"x{attempt}"
        mot(store, "export", "--format", "parquet", "--out", out, "-q", *refresh)
        assert duckdb_rows(out / "teams.parquet")[0] == teams
        assert json.loads(run(other).stdout) == teams


def test_an_as_of_exports_sort_folder_killed_with_it_goes_with_the_next_erasure(
        tmp_path: Path) -> None:
    """An --as-of export sorts amplifications and responses in a scratch SQLite file, their
    customer ids and actors in the clear; killed with SIGKILL it cannot remove it. Its folder
    is marked with its owner, so the next erasure (or verify) removes it (SPEC 6)."""
    import os
    import subprocess
    import sys

    store = str(tmp_path / "mot.db")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps(m) for m in [
        {"tenant": "acme", "customer_id": "x:maria-export", "occurred_at": "2026-03-01T09:00:00Z",
         "channel": "twitter", "direction": "public", "kind": "post", "sentiment": -0.8,
         "reach": 10, "source": {"system": "x", "id": "p-1"}}]) + "\n")
    mot(store, "import", "-q", source)
    mot(store, "project")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    # A real export's sort, killed once it has sorted the first page (its file then holds her).
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from datetime import datetime, UTC\n"
        "from mot.bootstrap import open_store\n"
        "pages = open_store(sys.argv[1]).exporter.pages('amplifications',"
        " as_of=datetime(2026, 4, 1, tzinfo=UTC))\n"
        "next(pages)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"), store], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr
    [left] = scratch.iterdir()
    assert any(b"x:maria-export" in f.read_bytes() for f in left.rglob("*") if f.is_file())
    # The erasure runs with another temporary folder (a shell's, where the export was a cron
    # job's): it still finds the folder, by the places this user's mot noted.
    elsewhere = tmp_path / "other-tmp"
    elsewhere.mkdir()
    erased = subprocess.run([str(Path(sys.executable).parent / "mot"), "--store", store, "erase",
                             "--tenant", "acme", "--customer", "x:maria-export", "--reason", "r"],
                            env={**env, "TMPDIR": str(elsewhere)}, capture_output=True)
    assert erased.returncode == 0, erased.stderr
    assert list(scratch.iterdir()) == []


def test_the_compiled_parquet_writer_writes_the_files_pyarrow_parquet_writes(
        tmp_path: Path, golden_path: Path) -> None:
    """The export writes with pyarrow's compiled writer, given the defaults of
    `pyarrow.parquet.ParquetWriter` (which imports every remote filesystem): each exported
    file, written again row group by row group with that wrapper, is the same bytes."""
    import pyarrow.parquet as pq

    from mot.service.export import EXPORTED, _nearly_unique, columns

    store = str(tmp_path / "mot.db")
    mot(store, "import", "-q", golden_path)
    out = tmp_path / "x"
    mot(store, "export", "--format", "parquet", "--out", out, "-q")
    for table in EXPORTED:
        path = out / f"{table}.parquet"
        written = pq.ParquetFile(path)
        again = tmp_path / f"{table}.again.parquet"
        with pq.ParquetWriter(again, written.schema_arrow, use_dictionary=[
                c.name for c in columns(table) if not _nearly_unique(c)]) as writer:
            for group in range(written.num_row_groups):
                part = written.read_row_group(group)
                writer.write_table(part, row_group_size=max(part.num_rows, 1))
        assert again.read_bytes() == path.read_bytes(), table
