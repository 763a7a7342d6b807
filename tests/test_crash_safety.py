"""kill -9 at any moment loses and repeats nothing (ARCHITECTURE, tests): real processes.

`mot import`, `mot project`, `mot replay`, `mot kafka ingest`, `mot kafka
publish`, `mot alerts deliver` and `mot erase` run as separate processes and are
killed with SIGKILL at several points (after a fixed time, or once the store, the
broker's cursor or the webhook receiver shows some progress), then run again to
completion. The ledger must then hold each moment exactly once with no version
gaps, the quarantine exactly the bad lines, and the projections exactly what an
uninterrupted run produces (`mot verify` agrees). Two imports of overlapping
files running at once must also record each moment once.

The input comes from a small deterministic generator in this file, so the
expected ledger is known line by line.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import psycopg
import pytest
from process_support import children, described, finished, stages_left, still_running

from mot.bootstrap import Services, open_store
from mot.domain.events import MomentRecorded, MomentRetracted
from mot.domain.identity import derived_moment_id
from mot.service.importing import record_stream
from mot.service.ledger import Incoming
from mot.service.queries import PROJECTION_NAMES, Query

pytestmark = pytest.mark.slow

SMALL_STAGES = {"MOT_REBUILD_POSITIONS": "500"}  # a rebuild stages 500 positions at a time
IMPORT_LINES = 30_000
# The import killed and run again: what it checks (a kill between two commits, then each
# moment once) needs many commits, not many lines.
KILLED_IMPORT_LINES = 12_000
PROJECT_LINES = 6_000  # below the bulk threshold, so `mot project` takes the incremental path
BATCH = "250"


# -- a deterministic input with known outcomes ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    raw: bytes
    kind: str  # moment, dup, amend, retract, bad, conflict
    moment_id: str | None
    target: int | None  # the line a dup, amend, retract or conflict refers to


SHAPES = (("outbound", "answer"), ("outbound", "help"), ("outbound", "content"),
          ("outbound", "ask"), ("outbound", "question"), ("inbound", "question"),
          ("inbound", "complaint"), ("inbound", "praise"), ("inbound", "purchase"),
          ("inbound", "reply"), ("inbound", "decline"), ("public", "post"),
          ("public", "review"), ("public", "mention"), ("public", "like"))
FUNCTIONS = ("service", "product", "sales", "marketing", "logistics", "hr", "other")
START = datetime(2026, 1, 1, tzinfo=UTC)


def generate(n: int, *, seed: int = 1, customers: int = 2000) -> list[Line]:
    """`n` JSONL lines: ~97 % moments, 1 % exact duplicates, 1 % amendments, 0.4 % retractions,
    0.5 % bad lines and 0.2 % conflicts, every bad line distinct.

    A correction always follows its moment and no moment is corrected twice, so
    importing the file any number of times, in pieces or whole, ends the same way.
    """
    rnd = random.Random(seed)
    lines: list[Line] = []
    moments: list[int] = []
    public: list[int] = []
    touched: set[int] = set()
    for i in range(n):
        r = rnd.random()
        recent = [m for m in moments[-300:] if m not in touched]
        if r < 0.01 and moments:
            t = rnd.choice(moments[-1000:])
            lines.append(Line(lines[t].raw, "dup", lines[t].moment_id, t))
        elif r < 0.02 and recent:
            t = rnd.choice(recent)
            touched.add(t)
            message = {"type": "amend", "moment_id": lines[t].moment_id,
                       "set": {"sentiment": round(rnd.uniform(-1, 1), 2)},
                       "reason": f"rescored {i}"}
            lines.append(Line(orjson.dumps(message), "amend", lines[t].moment_id, t))
        elif r < 0.024 and recent:
            t = rnd.choice(recent)
            touched.add(t)
            message = {"type": "retract", "moment_id": lines[t].moment_id, "reason": f"oops {i}"}
            lines.append(Line(orjson.dumps(message), "retract", lines[t].moment_id, t))
        elif r < 0.029:
            lines.append(Line(_bad(i), "bad", None, None))
        elif r < 0.031 and moments:
            t = rnd.choice(moments[-1000:])
            changed = orjson.loads(lines[t].raw)
            changed["reach"] = changed.get("reach", 0) + 1 + i
            lines.append(Line(orjson.dumps(changed), "conflict", lines[t].moment_id, t))
        else:
            tenant = "acme" if rnd.random() < 0.7 else "globex"
            message = _moment(rnd, i, tenant, customers, moments, public)
            moments.append(i)
            moment_id = derived_moment_id(tenant, "gen", str(i))
            lines.append(Line(orjson.dumps(message), "moment", moment_id, None))
    return lines


def _moment(rnd: random.Random, i: int, tenant: str, customers: int, moments: list[int],
            public: list[int]) -> dict[str, Any]:
    direction, kind = rnd.choice(SHAPES)
    message: dict[str, Any] = {
        "tenant": tenant, "customer_id": f"c{rnd.randrange(customers)}",
        "occurred_at": (START + timedelta(seconds=97 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "channel": rnd.choice(("email", "chat", "twitter", "phone", "web")),
        "direction": direction, "kind": kind, "source": {"system": "gen", "id": str(i)},
    }
    if direction != "public":
        message["function"] = rnd.choice(FUNCTIONS)
    if kind == "ask":
        message["ask_type"] = rnd.choice(("purchase", "review", "survey", "referral"))
    if direction == "public":
        message["sentiment"] = round(rnd.uniform(-1, 1), 2)
        message["reach"] = rnd.randrange(5000)
        if kind != "like" and public and rnd.random() < 0.3:
            message["kind"] = "share"
            message["shares"] = {"system": "gen", "id": str(rnd.choice(public[-200:]))}
        elif kind != "like":
            public.append(i)
    elif moments and rnd.random() < 0.3:
        message["in_reply_to"] = {"system": "gen", "id": str(rnd.choice(moments[-50:]))}
    return message


def _bad(i: int) -> bytes:
    variant = i % 4
    if variant == 0:
        return b'{"tenant": "acme", "customer_id": "c%d", "occurred_at"' % i
    if variant == 1:
        return orjson.dumps({"tenant": "acme", "custmer_id": f"c{i}",
                             "source": {"system": "gen", "id": f"bad{i}"}})
    if variant == 2:  # an amendment of a moment that is never recorded
        return orjson.dumps({"type": "amend", "moment_id": str(uuid.UUID(int=i + 1, version=4)),
                             "set": {"reach": 1}, "reason": "early"})
    return orjson.dumps({"tenant": "acme", "customer_id": f"c{i}",
                         "occurred_at": "2026-02-01T00:00:00Z", "channel": "email",
                         "direction": "outbound", "kind": "purchase",
                         "source": {"system": "gen", "id": f"bad{i}"}})


@dataclass(frozen=True, slots=True)
class Expected:
    versions: dict[str, int]  # moment id -> number of events in its stream
    retracted: frozenset[str]
    bad: frozenset[bytes]

    @property
    def events(self) -> int:
        return sum(self.versions.values())


def expected_of(lines: list[Line]) -> Expected:
    versions: Counter[str] = Counter()
    retracted: set[str] = set()
    for line in lines:
        if line.kind in ("moment", "amend", "retract"):
            assert line.moment_id is not None
            versions[line.moment_id] += 1
        if line.kind == "retract":
            assert line.moment_id is not None
            retracted.add(line.moment_id)
    bad = frozenset(line.raw for line in lines if line.kind in ("bad", "conflict"))
    return Expected(dict(versions), frozenset(retracted), bad)


def write(path: Path, lines: list[Line]) -> Path:
    path.write_bytes(b"".join(line.raw + b"\n" for line in lines))
    return path


# -- processes, and looking at a store from outside ----------------------------------------


def start(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("MOT_STORE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "mot", "--store", url, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = 300) -> str:
    out, _ = finished(proc, timeout=timeout)
    return str(out.decode())


def run(url: str, *args: str) -> str:
    return finish(start(url, *args))


_PROBES: dict[str, psycopg.Connection[Any] | sqlite3.Connection] = {}


def rows(url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows read straight from the store's database (no mot code, takes no lock), with `?`
    placeholders on either store. Empty when the table does not exist yet. The connection
    stays open for the test (a probe polled every few milliseconds must be cheap)."""
    conn = _PROBES.get(url)
    if url.startswith("postgresql://"):
        if not isinstance(conn, psycopg.Connection) or conn.closed:
            parsed = urlparse(url)
            schema = parse_qs(parsed.query).get("schema", ["public"])[0]
            conn = psycopg.connect(parsed._replace(query="").geturl(), autocommit=True,
                                   connect_timeout=10)
            conn.execute(f'SET search_path TO "{schema}"')
            _PROBES[url] = conn
        if params:
            statement = statement.replace("?", "%s")
        try:
            return list(conn.execute(statement, params or None).fetchall())
        except psycopg.errors.UndefinedTable:
            return []
    if not isinstance(conn, sqlite3.Connection):
        if not Path(url).exists():
            return []
        # Autocommit: each read sees what is committed now, and holds no snapshot between.
        conn = _PROBES[url] = sqlite3.connect(url, timeout=30, isolation_level=None)
    try:
        return conn.execute(statement, params).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise


