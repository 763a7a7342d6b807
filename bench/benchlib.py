"""What the benchmarks in this folder share: the sample file, fresh stores, measured runs, tables.

Not a test helper: the benchmarks print figures and whether each target is met,
they never assert. Everything they write goes to `bench/out/` (git-ignored).
"""

from __future__ import annotations

import argparse
import cProfile
import fcntl
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse, urlunparse

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
STORES = OUT / "stores"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
KINDS = ("sqlite", "postgres")


def mot_command() -> list[str]:
    """The `mot` console script of the interpreter running the benchmark (the project's venv)."""
    here = Path(sys.executable).parent / "mot"
    if here.exists():
        return [str(here)]
    venv = ROOT / ".venv" / "bin" / "mot"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("mot")
    if found is None:
        raise SystemExit("cannot find the `mot` command; run `make install` first")
    return [found]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- arguments ------------------------------------------------------------------------------

def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=lambda s: int(s.replace("_", "").replace(",", "")), default=1_000_000,
                   help="moments in the sample (default 1,000,000); the memory comparison also "
                        "runs N/10")
    p.add_argument("--stores", default="sqlite,postgres",
                   help="comma-separated: sqlite, postgres (default both)")
    p.add_argument("--seed", type=int, default=7, help="sample seed (default 7)")
    p.add_argument("--pg", default=os.environ.get("MOT_BENCH_PG", DEFAULT_PG),
                   help="PostgreSQL maintenance URL used to create and drop the bench databases")
    p.add_argument("--keep", action="store_true",
                   help="keep the stores (bench/out/stores, mot_bench_* databases) afterwards")
    p.add_argument("--profile", action="store_true",
                   help="also run the mot command once under cProfile at N/10 (not timed) and "
                        "write the top functions to bench/out/")
    p.add_argument("--single", action="store_true",
                   help="run at N only, not also at N/10 (the report runner compares sizes itself)")
    return p


def stores_of(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    for kind in kinds:
        if kind not in KINDS:
            raise SystemExit(f"unknown store {kind!r}; expected sqlite and/or postgres")
    return kinds


# -- the sample -----------------------------------------------------------------------------

def sample_file(n: int, seed: int) -> Path:
    """N wire-format lines (corrections on, no bad lines), generated once per (N, seed)."""
    from mot.adapters.sources.sample import generate_lines

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"moments-n{n}-seed{seed}.jsonl"
    if path.exists():
        log(f"sample: reusing {path.relative_to(ROOT)}")
        return path
    log(f"sample: generating {n:,} moments (seed {seed}) to {path.relative_to(ROOT)}")
    # Benches running at once may make the same sample: each writes its own file, and the
    # rename puts one whole file in place.
    partial = path.with_suffix(f".partial-{os.getpid()}")
    started = time.perf_counter()
    with open(partial, "wb") as out:
        for count, line in enumerate(generate_lines(n, seed=seed, corrections=True, bad_lines=False),
                                     start=1):
            out.write(line)
            if count % 100_000 == 0:
                log(f"sample: {count:,} / {n:,} ({time.perf_counter() - started:.0f} s)")
    partial.rename(path)
    log(f"sample: done in {time.perf_counter() - started:.1f} s")
    return path


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


# -- stores ---------------------------------------------------------------------------------

def pg_url(admin: str, dbname: str) -> str:
    parsed = urlparse(admin)
    return urlunparse(parsed._replace(path=f"/{dbname}", query=""))


def drop_pg(admin: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def fresh_pg(admin: str, dbname: str) -> str:
    import psycopg
    from psycopg import sql

    drop_pg(admin, dbname)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return pg_url(admin, dbname)


def sqlite_paths(name: str) -> list[Path]:
    """A SQLite store's files: the database, its WAL and shared memory, its lock files and
    the master key file mot creates beside a new store."""
    base = STORES / f"{name}.db"
    return [base.with_name(base.name + suffix)
            for suffix in ("", "-wal", "-shm", ".lock", ".rebuild.lock", ".key")]


def fresh_sqlite(name: str) -> str:
    STORES.mkdir(parents=True, exist_ok=True)
    for path in sqlite_paths(name):
        path.unlink(missing_ok=True)
    return str(sqlite_paths(name)[0])


def pg_database(name: str) -> str:
    """A bench's PostgreSQL database: mot_bench_NAME, or mot_bench_TAG_NAME with MOT_BENCH_TAG
    set (engineers sharing one server each pick a tag, so their runs never drop each other's)."""
    tag = os.environ.get("MOT_BENCH_TAG", "").strip()
    return f"mot_bench_{tag}_{name}" if tag else f"mot_bench_{name}"


def fresh_store(kind: str, name: str, args: argparse.Namespace) -> str:
    """A new, empty store for `mot --store`: a SQLite file path or a PostgreSQL URL."""
    if kind == "sqlite":
        return fresh_sqlite(name)
    return fresh_pg(args.pg, pg_database(name))


def drop_store(kind: str, name: str, args: argparse.Namespace) -> None:
    if args.keep:
        return
    if kind == "sqlite":
        for path in sqlite_paths(name):
            path.unlink(missing_ok=True)
    else:
        drop_pg(args.pg, pg_database(name))


def copy_pg(admin: str, source: str, copy: str) -> str:
    """A copy of the PostgreSQL store `source` (no session may be open on it)."""
    import psycopg
    from psycopg import sql

    drop_pg(admin, copy)
    with psycopg.connect(admin, autocommit=True) as conn:
        for attempt in range(50):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(copy), sql.Identifier(source)))
                break
            except psycopg.errors.ObjectInUse:
                # The command that just wrote it has exited, its server sessions end a
                # moment later.
                if attempt == 49:
                    raise
                time.sleep(0.1)
    return pg_url(admin, copy)


