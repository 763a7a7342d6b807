"""`mot export --format parquet` against DuckDB's own `COPY ... TO 'x.parquet'` of the same rows.

    .venv/bin/python bench/export_bench.py [--n 1000000] [--stores sqlite,postgres] [--keep]

For each store, on a store of the sample's N moments (imported and projected, not timed):

- mot: `mot --store URL export --format parquet --out DIR --no-refresh -q` as a child
  process: rows/s over every table (moments and the six projections), wall time from
  spawn to exit (start-up included), peak RSS (GNU time). The same at N/10 for the
  memory comparison (flat: peak at N <= 1.2 x peak at N/10), unless --single.
- baseline, same run: the rows mot wrote, loaded (not timed) into a DuckDB database file,
  a table per file; then DuckDB's own command, the native `duckdb` CLI (the duckdb-cli
  package), as a child process measured as mot's is: `duckdb -readonly FILE -c "COPY t TO
  'x.parquet' (FORMAT parquet, COMPRESSION snappy); ..."` for every table, rows/s over all
  of them. Both sides are then one command that starts, reads the rows from its store on
  disk and writes the same Parquet files (same rows, same types, snappy): mot's start-up
  and reads counted, DuckDB's too.
- also shown, not judged: DuckDB's COPY statements alone, timed inside a warm Python
  process from tables in memory (no start-up, no read from a store): the figure this
  bench judged by before, against which mot's start-up counted and DuckDB's did not.

Target: mot >= 0.5 of the baseline's rows/s. Also shown: the CPU ratio (DuckDB's CPU
seconds over mot's, start-up included on both sides), which a loaded machine disturbs
less. Figures to stdout and bench/out/export_bench.json.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from analyst_store import analyst_store, forget
from benchlib import (
    OUT,
    environment,
    log,
    mot_command,
    num,
    parser,
    report_row,
    run_measured,
    stores_of,
    table,
    verdict,
    write_json,
)

TARGET_RATIO = 0.5
FLAT_FACTOR = 1.2


def mot_export(kind: str, store: str, out: Path) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    run = run_measured([*mot_command(), "--store", store, "export", "--format", "parquet",
                        "--out", str(out), "--no-refresh", "-q"],
                       f"export ({kind})").check("mot export")
    import duckdb

    rows = {}
    with duckdb.connect() as con:
        for path in sorted(out.glob("*.parquet")):
            found = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()
            rows[path.stem] = int(found[0]) if found else 0
    total = sum(rows.values())
    log(f"  mot export: {total:,} rows in {run.seconds:.2f} s = {total / run.seconds:,.0f} rows/s,"
        f" {run.cpu_seconds or 0:.2f} s of CPU, peak RSS {run.maxrss_mb:.0f} MB")
    return {"rows": rows, "total_rows": total, "seconds": round(run.seconds, 3),
            "cpu_seconds": round(run.cpu_seconds or 0, 3),
            "rows_per_s": total / run.seconds, "peak_rss_mb": round(run.maxrss_mb, 1),
            "loadavg_1m": load}


def duckdb_binary() -> str:
    """The native DuckDB CLI of the duckdb-cli package (a dev dependency), not its console
    script, which is a Python wrapper: DuckDB's own start-up, not an interpreter's."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_cli")
    binary = Path(spec.origin).parent / "duckdb" if spec and spec.origin else None
    if binary is None or not binary.exists():
        raise SystemExit("cannot find the DuckDB CLI (duckdb-cli); run `make install` first")
    return str(binary)


def duckdb_copy(exported: Path) -> dict[str, Any]:
    """DuckDB's own COPY TO Parquet of the same rows: the `duckdb` command reading them from
    its database file (loaded from mot's files first, untimed), and the COPY statements alone
    in this process from tables in memory (shown, not judged)."""
    import duckdb

    stems = [path.stem for path in sorted(exported.glob("*.parquet"))]
    binary = duckdb_binary()
    with tempfile.TemporaryDirectory(dir=OUT, prefix="duckdb-") as scratch:
        rows_file = Path(scratch) / "rows.duckdb"
        run_measured([binary, str(rows_file), "-c", " ".join(
            f"CREATE TABLE t_{stem} AS SELECT * FROM read_parquet('{exported / stem}.parquet');"
            for stem in stems)], "duckdb load").check("duckdb load (not timed)")
        (Path(scratch) / "cli").mkdir()
        run = run_measured([binary, "-readonly", str(rows_file), "-c", " ".join(
            f"COPY t_{stem} TO '{scratch}/cli/{stem}.parquet' (FORMAT parquet, COMPRESSION snappy);"
            for stem in stems)], "duckdb COPY").check("duckdb COPY")
        with duckdb.connect(str(rows_file), read_only=True) as con:
            total = 0
            for stem in stems:
                found = con.execute(f"SELECT count(*) FROM read_parquet('{scratch}/cli/{stem}.parquet')"
                                    ).fetchone()
                total += int(found[0]) if found else 0
        statements = _copy_statements(exported, stems, Path(scratch))
    log(f"  duckdb COPY (command): {total:,} rows in {run.seconds:.2f} s ="
        f" {total / run.seconds:,.0f} rows/s, {run.cpu_seconds or 0:.2f} s of CPU,"
        f" peak RSS {run.maxrss_mb:.0f} MB; the statements alone in memory"
        f" {statements['seconds']:.2f} s, {statements['cpu_seconds']:.2f} s of CPU")
    return {"total_rows": total, "seconds": round(run.seconds, 3),
            "cpu_seconds": round(run.cpu_seconds or 0, 3), "rows_per_s": total / run.seconds,
            "peak_rss_mb": round(run.maxrss_mb, 1), "statements_in_memory": statements}


