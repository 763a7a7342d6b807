"""Moment ids are scoped by tenant (SPEC §2): on the projection side too.

The same `moment_id` in two tenants is two moments: each is projected for its own
tenant, a reply or a share names a moment of its own tenant only, and an
amplification of one tenant never replaces another's. Incremental = rebuild.
"""

from __future__ import annotations

from typing import Any

import orjson
from projection_support import projection_tables

from mot.bootstrap import open_store
from mot.service.ledger import Incoming
from mot.service.queries import Query

POST = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"
SHARE = "6f1c9e2a-3b4d-4c5e-8f70-0000000000aa"


def moment(tenant: str, customer: str, **fields: Any) -> dict[str, Any]:
    return {"tenant": tenant, "customer_id": customer, "occurred_at": "2026-03-01T09:00:00Z",
            "channel": "twitter", "direction": "public", **fields}


def test_the_same_moment_id_in_two_tenants_is_two_moments(store_url: str) -> None:
    messages = [
        moment("acme", "a1", moment_id=POST, kind="post", sentiment=-0.5, reach=10),
        moment("globex", "g1", moment_id=POST, kind="review", sentiment=0.8, reach=20),
        # globex shares "its" POST: only globex's cascade grows.
        moment("globex", "g2", moment_id=SHARE, kind="share", shares=POST, reach=5),
    ]
    with open_store(store_url) as services:
        for n, message in enumerate(messages):
            services.ledger.record([Incoming(orjson.dumps(message), f"test:{n}")])
            services.projections.project()
        amplifications = {(r["tenant"], r["amplification_id"]): (r["polarity"], r["cascade_size"],
                                                                 r["cascade_reach"])
                          for r in services.queries.run(Query("amplifications"))}
        assert amplifications == {("acme", POST): ("negative", 0, 10),
                                  ("globex", POST): ("positive", 1, 25)}
        customers = {(r["tenant"], r["customer_id"])
                     for r in services.queries.run(Query("relationships"))}
        assert customers == {("acme", "a1"), ("globex", "g1"), ("globex", "g2")}
        # Retracting acme's moment leaves globex's.
        services.ledger.record([Incoming(orjson.dumps(
            {"type": "retract", "tenant": "acme", "moment_id": POST, "reason": "x"}), "t:r")])
        services.projections.project()
        assert [(r["tenant"], r["cascade_size"])
                for r in services.queries.run(Query("amplifications"))] == [("globex", 1)]
        incremental = projection_tables(services)
        services.projections.replay(workers=0)
        assert projection_tables(services) == incremental


def test_the_changelog_keys_amplifications_by_tenant_and_id(store_url: str) -> None:
    """A compacted topic keeps the last message per key: the same moment id in two tenants
    must be two keys, or one tenant's amplification would replace the other's there."""
    messages = [
        moment("acme", "a1", moment_id=POST, kind="post", sentiment=-0.5, reach=10),
        moment("globex", "g1", moment_id=POST, kind="review", sentiment=0.8, reach=20),
    ]
    with open_store(store_url) as services:
        services.ledger.record([Incoming(orjson.dumps(m), f"test:{n}") for n, m in enumerate(messages)])
        services.projections.project()
        rows = services.changelog.changes("amplifications", "rows", (0, ""), 1_000_000, 100)
        assert sorted(c.key for c in rows) == [f"acme/{POST}", f"globex/{POST}"]
        services.ledger.record([Incoming(orjson.dumps(
            {"type": "retract", "tenant": "acme", "moment_id": POST, "reason": "x"}), "t:r")])
        services.projections.project()
        gone = services.changelog.changes("amplifications", "tombstones", (0, ""), 1_000_000, 100)
        assert [c.key for c in gone] == [f"acme/{POST}"]