def copy_store(kind: str, source: str, name: str, args: argparse.Namespace) -> str:
    """A copy of the bench's store `source` (no process may have it open) as store `name`:
    the same rows without importing them again (setup, never timed)."""
    if kind != "sqlite":
        return copy_pg(args.pg, pg_database(source), pg_database(name))
    fresh_sqlite(name)
    for origin, copy in zip(sqlite_paths(source), sqlite_paths(name), strict=True):
        if origin.exists() and not origin.name.endswith((".lock", "-shm")):
            shutil.copyfile(origin, copy)
    return str(sqlite_paths(name)[0])


SHARED_STORES = "BENCH_SHARED_STORES"
"""Set by bench/run.py for the benches it runs: those of one run share `replayed_store`'s work."""


_IN_PLACE: dict[str, IO[str]] = {}
"""Shared stores this process uses, each with its lock file (held until it exits)."""


def replayed_store(kind: str, name: str, args: argparse.Namespace) -> str:
    """A store holding the N-moment sample, imported (`mot import`) and rebuilt once (`mot
    replay`: the first rebuild after an import drops the import's tables and grows the file,
    so the rebuilds after it are alike), none of it timed; `drop_replayed` drops it.

    The benches of one `bench/run.py` run (SHARED_STORES set) that rebuild the sample's store
    (alerts, responses) share it: the first makes it once per (kind, N, seed), and each uses
    it in turn, holding its lock until the bench's process ends (a quick run's lanes), so at
    1,000,000 moments the second saves an import and a rebuild (bench/NOTES.md); run.py
    drops it at the end. Their rebuilds leave it as they found it but for the alerts the
    alerts bench raises, which no other bench reads, and it runs once a run. A bench run
    alone makes its own, `name`."""
    run = os.environ.get(SHARED_STORES, "").strip()
    if not run:
        return _import_and_replay(kind, name, args)
    shared = f"replayed-{run}-n{args.n}-seed{args.seed}"
    STORES.mkdir(parents=True, exist_ok=True)
    lock = open(STORES / f"{shared}.{kind}.making", "w")  # noqa: SIM115 (held past this call)
    fcntl.flock(lock, fcntl.LOCK_EX)
    ready = STORES / f"{shared}.{kind}.ready"
    if ready.exists():
        log(f"{kind}: the store imported and rebuilt by an earlier bench of this run")
        store = str(sqlite_paths(shared)[0]) if kind == "sqlite" else pg_url(
            args.pg, pg_database(shared))
    else:
        store = _import_and_replay(kind, shared, args)
        ready.write_text(f"{args.pg}\n")
    _IN_PLACE[store] = lock
    return store


def drop_replayed(kind: str, name: str, store: str, args: argparse.Namespace) -> None:
    """Drop the store `replayed_store` gave, unless it is the run's shared one (run.py's)."""
    lock = _IN_PLACE.pop(store, None)
    if lock is not None:
        lock.close()
        return
    drop_store(kind, name, args)


