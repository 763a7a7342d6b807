"""The plain frozen values the projections fold over and produce (SPEC §3).

`Current` is one current moment (after its amendments; retracted moments are
simply absent), reduced to what the projections read. It is a NamedTuple so
that the engine can build it straight from a database row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from operator import itemgetter, methodcaller
from typing import Any, Final, NamedTuple

from mot.domain.timefmt import to_micros
from mot.projections.schema import MOMENT_FIELDS


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

MomentKey = tuple[str, str]
"""(tenant, moment_id): moment ids are scoped by tenant (SPEC §2)."""


def _field_getters() -> list[Callable[[dict[str, Any]], Any]]:
    getters: list[Callable[[dict[str, Any]], Any]] = []
    for f in MOMENT_FIELDS:
        if not f.folded:
            continue
        if f.micros_of:
            getters.append(partial(_micros, f.micros_of))
        elif f.null:
            getters.append(methodcaller("get", f.name))
        else:
            getters.append(itemgetter(f.name))
    return getters


def _micros(name: str, moment: dict[str, Any]) -> int:
    return to_micros(datetime.fromisoformat(moment[name]))


_GETTERS: Final = _field_getters()
assert [f.name for f in MOMENT_FIELDS if f.folded] == list(Current._fields)


def current_of(moment: dict[str, Any]) -> Current:
    """The projection view of a normalised moment, field by field as `MOMENT_FIELDS` says
    (the in-database load of a rebuild, adapters/stores/moment_load.py, reads the same table)."""
    return Current._make([get(moment) for get in _GETTERS])
