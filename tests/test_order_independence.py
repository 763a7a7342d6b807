"""Property: whatever the arrival order, batching and paging, incremental projection == rebuild.

SPEC §3: each projection is a pure function of the current set of moments.
Hypothesis draws small worlds full of the awkward cases (late moments,
amendments that move `occurred_at`, re-point a share, turn a moment into a request or
an answer or re-point its reply, retractions, shares arriving before their post, replies
naming later moments, share cycles),
feeds them in random order and random batches with small projection pages,
and compares every projection after the last batch with a rebuild.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mot.bootstrap import open_store
from mot.service.ledger import Incoming
from mot.service.queries import PROJECTION_NAMES, Query

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KINDS = {
    "outbound": ["answer", "help", "apology", "ask", "question", "gift", "other"],
    "inbound": ["question", "complaint", "feedback", "praise", "reply", "purchase", "accept",
                "decline"],
    "public": ["post", "review", "mention", "share", "like"],
}

# Kinds an amendment may give a private moment: into and out of requests and answers.
REKINDS = {"outbound": ["answer", "help", "question", "other"],
           "inbound": ["question", "feedback", "praise", "reply"]}


@st.composite
def worlds(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Moments (with their ids) then corrections, in a canonical order."""
    count = draw(st.integers(2, 14))
    moments: list[dict[str, Any]] = []
    for index in range(count):
        direction = draw(st.sampled_from(list(KINDS)))
        kind = draw(st.sampled_from(KINDS[direction]))
        moment: dict[str, Any] = {
            "tenant": draw(st.sampled_from(["acme", "acme", "globex"])),
            "customer_id": draw(st.sampled_from(["c1", "c2", "c3"])),
            # A few hours apart, so ties and the 72 h window edges come up.
            "occurred_at": (T0 + timedelta(hours=draw(st.sampled_from([0, 1, 24, 72, 73, 100])))
                            ).isoformat().replace("+00:00", "Z"),
            "channel": "email", "direction": direction, "kind": kind,
            "function": draw(st.sampled_from(["service", "sales", "marketing", "other"])),
            "source": {"system": "s", "id": f"m{index}"},
        }
        if kind == "ask":
            moment["ask_type"] = draw(st.sampled_from(["purchase", "review", "like"]))
        if draw(st.booleans()):
            moment["sentiment"] = draw(st.sampled_from([-0.9, -0.3, 0.0, 0.3, 0.8]))
        if direction == "public":
            moment["reach"] = draw(st.integers(0, 1000))
        if kind == "share":
            moment["shares"] = {"system": "s", "id": f"m{draw(st.integers(0, count - 1))}"}
        if draw(st.integers(0, 3)) == 0:
            moment["in_reply_to"] = {"system": "s", "id": f"m{draw(st.integers(0, count - 1))}"}
        moments.append(moment)
    corrections: list[dict[str, Any]] = []
    retracted: set[str] = set()
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.integers(0, count - 1))
        ref = moments[target]
        moment_id = _id(ref)
        if moment_id in retracted:
            continue  # a retracted moment cannot be amended (the ledger's tests cover that)
        if draw(st.integers(0, 3)) == 0:
            corrections.append({"type": "retract", "moment_id": moment_id, "reason": "test"})
            retracted.add(moment_id)
            continue
        changes: dict[str, Any] = draw(st.sampled_from([
            {"occurred_at": (T0 + timedelta(hours=draw(st.sampled_from([2, 50, 200])))
                             ).isoformat().replace("+00:00", "Z")},
            {"sentiment": draw(st.sampled_from([-0.8, 0.5, None]))},
            {"function": "product"},
        ]))
        if ref["kind"] == "share":
            changes = {"shares": {"system": "s", "id": f"m{draw(st.integers(0, count - 1))}"}}
        elif ref["direction"] != "public" and ref["kind"] != "ask" and draw(st.booleans()):
            # What makes a request or a response (SPEC §3.5): its kind, and what it names.
            changes = draw(st.sampled_from([
                {"kind": draw(st.sampled_from(REKINDS[ref["direction"]]))},
                {"in_reply_to": None},
                {"in_reply_to": {"system": "s", "id": f"m{draw(st.integers(0, count - 1))}"}},
            ]))
        corrections.append({"type": "amend", "moment_id": moment_id, "set": changes,
                            "reason": f"test {len(corrections)}"})
    return moments + corrections


def _id(moment: dict[str, Any]) -> str:
    from mot.domain.identity import derived_moment_id

    return derived_moment_id(moment["tenant"], moment["source"]["system"], moment["source"]["id"])


def _snapshot(services: Any) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in PROJECTION_NAMES:
        records = services.queries.run(Query(name, as_of=None))
        out[name] = [{k: v for k, v in r.items() if k != "version"} for r in records]
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds(), data=st.data())
def test_incremental_equals_rebuild_in_any_order(world: list[dict[str, Any]],
                                                 data: st.DataObject) -> None:
    moments = [m for m in world if "type" not in m]
    corrections = [m for m in world if "type" in m]
    # Any order of the moments; a correction arrives after the moment it corrects and
    # after the earlier corrections of that moment (SPEC: amendments apply in the
    # order recorded, so their relative order is part of the data, not of arrival).
    order = data.draw(st.permutations(moments))
    arrival = list(order)
    for correction in corrections:
        position = max(i for i, m in enumerate(arrival)
                       if (_id(m) if "type" not in m else m["moment_id"])
                       == correction["moment_id"])
        arrival.insert(data.draw(st.integers(position + 1, len(arrival))), correction)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(arrival) - 1, 1)), max_size=4)))
    page_size = data.draw(st.integers(1, 5))

    with tempfile.TemporaryDirectory() as tmp:
        incremental = open_store(str(Path(tmp) / "inc.db"), page_size=page_size)
        try:
            start = 0
            for cut in [*cuts, len(arrival)]:
                batch = arrival[start:cut]
                start = cut
                if batch:
                    incremental.ledger.record(
                        [Incoming(orjson.dumps(m), f"t:{i}") for i, m in enumerate(batch)]
                    )
                    incremental.projections.project()
            assert [q.reason for q in incremental.ledger_store.quarantine()] == []
            after_increments = _snapshot(incremental)

            incremental.projections.replay()
            assert _snapshot(incremental) == after_increments

            # And the same as recording everything in canonical order, projected once.
            reference = open_store(str(Path(tmp) / "ref.db"))
            try:
                reference.ledger.record(
                    [Incoming(orjson.dumps(m), f"r:{i}") for i, m in enumerate(world)]
                )
                reference.projections.project()
                expected = _snapshot(reference)
                for name in PROJECTION_NAMES:
                    assert after_increments[name] == expected[name], name
            finally:
                reference.close()
        finally:
            incremental.close()


