"""Stores in memory: the ledger's notification log and the projections, with no database.

As eventsourcing's POPO recorders do for its SQLite and PostgreSQL ones,
`MemoryProjectionStore` implements the same port as the SQL store
(`mot.projections.ports.ProjectionStore`) and passes the same contract suite
(tests/test_projection_store_contract.py). `MemoryLedger` implements the ledger's port
(`mot.service.ports.LedgerStore`) and passes the ledger's contract suite
(tests/test_store_contract.py): streams, notification log, quarantine. They serve
tests where a database adds nothing; nothing here is durable.

A transaction works on copies of the tables and puts them in place when it ends
without an error, so a page that fails leaves nothing behind, as in a database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from mot.adapters.stores.memory_alerts import MemoryAlertOutbox
from mot.domain.timefmt import format_utc
from mot.domain.vocabulary import AMPLIFYING_KINDS
from mot.projections.amplification import capped_reach
from mot.projections.model import Current, CustomerKey, MomentKey, current_of
from mot.projections.ports import (
    LIVE,
    REBUILD,
    Cascade,
    Checkpoint,
    Pair,
    Precedence,
    ProjectionState,
    RebuildPhase,
    ViewRead,
)
from mot.projections.schema import PROJECTIONS, Projection, row_maker, stored_decoder
from mot.service.alerting import OpenRequest

if TYPE_CHECKING:
    from mot.domain.events import LedgerEvent, LinkEvent, MomentEvent, StreamEvent
    from mot.domain.quarantine import Quarantined, Rejected
    from mot.projections.alerts import Alert
    from mot.projections.amplification import Amplification
    from mot.projections.folding import CustomerProjections
    from mot.projections.persons import Member
    from mot.projections.teams import ListeningRow, TeamRow
    from mot.service.ports import Append, Loaded


# -- the ledger -----------------------------------------------------------------------------


class MemoryLedger:
    """The ledger in memory (`LedgerStore`): its streams, notification log and quarantine.

    It passes the SQL ledgers' contract suite (tests/test_store_contract.py). A
    transaction keeps a snapshot and puts it back when the block fails, so a batch, or a
    unit of work of several, is all or nothing, as in a database."""

    def __init__(self) -> None:
        self.log: list[StreamEvent] = []  # position n is self.log[n - 1]
        self.streams: dict[MomentKey, list[StreamEvent]] = {}  # (tenant, moment id) -> events
        self.pairs: dict[str, list[StreamEvent]] = {}  # link stream id -> a pair's events
        self.quarantined: dict[str, Quarantined] = {}  # by digest
        self._ids = 0
        self._depth = 0  # transactions open (a unit of work holds the batches it records)

    def record(self, keys: Collection[tuple[str | None, str]],
               plan: Callable[[Loaded], Append], pairs: Collection[str] = (),
               stream_ids: Mapping[tuple[str, str], str] | None = None) -> Append:
        """`keys` name moments by (tenant, moment id); a None tenant, the id in every tenant;
        `pairs`, link streams by id (`stream_ids` are not needed: streams are kept by key)."""
        from mot.domain.events import CustomersLinked, CustomersUnlinked
        from mot.domain.ledger import replay_pair, replay_stream
        from mot.domain.quarantine import Quarantined
        from mot.service.ports import Loaded

        with self.transaction():
            wanted = [key for key in self.streams
                      if key in keys or (None, key[1]) in keys]
            found = {key: replay_stream(self.streams[key]) for key in wanted}
            streams = {key: stream for key, stream in found.items() if stream is not None}
            found_pairs = {link_id: replay_pair(self.pairs[link_id]) for link_id in pairs
                           if link_id in self.pairs}
            missing = {key for key in keys if key[0] is not None and key not in streams}
            waiting = sorted((q for q in self.quarantined.values() if q.waits_for is not None and (
                q.waits_for in missing or (q.waits_for[0] is None and any(
                    moment_id == q.waits_for[1] for _, moment_id in missing)))),
                key=lambda q: q.id)
            append = plan(Loaded(streams, {k: p for k, p in found_pairs.items() if p is not None},
                                 waiting))
            for event in append.events:
                self.log.append(event)
                if isinstance(event, CustomersLinked | CustomersUnlinked):
                    self.pairs.setdefault(event.link_id, []).append(event)
                else:
                    self.streams.setdefault((event.tenant, event.moment_id), []).append(event)
            now = _now()
            for r in append.rejected:
                digest = r.digest
                known = self.quarantined.get(digest)
                if known is None:
                    self._ids += 1
                    self.quarantined[digest] = Quarantined(self._ids, r.raw, r.payload, r.origin,
                                                           r.origin, r.field, r.reason, now, now, 1,
                                                           r.waits_for)
                else:
                    self.quarantined[digest] = replace(
                        known, repeats=known.repeats + 1, last_seen=now, last_origin=r.origin,
                        field=r.field, waits_for=r.waits_for,
                        reason=_reasons(known, r))
            for qid, field_, reason, waits in append.still_rejected:
                held = self._digest_of(qid)
                if held is not None:
                    self.quarantined[held] = replace(self.quarantined[held], field=field_,
                                                     reason=reason, last_seen=now, waits_for=waits)
            self.drop_quarantined(append.resolved)
        return append

    @contextmanager
    def transaction(self, waiting: Callable[[], None] | None = None) -> Iterator[None]:
        # One process: no other writer to wait for.
        if self._depth:  # inside a unit of work: the outermost block commits or rolls back
            yield
            return
        from mot.domain.events import CustomersLinked, CustomersUnlinked

        logged, quarantined, ids = len(self.log), dict(self.quarantined), self._ids
        self._depth += 1
        try:
            yield
        except BaseException:
            for event in reversed(self.log[logged:]):  # streams only grow: take back the ends
                if isinstance(event, CustomersLinked | CustomersUnlinked):
                    _take_back(self.pairs, event.link_id)
                else:
                    _take_back(self.streams, (event.tenant, event.moment_id))
            del self.log[logged:]
            self.quarantined, self._ids = quarantined, ids
            raise
        finally:
            self._depth -= 1

    def sealed(self) -> bool:
        return False  # nothing is stored: nothing to seal

    def suppression_active(self) -> bool:
        return False  # nothing is erased in memory (SPEC §6 erasure needs a store's keys)

    def suppressed(self, customers: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        return set()

    def tenants(self) -> list[str]:
        return sorted({tenant for tenant, _ in self.streams})

    def stream(self, moment_id: str, tenant: str | None = None) -> list[LedgerEvent]:
        found = [events for (in_tenant, stream_id), events in self.streams.items()
                 if stream_id == moment_id and tenant in (None, in_tenant)]
        if len(found) > 1:
            from mot.domain.ledger import AmbiguousMoment

            raise AmbiguousMoment(moment_id)
        return list(found[0]) if found else []

    def current_moments(self, tenant: str, moment_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current content of these moments of `tenant` (`MomentDocuments`)."""
        from mot.domain.events import as_dict
        from mot.domain.ledger import replay_stream

        out = {}
        for moment_id in moment_ids:
            stream = replay_stream(self.streams.get((tenant, moment_id), []))
            if stream is not None and not stream.retracted:
                out[moment_id] = as_dict(stream.current)
        return out

    def link_events(self, tenant: str, pairs: Collection[tuple[str, str]]
                    ) -> dict[tuple[str, str], list[LinkEvent]]:
        from mot.domain.events import CustomersLinked, CustomersUnlinked

        out: dict[tuple[str, str], list[LinkEvent]] = {}
        for event in self.log:
            if isinstance(event, CustomersLinked | CustomersUnlinked) and event.tenant == tenant \
                    and event.customer_ids in pairs:
                out.setdefault(event.customer_ids, []).append(event)
        return out

    def link_events_upto(self, upto: int, part: tuple[int, int] = (0, 1)) -> list[LinkEvent]:
        from mot.domain.events import CustomersLinked, CustomersUnlinked

        return [e for position, e in enumerate(self.log[:upto], 1)
                if isinstance(e, CustomersLinked | CustomersUnlinked)
                and position % part[1] == part[0]]

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        return [(after + n + 1, e) for n, e in enumerate(self.log[after:after + limit])]

    def head(self) -> int:
        return len(self.log)

    def count(self, upto: int) -> int:
        """Events at positions up to `upto` (positions here have no gaps)."""
        return min(max(upto, 0), len(self.log))

    def quarantine(self, *, limit: int | None = None, ids: Collection[int] | None = None,
                   field: str | None = None, reason: str | None = None) -> list[Quarantined]:
        """As the SQL ledger: a message rejected for several fields names the others in its
        reason ("channel: ...; kind: ..."); `reason` matches any case."""
        entries = sorted(self.quarantined.values(), key=lambda q: q.id)
        if ids is not None:
            entries = [q for q in entries if q.id in ids]
        if field is not None:
            part = field + ": "
            entries = [q for q in entries if q.field == field or q.reason.startswith(part)
                       or "; " + part in q.reason]
        if reason is not None:
            entries = [q for q in entries if reason.lower() in q.reason.lower()]
        return entries[:limit] if limit is not None else entries

    def quarantine_reasons(self) -> list[tuple[str, str, int, int]]:
        groups: dict[tuple[str, str], list[int]] = {}
        for q in self.quarantined.values():
            groups.setdefault((q.field, q.reason), []).append(q.id)
        return sorted(((f, r, len(ids), min(ids)) for (f, r), ids in groups.items()),
                      key=itemgetter(3))

    def quarantine_by_tenant(self) -> dict[str | None, int]:
        from collections import Counter

        from mot.domain.quarantine import erased_with

        return dict(Counter(erased_with(q.message, q.names, q.origin)
                            for q in self.quarantined.values()))

    def quarantine_count(self) -> int:
        return len(self.quarantined)

    def drop_quarantined(self, ids: Collection[int]) -> int:
        gone = [digest for digest, q in self.quarantined.items() if q.id in ids]
        for digest in gone:
            del self.quarantined[digest]
        return len(gone)

    def set_quarantined_payload(self, quarantine_id: int, payload: bytes,
                                field: str | None = None, reason: str | None = None) -> int:
        """As the SQL ledger: an entry whose new payload another entry already holds merges
        into that one (repeats added up). Returns the id that holds the payload."""
        import hashlib

        digest = self._digest_of(quarantine_id)
        if digest is None:
            return quarantine_id
        entry = self.quarantined.pop(digest)
        new_digest = hashlib.sha256(payload).hexdigest()
        other = self.quarantined.get(new_digest)
        now = _now()
        if other is None:
            self.quarantined[new_digest] = replace(
                entry, payload=payload, field=entry.field if field is None else field,
                reason=entry.reason if reason is None else reason, last_seen=now)
            return quarantine_id
        self.quarantined[new_digest] = replace(
            other, repeats=other.repeats + entry.repeats,
            field=other.field if field is None else field,
            reason=other.reason if reason is None else reason, last_seen=now)
        return other.id

    def _digest_of(self, quarantine_id: int) -> str | None:
        return next((digest for digest, q in self.quarantined.items() if q.id == quarantine_id),
                    None)

    def close(self) -> None:
        pass


