"""The projection engine: pages of the notification log in, projection rows out, exactly once.

Each page is one transaction: the engine reads its position, the next page of
ledger events, brings the current-moments table up to date, works out which
customers the page touched (directly, through a share cascade, or through an
`in_reply_to`), refolds only those with the pure functions of this package,
writes the rows that changed, and saves its new position. A crash anywhere
rolls the page back whole; the next run does it again.

A rebuild fills fresh tables in three phases: every current moment once,
read at its latest event (plain inserts, indexed afterwards), then every
customer once in key order (folded, and counted into the per-tenant sums),
then the pages that arrived meanwhile, as incrementally; `swap` puts the
tables in place.

Versions: a row written while applying the page ending at ledger position P
carries version P, and is only written when its content changed, so versions
grow on every change and a page applied again after a crash gives the same
versions. A rebuild stamps its rows with the position it was built up to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mot.domain.events import (
    CustomersLinked,
    CustomersUnlinked,
    LedgerEvent,
    LinkEvent,
    MomentRetracted,
    PersonErased,
    as_dict,
)
from mot.domain.links import LinkType, PairEvidence, pair_of
from mot.domain.timefmt import format_utc, parse_utc, to_micros, utc_now
from mot.projections.alerts import Alert, AlertPolicy, customer_causes, raise_alerts
from mot.projections.amplification import (
    Amplification,
    is_amplification,
)
from mot.projections.folding import NO_MEMBERS, CustomerProjections, project_customers
from mot.projections.model import Current, CustomerKey, MomentKey, current_of
from mot.projections.persons import Member, PersonLimits, groups
from mot.projections.ports import (
    LIVE,
    REBUILD,
    EncodedCustomers,
    ErasedDuringRebuild,
    FoldReader,
    NotificationLog,
    Pair,
    Precedence,
    ProjectionSession,
    ProjectionStore,
    RangeReader,
    RebuildPhase,
    StagedRange,
)
from mot.projections.teams import (
    ListeningRow,
    TeamRow,
    amplification_contribution,
    contribution_groups,
    count_listening,
    moment_contribution,
)

BULK_POSITIONS = 100_000  # ledger positions a rebuild loads per transaction

Progress = Callable[[str, int, int], None]
"""(phase, done, total)"""

CustomerRange = tuple[CustomerKey, CustomerKey]
"""The customers from the first key to the last, in key order."""


@dataclass(frozen=True, slots=True)
class FoldedRange:
    """A rebuild's projections of a range of customers, and what they add to the per-tenant sums.

    Plain values: it may come back from a worker process, which has the store encode
    the customers' rows (`RangeReader.encode_customers`) while it folds them.
    """

    last: CustomerKey
    customers: int  # how many were folded
    rows: EncodedCustomers
    teams: dict[tuple[str, str], list[int]]
    listening: dict[str, list[int]]
    shares: list[tuple[Current, str]]  # each share of the range's posts' cascades, its root
    alerts: list[Alert] = field(default_factory=list)  # the fresh alerts the range raises


RangeFolder = Callable[[Iterable[CustomerRange], int], Iterable[FoldedRange]]
"""Folds ranges of the rebuild's customers at a version, results in order: `Engine.fold_ranges`
in this process, or the same work spread over worker processes."""

PositionRange = tuple[int, int]
"""The ledger positions after the first, up to and including the second."""

MomentStager = Callable[[Iterable[PositionRange], int], Iterable[StagedRange]]
"""Stages the moments of ranges of the log as of a position (`ProjectionStore.stage_moments`),
stages in order: the rebuild's worker processes extract several ranges at once, and may start
when it is called, before the first stage is asked for."""


LinkReader = Callable[[int], Iterable[LinkEvent]]
"""The link events up to a position (`NotificationLog.link_events_upto`), read when iterated or,
by worker processes, from the call on: a rebuild asks for them before it starts the stager."""


class RebuildInterrupted(RuntimeError):
    """A rebuild found its tables other than it left them; what it committed stays."""


@dataclass(slots=True)
class Deltas:
    """Changes to the per-tenant sums (team scoreboard, listening) made by one transaction.

    Plain lists of counters rather than `TeamTotals`' frozen rows: this runs
    once per moment on the projection's hot path.
    """

    teams: dict[tuple[str, str], list[int]]  # (tenant, function) -> the 7 team counters
    listening: dict[str, list[int]]  # tenant -> [moments, L, M]

    @classmethod
    def empty(cls) -> Deltas:
        return cls(defaultdict(lambda: [0] * 7), defaultdict(lambda: [0, 0, 0]))

    def move_moment(self, m: Current, times: int) -> None:
        """Add what `m` contributes `times` times (-1: take it away)."""
        self._add(moment_contribution(m), times)
        count_listening(self.listening[m.tenant], m, times)

    def add_moments(self, moments: Iterable[Current]) -> None:
        """`move_moment(m, 1)` for each of many moments, counted per contribution group."""
        for m, count in contribution_groups(moments):
            self.move_moment(m, count)

    def move_amplification(self, a: Amplification, times: int) -> None:
        self._add(amplification_contribution(a), times)

    def _add(self, d: TeamRow | None, times: int) -> None:
        if d is None:
            return
        row = self.teams[(d.tenant, d.function)]
        for i, value in enumerate(d.counters()):
            row[i] += times * value


# A rebuild folds its customers this many to a range. What a process holds at once is a range
# or a few: a fold worker one range's moments and rows, the main process the folded ranges it
# received ahead of its writes. So the rebuild's peak memory follows the range's size, and with
# 2,000 it also grew with the store (more ranges, fuller caches and heaps); each range costs a
# transaction of the main process, more of them did not show in its CPU (bench/NOTES.md,
# "SQLite catch-up and rebuild RSS").
CUSTOMERS_PER_RANGE = 500


class Engine:
    """Keeps the projection tables equal to a fold of the ledger's current moments."""

    def __init__(self, store: ProjectionStore, log: NotificationLog, *, page_size: int = 1000,
                 customers_per_chunk: int = CUSTOMERS_PER_RANGE, positions_per_load: int | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 alerts: AlertPolicy | None = None, persons: PersonLimits | None = None) -> None:
        self.store = store
        self.alerts = alerts or AlertPolicy()
        self.person_limits = persons or PersonLimits()
        self.log = log
        self.page_size = page_size
        self.customers_per_chunk = customers_per_chunk
        self.positions_per_load = positions_per_load  # None: BULK_POSITIONS
        self.clock = clock

    # -- incremental -----------------------------------------------------------------
    def catch_up(self, name: str = LIVE, progress: Progress | None = None, *,
                 page_size: int | None = None) -> int:
        """Apply pages until the projection has reached the ledger's head as it was when this
        began; return events applied. Not the head as it moves: while writers keep recording
        as fast as pages are applied, chasing it never ended (an erasure, which catches up
        first, went unanswered under a steady HTTP ingest); what they add meanwhile is the
        next catch-up's."""
        page_size = page_size or self.page_size
        applied = 0
        target = self.log.head()
        while True:
            with self.store.session(name) as session:
                position, _, _ = session.progress()
                events = self.log.notifications(position, page_size)
                if not events:
                    return applied
                self.apply_page(session, events)
                phase = RebuildPhase.LIVE if name == LIVE else RebuildPhase.CATCHUP
                session.save_progress(events[-1][0], phase, None, self._now())
            applied += len(events)
            if progress is not None:
                progress("catch-up", events[-1][0], max(target, events[-1][0]))
            if events[-1][0] >= target:
                return applied

    def apply_page(self, session: ProjectionSession,
                   events: Sequence[tuple[int, LedgerEvent | LinkEvent]]) -> None:
        """Apply one page of ledger events: links, moments, then the persons they touched."""
        version = events[-1][0]
        deltas = Deltas.empty()
        links = [e for _, e in events if isinstance(e, CustomersLinked | CustomersUnlinked)]
        keys = self._apply_links(session, links) if links else set()
        moments: list[tuple[int, LedgerEvent]] = [  # an erasure (PersonErased) changes no row
            (p, e) for p, e in events
            if not isinstance(e, CustomersLinked | CustomersUnlinked | PersonErased)]
        if moments:
            keys |= self._apply_moments(session, moments, version, deltas)
        self.refold(session, keys, version, deltas)

    def _apply_links(self, session: ProjectionSession, links: Sequence[LinkEvent]
                     ) -> set[CustomerKey]:
        """Keep each pair's latest evidence; where a pair's state flipped, work out the persons
        of the ids concerned again (SPEC §2). Returns every id whose person may have changed:
        all the ids of the persons before and after."""
        latest = pair_states(links)
        stored = session.pair_states(list(latest))
        changed = {pair: p for pair, p in latest.items()
                   if pair not in stored or p > stored[pair]}
        if not changed:
            return set()
        session.save_pair_states(changed)
        starts: dict[str, set[str]] = defaultdict(set)
        for pair, p in changed.items():
            if _linked(p) != _linked(stored.get(pair)):
                starts[pair[0]] |= {pair[1], pair[2]}
        covered: set[CustomerKey] = set()
        for tenant, start in starts.items():
            # Every id of the components the flipped pairs' ids are in now: a merge's whole
            # new person, a split's every part (which together were the old person).
            seen, frontier, pairs = set(start), set(start), set()
            while frontier:
                found = session.linked_pairs(tenant, frontier)
                pairs.update(found)
                frontier = {i for pair in found for i in pair} - seen
                seen |= frontier
            old = session.groups([(tenant, i) for i in seen])
            new = groups(pairs)
            session.regroup(tenant, {i: new.get(i) for i in seen},
                            {i: old.get((tenant, i), i) for i in seen})
            covered |= {(tenant, i) for i in seen}
        return covered

    def _apply_moments(self, session: ProjectionSession, events: Sequence[tuple[int, LedgerEvent]],
                       version: int, deltas: Deltas) -> set[CustomerKey]:
        """Bring the current-moments table up to date; return the customers to refold.

        Moments are named by (tenant, moment id): the same id in two tenants is two moments.
        """
        touched: dict[MomentKey, tuple[Current, dict[str, Any]] | None] = {}
        keys: set[CustomerKey] = set()
        corrected: list[MomentKey] = []
        for _, event in events:
            if isinstance(event, CustomersLinked | CustomersUnlinked | PersonErased):
                continue  # links are not folded yet (the persons work replaces this guard)
            key = (event.tenant, event.moment_id)
            if isinstance(event, MomentRetracted):
                touched[key] = None
                keys.add((event.tenant, event.customer_id))
            else:
                moment = as_dict(event.moment)
                touched[key] = (current_of(moment), moment)
            if event.version > 1:
                corrected.append(key)
        # A moment's first event (version 1) has no earlier row to replace: only the
        # amended and retracted moments are looked up.
        old = session.moments_by_key(corrected) if corrected else {}
        for key, new in touched.items():
            before = old.get(key)
            if before is not None:
                deltas.move_moment(before, -1)
                keys.add((before.tenant, before.customer_id))
            if new is not None:
                deltas.move_moment(new[0], 1)
                keys.add((new[0].tenant, new[0].customer_id))
        written = [(new[0], new[1], version) for new in touched.values() if new is not None]
        session.write_moments(
            written,
            [key for key, new in touched.items() if new is None and key in old],
            existing=old.keys(),
            groups=session.groups({(c.tenant, c.customer_id) for c, _, _ in written}),
        )
        fresh = [new[0] for new in touched.values() if new is not None]
        keys |= self._reroot(session, old.values(), fresh)
        private = [
            key for key, new in touched.items()
            if (new is not None and new[0].direction != "public")
            or (key in old and old[key].direction != "public")
        ]
        if private:
            keys |= {(m.tenant, m.customer_id)
                     for m in session.amplifications_replying_to(private)}
        return keys

    def _reroot(self, session: ProjectionSession, old: Iterable[Current],
                fresh: Sequence[Current]) -> set[CustomerKey]:
        """Keep each share's root (the amplification moment its chain leads up to) true after
        a page changed moments (`old`: as they were, `fresh`: as they now are); return the
        customers whose posts' cascades changed.

        A share appended to a chain takes its parent's root: the work per event does
        not grow with the chain's depth. Only a change that can move a chain (a share,
        post, review or mention amended, retracted or arriving late, with shares
        below it) re-roots what hangs below it.
        """
        moved = {(m.tenant, m.moment_id) for m in (*old, *fresh)
                 if m.kind == "share" or is_amplification(m)}
        if not moved:
            return set()
        # The current shares the changes may have re-rooted: those changed, and all below.
        below = {(m.tenant, m.moment_id): m for m in fresh if m.kind == "share"}
        frontier = set(moved)
        while frontier:
            found = [m for m in session.children(frontier)
                     if (m.tenant, m.moment_id) not in below]
            below |= {(m.tenant, m.moment_id): m for m in found}
            frontier = {(m.tenant, m.moment_id) for m in found}
        before = session.share_roots(moved | set(below))
        roots = _share_roots(below, session)
        session.save_share_roots([(below[key], root) for key, root in roots.items()],
                                 [key for key in before if key not in roots])
        posts = session.moments_by_key({(tenant, root) for (tenant, _), root
                                        in (*before.items(), *roots.items())})
        return {(post.tenant, post.customer_id) for post in posts.values()}

    # -- refolding -----------------------------------------------------------------------
    def refold(self, session: ProjectionSession, keys: Collection[CustomerKey], version: int,
               deltas: Deltas) -> None:
        """Fold again the persons of the given customer ids and write what changed, then the
        per-tenant sums.

        A person's rows are keyed by its person_id, which is one of its ids: the rows of any
        of the ids concerned that is no person_id any more are deleted.
        """
        if keys:
            linked = session.groups(keys)
            group_keys = {(t, linked.get((t, c), c)) for t, c in keys}
            members = session.members(group_keys)
            moments = session.customer_moments(group_keys)
            folded = self.fold(session, moments, members)
            candidates = {*keys, *group_keys,
                          *((t, i) for (t, _), ids in members.items() for i, _ in ids)}
            self._write_customers(session, candidates, folded, version, deltas)
            session.raise_alerts(self.alerts_of(moments, folded))
        self._write_sums(session, deltas, version)

    def fold(self, session: FoldReader, moments: dict[CustomerKey, list[Current]],
             members: Mapping[CustomerKey, Sequence[Member]] = NO_MEMBERS,
             ) -> dict[CustomerKey, CustomerProjections]:
        """The projections of each person (keyed by group), from their moments and what their
        posts reach."""
        return project_customers(session, moments, members, self.person_limits)

    def alerts_of(self, moments: dict[CustomerKey, list[Current]],
                  folded: Mapping[CustomerKey, CustomerProjections]) -> list[Alert]:
        """The fresh alerts (SPEC §3.6) of persons just folded (both keyed by group); the
        outbox keeps each once."""
        now = to_micros(self.clock())
        alerts: list[Alert] = []
        for key, f in folded.items():
            tenant, person = f.key
            causes = customer_causes(tenant, person, f.relationship.last_moment_us,
                                     f.transitions, f.amplifications, f.stop_asks, self.alerts,
                                     now)
            if causes:
                named = {c.moment_id for c in causes}
                alerts += raise_alerts(
                    causes, {m.moment_id: m for m in moments.get(key, ()) if m.moment_id in named},
                    {person: f.person.customer_ids}, now)
        return alerts

    def _write_customers(self, session: ProjectionSession, candidates: Collection[CustomerKey],
                         folded: dict[CustomerKey, CustomerProjections],
                         version: int, deltas: Deltas) -> None:
        """Store the persons' projections under their person_id (the store writes what
        changed), delete the rows of the `candidates` that are no person's key any more, and
        move the amplifications' contributions to the team sums from the old ones to the new."""
        by_key = {f.key: f for f in folded.values()}
        gone = [key for key in candidates if key not in by_key]
        for amplification in session.replace_customers(by_key, gone, version):
            deltas.move_amplification(amplification, -1)
        for f in by_key.values():
            for amplification in f.amplifications:
                deltas.move_amplification(amplification, 1)

    def _write_sums(self, session: ProjectionSession, deltas: Deltas, version: int) -> None:
        """Add a transaction's changes to the per-tenant sums; a sum back to nothing goes."""
        team_deltas = {key: change for key, change in deltas.teams.items() if any(change)}
        if team_deltas:
            old = session.team_sums(list(team_deltas))
            teams, gone_teams = [], []
            for (tenant, function), change in team_deltas.items():
                before = old.get((tenant, function)) or TeamRow(tenant, function)
                after = before.moved(TeamRow(tenant, function, *change), 1)
                if after.is_zero():
                    gone_teams.append((tenant, function))
                else:
                    teams.append(after)
            session.save_team_sums(teams, gone_teams, version)
        changed = {t: c for t, c in deltas.listening.items() if any(c)}
        if changed:
            old_l = session.listening_sums(list(changed))
            listening, gone_tenants = [], []
            for tenant, change in changed.items():
                before_l = old_l.get(tenant) or ListeningRow(tenant, 0, 0, 0)
                after_l = ListeningRow(tenant, before_l.moments + change[0],
                                       before_l.listening + change[1], before_l.other + change[2])
                if after_l.moments <= 0:
                    gone_tenants.append(tenant)
                else:
                    listening.append(after_l)
            session.save_listening_sums(listening, gone_tenants, version)

    # -- rebuild -------------------------------------------------------------------------
    def rebuild(self, progress: Progress | None = None, *, restart: bool = False,
                folder: RangeFolder | None = None, stager: MomentStager | None = None,
                links: LinkReader | None = None) -> int:
        """Build every projection from the start of the log into fresh tables, then swap them in.

        Resumes an unfinished rebuild unless `restart`. Queries keep reading the
        live tables until the swap. `folder` folds the customers (default: here,
        `fold_ranges`); `stager` extracts the moments of ranges of the log (default:
        each range is copied in directly); `links` reads the link events (default: the
        log's `link_events_upto`, here). Returns the ledger position built up to.
        The caller holds the store's `rebuild_lock`.
        """
        self.store.drop_stages()  # what a stopped rebuild's workers left
        state = self.store.state(REBUILD)
        if state is None or restart:
            self.store.start_rebuild(self.log.head(), self._now())
            state = self.store.state(REBUILD)
            assert state is not None
        _, phase, target = state
        target = int(target or 0)
        if phase == RebuildPhase.MOMENTS:
            self._rebuild_moments(target, progress, stager, links or self._links)
            phase = RebuildPhase.FOLD
        # Each set of tables is indexed once its bulk of rows is in (idempotent: a resumed
        # rebuild may have done it before it stopped).
        self.store.index_rebuild("moments")
        if phase == RebuildPhase.FOLD:
            self._rebuild_fold(progress, folder or self.fold_ranges)
        self.store.index_rebuild("folded")
        self.catch_up(REBUILD, progress)
        try:
            self.store.swap(self._now())
        except ErasedDuringRebuild:
            # What was read before the erasure and written after it may name the person:
            # the store dropped those tables; build them again from the ledger as it is now.
            return self.rebuild(progress, restart=True, folder=folder, stager=stager,
                                links=links)
        live = self.store.state(LIVE)
        return live[0] if live else 0

    def _links(self, upto: int) -> Iterator[LinkEvent]:
        """The `LinkReader` of this process: the log's link events, read when iterated."""
        yield from self.log.link_events_upto(upto)

    def _rebuild_moments(self, target: int, progress: Progress | None,
                         stager: MomentStager | None, links: LinkReader) -> None:
        """Every moment current at `target`, once, copied in pages of the log.

        Each moment is taken at its latest event only, so nothing is replaced or
        deleted here; the per-tenant sums are counted in the fold phase, which sees
        every moment once too. The store copies the moments itself (the ledger is
        in the same database): no row passes through Python. With a `stager`, worker
        processes extract the ranges ahead (most of this phase's work) and each is
        copied in here, in order, with its position: the same pages commit.
        """
        page = self.positions_per_load or BULK_POSITIONS
        staging = self.store.staging if stager is not None else None
        with self.store.session(REBUILD) as session:
            start, _, _ = session.progress()
        ranges = [(after, min(after + page, target)) for after in range(start, target, page)]
        # The links are asked for first (worker processes read them before anything else),
        # then the stager's workers extract the first ranges while they are read and written
        # here (a stage does not depend on them; copying it in does).
        linked = links(target) if start == 0 else None
        stages = stager(ranges, target) if stager is not None and staging is not None else None
        if linked is not None:
            # The pairs' states before any moment (few rows): each moment goes in with its
            # person's group.
            states = pair_states(linked)
            with self.store.session(REBUILD) as session:
                if session.progress()[0] == 0:
                    session.load_links(states)
        if stages is None or staging is None:
            while True:
                with self.store.session(REBUILD) as session:
                    position, _, _ = session.progress()
                    if position >= target:
                        break
                    upto = min(position + page, target)
                    session.load_moments(position, upto, target)
                    session.save_progress(upto, RebuildPhase.MOMENTS, None, self._now())
                if progress is not None:
                    progress("moments", upto, target)
        else:
            for (after, upto), stage in zip(ranges, stages, strict=True):
                with staging.staged_session(stage) as session:
                    if session.progress()[0] != after:
                        raise RebuildInterrupted(
                            "another process moved this rebuild on; run mot replay again")
                    copied = session.load_staged(stage)
                    if copied != stage.moments:
                        # An UNLOGGED stage emptied by a server crash, say: nothing of it
                        # commits, and the next run stages the range anew.
                        raise RebuildInterrupted(
                            f"a stage of positions {after + 1:,}-{upto:,} held {copied:,} of its"
                            f" {stage.moments:,} moments; run mot replay again")
                    session.save_progress(upto, RebuildPhase.MOMENTS, None, self._now())
                if progress is not None:
                    progress("moments", upto, target)
        with self.store.session(REBUILD) as session:
            session.save_progress(target, RebuildPhase.FOLD, None, self._now())

    def _rebuild_fold(self, progress: Progress | None, folder: RangeFolder) -> None:
        """Every customer once, in key order: folded by `folder`, written here in order, each
        range in one transaction with the position it reached."""
        with self.store.session(REBUILD) as session:
            position, _, cursor = session.progress()
        done = 0
        for folded in folder(self._customer_ranges(cursor), position):
            with self.store.session(REBUILD) as session:
                if session.progress()[2] != cursor:
                    raise RebuildInterrupted(
                        "another process moved this rebuild on; run mot replay again")
                session.add_customers(folded.rows)
                session.raise_alerts(folded.alerts)
                session.save_share_roots(folded.shares, ())
                self._write_sums(session, Deltas(folded.teams, folded.listening), position)
                session.save_progress(position, RebuildPhase.FOLD, folded.last, self._now())
            cursor = folded.last
            done += folded.customers
            if progress is not None:
                progress("customers", done, 0)
        with self.store.session(REBUILD) as session:
            session.save_progress(position, RebuildPhase.CATCHUP, None, self._now())

    def _customer_ranges(self, cursor: CustomerKey | None) -> Iterator[CustomerRange]:
        """The rebuild's customers after `cursor`, `customers_per_chunk` to a range."""
        while True:
            with self.store.reader(name=REBUILD) as reader:
                keys = reader.customers_after(cursor, self.customers_per_chunk)
            if not keys:
                return
            yield keys[0], keys[-1]
            cursor = keys[-1]

    def fold_ranges(self, ranges: Iterable[CustomerRange], version: int) -> Iterator[FoldedRange]:
        """The `RangeFolder` of this process: each range read and folded in turn."""
        for first, last in ranges:
            with self.store.reader(name=REBUILD) as reader:
                folded = self.fold_range(reader, first, last, version)
            yield folded  # outside the read: the caller writes before asking for the next

    def fold_range(self, reader: RangeReader, first: CustomerKey, last: CustomerKey,
                   version: int) -> FoldedRange:
        """The rebuild's rows for the customers from `first` to `last`, stamped `version`."""
        # Consecutive customers: one range read serves them all.
        moments = reader.customer_range(first, last)
        deltas = Deltas.empty()
        deltas.add_moments(m for customer_moments in moments.values() for m in customer_moments)
        by_customer = self.fold(reader, moments, reader.members(moments))
        folded = by_customer.values()
        amplifications = [a for f in folded for a in f.amplifications]
        for amplification in amplifications:
            deltas.move_amplification(amplification, 1)
        return FoldedRange(
            last, len(folded), reader.encode_customers(folded, version),
            dict(deltas.teams), dict(deltas.listening),
            [share for f in folded for share in f.shares],
            self.alerts_of(moments, by_customer),
        )

    def _now(self) -> str:
        return format_utc(self.clock())


