"""Projection throughput, memory, catch-up and query latency, against a raw read of the same log.

    .venv/bin/python bench/project_bench.py [--n 1000000] [--stores sqlite,postgres]

For each store, on a store holding the import bench's N-moment sample (imported with
`mot import`, not timed):

- raw baseline (in this process): page through the ledger's notification log as the
  engine does (`backend.select_notifications(after, 1000)`, eventsourcing's recorder)
  and `orjson.loads` each event's state, nothing else. Run before and after the rebuild;
  the ratio uses the mean of the two rates.
- rebuild: `mot --store URL replay -q` as a child process; events/s = ledger head / wall
  seconds (spawn to exit, so start-up included); peak RSS (GNU time, see benchlib). The
  same at N/10 in another store, for the memory comparison.
- incremental: 1,000 more messages (another seed; 250 amendments and 20 retractions of
  existing moments, 730 new moments of which most belong to existing customers), imported
  (not timed); then `services.projections.project()` in-process, timed, on CATCH_UPS fresh
  copies of that store, one after another (each the first catch-up after the rebuild, as
  a user's would be): the median wall seconds is the figure, the median CPU seconds of
  this process beside it (PostgreSQL's server work is not in it). One catch-up is ~0.3 s,
  so one sample was at the mercy of whatever else the machine did in it. The store itself
  is then caught up (not timed) for the queries.
- queries: `services.queries.run(Query("relationships", customer=X))` in-process for 50
  random existing customers (median, p95), and the CLI
  `mot --store URL query relationships --customer X --format json --no-refresh` (wall
  time, median of 5; includes Python start-up, shown next to `mot --version`'s).

Targets: rebuild >= 30,000 events/s on SQLite and >= 0.3 of the raw baseline, memory flat
(peak at N <= 1.2 x peak at N/10); catch-up of 1,000 new moments on top of N < 1 s; query
< 50 ms (judged on the in-process p95). Figures to stdout and bench/out/project_bench.json.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from benchlib import (
    OUT,
    copy_store,
    drop_store,
    environment,
    fresh_store,
    log,
    mot_command,
    num,
    parser,
    pg_settings,
    profile_call,
    profile_command,
    report_row,
    run_measured,
    sample_file,
    settings_note,
    stores_of,
    table,
    verdict,
    write_json,
)

from mot.adapters.sources.sample import generate_lines
from mot.bootstrap import open_store
from mot.service.queries import Query

TARGET_REBUILD_SQLITE = 30_000
TARGET_RATIO = 0.3
FLAT_FACTOR = 1.2
TARGET_INCREMENTAL_S = 1.0
TARGET_QUERY_MS = 50.0

PAGE = 1000
AMENDS = 250
RETRACTS = 20
NEW_MOMENTS = 1000 - AMENDS - RETRACTS
EXISTING_SHARE = 0.85  # of the new moments' customers, mapped onto existing customers
QUERIES = 50
CLI_QUERIES = 5
CATCH_UPS = 5  # catch-ups measured, each on a fresh copy of the store


def import_store(kind: str, name: str, path: Path, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """A fresh store holding the file's moments (the import is not a figure of this bench)."""
    store = fresh_store(kind, name, args)
    log(f"{kind}: building the store: mot import {path.name} (not timed)")
    run = run_measured([*mot_command(), "--store", store, "import", str(path), "--summary-json", "-q"],
                       f"import ({kind}, {path.name})").check(f"mot import into {kind}")
    return store, run.json()


