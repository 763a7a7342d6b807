"""Every projection per person (SPEC §2 "Links", §3), on the three projection stores.

The persons fixture's links and unlinks go to the engine as the events the ledger
records (tests/persons_support.py), between its moments, in the fixture's order of
arrival; every section but the responses must come out as persons.expected.json
says, page by page or all at once, and the same after a rebuild. Around that:
what a merge or a split does to row keys (deleted, with tombstones; the surviving
key's rows carry the new version), a person_id that moves when a smaller id gets
its first moment, a trigger found among another id's private moments, and
`--customer` by any id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import BACKENDS, SHARED, STORE_KINDS
from persons_support import (
    KEYS,
    SECTIONS,
    LinkFeeder,
    assert_expected,
    fixture_lines,
)

from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
from mot.adapters.stores.projection_tables import BULK_UPSERT_ROWS, RESPONSE_VALUES
from mot.bootstrap import open_store
from mot.domain.identity import derived_moment_id
from mot.projections.engine import Engine
from mot.projections.persons import is_suspect
from mot.projections.ports import ProjectionStore, ViewRead
from mot.projections.responses import Response
from mot.service.queries import Query, QueryService

FIXTURE = SHARED / "fixtures" / "persons.jsonl"
EXPECTED = SHARED / "fixtures" / "persons.expected.json"



@dataclass
class World:
    """Lines in through an in-memory ledger (links as their events), a store projecting it."""

    ledger: MemoryLedger
    feeder: LinkFeeder
    store: ProjectionStore
    tombstones: Any  # () -> {(projection, row_key): version}

    def engine(self, page_size: int = 1000) -> Engine:
        return Engine(self.store, self.ledger, page_size=page_size, customers_per_chunk=2)

    def record(self, lines: list[dict[str, Any]]) -> None:
        self.feeder.record(lines)

    def views(self) -> dict[str, list[dict[str, Any]]]:
        return {name: self.store.read_view(ViewRead(name)) for name in SECTIONS}

    def query(self, name: str, **filters: Any) -> list[dict[str, Any]]:
        return QueryService(self.store, self.engine).run(Query(name, **filters))


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, make_store_url: Any) -> Iterator[World]:
    ledger = MemoryLedger()
    if request.param == "memory":
        store = MemoryProjectionStore(ledger)
        yield World(ledger, LinkFeeder(ledger), store, lambda: dict(store.tables["projections"]
                                                                    .tombstones))
        return
    with open_store(make_store_url(request.param)) as services:
        def tombstones() -> dict[tuple[str, str], int]:
            with services.backend.read() as tx:
                return {(p, k): int(v) for p, k, v in
                        tx.query("SELECT projection, row_key, version FROM tombstones")}

        yield World(ledger, LinkFeeder(ledger), services.projection_store, tombstones)


def without_versions(views: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {name: sorted(orjson.dumps({k: v for k, v in r.items() if k != "version"},
                                       option=orjson.OPT_SORT_KEYS) for r in records)
            for name, records in views.items()}


@pytest.mark.parametrize("page_size", [1, 4, 1000])
def test_the_persons_fixture_gives_its_expected_records(world: World, page_size: int) -> None:
    world.record(fixture_lines(FIXTURE))
    world.engine(page_size).catch_up()
    assert_expected(world.views(), EXPECTED)


def test_the_persons_fixture_in_small_imports_then_a_rebuild() -> None:
    """Projected after every few lines (links landing on moments already folded, and moments
    on persons already linked); then a rebuild gives the same rows."""
    ledger = MemoryLedger()
    store = MemoryProjectionStore(ledger)
    feeder = LinkFeeder(ledger)
    lines = fixture_lines(FIXTURE)
    for start in range(0, len(lines), 3):
        feeder.record(lines[start:start + 3])
        Engine(store, ledger, page_size=2).catch_up()
    views = {name: store.read_view(ViewRead(name)) for name in SECTIONS}
    assert_expected(views, EXPECTED)
    Engine(store, ledger, customers_per_chunk=2).rebuild()
    assert without_versions({name: store.read_view(ViewRead(name)) for name in SECTIONS}) == \
        without_versions(views)


def moment(customer: str, hour: int, direction: str, kind: str, n: str, **more: Any
           ) -> dict[str, Any]:
    return {"tenant": "acme", "customer_id": customer,
            "occurred_at": f"2026-04-01T{hour:02d}:00:00Z", "channel": "chat",
            "direction": direction, "kind": kind, "source": {"system": "t", "id": n}, **more}


def link(kind: str, a: str, b: str, hour: int) -> dict[str, Any]:
    return {"type": kind, "tenant": "acme", "customer_ids": [a, b],
            "occurred_at": f"2026-04-02T{hour:02d}:00:00Z", "reason": "test"}


def test_a_merge_deletes_the_absorbed_key_and_a_split_brings_it_back(world: World) -> None:
    world.record([
        moment("zendesk:m1", 9, "inbound", "complaint", "1", function="logistics"),
        moment("zendesk:m1", 10, "outbound", "answer", "2", function="logistics"),
        moment("x:maria", 12, "public", "post", "3", sentiment=-0.7, reach=800),
    ])
    world.engine().catch_up()
    [post] = world.views()["amplifications"]
    assert (post["customer_id"], post["trigger_moment_id"]) == ("x:maria", None)  # unprompted
    assert {(r["tenant"], r["customer_id"]) for r in world.views()["relationships"]} == {
        ("acme", "x:maria"), ("acme", "zendesk:m1")}

    world.record([link("link", "zendesk:m1", "x:maria", 0)])
    world.engine().catch_up()
    merged_at = world.ledger.head()
    views = world.views()
    [rel] = views["relationships"]
    assert (rel["customer_id"], rel["customer_ids"]) == ("x:maria", ["x:maria", "zendesk:m1"])
    assert rel["version"] == merged_at  # the surviving key's row carries the new version
    assert (rel["stage"], rel["exchanges"], rel["customer_moments"]) == ("detractor", 1, 2)
    [post] = views["amplifications"]
    # The trigger is searched among the person's private moments: zendesk:m1's answer.
    assert post["customer_id"] == "x:maria" and post["trigger_function"] == "logistics"
    assert post["delay_seconds"] == 7200
    teams = {r["function"]: r for r in views["teams"]}
    assert (teams["logistics"]["amplifications"], teams["logistics"]["negative"]) == (1, 1)
    assert [(p["customer_id"], p["customer_ids"], p["ids"]) for p in views["persons"]] == [
        ("x:maria", ["x:maria", "zendesk:m1"], 2)]
    tombstones = world.tombstones()
    for projection in ("relationships", "reciprocity", "persons"):
        assert tombstones[(projection, "acme/zendesk:m1")] == merged_at

    world.record([link("unlink", "x:maria", "zendesk:m1", 1)])
    world.engine().catch_up()
    views = world.views()
    assert {(r["customer_id"], tuple(r["customer_ids"])) for r in views["relationships"]} == {
        ("x:maria", ("x:maria",)), ("zendesk:m1", ("zendesk:m1",))}
    [post] = views["amplifications"]
    assert post["trigger_moment_id"] is None
    assert "logistics" not in {r["function"] for r in views["teams"]
                               if r["amplifications"]}
    assert ("relationships", "acme/zendesk:m1") not in world.tombstones()  # revived


def test_a_merge_rewrites_only_the_responses_rows_whose_values_changed(world: World) -> None:
    """A merge refolds the person's requests; a request whose response and person stay the
    same keeps its row and version, the absorbed id's rows carry the merge's version."""
    world.record([
        moment("a:1", 9, "inbound", "question", "1"), moment("a:1", 10, "outbound", "answer", "2"),
        moment("b:1", 12, "inbound", "question", "3"), moment("b:1", 13, "outbound", "answer", "4"),
        moment("b:1", 14, "inbound", "complaint", "5"),
    ])
    world.engine().catch_up()
    first = world.ledger.head()

    def responses() -> list[tuple[str, str, int, int]]:
        return sorted((r["customer_id"], r["response_moment_id"] or "", r["response_seconds"] or 0,
                       r["version"]) for r in world.store.read_view(ViewRead("responses")))

    ids = {n: derived_moment_id("acme", "t", n) for n in ("2", "4")}  # the answers
    assert responses() == sorted([("a:1", ids["2"], 3600, first), ("b:1", ids["4"], 3600, first),
                                  ("b:1", "", 0, first)])
    world.record([link("link", "a:1", "b:1", 0)])
    world.engine().catch_up()
    merged = world.ledger.head()
    assert responses() == sorted([("a:1", ids["2"], 3600, first), ("a:1", ids["4"], 3600, merged),
                                  ("a:1", "", 0, merged)])
    world.record([link("unlink", "a:1", "b:1", 1)])
    world.engine().catch_up()
    split = world.ledger.head()
    assert responses() == sorted([("a:1", ids["2"], 3600, first), ("b:1", ids["4"], 3600, split),
                                  ("b:1", "", 0, split)])


def test_the_responses_values_read_back_are_a_responses_fields() -> None:
    """The SQL store compares a refolded request with its row's `RESPONSE_VALUES`, in the
    order of `Response`'s fields."""
    assert RESPONSE_VALUES.split(", ") == list(Response._fields)


