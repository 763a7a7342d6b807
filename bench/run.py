"""The benchmark report: every bench in this folder at N = 10k, 100k and 1M, with charts.

    make bench                       # or: .venv/bin/python bench/run.py
    BENCH_N=10000000 make bench      # other sizes (comma-separated)
    BENCH_QUICK=1 make bench         # a sanity check in under two minutes (small N, SQLite only,
                                     # two benches at a time)
    BENCH_ONLY=kafka_bench make bench   # run some benches again; the report keeps the others
    BENCH_RESULTS=/tmp/trial make bench # the report somewhere else (bench/results untouched)

Each `bench/*_bench.py` runs as a child process once per N (`--n N --single`: the
runner compares the sizes itself) and leaves its figures in `bench/out/NAME.json`,
with a list of report lines under "rows" (`benchlib.report_row`): mot's rate next to
its raw baseline measured in the same run, and mot's peak RSS. A bench added to the
folder is picked up as it is; for the benches that write their own figures without
"rows" (alerts, erasure, links import, persons), `ROWS_OF` below reads the rows out
of them. The runner writes:

- `bench/results/REPORT.md`: the machine, the versions, the load average before and
  after, one table per size, the scaling verdicts (rate at the largest N within 20 %
  of the rate at the size below; peak RSS at most 1.2 x) with, for each that fails,
  why (`bench/scaling_notes.toml`, and the load average of the two runs when it
  differs), then the notes of `bench/results/NOTES.md`;
- `bench/results/results.json`: everything above as data;
- `bench/results/throughput.png`, `bench/results/peak_rss.png`: against N, log scales.

A quick run writes to `bench/out/quick/` instead, so it never replaces the report of a
full run. A full run also puts the table into the README section between the
`bench:start` / `bench:end` markers (wherever that section is: README.md or docs/).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from benchlib import (
    DEFAULT_PG,
    OUT,
    ROOT,
    SHARED_STORES,
    drop_shared_stores,
    environment,
    log,
    num,
    pg_settings,
    report_row,
)

RESULTS = ROOT / "bench" / "results"
FULL_N = (10_000, 100_000, 1_000_000)
QUICK_N = (1_000, 3_000)
# Known benches first, in this order; any other *_bench.py after them, by name.
ORDER = ("import_bench", "project_bench", "kafka_bench", "http_bench", "verify_bench")
# The JSON file each bench writes to bench/out (a new bench names its file after itself).
OUTPUTS = {"import_bench": "import_bench", "project_bench": "project_bench", "kafka_bench": "kafka",
           "http_bench": "http", "verify_bench": "verify"}
SCALING_NOTES = ROOT / "bench" / "scaling_notes.toml"
# Benches whose size is not N run once (at the largest N), with these arguments: the share
# chain's depth is capped at 20,000 and each appended share is a `mot project` process.
RUN_ONCE = {"share_chain_bench": ["--appends", "200"]}
RUN_ONCE_QUICK = {"share_chain_bench": ["--depth", "300", "--appends", "10"]}
# A quick run is a sanity check of every bench and of the report: every bench runs once, at
# the smaller size, and the import also at the larger one, so that the scaling verdicts and
# the charts' lines are drawn too (at a small N a bench's fixed costs, processes starting, a
# broker's group join, a browser, are most of its time: project and verify at both sizes were
# 70 of a quick run's 610 s at load 16, 6.8 of its 48 CPU seconds; without them a quick run
# took 3.8 min and 41.6 CPU s at load 15, of which kafka_bench's 51 s hold 5 CPU s: its
# consumer group's join and idle wait).
QUICK_SCALED = frozenset({"import_bench"})
# A quick run runs its benches two at a time: each is mostly a few processes starting and
# waiting (a broker's group join, a server's start), so a second one fills the gaps, and its
# figures are a sanity check, not a measurement. Benches that share a store run in turn.
QUICK_LANES = 2
SHARED_STORE = (frozenset({"export_bench", "report_bench"}),)  # bench/analyst_store.py's
RUN_TIMEOUT_S = 25 * 60  # one bench at one size; past it the run is reported as failed
SCALE_TOLERANCE = 0.2  # the rate at the largest N may be at most 20 % below the size before
RSS_FACTOR = 1.2  # and its peak RSS at most 1.2 x
MARK_START = "<!-- bench:start -->"
MARK_END = "<!-- bench:end -->"


def sizes() -> tuple[int, ...]:
    text = os.environ.get("BENCH_N", "").strip()
    if text:
        return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    return QUICK_N if quick() else FULL_N


def quick() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def benches() -> list[Path]:
    found = {p.stem: p for p in (ROOT / "bench").glob("*_bench.py")}
    named = [found.pop(name) for name in ORDER if name in found]
    return named + [found[name] for name in sorted(found)]


def bench_args(name: str, n: int = 0) -> list[str]:
    stores = os.environ.get("BENCH_STORES", "sqlite" if quick() else "sqlite,postgres")
    extra = ["--stores", stores]
    if name == "kafka_bench" and quick():
        extra.append("--no-pair")  # its group join and rebalance outlast a small sample
        extra += ["--session-timeout-ms", "4000"]  # each group join takes half of it
    if name == "alerts_bench":
        extra += ["--alerts", str(max(500, n // 10))]  # deliveries grow with N too
    if name == "erasure_bench" and quick():
        extra += ["--person", "300"]  # the erased person's moments (10,000 in a full run)
    if name == "persons_bench" and quick():
        extra += ["--big", "300"]  # the merged persons' moments (10,000 each in a full run)
    if name in ("links_import_bench", "responses_bench") and quick():
        extra += ["--rounds", "1"]
    return extra


def run_one(path: Path, n: int, logs: Path) -> dict[str, Any]:
    """Run one bench at one size; its rows, or why there are none."""
    name = path.stem
    out = OUT / f"{OUTPUTS.get(name, name)}.json"
    out.unlink(missing_ok=True)
    once = RUN_ONCE_QUICK if quick() else RUN_ONCE
    command = [sys.executable, str(path), "--n", str(n), "--single", *bench_args(name, n),
               *once.get(name, [])]
    log(f"== {name} at N={n:,}: {' '.join(command[1:])}")
    load_before = os.getloadavg()
    started = time.perf_counter()
    with open(logs / f"{name}-n{n}.log", "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        returncode, cpu = _wait(process, started + RUN_TIMEOUT_S)
    seconds = time.perf_counter() - started
    entry: dict[str, Any] = {"bench": name, "n": n, "processor": _cpu_model(),
                             "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                             "returncode": returncode, "loadavg_before": load_before,
                             "loadavg_after": os.getloadavg(), "rows": []}
    if returncode != 0 or not out.exists():
        tail = (logs / f"{name}-n{n}.log").read_text(errors="replace")[-1500:]
        entry["error"] = f"exit {returncode}: {tail}"
        log(f"   FAILED (exit {returncode}); log in {logs / f'{name}-n{n}.log'}")
        return entry
    data = orjson.loads(out.read_bytes())
    entry["rows"] = data["rows"] if "rows" in data else ROWS_OF.get(name, lambda d, n: [])(data, n)
    for row in entry["rows"]:
        row.setdefault("loadavg", load_before)  # the run's: why two sizes' rates may differ
    if not entry["rows"]:
        entry["error"] = f"{out.name} holds no figures the report can show"
        log(f"   FAILED: no figures in {out}")
        return entry
    entry["figures"] = data
    log(f"   {len(entry['rows'])} figures in {seconds:.0f} s")
    return entry


def _wait(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, float]:
    """The exit status of a bench and its CPU seconds, killed at `deadline` (-9).

    The work, next to the wall time: on a shared machine the wall time is mostly waiting for
    a CPU. User + system of the bench and of every process it waited for (not the PostgreSQL
    server's nor a broker's work), from wait4 of this one child, so that benches running at
    the same time are each counted alone.
    """
    killed = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = -9 if killed else os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if not killed and time.perf_counter() > deadline:
            process.kill()
            killed = True
        time.sleep(0.1)


# -- rows of the benches that write their own figures ------------------------------------

def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _alerts_rows(data: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows = []
    for key, figures in data.items():
        if key.startswith("rebuild_"):
            rates = list(figures["events_per_s"].values())  # [no moment fresh, every one fresh]
            rows.append(report_row("alerts_bench", "rebuild raising every alert (mot replay)",
                                   key.removeprefix("rebuild_"), n, _mean(rates[1]), "events/s",
                                   baseline="the same rebuild raising none",
                                   baseline_rate=_mean(rates[0]),
                                   alerts_raised=figures["alerts_raised"]))
        elif key.startswith("deliver_"):
            large = figures["large"]
            # One series across sizes: the deliveries grow with N (bench_args: N/10).
            rows.append(report_row("alerts_bench", "mot alerts deliver to a webhook (N/10 alerts)",
                                   key.removeprefix("deliver_"), n, large["deliveries_per_s"],
                                   "deliveries/s", baseline="signed POSTs from 16 threads",
                                   baseline_rate=figures["raw_posts_per_s"],
                                   peak_rss_mb=large["peak_rss_mb"], seconds=large["seconds"],
                                   alerts=large["alerts"]))
    return rows


def _erasure_rows(data: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows = []
    moments = data["n"] + data["person"]
    for kind in ("sqlite", "postgres"):
        if kind not in data:
            continue
        plain, sealed = data[kind].get("unsealed"), data[kind]["sealed"]
        for case, key in (("mot import, sealed ledger", "import_s"),
                          ("rebuild (mot replay), sealed ledger", "replay_s")) if plain else ():
            rows.append(report_row("erasure_bench", case, kind, n, moments / sealed[key], "moments/s",
                                   baseline="the same on an unsealed ledger",
                                   baseline_rate=moments / plain[key], seconds=sealed[key]))
        # PostgreSQL's two layouts (erasure_bench.py): the default's scrub rewrites only the
        # parts that held the person's rows, whole tables' (MOT_PG_SPLIT_MOMENTS=0) the tables.
        layouts = ([("sealed", " (PostgreSQL, split layout, the default)"),
                    ("whole", " (PostgreSQL, whole tables, MOT_PG_SPLIT_MOMENTS=0)")]
                   if kind == "postgres" else [("sealed", "")])
        for key, layout in layouts:
            if key not in data[kind]:
                continue
            erased = data[kind][key]
            rows.append(report_row(
                "erasure_bench", f"mot erase of a person of {erased['erased_moments']:,} moments"
                f"{layout}", kind, n, erased["erased_moments"] / erased["erase_s"], "moments/s",
                seconds=erased["erase_s"], transaction_s=erased.get("erase_tx_s"),
                scrub_s=erased.get("scrub_s"), cpu_s=erased.get("erase_cpu_s"),
                load=erased.get("erase_load")))
    return rows


def _links_rows(data: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows = []
    for kind, rounds in data["stores"].items():
        rows.append(report_row(
            "links_import_bench", f"mot import with {data['share']:.0%} links", kind, n,
            max(r["links"]["rate"] for r in rounds), "messages/s",
            baseline="the same moments without links",
            baseline_rate=max(r["plain"]["rate"] for r in rounds),
            # with its parse workers (sampled); runs from before it was measured have none
            peak_rss_mb=max((r["links"].get("peak_rss_mb") or 0 for r in rounds), default=0)
            or None))
    return rows


def _persons_rows(data: dict[str, Any], n: int) -> list[dict[str, Any]]:
    rows = []
    for kind, figures in data["stores"].items():
        best = {label: max(r["moments_per_s"] for r in runs)
                for label, runs in figures["rebuilds"].items()}
        rows.append(report_row("persons_bench", "rebuild with links (persons)", kind, n,
                               best["links"], "moments/s", baseline="the same moments without links",
                               baseline_rate=best["no links"]))
        merge = figures["merge"]
        merged = merge.get("moments", 20_000)  # two persons' moments, regrouped
        raw = merge.get("raw_read_seconds")
        rows.append(report_row("persons_bench", f"link merging two persons of {merged // 2:,} moments",
                               kind, n, merged / merge["seconds"], "moments/s",
                               baseline="a plain read of their moments' rows",
                               baseline_rate=merged / raw if raw else None, seconds=merge["seconds"]))
    return rows


# Bench -> its rows, for the benches whose JSON has no "rows" of its own.
ROWS_OF = {"alerts_bench": _alerts_rows, "erasure_bench": _erasure_rows,
           "links_import_bench": _links_rows, "persons_bench": _persons_rows}


def machine() -> dict[str, Any]:
    """The machine and the versions the figures were measured with."""
    import platform

    memory = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    settings = pg_settings(os.environ.get("MOT_BENCH_PG", DEFAULT_PG))
    env = environment()
    return {**env, "memory_gb": memory, "processor": _cpu_model(), "kernel": platform.release(),
            "postgresql": settings.get("server_version"), "postgres_settings": settings}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


# -- verdicts -------------------------------------------------------------------------------

def series(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, dict[str, Any]]]:
    """(bench, case, store) -> N -> row."""
    out: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for row in rows:
        out.setdefault((row["bench"], row["case"], row["store"]), {})[row["n"]] = row
    return out


def scaling(rows: list[dict[str, Any]], cpus: int | None = None) -> list[dict[str, Any]]:
    """Per series: rate and peak RSS at the report's largest N against the size below it, and
    why a verdict that fails fails (as far as the notes or the load average say). A series
    not measured at the largest N has no verdict (`unscaled` names it): its two smaller
    sizes would be judged instead, against a target set for the larger ones."""
    notes = scaling_notes()
    largest = _largest(rows)
    verdicts = []
    for (bench, case, store), by_n in series(rows).items():
        ns = sorted(n for n, r in by_n.items() if r.get("rate"))
        if len(ns) < 2 or ns[-1] != largest:
            continue
        big, before = by_n[ns[-1]], by_n[ns[-2]]
        rate_ratio = big["rate"] / before["rate"]
        if not big.get("higher_is_better", True):
            rate_ratio = 1 / rate_ratio  # a time: the larger N may take at most 1.25 x as long
        rss_ratio = (big["peak_rss_mb"] / before["peak_rss_mb"]
                     if big.get("peak_rss_mb") and before.get("peak_rss_mb") else None)
        verdict: dict[str, Any] = {
            "bench": bench, "case": case, "store": store, "n": ns[-1], "n_before": ns[-2],
            "rate_ratio": rate_ratio, "rate_ok": rate_ratio >= 1 - SCALE_TOLERANCE,
            "rss_ratio": rss_ratio, "rss_ok": None if rss_ratio is None else rss_ratio <= RSS_FACTOR,
        }
        verdict["why"] = explain(verdict, notes, big.get("loadavg"), before.get("loadavg"), cpus)
        verdicts.append(verdict)
    return verdicts


def unscaled(rows: list[dict[str, Any]]) -> list[str]:
    """The benches with no figure at the report's largest N (so no scaling verdict)."""
    largest = _largest(rows)
    return sorted({row["bench"] for row in rows}
                  - {row["bench"] for row in rows if row["n"] == largest})