def scalar(url: str, statement: str, params: tuple[Any, ...] = ()) -> Any:
    """One value read straight from the store's database; None when the table does not exist."""
    found = rows(url, statement, params)
    return found[0][0] if found else None


@pytest.fixture(autouse=True)
def _close_probes() -> Iterator[None]:
    """Probe connections must be gone before the test's schema is dropped."""
    yield
    while _PROBES:
        _PROBES.popitem()[1].close()


def head(url: str) -> int:
    column = "notification_id" if url.startswith("postgresql://") else "rowid"
    return int(scalar(url, f"SELECT MAX({column}) FROM stored_events") or 0)


def live_position(url: str) -> int:
    return int(scalar(url, "SELECT position FROM projection_state WHERE name = 'projections'")
               or 0)


def rebuild_progress(url: str) -> int:
    """How far an unfinished rebuild has got: its moments position, plus 1 once it folds."""
    position = scalar(url, "SELECT position FROM projection_state"
                           " WHERE name = 'projections__rebuild'")
    phase = scalar(url, "SELECT phase FROM projection_state WHERE name = 'projections__rebuild'")
    return int(position or 0) + (1 if phase not in (None, "moments") else 0)


@dataclass(slots=True)
class Kill:
    """When to kill: `after` seconds from the start, or once `progress()` reaches `at_least`."""

    after: float | None = None
    at_least: int | None = None


