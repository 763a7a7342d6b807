"""Alerts: what raising costs a rebuild, and how fast `mot alerts deliver` sends (issue 16).

    .venv/bin/python bench/alerts_bench.py [--n 100000] [--alerts 20000] [--stores sqlite]

1. Raising in a rebuild. A store holding the import bench's N-moment sample, imported
   and rebuilt with `mot replay -q` once, not timed (the first rebuild after the import
   drops the import's tables and grows the file; benchlib.replayed_store, shared with the
   responses bench within a run of bench/run.py), then (child process, wall time,
   and its CPU time with its workers') under two configurations, alternated A B B A in the
   same run: A, `window = "1s"` (no moment is fresh: what is left of raising is the one
   freshness check per customer, the baseline), and B, `window = "100000d"` (every moment
   is fresh: every customer's causes computed, and each alert inserted into the outbox;
   the second B run finds them all raised). Target: B's events/s >= 0.95 x A's.
2. Delivery. `--alerts` alerts are put in a fresh store's outbox, then `mot alerts
   deliver` (child process; peak RSS) sends them to a local receiver (a separate
   process: a minimal ASGI app on uvicorn, httptools and uvloop, on 127.0.0.1, that
   answers 200). The raw baseline in the same run: as many signed POSTs (at most
   RAW_POSTS) from this process, 16 threads with a kept-alive http.client connection each (the
   deliverer's transport, without the store). Also at alerts/4 to compare
   peak RSS (flat memory). Target: >= 500 deliveries/s.

Figures (with the load average) to stdout and bench/out/alerts_bench.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from benchlib import (
    OUT,
    drop_replayed,
    drop_store,
    fresh_store,
    log,
    mot_command,
    parser,
    replayed_store,
    run_measured,
    stores_of,
)

from mot.bootstrap import open_store

RECEIVER = """
import socket, sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(1024)  # before the port is told: a client quicker than uvicorn's start waits, not refused
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False, http="httptools",
                              loop="uvloop", backlog=1024)).run(sockets=[sock])
"""

RAW_POSTS = 20_000
"""At most this many POSTs for the raw baseline: its rate is the transport's, the same at
20,000 as at the 100,000 of a 1,000,000-moment run (N/10), where they cost ~20 s of CPU."""


def rebuilds(kind: str, args: Any) -> dict[str, Any]:
    store = replayed_store(kind, f"alerts-{kind}", args)  # imported and rebuilt once
    with open_store(store) as services:
        head = services.ledger_store.head()
        if services.alert_outbox.counts().alerts:  # the first B run raises them all
            raise SystemExit(f"{store} holds alerts already; its B runs would raise none")
    configs = {"A (no moment fresh)": '[alerts]\nwindow = "1s"\n',
               "B (every moment fresh)": '[alerts]\nwindow = "100000d"\n'}
    runs: dict[str, list[float]] = {label: [] for label in configs}
    cpu: dict[str, list[float]] = {label: [] for label in configs}
    first, second = configs
    config = OUT / "alerts-bench.toml"
    os.environ["MOT_CONFIG"] = str(config)
    for label in (first, second, second, first):  # each order once: a trend weighs on both
        config.write_text(configs[label])
        load = os.getloadavg()[0]
        run = run_measured([*mot_command(), "--store", store, "replay", "-q"],
                           f"replay {label}").check("mot replay")
        rate = head / run.seconds
        runs[label].append(rate)
        cpu[label].append(run.cpu_seconds or 0.0)
        log(f"  {label}: {head:,} events in {run.seconds:.1f} s = {rate:,.0f}/s"
            f" (CPU {run.cpu_seconds or 0:.1f} s with its workers; load {load:.2f})")
    os.environ.pop("MOT_CONFIG", None)
    with open_store(store) as services:
        raised = services.alert_outbox.counts().alerts
    drop_replayed(kind, f"alerts-{kind}", store, args)
    a, b = (sum(v) / len(v) for v in runs.values())
    return {"events": head, "alerts_raised": raised, "events_per_s": runs, "cpu_seconds": cpu,
            "ratio_fresh_to_none": round(b / a, 3),
            "cpu_ratio_fresh_to_none": round(sum(cpu[first]) / sum(cpu[second]), 3),
            "loadavg_1m": os.getloadavg()[0]}


def make_alerts(first: int, last: int) -> list[Any]:
    from mot.projections.alerts import Alert, alert_id

    now = int(time.time() * 1_000_000)
    alerts = []
    for n in range(first, last):
        moment = f"00000000-0000-4000-8000-{n:012d}"
        alerts.append(Alert(alert_id("acme", "detractor", moment), "detractor", "acme", f"c{n}",
                            (f"c{n}",), moment, now - 3_600_000_000, now, "logistics", "dana",
                            "twitter", (("from", "engaged"), ("to", "detractor"))))
    return alerts


def receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/hook"


def raw_posts(url: str, count: int) -> float:
    """Signed POSTs of one alert's body from 16 threads, one kept-alive `http.client`
    connection each: the deliverer's transport without the store."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    from mot.service.alerting import alert_record, signature

    parts = urlsplit(url)
    body = orjson.dumps(alert_record(make_alerts(0, 1)[0]))
    local = threading.local()

    def post(n: int) -> int:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(parts.hostname or "",
                                                                       parts.port, timeout=10)
        stamp = str(int(time.time()))
        connection.request("POST", parts.path, body=body, headers={
            "Content-Type": "application/json", "X-Mot-Alert-Id": str(n),
            "X-Mot-Timestamp": stamp, "X-Mot-Signature": signature("k", stamp, body)})
        response = connection.getresponse()
        response.read()
        return response.status

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        assert all(s == 200 for s in pool.map(post, range(count)))
    return count / (time.perf_counter() - started)