def _copy_statements(exported: Path, stems: list[str], scratch: Path) -> dict[str, Any]:
    """DuckDB's COPY statements alone, timed in this (warm) process from in-memory tables."""
    import duckdb

    seconds = 0.0
    cpu = 0.0  # this process's, DuckDB's threads included
    total = 0
    (scratch / "mem").mkdir()
    with duckdb.connect() as con:
        for stem in stems:
            con.execute(f"CREATE TABLE t_{stem} AS SELECT * FROM read_parquet('{exported / stem}.parquet')")
            started, started_cpu = time.perf_counter(), time.process_time()
            con.execute(f"COPY t_{stem} TO '{scratch}/mem/{stem}.parquet'"
                        " (FORMAT parquet, COMPRESSION snappy)")
            seconds += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
            found = con.execute(f"SELECT count(*) FROM t_{stem}").fetchone()
            total += int(found[0]) if found else 0
    return {"total_rows": total, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "rows_per_s": total / seconds}


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    results: dict[str, Any] = {"environment": environment(), "n": args.n, "stores": {},
                               "rows": []}
    sizes = [args.n] if args.single else [args.n, max(args.n // 10, 1000)]
    for kind in stores_of(args.stores):
        per: dict[str, Any] = {}
        for n in sizes:
            store = analyst_store(kind, n, args)
            out = OUT / f"export-{kind}-n{n}"
            log(f"{kind}: N={n:,}")
            mot = mot_export(kind, store, out)
            base = duckdb_copy(out) if n == args.n else None
            per[str(n)] = {"mot": mot, "duckdb": base}
            shutil.rmtree(out, ignore_errors=True)
            forget(kind, n, args)
        top = per[str(args.n)]
        ratio = top["mot"]["rows_per_s"] / top["duckdb"]["rows_per_s"]
        small = per.get(str(sizes[-1])) if len(sizes) > 1 else None
        flat = (None if small is None else
                top["mot"]["peak_rss_mb"] <= FLAT_FACTOR * small["mot"]["peak_rss_mb"])
        per["ratio"] = ratio
        # The same ratio in CPU time (the work, whatever the load): DuckDB's over mot's.
        per["cpu_ratio"] = top["duckdb"]["cpu_seconds"] / max(top["mot"]["cpu_seconds"], 1e-9)
        per["memory_flat"] = flat
        # Shown, not judged: against DuckDB's COPY statements alone in a warm process.
        per["ratio_statements_in_memory"] = (
            top["mot"]["rows_per_s"] / top["duckdb"]["statements_in_memory"]["rows_per_s"])
        results["stores"][kind] = per
        results["rows"].append(report_row(
            "export", "parquet, every table", kind, args.n, top["mot"]["rows_per_s"], "rows/s",
            baseline="duckdb command: COPY TO parquet from its database file",
            baseline_rate=top["duckdb"]["rows_per_s"],
            peak_rss_mb=top["mot"]["peak_rss_mb"], seconds=top["mot"]["seconds"],
            ratio_statements_in_memory=per["ratio_statements_in_memory"]))
    lines = [table(["store", "rows", "mot s", "mot rows/s", "duckdb s", "duckdb rows/s", "ratio",
                    f">= {TARGET_RATIO}", "CPU ratio", "x COPY alone", "peak RSS MB", "flat"],
                   [[kind, num(p[str(args.n)]["mot"]["total_rows"]),
                     num(p[str(args.n)]["mot"]["seconds"], 2),
                     num(p[str(args.n)]["mot"]["rows_per_s"]),
                     num(p[str(args.n)]["duckdb"]["seconds"], 2),
                     num(p[str(args.n)]["duckdb"]["rows_per_s"]), num(p["ratio"], 2),
                     verdict(p["ratio"] >= TARGET_RATIO), num(p["cpu_ratio"], 2),
                     num(p["ratio_statements_in_memory"], 2),
                     num(p[str(args.n)]["mot"]["peak_rss_mb"]),
                     verdict(p["memory_flat"])] for kind, p in results["stores"].items()]),
             "x COPY alone: mot's rate over DuckDB's COPY statements alone, in a warm process"
             " from tables in memory (no start-up, no read): shown, not judged",
             f"load average at the end: {os.getloadavg()}"]
    print("\n".join(lines))
    write_json("export_bench", results)


if __name__ == "__main__":
    main()
