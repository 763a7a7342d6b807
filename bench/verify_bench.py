"""`mot verify` on a store of N moments: time and peak RSS, next to a raw read of the same log.

    .venv/bin/python bench/verify_bench.py [--n 1000000] [--stores sqlite,postgres]

For each store: `mot import` of benchlib's sample and `mot project` (not timed), then
`mot --store URL verify --no-refresh -q` as a child process, measured like every mot
command here (wall time, peak RSS by GNU time). The raw baseline is project_bench's: page
through the notification log and decode each event, nothing else, in this process.
Figures to stdout and bench/out/verify.json; its report lines for bench/run.py.
"""

from __future__ import annotations

import sys
from typing import Any

from benchlib import (
    drop_store,
    environment,
    fresh_store,
    log,
    mot_command,
    parser,
    report_row,
    run_measured,
    sample_file,
    stores_of,
    write_json,
)
from project_bench import baseline_read


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    path = sample_file(args.n, args.seed)
    results: dict[str, Any] = {"bench": "verify", "n": args.n, "environment": environment(),
                               "stores": {}}
    for kind in stores_of(args.stores):
        store = fresh_store(kind, "verify", args)
        log(f"{kind}: building the store (import and project, not timed)")
        run_measured([*mot_command(), "--store", store, "import", str(path), "-q"],
                     "import").check("import")
        run_measured([*mot_command(), "--store", store, "project", "-q"], "project").check("project")
        raw = baseline_read(store, "before")
        log(f"{kind}: mot verify")
        run = run_measured([*mot_command(), "--store", store, "verify", "--no-refresh", "-q"],
                           f"verify ({kind})")
        drop_store(kind, "verify", args)
        events = raw["events"]
        results["stores"][kind] = {
            "returncode": run.returncode, "seconds": round(run.seconds, 2),
            "events_per_s": events / run.seconds, "peak_rss_mb": round(run.maxrss_mb, 1),
            "baseline": raw, "output": run.stdout.strip(), "stderr": run.stderr[-500:],
        }
        log(f"  {run.seconds:.1f} s, peak RSS {run.maxrss_mb:.0f} MB, exit {run.returncode}: "
            f"{run.stdout.strip()}")
    results["rows"] = [
        report_row("verify", "mot verify (recompute and compare)", kind, args.n, s["events_per_s"],
                   "events/s", baseline="raw read of the notification log",
                   baseline_rate=s["baseline"]["events_per_s"], peak_rss_mb=s["peak_rss_mb"],
                   seconds=s["seconds"], passed=s["returncode"] == 0)
        for kind, s in results["stores"].items()]
    write_json("verify", results)
    for kind, s in results["stores"].items():
        print(f"{kind}: mot verify of {s['baseline']['events']:,} events: {s['seconds']:.1f} s "
              f"({s['events_per_s']:,.0f} events/s, {s['events_per_s'] / s['baseline']['events_per_s']:.3f}"
              f" x raw read), peak RSS {s['peak_rss_mb']:.0f} MB, exit {s['returncode']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
