"""What the projection engine needs from a store; adapters/stores implements it on SQL."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from mot.projections.model import Current, CustomerKey, MomentKey

if TYPE_CHECKING:
    from mot.domain.events import LedgerEvent, LinkEvent
    from mot.projections.alerts import Alert
    from mot.projections.amplification import Amplification
    from mot.projections.folding import CustomerProjections
    from mot.projections.persons import Member
    from mot.projections.teams import ListeningRow, TeamRow

Pair = tuple[str, str, str]
"""(tenant, low, high): a pair of linked customer ids, in code-point order (SPEC §2)."""

Precedence = tuple[int, int]
"""A pair's latest evidence: `mot.domain.links.PairEvidence.precedence` (occurred_us, 1 for an
unlink, 0 for a link): what the store keeps of each pair."""

EncodedCustomers = Any
"""Customers' projections encoded by a store for itself (opaque to the engine)."""

LIVE = "projections"
"""The projection tables queries read."""
REBUILD = "projections__rebuild"
"""The tables a rebuild fills before they are swapped in."""


class RebuildPhase(StrEnum):
    """Where a projection run is: a rebuild's three phases in order, then live."""

    MOMENTS = "moments"  # every current moment copied in, a page of the log at a time
    FOLD = "fold"  # every customer folded once, in key order
    CATCHUP = "catchup"  # the pages recorded meanwhile, applied as incrementally
    LIVE = "live"  # the tables queries read, kept up to date page by page


class Checkpoint(NamedTuple):
    """A projection run's saved position, in the transaction of the work it covers."""

    position: int  # the ledger position applied up to
    phase: RebuildPhase
    cursor: CustomerKey | None  # in the fold phase: the last customer folded


class ProjectionState(NamedTuple):
    """A projection run as `mot status` reports it."""

    position: int
    phase: RebuildPhase
    target: int | None  # a rebuild: the ledger position it builds up to


class ErasedDuringRebuild(RuntimeError):
    """`ProjectionStore.swap` refused: an erasure (SPEC §6) committed while the rebuild read
    and wrote in separate transactions, so its tables may hold what the erasure took away;
    they are dropped and the rebuild starts again."""


class StagedRange(NamedTuple):
    """Moments of a range of the log, extracted ahead into a scratch table of their own."""

    name: str
    moments: int  # how many it was filled with: a copy of fewer is refused


@dataclass(frozen=True, slots=True)
class ViewRead:
    """A read of one projection's rows, as `mot query` asks (stored columns, per the
    projection's declaration in mot.projections.schema)."""

    name: str
    equals: Mapping[str, Any] = field(default_factory=dict)  # column -> value
    since_us: int | None = None  # the projection's time column at or after
    until_us: int | None = None  # ... at or before
    order: tuple[tuple[str, bool], ...] = ()  # (column, descending), before the default order
    limit: int | None = None
    null: tuple[str, ...] = ()  # columns that are NULL (responses still open)
    customers: tuple[CustomerKey, ...] | None = None  # only the rows of these (tenant, customer_id)
    at_least: Mapping[str, int] = field(default_factory=dict)  # column -> its least value


@dataclass(frozen=True, slots=True)
class Cascade:
    """An amplification moment's cascade (SPEC §3.3)."""

    size: int  # shares in the tree
    reach: int  # the moment's own reach plus every share's
    shares: tuple[Current, ...] = ()  # the shares themselves, when the reader walked the tree


class FoldReader(Protocol):
    """What folding a customer reads beyond their own moments (reply targets, share cascades)."""

    def moments_by_key(self, keys: Collection[MomentKey]) -> dict[MomentKey, Current]: ...
    def children(self, parents: Collection[MomentKey]) -> list[Current]:
        """The current shares whose `shares` names one of these moments (same tenant)."""
        ...
    def cascades(self, posts: Sequence[Current]) -> dict[str, Cascade]:
        """Each amplification moment's cascade: walked down its share tree (a rebuild's fold,
        `--as-of`), or summed from the shares' kept roots (`ProjectionSession`)."""
        ...


class PersonReader(Protocol):
    """Who is whom: the ids of linked persons (SPEC §2, "Links").

    A person's *group* is the smallest of its ids, with or without moments: it does not
    change when moments come and go, so the current moments are kept by group. An id in no
    linked pair is its own group and is stored nowhere.
    """

    def groups(self, ids: Collection[CustomerKey]) -> dict[CustomerKey, str]:
        """The group of each of these ids that is in a linked pair (the others are their own)."""
        ...
    def members(self, groups: Collection[CustomerKey]) -> dict[CustomerKey, list[Member]]:
        """The ids of each of these groups that has several, with their degrees."""
        ...
    def linked_pairs(self, tenant: str, ids: Collection[str], *, unlinked: bool = False
                     ) -> list[tuple[str, str]]:
        """The tenant's pairs whose state is linked and that name one of these ids; with
        `unlinked`, also those whose state is unlinked (a person's link history)."""
        ...