def test_a_late_unlink_older_than_its_link_changes_nothing(world: World) -> None:
    world.record([moment("a:1", 9, "inbound", "question", "1"),
                  moment("b:1", 10, "outbound", "answer", "2"),
                  link("link", "a:1", "b:1", 5)])
    world.engine().catch_up()
    before = world.views()
    world.record([link("unlink", "b:1", "a:1", 4)])
    world.engine().catch_up()
    assert world.views() == before
    assert [r["customer_ids"] for r in before["persons"]] == [["a:1", "b:1"]]


def test_the_person_id_moves_to_a_smaller_id_that_gets_a_moment(world: World) -> None:
    world.record([link("link", "b:2", "email:x", 0), link("link", "a:1", "email:x", 0),
                  moment("b:2", 9, "inbound", "question", "1")])
    world.engine().catch_up()
    assert [(p["customer_id"], p["customer_ids"]) for p in world.views()["persons"]] == [
        ("b:2", ["a:1", "b:2", "email:x"])]
    world.record([moment("a:1", 10, "outbound", "answer", "2")])
    world.engine().catch_up()
    views = world.views()
    assert [r["customer_id"] for r in views["relationships"]] == ["a:1"]
    assert [r["customer_id"] for r in views["transitions"]] == ["a:1"]
    assert world.tombstones()[("relationships", "acme/b:2")] == world.ledger.head()


