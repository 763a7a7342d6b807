"""What the responses projection (SPEC §3.5) costs a rebuild: with it, and without it, in one run.

    .venv/bin/python bench/responses_bench.py [--n 200000] [--stores sqlite,postgres] [--rounds 2]
    .venv/bin/python bench/responses_bench.py --callgrind --n 20000 --stores sqlite

For each store, on a store holding the import bench's N-moment sample (imported with
`mot import` and rebuilt with `mot replay` once, not timed: the first rebuild after the
import also drops the import's tables and grows the file; benchlib.replayed_store, shared
with the alerts bench within a run of bench/run.py), `services.projections.replay(workers=0)`
in this process, alternately (A B B A ...) with the responses fold as shipped and with it
switched off (its fold returns no request, so no row is written either): the same store,
the same moments, interleaved so that a change of the machine's load weighs on both. Rate =
ledger head / wall seconds (and / CPU seconds, steadier on a loaded machine: this process's,
and on PostgreSQL the server's too, read from /proc for the backends of the bench's
database); the ratio compares the best of each (a busy machine only ever adds time; the
medians are in the JSON too). The load average is read before and after each rebuild: on
a shared machine the figures mean little without it.

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
    drop_replayed,
    environment,
    log,
    num,
    parser,
    replayed_store,
    report_row,
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


def _no_responses(moments: Sequence[Current], customer_id: str, *, ordered: bool = False
                  ) -> list[Response]:
    return []


def server_cpu(services: Any, url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the bench's database (empty for
    SQLite, whose work is this process's, or where /proc does not show them)."""
    if not url.startswith("postgres"):
        return {}
    with services.backend.read() as tx:
        pids = [int(r[0]) for r in tx.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    ticks, out = os.sysconf("SC_CLK_TCK"), {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


def rebuild(url: str, fold: Callable[..., list[Response]]) -> dict[str, Any]:
    """One in-process rebuild with `fold` as the responses' fold."""
    shipped = folding.fold_responses
    folding.fold_responses = fold
    try:
        load_before = os.getloadavg()[0]
        with open_store(url) as services:
            server = server_cpu(services, url)
            started, cpu = time.perf_counter(), time.process_time()
            head = services.projections.replay(workers=0)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            # Backends that ended during the rebuild are missed (the pool keeps its own).
            server_seconds = sum(v - server.get(pid, 0.0)
                                 for pid, v in server_cpu(services, url).items())
            with services.backend.read() as tx:
                rows = int(tx.scalar("SELECT COUNT(*) FROM responses"))
        total = cpu + server_seconds
        return {"seconds": seconds, "events_per_s": head / seconds, "cpu_seconds": cpu,
                "server_cpu_seconds": server_seconds, "events_per_cpu_s": head / total,
                "responses": rows, "load_before": load_before, "load_after": os.getloadavg()[0]}
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
    results: dict[str, Any] = {"environment": environment(), "n": args.n, "stores": {},
                               "rows": []}
    rows = []
    for kind in stores_of(args.stores):
        name = f"responses_{args.n}"
        url = replayed_store(kind, name, args)  # imported and rebuilt once, not timed
        if args.callgrind:
            counted = callgrind(url, kind)
            results["stores"][kind] = {"callgrind": counted,
                                       "ok": counted["added"] <= TARGET_OVERHEAD}
            rows.append([kind, num(args.n), num(counted["without"]), num(counted["with"]),
                         f"{counted['added']:+.2%}", "(instructions)",
                         f"{counted['load_before']:.1f}-{counted['load_after']:.1f}",
                         verdict(counted["added"] <= TARGET_OVERHEAD)])
            drop_replayed(kind, name, url, args)
            continue
        runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
        order = ["with", "without", "without", "with"] * ((args.rounds + 1) // 2)
        for variant in order[:2 * args.rounds]:
            fold = folding.fold_responses if variant == "with" else _no_responses
            run = rebuild(url, fold)
            runs[variant].append(run)
            log(f"{kind}: rebuild {variant} responses: {run['seconds']:.1f} s "
                f"(CPU {run['cpu_seconds']:.1f} s, server {run['server_cpu_seconds']:.1f} s), "
                f"{run['events_per_s']:,.0f} events/s, {run['responses']:,} responses rows, "
                f"load {run['load_before']:.2f} -> {run['load_after']:.2f}")
        rate = {v: max(r["events_per_s"] for r in rs) for v, rs in runs.items()}
        cpu_rate = {v: max(r["events_per_cpu_s"] for r in rs) for v, rs in runs.items()}
        median = {v: statistics.median(r["events_per_s"] for r in rs) for v, rs in runs.items()}
        overhead = rate["without"] / rate["with"] - 1
        cpu_overhead = cpu_rate["without"] / cpu_rate["with"] - 1
        loads = [x for rs in runs.values() for r in rs for x in (r["load_before"], r["load_after"])]
        results["stores"][kind] = {"runs": runs, "best_events_per_s": rate,
                                   "best_events_per_cpu_s": cpu_rate,
                                   "median_events_per_s": median, "overhead": overhead,
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
        drop_replayed(kind, name, url, args)
    if args.callgrind:
        print(table(["store", "moments", "without (instructions)", "with (instructions)",
                     "added", "", "load", "≤ 10 %"], rows))
    else:
        print(table(["store", "moments", "without ev/s", "with ev/s", "added (wall)",
                     "added (CPU, with the server's)", "load", "≤ 10 %"], rows))
    path = write_json("responses_bench", results)
    log(f"figures in {path}")
    sys.exit(0)


if __name__ == "__main__":
    main()