class RangeReader(FoldReader, PersonReader, Protocol):
    """A read of the current moments by ranges of persons (a rebuild's fold phase): the
    customer keys below are (tenant, group) keys."""

    def customer_range(self, first: CustomerKey, last: CustomerKey
                       ) -> dict[CustomerKey, list[Current]]: ...
    def customers_after(self, cursor: CustomerKey | None, limit: int, *,
                        tenant: str | None = None,
                        customer: str | None = None) -> list[CustomerKey]: ...
    def customer_moments(self, keys: Collection[CustomerKey]) -> dict[CustomerKey, list[Current]]: ...
    def encode_customers(self, folded: Iterable[CustomerProjections],
                         version: int) -> EncodedCustomers:
        """The customers' projections as the store will write them (`add_customers`), made
        where they were folded: a rebuild's worker processes do this work too."""
        ...


class ProjectionSession(PersonReader, Protocol):
    """One transaction of projection work; its position is saved in the same transaction.

    Current moments are read by person group: `customer_moments`, `customer_range` and
    `customers_after` take and give (tenant, group) keys; rows are written under the
    person_id (`replace_customers`).
    """

    def pair_states(self, pairs: Collection[Pair]) -> dict[Pair, Precedence]:
        """The precedence of each of these pairs' latest evidence, for those that have some."""
        ...
    def save_pair_states(self, states: Mapping[Pair, Precedence]) -> None: ...
    def regroup(self, tenant: str, new: Mapping[str, tuple[str, int] | None],
                old: Mapping[str, str]) -> None:
        """Give ids their new group and degree (None: an id in no linked pair any more); `old`
        is each one's group before, so the store moves its current moments to the new one."""
        ...
    def load_links(self, states: Mapping[Pair, Precedence]) -> int:
        """A rebuild's: every pair's state (replacing any), and the groups the linked pairs
        make, before any moment is loaded (each then goes in with its group). Returns how
        many pairs."""
        ...

    def progress(self) -> Checkpoint: ...
    def save_progress(self, position: int, phase: RebuildPhase, cursor: CustomerKey | None,
                      now: str) -> None: ...
    def moments_by_key(self, keys: Collection[MomentKey]) -> dict[MomentKey, Current]: ...
    def children(self, parents: Collection[MomentKey]) -> list[Current]:
        """The current shares whose `shares` names one of these moments (same tenant)."""
        ...
    def cascades(self, posts: Sequence[Current]) -> dict[str, Cascade]: ...
    def amplifications_replying_to(self, keys: Collection[MomentKey]) -> list[Current]:
        """The current amplification moments (public posts, reviews, mentions) whose
        `in_reply_to` names one of these moments (same tenant)."""
        ...
    def write_moments(self, rows: Sequence[tuple[Current, dict[str, Any], int]],
                      deletes: Collection[MomentKey], *,
                      existing: Collection[MomentKey],
                      groups: Mapping[CustomerKey, str]) -> None:
        """Write current moments (those in `existing` replace a row), each kept under its
        group (`groups`, for the ids that have one other than their own); delete `deletes`."""
        ...
    def load_moments(self, after: int, upto: int, as_of: int) -> int:
        """Copy in each moment whose latest event at or before position `as_of` lies in
        (after, upto] and does not retract it: each moment current at `as_of` once, as of
        then, with version `as_of`. Returns how many."""
        ...
    def customer_moments(self, keys: Collection[CustomerKey]) -> dict[CustomerKey, list[Current]]: ...
    def customer_range(self, first: CustomerKey, last: CustomerKey
                       ) -> dict[CustomerKey, list[Current]]: ...
    def customers_after(self, cursor: CustomerKey | None, limit: int) -> list[CustomerKey]: ...
    def replace_customers(self, folded: Mapping[CustomerKey, CustomerProjections],
                          gone: Collection[CustomerKey], version: int) -> list[Amplification]:
        """Make the stored projections of customers what `folded` says, and remove those of
        `gone` (customers with no current moment left). What changed is stamped `version`;
        a removed row leaves a tombstone. Returns the amplifications stored before."""
        ...
    def encode_customers(self, folded: Iterable[CustomerProjections],
                         version: int) -> EncodedCustomers: ...
    def add_customers(self, encoded: EncodedCustomers) -> None:
        """Store the projections of customers that have none yet (a rebuild's fold)."""
        ...
    def share_roots(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The amplification moment each of these shares ((tenant, moment_id)) leads up to, for
        those whose chain reaches one."""
        ...
    def save_share_roots(self, roots: Iterable[tuple[Current, str]],
                         removed: Iterable[tuple[str, str]]) -> None:
        """Keep each share's root (replacing what was kept), and forget those of `removed`."""
        ...
    def team_sums(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], TeamRow]: ...
    def save_team_sums(self, rows: Iterable[TeamRow], removed: Iterable[tuple[str, str]],
                       version: int) -> None: ...
    def listening_sums(self, tenants: Collection[str]) -> dict[str, ListeningRow]: ...
    def save_listening_sums(self, rows: Iterable[ListeningRow], removed: Iterable[str],
                            version: int) -> None: ...
    def raise_alerts(self, alerts: Sequence[Alert]) -> None:
        """Put into the alerts outbox, in this transaction, each alert not raised before (an
        alert's id is its identity: raising it again, from a rebuild, a replay or a page
        applied again, adds nothing). The outbox is shared by the live and rebuild tables."""
        ...


