"""Import throughput and memory: `mot import` against a raw insert of the same rows, same run.

    .venv/bin/python bench/import_bench.py [--n 1000000] [--stores sqlite,postgres]

For each store:

- raw baseline (in this process): the rows mot stores for the sample's moments (one
  `MomentRecorded` per distinct moment, encoded by mot's own codec *before* the clock
  starts) inserted into a fresh table shaped like eventsourcing's `stored_events`.
  SQLite: `executemany`, one transaction per 50,000 rows (mot's default --commit-every),
  with the pragmas of mot's own connection (page size, journal mode, synchronous, WAL
  checkpoint interval ...), read back from a throwaway mot store so the two always run
  with the same settings.
  PostgreSQL: binary `COPY` of the rows encoded into one buffer per transaction of 50,000
  (mot's own encoder, the fastest client side we know), into the recorder's table
  shape (primary key and the unique `notification_id` index the recorder creates).
- mot: `mot --store FRESH import FILE --summary-json -q` as a child process; wall time from
  spawn to exit (so it includes start-up), peak RSS of the mot process (GNU time), and the
  sampled peak of mot plus its validation worker processes.
- memory: the same import of an N/10 sample into another fresh store.

Issue targets: >= 40,000 moments/s on SQLite, >= 0.25 of the raw baseline, peak RSS
< 300 MB and independent of N (here: peak at N <= 1.2 x peak at N/10).
Figures go to stdout and bench/out/import_bench.json; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    drop_pg,
    drop_store,
    environment,
    fresh_pg,
    fresh_sqlite,
    fresh_store,
    log,
    mot_command,
    num,
    parser,
    pg_database,
    pg_settings,
    profile_command,
    report_row,
    run_measured,
    sample_file,
    settings_note,
    store_size_mb,
    stores_of,
    table,
    verdict,
    write_json,
)

from mot.adapters.stores.codec import to_row
from mot.adapters.stores.postgres import copy_binary
from mot.domain.events import MomentRecorded
from mot.domain.identity import moment_stream_id
from mot.domain.messages import RecordMoment, parse_message
from mot.domain.timefmt import format_utc, utc_now
from mot.service.ledger import DEFAULT_COMMIT

Row = tuple[str, int, str, bytes]

TARGET_RATE_SQLITE = 40_000
TARGET_RATIO = 0.25
TARGET_RSS_MB = 300
FLAT_FACTOR = 1.2

# The raw baselines commit as often as `mot import` does by default (--commit-every).
SQLITE_COMMIT_EVERY = DEFAULT_COMMIT
PG_COMMIT_EVERY = DEFAULT_COMMIT


def encode_rows(path: Path) -> tuple[list[Row], int]:
    """The stored events mot writes for the file's moments (first recording of each id only).

    Amendments, retractions and exact re-sends are left out: the baseline is moments only.
    Returns the rows and the number of lines read.
    """
    now = utc_now()
    recorded_at = format_utc(now)
    name = str(path)
    rows: list[Row] = []
    seen: set[str] = set()
    lines = 0
    started = time.perf_counter()
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            stripped = line.strip()
            if not stripped:
                continue
            lines += 1
            message = parse_message(stripped, now)
            stream_id = (moment_stream_id(message.tenant, message.moment_id)
                         if isinstance(message, RecordMoment) else None)
            if stream_id is not None and stream_id not in seen:
                assert isinstance(message, RecordMoment)
                seen.add(stream_id)
                rows.append(to_row(MomentRecorded(message.moment_id, 1, message.moment, recorded_at,
                                                  f"{name}:{number}", message.tenant), stream_id))
            if lines % 200_000 == 0:
                log(f"  encode: {lines:,} lines ({time.perf_counter() - started:.0f} s)")
    log(f"  encode: {len(rows):,} baseline rows from {lines:,} lines in "
        f"{time.perf_counter() - started:.1f} s (not timed)")
    return rows, lines


SQLITE_PRAGMAS = ("page_size", "journal_mode", "synchronous", "cache_size", "wal_autocheckpoint",
                  "mmap_size", "temp_store", "locking_mode")


def mot_sqlite_pragmas() -> dict[str, Any]:
    """The settings of the connection mot appends with, read back from a throwaway mot store,
    so that the raw baseline runs with whatever mot runs with (they change as mot is tuned).
    Read inside a ledger write: that is where mot's appending connection gets its larger
    page cache."""
    from mot.bootstrap import connect

    path = fresh_sqlite("pragmas")
    backend = connect(path)
    try:
        with backend.write("ledger") as tx:
            return {name: tx.scalar(f"PRAGMA {name}") for name in SQLITE_PRAGMAS}
    finally:
        backend.close()
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)


def baseline_sqlite(rows: list[Row], path: str, pragmas: dict[str, Any]) -> float:
    """Seconds to insert `rows` with executemany, committing as mot does; only the inserts timed.

    The connection gets mot's pragmas (journal mode, synchronous, checkpoint interval, ...)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for name in SQLITE_PRAGMAS:
        if pragmas.get(name) is not None:
            conn.execute(f"PRAGMA {name}={pragmas[name]}")
    conn.execute(
        "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, topic TEXT,"
        " state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )
    params = [(u.replace("-", ""), v, t, s) for u, v, t, s in rows]
    batches = [params[i:i + SQLITE_COMMIT_EVERY] for i in range(0, len(params), SQLITE_COMMIT_EVERY)]
    insert = ("INSERT INTO stored_events (originator_id, originator_version, topic, state)"
              " VALUES (?, ?, ?, ?)")
    started = time.perf_counter()
    for i, batch in enumerate(batches, start=1):
        conn.execute("BEGIN")
        conn.executemany(insert, batch)
        conn.execute("COMMIT")
        if i % 10 == 0:
            log(f"  raw sqlite: {i * SQLITE_COMMIT_EVERY:,} rows")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


def baseline_postgres(rows: list[Row], url: str) -> float:
    """Seconds to COPY `rows` (binary, encoded in the timed loop), committing as mot does."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE stored_events (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
            " topic text, state bytea, notification_id bigserial,"
            " PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute("CREATE UNIQUE INDEX stored_events_notification_id_idx"
                     " ON stored_events (notification_id ASC)")
        conn.commit()
        batches = [rows[i:i + PG_COMMIT_EVERY] for i in range(0, len(rows), PG_COMMIT_EVERY)]
        statement = ("COPY stored_events (originator_id, originator_version, topic, state)"
                     " FROM STDIN (FORMAT BINARY)")
        started = time.perf_counter()
        for i, batch in enumerate(batches, start=1):
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                copy.write(copy_binary(batch))
            conn.commit()
            if i % 10 == 0:
                log(f"  raw postgres: {i * PG_COMMIT_EVERY:,} rows")
        return time.perf_counter() - started


def run_baseline(kind: str, rows: list[Row], args: argparse.Namespace, when: str,
                 pragmas: dict[str, Any]) -> dict[str, Any]:
    log(f"{kind}: raw baseline ({when} mot), {len(rows):,} rows")
    load = os.getloadavg()[0]
    if kind == "sqlite":
        seconds = baseline_sqlite(rows, fresh_store("sqlite", "raw", args), pragmas)
        drop_store("sqlite", "raw", args)
    else:
        seconds = baseline_postgres(rows, fresh_pg(args.pg, pg_database("raw")))
        if not args.keep:
            drop_pg(args.pg, pg_database("raw"))
    rate = len(rows) / seconds
    log(f"  raw: {seconds:.2f} s = {rate:,.0f} rows/s")
    return {"when": when, "seconds": round(seconds, 3), "rows_per_s": rate, "loadavg_1m": load}


def mot_import(kind: str, name: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    store = fresh_store(kind, name, args)
    log(f"{kind}: mot import {path.name} into a fresh store")
    load = os.getloadavg()[0]
    run = run_measured([*mot_command(), "--store", store, "import", str(path), "--summary-json", "-q"],
                       f"mot import ({kind}, {path.name})").check(f"mot import into {kind}")
    summary = run.json()
    size = store_size_mb(kind, name, args)
    drop_store(kind, name, args)
    result = {
        "seconds": round(run.seconds, 3),
        "summary": summary,
        "moments_per_s": summary["read"] / run.seconds,
        "recorded_per_s": summary["recorded"] / run.seconds,
        "peak_rss_mb": round(run.maxrss_mb, 1),
        "peak_rss_method": run.rss_method,
        "polled_vmhwm_mb": None if run.polled_hwm_mb is None else round(run.polled_hwm_mb, 1),
        "peak_rss_with_workers_mb": (None if run.tree_peak_mb is None
                                     else round(run.tree_peak_mb, 1)),
        "store_mb": round(size, 1),
        "loadavg_1m": load,
    }
    log(f"  {summary['read']:,} lines in {run.seconds:.1f} s = {result['moments_per_s']:,.0f}/s, "
        f"peak RSS {run.maxrss_mb:.0f} MB")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    kinds = stores_of(args.stores)
    n, n_small = args.n, max(1, args.n // 10)
    big = sample_file(n, args.seed)
    small = None if args.single else sample_file(n_small, args.seed)

    log(f"baseline rows: encoding {big.name} with mot's parser and codec")
    rows, lines = encode_rows(big)
    results: dict[str, Any] = {
        "bench": "import", "n": n, "n_small": n_small, "seed": args.seed, "file": str(big),
        "lines": lines, "baseline_rows": len(rows), "environment": environment(),
        "postgres_settings": pg_settings(args.pg) if "postgres" in kinds else None, "stores": {},
    }

    for kind in kinds:
        # The raw baseline runs before and after mot's import (the machine may be shared:
        # this brackets mot's run); the ratio uses the mean of the two rates.
        pragmas = mot_sqlite_pragmas() if kind == "sqlite" else {}
        raw = [run_baseline(kind, rows, args, "before", pragmas)]
        full = mot_import(kind, "import", big, args)
        raw.append(run_baseline(kind, rows, args, "after", pragmas))
        part = None if small is None else mot_import(kind, "import_small", small, args)
        raw_rate = sum(r["rows_per_s"] for r in raw) / len(raw)
        ratio = full["moments_per_s"] / raw_rate
        # Memory counts mot's worker processes too, when they were sampled.
        peak = full["peak_rss_with_workers_mb"] or full["peak_rss_mb"]
        peak_small = None if part is None else part["peak_rss_with_workers_mb"] or part["peak_rss_mb"]
        flat = None if peak_small is None else peak <= FLAT_FACTOR * peak_small
        results["stores"][kind] = {
            "baseline": {"rows": len(rows), "rows_per_s": raw_rate, "runs": raw,
                         "method": (f"executemany, commit every {SQLITE_COMMIT_EVERY:,}, mot's pragmas"
                                    if kind == "sqlite"
                                    else f"binary COPY, one buffer per {PG_COMMIT_EVERY:,} rows"),
                         "pragmas": pragmas},
            "mot": full,
            "mot_small": part,
            "ratio": ratio,
            "targets": {
                "moments_per_s>=40000": None if kind != "sqlite" else
                full["moments_per_s"] >= TARGET_RATE_SQLITE,
                "ratio>=0.25": ratio >= TARGET_RATIO,
                "peak_rss<300MB": peak < TARGET_RSS_MB,
                "rss_flat(N<=1.2*N/10)": flat,
            },
        }
        if args.profile and small is not None:
            store = fresh_store(kind, "import_profile", args)
            results["stores"][kind]["profile"] = str(profile_command(
                ["--store", store, "import", str(small), "--summary-json", "-q"],
                f"import-{kind}-n{n_small}"))
            drop_store(kind, "import_profile", args)

    results["rows"] = [
        report_row("import", "mot import", kind, n, entry["mot"]["moments_per_s"], "moments/s",
                   baseline="raw insert of the same rows (" + entry["baseline"]["method"] + ")",
                   baseline_rate=entry["baseline"]["rows_per_s"],
                   peak_rss_mb=entry["mot"]["peak_rss_with_workers_mb"] or entry["mot"]["peak_rss_mb"],
                   seconds=entry["mot"]["seconds"])
        for kind, entry in results["stores"].items()]
    path = write_json("import_bench", results)
    print(report(results))
    log(f"figures written to {path}")
    return 0


def report(results: dict[str, Any]) -> str:
    stores = results["stores"]
    kinds = list(stores)
    n, n_small = results["n"], results["n_small"]

    def row(label: str, get: Any) -> list[str]:
        return [label, *(get(stores[k]) for k in kinds)]

    def small(s: dict[str, Any], key: str) -> Any:
        return None if s["mot_small"] is None else s["mot_small"][key]

    figures = [
        row("raw baseline rows (moments only)", lambda s: num(s["baseline"]["rows"])),
        row("raw baseline rows/s, before mot", lambda s: num(s["baseline"]["runs"][0]["rows_per_s"])),
        row("raw baseline rows/s, after mot", lambda s: num(s["baseline"]["runs"][1]["rows_per_s"])),
        row("raw baseline rows/s (mean)", lambda s: num(s["baseline"]["rows_per_s"])),
        row(f"mot import lines read (N={n:,})", lambda s: num(s["mot"]["summary"]["read"])),
        row("  recorded / amended / retracted",
            lambda s: "{recorded:,} / {amended:,} / {retracted:,}".format(**s["mot"]["summary"])),
        row("  duplicates / quarantined",
            lambda s: "{duplicates:,} / {quarantined:,}".format(**s["mot"]["summary"])),
        row("mot import wall seconds", lambda s: num(s["mot"]["seconds"], 2)),
        row("mot moments/s (lines read / s)", lambda s: num(s["mot"]["moments_per_s"])),
        row("mot recorded/s", lambda s: num(s["mot"]["recorded_per_s"])),
        row("ratio to raw baseline", lambda s: num(s["ratio"], 3)),
        row(f"peak RSS MB, N={n:,}", lambda s: num(s["mot"]["peak_rss_mb"], 1)),
        row(f"peak RSS MB, N/10={n_small:,}", lambda s: num(small(s, "peak_rss_mb"), 1)),
        row(f"  with workers, N={n:,} (sampled)",
            lambda s: num(s["mot"]["peak_rss_with_workers_mb"], 1)),
        row(f"  with workers, N/10={n_small:,} (sampled)",
            lambda s: num(small(s, "peak_rss_with_workers_mb"), 1)),
        row("mot moments/s at N/10", lambda s: num(small(s, "moments_per_s"))),
        row("store size MB after import", lambda s: num(s["mot"]["store_mb"])),
        row("1-min load average at mot's start", lambda s: num(s["mot"]["loadavg_1m"], 2)),
    ]
    targets = [
        row(">= 40,000 moments/s (SQLite)", lambda s: verdict(s["targets"]["moments_per_s>=40000"])),
        row(">= 0.25 of raw baseline", lambda s: verdict(s["targets"]["ratio>=0.25"])),
        row("peak RSS < 300 MB", lambda s: verdict(s["targets"]["peak_rss<300MB"])),
        row("peak RSS independent of N (N <= 1.2 x N/10)",
            lambda s: verdict(s["targets"]["rss_flat(N<=1.2*N/10)"])),
    ]
    notes = []
    if "sqlite" in stores:
        pragmas = stores["sqlite"]["baseline"]["pragmas"]
        notes = ["", "raw SQLite baseline pragmas (mot's): "
                 + ", ".join(f"{k}={v}" for k, v in pragmas.items())]
    return "\n".join([
        f"mot import benchmark: N = {n:,} lines (seed {results['seed']}, corrections on), "
        f"{results['environment']['cpus']} CPUs",
        "",
        table(["figure", *kinds], figures),
        "",
        table(["target", *kinds], targets),
        *notes,
        *settings_note(results),
    ])


if __name__ == "__main__":
    sys.exit(main())
