"""The projection store's contract, one suite run against three backends: memory, SQLite, PostgreSQL.

As eventsourcing runs one recorder test case against its POPO, SQLite and
PostgreSQL recorders: whatever implements `mot.projections.ports.ProjectionStore`
must give the engine the same projections. The in-memory store
(adapters/stores/memory.py) passes it too, so tests where a database adds
nothing can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import BACKENDS, RECORD_KEYS
from responses_support import with_responses

from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
from mot.bootstrap import open_store
from mot.projections.engine import Engine
from mot.projections.ports import (
    LIVE,
    REBUILD,
    NotificationLog,
    ProjectionStore,
    RebuildPhase,
    StagedRange,
    ViewRead,
)
from mot.projections.schema import PROJECTIONS
from mot.service.ledger import Incoming, LedgerService


def with_persons(expected: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The golden fixture has no links: each customer is a person of one id."""
    return expected | {"persons": [
        {"tenant": r["tenant"], "customer_id": r["customer_id"], "customer_ids": [r["customer_id"]]}
        for r in expected["relationships"]]}


@dataclass
class World:
    """A ledger and the projection store that follows it."""

    ledger: LedgerService
    log: NotificationLog
    store: ProjectionStore

    def record(self, lines: list[bytes]) -> None:
        self.ledger.record([Incoming(line, f"test:{n}") for n, line in enumerate(lines, 1)])

    def engine(self, page_size: int = 1000) -> Engine:
        return Engine(self.store, self.log, page_size=page_size, customers_per_chunk=3)

    def views(self) -> dict[str, list[dict[str, Any]]]:
        return {name: self.store.read_view(ViewRead(name)) for name in PROJECTIONS}


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, make_store_url: Any) -> Iterator[World]:
    if request.param == "memory":
        ledger = MemoryLedger()
        yield World(LedgerService(ledger), ledger, MemoryProjectionStore(ledger))
        return
    with open_store(make_store_url(request.param)) as services:
        yield World(services.ledger, services.ledger_store, services.projection_store)


def golden_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


def without_versions(views: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [{k: v for k, v in r.items() if k != "version"} for r in records]
            for name, records in views.items()}


def test_the_golden_fixture_projects_to_the_golden_records(
    world: World, golden_path: Path, golden_expected: dict[str, list[dict[str, Any]]]
) -> None:
    world.record(golden_lines(golden_path))
    assert world.engine(page_size=7).catch_up() == world.log.head()
    for name, records in world.views().items():
        by_key = {tuple(r[k] for k in RECORD_KEYS[name]): r for r in records}
        assert len(by_key) == len(records), name
        wanted = with_persons(with_responses(golden_expected))[name]
        assert sorted(by_key) == sorted(tuple(r[k] for k in RECORD_KEYS[name]) for r in wanted), name
        for record in wanted:
            got = by_key[tuple(record[k] for k in RECORD_KEYS[name])]
            assert {field: got[field] for field in record} == record, (name, record)


def test_records_carry_the_declared_fields_and_versions(world: World, golden_path: Path) -> None:
    world.record(golden_lines(golden_path))
    world.engine().catch_up()
    head = world.log.head()
    for name, records in world.views().items():
        projection = PROJECTIONS[name]
        shown = [f.name for f in projection.stored if f.shown != "stored"]
        assert records and all([k for k in r if k in shown] == shown for r in records), name
        assert all(0 < r["version"] <= head for r in records), name


def test_page_by_page_equals_all_at_once_and_a_rebuild(world: World, golden_path: Path) -> None:
    lines = golden_lines(golden_path)
    world.record(lines[:20])
    world.engine(page_size=3).catch_up()
    world.record(lines[20:])
    world.engine(page_size=3).catch_up()
    incremental = without_versions(world.views())
    assert world.engine().rebuild() == world.log.head()
    assert without_versions(world.views()) == incremental
    state = world.store.state(LIVE)
    assert state is not None and state.position == world.log.head()
    assert state.phase == RebuildPhase.LIVE
    assert world.store.state(REBUILD) is None


