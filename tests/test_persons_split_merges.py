"""Merges and unlinks of persons whose rows lie in different parts of split tables.

A new PostgreSQL store splits the per-customer tables by a hash of the customer id (8
parts); a merge moves a person's requests, amplifications and moments to the surviving
customer's part, an unlink moves them back, and each such write deletes a row from the
part its stored customer names (SqlSession._delete_where, _stored). Random links and
unlinks among four customers (two of them in one part, the others in other parts),
with requests enough that some writes take the bulk path: after each step every
projection is what the same events projected at once make, each request once.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from conftest import BACKENDS
from persons_support import SECTIONS, LinkFeeder

from mot.adapters.stores.memory import MemoryLedger, MemoryProjectionStore
from mot.adapters.stores.projection_tables import BULK_UPSERT_ROWS
from mot.bootstrap import open_store
from mot.projections.engine import Engine
from mot.projections.ports import ProjectionStore, ViewRead

CUSTOMERS = ("a:1", "b:1", "c:1", "d:1")


def moment(customer: str, n: int, direction: str, kind: str, **more: Any) -> dict[str, Any]:
    return {"tenant": "acme", "customer_id": customer,
            "occurred_at": f"2026-04-01T{n % 24:02d}:{n % 60:02d}:00Z", "channel": "chat",
            "direction": direction, "kind": kind, "source": {"system": "t", "id": f"m{n}"},
            **more}


def link(kind: str, a: str, b: str, n: int) -> dict[str, Any]:
    return {"type": kind, "tenant": "acme", "customer_ids": [a, b],
            "occurred_at": f"2026-04-02T{n % 24:02d}:{n % 60:02d}:00Z", "reason": "test"}


@pytest.fixture(params=BACKENDS)
def projected(request: pytest.FixtureRequest, make_store_url: Any
              ) -> Iterator[tuple[MemoryLedger, ProjectionStore, Any]]:
    ledger = MemoryLedger()
    if request.param == "memory":
        yield ledger, MemoryProjectionStore(ledger), None
        return
    with open_store(make_store_url(request.param)) as services:
        yield ledger, services.projection_store, services.backend


def views(store: ProjectionStore) -> dict[str, list[bytes]]:
    return {name: sorted(orjson.dumps({k: v for k, v in r.items() if k != "version"},
                                      option=orjson.OPT_SORT_KEYS)
                         for r in store.read_view(ViewRead(name))) for name in SECTIONS}


@pytest.mark.parametrize("seed", [1, 2])
def test_random_links_and_unlinks_across_parts_write_what_projecting_at_once_writes(
        projected: tuple[MemoryLedger, ProjectionStore, Any], seed: int) -> None:
    ledger, store, backend = projected
    feeder = LinkFeeder(ledger)
    rng = random.Random(seed)
    n = 0
    linked: set[frozenset[str]] = set()
    engine = Engine(store, ledger, page_size=1000, customers_per_chunk=2)
    parts: set[str] = set()
    for step in range(10):
        lines: list[dict[str, Any]] = []
        # Requests and answers (a step now and then brings more than a bulk write's rows).
        count = BULK_UPSERT_ROWS + 10 if step in (0, 4) else rng.randrange(3, 15)
        for _ in range(count):
            who = rng.choice(CUSTOMERS)
            n += 1
            lines.append(moment(who, n, "inbound", "question"))
            if rng.random() < 0.7:
                n += 1
                lines.append(moment(rng.choice(CUSTOMERS), n, "outbound", "answer"))
            if rng.random() < 0.1:
                n += 1
                lines.append(moment(who, n, "public", "post", sentiment=-0.5, reach=500))
        a, b = rng.sample(CUSTOMERS, 2)
        pair = frozenset((a, b))
        n += 1
        if pair in linked and rng.random() < 0.6:
            lines.append(link("unlink", a, b, n))
            linked.discard(pair)
        elif pair not in linked:
            lines.append(link("link", a, b, n))
            linked.add(pair)
        feeder.record(lines)
        engine.catch_up()
        at_once = MemoryProjectionStore(ledger)
        Engine(at_once, ledger).catch_up()
        got, want = views(store), views(at_once)
        for name in SECTIONS:
            assert got[name] == want[name], (step, name, sorted(linked))
        requests = Counter(r["request_moment_id"] for r in store.read_view(ViewRead("responses")))
        assert requests and max(requests.values()) == 1, step
        if backend is not None and backend.split_tables:
            with backend.read() as tx:
                parts |= {str(part) for (part,) in tx.query(
                    "SELECT DISTINCT tableoid::regclass::text FROM responses")}
    # The rows these steps moved lay in several parts (each a table of its own).
    assert backend is None or not backend.split_tables or len(parts) > 1, parts