def kill_at(proc: subprocess.Popen[bytes], kill: Kill, progress: Callable[[], int],
            limit: float = 300) -> bool:
    """SIGKILL `proc` at the given point; True if it was killed, False if it had finished."""
    started = time.monotonic()
    while proc.poll() is None:
        elapsed = time.monotonic() - started
        if kill.after is not None and elapsed >= kill.after:
            break
        if kill.at_least is not None and progress() >= kill.at_least:
            break
        assert elapsed < limit, (f"the process neither reached {kill.at_least} nor finished in"
                                 f" {limit} s (progress: {progress()})")
        time.sleep(0.01)
    if proc.poll() is not None:
        out, err = proc.communicate()
        assert proc.returncode == 0, described(proc.args, proc.returncode, out, err)
        return False
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    if proc.returncode == 0:
        return False  # it ended on its own between the last look and the signal
    assert proc.returncode == -signal.SIGKILL, described(proc.args, proc.returncode, out, err)
    return True


# -- checking a store -------------------------------------------------------------------------



def assert_ledger(url: str, expected: Expected) -> None:
    """Each moment exactly once, versions 1..k in log order, the quarantine exactly the bad lines."""
    with open_store(url) as services:
        store = services.ledger_store
        streams: dict[str, list[int]] = {}
        retracted: set[str] = set()
        last = 0
        while page := store.notifications(last, 5000):
            for position, event in page:
                assert position > last
                last = position
                versions = streams.setdefault(event.moment_id, [])
                assert isinstance(event, MomentRecorded) == (not versions), event.moment_id
                versions.append(event.version)
                if isinstance(event, MomentRetracted):
                    retracted.add(event.moment_id)
        assert last == store.head()
        assert set(streams) == set(expected.versions), "moments missing or extra"
        for moment_id, versions in streams.items():
            assert versions == list(range(1, expected.versions[moment_id] + 1)), moment_id
        assert sum(len(v) for v in streams.values()) == expected.events
        assert retracted == expected.retracted
        entries = store.quarantine()
        assert len(entries) == len(expected.bad)
        assert {e.raw for e in entries} == expected.bad
        assert all(e.repeats >= 1 for e in entries)
    # The same, counted by the database itself.
    assert scalar(url, "SELECT COUNT(*) FROM stored_events") == expected.events
    assert scalar(url, "SELECT COUNT(DISTINCT originator_id) FROM stored_events") == len(
        expected.versions)
    assert scalar(url, "SELECT COUNT(*) FROM stored_events WHERE originator_version = 1") == len(
        expected.versions)


def projection_results(services: Services) -> dict[str, list[dict[str, Any]]]:
    """Every projection, as comparable values: row versions (when written) left out."""
    results = {}
    for name in PROJECTION_NAMES:
        records = services.queries.run(Query(name))
        results[name] = sorted(
            ({k: v for k, v in r.items() if k != "version"} for r in records),
            key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS),
        )
    return results


def record_file(url: str, path: Path) -> None:
    with open_store(url) as services:
        lines = path.read_bytes().splitlines()
        record_stream(services.ledger, (Incoming(line, f"{path}:{n}") for n, line in enumerate(lines, 1)))


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def import_lines() -> list[Line]:
    return generate(IMPORT_LINES, seed=1)


@pytest.fixture(scope="module")
def project_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("project") / "moments.jsonl",
                 generate(PROJECT_LINES, seed=2))


