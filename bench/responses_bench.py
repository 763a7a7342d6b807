"""What the responses projection (SPEC §3.5) costs a rebuild: with it, and without it, in one run.

    .venv/bin/python bench/responses_bench.py [--n 200000] [--stores sqlite,postgres] [--rounds 2]
    .venv/bin/python bench/responses_bench.py --callgrind --n 20000 --stores sqlite

For each store, on a store holding the import bench's N-moment sample (imported with
`mot import`, not timed), `services.projections.replay(workers=0)` in this process,
alternately (A B B A ...) with the responses fold as shipped and with it switched off (its
fold returns no request, so no row is written either): the same store, the same moments,
interleaved so that a change of the machine's load weighs on both. Rate = ledger head /
wall seconds (and / this process's CPU seconds, steadier on a loaded machine; on
PostgreSQL it leaves out the server's work); the ratio compares the medians. The load
average is read before and after each rebuild: on a shared machine the figures mean little
without it.

Wall and CPU time are noise on a shared machine. `--callgrind` counts instructions instead:
one rebuild with and one without, each in its own `valgrind --tool=callgrind` process (the
same store copied, start-up included in both), run side by side; the count is repeatable,
so one pair is enough. On PostgreSQL it counts only this process, not the server's work.

Target (issue 16): the responses projection adds at most 10 % to a rebuild, i.e. the rate
with responses is at least 1 / 1.10 of the rate without. Figures to stdout and
bench/out/responses_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchlib import (
    drop_store,
    environment,
    fresh_store,
    log,
    mot_command,
    num,
    parser,
    report_row,
    sample_file,
    stores_of,
    table,
    verdict,
    write_json,
)

import mot.projections.folding as folding
from mot.bootstrap import open_store
from mot.projections.model import Current
from mot.projections.responses import Response

TARGET_OVERHEAD = 0.10


def _no_responses(moments: Sequence[Current], customer_id: str) -> list[Response]:
    return []


def rebuild(url: str, fold: Callable[[Sequence[Current], str], list[Response]]
            ) -> dict[str, Any]:
    """One in-process rebuild with `fold` as the responses' fold."""
    shipped = folding.fold_responses
    folding.fold_responses = fold
    try:
        load_before = os.getloadavg()[0]
        with open_store(url) as services:
            started, cpu = time.perf_counter(), time.process_time()
            head = services.projections.replay(workers=0)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            with services.backend.read() as tx:
                rows = int(tx.scalar("SELECT COUNT(*) FROM responses"))
        return {"seconds": seconds, "events_per_s": head / seconds, "cpu_seconds": cpu,
                "events_per_cpu_s": head / cpu, "responses": rows,
                "load_before": load_before, "load_after": os.getloadavg()[0]}
    finally:
        folding.fold_responses = shipped


def one_rebuild(url: str, variant: str) -> None:
    """The rebuild a `--callgrind` child runs: with the shipped fold, or without."""
    fold = folding.fold_responses if variant == "with" else _no_responses
    run = rebuild(url, fold)
    print(json.dumps({"variant": variant, "responses": run["responses"]}))