def test_a_bridge_id_without_moments_joins_and_its_unlink_splits(world: World) -> None:
    world.record([moment("zendesk:1", 9, "inbound", "question", "1"),
                  moment("hubspot:1", 10, "outbound", "answer", "2"),
                  link("link", "zendesk:1", "email:e", 1), link("link", "hubspot:1", "email:e", 2)])
    world.engine(page_size=1).catch_up()
    assert [p["customer_ids"] for p in world.views()["persons"]] == [
        ["email:e", "hubspot:1", "zendesk:1"]]
    world.record([link("unlink", "email:e", "zendesk:1", 3)])
    world.engine().catch_up()
    assert sorted(p["customer_ids"] for p in world.views()["persons"]) == [
        ["email:e", "hubspot:1"], ["zendesk:1"]]


def test_customer_selects_the_person_by_any_of_its_ids(world: World) -> None:
    world.record(fixture_lines(FIXTURE))
    world.engine().catch_up()
    for any_id in ("x:maria", "zendesk:m1", "hubspot:501",
                   "email:10ef04a5a1acd81d18a0c61fdd354a063da07223720a1d8760aa5c2afa5e8ee0"):
        rows = world.query("relationships", tenant="acme", customer=any_id)
        assert [r["customer_id"] for r in rows] == ["hubspot:501"], any_id
    # Without a tenant: the person in each tenant (x:maria is someone else at globex).
    rows = world.query("reciprocity", customer="x:maria")
    assert sorted((r["tenant"], r["customer_id"]) for r in rows) == [
        ("acme", "hubspot:501"), ("globex", "x:maria")]
    assert world.query("relationships", customer="nobody") == []
    transitions = world.query("transitions", tenant="acme", customer="zendesk:b7")
    assert {r["customer_id"] for r in transitions} == {"x:ben"}
    persons = world.query("persons", tenant="acme", min_ids=2)
    assert [p["customer_id"] for p in persons] == ["hubspot:501", "x:ben"]
    assert world.query("persons", suspect=True) == []


