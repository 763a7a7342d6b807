"""Sealing's cost and an erasure's time (issue 17): `mot import` and `mot replay` on a store
whose ledger seals personal fields against the same on an unsealed store, same run, same
sample; then `mot erase` of a person with P moments on the sealed store.

    .venv/bin/python bench/erasure_bench.py [--n 100000] [--person 10000] [--stores sqlite,postgres]

The unsealed store is a fresh store marked as made before sealing (its `ledger sealed`
step not done), which is what a store of an older mot is. Both stores' tables are created
before their timed import (on PostgreSQL the schema's DDL took about a second). Runs alternate (unsealed,
sealed) so that the machine's load hits both alike; the load average is recorded.
Targets: import and rebuild of the sealed store >= 0.8 of the unsealed; the erasure < 2 s.
On PostgreSQL a store's current-moments and per-customer tables are split in parts by person
(the default), so the scrub rewrites only the parts that held her rows; the erasure is also
measured on whole tables (MOT_PG_SPLIT_MOMENTS=0, an older store's layout): a copy of the
sealed store as imported (CREATE DATABASE ... TEMPLATE, so no second import), rebuilt whole
by `MOT_PG_SPLIT_MOMENTS=0 mot replay`.
Figures go to stdout and bench/out/erasure_bench.json; progress to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from benchlib import (
    OUT,
    copy_pg,
    drop_store,
    environment,
    fresh_store,
    log,
    mot_command,
    num,
    parser,
    pg_database,
    run_measured,
    sample_file,
    stores_of,
    table,
    verdict,
    write_json,
)

PERSON = "x:bench-person"
SPLIT_ENV = "MOT_PG_SPLIT_MOMENTS"  # 0: a PostgreSQL store's tables whole (split by default)


def person_file(moments: int) -> Path:
    """`moments` moments of one customer, spread over a year (questions, answers, posts)."""
    path = OUT / f"person-{moments}.jsonl"
    if path.exists():
        return path
    kinds = [("inbound", "question", None), ("outbound", "answer", "service"),
             ("public", "post", None), ("inbound", "purchase", None)]
    with open(path, "w") as out:
        for i in range(moments):
            direction, kind, function = kinds[i % len(kinds)]
            line: dict[str, Any] = {
                "tenant": "acme", "customer_id": PERSON,
                "occurred_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "channel": "twitter", "direction": direction, "kind": kind,
                "actor": f"@bench_person_{i % 7}", "attributes": {"note": f"bench-person-{i}"},
                "source": {"system": "bench", "id": f"bench-person-{i}"},
            }
            if function:
                line["function"] = function
            if kind == "post":
                line |= {"sentiment": 0.5, "reach": 10, "url": f"https://example.com/bp/{i}"}
            out.write(json.dumps(line) + "\n")
    return path


def checked(run: Any) -> Any:
    if run.returncode != 0:
        raise SystemExit(f"a mot command failed ({run.returncode}): {run.stderr[-2000:]}")
    return run


def created(url: str, sealed: bool) -> None:
    """Create the store's tables at `url` before its timed import, sealed or not; unsealed,
    a store whose ledger does not seal (as an older mot's). Both modes are made here, so
    neither import's time holds the schema's creation (on PostgreSQL about a second of DDL
    and commits, which the sealed import alone paid before: bench/NOTES.md, issue 17, sealpg)."""
    from mot.bootstrap import open_store

    with open_store(url) as services:
        if not sealed:
            with services.backend.write("ledger") as tx:
                tx.execute("UPDATE mot_upgrades SET done = 0 WHERE step = 'ledger sealed'")


def erase(mot: list[str], url: str, label: str) -> dict[str, float]:
    """`mot erase` of the bench's person: its wall and CPU time, and the transaction and
    the scrub as the command says them."""
    import re

    erased = checked(run_measured([*mot, "--store", url, "erase", "--tenant", "acme",
                                   "--customer", PERSON, "--reason", "bench"], label))
    receipt = json.loads(erased.stdout)
    # On a busy machine the wall time is mostly waiting for a CPU: the command's
    # own CPU time (user + system; PostgreSQL's server work is not in it).
    figures = {"erase_s": erased.seconds, "erase_cpu_s": erased.cpu_seconds,
               "erase_load": os.getloadavg()[0], "erased_moments": receipt["moments"],
               # the command names the tables it had to rewrite whole (not split)
               "rewrote_whole": "splits them by person" in erased.stderr}
    said = re.search(r"erased in ([\d.]+) s.*?none of it ([\d.]+) s later", erased.stderr, re.S)
    if said:  # the transaction, then the scrub of the files (VACUUM FULL, WAL)
        figures["erase_tx_s"] = float(said.group(1))
        figures["scrub_s"] = float(said.group(2))
    return figures


def erase_rows(kind: str, layout: str, figures: dict[str, float]) -> list[tuple[str, ...]]:
    return [(kind, f"erase ({figures['erased_moments']:,.0f} moments){layout}, command", "",
             num(figures["erase_s"], 2), "", verdict(figures["erase_s"] < 2.0)),
            (kind, "... its transaction / scrub of the files / CPU of the command", "",
             f"{num(figures.get('erase_tx_s'), 2)} / {num(figures.get('scrub_s'), 2)} /"
             f" {num(figures.get('erase_cpu_s'), 2)}", "", "")]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--person", type=int, default=10_000, help="moments of the erased person")
    p.add_argument("--erase-only", action="store_true",
                   help="only the erasure: no unsealed store, `mot project` instead of a timed replay")
    p.set_defaults(n=100_000)
    args = p.parse_args()
    sample = sample_file(args.n, args.seed)
    person = person_file(args.person)
    mot = mot_command()
    env = {"MOT_MASTER_KEY": "ab" * 32}
    os.environ.update(env)
    results: dict[str, Any] = {"environment": environment(), "n": args.n, "person": args.person,
                               "load_before": os.getloadavg()}
    rows = []
    whole_url = ""
    for kind in stores_of(args.stores):
        figures: dict[str, dict[str, float]] = {}
        for mode in ("sealed",) if args.erase_only else ("unsealed", "sealed"):
            name = f"erasure-{kind}-{mode}"
            url = fresh_store(kind, name, args)
            created(url, sealed=mode == "sealed")
            log(f"{kind} {mode}: import {args.n + args.person:,} moments")
            imported = checked(run_measured([*mot, "--store", url, "import", str(sample), str(person),
                                     "--summary-json", "-q"], f"{kind} {mode} import"))
            if kind == "postgres" and mode == "sealed":  # the same store, to rebuild whole
                whole_url = copy_pg(args.pg, pg_database(name), pg_database(f"{name}-whole"))
            log(f"{kind} {mode}: {'project' if args.erase_only else 'replay'}")
            rebuilt = checked(run_measured([*mot, "--store", url, "project" if args.erase_only
                                            else "replay", "-q"], f"{kind} {mode} replay"))
            figures[mode] = {"import_s": imported.seconds, "replay_s": rebuilt.seconds,
                             "load": os.getloadavg()[0]}
            if mode == "sealed":
                log(f"{kind}: erase a person of {args.person:,} moments")
                figures[mode] |= erase(mot, url, f"{kind} erase")
            drop_store(kind, name, args)
        sealed = figures["sealed"]
        layout = ""
        if kind == "postgres":
            layout = ", split layout, the default"
            log(f"{kind} whole: {SPLIT_ENV}=0 mot replay of the sealed store's copy")
            os.environ[SPLIT_ENV] = "0"
            try:
                rebuilt = checked(run_measured([*mot, "--store", whole_url, "replay", "-q"],
                                               f"{kind} whole replay"))
                figures["whole"] = {"replay_s": rebuilt.seconds, "load": os.getloadavg()[0]}
                log(f"{kind} whole: erase a person of {args.person:,} moments")
                figures["whole"] |= erase(mot, whole_url, f"{kind} whole erase")
            finally:
                del os.environ[SPLIT_ENV]
            drop_store(kind, f"{name}-whole", args)
        whole_rows = (erase_rows(kind, ", whole tables, MOT_PG_SPLIT_MOMENTS=0", figures["whole"])
                      if "whole" in figures else [])
        if args.erase_only:
            results[kind] = figures
            rows += erase_rows(kind, layout, sealed) + whole_rows
            continue
        plain = figures["unsealed"]
        import_ratio = plain["import_s"] / sealed["import_s"]
        replay_ratio = plain["replay_s"] / sealed["replay_s"]
        results[kind] = figures | {"import_ratio": import_ratio, "replay_ratio": replay_ratio}
        rows += [
            (kind, "import", num(plain["import_s"], 1), num(sealed["import_s"], 1),
             num(import_ratio, 2), verdict(import_ratio >= 0.8)),
            (kind, "replay (rebuild)", num(plain["replay_s"], 1), num(sealed["replay_s"], 1),
             num(replay_ratio, 2), verdict(replay_ratio >= 0.8)),
            *erase_rows(kind, layout, sealed), *whole_rows,
        ]
    results["load_after"] = os.getloadavg()
    print(table(["store", "case", "unsealed s", "sealed s", "ratio", "verdict"], rows))
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    write_json("erasure_bench", results)


if __name__ == "__main__":
    sys.exit(main())