def callgrind(url: str, kind: str) -> dict[str, Any]:
    """Instructions of one rebuild with and one without responses (see the docstring)."""
    children = {}
    for variant in ("with", "without"):
        target = url
        if kind == "sqlite":  # each its own copy: the two rebuild at once
            target = f"{url}.{variant}"
            for suffix in ("", "-wal", ".key"):
                if os.path.exists(url + suffix):
                    shutil.copyfile(url + suffix, target + suffix)
        children[variant] = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             __file__, "--one-rebuild", target, variant],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if kind != "sqlite":
            children[variant].wait()  # one rebuild of a PostgreSQL store at a time
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    for variant, child in children.items():
        stdout, stderr = child.communicate()
        found = re.search(r"Collected : (\d+)", stderr)
        if child.returncode != 0 or found is None:
            raise SystemExit(f"callgrind {variant}: {stderr[-2000:]}")
        out[variant] = int(found[1])
        out[f"{variant}_responses"] = json.loads(stdout.splitlines()[-1])["responses"]
    out["added"] = out["with"] / out["without"] - 1
    out["load_after"] = os.getloadavg()[0]
    if kind == "sqlite":
        for variant in children:
            for suffix in ("", "-wal", "-shm", ".key", ".lock", ".rebuild.lock"):
                Path(f"{url}.{variant}{suffix}").unlink(missing_ok=True)
    return out


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rounds", type=int, default=2, help="pairs of rebuilds (default 2)")
    p.add_argument("--callgrind", action="store_true",
                   help="count instructions (valgrind) instead of timing; one pair")
    p.add_argument("--one-rebuild", nargs=2, metavar=("URL", "VARIANT"), help=argparse.SUPPRESS)
    p.set_defaults(n=200_000, stores="sqlite")
    args = p.parse_args()
    if args.one_rebuild:
        one_rebuild(*args.one_rebuild)
        return
    sample = sample_file(args.n, args.seed)
    results: dict[str, Any] = {"environment": environment(), "n": args.n, "stores": {},
                               "rows": []}
    rows = []
    for kind in stores_of(args.stores):
        name = f"responses_{args.n}"
        url = fresh_store(kind, name, args)
        log(f"{kind}: importing {args.n:,} moments (not timed)")
        subprocess.run([*mot_command(), "--store", url, "import", "-q", str(sample)], check=True)
        if args.callgrind:
            counted = callgrind(url, kind)
            results["stores"][kind] = {"callgrind": counted,
                                       "ok": counted["added"] <= TARGET_OVERHEAD}
            rows.append([kind, num(args.n), num(counted["without"]), num(counted["with"]),
                         f"{counted['added']:+.2%}", "(instructions)",
                         f"{counted['load_before']:.1f}-{counted['load_after']:.1f}",
                         verdict(counted["added"] <= TARGET_OVERHEAD)])
            drop_store(kind, name, args)
            continue
        runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
        order = ["with", "without", "without", "with"] * ((args.rounds + 1) // 2)
        for variant in order[:2 * args.rounds]:
            fold = folding.fold_responses if variant == "with" else _no_responses
            run = rebuild(url, fold)
            runs[variant].append(run)
            log(f"{kind}: rebuild {variant} responses: {run['seconds']:.1f} s "
                f"(CPU {run['cpu_seconds']:.1f} s), "
                f"{run['events_per_s']:,.0f} events/s, {run['responses']:,} responses rows, "
                f"load {run['load_before']:.2f} -> {run['load_after']:.2f}")
        rate = {v: statistics.median(r["events_per_s"] for r in rs) for v, rs in runs.items()}
        cpu_rate = {v: statistics.median(r["events_per_cpu_s"] for r in rs)
                    for v, rs in runs.items()}
        overhead = rate["without"] / rate["with"] - 1
        cpu_overhead = cpu_rate["without"] / cpu_rate["with"] - 1
        loads = [x for rs in runs.values() for r in rs for x in (r["load_before"], r["load_after"])]
        results["stores"][kind] = {"runs": runs, "median_events_per_s": rate,
                                   "median_events_per_cpu_s": cpu_rate, "overhead": overhead,
                                   "cpu_overhead": cpu_overhead,
                                   "ok": overhead <= TARGET_OVERHEAD,
                                   "load_range": [min(loads), max(loads)]}
        # For `make bench` (bench/run.py): the rebuild with responses next to the same rebuild
        # without them, in the same run.
        results["rows"].append(report_row(
            "responses_bench", "rebuild with responses (workers=0)", kind, args.n,
            rate["with"], "events/s", baseline="the same rebuild without responses",
            baseline_rate=rate["without"]))
        rows.append([kind, num(args.n), num(rate["without"]), num(rate["with"]),
                     f"{overhead:+.1%}", f"{cpu_overhead:+.1%}",
                     f"{min(loads):.1f}-{max(loads):.1f}", verdict(overhead <= TARGET_OVERHEAD)])
        drop_store(kind, name, args)
    if args.callgrind:
        print(table(["store", "moments", "without (instructions)", "with (instructions)",
                     "added", "", "load", "≤ 10 %"], rows))
    else:
        print(table(["store", "moments", "without ev/s", "with ev/s", "added (wall)",
                     "added (CPU of this process)", "load", "≤ 10 %"], rows))
    path = write_json("responses_bench", results)
    log(f"figures in {path}")
    sys.exit(0)


if __name__ == "__main__":
    main()