@pytest.mark.postgres
def test_customer_of_an_id_in_no_link_reads_one_part_of_the_split_persons(
        make_store_url: Any) -> None:
    """`--customer X` finds X's person on PostgreSQL, whose persons table is split by customer
    id: an id in no linked pair of a tenant is its own group, so its person row is read from
    the one part its id hashes to; only a linked id's group is looked for in every part. The
    persons found are the in-memory store's, for every id of the fixture, with and without a
    tenant."""
    from mot.adapters.stores.postgres import SPLIT_PARTS

    email = "email:10ef04a5a1acd81d18a0c61fdd354a063da07223720a1d8760aa5c2afa5e8ee0"
    lines = fixture_lines(FIXTURE)
    memory_ledger = MemoryLedger()
    memory = MemoryProjectionStore(memory_ledger)
    LinkFeeder(memory_ledger).record(lines)
    Engine(memory, memory_ledger).catch_up()
    ledger = MemoryLedger()
    with open_store(make_store_url("postgres")) as services:
        LinkFeeder(ledger).record(lines)
        store = services.projection_store
        Engine(store, ledger).catch_up()

        def parts_read(customer: str, tenant: str | None = None) -> int:
            # Around it, in one transaction that it joins: the backend's counts of scans not
            # yet reported may hold earlier transactions' too.
            counted = ("SELECT relname, idx_scan + seq_scan FROM pg_stat_xact_user_tables"
                       " WHERE schemaname = current_schema() AND relname LIKE 'persons%%'")
            with services.backend.write("schema") as tx:
                before = dict(tx.query(counted))
                store.persons_of(customer, tenant)
                after = dict(tx.query(counted))
            return sum(scans > before.get(name, 0) for name, scans in after.items())

        assert parts_read("x:maria", "globex") == 1
        assert parts_read("x:ben", "acme") == SPLIT_PARTS  # linked: its group, in any part
        assert parts_read("x:maria") == SPLIT_PARTS
        ids = sorted({line["customer_id"] for line in lines if "customer_id" in line}
                     | {"nobody", email})
        for customer in ids:
            for tenant in (None, "acme", "globex"):
                assert store.persons_of(customer, tenant) == memory.persons_of(customer, tenant), \
                    (customer, tenant)
    assert memory.persons_of("x:maria") == [(("acme", "hubspot:501"), email),
                                            (("globex", "x:maria"), "x:maria")]


def test_as_of_folds_per_person_with_the_current_links(world: World) -> None:
    from datetime import UTC, datetime

    world.record(fixture_lines(FIXTURE))
    world.engine().catch_up()
    late = datetime(2026, 5, 1, tzinfo=UTC)
    for name in ("relationships", "reciprocity", "transitions", "amplifications", "persons"):
        live = world.query(name)
        as_of = world.query(name, as_of=late)
        def timeless(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in r.items() if k not in ("version", "lapsed")}
                    for r in records]

        assert timeless(as_of) == timeless(live), name
    early = world.query("relationships", customer="zendesk:m1", tenant="acme",
                        as_of=datetime(2026, 4, 1, 10, tzinfo=UTC))
    # Then only zendesk:m1 had moments: the smallest id with one keys the person.
    assert [(r["customer_id"], r["customer_moments"], len(r["customer_ids"]))
            for r in early] == [("zendesk:m1", 1, 4)]


def test_merge_protection() -> None:
    assert not is_suspect(50, 10)
    assert is_suspect(51, 0)
    assert is_suspect(3, 11)
    assert is_suspect(3, 3, max_email_links=2)


def test_a_wide_email_bridge_is_suspect(world: World) -> None:
    world.record([moment(f"zendesk:{i:02d}", 9, "inbound", "question", str(i))
                  for i in range(12)])
    world.record([link("link", f"zendesk:{i:02d}", "email:support", 1) for i in range(12)])
    world.engine().catch_up()
    [person] = world.query("persons", suspect=True)
    assert (person["customer_id"], person["ids"], person["email_links"]) == ("zendesk:00", 13, 12)
    assert KEYS["persons"] == ("tenant", "customer_id")


