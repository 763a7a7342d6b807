"""The rebuild's bulk paths give the incremental path's rows, on SQLite and real PostgreSQL.

A rebuild loads its moments table inside the database (JSON functions over the
stored events, moment_load.py) where the incremental path decodes each event
in Python (`current_of`), and it may fold its customers in worker processes.
Neither may change a single value: the tests compare whole tables.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from process_support import stages_left

from mot.adapters.sources.sample import generate_lines
from mot.adapters.stores.changelog import KEYS
from mot.adapters.stores.projection_tables import TABLES, column_names
from mot.adapters.stores.sql import SCHEMA_VERSION
from mot.bootstrap import open_store
from mot.cli.main import cli
from mot.domain.identity import derived_moment_id
from mot.projections.ports import REBUILD
from mot.service.importing import record_stream
from mot.service.ledger import Incoming

# Moments the sample does not draw: fractions of a second (to be normalised), an
# integer sentiment, text outside ASCII, attributes, replies and shares.
EDGES = [
    {"tenant": "acme", "customer_id": "ü-1", "occurred_at": "2026-03-01T09:00:00.5+02:00",
     "channel": "email", "direction": "inbound", "kind": "complaint", "function": "service",
     "actor": "Zoë 😀", "sentiment": -1, "source": {"system": "hd", "id": "e1"},
     "attributes": {"note": "naïve \"quoted\" \\ text", "n": 1.25e3}},
    {"tenant": "acme", "customer_id": "ü-1", "occurred_at": "2026-03-01T08:00:00.123456Z",
     "channel": "twitter", "direction": "public", "kind": "post", "function": "service",
     "sentiment": -0.75, "reach": 12000, "in_reply_to": {"system": "hd", "id": "e1"},
     "source": {"system": "x", "id": "p1"}},
    {"tenant": "acme", "customer_id": "c-2", "occurred_at": "2026-03-01T10:00:00.000100Z",
     "channel": "twitter", "direction": "public", "kind": "share", "function": "other", "reach": 5,
     "shares": {"system": "x", "id": "p1"}, "source": {"system": "x", "id": "s1"}},
    {"type": "amend", "moment_id": derived_moment_id("acme", "hd", "e1"),
     "set": {"occurred_at": "2026-03-01T06:30:00.25Z", "sentiment": 1}, "reason": "clock"},
]



def record(url: str, messages: list[bytes]) -> None:
    with open_store(url) as services:
        record_stream(services.ledger, (Incoming(m, f"test:{n}") for n, m in enumerate(messages, 1)))


def tables(url: str, *, versions: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted; without the `version` column if asked."""
    out = {}
    with open_store(url) as services, services.backend.read() as tx:
        for name in TABLES:
            columns = [c for c in column_names(tx, name) if versions or c != "version"]
            out[name] = sorted(tx.query(f"SELECT {', '.join(columns)} FROM {name}"), key=repr)
    return out


