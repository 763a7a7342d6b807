"""Share chains: the projection work per event under a deep chain, next to a flat one (issue 13).

A post is shared, the share shared, and so on, DEPTH deep (default 20,000); then
APPENDS more shares (default 1,000) are appended one at a time at the bottom of
the chain, each recorded and projected on its own (`mot project` after each:
one event a page, as a live follower sees them). The baseline is the same store
shape with every share sharing the post directly (a flat cascade of the same
size), timed the same way in the same run: the ratio says what the chain's depth
costs per event (1.0: nothing).

    .venv/bin/python bench/share_chain_bench.py [--depth 20000] [--appends 1000]
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    drop_store,
    environment,
    fresh_store,
    log,
    parser,
    report_row,
    stores_of,
    table,
    write_json,
)

from mot.bootstrap import open_store
from mot.service.importing import record_stream
from mot.service.ledger import Incoming
from mot.service.queries import Query

DEPTH = 20_000
APPENDS = 1_000
TENANT = "acme"


def moment(index: int, shares: str | None) -> dict[str, Any]:
    """The post (shares None) or a share of `shares`, a second after the one before."""
    seconds = index % 60
    minutes = index // 60 % 60
    hours = index // 3600
    fields: dict[str, Any] = {
        "moment_id": str(uuid.UUID(int=index + 1)), "tenant": TENANT,
        "customer_id": f"c{index % 500}",
        "occurred_at": f"2026-03-{1 + hours // 24:02d}T{hours % 24:02d}:{minutes:02d}:{seconds:02d}Z",
        "channel": "twitter", "direction": "public", "reach": 10,
    }
    if shares is None:
        fields |= {"kind": "post", "sentiment": -0.8}
    else:
        fields |= {"kind": "share", "shares": shares}
    return fields


def shape(index: int, deep: bool) -> dict[str, Any]:
    """Moment `index` (0 is the post) of a deep chain or of a flat cascade."""
    if index == 0:
        return moment(0, None)
    parent = index - 1 if deep else 0
    return moment(index, str(uuid.UUID(int=parent + 1)))


def run(kind: str, deep: bool, depth: int, appends: int, args: Any) -> dict[str, Any]:
    name = f"share_chain_{'deep' if deep else 'flat'}"
    url = fresh_store(kind, name, args)
    try:
        with open_store(url) as services:
            record_stream(services.ledger,
                          (Incoming(orjson.dumps(shape(i, deep)), f"bench:{i}") for i in range(depth + 1)))
            started = time.perf_counter()
            services.projections.project()
            built = time.perf_counter() - started
            times = []
            for i in range(depth + 1, depth + 1 + appends):
                services.ledger.record([Incoming(orjson.dumps(shape(i, deep)), f"bench:{i}")])
                started = time.perf_counter()
                applied = services.projections.project()
                times.append(time.perf_counter() - started)
                assert applied == 1
            cascade = services.queries.run(Query("amplifications"))[0]["cascade_size"]
        if cascade != depth + appends:
            raise SystemExit(f"{name}: cascade_size {cascade}, expected {depth + appends}")
        return {"store": kind, "shape": "deep" if deep else "flat", "depth": depth,
                "appends": appends, "first_projection_s": round(built, 2),
                "mean_ms": statistics.fmean(times) * 1000,
                "median_ms": statistics.median(times) * 1000,
                "p90_ms": sorted(times)[int(len(times) * 0.9)] * 1000,
                "cascade_size": cascade}
    finally:
        if not args.keep:
            drop_store(kind, name, args)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=None,
                   help=f"the chain's depth (default {DEPTH:,}, or N when N is smaller)")
    p.add_argument("--appends", type=int, default=APPENDS,
                   help=f"shares appended one by one (default {APPENDS:,})")
    args = p.parse_args(argv)
    depth = args.depth or min(args.n, DEPTH)
    results: dict[str, Any] = {"environment": environment(), "depth": depth,
                               "appends": args.appends, "runs": [], "rows": []}
    for kind in stores_of(args.stores):
        for deep in (False, True):
            log(f"{kind}: {'deep chain' if deep else 'flat cascade'} of {depth:,} shares, "
                f"then {args.appends:,} appended one by one")
            figures = run(kind, deep, depth, args.appends, args)
            log(f"  {figures['mean_ms']:.2f} ms per event (median {figures['median_ms']:.2f})")
            results["runs"].append(figures)
        flat, deep_run = results["runs"][-2], results["runs"][-1]
        results["rows"].append(report_row(
            "share_chain", f"share appended under a {depth:,}-deep chain", kind, depth,
            1000 / deep_run["mean_ms"], "events/s", baseline="the same under a flat cascade",
            baseline_rate=1000 / flat["mean_ms"]))
    print(f"\nshare chains: {depth:,} shares deep, {args.appends:,} appended one at a time "
          "(mot project after each)\n")
    print(table(["store", "shape", "mean ms/event", "median", "p90", "first projection s"],
                [[r["store"], r["shape"], f"{r['mean_ms']:.2f}", f"{r['median_ms']:.2f}",
                  f"{r['p90_ms']:.2f}", f"{r['first_projection_s']:.1f}"]
                 for r in results["runs"]]))
    for row in results["rows"]:
        print(f"{row['store']}: deep / flat time per event = {1 / row['ratio']:.2f}"
              " (1.00: the depth costs nothing)")
    print(f"figures written to {write_json('share_chain_bench', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
