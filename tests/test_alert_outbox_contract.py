"""The alerts outbox's contract, one suite on three backends: memory, SQLite, PostgreSQL.

An alert is kept once by its id (raised through a projection session or by the
overdue check), listed with filters, acknowledged; each destination queues the
alerts raised after its cursor, a claim leases deliveries to one deliverer, and
settling records what happened, only for the holder of the lease.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import BACKENDS

from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
from mot.bootstrap import open_store
from mot.projections.alerts import Alert, alert_id
from mot.projections.ports import LIVE, REBUILD, ProjectionStore
from mot.service.alerting import AlertOutbox, AlertQuery, Outcome

S = 1_000_000
T0 = 1_780_000_000 * S


def make_alert(n: int, rule: str = "detractor", tenant: str = "acme", raised: int = T0) -> Alert:
    moment = f"00000000-0000-4000-8000-{n:012d}"
    return Alert(alert_id(tenant, rule, moment), rule, tenant, f"c{n}", (f"c{n}",),  # type: ignore[arg-type]
                 moment, raised - 60 * S, raised + n, "logistics", "dana", "x",
                 (("from", "engaged"), ("to", "detractor")))


@dataclass
class Outbox:
    store: ProjectionStore
    outbox: AlertOutbox


@pytest.fixture(params=BACKENDS)
def box(request: pytest.FixtureRequest, make_store_url: Any) -> Iterator[Outbox]:
    if request.param == "memory":
        store = MemoryProjectionStore(MemoryLedger())
        yield Outbox(store, store.alerts)
        return
    with open_store(make_store_url(request.param)) as services:
        yield Outbox(services.projection_store, services.alert_outbox)


def test_an_alert_is_kept_once_whoever_raises_it(box: Outbox) -> None:
    a, b = make_alert(1), make_alert(2)
    with box.store.session(LIVE) as session:
        session.raise_alerts([a])
    with box.store.session(REBUILD) as session:  # a rebuild raises into the same outbox
        session.raise_alerts([a, b])
    assert box.outbox.raise_alerts([a, make_alert(3)]) == 1
    listed = box.outbox.alerts(AlertQuery())
    assert [s.alert for s in listed] == [a, b, make_alert(3)]
    assert [s.seq for s in listed] == sorted(s.seq for s in listed)


def test_a_session_that_fails_raises_nothing(box: Outbox) -> None:
    with pytest.raises(RuntimeError), box.store.session(LIVE) as session:
        session.raise_alerts([make_alert(1)])
        raise RuntimeError("the page fails")
    assert box.outbox.alerts(AlertQuery()) == []


def test_listing_filters_and_ack(box: Outbox) -> None:
    box.outbox.raise_alerts([make_alert(1), make_alert(2, "stop_asking"),
                             make_alert(3, tenant="globex"), make_alert(4, raised=T0 + 3600 * S)])
    assert [s.alert.customer_id for s in box.outbox.alerts(AlertQuery(rule="stop_asking"))] == ["c2"]
    assert [s.alert.customer_id for s in box.outbox.alerts(AlertQuery(tenant="globex"))] == ["c3"]
    assert [s.alert.customer_id for s in box.outbox.alerts(AlertQuery(since_us=T0 + 60 * S))] == ["c4"]
    first = make_alert(1).alert_id
    assert box.outbox.ack(first, T0, tenant="globex") is None  # another tenant's: not found
    acked = box.outbox.ack(first, T0 + 5)
    assert acked is not None and acked.acked_us == T0 + 5
    again = box.outbox.ack(first, T0 + 9)
    assert again is not None and again.acked_us == T0 + 5  # the first acknowledgement stays
    assert box.outbox.ack("no-such-alert", T0) is None


def test_delivery_queue_claim_lease_settle_and_retry(box: Outbox) -> None:
    out = box.outbox
    out.raise_alerts([make_alert(n) for n in range(1, 6)] + [make_alert(9, "stop_asking")])
    assert out.enqueue("hook", lambda a: a.rule == "detractor", 3) == (3, 3)
    assert out.enqueue("hook", lambda a: a.rule == "detractor", 10) == (3, 2)
    assert out.enqueue("hook", lambda a: True, 10) == (0, 0)  # the cursor moved past them all
    now = T0 + 10 * S
    mine = out.claim(["hook"], "one", now, 30 * S, 2)
    assert [c.stored.alert.customer_id for c in mine] == ["c1", "c2"]
    assert all(c.attempts == 0 for c in mine)
    theirs = out.claim(["hook"], "two", now, 30 * S, 10)  # leased ones are not claimed again
    assert [c.stored.alert.customer_id for c in theirs] == ["c3", "c4", "c5"]
    assert out.claim(["hook"], "three", now, 30 * S, 10) == []
    # A lease that ran out (its deliverer died) is claimed by another.
    again = out.claim(["hook"], "three", now + 31 * S, 30 * S, 10)
    assert [c.stored.alert.customer_id for c in again] == ["c1", "c2", "c3", "c4", "c5"]
    # Only the lease's holder settles: "one" lost its lease to "three".
    ids = [c.stored.alert.alert_id for c in again]
    out.settle("one", [Outcome("hook", ids[0], "delivered", 1, now, None, now)])
    assert out.counts().delivered == 0
    out.settle("three", [
        Outcome("hook", ids[0], "delivered", 1, now, None, now),
        Outcome("hook", ids[1], "pending", 1, now + 100 * S, "HTTP 503", now),
        Outcome("hook", ids[2], "failed", 1, now, "HTTP 404", now),
    ])
    counts = out.counts()
    assert (counts.alerts, counts.pending, counts.delivered, counts.failed) == (6, 3, 1, 1)
    later = now + 62 * S  # the leases of c4 and c5 ran out
    due = out.claim(["hook"], "four", later, 30 * S, 10)
    assert [c.stored.alert.customer_id for c in due] == ["c4", "c5"]  # c2 waits for its backoff
    failed = out.alerts(AlertQuery(failed=True))
    assert [s.alert.customer_id for s in failed] == ["c3"]
    assert failed[0].deliveries == (("hook", "failed", 1, "HTTP 404"),)
    assert out.retry_failed(["hook"], later) == 1
    assert out.alerts(AlertQuery(failed=True)) == []
    retried = out.claim(["hook"], "five", later, 30 * S, 10)
    assert [(c.stored.alert.customer_id, c.attempts) for c in retried] == [("c3", 0)]
    # An acknowledged alert is not sent any more.
    out.ack(ids[1], later)
    left = out.claim(["hook"], "six", now + 1000 * S, 30 * S, 10)  # c3, c4, c5's leases ran out
    assert [c.stored.alert.customer_id for c in left] == ["c4", "c5", "c3"]


def test_a_claim_over_destinations_takes_the_earliest_due_of_all(box: Outbox) -> None:
    """A claim of several destinations leases the `limit` deliveries due first among all of
    them (due time, then the alert's order, then the destination), not each one's first."""
    out = box.outbox
    out.raise_alerts([make_alert(n) for n in range(1, 5)])
    for name in ("slack", "hook"):
        assert out.enqueue(name, lambda a: True, 10) == (4, 4)
    now = T0 + 10 * S
    first = out.claim(["slack", "hook"], "one", now, 30 * S, 5)
    assert [(c.destination, c.stored.alert.customer_id) for c in first] == [
        ("hook", "c1"), ("slack", "c1"), ("hook", "c2"), ("slack", "c2"), ("hook", "c3")]
    ids = {c.stored.alert.customer_id: c.stored.alert.alert_id for c in first}
    out.settle("one", [Outcome("hook", ids["c1"], "pending", 1, now + 5 * S, "HTTP 503", now)])
    rest = out.claim(["hook", "slack"], "two", now + 5 * S, 30 * S, 10)  # hook's c1 due again
    assert [(c.destination, c.stored.alert.customer_id) for c in rest] == [
        ("slack", "c3"), ("hook", "c4"), ("slack", "c4"), ("hook", "c1")]


def test_a_new_destination_starts_after_the_alerts_raised_before_its_start(box: Outbox) -> None:
    """`new_since_us`: a destination seen for the first time skips what was raised before (the
    deliverer passes now - the window); its cursor is kept from then on, so a later call with
    another start changes nothing."""
    out = box.outbox
    out.raise_alerts([make_alert(n) for n in range(1, 5)])  # raised at T0 + n
    assert out.enqueue("late", lambda a: True, 10, T0 + 3) == (2, 2)  # c3, c4
    out.raise_alerts([make_alert(5)])
    assert out.enqueue("late", lambda a: True, 10, T0 + 100) == (1, 1)  # c5: after its cursor
    assert out.enqueue("empty", lambda a: True, 10, T0 + 100) == (0, 0)
    out.raise_alerts([make_alert(6)])
    assert out.enqueue("empty", lambda a: True, 10, T0 + 100) == (1, 1)  # raised after it started
    assert out.enqueue("all", lambda a: True, 10) == (6, 6)  # no start: the whole outbox
    claimed = out.claim(["late"], "me", T0 + 10 * S, 30 * S, 10)
    assert [c.stored.alert.customer_id for c in claimed] == ["c3", "c4", "c5"]
