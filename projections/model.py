"""The plain frozen values the projections fold over and produce (SPEC §3).

`Current` is one current moment (after its amendments; retracted moments are
simply absent), reduced to what the projections read. It is a NamedTuple so
that the engine can build it straight from a database row.
"""

from __future__ import annotations

from typing import NamedTuple


class Current(NamedTuple):
    """A current moment as the projections see it."""

    moment_id: str
    tenant: str
    customer_id: str
    occurred_us: int  # microseconds since the epoch, UTC
    direction: str  # inbound | outbound | public
    kind: str
    function: str
    channel: str
    actor: str | None
    ask_type: str | None
    sentiment: float | None
    reach: int
    in_reply_to: str | None
    shares: str | None

    @property
    def fold_key(self) -> tuple[int, str]:
        """Moments of a customer are folded in `(occurred_at, moment_id)` order."""
        return (self.occurred_us, self.moment_id)


CustomerKey = tuple[str, str]
"""(tenant, customer_id)"""