def _reasons(known: Quarantined, again: Rejected) -> str:
    """A repeat's reason, as the SQL ledger's: bytes no source could read (field '') keep
    each reader's reason once, the first one's first; otherwise the latest."""
    if known.field or again.field:
        return again.reason
    if not again.reason or again.reason in known.reason:
        return known.reason
    return f"{known.reason}; {again.reason}"


def _now() -> str:
    return format_utc(datetime.now(UTC))


def _take_back(streams: dict[Any, list[StreamEvent]], key: Any) -> None:
    """Remove the last event of a stream (a rolled-back append), and the stream if now empty."""
    streams[key].pop()
    if not streams[key]:
        del streams[key]


# -- the projections ------------------------------------------------------------------------


@dataclass
class _Tables:
    """One set of projection tables (the live ones, or a rebuild's)."""

    checkpoint: Checkpoint = field(
        default_factory=lambda: Checkpoint(0, RebuildPhase.LIVE, None))
    target: int | None = None
    started: bool = False
    moments: dict[MomentKey, Current] = field(default_factory=dict)
    relationships: dict[CustomerKey, tuple[Any, int]] = field(default_factory=dict)
    reciprocity: dict[CustomerKey, tuple[Any, int]] = field(default_factory=dict)
    transitions: dict[CustomerKey, tuple[list[Any], int]] = field(default_factory=dict)
    amplifications: dict[MomentKey, tuple[Any, int]] = field(default_factory=dict)
    teams: dict[tuple[str, str], tuple[Any, int]] = field(default_factory=dict)
    listening: dict[str, tuple[Any, int]] = field(default_factory=dict)
    share_roots: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    tombstones: dict[tuple[str, str], int] = field(default_factory=dict)
    responses: dict[MomentKey, tuple[Any, int]] = field(default_factory=dict)
    persons: dict[CustomerKey, tuple[Any, int]] = field(default_factory=dict)
    links: dict[Pair, Precedence] = field(default_factory=dict)
    members: dict[CustomerKey, tuple[str, int]] = field(default_factory=dict)  # id -> group, degree

    def copy(self) -> _Tables:
        # The values are immutable: copies of the dicts are a snapshot.
        return _Tables(self.checkpoint, self.target, self.started, dict(self.moments),
                       dict(self.relationships), dict(self.reciprocity), dict(self.transitions),
                       dict(self.amplifications), dict(self.teams), dict(self.listening),
                       dict(self.share_roots), dict(self.tombstones), dict(self.responses),
                       dict(self.persons), dict(self.links), dict(self.members))

    def group_of(self, m: Current) -> CustomerKey:
        """The (tenant, group) a current moment is kept under."""
        linked = self.members.get((m.tenant, m.customer_id))
        return (m.tenant, m.customer_id if linked is None else linked[0])