def delivery(kind: str, count: int, url: str, args: Any) -> dict[str, Any]:
    store = fresh_store(kind, f"alerts-deliver-{kind}-{count}", args)
    with open_store(store) as services:
        for start in range(0, count, 5000):
            services.alert_outbox.raise_alerts(make_alerts(start, min(count, start + 5000)))
    config = OUT / "alerts-deliver.toml"
    config.write_text(f'[[alerts.webhooks]]\nurl = "{url}"\nsecret = "k"\n')
    load = os.getloadavg()[0]
    run = run_measured([*mot_command(), "--store", store, "alerts", "deliver", "--config",
                        str(config), "--batch", "500"], f"deliver {count:,}").check("deliver")
    with open_store(store) as services:
        delivered = services.alert_outbox.counts().delivered
    drop_store(kind, f"alerts-deliver-{kind}-{count}", args)
    assert delivered == count, (delivered, count)
    rate = count / run.seconds
    log(f"  {kind}: {count:,} deliveries in {run.seconds:.1f} s = {rate:,.0f}/s, peak RSS"
        f" {run.maxrss_mb:.0f} MB (load {load:.2f})")
    return {"alerts": count, "seconds": round(run.seconds, 2), "deliveries_per_s": round(rate),
            "peak_rss_mb": round(run.maxrss_mb, 1), "loadavg_1m": load}


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--alerts", type=int, default=20_000)
    p.add_argument("--no-rebuild", action="store_true", help="only the delivery part")
    p.set_defaults(n=100_000, stores="sqlite")
    args = p.parse_args()
    results: dict[str, Any] = {"uptime": subprocess.run(["uptime"], capture_output=True,
                                                        text=True).stdout.strip()}
    for kind in stores_of(args.stores):
        if not args.no_rebuild:
            results[f"rebuild_{kind}"] = rebuilds(kind, args)
        process, url = receiver()
        try:
            raw = raw_posts(url, min(args.alerts, RAW_POSTS))
            log(f"  raw http.client baseline: {raw:,.0f} POSTs/s")
            small = delivery(kind, args.alerts // 4, url, args)
            large = delivery(kind, args.alerts, url, args)
        finally:
            process.kill()
        results[f"deliver_{kind}"] = {
            "raw_posts_per_s": round(raw), "small": small, "large": large,
            "ratio_to_raw": round(large["deliveries_per_s"] / raw, 3),
            "peak_rss_large_over_small": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)}
    import json

    (OUT / "alerts_bench.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
