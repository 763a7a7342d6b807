"""Share chains (SPEC §3.3, issue 13 case 15): each share keeps its root, and incremental = rebuild.

A share appended to a chain takes its parent's root, so the projection work per
event does not grow with the chain's depth (bench/share_chain_bench.py measures
it); a change that moves a chain (a share arriving late in the middle, a
retraction, an amendment re-pointing a share, a post retracted) re-roots what
hangs below it. Whatever the order, the tables equal a rebuild's, row for row.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from projection_support import projection_tables

from mot.bootstrap import Services, open_store
from mot.service.ledger import Incoming
from mot.service.queries import Query


def mid(n: int) -> str:
    return str(uuid.UUID(int=n))


def share(n: int, parent: int, *, tenant: str = "acme", reach: int = 1) -> dict[str, Any]:
    return {"moment_id": mid(n), "tenant": tenant, "customer_id": f"c{n % 7}",
            "occurred_at": f"2026-03-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z",
            "channel": "twitter", "direction": "public", "kind": "share", "shares": mid(parent),
            "reach": reach}


def post(n: int, *, tenant: str = "acme") -> dict[str, Any]:
    return {"moment_id": mid(n), "tenant": tenant, "customer_id": "author",
            "occurred_at": "2026-03-01T00:00:00Z", "channel": "twitter", "direction": "public",
            "kind": "post", "sentiment": -0.6, "reach": 100}


def record_one_by_one(services: Services, messages: list[dict[str, Any]]) -> None:
    """Each message recorded and projected on its own, as a live follower sees them."""
    for n, message in enumerate(messages):
        services.ledger.record([Incoming(orjson.dumps(message), f"test:{n}")])
        services.projections.project()


def cascades(services: Services) -> dict[str, tuple[int, int]]:
    return {r["amplification_id"]: (r["cascade_size"], r["cascade_reach"])
            for r in services.queries.run(Query("amplifications"))}


def assert_rebuild_equal(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    incremental = projection_tables(services)
    services.projections.replay(workers=0)
    rebuilt = projection_tables(services)
    assert rebuilt == incremental
    return rebuilt


def test_a_deep_chain_appended_one_by_one_counts_every_share(store_url: str) -> None:
    depth = 120
    with open_store(store_url) as services:
        record_one_by_one(services, [post(1), *(share(n, n - 1) for n in range(2, depth + 2))])
        assert cascades(services) == {mid(1): (depth, 100 + depth)}
        rebuilt = assert_rebuild_equal(services)
        # Every share of the chain is kept with the post as its root.
        assert {row[2] for row in rebuilt["share_roots"]} == {mid(1)}
        assert len(rebuilt["share_roots"]) == depth


def test_changes_in_the_middle_of_a_chain_re_root_what_hangs_below(store_url: str) -> None:
    with open_store(store_url) as services:
        # 2..11 a chain under post 1, but share 6 arrives last: 7..11 wait for it.
        record_one_by_one(services, [post(1), *(share(n, n - 1) for n in range(2, 12) if n != 6)])
        assert cascades(services) == {mid(1): (4, 104)}
        record_one_by_one(services, [share(6, 5)])
        assert cascades(services) == {mid(1): (10, 110)}
        assert_rebuild_equal(services)
        # A retraction in the middle cuts off the shares below it.
        record_one_by_one(services, [{"type": "retract", "moment_id": mid(4), "reason": "spam"}])
        assert cascades(services) == {mid(1): (2, 102)}
        assert_rebuild_equal(services)
        # Re-pointing a share below the cut to a second post moves its subtree there.
        record_one_by_one(services, [post(50), {"type": "amend", "moment_id": mid(8),
                                                "set": {"shares": mid(50), "reach": 5},
                                                "reason": "wrong post"}])
        assert cascades(services) == {mid(1): (2, 102), mid(50): (4, 100 + 5 + 3)}
        assert_rebuild_equal(services)
        # The post retracted: its shares lead nowhere.
        record_one_by_one(services, [{"type": "retract", "moment_id": mid(50), "reason": "x"}])
        assert cascades(services) == {mid(1): (2, 102)}
        rebuilt = assert_rebuild_equal(services)
        assert {row[1] for row in rebuilt["share_roots"]} == {mid(2), mid(3)}


def test_cycles_and_other_tenants_count_nowhere(store_url: str) -> None:
    with open_store(store_url) as services:
        record_one_by_one(services, [
            share(20, 21), share(21, 20),  # a cycle with no post above it
            post(1), share(2, 1), share(3, 2, tenant="globex"),  # another tenant's share
            share(22, 21),  # below the cycle
        ])
        assert cascades(services) == {mid(1): (1, 101)}
        rebuilt = assert_rebuild_equal(services)
        assert [row[1] for row in rebuilt["share_roots"]] == [mid(2)]


def test_the_same_ids_in_two_tenants_keep_roots_of_their_own(store_url: str) -> None:
    # Each share below the first takes its parent's kept root, looked up by (tenant, moment
    # id): the same ids in globex, under a post of globex's own, must not answer for acme's.
    # globex's post is retracted before acme's chain grows, so a root read from the wrong
    # tenant would count acme's later shares nowhere.
    with open_store(store_url) as services:
        record_one_by_one(services, [
            post(1), share(2, 1), post(1, tenant="globex"), share(2, 1, tenant="globex"),
            share(3, 2, tenant="globex"),
            {"type": "retract", "moment_id": mid(1), "tenant": "globex", "reason": "x"},
            share(3, 2), share(4, 3, reach=10), share(4, 3, tenant="globex"),
        ])
        found = {(r["tenant"], r["amplification_id"]): (r["cascade_size"], r["cascade_reach"])
                 for r in services.queries.run(Query("amplifications"))}
        assert found == {("acme", mid(1)): (3, 112)}
        rebuilt = assert_rebuild_equal(services)
        assert sorted(row[:3] for row in rebuilt["share_roots"]) == [
            ("acme", mid(2), mid(1)), ("acme", mid(3), mid(1)), ("acme", mid(4), mid(1))]