def baseline_read(store: str, when: str) -> dict[str, Any]:
    """Page through the notification log as the engine does; decode each state; nothing else."""
    services = open_store(store)
    try:
        backend = services.ledger_store.backend
        load = os.getloadavg()[0]
        after = 0
        count = 0
        loads = orjson.loads
        started = time.perf_counter()
        while True:
            page = backend.select_notifications(after, PAGE)
            if not page:
                break
            for notification in page:
                loads(notification.state)
            count += len(page)
            after = page[-1].id
            if count % 200_000 == 0:
                log(f"  raw read: {count:,} events")
        seconds = time.perf_counter() - started
    finally:
        services.close()
    rate = count / seconds if seconds else 0.0
    log(f"  raw read ({when} rebuild): {count:,} events in {seconds:.2f} s = {rate:,.0f}/s")
    return {"when": when, "events": count, "seconds": round(seconds, 3), "events_per_s": rate,
            "loadavg_1m": load}


def head_of(store: str) -> int:
    services = open_store(store)
    try:
        return services.ledger_store.head()
    finally:
        services.close()


def rebuild(kind: str, store: str, label: str) -> dict[str, Any]:
    head = head_of(store)
    log(f"{kind}: mot replay ({label}, {head:,} events)")
    load = os.getloadavg()[0]
    run = run_measured([*mot_command(), "--store", store, "replay", "-q"],
                       f"replay ({kind}, {label})").check(f"mot replay on {kind}")
    rate = head / run.seconds
    tree = run.tree_peak_mb
    log(f"  {head:,} events in {run.seconds:.1f} s = {rate:,.0f}/s, peak RSS {run.maxrss_mb:.0f} MB"
        + ("" if tree is None else f" ({tree:.0f} MB with its fold workers, sampled)"))
    return {"events": head, "seconds": round(run.seconds, 3), "events_per_s": rate,
            "peak_rss_mb": round(run.maxrss_mb, 1), "peak_rss_method": run.rss_method,
            "peak_rss_with_workers_mb": None if tree is None else round(tree, 1),
            "polled_vmhwm_mb": None if run.polled_hwm_mb is None else round(run.polled_hwm_mb, 1),
            "loadavg_1m": load, "output": run.stdout.strip()}


# -- incremental ----------------------------------------------------------------------------

def incremental_lines(store: str, seed: int) -> list[bytes]:
    """1,000 messages on top of the store: corrections of existing moments and new moments,
    most of them for existing customers (so the catch-up refolds customers with history)."""
    services = open_store(store)
    try:
        with services.backend.read() as tx:
            existing = tx.query(
                "SELECT moment_id, tenant, customer_id, kind FROM moments ORDER BY moment_id LIMIT ?",
                (AMENDS + RETRACTS + 1000,))
    finally:
        services.close()
    rng = random.Random(seed)
    lines: list[bytes] = []
    for moment_id, _, _, kind in existing[:AMENDS]:
        changes: dict[str, Any] = ({"value": round(rng.uniform(5, 500), 2)} if kind == "purchase"
                                   else {"sentiment": round(rng.uniform(-1, 1), 2)})
        lines.append(orjson.dumps({"type": "amend", "moment_id": moment_id, "set": changes,
                                   "reason": "bench: corrected"}))
    for moment_id, _, _, _ in existing[AMENDS:AMENDS + RETRACTS]:
        lines.append(orjson.dumps({"type": "retract", "moment_id": moment_id,
                                   "reason": "bench: entered in error"}))
    customers: dict[str, list[str]] = {}
    for _, tenant, customer_id, _ in existing[AMENDS + RETRACTS:]:
        customers.setdefault(tenant, []).append(customer_id)
    mapping: dict[tuple[str, str], str] = {}
    prefix = f"inc{seed}-"

    def ref(value: Any) -> Any:
        if isinstance(value, dict) and "id" in value:
            return {**value, "id": prefix + value["id"]}
        return value

    for raw in generate_lines(NEW_MOMENTS, seed=seed, corrections=False,
                              start=datetime(2026, 11, 1, tzinfo=UTC),
                              until=datetime(2026, 11, 24, tzinfo=UTC)):
        moment = orjson.loads(raw)
        key = (moment["tenant"], moment["customer_id"])
        if key not in mapping:
            pool = customers.get(key[0])
            mapping[key] = (pool[rng.randrange(len(pool))] if pool and rng.random() < EXISTING_SHARE
                            else f"bench-new-{seed}-{key[1]}")
        moment["customer_id"] = mapping[key]
        moment["source"] = ref(moment["source"])
        for field in ("in_reply_to", "shares"):
            if field in moment:
                moment[field] = ref(moment[field])
        lines.append(orjson.dumps(moment))
    rng.shuffle(lines)
    return lines