def test_a_store_of_schema_12_is_rebuilt_per_person(tmp_path: Path) -> None:
    """Schema 13 keeps moments by person group: tables made before are dropped on opening,
    and the next `mot project` builds them anew from the ledger."""
    from mot.service.ledger import Incoming

    url = str(tmp_path / "old.db")
    with open_store(url) as services:
        services.ledger.record([Incoming(orjson.dumps(moment("c:1", 9, "inbound", "question",
                                                             "1")), "t")])
        services.projections.project()
        with services.backend.write("schema") as tx:
            tx.execute("DROP TABLE moments")
            tx.execute("CREATE TABLE moments (moment_id TEXT, tenant TEXT, customer_id TEXT)")
            tx.execute("UPDATE mot_schema SET version = 12")
    with open_store(url) as services:
        assert services.projection_store.state() is None
        assert services.projections.project() == 1
        [row] = services.queries.run(Query("relationships"))
        assert (row["customer_id"], row["customer_ids"]) == ("c:1", ["c:1"])


def test_identity_show_gives_ids_links_with_their_evidence_and_moments_per_id(
        world: World) -> None:
    from mot.service.persons import PersonService

    world.record(fixture_lines(FIXTURE))
    world.engine().catch_up()
    persons = PersonService(world.store, world.ledger)
    email = "email:10ef04a5a1acd81d18a0c61fdd354a063da07223720a1d8760aa5c2afa5e8ee0"
    shown = persons.show("acme", "x:maria")
    assert shown is not None
    assert (shown["customer_id"], shown["customer_ids"]) == (
        "hubspot:501", [email, "hubspot:501", "x:maria", "zendesk:m1"])
    assert shown["moments"] == {email: 0, "hubspot:501": 3, "x:maria": 1, "zendesk:m1": 2}
    links = {tuple(link["customer_ids"]): link for link in shown["links"]}
    assert sorted(links) == [(email, "hubspot:501"), (email, "zendesk:m1"),
                             ("x:maria", "zendesk:m1")]
    # The evidence that decides a pair: the latest, whatever the order of arrival (an older
    # unlink of the email and HubSpot pair arrived after its link).
    decided = links[(email, "hubspot:501")]
    assert (decided["reason"], decided["occurred_at"]) == (
        "same email address in HubSpot", "2026-04-02T12:00:00Z")
    assert [e["event"] for e in decided["history"]] == ["linked", "unlinked"]
    assert decided["origin"].startswith("test:")
    # The history: every link and unlink of its ids by the evidence's time, those taken back
    # (x:ben, the typo) too; the evidence that decides each pair now is marked.
    history = [(e["occurred_at"], e["event"], tuple(e["customer_ids"]), e["reason"], e["decides"])
               for e in shown["history"]]
    assert [h for h in history if "x:ben" in h[2]] == [
        ("2026-04-02T09:00:00Z", "linked", ("x:ben", "x:maria"), "typo", False),
        ("2026-04-03T09:00:00Z", "unlinked", ("x:ben", "x:maria"), "typo fixed", True)]
    assert [h[0] for h in history] == sorted(h[0] for h in history)
    assert {h[2] for h in history if h[4] and h[1] == "linked"} == set(links)
    assert all(e["origin"].startswith("test:") and e["recorded_at"] for e in shown["history"])
    assert persons.show("acme", "nobody") is None
    assert persons.show("globex", "x:maria") == {
        "tenant": "globex", "customer_id": "x:maria", "customer_ids": ["x:maria"],
        "suspect": False, "suspect_because": [], "links": [], "history": [],
        "moments": {"x:maria": 1}}
    assert persons.suspects() == []


