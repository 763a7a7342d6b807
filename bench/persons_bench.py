"""Persons (SPEC §2, links; issue 15): a rebuild with links against the same moments without,
and one link that merges two large persons.

    .venv/bin/python bench/persons_bench.py [--n 1000000] [--stores sqlite,postgres]

The import bench's N-moment sample, with 30 % of its customers split into 2 or 3 ids (each
moment goes to one of them) and the links that join them again (`type: link`): store P holds
the moments, store L a copy of P with the links imported into it. Both also hold two
customers `big:a` and `big:b` of 10,000 moments each. Nothing of the imports is timed.

- rebuild: `mot --store URL replay -q` as a child process, L P P L; moments/s = the
  moments in the ledger / wall seconds, the best of each. Target: L at least 0.9 of P in
  the same run.
- merge: into L (after its rebuild), one link `big:a` - `big:b` imported (not timed), then
  `services.projections.project()` in this process, timed (wall and CPU): both persons'
  20,000 moments regrouped and folded as one, the absorbed key's rows deleted. Target < 1 s.
  Then the unlink, timed the same way. Each next to its raw baseline in the same process: a
  plain fetch of those 20,000 moments' rows, which any merge has to read.

Figures to stdout and bench/out/persons_bench.json, with the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
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
    parser,
    run_measured,
    sample_file,
    stores_of,
    table,
    verdict,
    write_json,
)

from mot.bootstrap import open_store
from mot.service.queries import Query

SPLIT_SHARE = 0.3
TARGET_RATIO = 0.9
TARGET_MERGE_S = 1.0
BIG = 10_000
LINKED_AT = "2026-01-01T00:00:00Z"


def _bucket(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def persons_files(sample: Path, big: int = BIG) -> tuple[Path, Path]:
    """(moments with split ids and the two big customers, their links), made once per sample."""
    suffix = "" if big == BIG else f"-big{big}"
    moments_path = OUT / f"{sample.stem}-persons-moments{suffix}.jsonl"
    links_path = OUT / f"{sample.stem}-persons-links{suffix}.jsonl"
    if moments_path.exists() and links_path.exists():
        return moments_path, links_path
    log(f"persons: splitting {SPLIT_SHARE:.0%} of the customers of {sample.name} into 2-3 ids")
    split: dict[tuple[str, str], int] = {}  # (tenant, customer) -> how many ids
    with open(sample, "rb") as src, open(moments_path, "wb") as out:
        for line in src:
            if not line.strip():
                continue
            m = orjson.loads(line)
            if "customer_id" in m:
                tenant, customer = m.get("tenant", "default"), m["customer_id"]
                h = _bucket(f"{tenant}/{customer}")
                if h % 1000 < SPLIT_SHARE * 1000:
                    ids = split.setdefault((tenant, customer), 2 + h % 2)
                    part = _bucket(orjson.dumps(m.get("source") or m.get("moment_id")).decode())
                    index = part % ids
                    if index:
                        m["customer_id"] = f"{customer}~{index}"
            out.write(orjson.dumps(m) + b"\n")
        for who in ("a", "b"):
            for i in range(big):
                out.write(orjson.dumps({
                    "tenant": "acme", "customer_id": f"big:{who}",
                    "occurred_at": f"2026-02-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                    "channel": "email", "direction": "inbound" if i % 2 else "outbound",
                    "kind": "question" if i % 2 else "answer",
                    "source": {"system": "big", "id": f"{who}-{i}"}}) + b"\n")
    with open(links_path, "wb") as out:
        for (tenant, customer), ids in sorted(split.items()):
            for index in range(1, ids):
                out.write(orjson.dumps({
                    "type": "link", "tenant": tenant,
                    "customer_ids": [customer, f"{customer}~{index}"],
                    "occurred_at": LINKED_AT, "reason": "bench"}) + b"\n")
    log(f"persons: {len(split):,} customers split, links in {links_path.name}")
    return moments_path, links_path


def import_files(kind: str, name: str, files: list[Path], args: argparse.Namespace,
                 base: str | None = None) -> str:
    """A store of the files imported (not timed): a fresh one, or a copy of store `base`."""
    store = fresh_store(kind, name, args) if base is None else copy_store(kind, base, name, args)
    for path in files:
        log(f"{kind}: mot import {path.name} into {name} (not timed)")
        run = run_measured([*mot_command(), "--store", store, "import", str(path), "-q",
                            "--summary-json"], f"import {path.name}").check("mot import")
        summary = run.json()
        if summary.get("quarantined"):
            raise SystemExit(f"{path.name}: {summary['quarantined']} lines quarantined; does this "
                             "mot record links?")
    return store


def moments_in(store: str) -> int:
    with open_store(store) as services, services.backend.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) FROM moments"))


def replay(kind: str, store: str, label: str) -> dict[str, Any]:
    load = os.getloadavg()[0]
    run = run_measured([*mot_command(), "--store", store, "replay", "-q"],
                       f"replay ({kind}, {label})").check(f"mot replay ({label})")
    moments = moments_in(store)
    rate = moments / run.seconds
    log(f"  {label}: {moments:,} moments in {run.seconds:.1f} s = {rate:,.0f}/s"
        f" (load {load:.1f})")
    return {"label": label, "moments": moments, "seconds": round(run.seconds, 3),
            "moments_per_s": rate, "loadavg_1m": load}


def raw_read(services: Any, big: int = BIG) -> float:
    """The raw baseline of a merge: the seconds to fetch the two big persons' moments' rows
    (every column, no decoding, no fold), which any merge has to read."""
    with services.backend.read() as tx:
        started = time.perf_counter()
        rows = tx.query("SELECT * FROM moments WHERE tenant = 'acme'"
                        " AND person IN ('big:a', 'big:b')")  # the fold index's range
        seconds = time.perf_counter() - started
    assert len(rows) == 2 * big, len(rows)
    return seconds


def timed_link(store: str, kind: str, big: int = BIG) -> dict[str, Any]:
    """Import one link or unlink of big:a and big:b (not timed), then project it (timed, wall
    and this process's CPU), next to the raw read of the same moments in the same process."""
    from mot.service.ledger import Incoming

    with open_store(store) as services:
        services.projections.project()
        services.ledger.record([Incoming(orjson.dumps({
            "type": kind, "tenant": "acme", "customer_ids": ["big:a", "big:b"],
            "occurred_at": "2026-03-01T00:00:00Z" if kind == "link" else "2026-03-02T00:00:00Z",
            "reason": "bench"}), "bench")])
        raw = min(raw_read(services, big) for _ in range(3))
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), time.process_time()
        applied = services.projections.project()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        persons = services.queries.run(Query("persons", tenant="acme", customer="big:b"))
    log(f"  {kind} big:a - big:b ({2 * big:,} moments): applied {applied} event in"
        f" {seconds:.3f} s ({cpu:.3f} s CPU here; {seconds / raw:.1f} x the raw read of its"
        f" moments, {raw:.3f} s; load {load:.1f}); big:b's person now {persons[0]['customer_ids']}")
    return {"kind": kind, "seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4),
            "raw_read_seconds": round(raw, 4), "ratio_to_raw_read": round(seconds / raw, 2),
            "loadavg_1m": load, "moments": 2 * big, "customer_ids_after": persons[0]["customer_ids"]}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--big", type=int, default=BIG,
                   help=f"moments of each of the two merged persons (default {BIG:,})")
    args = p.parse_args()
    sample = sample_file(args.n, args.seed)
    moments_path, links_path = persons_files(sample, args.big)
    results: dict[str, Any] = {"n": args.n, "environment": environment(), "stores": {}}
    rows = []
    for kind in stores_of(args.stores):
        plain = import_files(kind, f"persons_p_{args.n}", [moments_path], args)
        # L is P's store copied, then the links imported: the same rows as importing both
        # files, without importing N moments twice.
        linked = import_files(kind, f"persons_l_{args.n}", [links_path], args,
                              base=f"persons_p_{args.n}")
        try:
            runs: dict[str, list[dict[str, Any]]] = {"links": [], "no links": []}
            # L P P L: each goes first once, so that a trend of the machine's load (or the
            # first rebuild after an import) weighs on both.
            for label, store in (("links", linked), ("no links", plain), ("no links", plain),
                                 ("links", linked)):
                runs[label].append(replay(kind, store, label))
            moments = runs["links"][0]["moments"]
            best = {label: max(r["moments_per_s"] for r in rs) for label, rs in runs.items()}
            ratio = best["links"] / best["no links"]
            merge = timed_link(linked, "link", args.big)
            split = timed_link(linked, "unlink", args.big)
            results["stores"][kind] = {"moments": moments, "rebuilds": runs, "ratio": ratio,
                                       "merge": merge, "split": split}
            rows.append((kind, f"{moments:,}", f"{best['links']:,.0f}",
                         f"{best['no links']:,.0f}", f"{ratio:.2f} {verdict(ratio >= TARGET_RATIO)}",
                         f"{merge['seconds']:.3f} s {verdict(merge['seconds'] < TARGET_MERGE_S)}",
                         f"{merge['ratio_to_raw_read']:.1f}", f"{split['seconds']:.3f} s",
                         f"{split['ratio_to_raw_read']:.1f}"))
        finally:
            drop_store(kind, f"persons_l_{args.n}", args)
            drop_store(kind, f"persons_p_{args.n}", args)
    print(table(("store", "moments", "rebuild with links /s", "without /s", "ratio (>= 0.9)",
                 "merge 2 x 10k (< 1 s)", "/ raw read", "split", "/ raw read"), rows))
    print(f"load average: {os.getloadavg()}")
    write_json("persons_bench", results)


if __name__ == "__main__":
    main()
