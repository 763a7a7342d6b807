"""Alerts raised as the projections change (SPEC §3.6): what the golden fixture raises, once,
whatever the projection path (incremental, rebuild, replay), and only while fresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import mot

from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
from mot.projections.engine import Engine
from mot.service.ledger import Incoming, LedgerService


def alerts(store: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return list(json.loads(mot(store, "alerts", "list", "--format", "json", env=env).stdout))


def expected_causes(golden: dict[str, list[dict[str, Any]]], reach: int) -> set[tuple[str, str]]:
    """What SPEC §3.6 says the golden projections raise, read from the golden values."""
    detractors = {("detractor", t["moment_id"]) for t in golden["transitions"] if t["to"] == "detractor"}
    negative = {("negative_amplification", a["amplification_id"]) for a in golden["amplifications"]
                if a["polarity"] == "negative" and a["cascade_reach"] >= reach}
    return detractors | negative


def test_the_golden_fixture_raises_its_alerts_once_whatever_the_path(
        tmp_path: Path, store_url: str, golden_path: Path,
        golden_expected: dict[str, list[dict[str, Any]]]) -> None:
    config = tmp_path / "mot.toml"
    # The golden moments are months old: a long window makes them fresh.
    config.write_text('[alerts]\nwindow = "1000d"\nnegative_reach = 1000\n')
    env = {"MOT_CONFIG": str(config)}
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", env=env)
    raised = alerts(store_url)
    found = {(a["rule"], a["moment_id"]) for a in raised}
    assert {f for f in found if f[0] != "stop_asking"} == expected_causes(golden_expected, 1000)
    # Customers whose asks reached two unanswered (c3 ends at stop_asking).
    stop = [a for a in raised if a["rule"] == "stop_asking"]
    assert {a["customer_id"] for a in stop} >= {
        r["customer_id"] for r in golden_expected["reciprocity"] if r["status"] == "stop_asking"}
    assert stop and all(a["unanswered_asks"] == 2 for a in stop)
    first_ask = next(a for a in stop if a["customer_id"] == "c1")  # SPEC §4: the review ask
    assert (first_ask["ask_type"], first_ask["function"]) == ("review", "marketing")
    detractor = next(a for a in raised if a["rule"] == "detractor" and a["customer_id"] == "c1")
    assert (detractor["from"], detractor["to"], detractor["channel"]) == ("acquainted", "detractor",
                                                                          "twitter")
    assert (detractor["trigger_function"], detractor["delay_seconds"]) == ("marketing", 7200)
    assert detractor["customer_ids"] == ["c1"]
    negative = next(a for a in raised if a["rule"] == "negative_amplification")
    assert negative["cascade_reach"] == 2000 and negative["trigger_function"] == "marketing"
    # A rebuild, and a replay, raise nothing new: the same alerts, raised when they were.
    mot(store_url, "replay", env=env)
    mot(store_url, "project", env=env)
    assert alerts(store_url) == raised
    # New moments that change nothing raise nothing; the count in `mot status` holds.
    status = json.loads(mot(store_url, "status", "--format", "json").stdout)
    assert status["alerts"]["raised"] == len(raised)


def test_history_raises_none(store_url: str, golden_path: Path) -> None:
    """The default window (72 h) against months-old moments: importing history raises nothing."""
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "project", env={"MOT_CONFIG": ""})
    assert alerts(store_url) == []


def test_a_page_applied_again_after_a_crash_raises_nothing_new(golden_path: Path) -> None:
    """The in-memory store rolls a failed page back whole, outbox included; applying it again
    raises each alert once."""
    from datetime import UTC, datetime

    from mot.projections.alerts import AlertPolicy

    ledger = MemoryLedger()
    LedgerService(ledger).record([Incoming(line, f"g:{n}") for n, line in
                                  enumerate(golden_path.read_bytes().splitlines(), 1)])
    store = MemoryProjectionStore(ledger)
    policy = AlertPolicy(window_us=1000 * 86400 * 1_000_000)
    engine = Engine(store, ledger, page_size=7, clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
                    alerts=policy)
    engine.catch_up()
    first = store.alerts.counts().alerts
    assert first > 0
    # A rebuild from scratch (as after losing the projection tables) raises none again.
    engine.rebuild()
    assert store.alerts.counts().alerts == first
    rebuilt = MemoryProjectionStore(ledger)
    rebuilt.alerts = store.alerts
    Engine(rebuilt, ledger, page_size=3, clock=lambda: datetime(2026, 12, 2, tzinfo=UTC),
           alerts=policy).catch_up()
    assert store.alerts.counts().alerts == first


def test_an_alert_names_every_id_of_its_person(tmp_path: Path, store_url: str) -> None:
    """SPEC §2 links: the person's id and all of its ids (the persons fixture)."""
    from conftest import SHARED

    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "1000d"\nnegative_reach = 1\n')
    env = {"MOT_CONFIG": str(config)}
    mot(store_url, "import", "-q", SHARED / "fixtures" / "persons.jsonl")
    mot(store_url, "project", env=env)
    persons = {p["customer_id"]: p["customer_ids"] for p in json.loads(
        mot(store_url, "query", "persons", "--format", "json").stdout)}
    raised = alerts(store_url)
    assert raised and any(len(a["customer_ids"]) > 1 for a in raised)
    for a in raised:
        assert a["customer_ids"] == persons[a["customer_id"]]


def test_a_page_raising_more_alerts_than_a_bulk_raises_each_once(tmp_path: Path,
                                                                  store_url: str) -> None:
    """More alerts in one transaction than `BULK_UPSERT_ROWS` (a server store inserts them in
    bulk): each raised once, and a replay raises none again."""
    from mot.adapters.stores.projection_tables import BULK_UPSERT_ROWS

    many = BULK_UPSERT_ROWS + 30
    lines = tmp_path / "detractors.jsonl"
    lines.write_text("".join(json.dumps({
        "tenant": "acme", "customer_id": f"c{n}", "occurred_at": "2026-04-01T10:00:00Z",
        "channel": "twitter", "direction": "public", "kind": "post", "sentiment": -0.7,
        "reach": 10, "source": {"system": "t", "id": str(n)}}) + "\n" for n in range(many)))
    config = tmp_path / "mot.toml"
    config.write_text('[alerts]\nwindow = "1000d"\n')
    env = {"MOT_CONFIG": str(config)}
    mot(store_url, "import", "-q", lines)
    mot(store_url, "project", env=env)
    raised = alerts(store_url)
    assert sorted(a["customer_id"] for a in raised) == sorted(f"c{n}" for n in range(many))
    assert {a["rule"] for a in raised} == {"detractor"}
    assert len({a["alert_id"] for a in raised}) == many
    mot(store_url, "replay", env=env)
    assert alerts(store_url) == raised