class MemoryProjectionStore:
    """The projections in memory (`ProjectionStore`); `log` is the ledger it projects, which a
    rebuild reads its moments from."""

    def __init__(self, log: MemoryLedger) -> None:
        self.log = log
        self.tables = {LIVE: _Tables(), REBUILD: _Tables()}
        self._lock = threading.Lock()
        # One outbox for the live and rebuild tables; the overdue check reads the live requests.
        self.alerts = MemoryAlertOutbox(self._open_requests, self._moment_url)

    def _moment_url(self, tenant: str, moment_id: str) -> str | None:
        url = self.log.current_moments(tenant, [moment_id]).get(moment_id, {}).get("url")
        return url if isinstance(url, str) else None

    def _open_requests(self) -> list[OpenRequest]:
        tables = self.tables[LIVE]
        return [OpenRequest(r.tenant, r.request_moment_id, r.customer_id, r.kind, r.channel,
                            r.function, r.occurred_us,
                            getattr(tables.moments.get((r.tenant, r.request_moment_id)), "actor", None))
                for r, _ in getattr(tables, "responses", {}).values() if r.is_open]

    @contextmanager
    def session(self, name: str = LIVE) -> Iterator[MemorySession]:
        with self._lock:
            work = self.tables[name].copy()
            session = MemorySession(work, self.log)
            yield session
            self.tables[name] = work  # committed only when the block ends without an error
            self.alerts.raise_alerts(session.raised)

    @contextmanager
    def reader(self, as_of_us: int | None = None, *, name: str = LIVE
               ) -> Iterator[MemorySession]:
        yield MemorySession(self.tables[name].copy(), self.log, as_of_us, walk=True)

    def start_rebuild(self, target: int, now: str) -> None:
        self.tables[REBUILD] = _Tables(Checkpoint(0, RebuildPhase.MOMENTS, None), target, True)

    def index_rebuild(self, tables: Literal["moments", "folded"]) -> None:
        pass  # dicts need no index

    def rebuild_lock(self, waiting: Callable[[], None] | None = None) -> Any:
        return nullcontext()

    @property
    def staging(self) -> None:
        """None: no other process can open a store in this one's memory to stage moments."""
        return None

    def drop_stages(self) -> None:
        pass

    def swap(self, now: str) -> None:
        with self._lock:
            rebuilt = self.tables[REBUILD]
            rebuilt.checkpoint = Checkpoint(rebuilt.checkpoint.position, RebuildPhase.LIVE, None)
            rebuilt.target, rebuilt.started = None, False
            self.tables[LIVE], self.tables[REBUILD] = rebuilt, _Tables()

    def state(self, name: str = LIVE) -> ProjectionState | None:
        tables = self.tables[name]
        if name == REBUILD and not tables.started:
            return None
        if name == LIVE and tables.checkpoint.position == 0:
            return None
        return ProjectionState(tables.checkpoint.position, tables.checkpoint.phase, tables.target)

    def progress_time(self, name: str = LIVE) -> str | None:
        # Held for one process's fold (mot verify, tests): no follower's progress to report.
        return None

    def read_view(self, read: ViewRead) -> list[dict[str, Any]]:
        projection = PROJECTIONS[read.name]
        tables = self.tables[LIVE]
        rows = [dict(zip(projection.columns, row, strict=True))
                for row in _stored_rows(projection, tables)]
        rows = [r for r in rows if all(r[c] == v for c, v in read.equals.items())
                and all(r[c] is None for c in read.null)]
        rows = [r for r in rows if all(r[c] >= v for c, v in read.at_least.items())]
        if read.customers is not None:
            rows = [r for r in rows if (r["tenant"], r["customer_id"]) in read.customers]
        if read.since_us is not None:
            rows = [r for r in rows if r[str(projection.time)] >= read.since_us]
        if read.until_us is not None:
            rows = [r for r in rows if r[str(projection.time)] <= read.until_us]
        for column in reversed(projection.default_order):
            rows.sort(key=itemgetter(column))
        for column, descending in reversed(read.order):
            rows.sort(key=partial(_nulls_first, column), reverse=descending)
        if read.limit is not None:
            rows = rows[:read.limit]
        decode = stored_decoder(projection.read_fields)
        return [decode({f.name: r[f.col] for f in projection.read_fields}) for r in rows]

    def one_read(self) -> AbstractContextManager[None]:
        return nullcontext()  # one process's tables: every read sees them as they are

    def persons_of(self, customer: str, tenant: str | None = None
                   ) -> list[tuple[CustomerKey, str]]:
        tables = self.tables[LIVE]
        return sorted(((t, row.customer_id), row.group_id)
                      for (t, _), (row, _) in tables.persons.items()
                      if tenant in (None, t)
                      and row.group_id == tables.members.get((t, customer), (customer,))[0])