def _largest(rows: list[dict[str, Any]]) -> int:
    """The report's largest N, which every scaling verdict is taken at."""
    return max((row["n"] for row in rows), default=0)


def scaling_notes() -> list[dict[str, str]]:
    """bench/scaling_notes.toml: why a verdict fails, found out once (`[[note]]` with case
    (its start), optional store, what = "rate" or "rss", text)."""
    import tomllib

    if not SCALING_NOTES.exists():
        return []
    notes: list[dict[str, str]] = tomllib.loads(SCALING_NOTES.read_text()).get("note", [])
    return notes


def explain(verdict: dict[str, Any], notes: list[dict[str, str]], load: Any,
            load_before: Any, cpus: int | None = None) -> str:
    """Why a failing verdict fails: the notes that match it ("not explained yet" when none
    does), and the load average of the two runs when it may have made their rates differ."""
    failed = {what for what, ok in (("rate", verdict["rate_ok"]), ("rss", verdict["rss_ok"]))
              if ok is False}
    if not failed:
        return ""
    said = [note["text"].strip() for note in notes
            if verdict["case"].startswith(note["case"])
            and note.get("store", verdict["store"]) == verdict["store"]
            and note.get("what", "rate") in failed]
    if not said:
        said.append("**not explained yet**")
    if "rate" in failed and load and load_before:
        now, then = load[0], load_before[0]
        busier = max(now, then)
        # The 1-minute average before a bench is mostly the bench before it (and then this
        # one's own processes): only above the CPU count did other work take CPU time from
        # one of the two runs. A load caveat is never the explanation itself.
        if busier > (cpus or os.cpu_count() or 1) and busier > 1.33 * max(min(now, then), 0.01):
            said.append(f"(load average {now:.1f} at {verdict['n']:,} against {then:.1f} at "
                        f"{verdict['n_before']:,} on {cpus or os.cpu_count()} CPUs: the rates "
                        "may not be comparable)")
    return " ".join(said)


