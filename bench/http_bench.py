"""HTTP ingest: `mot serve` on loopback, 32 concurrent clients posting batches of 100 moments,
next to `mot import` of the same moments in the same run.

    .venv/bin/python bench/http_bench.py [--n 50000] [--stores sqlite,postgres]
                                         [--clients 32] [--batch 100] [--max-seconds 300]

For each store, on a fresh one each time:
- import: `mot --store FRESH import FILE --summary-json -q` as a child process; the rate is
  moments over wall time (spawn to exit, so it includes start-up), and over the import's
  own time (`seconds` of its summary);
- HTTP: `mot --store FRESH serve --no-project --no-access-log` as a child process (no
  background projector, as import does not project either); the same file cut into batches
  of 100 NDJSON lines; 32 client threads, each with its own keep-alive connection, take the
  next batch and POST it to /v1/moments with a write token; the latency of each batch is
  send to answer. The rate is moments answered over the time from the first send to the
  last answer. Bounded: every batch once, and the clients stop at --max-seconds.
- check: every moment answered, and the ledger of both stores holds the same count.

Target (the issue): HTTP ingest >= 0.5 of the import rate (wall time). Figures go to
stdout and bench/out/http.json; progress to stderr. Only loopback is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TARGET = 0.5
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mot() -> str:
    here = Path(sys.executable).parent / "mot"
    return str(here if here.exists() else ROOT / ".venv" / "bin" / "mot")


def sample(n: int, seed: int) -> Path:
    """N moments of one tenant (no corrections: concurrent clients do not keep their order)."""
    from mot.adapters.sources.sample import generate_lines

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"http-moments-n{n}-seed{seed}.jsonl"
    if not path.exists():
        log(f"sample: generating {n:,} moments to {path.relative_to(ROOT)}")
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as out:
            for line in generate_lines(n, seed=seed, tenants=("acme",), corrections=False):
                out.write(line)
        partial.rename(path)
    return path


# -- stores ---------------------------------------------------------------------------------

class Store:
    """A fresh store for one run; dropped afterwards."""

    def __init__(self, kind: str, pg_admin: str) -> None:
        self.kind = kind
        self.pg_admin = pg_admin
        name = f"http_{uuid.uuid4().hex[:8]}"
        if kind == "sqlite":
            (OUT / "stores").mkdir(parents=True, exist_ok=True)
            self.url = str(OUT / "stores" / f"{name}.db")
        else:
            self.schema = name
            self.url = f"{pg_admin.split('?')[0]}?schema={name}"

    def drop(self) -> None:
        if self.kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(self.url + suffix).unlink(missing_ok=True)
        else:
            import psycopg

            with psycopg.connect(self.pg_admin, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def head(self) -> int:
        from mot.bootstrap import open_store

        services = open_store(self.url)
        try:
            return services.ledger_store.head()
        finally:
            services.close()


# -- the two runs ---------------------------------------------------------------------------

def run_import(store: Store, path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([mot(), "--store", store.url, "import", str(path), "--summary-json", "-q"],
                          capture_output=True, cwd=ROOT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mot import failed: {done.stderr.decode()[-2000:]}")
    summary = orjson.loads(done.stdout)
    return {"seconds": round(seconds, 3), "summary": summary,
            "moments_per_s": summary["read"] / seconds,
            "moments_per_s_own_time": summary["read"] / summary["seconds"],
            "ledger_head": store.head()}


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    first_send: float | None = None
    last_answer: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Batches:
    """The file's lines in batches of `size`, read as the clients take them: a million
    moments held whole, and again joined into batches, were about 600 MB of this process."""

    def __init__(self, path: Path, size: int) -> None:
        with open(path, "rb") as f:
            lines = sum(1 for line in f if line.strip())
        self.total = (lines + size - 1) // size
        self.size = size
        self._file = open(path, "rb")  # noqa: SIM115 - closed when the last batch is taken
        self._lock = threading.Lock()

    def next(self) -> bytes | None:
        """The next batch, or None when every line was taken."""
        with self._lock:
            if self._file.closed:
                return None
            batch: list[bytes] = []
            for line in self._file:
                if line.strip():
                    batch.append(line.rstrip(b"\r\n"))
                    if len(batch) == self.size:
                        break
            if len(batch) < self.size:
                self._file.close()
            return b"\n".join(batch) if batch else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(store: Store, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [mot(), "--store", store.url, "serve", "--host", "127.0.0.1", "--port", str(port),
         "--no-project", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mot serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("mot serve did not come up in 60 s")


def run_http(store: Store, path: Path, clients: int, size: int, max_seconds: float) -> dict[str, Any]:
    from mot.bootstrap import open_store

    services = open_store(store.url)
    _, token = services.access.create("acme", "write", label="bench")
    services.close()
    batches = Batches(path, size)
    total_batches = batches.total
    port = free_port()
    server = start_server(store, port)
    server_cpu_at_start = _cpu_seconds(server.pid)  # its start-up, not the batches
    bench_cpu_at_start = _own_cpu_seconds()
    results = Results()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    stop_at = time.perf_counter() + max_seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.perf_counter() < stop_at:
            body = batches.next()
            if body is None:
                break
            sent = time.perf_counter()
            with results.lock:
                if results.first_send is None:
                    results.first_send = sent
            try:
                conn.request("POST", "/v1/moments", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                with results.lock:
                    results.errors.append(repr(error))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            answered = time.perf_counter()
            if response.status != 200:
                with results.lock:
                    results.errors.append(f"{response.status}: {payload[:200]!r}")
                continue
            counts = orjson.loads(payload)["counts"]
            with results.lock:
                results.latencies.append(answered - sent)
                results.answered += sum(counts.values())
                for outcome, count in counts.items():
                    results.outcomes[outcome] = results.outcomes.get(outcome, 0) + count
                results.last_answer = max(results.last_answer, answered)
        conn.close()

    log(f"http: {total_batches:,} batches of {size} by {clients} clients")
    threads = [threading.Thread(target=client) for _ in range(clients)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        peak_rss_mb = _vmhwm_mb(server.pid)
        server_cpu = _cpu_seconds(server.pid) - server_cpu_at_start
        bench_cpu = _own_cpu_seconds() - bench_cpu_at_start
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    elapsed = results.last_answer - (results.first_send or results.last_answer)
    latencies = sorted(results.latencies)

    def percentile(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, round(p / 100 * (len(latencies) - 1)))]

    return {
        "clients": clients, "batch": size, "batches": total_batches,
        "batches_answered": len(latencies), "moments_answered": results.answered,
        "outcomes": results.outcomes, "errors": results.errors[:10], "error_count": len(results.errors),
        "seconds": round(elapsed, 3),
        "moments_per_s": results.answered / elapsed if elapsed > 0 else None,
        "latency_ms": {"p50": _ms(percentile(50)), "p90": _ms(percentile(90)),
                       "p99": _ms(percentile(99)), "max": _ms(latencies[-1] if latencies else None)},
        "stopped_by_time_limit": len(latencies) + len(results.errors) < total_batches,
        "ledger_head": store.head(),
        "peak_rss_mb": peak_rss_mb,
        # CPU seconds while the batches were served: the server's (user + system, without its
        # start-up) and the clients' (this process), and each a moment answered.
        "server_cpu_s": round(server_cpu, 2), "clients_cpu_s": round(bench_cpu, 2),
        "server_cpu_us_per_moment": _per(server_cpu, results.answered),
        "clients_cpu_us_per_moment": _per(bench_cpu, results.answered),
    }


def _cpu_seconds(pid: int) -> float:
    """A process's user + system CPU seconds so far (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _per(seconds: float, moments: int) -> float | None:
    return round(seconds / moments * 1e6, 1) if moments else None


