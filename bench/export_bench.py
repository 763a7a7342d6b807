"""`mot export --format parquet` against DuckDB's own `COPY ... TO 'x.parquet'` of the same rows.

    .venv/bin/python bench/export_bench.py [--n 1000000] [--stores sqlite,postgres] [--keep]

For each store, on a store of the sample's N moments (imported and projected, not timed):

- mot: `mot --store URL export --format parquet --out DIR --no-refresh -q` as a child
  process: rows/s over every table (moments and the six projections), wall time from
  spawn to exit (start-up included), peak RSS (GNU time). The same at N/10 for the
  memory comparison (flat: peak at N <= 1.2 x peak at N/10), unless --single.
- baseline, same run: the rows mot wrote are loaded into an in-memory DuckDB table per
  file (not timed), then DuckDB's `COPY table TO 'x.parquet'` (the same snappy
  compression), timed, for every table; rows/s over all of them.

Target: mot >= 0.5 of the baseline's rows/s. Also shown: the CPU ratio (DuckDB's CPU
seconds over mot's, start-up included), which a loaded machine disturbs less. Figures
to stdout and bench/out/export_bench.json.
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


def duckdb_copy(exported: Path) -> dict[str, Any]:
    """DuckDB's own COPY TO Parquet of the same rows (loaded into DuckDB first, untimed)."""
    import duckdb

    seconds = 0.0
    cpu = 0.0  # this process's, DuckDB's threads included
    total = 0
    with tempfile.TemporaryDirectory() as scratch, duckdb.connect() as con:
        for path in sorted(exported.glob("*.parquet")):
            con.execute(f"CREATE TABLE t_{path.stem} AS SELECT * FROM read_parquet('{path}')")
            started, started_cpu = time.perf_counter(), time.process_time()
            con.execute(f"COPY t_{path.stem} TO '{scratch}/{path.stem}.parquet'"
                        " (FORMAT parquet, COMPRESSION snappy)")
            seconds += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
            found = con.execute(f"SELECT count(*) FROM t_{path.stem}").fetchone()
            total += int(found[0]) if found else 0
    log(f"  duckdb COPY: {total:,} rows in {seconds:.2f} s = {total / seconds:,.0f} rows/s,"
        f" {cpu:.2f} s of CPU")
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
        results["stores"][kind] = per
        results["rows"].append(report_row(
            "export", "parquet, every table", kind, args.n, top["mot"]["rows_per_s"], "rows/s",
            baseline="duckdb COPY TO parquet", baseline_rate=top["duckdb"]["rows_per_s"],
            peak_rss_mb=top["mot"]["peak_rss_mb"], seconds=top["mot"]["seconds"]))
    lines = [table(["store", "rows", "mot s", "mot rows/s", "duckdb s", "duckdb rows/s", "ratio",
                    f">= {TARGET_RATIO}", "CPU ratio", "peak RSS MB", "flat"],
                   [[kind, num(p[str(args.n)]["mot"]["total_rows"]),
                     num(p[str(args.n)]["mot"]["seconds"], 2),
                     num(p[str(args.n)]["mot"]["rows_per_s"]),
                     num(p[str(args.n)]["duckdb"]["seconds"], 2),
                     num(p[str(args.n)]["duckdb"]["rows_per_s"]), num(p["ratio"], 2),
                     verdict(p["ratio"] >= TARGET_RATIO), num(p["cpu_ratio"], 2),
                     num(p[str(args.n)]["mot"]["peak_rss_mb"]),
                     verdict(p["memory_flat"])] for kind, p in results["stores"].items()]),
             f"load average at the end: {os.getloadavg()}"]
    print("\n".join(lines))
    write_json("export_bench", results)


if __name__ == "__main__":
    main()