def test_a_merge_of_many_requests_writes_what_a_rebuild_writes(world: World) -> None:
    """More requests than `BULK_UPSERT_ROWS` change rows in one merge: a server store upserts
    them in bulk (a scratch table and one statement), with the same rows and versions as one
    statement a row would write: the rows of the same moments and link projected at once."""
    many = BULK_UPSERT_ROWS + 20
    lines = []
    for n in range(many):
        for who, minute in (("a:1", n % 60), ("b:1", (n + 30) % 60)):
            at = f"2026-04-01T{n % 24:02d}:{minute:02d}:00Z"
            lines += [{**moment(who, 0, "inbound", "question", f"{who}q{n}"), "occurred_at": at},
                      {**moment(who, 0, "outbound", "answer", f"{who}a{n}"), "occurred_at": at}]
    world.record(lines)
    world.engine().catch_up()
    before = {r["request_moment_id"]: r for r in world.store.read_view(ViewRead("responses"))}
    world.record([link("link", "a:1", "b:1", 0)])
    world.engine().catch_up()
    merged = world.ledger.head()
    after = {r["request_moment_id"]: r for r in world.store.read_view(ViewRead("responses"))}
    assert after.keys() == before.keys() and len(after) == 2 * many
    moved = [key for key, r in after.items() if r["customer_id"] != before[key]["customer_id"]]
    assert len(moved) >= BULK_UPSERT_ROWS
    for key, r in after.items():
        same = {k: v for k, v in r.items() if k != "version"} == {
            k: v for k, v in before[key].items() if k != "version"}
        assert r["version"] == (before[key]["version"] if same else merged)
    at_once = MemoryProjectionStore(world.ledger)
    Engine(at_once, world.ledger).catch_up()
    assert without_versions(world.views()) == without_versions(
        {name: at_once.read_view(ViewRead(name)) for name in SECTIONS})
    # The unlink moves them back (on a split store, out of the part that holds a:1's rows):
    # each request once, under its own id again.
    world.record([link("unlink", "a:1", "b:1", 1)])
    world.engine().catch_up()
    split = world.store.read_view(ViewRead("responses"))
    assert sorted(r["request_moment_id"] for r in split) == sorted(before)
    assert {r["request_moment_id"]: r["customer_id"] for r in split} == {
        key: r["customer_id"] for key, r in before.items()}
    at_once = MemoryProjectionStore(world.ledger)
    Engine(at_once, world.ledger).catch_up()
    assert without_versions(world.views()) == without_versions(
        {name: at_once.read_view(ViewRead(name)) for name in SECTIONS})


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_a_person_growing_batch_by_batch_costs_statements_in_the_ids_added(
        kind: str, make_store_url: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One id linked to 2,000 others, 250 links a batch, projected after each: a batch's
    statements grow with the links it adds, not with the person's size (the projector is
    every tenant's; a store that read each of the person's ids with a statement of its own
    made the eighth batch cost eight times the first; one that rewrote every members row of
    the person, rows in proportion), and the rows are a rebuild's."""
    from mot.adapters.stores import sql

    ids, per_batch = 2000, 250
    statements = [0]
    query = sql.Tx.query

    def counted(tx: sql.Tx, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
        statements[0] += 1
        return query(tx, statement, params)

    executemany = sql.Tx.executemany
    rows = [0]

    def counted_rows(tx: sql.Tx, statement: str, values: Any) -> None:
        rows[0] += len(values)
        executemany(tx, statement, values)

    monkeypatch.setattr(sql.Tx, "query", counted)
    monkeypatch.setattr(sql.Tx, "executemany", counted_rows)
    ledger = MemoryLedger()
    feeder = LinkFeeder(ledger)
    feeder.record([moment("c:0", 0, "inbound", "question", "q0"),
                   *(moment(f"c:{n}", n % 24, "inbound", "question", f"q{n}")
                     for n in range(1, ids + 1, 100))])
    with open_store(make_store_url(kind)) as services:
        store = services.projection_store
        Engine(store, ledger).catch_up()
        counts: list[int] = []
        written: list[int] = []
        for start in range(1, ids + 1, per_batch):
            feeder.record([link("link", "c:0", f"c:{n}", 0)
                           for n in range(start, start + per_batch)])
            statements[0] = rows[0] = 0
            Engine(store, ledger).catch_up()
            counts.append(statements[0])
            written.append(rows[0])
        assert len(counts) == 8 and max(counts) <= per_batch + 100, counts
        assert counts[-1] <= counts[0] * 1.2, counts
        # Rows written (pair states, members, moments moved): those of the ids that join and
        # the centre's, not every members row of the person.
        assert max(written) <= 4 * per_batch and written[-1] <= written[0] * 1.2, written
        persons = store.read_view(ViewRead("persons"))
        assert [(p["customer_id"], len(p["customer_ids"])) for p in persons] == [("c:0", ids + 1)]
        at_once = MemoryProjectionStore(ledger)
        Engine(at_once, ledger).catch_up()
        assert without_versions({name: store.read_view(ViewRead(name)) for name in SECTIONS}) \
            == without_versions({name: at_once.read_view(ViewRead(name)) for name in SECTIONS})