def surviving(url: str, deleted: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Those of the (projection, row key) pairs whose row is in the store."""
    with open_store(url) as services, services.backend.read() as tx:
        return [(projection, key) for projection, key in deleted
                if tx.scalar(f"SELECT count(*) FROM {projection} WHERE "
                             + " || '/' || ".join(KEYS[projection]) + " = ?", (key,))]


def sample(n: int, seed: int) -> list[bytes]:
    lines = [line.strip() for line in generate_lines(n, seed=seed, corrections=True)]
    return lines + [orjson.dumps(m) for m in EDGES]


def test_the_moments_a_rebuild_loads_are_those_the_incremental_path_writes(
    store_url: str,
) -> None:
    record(store_url, sample(1500, seed=21))
    with open_store(store_url) as services:
        applied = services.projections.project(page_size=97)  # incremental: page by page
        assert applied == services.ledger_store.head() > 1400
    incremental = tables(store_url, versions=False)
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
    rebuilt = tables(store_url, versions=False)
    assert len(rebuilt["moments"]) > 1400
    # Row for row, column for column: moment ids, fold keys, occurred_us to the
    # microsecond, NULLs, sentiment as REAL.
    assert rebuilt["moments"] == incremental["moments"]
    # Tombstones are the incremental path's changelog (rows it deleted, for `mot kafka
    # publish`); a rebuild starts a changelog of its own. Each names a row the rebuild has not.
    deleted = incremental.pop("tombstones")
    assert rebuilt.pop("tombstones") == []
    assert deleted, "the sample's retractions delete rows"
    assert not surviving(store_url, [(projection, key) for projection, key in deleted])
    assert rebuilt == incremental
    edge = [r for r in rebuilt["moments"] if r[2] == "ü-1"]
    assert sorted((r[3], r[10], r[14]) for r in edge) == [
        (1772346600250000, 1.0, "2026-03-01T06:30:00.250000Z"),
        (1772352000123456, -0.75, "2026-03-01T08:00:00.123456Z"),
    ]


def test_a_rebuild_in_worker_processes_equals_one_in_this_process(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mot.projections import engine as engine_module

    moments = sample(3000, seed=22)
    # Links among the sample's customers, some taken back, in the middle of the log and at
    # its end: the workers read them in parts, this process reads them whole.
    customers = sorted({(m["tenant"], m["customer_id"]) for m in map(orjson.loads, moments)
                        if "customer_id" in m})
    links = [orjson.dumps({"type": "unlink" if n % 5 == 4 else "link", "tenant": a[0],
                           "customer_ids": [a[1], b[1]], "occurred_at": "2026-05-01T00:00:00Z",
                           "reason": "test"})
             for n, (a, b) in enumerate(zip(customers[:60:2], customers[1:60:2], strict=True))
             if a[0] == b[0]]
    record(store_url, moments[:1500] + links[:15] + moments[1500:] + links[15:])

    def replay(workers: int) -> dict[str, list[tuple[Any, ...]]]:
        with open_store(store_url) as services:
            services.projections.engine.customers_per_chunk = 7  # many ranges, some in flight
            services.projections.replay(workers=workers)
        return tables(store_url)

    here = replay(0)  # the moments copied in range by range, in this process
    assert len(here["relationships"]) > 200 and len(here["amplifications"]) > 20
    assert len(here["links"]) > 20 and len(here["members"]) > 20  # persons of several ids
    # The workers stage ranges of 250 positions (a dozen, some in flight) that this
    # process copies in: the same moments table, the same everything.
    monkeypatch.setattr(engine_module, "BULK_POSITIONS", 250)
    assert replay(2) == here  # versions included: both stamp the rebuild's target position
    assert stages_left(store_url) == []
    result = CliRunner().invoke(cli, ["--store", store_url, "replay", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    assert tables(store_url) == here
    assert stages_left(store_url) == []


def test_stages_a_stopped_rebuild_left_are_dropped_by_the_next(store_url: str) -> None:
    record(store_url, sample(300, seed=27))
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
    reference = tables(store_url)
    with open_store(store_url) as services:
        store, head = services.projection_store, services.ledger_store.head()
        store.start_rebuild(head, "2026-12-01T00:00:00Z")
        # What workers of a killed rebuild had staged, and nobody copied in.
        left = [store.stage_moments(0, head, head), store.stage_moments(0, head // 2, head)]
    assert sorted(stages_left(store_url)) == sorted(stage.name for stage in left)
    assert [stage.moments for stage in left] == [len(reference["moments"]), 149]
    with open_store(store_url) as services:
        services.projections.replay(workers=1)  # resumes the rebuild: its moments phase
    assert stages_left(store_url) == []
    assert tables(store_url) == reference


def test_sealed_moments_opened_in_python_a_part_at_a_time_give_the_same_tables(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the database cannot open the boxes (PostgreSQL; SQLite past the keystore's
    cache) a range's boxes alone are read and opened OPENED_POSITIONS at a time, the data
    keys dropped after each part, and the database joins them to the rows: in a stage and
    in the load of this process, the same rows."""
    from mot.adapters.stores import projection_tables

    record(store_url, sample(1500, seed=31))
    with open_store(store_url) as services:
        services.projections.replay(workers=0)  # each range opened in one part
    reference = tables(store_url)
    monkeypatch.setattr(projection_tables, "OPENED_POSITIONS", 97)
    with open_store(store_url) as services:
        store, head = services.projection_store, services.ledger_store.head()
        store.unsealer = None  # the Python path on SQLite too
        forgotten: list[int] = []
        forget = store.forget_keys
        parts: list[int] = []
        opener = store.opener
        assert opener is not None

        def opening(tx: Any, boxes: list[tuple[str, str, str, str]]) -> list[str]:
            parts.append(len(boxes))
            return opener(tx, boxes)
        store.opener = opening

        def counted() -> None:
            forgotten.append(1)
            forget()
        store.forget_keys = counted  # type: ignore[method-assign]

        def staged(ranges: Any, as_of: int) -> Any:
            """Stages as workers make them, here."""
            return (store.stage_moments(after, upto, as_of) for after, upto in ranges)

        services.projections.engine.positions_per_load = 400
        services.projections.engine.rebuild(restart=True, stager=staged)
        # Every moment's box opened once (the sample seals them all), at most 97 a part,
        # the keys dropped after each; ranges of 400 positions hold more than 97 moments.
        with services.backend.read() as tx:
            assert sum(parts) == tx.scalar("SELECT COUNT(*) FROM moments") > 0
        assert max(parts) == 97 and len(parts) > -(-head // 400)
        assert len(forgotten) == len(parts)
        assert not services.ledger_store.sealing.keystore._by_id
    assert tables(store_url) == reference
    assert stages_left(store_url) == []
    with open_store(store_url) as services:
        services.projection_store.unsealer = None
        services.projections.replay(workers=0)  # load_moments, in this process
    assert tables(store_url) == reference


def test_a_stage_short_of_its_moments_is_refused_and_nothing_of_it_commits(
    store_url: str,
) -> None:
    """A PostgreSQL crash empties UNLOGGED tables: a stage found with fewer moments than it
    was filled with stops the rebuild before its range commits; run again, it stages anew."""
    from mot.projections.engine import RebuildInterrupted

    record(store_url, sample(300, seed=29))
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
    reference = tables(store_url)
    with open_store(store_url) as services:
        store, backend = services.projection_store, services.backend

        def emptied(ranges: Any, as_of: int) -> Any:
            """Stages as workers make them, each emptied before it is copied."""
            for after, upto in ranges:
                stage = store.stage_moments(after, upto, as_of)
                assert stage.moments > 0
                if backend.kind == "sqlite":
                    with sqlite3.connect(stage.name) as conn:
                        conn.execute("DELETE FROM staged")
                else:
                    with backend.write("projections") as tx:
                        tx.execute(f"DELETE FROM {stage.name}")
                yield stage

        services.projections.engine.positions_per_load = 100
        with pytest.raises(RebuildInterrupted, match=r"held 0 of its \d+ moments; run mot replay"):
            services.projections.engine.rebuild(restart=True, stager=emptied)
        assert store.state(REBUILD) == (0, "moments", services.ledger_store.head())
    with open_store(store_url) as services:
        services.projections.replay(workers=1)  # resumes: stages the range anew
    assert tables(store_url) == reference
    assert stages_left(store_url) == []


def test_a_store_of_schema_15_keeps_only_amplification_moments_in_its_index_of_replies(
    store_url: str,
) -> None:
    """Schema 16: the current moments' index of replies (`_reply`, every moment with an
    `in_reply_to`) gives way to `_amplifying` (public posts, reviews and mentions alone),
    on the live tables and on an unfinished rebuild's, whose indexes keep their names'
    prefix; the store goes on projecting, a reply to a late private moment refolded."""
    record(store_url, sample(200, seed=25))
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
        store = services.projection_store
        store.start_rebuild(services.ledger_store.head(), "2026-12-07T10:00:00Z")
        store.index_rebuild("moments")
        with services.backend.write("schema") as tx:  # as schema 15 made them
            for table in ("moments", "moments__rebuild"):
                for name in services.backend.index_names(tx, [table]):
                    if name.endswith("_amplifying"):
                        tx.execute(f"DROP INDEX {name}")
                        tx.execute(f"CREATE INDEX {name.removesuffix('_amplifying')}_reply"
                                   f" ON {table} (in_reply_to) WHERE in_reply_to IS NOT NULL")
            tx.execute("UPDATE mot_schema SET version = 15")
            tagged = [name for name in services.backend.index_names(tx, ["moments__rebuild"])
                      if name.endswith("_reply")]
    assert len(tagged) == 1
    with open_store(store_url) as services:
        with services.backend.read() as tx:
            assert tx.scalar("SELECT MAX(version) FROM mot_schema") == SCHEMA_VERSION
            live = services.backend.index_names(tx, ["moments"])
            rebuilding = services.backend.index_names(tx, ["moments__rebuild"])
        assert not [name for name in live + rebuilding if name.endswith("_reply")]
        assert "moments_amplifying" in live
        assert tagged[0].removesuffix("_reply") + "_amplifying" in rebuilding
        # A private moment arriving after the public post that replies to it refolds the
        # post's customer (its amplification's trigger), found through the new index.
        late = [{"tenant": "acme", "customer_id": "late-1", "occurred_at": "2026-03-02T09:00:00Z",
                 "channel": "twitter", "direction": "public", "kind": "post",
                 "function": "service", "sentiment": -0.5, "reach": 40,
                 "in_reply_to": {"system": "hd", "id": "late-e"},
                 "source": {"system": "x", "id": "late-p"}},
                {"tenant": "acme", "customer_id": "late-1", "occurred_at": "2026-03-02T08:00:00Z",
                 "channel": "email", "direction": "inbound", "kind": "complaint",
                 "function": "service", "sentiment": -0.9, "source": {"system": "hd", "id": "late-e"}}]
        record_stream(services.ledger, [Incoming(orjson.dumps(late[0]), "late:1")])
        assert services.projections.project() == 1
        record_stream(services.ledger, [Incoming(orjson.dumps(late[1]), "late:2")])
        assert services.projections.project() == 1
    incremental = tables(store_url, versions=False)
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
    assert tables(store_url, versions=False) == incremental


def test_a_swap_on_sqlite_leaves_the_connection_as_it_was(tmp_path: Path) -> None:
    """The swap drops the old tables without zeroing their pages (they hold nothing the
    ledger does not), and only that: the connection keeps this SQLite's own setting."""
    url = str(tmp_path / "mot.db")
    record(url, sample(200, seed=28))
    default = sqlite3.connect(":memory:").execute("PRAGMA secure_delete").fetchone()
    with open_store(url) as services:
        services.projections.replay(workers=0)
        services.projections.replay(workers=0)  # this one drops tables with rows
        with services.backend.read() as tx:
            assert (tx.scalar("PRAGMA secure_delete"),) == default


def test_opening_a_store_of_schema_1_is_upgraded_in_place(
    store_url: str,
) -> None:
    record(store_url, sample(200, seed=23))
    with open_store(store_url) as services:
        services.projections.replay(workers=0)  # the live tables now carry tagged index names
        with services.backend.read() as tx:
            before = services.backend.index_names(tx, list(TABLES))
        with services.backend.write("schema") as tx:
            tx.execute("DROP INDEX stored_events_corrections")
            tx.execute("ALTER TABLE moments ADD COLUMN doc TEXT NOT NULL DEFAULT '{}'")
            for column in ("value", "currency", "url", "source_system", "source_id",
                           "attributes"):  # schema 4's
                tx.execute(f"ALTER TABLE moments DROP COLUMN {column}")
            tx.execute("DROP INDEX quarantine_tenant")  # schema 15's
            tx.execute("ALTER TABLE quarantine DROP COLUMN tenant")
            tx.execute("ALTER TABLE quarantine DROP COLUMN names")  # schema 14's
            tx.execute("UPDATE mot_schema SET version = 1")
    with open_store(store_url) as services:
        assert services.backend.ready
        with services.backend.read() as tx:
            assert "stored_events_corrections" in services.backend.index_names(
                tx, ["stored_events"])
            assert tx.scalar("SELECT MAX(version) FROM mot_schema") == SCHEMA_VERSION == 16
            # The upgrade's CREATE INDEX IF NOT EXISTS found each index under its tagged name.
            assert services.backend.index_names(tx, list(TABLES)) == before
            assert "doc" not in column_names(tx, "moments")
            assert column_names(tx, "quarantine")[-2:] == ["names", "tenant"]
            assert column_names(tx, "moments")[-6:] == [
                "value", "currency", "url", "source_system", "source_id", "attributes"]
        # The upgraded store goes on projecting.
        record_stream(services.ledger, (Incoming(line, "more") for line in sample(50, seed=24)))
        assert services.projections.project() > 30
        assert services.projections.status().lag == 0
    assert len([name for name in before if name.endswith("_fold")]) == 1


def test_a_rebuild_leaves_room_in_the_moments_key_index_and_no_stand_in_rows(
    store_url: str,
) -> None:
    """SQLite's CREATE INDEX packs every leaf full, and moment ids are hashes: a rebuild
    builds the current moments' key index over stand-in rows (random ids, no tenant) and
    deletes them. None is left, in the table or the index, the index is there once and
    unique, and every moment is found by its key (as on PostgreSQL, which needs none)."""
    from eventsourcing.persistence import IntegrityError

    record(store_url, sample(200, seed=25))
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
        with services.backend.read() as tx:
            keys = [name for name in services.backend.index_names(tx, ["moments"])
                    if name.endswith("_key")]
            assert tx.scalar("SELECT COUNT(*) FROM moments WHERE tenant = ?"
                             " OR LENGTH(moment_id) <> 36", ("",)) == 0
            # Every moment read by its key, through the index: none lost with the stand-ins.
            ids = tx.query("SELECT moment_id, tenant FROM moments")
            assert len(ids) > 150
            assert all(tx.scalar("SELECT COUNT(*) FROM moments WHERE moment_id = ?"
                                 " AND tenant = ?", key) == 1 for key in ids)
            moment_id, tenant = tx.query("SELECT moment_id, tenant FROM moments LIMIT 1")[0]
        assert len(keys) == 1
        with (pytest.raises((sqlite3.IntegrityError, IntegrityError)),
              services.backend.write("projections") as tx):
            tx.execute("INSERT INTO moments SELECT * FROM moments"
                       " WHERE moment_id = ? AND tenant = ?", (moment_id, tenant))
        moments = services.projections.project()
    assert moments == 0


def test_every_replay_leaves_each_table_its_indexes(store_url: str) -> None:
    """A swap renames tables and PostgreSQL keeps their primary keys' names: the next
    rebuild's keys get other names, which must not pass for the secondary indexes."""
    from mot.adapters.stores.projection_tables import INDEXES

    record(store_url, sample(200, seed=25))
    wanted = sorted(f"{name}:{template.split('{i}', 1)[1].split(' ', 1)[0]}"
                    for name, templates in INDEXES.items() for template in templates)
    for _ in range(3):
        with open_store(store_url) as services:
            services.projections.replay(workers=0)
            with services.backend.read() as tx:
                roles = sorted(f"{name}:_{index.rsplit('_', 1)[1]}" for name in TABLES
                               for index in services.backend.index_names(tx, [name]))
        assert roles == wanted


class Killed(Exception):
    """Stands for a kill -9: raised between two commits, it leaves what they left."""


def test_a_rebuild_stopped_in_any_phase_resumes_to_the_same_tables(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mot.projections import engine as engine_module
    from mot.service.fold_workers import FoldPool

    record(store_url, sample(2500, seed=26))
    monkeypatch.setattr(engine_module, "BULK_POSITIONS", 300)  # several pages of moments
    with open_store(store_url) as services:
        services.projections.replay(workers=0)
    reference = tables(store_url)

    def stop_at(phase: str, count: int) -> Any:
        seen = {"n": 0}

        def progress(name: str, done: int, total: int) -> None:
            if name == phase:
                seen["n"] += 1
                if seen["n"] == count:
                    raise Killed  # after that page or range committed
        return progress

    for phase, count in (("moments", 3), ("customers", 4)):
        with open_store(store_url) as services:
            services.projections.engine.customers_per_chunk = 7
            with FoldPool(store_url, 2, open_store) as pool, pytest.raises(Killed):
                services.projections.engine.rebuild(stop_at(phase, count), restart=True,
                                                    folder=pool, stager=pool.stage)
            state = services.projection_store.state(REBUILD)
            assert state is not None and state[1] == ("moments" if phase == "moments" else "fold")
            # Three pages of 300 positions in, or all of them (folding) with some ranges written.
            assert state[0] == (900 if phase == "moments" else state[2])
            assert tables(store_url) == reference  # the live tables answer as before
            services.projections.engine.customers_per_chunk = 7
            services.projections.replay(workers=2)  # resumes where it stopped
        assert tables(store_url) == reference
        assert stages_left(store_url) == []  # those in flight at the stop included