def incremental(kind: str, store: str, name: str, n: int, seed: int,
                args: argparse.Namespace) -> dict[str, Any]:
    """The 1,000 messages imported into `store` (bench store `name`), then CATCH_UPS
    catch-ups, each on a fresh copy of it; then `store` itself caught up, not timed."""
    lines = incremental_lines(store, seed)
    path = OUT / f"incremental-{kind}-n{n}-seed{seed}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    log(f"{kind}: importing {len(lines):,} more messages (not timed), then project() in-process"
        f" on {CATCH_UPS} fresh copies of the store")
    summary = run_measured([*mot_command(), "--store", store, "import", str(path), "--summary-json", "-q"],
                           f"import incremental ({kind})").check("incremental import").json()
    rounds = []
    for _ in range(CATCH_UPS):
        copy = copy_store(kind, name, f"{name}_catchup", args)  # not timed
        # The copy's pages (GBs at 1M) go to disk now, not while the catch-up writes its WAL.
        os.sync()
        try:
            rounds.append(catch_up(copy))
        finally:
            drop_store(kind, f"{name}_catchup", argparse.Namespace(keep=False, pg=args.pg))
        log(f"  project(): {rounds[-1]['applied']:,} events in {rounds[-1]['seconds']:.3f} s,"
            f" CPU {rounds[-1]['cpu_seconds']:.3f} s (load {rounds[-1]['loadavg_1m']:.1f})")
    services = open_store(store)
    try:
        services.projections.project()
    finally:
        services.close()
    seconds = statistics.median(r["seconds"] for r in rounds)
    cpu = statistics.median(r["cpu_seconds"] for r in rounds)
    log(f"  project(), median of {len(rounds)}: {seconds:.3f} s, CPU {cpu:.3f} s")
    first = rounds[0]
    return {"import_summary": summary, "position_before": first["position_before"],
            "head": first["head"], "position_after": first["position_after"],
            "applied": first["applied"], "seconds": round(seconds, 4),
            "cpu_seconds": round(cpu, 4), "rounds": rounds,
            "loadavg_1m": statistics.median(r["loadavg_1m"] for r in rounds)}


def catch_up(store: str) -> dict[str, Any]:
    """One `project()` on `store`, in this process: wall and CPU seconds (this process's)."""
    services = open_store(store)
    try:
        before = services.projections.position()
        head = services.ledger_store.head()
        load = os.getloadavg()[0]
        cpu_started = time.process_time()
        started = time.perf_counter()
        applied = services.projections.project()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        after = services.projections.position()
    finally:
        services.close()
    return {"position_before": before, "head": head, "position_after": after, "applied": applied,
            "seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4), "loadavg_1m": load}


def profile_incremental(kind: str, store: str, n: int, seed: int) -> str:
    """project() of another 1,000 messages under cProfile (--profile)."""
    lines = incremental_lines(store, seed)
    path = OUT / f"incremental-{kind}-n{n}-seed{seed}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    run_measured([*mot_command(), "--store", store, "import", str(path), "--summary-json", "-q"],
                 f"import incremental ({kind})").check("incremental import")
    services = open_store(store)
    try:
        return str(profile_call(services.projections.project, f"project-incremental-{kind}-n{n}"))
    finally:
        services.close()