class StagedSession(ProjectionSession, Protocol):
    """A session on a rebuild's tables that can copy in a stage of moments."""

    def load_staged(self, stage: StagedRange) -> int:
        """Copy in a stage of moments (`MomentStaging.stage_moments`); return how many."""
        ...


class MomentStaging(Protocol):
    """A capability of stores that other processes can open: ranges of the log's moments
    extracted into stages of their own, outside the rebuild's transactions, so several
    processes extract ranges at once (`ProjectionStore.staging`)."""

    def stage_moments(self, after: int, upto: int, as_of: int) -> StagedRange:
        """What `ProjectionSession.load_moments(after, upto, as_of)` would copy in, extracted
        into a stage of its own."""
        ...
    def staged_session(self, stage: StagedRange) -> AbstractContextManager[StagedSession]:
        """A session on the rebuild's tables that can `load_staged(stage)`; the stage is
        dropped once it ends."""
        ...


class ProjectionStore(Protocol):
    """Opens sessions on the live projection tables or on a rebuild's tables."""

    def session(self, name: str = ...) -> AbstractContextManager[ProjectionSession]: ...
    def reader(self, as_of_us: int | None = None, *, name: str = ...
               ) -> AbstractContextManager[RangeReader]: ...
    def start_rebuild(self, target: int, now: str) -> None: ...
    def index_rebuild(self, tables: Literal["moments", "folded"]) -> None:
        """Index a rebuild's moments table (which the fold reads by customer, id and share), or
        the tables the fold filled (which queries and the catch-up read by their filters)."""
        ...
    def rebuild_lock(self, waiting: Callable[[], None] | None = None
                     ) -> AbstractContextManager[None]:
        """Held for a whole rebuild: one process rebuilds at a time (`waiting()` is called
        first when another one is)."""
        ...
    @property
    def staging(self) -> MomentStaging | None:
        """The store's staging of moments for a rebuild's worker processes, if it has it (a
        store held in one process's memory has not: its rebuild copies the moments itself)."""
        ...
    def drop_stages(self) -> None:
        """Drop the stages that a stopped rebuild left."""
        ...
    def swap(self, now: str) -> None:
        """Put the rebuilt tables in place of the live ones; ErasedDuringRebuild (the rebuild
        discarded) when an erasure came after the rebuild began."""
        ...
    def state(self, name: str = ...) -> ProjectionState | None: ...
    def progress_time(self, name: str = ...) -> str | None:
        """When a projection run last saved its position (RFC 3339), or None before its first page."""
        ...
    def read_view(self, read: ViewRead) -> list[dict[str, Any]]:
        """The live rows of a projection, named as its output names them."""
        ...
    def one_read(self) -> AbstractContextManager[None]:
        """The reads within the block (`persons_of`, `read_view`) in one read transaction
        of the store, where each would take its own."""
        ...

    def persons_of(self, customer: str, tenant: str | None = None
                   ) -> list[tuple[CustomerKey, str]]:
        """The live persons that the id `customer` belongs to (one a tenant; in `tenant` only
        when given): each one's key (tenant, person_id) and group."""
        ...


class NotificationLog(Protocol):
    """The ledger's events in the order it recorded them."""

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]: ...
    def link_events_upto(self, upto: int, part: tuple[int, int] = (0, 1)) -> list[LinkEvent]:
        """Every link and unlink at positions up to `upto`, in the order recorded (a rebuild
        reads the pairs' states first: few events); with `part` (i, n), only those whose
        position is i modulo n (n processes read them at once)."""
        ...
    def head(self) -> int: ...
    def count(self, upto: int) -> int:
        """How many events lie at positions up to `upto` (positions may have gaps)."""
        ...