# -- links (SPEC §2): persons whatever the order of links, unlinks and moments ----------------

IDS = ["z:1", "z:2", "x:1", "x:2"]
BRIDGE = "email:e"  # an id that never has a moment


@st.composite
def linked_worlds(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Moments of a few ids and links and unlinks between them and a bridge id without
    moments: chains, equal times, unlinks older than their link, repeats."""
    moments = []
    for index in range(draw(st.integers(1, 8))):
        direction = draw(st.sampled_from(list(KINDS)))
        kind = draw(st.sampled_from([k for k in KINDS[direction] if k != "share"]))
        moment: dict[str, Any] = {
            "tenant": draw(st.sampled_from(["acme", "acme", "globex"])),
            "customer_id": draw(st.sampled_from(IDS)),
            "occurred_at": (T0 + timedelta(hours=draw(st.sampled_from([0, 1, 24, 72, 73])))
                            ).isoformat().replace("+00:00", "Z"),
            "channel": "email", "direction": direction, "kind": kind,
            "function": draw(st.sampled_from(["service", "sales"])),
            "source": {"system": "s", "id": f"m{index}"},
        }
        if kind == "ask":
            moment["ask_type"] = "purchase"
        if draw(st.booleans()):
            moment["sentiment"] = draw(st.sampled_from([-0.9, 0.0, 0.8]))
        moments.append(moment)
    links = []
    for _ in range(draw(st.integers(0, 7))):
        a, b = draw(st.lists(st.sampled_from([*IDS, BRIDGE]), min_size=2, max_size=2,
                             unique=True))
        links.append({"type": draw(st.sampled_from(["link", "link", "unlink"])),
                      "tenant": draw(st.sampled_from(["acme", "acme", "globex"])),
                      "customer_ids": [a, b], "reason": "test",
                      "occurred_at": (T0 + timedelta(hours=draw(st.integers(0, 3))))
                      .isoformat().replace("+00:00", "Z")})
    return moments + links


def _memory_snapshot(lines: list[dict[str, Any]], page_size: int = 1000
                     ) -> dict[str, list[dict[str, Any]]]:
    """The projections of lines fed in this order to a fresh in-memory ledger and store."""
    from persons_support import LinkFeeder

    from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
    from mot.projections.engine import Engine
    from mot.service.queries import QueryService

    ledger = MemoryLedger()
    store = MemoryProjectionStore(ledger)
    LinkFeeder(ledger).record(lines)
    engine = Engine(store, ledger, page_size=page_size)
    engine.catch_up()
    return _query_all(QueryService(store, lambda: engine))


def _query_all(queries: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: [{k: v for k, v in r.items() if k != "version"}
                   for r in queries.run(Query(name))] for name in PROJECTION_NAMES}


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=linked_worlds(), data=st.data())
def test_persons_incremental_equals_rebuild_in_any_order(world: list[dict[str, Any]],
                                                         data: st.DataObject) -> None:
    """Links before and after the moments, in any order and batches, with small pages: after
    every batch the projections equal a fold of what arrived so far in one page, and after
    the last a rebuild and the canonical order; on the in-memory and SQLite stores."""
    from persons_support import LinkFeeder

    from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
    from mot.projections.engine import Engine
    from mot.service.queries import QueryService

    arrival = data.draw(st.permutations(world))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(arrival) - 1, 1)), max_size=4)))
    page_size = data.draw(st.integers(1, 4))
    ledger = MemoryLedger()
    feeder = LinkFeeder(ledger)
    memory = MemoryProjectionStore(ledger)
    with tempfile.TemporaryDirectory() as tmp:
        # SQLite with its own ledger: links recorded by it, projected and rebuilt from it.
        services = open_store(str(Path(tmp) / "p.db"), page_size=page_size)
        try:
            start = 0
            for cut in [*cuts, len(arrival)]:
                batch = arrival[start:cut]
                start = cut
                feeder.record(batch)
                for i, line in enumerate(batch):
                    services.ledger.record([Incoming(orjson.dumps(line), f"t:{cut}:{i}")])
                expected = _memory_snapshot(arrival[:cut])
                engine = Engine(memory, ledger, page_size=page_size)
                engine.catch_up()
                assert _query_all(QueryService(memory, lambda e=engine: e)) == expected
                services.projections.project()
                assert _query_all(services.queries) == expected
            engine = Engine(memory, ledger, customers_per_chunk=2)
            engine.rebuild()
            assert _query_all(QueryService(memory, lambda: engine)) == expected
            services.projections.replay()
            assert _query_all(services.queries) == expected
            assert _memory_snapshot(world) == expected
        finally:
            services.close()
