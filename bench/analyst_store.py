"""The store the analyst benches share (report_bench, export_bench): N sample moments,
imported and projected with `mot` (not timed), kept in bench/out/stores between runs
when --keep is given, so the second bench of a run reuses the first one's."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchlib import STORES, fresh_store, log, mot_command, run_measured, sample_file


def analyst_store(kind: str, n: int, args: argparse.Namespace) -> str:
    """A store with N sample moments, projected; reused when a finished one is kept."""
    name = f"analyst-n{n}-seed{args.seed}"
    marker = STORES / f"{name}.{kind}.ready"
    if marker.exists():
        log(f"{kind}: reusing the kept store {marker.read_text().strip()}")
        return marker.read_text().strip()
    marker.unlink(missing_ok=True)
    sample: Path = sample_file(n, args.seed)
    store = fresh_store(kind, name, args)
    log(f"{kind}: mot import {sample.name} and mot project (not timed)")
    run_measured([*mot_command(), "--store", store, "import", str(sample), "-q"],
                 f"import ({kind})").check("mot import")
    run_measured([*mot_command(), "--store", store, "project", "-q"],
                 f"project ({kind})").check("mot project")
    if args.keep:  # a PostgreSQL store leaves nothing in STORES to have made the folder
        STORES.mkdir(parents=True, exist_ok=True)
        marker.write_text(store + "\n")
    return store


def forget(kind: str, n: int, args: argparse.Namespace) -> None:
    """Drop the store unless --keep, and its marker with it: a store kept by an earlier run
    and dropped by this one left its marker, and the next run took it for a store there."""
    from benchlib import drop_store

    name = f"analyst-n{n}-seed{args.seed}"
    drop_store(kind, name, args)
    if not args.keep:
        (STORES / f"{name}.{kind}.ready").unlink(missing_ok=True)