def _vmhwm_mb(pid: int) -> float | None:
    """The server's peak RSS so far (read before it is stopped)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=lambda s: int(s.replace("_", "").replace(",", "")), default=50_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--stores", default="sqlite", help="comma-separated: sqlite, postgres")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="the clients stop sending after this long (default 300)")
    parser.add_argument("--pg", default=os.environ.get("MOT_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--single", action="store_true",
                        help="accepted for the report runner (this bench runs at N only anyway)")
    args = parser.parse_args()
    path = sample(args.n, args.seed)
    report: dict[str, Any] = {
        "bench": "http", "n": args.n, "seed": args.seed, "file": str(path),
        "environment": {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                        "python": platform.python_version(), "cpus": os.cpu_count(),
                        "loadavg_at_start": os.getloadavg()},
        "target_ratio": TARGET, "stores": {},
    }
    rows = []
    for kind in [k.strip() for k in args.stores.split(",") if k.strip()]:
        imported_store, http_store = Store(kind, args.pg), Store(kind, args.pg)
        try:
            log(f"{kind}: mot import of {args.n:,} moments")
            imported = run_import(imported_store, path)
            log(f"{kind}: HTTP ingest of the same moments")
            served = run_http(http_store, path, args.clients, args.batch, args.max_seconds)
        finally:
            imported_store.drop()
            http_store.drop()
        ratio = (served["moments_per_s"] or 0) / imported["moments_per_s"]
        same = served["ledger_head"] == imported["ledger_head"] and served["error_count"] == 0
        report["stores"][kind] = {"import": imported, "http": served, "ratio": ratio,
                                  "target_met": ratio >= TARGET, "same_ledger": same}
        rows.append((kind, imported, served, ratio, same))
    print(f"HTTP ingest vs mot import, {args.n:,} moments, batches of {args.batch}, "
          f"{args.clients} clients on loopback")
    print(f"{'store':8} {'import/s':>10} {'(own time)':>11} {'http/s':>9} {'ratio':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'same ledger':>12}  target >= {TARGET}")
    for kind, imported, served, ratio, same in rows:
        print(f"{kind:8} {imported['moments_per_s']:>10,.0f} {imported['moments_per_s_own_time']:>11,.0f} "
              f"{served['moments_per_s'] or 0:>9,.0f} {ratio:>6.2f} {served['latency_ms']['p50']:>7} "
              f"{served['latency_ms']['p99']:>7} {'yes' if same else 'NO':>12}  "
              f"{'met' if ratio >= TARGET else 'NOT met'}")
    for kind, _, served, _, _ in rows:
        print(f"{kind:8} CPU while serving: server {served['server_cpu_s']} s "
              f"({served['server_cpu_us_per_moment']} us a moment), clients "
              f"{served['clients_cpu_s']} s ({served['clients_cpu_us_per_moment']} us a moment)")
    # The report runner's lines (bench/run.py), in benchlib's shape.
    report["rows"] = [
        {"bench": "http", "case": "HTTP ingest (mot serve, 32 clients)", "store": kind, "n": args.n,
         "rate": served["moments_per_s"], "unit": "moments/s", "higher_is_better": True,
         "baseline": "mot import of the same file", "baseline_rate": imported["moments_per_s"],
         "ratio": ratio, "peak_rss_mb": served.get("peak_rss_mb"), "seconds": served["seconds"],
         "p99_ms": served["latency_ms"]["p99"]}
        for kind, imported, served, ratio, _ in rows]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "http.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    log(f"wrote {(OUT / 'http.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