# -- queries --------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def query_latency(kind: str, store: str, seed: int) -> dict[str, Any]:
    services = open_store(store)
    try:
        with services.backend.read() as tx:
            keys = tx.query("SELECT tenant, customer_id FROM relationships ORDER BY tenant, customer_id")
        rng = random.Random(seed)
        picked = rng.sample(keys, min(QUERIES, len(keys)))
        log(f"{kind}: {len(picked)} in-process relationship queries")
        run = services.queries.run
        run(Query("relationships", customer=picked[0][1]))  # warm-up, not counted
        by_customer: list[float] = []
        by_key: list[float] = []
        raw: list[float] = []
        found = 0
        # The raw baseline: the same customer's rows by one SQL statement, no service around it.
        raw_sql = "SELECT * FROM relationships WHERE customer_id = ?"
        with services.backend.read() as tx:
            tx.query(raw_sql, (picked[0][1],))
            for _, customer in picked:
                started = time.perf_counter()
                tx.query(raw_sql, (customer,))
                raw.append((time.perf_counter() - started) * 1000)
        for tenant, customer in picked:
            started = time.perf_counter()
            records = run(Query("relationships", customer=customer))
            by_customer.append((time.perf_counter() - started) * 1000)
            found += bool(records)
            started = time.perf_counter()
            run(Query("relationships", tenant=tenant, customer=customer))
            by_key.append((time.perf_counter() - started) * 1000)
    finally:
        services.close()
    log(f"{kind}: {CLI_QUERIES} CLI queries and {CLI_QUERIES} `mot --version`")
    cli: list[float] = []
    cli_rows = 0
    for _, customer in picked[:CLI_QUERIES]:
        result = run_measured([*mot_command(), "--store", store, "query", "relationships", "--customer",
                               customer, "--format", "json", "--no-refresh"], "mot query")
        result.check("mot query")
        cli.append(result.seconds * 1000)
        cli_rows += len(result.json())
    version = [run_measured([*mot_command(), "--version"], "mot --version").check("mot --version").seconds
               * 1000 for _ in range(CLI_QUERIES)]
    return {
        "customers": len(keys), "queries": len(by_customer), "found": found,
        "customer_only_ms": {"median": statistics.median(by_customer),
                             "p95": percentile(by_customer, 0.95), "max": max(by_customer)},
        "raw_sql_ms": {"median": statistics.median(raw), "p95": percentile(raw, 0.95)},
        "tenant_and_customer_ms": {"median": statistics.median(by_key),
                                   "p95": percentile(by_key, 0.95), "max": max(by_key)},
        "cli_ms": {"median": statistics.median(cli), "all": [round(v, 1) for v in cli],
                   "rows": cli_rows},
        "cli_version_ms": {"median": statistics.median(version)},
    }


