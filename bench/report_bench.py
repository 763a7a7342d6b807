"""`mot report` on a large store: the whole page, against reading the same query answers.

    .venv/bin/python bench/report_bench.py [--n 1000000] [--stores sqlite,postgres] [--keep]

For each store, on a store of the sample's N moments (imported and projected, not
timed), as child processes (start-up included), wall time, CPU time (user + system:
on a loaded machine the wall time is mostly waiting for a CPU) and peak RSS:

- mot: `mot --store URL report --out FILE --no-refresh` (every tenant, every chart);
- baseline, same run: the six `mot query NAME --format json --no-refresh` whose answers
  the page is drawn from, one after another (what the report reads, without drawing).

Target: the report in under 10 s at 1,000,000 moments. Figures to stdout and
bench/out/report_bench.json.
"""

from __future__ import annotations

import os
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

TARGET_SECONDS = 10.0
QUERIES = ("relationships", "reciprocity", "transitions", "amplifications", "teams", "listening")


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    results: dict[str, Any] = {"environment": environment(), "n": args.n, "stores": {},
                               "rows": []}
    for kind in stores_of(args.stores):
        store = analyst_store(kind, args.n, args)
        page = OUT / f"report-{kind}-n{args.n}.html"
        load = os.getloadavg()[0]
        run = run_measured([*mot_command(), "--store", store, "report", "--out", str(page),
                            "--no-refresh"], f"report ({kind})").check("mot report")
        log(f"  mot report: {run.seconds:.2f} s ({run.cpu_seconds or 0:.2f} s of CPU), "
            f"{page.stat().st_size / 1024:,.0f} KB, peak RSS {run.maxrss_mb:.0f} MB")
        baseline = 0.0
        baseline_cpu = 0.0
        for name in QUERIES:
            query = run_measured([*mot_command(), "--store", store, "query", name, "--format",
                                  "json", "--no-refresh"], f"query {name} ({kind})"
                                 ).check(f"mot query {name}")
            baseline += query.seconds
            baseline_cpu += query.cpu_seconds or 0
        log(f"  the six queries: {baseline:.2f} s ({baseline_cpu:.2f} s of CPU)")
        results["stores"][kind] = {"seconds": round(run.seconds, 3), "bytes": page.stat().st_size,
                                   "cpu_seconds": round(run.cpu_seconds or 0, 3),
                                   "queries_cpu_seconds": round(baseline_cpu, 3),
                                   "peak_rss_mb": round(run.maxrss_mb, 1),
                                   "queries_seconds": round(baseline, 3), "loadavg_1m": load}
        # A rate of the store's moments, as the other benches' rows: the runner's scaling
        # verdict compares rates across sizes, and in pages/s a page of ten times the
        # moments read as a slowdown (0.57 from 10k to 100k on PostgreSQL) where the time
        # had grown 1.7-fold: start-up, matplotlib and the charts, about 2.5 s of CPU at
        # any size, are most of a report below a million moments.
        results["rows"].append(report_row(
            "report", "mot report, every tenant", kind, args.n, args.n / run.seconds,
            "moments/s", baseline="the six mot query --format json",
            baseline_rate=args.n / baseline, peak_rss_mb=run.maxrss_mb, seconds=run.seconds))
        forget(kind, args.n, args)
    print(table(["store", "report s", f"< {TARGET_SECONDS:.0f} s", "report CPU s", "queries s",
                 "queries CPU s", "page KB", "peak RSS MB"],
                [[kind, num(r["seconds"], 2), verdict(r["seconds"] < TARGET_SECONDS),
                  num(r["cpu_seconds"], 2), num(r["queries_seconds"], 2),
                  num(r["queries_cpu_seconds"], 2), num(r["bytes"] / 1024),
                  num(r["peak_rss_mb"])]
                 for kind, r in results["stores"].items()]))
    print(f"load average at the end: {os.getloadavg()}")
    write_json("report_bench", results)


if __name__ == "__main__":
    main()
