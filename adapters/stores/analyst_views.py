"""Views for analysts: each projection table with the columns worked out when it is read.

`relationships_view` adds `lapsed` as of now (SPEC §3.1, the same 180 × 24 h as
`projections/lapsing.py`), `reciprocity_view` `may_ask`, `amplifications_view`
`triggered` and `delay_hours`, `teams_view` `net_given`, `listening_view`
`listens_enough`, `responses_view` `is_open` and `waiting_seconds` (an open request's, as of
now); `transitions_view` is the table as it is. The tables stay
plain; a view depends on its table, so a rebuild's swap drops the views first
and makes them again after (`drop_views`, `create_views`). Boolean columns are
booleans on PostgreSQL and 0/1 on SQLite; both read as true/false in a `WHERE`.
"""

from __future__ import annotations

from typing import Final

from mot.adapters.stores.sql import SqlBackend, Tx
from mot.projections.lapsing import LAPSED_AFTER_US
from mot.projections.listening import LISTENS_ENOUGH

# View -> (its table, the computed columns as `expression AS name`; `{now}` is now in µs,
# the backend's `now_us`).
VIEWS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "relationships_view": ("relationships", (
        "(last_customer_moment_us IS NULL OR last_customer_moment_us < {now} - "
        f"{LAPSED_AFTER_US}) AS lapsed",)),
    "reciprocity_view": ("reciprocity", ("(status = 'ok_to_ask') AS may_ask",)),
    "transitions_view": ("transitions", ()),
    "amplifications_view": ("amplifications", (
        "(trigger_moment_id IS NOT NULL) AS triggered",
        "delay_seconds / 3600.0 AS delay_hours")),
    "teams_view": ("teams", ("given - asked AS net_given",)),
    "listening_view": ("listening", (f"(listening_share >= {LISTENS_ENOUGH}) AS listens_enough",)),
    # Overdue depends on mot.toml's targets, which the store does not know: how long each open
    # request has waited is what an analyst compares with them.
    "responses_view": ("responses", (
        "(response_moment_id IS NULL) AS is_open",
        "CASE WHEN response_moment_id IS NULL THEN ({now} - occurred_us) / 1000000 END"
        " AS waiting_seconds")),
}


def create_views(backend: SqlBackend, tx: Tx) -> None:
    """Make (or make again) every view, over the live tables."""
    now = backend.now_us
    for view, (table, computed) in VIEWS.items():
        tx.execute(f"DROP VIEW IF EXISTS {view}")
        extra = "".join(f", {expression.replace('{now}', now)}" for expression in computed)
        tx.execute(f"CREATE VIEW {view} AS SELECT {table}.*{extra} FROM {table}")


def drop_views(tx: Tx) -> None:
    """Drop every view (before the tables they read are dropped or replaced)."""
    for view in VIEWS:
        tx.execute(f"DROP VIEW IF EXISTS {view}")