def drop_shared_stores(run: str) -> None:
    """Drop the stores `replayed_store` made for the run `run` (bench/run.py, at its end)."""
    for ready in STORES.glob(f"replayed-{run}-*.ready"):
        shared, kind = ready.name.removesuffix(".ready").rsplit(".", 1)
        drop_store(kind, shared, argparse.Namespace(keep=False, pg=ready.read_text().strip()))
        ready.unlink()
        (STORES / f"{shared}.{kind}.making").unlink(missing_ok=True)


def _import_and_replay(kind: str, name: str, args: argparse.Namespace) -> str:
    store = fresh_store(kind, name, args)
    sample = sample_file(args.n, args.seed)
    log(f"{kind}: importing {args.n:,} moments and rebuilding once (not timed)")
    run_measured([*mot_command(), "--store", store, "import", "-q", str(sample)],
                 f"import ({kind}), not timed").check("mot import")
    # No moment of the sample is fresh under this window: the rebuild raises no alert, so
    # the alerts bench finds an empty outbox, whatever mot.toml is around.
    before = os.environ.get("MOT_CONFIG")
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write('[alerts]\nwindow = "1s"\n')
        config.flush()
        os.environ["MOT_CONFIG"] = config.name
        try:
            run = run_measured([*mot_command(), "--store", store, "replay", "-q"],
                               f"replay ({kind}), not timed")
        finally:
            if before is None:
                os.environ.pop("MOT_CONFIG", None)
            else:
                os.environ["MOT_CONFIG"] = before
    run.check("mot replay")
    log(f"{kind}: imported and rebuilt (not timed); the rebuild {run.seconds:.1f} s,"
        f" CPU {run.cpu_seconds or 0:.1f} s with its workers")
    return store


def store_size_mb(kind: str, name: str, args: argparse.Namespace) -> float:
    if kind == "sqlite":
        return sum(p.stat().st_size for p in sqlite_paths(name) if p.exists()) / 2**20
    import psycopg

    with psycopg.connect(args.pg, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (pg_database(name),)).fetchone()
    return (row[0] if row else 0) / 2**20


# -- measured runs --------------------------------------------------------------------------

@dataclass
class Run:
    """One child process: wall seconds (spawn to reaped), exit code, peak RSS, its output."""

    seconds: float
    returncode: int
    maxrss_mb: float
    rss_method: str
    polled_hwm_mb: float | None
    stdout: str
    stderr: str
    tree_peak_mb: float | None = None  # peak of the summed RSS of the command and its children
    cpu_seconds: float | None = None  # user + system, with its waited-for children: on a busy
    # machine the wall time is mostly waiting for a CPU, this is the work

    def json(self) -> Any:
        return orjson.loads(self.stdout)

    def check(self, what: str) -> Run:
        if self.returncode != 0:
            raise SystemExit(f"{what} failed (exit {self.returncode}):\n{self.stderr[-4000:]}")
        return self


