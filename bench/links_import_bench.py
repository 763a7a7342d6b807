"""Link messages import at the rate of moments (issue 15): `mot import` of a file where 30 %
of the messages are links and unlinks, against the same moments without them, same run.

    .venv/bin/python bench/links_import_bench.py [--n 200000] [--share 0.3] [--rounds 2]
        [--stores sqlite,postgres]

The moments are the import benchmark's sample (`benchlib.sample_file`); the links name
pairs of that sample's customer ids of one tenant (some repeated, a fifth unlinks, times
spread over a year), dealt evenly between the moments. Each round imports both files into
fresh stores, alternating which goes first, with `mot import --summary-json -q` as a
child process (wall time from spawn to exit; its CPU seconds, and its peak RSS with its
parse workers, `benchlib.run_measured`). The figure is messages per second; the
ratio is with links over without, per round, with the load average around each run
(2-CPU machines shared with other work are noisy: read the ratio, not the rates).
Figures go to stdout and bench/out/links_import_bench.json; progress to stderr.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from benchlib import (
    OUT,
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
    write_json,
)


def links_file(moments: Path, share: float, seed: int) -> Path:
    """The moments with link/unlink messages dealt between them, `share` of all lines."""
    path = OUT / f"{moments.stem}-links{int(share * 100)}.jsonl"
    if path.exists():
        return path
    lines = [line for line in moments.read_bytes().splitlines() if line.strip()]
    customers: dict[str, list[str]] = {}
    for line in lines:
        data = json.loads(line)
        if "customer_id" in data:
            customers.setdefault(data.get("tenant", "default"), []).append(data["customer_id"])
    tenants = {t: sorted(set(ids)) for t, ids in customers.items() if len(set(ids)) > 1}
    rng = random.Random(seed)
    wanted = int(len(lines) * share / (1 - share))
    links = []
    for _ in range(wanted):
        tenant = rng.choice(sorted(tenants))
        a, b = rng.sample(tenants[tenant], 2)
        day, second = rng.randrange(365), rng.randrange(86_400)
        links.append(json.dumps({
            "type": "unlink" if rng.random() < 0.2 else "link", "tenant": tenant,
            "customer_ids": [a, b],
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                         time.gmtime(1_767_225_600 + day * 86_400 + second)),
            "reason": "bench"}).encode())
    out: list[bytes] = []
    every = len(lines) / max(1, len(links))
    taken = 0
    for n, line in enumerate(lines):
        out.append(line)
        while taken < len(links) and taken < (n + 1) / every:
            out.append(links[taken])
            taken += 1
    out += links[taken:]
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def run_import(kind: str, name: str, path: Path, args: Any) -> dict[str, Any]:
    store = fresh_store(kind, name, args)
    before = os.getloadavg()[0]
    done = run_measured([*mot_command(), "--store", store, "import", str(path),
                         "--summary-json", "-q"], f"{kind} {name}")
    after = os.getloadavg()[0]
    drop_store(kind, name, args)
    done.check("mot import")
    summary = done.json()
    peak = done.tree_peak_mb or done.maxrss_mb  # with its parse workers, where sampled
    return {"seconds": round(done.seconds, 3), "read": summary["read"],
            "rate": round(summary["read"] / done.seconds), "linked": summary.get("linked", 0),
            "unlinked": summary.get("unlinked", 0), "quarantined": summary["quarantined"],
            "peak_rss_mb": round(peak, 1), "main_peak_rss_mb": round(done.maxrss_mb, 1),
            "cpu_s": None if done.cpu_seconds is None else round(done.cpu_seconds, 2),
            "load": [round(before, 2), round(after, 2)]}


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--share", type=float, default=0.3, help="links' share of the messages")
    p.add_argument("--rounds", type=int, default=2)
    p.set_defaults(n=200_000)
    args = p.parse_args()
    moments = sample_file(args.n, args.seed)
    with_links = links_file(moments, args.share, args.seed)
    results: dict[str, Any] = {"environment": environment(), "n": args.n, "share": args.share,
                               "stores": {}}
    rows = []
    for kind in stores_of(args.stores):
        rounds = []
        for r in range(args.rounds):
            order = [("plain", moments), ("links", with_links)]
            if r % 2:
                order.reverse()
            got = {}
            for label, path in order:
                log(f"{kind} round {r + 1}: importing {label} ({path.name})")
                got[label] = run_import(kind, f"links_{label}", path, args)
            got["ratio"] = round(got["links"]["rate"] / got["plain"]["rate"], 3)
            rounds.append(got)
            rows.append([kind, r + 1, got["plain"]["rate"], got["links"]["rate"], got["ratio"],
                         got["plain"]["cpu_s"], got["links"]["cpu_s"],
                         got["plain"]["peak_rss_mb"], got["links"]["peak_rss_mb"],
                         f"{got['plain']['load'][0]}/{got['links']['load'][0]}"])
        results["stores"][kind] = rounds
    print(table(["store", "round", "plain msg/s", "30% links msg/s", "ratio", "plain CPU s",
                 "links CPU s", "plain peak MB", "links peak MB", "load 1m"], rows))
    write_json("links_import_bench", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