def _nulls_first(column: str, row: dict[str, Any]) -> tuple[bool, Any]:
    """A sort key that orders NULLs first ascending, as SQLite does."""
    value = row[column]
    return (value is not None, value if value is not None else 0)


def _stored_rows(projection: Projection, tables: _Tables) -> list[tuple[Any, ...]]:
    """A projection's rows as its table holds them (the columns of its declaration)."""
    make = row_maker(projection)
    held: Mapping[Any, tuple[Any, int]] = getattr(tables, projection.name)
    if projection.name == "transitions":
        return [(*make(t, seq), version) for transitions, version in held.values()
                for seq, t in enumerate(transitions)]
    return [(*make(value), version) for value, version in held.values()]


class MemorySession:
    """One transaction of projection work on a set of tables in memory (`ProjectionSession`)."""

    def __init__(self, tables: _Tables, log: MemoryLedger, as_of_us: int | None = None, *,
                 walk: bool = False) -> None:
        self.t = tables
        self.log = log
        self.as_of_us = as_of_us
        self.walk = walk
        self.raised: list[Alert] = []  # put into the store's outbox when the session commits

    def raise_alerts(self, alerts: Sequence[Alert]) -> None:
        self.raised.extend(alerts)

    def _current(self) -> Iterable[Current]:
        if self.as_of_us is None:
            return self.t.moments.values()
        return (m for m in self.t.moments.values() if m.occurred_us <= self.as_of_us)

    # -- position
    def progress(self) -> Checkpoint:
        return self.t.checkpoint

    def save_progress(self, position: int, phase: RebuildPhase, cursor: CustomerKey | None,
                      now: str) -> None:
        self.t.checkpoint = Checkpoint(position, phase, cursor)

    # -- current moments
    def moments_by_key(self, keys: Collection[MomentKey]) -> dict[MomentKey, Current]:
        return {(m.tenant, m.moment_id): m for m in self._current()
                if (m.tenant, m.moment_id) in keys}

    def children(self, parents: Collection[MomentKey]) -> list[Current]:
        return [m for m in self._current()
                if m.kind == "share" and (m.tenant, m.shares) in parents]

    def amplifications_replying_to(self, keys: Collection[MomentKey]) -> list[Current]:
        return [m for m in self._current() if (m.tenant, m.in_reply_to) in keys
                and m.direction == "public" and m.kind in AMPLIFYING_KINDS]

    def cascades(self, posts: Sequence[Current]) -> dict[str, Cascade]:
        if self.walk:
            from mot.projections.folding import walk_cascades

            return walk_cascades(self.children, posts)
        out = {}
        for post in posts:
            reaches = [reach for (tenant, _), (root, reach) in self.t.share_roots.items()
                       if root == post.moment_id and tenant == post.tenant]
            out[post.moment_id] = Cascade(len(reaches), capped_reach(post.reach + sum(reaches)))
        return out

    def write_moments(self, rows: Sequence[tuple[Current, dict[str, Any], int]],
                      deletes: Collection[MomentKey], *,
                      existing: Collection[MomentKey],
                      groups: Mapping[CustomerKey, str] = {}) -> None:
        # A moment's group is looked up when read (`_Tables.group_of`): nothing to keep here.
        for current, _, _ in rows:
            self.t.moments[(current.tenant, current.moment_id)] = current
        for key in deletes:
            self.t.moments.pop(key, None)

    def load_moments(self, after: int, upto: int, as_of: int) -> int:
        """Each moment whose latest event at or before `as_of` lies in (after, upto] and does not
        retract it, as of then."""
        from mot.domain.events import (
            CustomersLinked,
            CustomersUnlinked,
            MomentRetracted,
            PersonErased,
            as_dict,
        )

        latest: dict[MomentKey, tuple[int, MomentEvent]] = {}
        for position, event in self.log.notifications(0, as_of):
            if isinstance(event, CustomersLinked | CustomersUnlinked | PersonErased):
                continue  # a pair's event or an erasure: not a moment
            latest[(event.tenant, event.moment_id)] = (position, event)
        copied = 0
        for key, (position, event) in latest.items():
            if after < position <= upto and not isinstance(event, MomentRetracted):
                self.t.moments[key] = current_of(as_dict(event.moment))
                copied += 1
        return copied

    def customer_moments(self, keys: Collection[CustomerKey]) -> dict[CustomerKey, list[Current]]:
        out: dict[CustomerKey, list[Current]] = {key: [] for key in keys}
        group_of = self.t.group_of
        for m in self._current():
            group = group_of(m)
            if group in out:
                out[group].append(m)
        for moments in out.values():
            moments.sort(key=lambda m: m.fold_key)
        return out

    def customer_range(self, first: CustomerKey, last: CustomerKey
                       ) -> dict[CustomerKey, list[Current]]:
        keys = {group for group in map(self.t.group_of, self._current())
                if first <= group <= last}
        return self.customer_moments(sorted(keys))

    def customers_after(self, cursor: CustomerKey | None, limit: int, *,
                        tenant: str | None = None,
                        customer: str | None = None) -> list[CustomerKey]:
        keys = {group for group in map(self.t.group_of, self._current())
                if (cursor is None or group > cursor)
                and tenant in (None, group[0]) and customer in (None, group[1])}
        return sorted(keys)[:limit]

    # -- persons
    def groups(self, ids: Collection[CustomerKey]) -> dict[CustomerKey, str]:
        return {key: self.t.members[key][0] for key in ids if key in self.t.members}

    def members(self, groups: Collection[CustomerKey]) -> dict[CustomerKey, list[Member]]:
        wanted = set(groups)
        out: dict[CustomerKey, list[Member]] = {}
        for (tenant, customer), (group, degree) in self.t.members.items():
            if (tenant, group) in wanted:
                out.setdefault((tenant, group), []).append((customer, degree))
        return {key: sorted(ids) for key, ids in out.items()}

    def pair_states(self, pairs: Collection[Pair]) -> dict[Pair, Precedence]:
        return {pair: self.t.links[pair] for pair in pairs if pair in self.t.links}

    def save_pair_states(self, states: Mapping[Pair, Precedence]) -> None:
        self.t.links.update(states)

    def linked_pairs(self, tenant: str, ids: Collection[str], *, unlinked: bool = False
                     ) -> list[tuple[str, str]]:
        return sorted((low, high) for (t, low, high), (_, unlink) in self.t.links.items()
                      if t == tenant and (unlinked or not unlink) and (low in ids or high in ids))

    def regroup(self, tenant: str, new: Mapping[str, tuple[str, int] | None],
                old: Mapping[str, str]) -> None:
        for customer, group in new.items():
            if group is None:
                self.t.members.pop((tenant, customer), None)
            else:
                self.t.members[(tenant, customer)] = group

    def load_links(self, states: Mapping[Pair, Precedence]) -> int:
        from mot.projections.persons import groups

        self.t.links = dict(states)
        self.t.members = {}
        for tenant in {tenant for tenant, _, _ in states}:
            linked = [(low, high) for (t, low, high), (_, unlink) in states.items()
                      if t == tenant and not unlink]
            for customer, group in groups(linked).items():
                self.t.members[(tenant, customer)] = group
        return len(states)

    # -- customers' projections
    def replace_customers(self, folded: Mapping[CustomerKey, CustomerProjections],
                          gone: Collection[CustomerKey], version: int) -> list[Amplification]:
        t = self.t
        for key, f in folded.items():
            for table, value in (("relationships", f.relationship),
                                 ("reciprocity", f.reciprocity),
                                 ("transitions", f.transitions),
                                 ("persons", f.person)):
                held = getattr(t, table)
                if key not in held or held[key][0] != value:
                    held[key] = (value, version)
                if table != "transitions":
                    t.tombstones.pop((table, "/".join(key)), None)
        old_amps = _replace_keyed(t, "amplifications", version, folded, gone,
                                  {(a.tenant, a.amplification_id): a
                                   for f in folded.values() for a in f.amplifications})
        _replace_keyed(t, "responses", version, folded, gone,
                       {(r.tenant, r.request_moment_id): r
                        for f in folded.values() for r in f.responses})
        for key in gone:
            t.transitions.pop(key, None)
            for table in ("relationships", "reciprocity", "persons"):
                if getattr(t, table).pop(key, None) is not None:
                    t.tombstones[(table, "/".join(key))] = version
        return old_amps

    def encode_customers(self, folded: Iterable[CustomerProjections],
                         version: int) -> list[tuple[CustomerProjections, int]]:
        return [(f, version) for f in folded]

    def add_customers(self, encoded: list[tuple[CustomerProjections, int]]) -> None:
        for f, version in encoded:
            key = (f.relationship.tenant, f.relationship.customer_id)
            self.t.relationships[key] = (f.relationship, version)
            self.t.reciprocity[key] = (f.reciprocity, version)
            self.t.transitions[key] = (f.transitions, version)
            self.t.persons[key] = (f.person, version)
            for a in f.amplifications:
                self.t.amplifications[(a.tenant, a.amplification_id)] = (a, version)
            for r in f.responses:
                self.t.responses[(r.tenant, r.request_moment_id)] = (r, version)

    # -- share roots
    def share_roots(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return {key: self.t.share_roots[key][0] for key in keys if key in self.t.share_roots}

    def save_share_roots(self, roots: Iterable[tuple[Current, str]],
                         removed: Iterable[tuple[str, str]]) -> None:
        for share, root in roots:
            self.t.share_roots[(share.tenant, share.moment_id)] = (root, share.reach)
        for key in removed:
            self.t.share_roots.pop(key, None)

    # -- per-tenant sums
    def team_sums(self, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], TeamRow]:
        return {key: self.t.teams[key][0] for key in keys if key in self.t.teams}

    def save_team_sums(self, rows: Iterable[TeamRow], removed: Iterable[tuple[str, str]],
                       version: int) -> None:
        for row in rows:
            self.t.teams[(row.tenant, row.function)] = (row, version)
        for key in removed:
            self.t.teams.pop(key, None)

    def listening_sums(self, tenants: Collection[str]) -> dict[str, ListeningRow]:
        return {t: self.t.listening[t][0] for t in tenants if t in self.t.listening}

    def save_listening_sums(self, rows: Iterable[ListeningRow], removed: Iterable[str],
                            version: int) -> None:
        for row in rows:
            self.t.listening[row.tenant] = (row, version)
        for tenant in removed:
            self.t.listening.pop(tenant, None)