GNU_TIME = Path("/usr/bin/time")


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _child_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = f.read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def run_measured(args: Sequence[str], label: str, *, every: float = 10.0) -> Run:
    """Run a command to completion and measure its wall time and peak RSS.

    Peak RSS: not `os.wait4`'s ru_maxrss of a child of this process, because Linux
    carries the high-water mark across fork+exec, so a child of a big parent reports
    the parent's RSS. The command runs under GNU `time -f %M` (a small parent) when
    /usr/bin/time exists; besides, the command's VmHWM is polled from /proc every
    50 ms (the fallback, and a cross-check). Progress goes to stderr every `every` s.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".time") as timed:
        wrapped = GNU_TIME.exists()
        command = [str(GNU_TIME), "-f", "%M", "-o", timed.name, *args] if wrapped else list(args)
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
        done = threading.Event()
        hwm = [0]
        tree = [0]

        def poll() -> None:
            last = started
            while not done.wait(0.05):
                pid = _child_pid(proc.pid) if wrapped else proc.pid
                if pid is None:
                    continue
                kb = _status_kb(pid, "VmHWM")
                if kb is not None and kb > hwm[0]:
                    hwm[0] = kb
                # mot's worker processes (import --workers) count too: sampled, summed.
                total = sum(_status_kb(p, "VmRSS") or 0 for p in [pid, *_children(pid)])
                tree[0] = max(tree[0], total)
                now = time.perf_counter()
                if now - last >= every:
                    last = now
                    rss = _status_kb(pid, "VmRSS")
                    rss_text = f", RSS {rss / 1024:.0f} MB" if rss is not None else ""
                    log(f"  {label}: {now - started:.0f} s{rss_text}")

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        polled = hwm[0] / 1024 if hwm[0] else None
        maxrss: float | None = None
        if wrapped:
            lines = [line.strip() for line in timed.read().splitlines() if line.strip()]
            if lines and lines[-1].isdigit():
                maxrss = int(lines[-1]) / 1024
        method = "GNU time %M" if maxrss is not None else "polled VmHWM"
        if maxrss is None:
            maxrss = polled if polled is not None else usage.ru_maxrss / 1024
        out.seek(0)
        err.seek(0)
        return Run(seconds, proc.returncode, maxrss, method, polled,
                   out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   tree[0] / 1024 if tree[0] else None, usage.ru_utime + usage.ru_stime)


def profile_command(mot_args: Sequence[str], name: str, top: int = 30) -> Path:
    """Run `mot ARGS` under cProfile; write the stats and the top functions to bench/out."""
    prof = OUT / f"{name}.prof"
    text = OUT / f"{name}.prof.txt"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), *mot_command(), *mot_args]
    log(f"profile: {' '.join(mot_args[:4])} ... -> {prof.relative_to(ROOT)}")
    run_measured(cmd, f"profile {name}").check(f"profile {name}")
    return _top_functions(prof, text, top)


def profile_call(fn: Callable[[], Any], name: str, top: int = 30) -> Path:
    """Profile an in-process call; write the top functions to bench/out."""
    prof = OUT / f"{name}.prof"
    text = OUT / f"{name}.prof.txt"
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    profiler.dump_stats(str(prof))
    return _top_functions(prof, text, top)


def _top_functions(prof: Path, text: Path, top: int) -> Path:
    """Write the `top` functions of the stats in `prof` to `text`, by own and by
    cumulative time."""
    buffer = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buffer)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    text.write_text(buffer.getvalue())
    log(f"profile: top functions in {text.relative_to(ROOT)}")
    return text


# -- reporting ------------------------------------------------------------------------------

def num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain aligned table; text columns left, figures right."""
    body = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            numeric = i > 0 and (cell[:1].isdigit() or (cell[:1] == "-" and cell[1:2].isdigit()))
            out.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(headers)), rule, *(line(r) for r in body)])


def settings_note(results: dict[str, Any]) -> list[str]:
    """One line naming the PostgreSQL settings the figures were measured with."""
    settings = results.get("postgres_settings")
    if not settings:
        return []
    return ["PostgreSQL settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())]


def report_row(bench: str, case: str, store: str, n: int, rate: float | None, unit: str, *,
               baseline: str | None = None, baseline_rate: float | None = None,
               peak_rss_mb: float | None = None, seconds: float | None = None,
               higher_is_better: bool = True, **extra: Any) -> dict[str, Any]:
    """One line of the benchmark report (bench/run.py): a figure of mot, at N, next to its raw
    baseline measured in the same run. Every bench puts a list of these under "rows" in its
    JSON, so the runner needs to know nothing else about it."""
    ratio = (rate / baseline_rate if rate is not None and baseline_rate else None)
    return {"bench": bench, "case": case, "store": store, "n": n, "rate": rate, "unit": unit,
            "higher_is_better": higher_is_better, "baseline": baseline,
            "baseline_rate": baseline_rate, "ratio": ratio, "peak_rss_mb": peak_rss_mb,
            "seconds": seconds, **extra}


def write_json(name: str, data: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def environment() -> dict[str, Any]:
    """Where the figures were measured (they mean little without it)."""
    import platform
    import sqlite3
    from importlib.metadata import version

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": version("psycopg"),
        "psycopg_impl": _psycopg_impl(),
        "eventsourcing": version("eventsourcing"),
        "mot": version("mot-ledger"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg_at_start": os.getloadavg(),
        "git": _git(),
    }


def pg_settings(admin: str) -> dict[str, Any]:
    """Server settings that move the PostgreSQL figures (autovacuum off means no ANALYZE at all)."""
    import psycopg

    names = ("server_version", "autovacuum", "shared_buffers", "synchronous_commit", "fsync",
             "wal_level", "max_wal_size", "jit")
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            out: dict[str, Any] = {}
            for name in names:
                row = conn.execute(f"SHOW {name}").fetchone()
                out[name] = row[0] if row else None
            return out
    except psycopg.Error as error:
        return {"error": str(error)}


def _psycopg_impl() -> str:
    import psycopg

    return str(psycopg.pq.__impl__)


def _git() -> dict[str, Any]:
    """The commit measured, and the tracked files that differed from it (others edit concurrently)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "modified": [line[3:] for line in git("status", "--porcelain", "--untracked-files=no")
                         .splitlines()]}