# -- main -----------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    kinds = stores_of(args.stores)
    n, n_small = args.n, max(1, args.n // 10)
    big = sample_file(n, args.seed)
    small = None if args.single else sample_file(n_small, args.seed)
    results: dict[str, Any] = {
        "bench": "project", "n": n, "n_small": n_small, "seed": args.seed, "file": str(big),
        "environment": environment(),
        "postgres_settings": pg_settings(args.pg) if "postgres" in kinds else None, "stores": {},
    }
    for kind in kinds:
        store, imported = import_store(kind, "project", big, args)
        raw = [baseline_read(store, "before")]
        full = rebuild(kind, store, f"N={n:,}")
        raw.append(baseline_read(store, "after"))
        caught_up = incremental(kind, store, "project", n, args.seed + 1000, args)
        queries = query_latency(kind, store, args.seed)
        if args.profile:
            caught_up["profile"] = profile_incremental(kind, store, n, args.seed + 2000)
        drop_store(kind, "project", args)

        part: dict[str, Any] | None = None
        if small is not None:
            small_store, _ = import_store(kind, "project_small", small, args)
            part = rebuild(kind, small_store, f"N/10={n_small:,}")
            if args.profile:
                part["profile"] = str(profile_command(
                    ["--store", small_store, "replay", "--restart", "-q"], f"replay-{kind}-n{n_small}"))
            drop_store(kind, "project_small", args)

        raw_rate = sum(r["events_per_s"] for r in raw) / len(raw)
        ratio = full["events_per_s"] / raw_rate
        results["stores"][kind] = {
            "import": imported,
            "baseline": {"events_per_s": raw_rate, "runs": raw},
            "rebuild": full,
            "rebuild_small": part,
            "ratio": ratio,
            "incremental": caught_up,
            "queries": queries,
            "targets": {
                "rebuild>=30000/s": None if kind != "sqlite" else
                full["events_per_s"] >= TARGET_REBUILD_SQLITE,
                "ratio>=0.3": ratio >= TARGET_RATIO,
                "rss_flat(N<=1.2*N/10)": None if part is None else
                full["peak_rss_mb"] <= FLAT_FACTOR * part["peak_rss_mb"],
                "rss_flat_with_workers": None if part is None or not full["peak_rss_with_workers_mb"]
                or not part["peak_rss_with_workers_mb"] else
                full["peak_rss_with_workers_mb"] <= FLAT_FACTOR * part["peak_rss_with_workers_mb"],
                "incremental<1s": caught_up["seconds"] < TARGET_INCREMENTAL_S,
                "query_p95<50ms": queries["customer_only_ms"]["p95"] < TARGET_QUERY_MS,
                "cli_query_median<50ms": queries["cli_ms"]["median"] < TARGET_QUERY_MS,
            },
        }
    results["rows"] = rows_of(results)
    path = write_json("project_bench", results)
    print(report(results))
    log(f"figures written to {path}")
    return 0


def rows_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The report runner's lines: rebuild, catch-up and query, per store."""
    n = results["n"]
    rows = []
    for kind, s in results["stores"].items():
        full, caught, queries = s["rebuild"], s["incremental"], s["queries"]
        rows.append(report_row(
            "project", "rebuild (mot replay)", kind, n, full["events_per_s"], "events/s",
            baseline="raw read of the notification log (page + orjson.loads)",
            baseline_rate=s["baseline"]["events_per_s"],
            peak_rss_mb=full["peak_rss_with_workers_mb"] or full["peak_rss_mb"],
            seconds=full["seconds"]))
        rows.append(report_row(
            "project", f"catch-up of 1,000 messages (project(), median of {CATCH_UPS} copies)", kind,
            n, caught["applied"] / caught["seconds"] if caught["seconds"] else None, "events/s",
            baseline="raw read of the notification log", baseline_rate=s["baseline"]["events_per_s"],
            seconds=caught["seconds"], cpu_seconds=caught.get("cpu_seconds")))
        median = queries["customer_only_ms"]["median"]
        raw_median = queries.get("raw_sql_ms", {}).get("median")
        rows.append(report_row(
            "query", "query relationships --customer (in-process)", kind, n,
            1000 / median if median else None, "queries/s",
            baseline="the same rows by one SQL SELECT",
            baseline_rate=1000 / raw_median if raw_median else None,
            p95_ms=queries["customer_only_ms"]["p95"], median_ms=median))
        cli = queries["cli_ms"]["median"]
        rows.append(report_row(
            "query", "mot query (CLI, with start-up)", kind, n, 1000 / cli if cli else None,
            "queries/s", baseline="mot --version (start-up only)",
            baseline_rate=1000 / queries["cli_version_ms"]["median"], median_ms=cli))
    return rows


def report(results: dict[str, Any]) -> str:
    stores = results["stores"]
    kinds = list(stores)
    n, n_small = results["n"], results["n_small"]

    def row(label: str, get: Any) -> list[str]:
        return [label, *(get(stores[k]) for k in kinds)]

    def small(s: dict[str, Any], key: str) -> Any:
        return None if s["rebuild_small"] is None else s["rebuild_small"][key]

    def ms(section: str, key: str) -> Any:
        return lambda s: num(s["queries"][section][key], 1)

    figures = [
        row(f"ledger events (N={n:,} lines)", lambda s: num(s["rebuild"]["events"])),
        row("raw read events/s, before rebuild", lambda s: num(s["baseline"]["runs"][0]["events_per_s"])),
        row("raw read events/s, after rebuild", lambda s: num(s["baseline"]["runs"][1]["events_per_s"])),
        row("raw read events/s (mean)", lambda s: num(s["baseline"]["events_per_s"])),
        row("rebuild (mot replay) wall seconds", lambda s: num(s["rebuild"]["seconds"], 1)),
        row("rebuild events/s", lambda s: num(s["rebuild"]["events_per_s"])),
        row("ratio to raw read", lambda s: num(s["ratio"], 3)),
        row(f"rebuild peak RSS MB, N={n:,}", lambda s: num(s["rebuild"]["peak_rss_mb"], 1)),
        row(f"rebuild peak RSS MB, N/10={n_small:,}", lambda s: num(small(s, "peak_rss_mb"), 1)),
        row(f"  with fold workers (sampled), N={n:,}",
            lambda s: num(s["rebuild"]["peak_rss_with_workers_mb"], 1)),
        row(f"  with fold workers (sampled), N/10={n_small:,}",
            lambda s: num(small(s, "peak_rss_with_workers_mb"), 1)),
        row("rebuild events/s at N/10", lambda s: num(small(s, "events_per_s"))),
        row("incremental: messages imported", lambda s: "{read:,} ({quarantined:,} quarantined)".format(
            **s["incremental"]["import_summary"])),
        row("incremental: events applied", lambda s: num(s["incremental"]["applied"])),
        row(f"incremental: project() seconds (median of {CATCH_UPS} copies)",
            lambda s: num(s["incremental"]["seconds"], 3)),
        row("incremental: project() CPU seconds of this process (median)",
            lambda s: num(s["incremental"].get("cpu_seconds"), 3)),
        row("query --customer, in-process median ms", ms("customer_only_ms", "median")),
        row("query --customer, in-process p95 ms", ms("customer_only_ms", "p95")),
        row("query --tenant --customer, in-process p95 ms", ms("tenant_and_customer_ms", "p95")),
        row("query CLI wall ms (median of 5)", ms("cli_ms", "median")),
        row("  of which start-up: mot --version ms", ms("cli_version_ms", "median")),
        row("1-min load average at rebuild start", lambda s: num(s["rebuild"]["loadavg_1m"], 2)),
    ]
    targets = [
        row(">= 30,000 events/s rebuild (SQLite)", lambda s: verdict(s["targets"]["rebuild>=30000/s"])),
        row(">= 0.3 of raw read", lambda s: verdict(s["targets"]["ratio>=0.3"])),
        row("rebuild memory flat (N <= 1.2 x N/10)",
            lambda s: verdict(s["targets"]["rss_flat(N<=1.2*N/10)"])),
        row("the same, with fold workers (sampled)",
            lambda s: verdict(s["targets"]["rss_flat_with_workers"])),
        row("catch-up of 1,000 moments < 1 s", lambda s: verdict(s["targets"]["incremental<1s"])),
        row("query < 50 ms (in-process p95)", lambda s: verdict(s["targets"]["query_p95<50ms"])),
        row("query < 50 ms (CLI median, incl. start-up)",
            lambda s: verdict(s["targets"]["cli_query_median<50ms"])),
    ]
    return "\n".join([
        f"mot projection benchmark: N = {n:,} lines (seed {results['seed']}, corrections on), "
        f"{results['environment']['cpus']} CPUs",
        "",
        table(["figure", *kinds], figures),
        "",
        table(["target", *kinds], targets),
        "",
        *settings_note(results),
    ])


if __name__ == "__main__":
    sys.exit(main())
