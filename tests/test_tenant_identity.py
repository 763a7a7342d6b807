"""Moment ids are scoped by tenant (SPEC §2; issue 13 cases 2 and 3), on both stores.

The same `moment_id` in two tenants names two moments: one tenant's record can
neither block nor probe another's (over files, Kafka and HTTP alike, since
all of them record through the ledger service; HTTP in test_http_tenant_ids.py).
A correction names its moment by `tenant` and id, or without `tenant` the only
moment with that id. Stores written before are upgraded in place, resumably.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from cli_support import mot

from mot.bootstrap import Services, open_store
from mot.domain.events import MomentAmended, MomentRecorded, MomentRetracted
from mot.domain.identity import derived_moment_id, moment_stream_id
from mot.domain.ledger import AmbiguousMoment
from mot.service.ledger import Incoming

# What a tenant can compute for another's Zendesk record (issue 13, case 2).
ACME_ZD = derived_moment_id("acme", "zendesk", "ZD-777777")
OTHER = "3f2e1d0c-9b8a-4765-a432-10fedcba9876"


def moment(tenant: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant": tenant, "customer_id": "c1", "occurred_at": "2026-03-01T09:00:00Z",
        "channel": "email", "direction": "inbound", "kind": "complaint", "function": "service",
    }
    base.update(fields)
    return base


def genuine() -> dict[str, Any]:
    return moment("acme", source={"system": "zendesk", "id": "ZD-777777"}, sentiment=-0.5)


def squatter(**fields: Any) -> dict[str, Any]:
    return moment("mallory", **{"moment_id": ACME_ZD, "customer_id": "m1", "channel": "chat",
                                **fields})


def record(services: Services, *messages: dict[str, Any]) -> list[tuple[str, str | None]]:
    verdicts = services.ledger.record(
        [Incoming(orjson.dumps(m), "test:1") for m in messages]).verdicts
    return [(v.outcome.value, None if v.rejection is None else v.rejection.reason)
            for v in verdicts]


def outcomes(services: Services, *messages: dict[str, Any]) -> list[str]:
    return [outcome for outcome, _ in record(services, *messages)]


def test_another_tenant_cannot_block_a_moment_by_taking_its_id_first(services: Services) -> None:
    assert outcomes(services, squatter()) == ["recorded"]
    # acme's genuine record goes in as acme's moment; it is not a conflict with mallory's.
    assert outcomes(services, genuine()) == ["recorded"]
    assert outcomes(services, genuine(), squatter()) == ["duplicate", "duplicate"]
    acme = services.ledger_store.stream(ACME_ZD, "acme")
    mallory = services.ledger_store.stream(ACME_ZD, "mallory")
    assert [e.moment["customer_id"] for e in acme] == ["c1"]  # type: ignore[union-attr]
    assert [e.moment["customer_id"] for e in mallory] == ["m1"]  # type: ignore[union-attr]
    assert services.ledger_store.quarantine_count() == 0


def test_a_conflict_never_describes_another_tenants_moment(services: Services) -> None:
    assert outcomes(services, genuine()) == ["recorded"]
    nowhere = "77777777-7777-4777-8777-777777777777"  # an id no tenant has
    # Guessing at acme's moment answers exactly as guessing at an id nobody has: mallory's
    # first send is its own moment, later ones are compared with that alone.
    guesses = [{}, {"customer_id": "c1"}, {"channel": "email", "sentiment": -0.5}]
    answers = {}
    for target in (ACME_ZD, nowhere):
        answers[target] = [record(services, {**squatter(**guess), "moment_id": target})[0]
                           for guess in guesses]
    assert answers[ACME_ZD] == [(outcome, None if reason is None else
                                 reason.replace(nowhere, ACME_ZD))
                                for outcome, reason in answers[nowhere]]
    assert answers[ACME_ZD] == [
        ("recorded", None),
        ("quarantined", f"moment_id: {ACME_ZD} is already recorded with other content (differs"
                        " in: customer_id); a moment is never overwritten: send an amend"),
        ("quarantined", f"moment_id: {ACME_ZD} is already recorded with other content (differs"
                        " in: channel, sentiment); a moment is never overwritten: send an amend")]
    assert len(services.ledger_store.stream(ACME_ZD, "acme")) == 1


def test_a_correction_names_its_moment_by_tenant(services: Services) -> None:
    assert outcomes(services, genuine(), squatter()) == ["recorded", "recorded"]
    amend = {"type": "amend", "moment_id": ACME_ZD, "set": {"sentiment": 0.5}, "reason": "fixed"}
    # Without tenant, two tenants have the id: rejected naming `tenant`.
    [(outcome, reason)] = record(services, amend)
    assert outcome == "quarantined"
    assert reason == (f"tenant: required: more than one tenant has a moment {ACME_ZD}; give the"
                      " tenant whose moment this corrects")
    [entry] = services.ledger_store.quarantine()
    assert entry.field == "tenant"
    assert outcomes(services, {**amend, "tenant": "mallory"}) == ["amended"]
    assert outcomes(services, {**amend, "tenant": "nobody"}) == ["quarantined"]
    retract = {"type": "retract", "moment_id": ACME_ZD, "reason": "spam", "tenant": "mallory"}
    assert outcomes(services, retract) == ["retracted"]
    acme = services.ledger_store.stream(ACME_ZD, "acme")
    mallory = services.ledger_store.stream(ACME_ZD, "mallory")
    assert [type(e) for e in acme] == [MomentRecorded]
    assert [type(e) for e in mallory] == [MomentRecorded, MomentAmended, MomentRetracted]
    assert all(e.tenant == "mallory" and e.moment_id == ACME_ZD for e in mallory)


def test_a_correction_without_tenant_names_the_only_moment_with_that_id(
        services: Services) -> None:
    first = moment("globex", moment_id=OTHER)
    amend = {"type": "amend", "moment_id": OTHER, "set": {"kind": "praise"}, "reason": "misread"}
    # In one batch (the moment before its correction), and in later ones.
    assert outcomes(services, first, amend) == ["recorded", "amended"]
    assert outcomes(services, {**amend, "set": {"kind": "feedback"}}) == ["amended"]
    [*_, last] = services.ledger_store.stream(OTHER)
    assert isinstance(last, MomentAmended) and last.moment["kind"] == "feedback"
    # Once a second tenant has the id, the same correction must say which.
    assert outcomes(services, moment("acme", moment_id=OTHER),
                    {**amend, "set": {"kind": "other"}}) == ["recorded", "quarantined"]
    with pytest.raises(AmbiguousMoment):
        services.ledger_store.stream(OTHER)


def test_the_log_carries_each_events_tenant_and_moment_id(services: Services) -> None:
    assert outcomes(services, genuine(), squatter(),
                    {"type": "retract", "moment_id": ACME_ZD, "tenant": "acme",
                     "reason": "dup"}) == ["recorded", "recorded", "retracted"]
    events = [e for _, e in services.ledger_store.notifications(0, 10)]
    assert [(type(e).__name__, e.tenant, e.moment_id) for e in events] == [
        ("MomentRecorded", "acme", ACME_ZD), ("MomentRecorded", "mallory", ACME_ZD),
        ("MomentRetracted", "acme", ACME_ZD)]


def test_show_asks_for_the_tenant_when_several_have_the_id(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "both.jsonl"
    path.write_bytes(orjson.dumps(genuine()) + b"\n" + orjson.dumps(squatter()) + b"\n")
    mot(store_url, "import", "-q", path)
    failed = mot(store_url, "show", ACME_ZD, ok=False)
    assert failed.exit_code != 0
    assert f"more than one tenant has a moment {ACME_ZD}; give its tenant with --tenant" in \
        failed.output
    mine = json.loads(mot(store_url, "show", ACME_ZD, "--tenant", "mallory", "--format",
                          "json").stdout)
    assert [r["moment"]["customer_id"] for r in mine] == ["m1"]
    by_source = json.loads(mot(store_url, "show", "zendesk:ZD-777777", "--tenant", "acme",
                               "--format", "json").stdout)
    assert [r["moment"]["customer_id"] for r in by_source] == ["c1"]
    assert "no moment" in mot(store_url, "show", ACME_ZD, "--tenant", "globex", ok=False).output


# -- upgrading a store whose streams are named by the moment id alone ----------------------

LEGACY_SQLITE = (
    # What mot wrote before ids were scoped: each event under its moment id (SQLite keeps the
    # UUID's 32 hex digits), and a retraction without its moment id.
    "UPDATE stored_events SET originator_id = replace(coalesce("
    "json_extract(CAST(state AS TEXT), '$.moment.moment_id'),"
    " json_extract(CAST(state AS TEXT), '$.moment_id')), '-', '')"
    " WHERE rowid > ?",
    "UPDATE stored_events SET state = CAST(json_remove(CAST(state AS TEXT), '$.moment_id') AS BLOB)"
    " WHERE topic LIKE '%MomentRetracted' AND rowid > ?",
)
LEGACY_POSTGRES = (
    "UPDATE stored_events SET originator_id = coalesce("
    "convert_from(state, 'UTF8')::jsonb #>> '{moment,moment_id}',"
    " convert_from(state, 'UTF8')::jsonb #>> '{moment_id}')::uuid WHERE notification_id > ?",
    "UPDATE stored_events SET state = convert_to("
    "(convert_from(state, 'UTF8')::jsonb - 'moment_id')::text, 'UTF8')"
    " WHERE topic LIKE '%MomentRetracted' AND notification_id > ?",
)


def raw(url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[list[tuple[Any, ...]]]:
    """Run statements on the store's database directly, with no mot code in between (opening
    the store with mot would upgrade it)."""
    results: list[list[tuple[Any, ...]]] = []
    if url.startswith("postgresql://"):
        base, schema = url.split("?schema=")
        with psycopg.connect(base) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            for statement, params in statements:
                cursor = conn.execute(statement.replace("%", "%%").replace("?", "%s"), params)
                results.append(list(cursor.fetchall()) if cursor.description else [])
        return results
    with closing(sqlite3.connect(url)) as conn, conn:
        for statement, params in statements:
            results.append(conn.execute(statement, params).fetchall())
    return results


def make_legacy(url: str, after: int = 0) -> None:
    """Turn the store into one written before ids were scoped, from position `after` on (the
    events up to it left as a stopped upgrade leaves them)."""
    legacy = LEGACY_POSTGRES if url.startswith("postgresql://") else LEGACY_SQLITE
    statements = [(statement, (after,)) for statement in legacy]
    statements.append(("DELETE FROM ledger_tenants", ()))
    if after:
        statements.append(("UPDATE mot_upgrades SET position = ?, done = 0", (after,)))
    else:
        statements.append(("DROP TABLE mot_upgrades", ()))
    statements.append(("UPDATE mot_schema SET version = 3", ()))
    raw(url, statements)


def stored_ids(url: str) -> list[str]:
    """The stream id of each stored event, in order, as 32 hex digits."""
    if url.startswith("postgresql://"):
        select = "SELECT originator_id::text FROM stored_events ORDER BY notification_id"
    else:
        select = "SELECT originator_id FROM stored_events ORDER BY rowid"
    [rows] = raw(url, [(select, ())])
    return [str(row[0]).replace("-", "") for row in rows]


def fill(url: str) -> dict[str, Any]:
    """Moments of two tenants with an amendment and a retraction; what mot reads of them."""
    services = open_store(url)
    try:
        assert outcomes(services, genuine(), moment("globex", moment_id=OTHER),
                        {"type": "amend", "moment_id": OTHER, "set": {"sentiment": 0.2},
                         "reason": "x"},
                        moment("globex", source={"system": "crm", "id": "9"}),
                        {"type": "retract", "moment_id": ACME_ZD, "reason": "dup"}) == [
            "recorded", "recorded", "amended", "recorded", "retracted"]
        services.projections.project()
        return {"log": services.ledger_store.notifications(0, 100)}
    finally:
        services.close()


def expected_ids() -> list[str]:
    return [moment_stream_id(t, m).replace("-", "") for t, m in (
        ("acme", ACME_ZD), ("globex", OTHER), ("globex", OTHER),
        ("globex", derived_moment_id("globex", "crm", "9")), ("acme", ACME_ZD))]


@pytest.mark.parametrize("stopped_at", [0, 3])
def test_a_store_from_before_is_upgraded_in_place(store_url: str, stopped_at: int) -> None:
    before = fill(store_url)
    assert stored_ids(store_url) == expected_ids()
    make_legacy(store_url, after=stopped_at)
    legacy = stored_ids(store_url)
    assert legacy[stopped_at:] == [m.replace("-", "") for m in (
        ACME_ZD, OTHER, OTHER, derived_moment_id("globex", "crm", "9"), ACME_ZD)][stopped_at:]
    services = open_store(store_url)  # upgrades
    try:
        assert services.ledger_store.notifications(0, 100) == before["log"]
        assert [type(e) for e in services.ledger_store.stream(ACME_ZD)] == [
            MomentRecorded, MomentRetracted]
        # A correction without tenant finds the upgraded moments (ledger_tenants is filled).
        assert outcomes(services, {"type": "amend", "moment_id": OTHER, "set": {"reach": 3},
                                   "reason": "y"}) == ["amended"]
        # The projections, built before the upgrade, carry on from their position.
        services.projections.project()
        assert services.projections.status().position == services.ledger_store.head()
    finally:
        services.close()
    assert stored_ids(store_url)[:5] == expected_ids()
    # Opening again runs no upgrade (the step is done).
    again = mot(store_url, "status")
    assert "upgrad" not in again.stderr


def test_a_new_store_needs_no_upgrade(store_url: str) -> None:
    # A writing command creates the store (a read-only one refuses a store that is not there).
    created = mot(store_url, "import", "-", input=b"")
    assert "upgrad" not in created.stderr
    assert "upgrad" not in mot(store_url, "status").stderr
    services = open_store(store_url)
    try:
        with services.backend.read() as tx:
            assert sorted(tx.query("SELECT step, done FROM mot_upgrades")) == [
                ("ledger sealed", 1), ("streams scoped by tenant", 1)]  # sealed: SPEC §6
    finally:
        services.close()