def _replace_keyed(t: _Tables, table: str, version: int,
                   folded: Mapping[CustomerKey, Any], gone: Collection[CustomerKey],
                   new: dict[MomentKey, Any]) -> list[Any]:
    """A table of customers' values keyed (tenant, moment id): the changed ones stored, those
    of these customers no longer there deleted (leaving tombstones for the changelog); the old
    values."""
    held: dict[MomentKey, tuple[Any, int]] = getattr(t, table)
    old = {key: value for key, (value, _) in held.items()
           if (value.tenant, value.customer_id) in folded
           or (value.tenant, value.customer_id) in gone}
    for key, value in new.items():
        if key not in held or held[key][0] != value:
            held[key] = (value, version)
        t.tombstones.pop((table, f"{key[0]}/{key[1]}"), None)
    for key in old.keys() - new.keys():
        del held[key]
        t.tombstones[(table, f"{key[0]}/{key[1]}")] = version
    return list(old.values())


if TYPE_CHECKING:  # the ports these implement, checked by mypy
    from mot.projections.ports import NotificationLog, ProjectionStore
    from mot.service.ports import LedgerStore

    _log: NotificationLog = MemoryLedger()
    _ledger: LedgerStore = MemoryLedger()
    _projections: ProjectionStore = MemoryProjectionStore(MemoryLedger())