# -- charts ---------------------------------------------------------------------------------

def charts(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    made = []
    for key, title, ylabel, name in (
            ("rate", "Throughput against N (mot; dotted: its raw baseline)", "per second",
             "throughput.png"),
            ("peak_rss_mb", "Peak RSS against N (with worker processes where sampled)", "MB",
             "peak_rss.png")):
        fig, ax = plt.subplots(figsize=(11, 6.5))
        for (_, case, store), by_n in sorted(series(rows).items()):
            if by_n and next(iter(by_n.values())).get("unit") == "queries/s" and key == "rate":
                continue  # a latency, not a throughput: in the table
            ns = sorted(n for n, r in by_n.items() if r.get(key))
            if not ns:
                continue
            line, = ax.plot(ns, [by_n[n][key] for n in ns], marker="o", label=f"{case} ({store})")
            if key == "rate":
                base = [n for n in ns if by_n[n].get("baseline_rate")]
                if base:
                    ax.plot(base, [by_n[n]["baseline_rate"] for n in base], linestyle=":",
                            color=line.get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (moments in the sample)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        path = folder / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


# -- the report -----------------------------------------------------------------------------

def rate_text(row: dict[str, Any], key: str = "rate") -> str:
    return num(row.get(key))


def size_table(rows: list[dict[str, Any]], n: int) -> str:
    lines = ["| benchmark | store | mot | raw baseline | x raw | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        if row["n"] != n:
            continue
        unit = row["unit"]
        ratio = "-" if row.get("ratio") is None else f"{row['ratio']:.2f}"
        base = "-" if row.get("baseline_rate") is None else \
            f"{num(row['baseline_rate'])} ({row['baseline']})"
        extra = ""
        if row.get("ratio_to_import") is not None:
            extra = f"; {row['ratio_to_import']:.2f} x mot import ({num(row['import_per_s'])}/s)"
        if row.get("p95_ms") is not None:
            extra = f"; p95 {row['p95_ms']:.1f} ms"
        if row.get("p99_ms") is not None:
            extra = f"; p99 {row['p99_ms']:.0f} ms"
        lines.append(f"| {row['case']}{extra} | {row['store']} | {rate_text(row)} {unit} | {base} | "
                     f"{ratio} | {num(row.get('peak_rss_mb'))} |")
    return "\n".join(lines)


def headline(rows: list[dict[str, Any]], n: int) -> str:
    """The compact table for the README: rates at one N, ratio to the raw baseline."""
    lines = ["| benchmark | store | mot | x raw baseline | peak RSS MB |", "|---|---|---:|---:|---:|"]
    for row in rows:
        if row["n"] == n:
            ratio = "-" if row.get("ratio") is None else f"{row['ratio']:.2f}"
            lines.append(f"| {row['case']} | {row['store']} | {num(row.get('rate'))} {row['unit']} | "
                         f"{ratio} | {num(row.get('peak_rss_mb'))} |")
    return "\n".join(lines)


def verdict_table(verdicts: list[dict[str, Any]]) -> str:
    def yes(ok: bool | None) -> str:
        return "n/a" if ok is None else ("yes" if ok else "**no**")

    lines = ["| benchmark | store | rate at N / rate at N before | within 20 % | peak RSS ratio | flat "
             "| why not |", "|---|---|---:|:-:|---:|:-:|---|"]
    for v in verdicts:
        rss = "-" if v["rss_ratio"] is None else f"{v['rss_ratio']:.2f}"
        why = v.get("why", "").replace("|", "/").replace("\n", " ")
        lines.append(f"| {v['case']} | {v['store']} | {v['rate_ratio']:.2f} "
                     f"({v['n']:,} / {v['n_before']:,}) | {yes(v['rate_ok'])} | {rss} | "
                     f"{yes(v['rss_ok'])} | {why} |")
    return "\n".join(lines)


def report(data: dict[str, Any], folder: Path) -> str:
    m = data["machine"]
    rows = data["rows"]
    out = [
        "# mot benchmark report",
        "",
        f"Written by `make bench` (bench/run.py) on {data['finished']}"
        + (" (BENCH_QUICK: a sanity check, not figures to quote)" if data["quick"] else "") + ".",
        "Every rate is measured next to its raw baseline in the same run; the machine is shared, "
        "so read the ratios and the load average rather than the absolute figures.",
        "",
        "## Machine",
        "",
        f"- CPUs: {m['cpus']} ({m.get('processor') or 'unknown'}), memory {m.get('memory_gb')} GB, "
        f"Linux {m.get('kernel')}",
        f"- Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL {m.get('postgresql')}, "
        f"psycopg {m['psycopg']} ({m['psycopg_impl']}), eventsourcing {m['eventsourcing']}",
        f"- commit {m['git'].get('commit', '')[:12]}"
        + (f" (with local changes to {', '.join(m['git']['modified'])})" if m['git'].get('modified') else ""),
        f"- load average (1, 5, 15 min) before: {_load(data['loadavg_before'])}; "
        f"after: {_load(data['loadavg_after'])}",
        f"- sizes: {', '.join(f'{n:,}' for n in data['sizes'])}; stores: {data['stores']}; "
        f"wall time {data['seconds'] / 60:.1f} min",
        "",
        "## Charts",
        "",
        "![throughput](throughput.png)",
        "",
        "![peak RSS](peak_rss.png)",
        "",
    ]
    for n in data["sizes"]:
        out += [f"## N = {n:,}", "", size_table(rows, n), ""]
    out += ["## Scaling", "",
            f"The rate at the largest N against the size before it (target: at least "
            f"{1 - SCALE_TOLERANCE:.0%} of it), and peak RSS (target: at most {RSS_FACTOR} x).", "",
            verdict_table(data["scaling"]), ""]
    missing = unscaled(rows)
    if missing:
        out += [f"Not measured at N = {max(data['sizes']):,} in this report, so no verdict: "
                f"{', '.join(missing)}.", ""]
    failed = [r for r in data["runs"] if r.get("error")]
    if failed:
        out += ["## Runs that failed", ""]
        out += [f"- {r['bench']} at N={r['n']:,}: see bench/out/logs/{r['bench']}-n{r['n']}.log"
                for r in failed]
        out.append("")
    notes = RESULTS / "NOTES.md"
    if notes.exists():
        out += [notes.read_text().rstrip(), ""]
    out += ["## Runs", "", "| bench | N | seconds | CPU seconds | load before | load after |",
            "|---|---:|---:|---:|---|---|"]
    out += [f"| {r['bench']} | {r['n']:,} | {r['seconds']:,.0f} | {num(r.get('cpu_seconds'), 1)} | "
            f"{_load(r['loadavg_before'])} | {_load(r['loadavg_after'])} |" for r in data["runs"]]
    return "\n".join(out) + "\n"


def _load(values: Any) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def update_readme(data: dict[str, Any]) -> Path | None:
    """Put the headline table between the bench markers of whichever document has them."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        if MARK_START in text and MARK_END in text:
            head, rest = text.split(MARK_START, 1)
            _, tail = rest.split(MARK_END, 1)
            # The size most benches reached (a partial run may have one bench at a larger one).
            counts = {size: sum(r["n"] == size for r in data["rows"]) for size in data["sizes"]}
            n = max(counts, key=lambda size: (counts[size], size))
            link = os.path.relpath(RESULTS, doc.parent)
            body = "\n".join([
                MARK_START,
                f"At N = {n:,} moments, {data['machine']['cpus']} CPUs, load average "
                f"{_load(data['loadavg_before'])} before and {_load(data['loadavg_after'])} after "
                f"({data['finished'][:10]}; every size, the scaling verdicts and the machine in "
                f"[REPORT.md]({link}/REPORT.md)):",
                "",
                headline(data["rows"], n),
                "",
                f"Charts: [throughput against N]({link}/throughput.png), "
                f"[peak RSS against N]({link}/peak_rss.png).",
                MARK_END,
            ])
            doc.write_text(head + body + tail)
            return doc
    return None


def only() -> set[str] | None:
    text = os.environ.get("BENCH_ONLY", "").strip()
    return {name.strip() for name in text.split(",") if name.strip()} or None


def previous(folder: Path) -> dict[str, Any] | None:
    """The report's earlier runs, which a BENCH_ONLY run adds to (or replaces, same bench and N)."""
    path = folder / "results.json"
    if only() is None or not path.exists():
        return None
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    figures = data.get("figures", {})
    for run in data["runs"]:
        run["figures"] = figures.get(f"{run['bench']}-n{run['n']}")
    here = _cpu_model()
    kept, dropped = same_machine(data["runs"], data.get("machine", {}).get("processor"), here)
    if dropped:
        log(f"bench/results: {len(dropped)} earlier runs were measured on another processor "
            f"({', '.join(sorted({str(r.get('processor')) for r in dropped}))}; this one: "
            f"{here}): left out, their rates do not compare (git keeps them)")
        data.update(header_of(kept, os.getloadavg()))
    data["runs"] = kept
    return data


def header_of(runs: list[dict[str, Any]], load_now: tuple[float, float, float]
              ) -> dict[str, Any]:
    """The report header's load average before and wall time, as `runs` measured them (the
    first one's load before; their seconds), for a report whose other runs were left out:
    the header kept the whole report's, which described runs it no longer shows. With no
    run left, the header starts anew (`load_now`, no time)."""
    return {"loadavg_before": runs[0]["loadavg_before"] if runs else list(load_now),
            "seconds": round(sum(r["seconds"] for r in runs), 1)}


def same_machine(runs: list[dict[str, Any]], recorded: str | None,
                 here: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The earlier runs measured on this processor, and the others. A run written before runs
    named their processor was measured on the one its report names (`recorded`). A merged
    report of two machines compared a 1,000,000 rate measured on one with a 100,000 rate
    measured on another, 2.5 x slower, in its scaling verdicts."""
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for run in runs:
        run.setdefault("processor", recorded)
        (kept if run["processor"] == here else dropped).append(run)
    return kept, dropped


def write(data: dict[str, Any], folder: Path, started: float, *, draw: bool = True) -> None:
    """results.json, the charts and REPORT.md as they stand (after every run: a stopped
    run keeps what it measured)."""
    data["loadavg_after"] = os.getloadavg()
    data["seconds"] = data.get("seconds_before", 0) + round(time.perf_counter() - started, 1)
    data["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    data["sizes"] = sorted({r["n"] for r in data["runs"]})
    data["rows"] = [row for run in data["runs"] for row in run["rows"]]
    data["scaling"] = scaling(data["rows"], data["machine"].get("cpus"))
    (folder / "results.json").write_bytes(orjson.dumps(
        {k: v for k, v in data.items() if k != "seconds_before"}
        | {"runs": [{k: v for k, v in r.items() if k != "figures"} for r in data["runs"]],
           "figures": {f"{r['bench']}-n{r['n']}": r.get("figures") for r in data["runs"]}},
        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if draw:
        charts(data["rows"], folder)
    (folder / "REPORT.md").write_text(report(data, folder))


def results_folder() -> Path:
    """Where the report goes: BENCH_RESULTS when set (a trial run that must not replace the
    report), else bench/out/quick for a quick run, else bench/results."""
    chosen = os.environ.get("BENCH_RESULTS", "").strip()
    if chosen:
        return Path(chosen).resolve()
    return OUT / "quick" if quick() else RESULTS


def _shared_store_in_turn(jobs: list[list[tuple[Path, int]]]) -> list[list[tuple[Path, int]]]:
    """The jobs with those of benches that share a store made one job (run in turn)."""
    out: list[list[tuple[Path, int]]] = []
    joined: dict[frozenset[str], list[tuple[Path, int]]] = {}
    for job in jobs:
        group = next((g for g in SHARED_STORE if job[0][0].stem in g), None)
        if group is None:
            out.append(job)
        elif group in joined:
            joined[group].extend(job)
        else:
            joined[group] = list(job)
            out.append(joined[group])
    return out


def main() -> int:
    folder = results_folder()
    folder.mkdir(parents=True, exist_ok=True)
    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ns = sizes()
    started = time.perf_counter()
    data = previous(folder) or {"quick": quick(), "stores": bench_args("")[1],
                                "loadavg_before": os.getloadavg(), "runs": []}
    data["seconds_before"] = data.get("seconds", 0)
    data["machine"] = machine()
    chosen = only()
    jobs: list[list[tuple[Path, int]]] = []  # each list runs in turn: a bench's sizes
    for path in benches():
        if chosen is not None and path.stem not in chosen:
            continue
        if path.stem in RUN_ONCE:
            chosen_ns = [max(ns)]
        elif quick() and path.stem not in QUICK_SCALED:
            chosen_ns = [min(ns)]
        else:
            chosen_ns = list(ns)
        jobs.append([(path, n) for n in chosen_ns])
    lock = threading.Lock()

    def run_jobs(queue: list[list[tuple[Path, int]]]) -> None:
        while True:
            with lock:
                if not queue:
                    return
                job = queue.pop(0)
            for path, n in job:
                run = run_one(path, n, logs)
                with lock:
                    data["runs"] = [r for r in data["runs"]
                                    if (r["bench"], r["n"]) != (run["bench"], n)]
                    data["runs"].append(run)
                    # A quick run draws the charts once, at the end (drawing them after each
                    # of its short runs took a quarter of its time).
                    write(data, folder, started, draw=not quick())

    # The benches of this run share the sample's imported and rebuilt store (alerts,
    # responses: benchlib.replayed_store), dropped once they are done.
    run_id = os.environ.setdefault(SHARED_STORES, str(os.getpid()))
    try:
        if quick():
            queue = _shared_store_in_turn(jobs)  # the lanes take the next job from one queue
            lanes = [threading.Thread(target=run_jobs, args=(queue,))
                     for _ in range(QUICK_LANES)]
            for lane in lanes:
                lane.start()
            for lane in lanes:
                lane.join()
            order = {path.stem: i for i, path in enumerate(benches())}
            data["runs"].sort(key=lambda r: (order.get(r["bench"], len(order)), r["n"]))
        else:
            run_jobs(jobs)
    finally:
        if run_id == str(os.getpid()):
            drop_shared_stores(run_id)
    write(data, folder, started)
    for v in data["scaling"]:
        ok = v["rate_ok"] and v["rss_ok"] is not False
        log(f"scaling {'ok  ' if ok else 'FAIL'} {v['case']} ({v['store']}): rate x{v['rate_ratio']:.2f}"
            + ("" if v["rss_ratio"] is None else f", peak RSS x{v['rss_ratio']:.2f}")
            + (f" - {v['why']}" if v["why"] else ""))
    report_path = folder / "REPORT.md"
    shown = report_path.relative_to(ROOT) if report_path.is_relative_to(ROOT) else report_path
    log(f"report: {shown} ({data['seconds'] / 60:.1f} min)")
    if folder == RESULTS:
        doc = update_readme(data)
        if doc is not None:
            log(f"table updated in {doc.relative_to(ROOT)}")
    return 1 if any(r.get("error") for r in data["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