@pytest.fixture(scope="module")
def reference(project_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The projections of `project_file`, imported and projected without interruption."""
    url = str(tmp_path_factory.mktemp("reference") / "reference.db")
    record_file(url, project_file)
    with open_store(url) as services:
        services.projections.project()
        results = projection_results(services)
    assert all(results[name] for name in PROJECTION_NAMES)
    return results


def test_the_generator_is_what_the_expectations_say() -> None:
    lines = generate(3000, seed=5)
    assert lines == generate(3000, seed=5)
    kinds = Counter(line.kind for line in lines)
    assert set(kinds) == {"moment", "dup", "amend", "retract", "bad", "conflict"}
    expected = expected_of(lines)
    assert len(expected.versions) == kinds["moment"]
    assert expected.events == kinds["moment"] + kinds["amend"] + kinds["retract"]
    assert len(expected.bad) == kinds["bad"] + kinds["conflict"]


# -- import ------------------------------------------------------------------------------------


def test_import_killed_at_several_points_then_rerun(
    store_url: str, import_lines: list[Line], tmp_path: Path
) -> None:
    # A prefix is a whole input (a correction names an earlier line); KILLED_IMPORT_LINES in
    # batches of BATCH are 48 commits for the kills at a position to land between.
    lines = import_lines[:KILLED_IMPORT_LINES]
    path = write(tmp_path / "moments.jsonl", lines)
    expected = expected_of(lines)
    total = expected.events
    partial = []
    for kill in (Kill(after=0.3), Kill(at_least=total // 4), Kill(after=0.8),
                 Kill(at_least=total * 2 // 3)):
        proc = start(store_url, "import", "--batch-size", BATCH, "--commit-every", BATCH, "--quiet",
                     path.as_posix())
        killed = kill_at(proc, kill, lambda: head(store_url))
        if killed:
            partial.append(head(store_url))
    assert any(0 < h < total for h in partial), f"no kill landed mid-import: {partial}"
    out = run(store_url, "import", "--batch-size", BATCH, "--commit-every", BATCH, "--summary-json",
              "--quiet", path.as_posix())
    summary = orjson.loads(out)
    assert summary["read"] == KILLED_IMPORT_LINES
    assert summary["quarantined"] == len(expected.bad)
    assert_ledger(store_url, expected)


# -- project and replay -------------------------------------------------------------------------


def test_project_and_replay_killed_mid_way_then_rerun(
    store_url: str, project_file: Path, reference: dict[str, Any]
) -> None:
    record_file(store_url, project_file)
    total = head(store_url)
    assert 0 < total < 20_000

    partial = []
    # Kills at a position first (a whole run takes well under a second), in small pages:
    # many commits to land between, however fast the machine.
    for kill in (Kill(at_least=total // 4), Kill(at_least=total // 2), Kill(after=0.2)):
        proc = start(store_url, "project", "--page-size", "100", "--quiet")
        if kill_at(proc, kill, lambda: live_position(store_url)):
            partial.append(live_position(store_url))
    assert any(0 < p < total for p in partial), f"no kill landed mid-projection: {partial}"
    out = run(store_url, "project", "--quiet")
    assert f"projections at {total:,} of {total:,}" in out
    with open_store(store_url) as services:
        assert projection_results(services) == reference

    partial = []
    for kill in (Kill(after=0.6), Kill(at_least=total // 2), Kill(at_least=total + 1)):
        proc = start(store_url, "replay", "--quiet")
        if kill_at(proc, kill, lambda: rebuild_progress(store_url)):
            partial.append(rebuild_progress(store_url))
    assert any(p > 0 for p in partial), f"no kill landed mid-rebuild: {partial}"
    with open_store(store_url) as services:
        # An unfinished rebuild leaves the live projections answering as before.
        assert projection_results(services) == reference
    out = run(store_url, "replay", "--quiet")
    assert f"up to ledger position {total:,}" in out
    with open_store(store_url) as services:
        status = services.projections.status()
        assert (status.head, status.position, status.rebuild) == (total, total, None)
        assert projection_results(services) == reference


def assert_rebuilt(url: str, total: int, reference: dict[str, Any]) -> None:
    """The projections are live at the ledger's head, equal to the reference, and the
    rebuild left nothing behind."""
    with open_store(url) as services:
        status = services.projections.status()
        assert (status.head, status.position, status.rebuild) == (total, total, None)
        assert projection_results(services) == reference
    assert stages_left(url) == []


def test_replay_in_worker_processes_killed_mid_way_then_rerun(
    store_url: str, project_file: Path, reference: dict[str, Any]
) -> None:
    """`mot replay --workers 2`: workers stage the moments (here a stage per 500 positions,
    so several are in flight) and fold the customers while the main process writes. Killed
    at several points, it leaves no worker running, and the rebuild run again gives the
    reference and leaves no stage behind."""
    record_file(store_url, project_file)
    total = head(store_url)
    assert total > 10 * int(SMALL_STAGES["MOT_REBUILD_POSITIONS"])
    run(store_url, "project", "--quiet")  # live tables for queries to answer from meanwhile
    workers: set[int] = set()
    partial = []
    # Each kill once the workers run: as soon as they do (before any stage is copied in),
    # between stages, once the fold is under way. A run resumes where the last one stopped.
    for kill in (Kill(at_least=0), Kill(at_least=total // 3), Kill(at_least=total + 1)):
        proc = start(store_url, "replay", "--workers", "2", "--quiet", env=SMALL_STAGES)

        def progress(proc: subprocess.Popen[bytes] = proc) -> int:
            seen = children(proc.pid)
            workers.update(seen)
            return rebuild_progress(store_url) if seen else -1

        if kill_at(proc, kill, progress):
            partial.append(rebuild_progress(store_url))
    assert any(0 < p < total for p in partial), f"no kill landed between stages: {partial}"
    assert workers, "the workers were never seen"
    assert still_running(workers) == [], "workers outlived their killed parent"
    with open_store(store_url) as services:
        assert projection_results(services) == reference  # the live tables, untouched
    out = finish(start(store_url, "replay", "--workers", "2", "--quiet", env=SMALL_STAGES))
    assert f"up to ledger position {total:,}" in out
    assert_rebuilt(store_url, total, reference)


def test_two_replays_at_once_take_turns(
    store_url: str, project_file: Path, reference: dict[str, Any]
) -> None:
    """A second `mot replay` (or a follower that finds a fresh store) waits for the rebuild
    under way, saying so, instead of working on the same tables: both end with the reference."""
    record_file(store_url, project_file)
    total = head(store_url)
    first = start(store_url, "replay", "--workers", "2", "--quiet", env=SMALL_STAGES)
    deadline = time.monotonic() + 60
    while rebuild_progress(store_url) == 0 and first.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert first.poll() is None, "the first replay ended before the second could start"
    second = start(store_url, "replay", "--workers", "2", env=SMALL_STAGES)
    assert f"up to ledger position {total:,}" in finish(first)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode(errors="replace")
    assert "waiting for another process's rebuild to end" in err.decode()
    assert f"up to ledger position {total:,}" in out.decode()
    assert_rebuilt(store_url, total, reference)


# -- concurrent imports ----------------------------------------------------------------------------


def test_two_concurrent_imports_of_overlapping_files(
    store_url: str, store_kind: str, import_lines: list[Line], tmp_path: Path
) -> None:
    lines = import_lines[:20_000]
    a_end, b_start = 14_000, 6_000
    first = lines[:a_end]
    # A line of the second file that refers to a line before that file starts could be
    # taken before the first file records its moment; leave those to the first file.
    second = [
        line for index, line in enumerate(lines[b_start:], start=b_start)
        if line.target is None or line.target >= b_start
    ]
    expected = expected_of(lines)
    a = write(tmp_path / "a.jsonl", first)
    b = write(tmp_path / "b.jsonl", second)
    args = ("import", "--batch-size", BATCH, "--commit-every", BATCH, "--summary-json", "--quiet")
    procs = [start(store_url, *args, a.as_posix())]
    if store_kind == "postgres":
        # Opening a PostgreSQL store runs eventsourcing's CREATE OR REPLACE FUNCTION, which
        # fails ("tuple concurrently updated") when two processes open the store at the same
        # instant; that is a known open bug of the store's start-up, not of appending. The
        # second writer starts as soon as the first one has appended its first batch.
        deadline = time.monotonic() + 60
        while head(store_url) == 0 and procs[0].poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert head(store_url) < len(first) // 2, "the first import is nearly done already"
    procs.append(start(store_url, *args, b.as_posix()))
    summaries = [orjson.loads(finish(proc)) for proc in procs]
    assert summaries[0]["read"] == len(first) and summaries[1]["read"] == len(second)
    overlap = expected_of(lines[b_start:a_end])
    # The overlap went in once: its moments, amendments and retractions were duplicates once.
    recorded = sum(s["recorded"] + s["amended"] + s["retracted"] for s in summaries)
    assert recorded == expected.events
    assert sum(s["duplicates"] for s in summaries) >= overlap.events
    assert_ledger(store_url, expected)


# -- the crash matrix ----------------------------------------------------------------------------
# Each command that writes, on both stores, killed with SIGKILL at seeded random points, each
# run continuing where the last stopped; then run to completion. `mot verify` must find the
# projections equal to the ledger, and the ledger must be a clean run's. `make crash` runs ten
# kills a command and store; `make test` one.
#
# A kill point is mostly a share of the whole work, as the store (or the broker's cursor, or
# the webhook receiver) shows it, the shares of one matrix taken in increasing order: each
# run continues where the last was killed and is killed at the next point, so the kills
# land mid-way whatever the machine's speed, where a time would often fall in the start-up
# or after the end. A kill counts as landed mid-way when the killed run had made some
# progress and had not finished.

MATRIX = ("import", "project", "replay", "kafka-ingest", "kafka-publish", "alerts-deliver",
          "erase")
MATRIX_KILLS = 10
SAMPLE_KILLS = 1
MATRIX_LINES = 6_000
MATRIX_ALERTS = 300
ALERT_BATCH = 10


@dataclass(frozen=True, slots=True)
class KillPoint:
    """A kill once `share` (0 < share < 1) of the work is done, or `after` seconds from the start
    (or once a quarter of the work left is done, if sooner: on a fast machine a kill after a
    second came when the command had done nearly all of it, and left the later points nothing
    to land in; 4 of 10 kills of `mot project` landed mid-way on SQLite at 09:35)."""

    share: float | None = None
    after: float | None = None

    def at(self, done: int, total: int) -> Kill:
        """The kill for a run that starts with `done` of `total` done."""
        if self.share is None:
            return Kill(after=self.after, at_least=done + max(1, (total - done) // 4))
        return Kill(at_least=max(done + 1, int(self.share * total)))


def kill_points(seed: int, kills: int) -> list[KillPoint]:
    """Seeded: three in ten at a time (mostly in the start-up: opening the store), the others
    at a share of the work, in increasing order."""
    rnd = random.Random(seed)
    timed = set(rnd.sample(range(kills), kills * 3 // 10))
    shares = iter(sorted(rnd.uniform(0.05, 0.95) for _ in range(kills - len(timed))))
    return [KillPoint(after=rnd.uniform(0.05, 1.5)) if i in timed else KillPoint(share=next(shares))
            for i in range(kills)]


def verified(url: str) -> None:
    out = run(url, "verify", "--quiet")
    assert out.startswith("verified:"), out


def published(url: str, name: str = "default") -> int:
    """The changes `mot kafka publish` has sent and recorded: the changelog's rows and
    tombstones up to each of its saved cursors (the order it sends them in). One statement,
    so that the probe keeps up with a fast publisher."""
    from mot.adapters.stores.changelog import KEYS

    counts: list[str] = []
    params: list[Any] = []
    for projection, kind, position, key in rows(
            url, "SELECT projection, kind, position, row_key FROM publisher_state WHERE name = ?",
            (name,)):
        if kind == "rows":
            table, columns, where = projection, ("version", *KEYS[projection]), ""
        else:
            table, columns, where = "tombstones", ("version", "row_key"), "projection = ? AND "
            params.append(projection)
        if key:
            counts.append(f"(SELECT COUNT(*) FROM {table} WHERE {where}"
                          f"({', '.join(columns)}) <= ({', '.join('?' * len(columns))}))")
            params += [position, *orjson.loads(key)]
        else:
            counts.append(f"(SELECT COUNT(*) FROM {table} WHERE {where}version <= ?)")
            params.append(position)
    if not counts:
        return 0
    return int(scalar(url, f"SELECT {' + '.join(counts)}", tuple(params)))


def changelog_size(url: str) -> int:
    """What a clean `mot kafka publish` sends: every row and tombstone of the published
    projections (all projected before it runs)."""
    from mot.adapters.stores.changelog import KEYS

    names = sorted(KEYS)
    total = sum(int(scalar(url, f"SELECT COUNT(*) FROM {name}")) for name in names)
    return total + int(scalar(url, "SELECT COUNT(*) FROM tombstones WHERE projection IN"
                                   f" ({', '.join('?' * len(names))})", tuple(names)))


def kill_runs(url: str, args: tuple[str, ...], points: list[KillPoint], progress: Callable[[], int],
              total: int) -> int:
    """Start `mot ARGS` once per point, killed there; how many kills landed mid-way."""
    landed = 0
    for point in points:
        done = progress()
        if kill_at(start(url, *args, env=SMALL_STAGES), point.at(done, total), progress, limit=300):
            landed += progress() > done
    return landed


def crash_matrix(command: str, url: str, tmp_path: Path, kills: int, seed: int,
                 n: int = MATRIX_LINES, make_store_url: Callable[[str], str] | None = None) -> int:
    """Kill `command` `kills` times, finish it, check the store; how many kills landed mid-way."""
    if command == "alerts-deliver":
        return crash_alerts(url, tmp_path, kills, seed, MATRIX_ALERTS * n // MATRIX_LINES)
    if command == "erase":
        assert make_store_url is not None
        return crash_erase(url, tmp_path, kills, seed, n, make_store_url)
    from kafka_support import GROUP_OPTIONS, Broker, create_topic, free_port, produce, read_topic

    lines = generate(n, seed=seed)
    expected = expected_of(lines)
    path = write(tmp_path / "moments.jsonl", lines)
    broker: Broker | None = None
    try:
        if command.startswith("kafka"):
            broker = Broker(free_port())
            broker.start()
        if command == "import":
            args: tuple[str, ...] = ("import", "--batch-size", "100", "--commit-every", "100",
                                     "--quiet", path.as_posix())
            progress: Callable[[], int] = lambda: head(url)  # noqa: E731
            total = expected.events
        elif command == "kafka-ingest":
            assert broker is not None
            create_topic(broker.bootstrap, "moments", partitions=3)
            produce(broker.bootstrap, "moments", [line.raw for line in lines])
            args = ("kafka", "ingest", "--bootstrap-servers", broker.bootstrap, "--topic", "moments",
                    "--group", "crash", *GROUP_OPTIONS, "--batch-size", "50", "--commit-every",
                    "200", "--exit-when-idle", "2", "--quiet")
            progress = lambda: head(url)  # noqa: E731
            total = expected.events
        else:
            record_file(url, path)
            total = head(url)
            if command == "project":
                args = ("project", "--page-size", "100", "--quiet")
                progress = lambda: live_position(url)  # noqa: E731
            elif command == "replay":
                run(url, "project", "--quiet")
                args = ("replay", "--quiet")
                progress = lambda: rebuild_progress(url)  # noqa: E731
                total += 1  # the fold, once every position is staged
            else:
                assert broker is not None
                run(url, "project", "--quiet")
                # Pages of 10: hundreds of saved cursors to be killed between.
                args = ("kafka", "publish", "--bootstrap-servers", broker.bootstrap,
                        "--page-size", "10", "--quiet")
                progress = lambda: published(url)  # noqa: E731
                total = changelog_size(url)
        landed = kill_runs(url, args, kill_points(seed, kills), progress, total)
        run(url, *args)
        assert_ledger(url, expected)
        verified(url)
        if command == "kafka-publish":
            assert broker is not None
            assert published(url) == total
            with open_store(url) as services:
                stored = {f"{r['tenant']}/{r['customer_id']}": r["version"]
                          for r in services.queries.run(Query("relationships"))}
            seen: dict[str, list[int]] = {}
            gone: set[str] = set()
            for record in read_topic(broker.bootstrap, "mot.relationships"):
                key = record.key.decode()
                seen.setdefault(key, []).append(int(dict(record.headers)["version"]))
                if record.value is None:
                    gone.add(key)  # a tombstone: the row was deleted
                else:
                    gone.discard(key)
            # Nothing lost: every row's latest version went out (a deleted row's tombstone);
            # nothing out of order: a repeated page repeats versions, never an older one.
            assert {key: versions[-1] for key, versions in seen.items() if key not in gone} == stored
            assert all(versions == sorted(versions) for versions in seen.values())
    finally:
        if broker is not None:
            broker.stop()
    return landed


def crash_alerts(url: str, tmp_path: Path, kills: int, seed: int, count: int) -> int:
    """`mot alerts deliver` to a real webhook receiver on 127.0.0.1, killed once it has
    received a share of what is left. Every alert arrives; one the outbox had recorded as
    delivered when a deliverer was killed never arrives again; what may arrive twice is only
    the batch on the wire at a kill (at least once: the receiver tells it by X-Mot-Alert-Id),
    and never two copies at the same time."""
    from alert_support import config_text, make_alert, receiving

    alerts = [make_alert(n) for n in range(count)]
    with open_store(url) as services:
        services.alert_outbox.raise_alerts(alerts)

    def answer(alert: str, seen: int) -> tuple[int, float]:
        return 200, 0.02  # a batch is on the wire for 20 ms or more: a kill finds some so

    # The receiver's threads print a traceback for each request a killed deliverer left
    # half-sent: expected here, and not worth a screenful each.
    with receiving("k", answer) as receiver, contextlib.redirect_stderr(io.StringIO()):
        config = tmp_path / "mot.toml"
        config.write_text(config_text(f'url = "{receiver.url}"\nsecret = "k"'))
        args = ("alerts", "deliver", "--config", str(config), "--batch", str(ALERT_BATCH),
                "--lease", "1")

        def progress() -> int:
            return len(receiver.counts())  # distinct alerts received

        landed = 0
        settled_at_kill: list[tuple[int, set[str]]] = []
        for point in kill_points(seed, kills):
            done = progress()
            kill = point.at(done, count)
            killed = kill_at(start(url, *args), kill, progress, limit=300)
            if killed:
                landed += progress() > done
                with receiver.lock:
                    received = len(receiver.received)
                settled_at_kill.append((received, {str(r[0]) for r in rows(
                    url, "SELECT alert_id FROM alert_deliveries WHERE state = 'delivered'")}))
                time.sleep(1.2)  # the lease of the killed deliverer's batch runs out
        run(url, *args)
        counts = receiver.counts()
        assert set(counts) == {a.alert_id for a in alerts}, "alerts lost"
        with open_store(url) as services:
            assert services.alert_outbox.counts().delivered == count
        for received, settled in settled_at_kill:
            again = {r["id"] for r in receiver.received[received:]} & settled
            assert not again, f"delivered again after the outbox recorded them: {sorted(again)}"
        repeated = sum(n - 1 for n in counts.values())
        assert repeated <= len(settled_at_kill) * ALERT_BATCH, counts
        # Every POST received whole was signed right. A deliverer killed while sending leaves
        # bodies cut short, which the receiver counts as badly signed (and leaves "in flight",
        # so `receiver.overlaps` says nothing here): at most the batch on the wire per kill.
        from mot.service.alerting import signature

        assert all(r["headers"]["X-Mot-Signature"] == signature("k", r["timestamp"], r["raw"])
                   for r in receiver.received)
        assert receiver.bad_signatures <= len(settled_at_kill) * ALERT_BATCH
    return landed


def person_rows(url: str, tenant: str, customer_id: str) -> tuple[int, int]:
    """The person's relationships rows and current moments, read from the tables."""
    return (int(scalar(url, "SELECT COUNT(*) FROM relationships WHERE tenant = ? AND customer_id = ?",
                       (tenant, customer_id))),
            int(scalar(url, "SELECT COUNT(*) FROM moments WHERE tenant = ? AND customer_id = ?",
                       (tenant, customer_id))))


def crash_erase(url: str, tmp_path: Path, kills: int, seed: int, n: int,
                make_store_url: Callable[[str], str]) -> int:
    """`mot erase` of a person a kill, killed after a random share of the time an erase takes
    to commit (start-up, catch-up, its transaction) or once its erasure is committed (while
    it scrubs the files). After each
    kill the person is either wholly erased (the receipt, no row of theirs) or wholly there
    (no receipt, their rows as before), and `mot verify` passes; run again, the erasure is
    recorded once. At the end
    `mot verify` passes and the projections are those of a clean store where the same
    persons were erased without a kill."""
    lines = generate(n, seed=seed, customers=40)
    expected = expected_of(lines)
    path = write(tmp_path / "moments.jsonl", lines)
    kind = "postgres" if url.startswith("postgresql://") else "sqlite"
    clean = make_store_url(kind)
    for store in (url, clean):
        record_file(store, path)
        run(store, "project", "--quiet")
    persons = list(dict.fromkeys(
        str(orjson.loads(line.raw)["customer_id"]) for line in lines
        if line.kind == "moment" and orjson.loads(line.raw)["tenant"] == "acme"))[:kills]
    rnd = random.Random(seed)

    def receipts() -> int:
        return int(scalar(url, "SELECT COUNT(*) FROM mot_erasures") or 0)

    def erase_args(i: int, customer: str) -> tuple[str, ...]:
        return ("erase", "--tenant", "acme", "--customer", customer, "--reason", f"crash {i}")

    # How long `mot erase` takes here, now, to commit (start-up included): the times to kill
    # at are shares of it, so that they fall before the commit on a fast machine as on a
    # slow one (after it, PostgreSQL's scrub alone takes seconds).
    started = time.monotonic()
    proc = start(clean, *erase_args(0, persons[0]))
    while not scalar(clean, "SELECT COUNT(*) FROM mot_erasures"):
        assert proc.poll() is None or proc.returncode == 0, proc.communicate()[1]
        assert time.monotonic() - started < 120
        time.sleep(0.01)
    to_commit = time.monotonic() - started
    finish(proc)
    landed = 0
    outcomes: Counter[str] = Counter()
    for i, customer in enumerate(persons):
        before = person_rows(url, "acme", customer)
        assert before[0] == 1 and before[1] > 0
        erased_before = receipts()
        kill = (Kill(at_least=erased_before + 1) if rnd.random() < 0.5
                else Kill(after=rnd.uniform(0.1, 1.0) * to_commit))
        args = erase_args(i, customer)
        landed += kill_at(start(url, *args), kill, receipts, limit=300)
        if receipts() == erased_before + 1:
            outcomes["erased"] += 1
            assert person_rows(url, "acme", customer) == (0, 0)
        else:
            outcomes["intact"] += 1
            assert receipts() == erased_before
            assert person_rows(url, "acme", customer) == before
        verified(url)  # whichever it is, the tables are what the ledger (as it opens now) says
        receipt = orjson.loads(run(url, *args))
        assert receipt["erasure"] == erased_before + 1 and receipts() == erased_before + 1
        assert person_rows(url, "acme", customer) == (0, 0)
        if i:
            with open_store(clean) as services, contextlib.redirect_stderr(io.StringIO()):
                services.erasures.erase("acme", customer, f"crash {i}")  # (timings on stderr)
    if kills >= 4:
        assert set(outcomes) == {"erased", "intact"}, outcomes  # kills on both sides of the commit
    verified(url)
    # The moments' events, and one PersonErased an erasure: the clean store's ledger.
    count = "SELECT COUNT(*) FROM stored_events"
    assert scalar(url, count) == scalar(clean, count) == expected.events + len(persons)
    with open_store(url) as services, open_store(clean) as clean_services:
        assert projection_results(services) == projection_results(clean_services)
        assert {e.raw for e in services.ledger_store.quarantine()} == {
            e.raw for e in clean_services.ledger_store.quarantine()}
    return landed


@pytest.mark.crash
@pytest.mark.parametrize("command", MATRIX)
def test_crash_matrix(command: str, store_url: str, tmp_path: Path,
                      make_store_url: Callable[[str], str]) -> None:
    landed = crash_matrix(command, store_url, tmp_path, MATRIX_KILLS, seed=MATRIX.index(command) + 11,
                          make_store_url=make_store_url)
    print(f"crash matrix {command}: {landed} of {MATRIX_KILLS} kills landed mid-way")
    assert landed >= MATRIX_KILLS // 2, f"only {landed} of {MATRIX_KILLS} kills landed mid-way"


@pytest.mark.parametrize("command", MATRIX)
def test_crash_matrix_sample(command: str, store_url: str, tmp_path: Path,
                             make_store_url: Callable[[str], str]) -> None:
    crash_matrix(command, store_url, tmp_path, SAMPLE_KILLS, seed=MATRIX.index(command) + 101,
                 n=MATRIX_LINES // 2, make_store_url=make_store_url)
