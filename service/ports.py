"""The ports the service layer needs; adapters/stores implements them for SQLite and PostgreSQL.

The domain types are imported for annotations only: a store adapter imports this module
(for the errors below) on every command, and a query loads no ledger events.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mot.domain.events import LedgerEvent, StreamEvent
    from mot.domain.identity import MomentKey
    from mot.domain.ledger import Pair, Stream, Verdict, WaitKey
    from mot.domain.quarantine import Quarantined, Rejected


class StoreNotFound(LookupError):
    """A read-only command found no mot store where it was told to look; none was made."""

    def __init__(self, where: str) -> None:
        super().__init__(f"no mot store at {where}")
        self.where = where  # the store's path or URL, without a password


class StoreUnavailable(ConnectionError):
    """The store's server could not be reached, or refused us; says why, as the driver did."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a write transaction found of the streams a batch names, for its plan."""

    streams: dict[MomentKey, Stream]  # (tenant, moment id) -> the moment's stream
    pairs: dict[str, Pair]  # a pair's link stream id -> its stream
    # Corrections in the quarantine waiting for a moment the batch names that is not
    # recorded yet (SPEC §2), oldest first; found only when the quarantine holds any.
    waiting: Sequence[Quarantined] = ()


@dataclass(frozen=True, slots=True)
class Append:
    """What one write transaction of the ledger does."""

    events: Sequence[StreamEvent]
    rejected: Sequence[Rejected] = ()
    resolved: Collection[int] = ()  # quarantine ids that now went in
    # (quarantine id, field, reason, the moment it waits for if that is why)
    still_rejected: Sequence[tuple[int, str, str, WaitKey | None]] = ()
    verdicts: Sequence[Verdict] = ()  # one per message, in batch order
    waited: Sequence[tuple[int, Verdict]] = ()  # waiting corrections let in: (quarantine id, verdict)


class LedgerStore(Protocol):
    """The ledger: streams of moment events, their notification log, and the quarantine."""

    def record(self, keys: Collection[tuple[str | None, str]],
               plan: Callable[[Loaded], Append], pairs: Collection[str] = (),
               stream_ids: Mapping[tuple[str, str], str] | None = None) -> Append:
        """In one write transaction: load the streams of the moments `keys` name ((tenant,
        moment id); a None tenant names the id in every tenant) and of the pairs `pairs` names
        (link stream ids), and the corrections waiting for those moments; ask `plan` what to
        do, do it (a rejected correction with `waits_for` is marked as waiting). `stream_ids`:
        the stream id (`moment_stream_id`) of some of the keys, made ahead (by a parse worker)."""
        ...

    def transaction(self, waiting: Callable[[], None] | None = None
                    ) -> AbstractContextManager[None]:
        """A unit of work: every `record` inside it commits together when it ends. While
        another process holds the ledger's writer lock, `waiting()` is called every fraction
        of a second until it is taken (a consumer polls its group meanwhile)."""
        ...

    def sealed(self) -> bool:
        """Whether the ledger seals personal fields (SPEC §6): parse workers then hand
        moments over split for it (service/parsing.py)."""
        ...

    def suppression_active(self) -> bool:
        """Whether any customer id is suppressed (erased, SPEC §6); inside `record`'s plan,
        as of its transaction."""
        ...

    def suppressed(self, customers: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of these (tenant, customer id) on the suppression list (erased, SPEC §6)."""
        ...

    def stream(self, moment_id: str, tenant: str | None = None) -> list[LedgerEvent]:
        """One moment's events in version order (without `tenant`: of the moment with that id
        in whichever tenant has one; AmbiguousMoment when several do)."""
        ...

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        """Events with position > after, in the order the ledger recorded them."""
        ...

    def head(self) -> int:
        """The position of the latest event (0 when empty)."""
        ...

    def tenants(self) -> list[str]:
        """The tenants that have recorded a moment, in order (projected or not)."""
        ...

    def count(self, upto: int) -> int:
        """How many events lie at positions up to `upto` (positions may have gaps)."""
        ...

    def quarantine(
        self, *, limit: int | None = None, ids: Collection[int] | None = None,
        field: str | None = None, reason: str | None = None,
    ) -> list[Quarantined]:
        """Quarantined messages, oldest first: those with these ids, rejected for this field
        (one of their fields), whose reason holds this text (any case)."""
        ...

    def quarantine_reasons(self) -> list[tuple[str, str, int, int]]:
        """(field, reason, messages, lowest id) for each distinct rejection."""
        ...

    def quarantine_by_tenant(self) -> dict[str | None, int]:
        """How many quarantined messages are each tenant's (`erased_with`; None: those
        naming no tenant a store can trust, such as a line that is no JSON)."""
        ...

    def quarantine_count(self) -> int:
        ...

    def drop_quarantined(self, ids: Collection[int]) -> int:
        ...

    def set_quarantined_payload(self, quarantine_id: int, payload: bytes,
                                field: str | None = None, reason: str | None = None) -> int:
        """Replace what an entry replays; merges it into an entry of the same content.
        Returns the id that holds the payload."""
        ...

    def close(self) -> None:
        ...