def pair_states(events: Iterable[LinkEvent]) -> dict[Pair, Precedence]:
    """Each pair's latest evidence among these links and unlinks (SPEC §2: the latest
    `occurred_at`; at equal times an unlink)."""
    latest: dict[Pair, Precedence] = {}
    for e in events:
        pair = (e.tenant, *pair_of(*e.customer_ids))
        kind: LinkType = "link" if isinstance(e, CustomersLinked) else "unlink"
        precedence = PairEvidence(kind, to_micros(parse_utc(e.occurred_at))).precedence
        if pair not in latest or precedence > latest[pair]:
            latest[pair] = precedence
    return latest


def _linked(precedence: Precedence | None) -> bool:
    """A pair's state from the precedence of its latest evidence (`PairEvidence.precedence`)."""
    return precedence is not None and precedence[1] == 0


def _share_roots(shares: dict[MomentKey, Current], reader: ProjectionSession
                 ) -> dict[MomentKey, str]:
    """The root of each of `shares` that has one, resolved among them first and then from
    what the store keeps of the moments above them (which this page did not move)."""
    def parent_key(m: Current) -> MomentKey:
        return (m.tenant, m.shares or "")

    roots: dict[MomentKey, str | None] = {}
    outside_keys = {parent_key(m) for m in shares.values() if m.shares} - shares.keys()
    outside = reader.moments_by_key(outside_keys) if outside_keys else {}
    kept = reader.share_roots([key for key, m in outside.items() if m.kind == "share"])

    def above(share: Current) -> str | None:
        """The root from the first moment above `share` that is not one of `shares`."""
        parent = outside.get(parent_key(share))
        if parent is None:
            return None
        if is_amplification(parent):
            return parent.moment_id
        return kept.get(parent_key(share)) if parent.kind == "share" else None

    for start in shares.values():
        path: list[MomentKey] = []
        on_path: set[MomentKey] = set()
        m: Current | None = start
        root: str | None = None
        while m is not None:
            key = (m.tenant, m.moment_id)
            if key in roots:
                root = roots[key]
                break
            if key in on_path:  # a cycle: no amplification moment above
                break
            path.append(key)
            on_path.add(key)
            parent = shares.get(parent_key(m)) if m.shares else None
            if parent is None:
                root = above(m)
                break
            m = parent
        for key in path:
            roots[key] = root
    return {key: root for key, root in roots.items() if root is not None}