def test_a_rebuild_stages_moments_where_the_store_can(world: World, golden_path: Path) -> None:
    """A stager is used through the store's staging capability; a store without one (memory)
    has the engine copy the moments itself, to the same projections."""
    world.record(golden_lines(golden_path))
    world.engine().catch_up()
    live = without_versions(world.views())
    staging = world.store.staging
    staged: list[tuple[int, int]] = []

    def stager(ranges: Iterable[tuple[int, int]], as_of: int) -> Iterator[StagedRange]:
        assert staging is not None  # asked for only when the store can stage
        for after, upto in ranges:
            staged.append((after, upto))
            yield staging.stage_moments(after, upto, as_of)

    engine = world.engine()
    engine.positions_per_load = 10
    assert engine.rebuild(stager=stager) == world.log.head()
    assert without_versions(world.views()) == live
    head = world.log.head()
    expected = [(a, min(a + 10, head)) for a in range(0, head, 10)]
    assert staged == ([] if isinstance(world.store, MemoryProjectionStore) else expected)


def test_the_checkpoint_commits_with_the_work_and_rolls_back_with_it(world: World) -> None:
    with world.store.session() as session:
        assert session.progress().position == 0
        session.save_progress(5, RebuildPhase.LIVE, None, "2026-03-01T00:00:00Z")
    with pytest.raises(RuntimeError), world.store.session() as session:
        session.save_progress(9, RebuildPhase.LIVE, None, "2026-03-01T00:00:00Z")
        raise RuntimeError("a crash mid-page")
    with world.store.session() as session:
        assert session.progress().position == 5
    state = world.store.state()
    assert state is not None and state.position == 5


def share(n: int, parent: int) -> bytes:
    return orjson.dumps({"moment_id": f"00000000-0000-0000-0000-{n:012d}", "tenant": "acme",
                         "customer_id": f"c{n}", "occurred_at": "2026-03-01T10:00:00Z",
                         "channel": "twitter", "direction": "public", "kind": "share",
                         "shares": f"00000000-0000-0000-0000-{parent:012d}", "reach": n})


def test_share_roots_follow_a_chain_that_changes(world: World) -> None:
    post = orjson.dumps({"moment_id": f"00000000-0000-0000-0000-{1:012d}", "tenant": "acme",
                         "customer_id": "author", "occurred_at": "2026-03-01T09:00:00Z",
                         "channel": "twitter", "direction": "public", "kind": "post",
                         "reach": 100})
    engine = world.engine(page_size=1)
    world.record([post, share(2, 1), share(4, 3)])  # 4 waits for 3
    engine.catch_up()
    assert [(r["cascade_size"], r["cascade_reach"])
            for r in world.store.read_view(ViewRead("amplifications"))] == [(1, 102)]
    world.record([share(3, 2)])
    engine.catch_up()
    assert [(r["cascade_size"], r["cascade_reach"])
            for r in world.store.read_view(ViewRead("amplifications"))] == [(3, 109)]
    world.record([orjson.dumps({"type": "retract", "moment_id": f"00000000-0000-0000-0000-{2:012d}",
                                "reason": "spam"})])
    engine.catch_up()
    assert [(r["cascade_size"], r["cascade_reach"])
            for r in world.store.read_view(ViewRead("amplifications"))] == [(0, 100)]


def test_an_as_of_reader_sees_only_what_had_occurred(world: World, golden_path: Path) -> None:
    world.record(golden_lines(golden_path))
    world.engine().catch_up()
    cut = 1_768_000_000_000_000  # 2026-01-09T23:06:40Z
    with world.store.reader(cut) as reader:
        keys = reader.customers_after(None, 100)
        moments = reader.customer_moments(keys)
    assert keys and all(m.occurred_us <= cut for ms in moments.values() for m in ms)
    with world.store.reader() as reader:
        everyone = reader.customers_after(None, 100)
    assert set(keys) < set(everyone)
