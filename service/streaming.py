"""Use cases of the streams: ingest moments from a topic, publish projection changelogs, export the ledger.

They are written against small ports (`Source`, `Sink`, `ChangelogStore`); the
Kafka specifics live in `mot.adapters.kafka`, the SQL in
`mot.adapters.stores.changelog`. Ingest goes through `LedgerService.record`,
like `mot import`: there is no second path into the ledger.

Delivery guarantees, in one place:

- ingest: polled batches are recorded in one ledger transaction (up to
  `commit_every` messages), its rejects are sent to the dead-letter topic
  (when there is one) and flushed, and only then are the batches' offsets
  committed. A crash anywhere before the commit redelivers those batches; the
  ledger records a redelivered moment, amendment or retraction as a
  duplicate, so each is recorded exactly once.
- publish: a page of changed rows is sent and flushed before the publisher's
  cursor is saved in the store; a crash repeats at most that page, with the
  same versions (a row's version only changes when its content does).
- export: one pass over the notification log; a re-run sends the same
  messages again, which an ingesting store records as duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from itertools import repeat
from typing import Any, Protocol

import orjson

from mot.domain.events import (
    CustomersLinked,
    CustomersUnlinked,
    LedgerEvent,
    MomentAmended,
    MomentRecorded,
    PersonErased,
)
from mot.domain.ledger import Outcome
from mot.service.importing import fewer_collections
from mot.service.ledger import (
    DEFAULT_COMMIT,
    BatchResult,
    Incoming,
    LedgerService,
    Summary,
    new_incoming,
)
from mot.service.parsing import Compact, Decode, Decoded, Parsed, ParsePool, decode_here, expand
from mot.service.resilience import Retry, run_round
from mot.service.workers import HeapTrim
from mot.wording import counted

# -- ports ----------------------------------------------------------------------------------


class StreamError(Exception):
    """The broker could not do what was asked (unreachable, a rebalance, a timeout): retry later."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive messages of one partition as the broker sent them, still encoded (a Kafka
    record batch). The parse workers decode it with the source's `decode` and parse its
    messages in one go, so the recording process never touches a message one by one
    until it records it. Messages before `start` are not wanted (a fetch that began inside
    the batch); `end` is the offset after the chunk, `count` how many it holds at most."""

    topic: str
    partition: int
    start: int
    end: int
    count: int
    data: bytes

    @property
    def payload(self) -> tuple[bytes, int]:
        return self.data, self.start


Records = tuple[list[int], list[bytes | None], list[bytes | None]]
"""A chunk's messages: their offsets, keys and values."""


def origin_prefix(topic: str, partition: int) -> str:
    """What the origins of one partition's messages start with: a message's origin is this
    followed by its offset (`kafka:TOPIC/PARTITION/OFFSET`)."""
    return f"kafka:{topic}/{partition}/"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to write to a topic; `value` None is a tombstone."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Source(Protocol):
    """A consumer-group member: poll batches, commit the offsets after them."""

    def poll(self, timeout_s: float, max_records: int) -> list[Chunk]:
        """The next chunks of the assigned partitions, about `max_records` messages (empty
        after `timeout_s`)."""
        ...

    @property
    def decode(self) -> Decode[tuple[bytes, int], Records]:
        """Decodes a chunk's `payload` into (its records, their values): a module-level
        function, since it runs in the parse workers."""
        ...

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit (topic, partition) -> next offset to read; raises StreamError when it cannot."""
        ...

    def lag(self) -> int | None:
        """Messages in the assigned partitions not read yet (None when unknown)."""
        ...

    def rewind(self) -> None:
        """Read again from the last committed offsets: what was polled since is delivered again
        (after the store failed to record it)."""
        ...

    def keep_alive(self) -> None:
        """Poll the group without taking any message, while this process cannot poll for
        them (it waits for the store's writer lock): the group drops a member that does not
        poll within its max poll interval, and a rebalance waits for its rejoin. Never
        raises (the next poll reports broker trouble)."""
        ...

    def in_group(self) -> bool:
        """Whether this member's place in the group is settled: it has joined, and no rebalance
        is under way (whatever partitions it was given, none included)."""
        ...

    def close(self) -> None:
        """Leave the group."""
        ...


class OffsetStore(Protocol):
    """A consumer group's offsets as the ledger's store holds them: read and saved inside
    the ledger's transaction, so they always describe exactly what it recorded."""

    def recorded(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the next offset not recorded yet (absent: nothing recorded)."""
        ...

    def save(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Set the next offsets, in the open ledger transaction."""
        ...


class Sink(Protocol):
    """A producer: send asynchronously, then flush to know everything was written."""

    def send(self, message: Outgoing) -> None:
        """Queue one message; raises StreamError when it cannot even be queued."""
        ...

    def flush(self) -> None:
        """Wait until every message sent so far is written; StreamError if any was not."""
        ...

    def close(self) -> None:
        ...


# -- ingest ---------------------------------------------------------------------------------

COMMIT_INTERVAL_S = 1.0
"""Longest a transaction stays open while messages keep coming and the source cannot say
whether more wait (its lag unknown)."""

NULL_VALUE = "empty message: the value is null (a tombstone); expected one wire-format v1 JSON object"


@dataclass(slots=True)
class IngestStats(Summary):
    """What `mot kafka ingest` did: the import summary plus the stream's own counts."""

    batches: int = 0
    commits: int = 0  # ledger transactions
    redelivered: int = 0  # delivered again after the store had recorded them: skipped
    dead_lettered: int = 0
    commit_failures: int = 0
    broker_errors: int = 0
    lag: int | None = None
    last_error: str | None = None
    first_message: float | None = None
    last_commit: float | None = None

    @property
    def active_seconds(self) -> float:
        """From the first message polled to the last batch committed (idle time left out)."""
        if self.first_message is None or self.last_commit is None:
            return 0.0
        return self.last_commit - self.first_message

    def progress_line(self) -> str:
        """How far it is, for progress on standard error."""
        lag = "?" if self.lag is None else f"{self.lag:,}"
        trouble = (f", broker errors {self.broker_errors:,} ({self.last_error})"
                   if self.broker_errors or self.commit_failures else "")
        return (f"{self.read:,} read, {self.recorded:,} recorded, "
                f"{counted(self.duplicates, 'duplicate')}, "
                f"{self.quarantined:,} quarantined, lag {lag}{trouble}")

    def summary_line(self) -> str:
        """What it did, once it stopped."""
        return (f"{self.counts()}, dead-lettered {self.dead_lettered:,} ({self.seconds:.1f} s)")

    def as_dict(self) -> dict[str, float | int]:
        out = Summary.as_dict(self)
        out.update({"batches": self.batches, "commits": self.commits, "redelivered": self.redelivered,
                    "dead_lettered": self.dead_lettered,
                    "commit_failures": self.commit_failures, "broker_errors": self.broker_errors,
                    "active_seconds": round(self.active_seconds, 3),
                    # CLOCK_MONOTONIC: comparable between processes of one machine (the bench).
                    "first_message_monotonic": self.first_message or 0.0,
                    "last_commit_monotonic": self.last_commit or 0.0})
        return out


class Ingestor:
    """Reads batches from a consumer group into the ledger; commits offsets after the ledger.

    The file import's fast path, for a topic: polled record batches are decoded
    and parsed ahead (in `workers` processes when asked, a new moment kept as its
    JSON; this process only records), recorded batch by batch in one ledger
    transaction per `commit_every` messages while there is a backlog (at once
    when caught up or the topic goes quiet, and every `commit_interval_s` when
    the source cannot tell), with each partition's next offset saved in that
    transaction. Only after it commits are the rejects dead-lettered and then
    the offsets committed to the broker; messages redelivered after a crash are
    skipped by the stored offsets.
    """

    def __init__(self, ledger: LedgerService, source: Source, *, offsets: OffsetStore | None = None,
                 dlq: Sink | None = None, dlq_topic: str | None = None, batch_size: int = 1000,
                 commit_every: int = DEFAULT_COMMIT, commit_interval_s: float = COMMIT_INTERVAL_S,
                 workers: int = 0, poll_timeout_s: float = 0.5, retry_backoff_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (dlq is None) != (dlq_topic is None):
            raise ValueError("a dead-letter sink needs a topic, and a topic a sink")
        self.ledger = ledger
        self.source = source
        self.offsets = offsets
        self.dlq = dlq
        self.dlq_topic = dlq_topic
        self.batch_size = batch_size
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self.workers = workers
        self.poll_timeout_s = poll_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self.sleep = sleep
        self.clock = clock
        self._in_flight = 0
        self._heap = HeapTrim(commit_every)  # about once per transaction of a backlog

    def run(self, *, should_stop: Callable[[], bool] = lambda: False,
            progress: Callable[[IngestStats], None] | None = None,
            exit_when_idle_s: float | None = None, retry: Retry | None = None) -> IngestStats:
        """Ingest until `should_stop()`, or after a quiet spell of `exit_when_idle_s`.

        Every batch that was polled is finished: recorded, dead-lettered,
        committed. Broker trouble (a commit refused during a rebalance, a broker
        that went away) is counted and retried, never fatal. A store that fails
        rolls its transaction back, none of its offsets committed; with `retry`,
        a store that cannot be reached is waited for and the source rewound to
        its committed offsets, otherwise the error is raised.
        """
        stats = IngestStats()
        while True:
            try:
                self._run(stats, should_stop, progress, exit_when_idle_s, retry)
                return stats
            except Exception as error:
                if retry is None or not retry.failed(error):
                    raise
                self.source.rewind()

    def _run(self, stats: IngestStats, should_stop: Callable[[], bool],
             progress: Callable[[IngestStats], None] | None, exit_when_idle_s: float | None,
             retry: Retry | None) -> None:
        # Batches polled and not recorded yet (in the parse workers): while there are some,
        # a poll does not wait for the broker, so that what is parsed is recorded meanwhile.
        self._in_flight = 0
        batches = self._poll(stats, should_stop, progress, exit_when_idle_s)
        # What the open ledger transaction needs once it commits: the offsets after its
        # chunks and its dead letters (not the messages: a transaction holds `commit_every`).
        unit_offsets: dict[tuple[str, int], int] = {}
        unit_letters: list[Outgoing] = []
        unit_count = 0
        unit_open = False
        unit_started = 0.0
        decode = self.source.decode
        with ExitStack() as unit, ExitStack() as resources:
            split = self.ledger.store.sealed()  # moments split for a ledger that seals
            if self.workers:
                pool = resources.enter_context(ParsePool(self.workers, split)).start(decode)
                parsed = pool.map_encoded(batches, _payloads, decode, self.ledger.clock)
            else:
                parsed = decode_here(batches, _payloads, decode, self.ledger.clock, split)
            for chunks, decoded, now in parsed:
                if chunks:
                    self._in_flight -= 1
                    if not unit_open:
                        # Other members of the group may hold the store's writer lock (one
                        # store, several ingest processes): while this one waits for it,
                        # it keeps polling its group (`Source.keep_alive`).
                        unit.enter_context(self.ledger.store.transaction(self.source.keep_alive))
                        unit_open, unit_started = True, self.clock()
                    batch = self._new_only(_Polled.of(chunks, decoded))
                    stats.redelivered += batch.read - len(batch.items)
                    result = (self.ledger.record_parsed(batch.items, batch.parsed, now)
                              if batch.items else BatchResult([]))
                    if self.offsets is not None and batch.items:
                        self.offsets.save(batch.recorded_offsets())
                    if self.dlq_topic is not None:
                        unit_letters += batch.dead_letters(self.dlq_topic, result)
                    for key, end in next_offsets(chunks).items():
                        unit_offsets[key] = max(unit_offsets.get(key, 0), end)
                    stats.add(result.outcomes(), len(batch.items), result.waited)
                    stats.read += batch.read - len(batch.items)
                    stats.batches += 1
                    unit_count += batch.read
                    stats.lag = self.source.lag()
                # A backlog is recorded in transactions of `commit_every`; once caught up
                # (no lag and every batch polled recorded, or a quiet poll) what is pending
                # commits at once.
                if unit_open and (not chunks or unit_count >= self.commit_every
                                  or (stats.lag == 0 and not self._in_flight)
                                  or (stats.lag is None and self.clock() - unit_started
                                      >= self.commit_interval_s)):
                    if not self._commit(unit, unit_offsets, unit_letters, stats, should_stop,
                                        progress, retry):
                        return  # stopped while the dead-letter topic was unreachable
                    self._heap.recorded(unit_count)
                    unit_offsets, unit_letters, unit_count, unit_open = {}, [], 0, False
                if progress is not None:
                    progress(stats)
            if unit_open:
                self._commit(unit, unit_offsets, unit_letters, stats, should_stop, progress, retry)

    def _new_only(self, batch: _Polled) -> _Polled:
        """The messages of a batch that the store has not recorded yet (all, without an
        offset store). Read inside the ledger's transaction, which serialises writers."""
        if self.offsets is None:
            return batch
        known = self.offsets.recorded({(c.topic, c.partition) for c in batch.chunks})
        if not known:
            return batch
        return batch.after(known)

    def _poll(self, stats: IngestStats, should_stop: Callable[[], bool],
              progress: Callable[[IngestStats], None] | None,
              exit_when_idle_s: float | None) -> Iterator[list[Chunk] | None]:
        """The polled chunks; an empty poll is an empty batch, so that what is pending
        commits while the topic is quiet. Ends when asked to stop or idle. While batches
        are in flight a poll does not wait: None when nothing new has come (the parse
        pipeline then hands back what is ready rather than waiting for the broker)."""
        # Quiet time counts while this member's place in the group is settled, whatever it
        # holds (a member the group gave nothing has nothing to wait for). Not while it joins
        # or rebalances: kafka-python polls nothing then, and the partitions it gets may hold
        # a backlog. Counting a rebalance as quiet made a member with 77,802 messages to go
        # leave mid-rebalance, while the group waited for it to rejoin.
        idle_since: float | None = None
        while not should_stop():
            busy = self._in_flight > 0
            try:
                batch = self.source.poll(0.0 if busy else self.poll_timeout_s, self.batch_size)
            except StreamError as error:
                self._trouble(stats, error, progress)
                continue
            now = self.clock()
            if batch:
                idle_since = None
                if stats.first_message is None:
                    stats.first_message = now
                # A poll may hand over a whole fetch (the first one, several batch sizes):
                # one task per batch size, so that every worker has a share of it.
                for part in _parts(batch, self.batch_size):
                    self._in_flight += 1
                    yield part
                continue
            elif busy:
                yield None
                continue
            else:
                stats.lag = self.source.lag()
                if not self.source.in_group():
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                if (exit_when_idle_s is not None and idle_since is not None
                        and now - idle_since >= exit_when_idle_s):
                    return
            yield batch

    def _commit(self, unit: ExitStack, offsets: Mapping[tuple[str, int], int],
                letters: Sequence[Outgoing], stats: IngestStats, should_stop: Callable[[], bool],
                progress: Callable[[IngestStats], None] | None, retry: Retry | None) -> bool:
        """Commit the ledger's transaction, then dead-letter its rejects, then commit the offsets."""
        unit.close()
        stats.commits += 1
        if retry is not None:
            retry.succeeded()
        if self.dlq is not None and letters:
            if not self._deliver(letters, stats, should_stop, progress):
                return False
            stats.dead_lettered += len(letters)
        try:
            self.source.commit(offsets)
        except StreamError as error:
            # The batches are in the ledger; whoever reads these offsets again records duplicates.
            stats.commit_failures += 1
            stats.last_error = f"commit: {error}"
        stats.last_commit = self.clock()
        return True

    def _deliver(self, letters: Sequence[Outgoing], stats: IngestStats,
                 should_stop: Callable[[], bool],
                 progress: Callable[[IngestStats], None] | None) -> bool:
        """Send the dead letters until they are written (True), or until asked to stop (False)."""
        assert self.dlq is not None
        while True:
            try:
                for letter in letters:
                    self.dlq.send(letter)
                self.dlq.flush()
                return True
            except StreamError as error:
                self._trouble(stats, error, progress, what="dead-letter topic")
            if should_stop():
                return False

    def _trouble(self, stats: IngestStats, error: Exception,
                 progress: Callable[[IngestStats], None] | None, what: str = "broker") -> None:
        stats.broker_errors += 1
        stats.last_error = f"{what}: {error}"
        if progress is not None:
            progress(stats)
        self.sleep(self.retry_backoff_s)

def ingest(ledger: LedgerService, connect: Callable[[], Source], *,
           connect_dlq: Callable[[], Sink] | None = None, dlq_topic: str | None = None,
           offsets: OffsetStore | None = None, batch_size: int = 1000,
           commit_every: int = DEFAULT_COMMIT, commit_interval_s: float = COMMIT_INTERVAL_S,
           workers: int = 0, should_stop: Callable[[], bool] = lambda: False,
           progress: Callable[[IngestStats], None] | None = None,
           exit_when_idle_s: float | None = None, retry: Retry | None = None
           ) -> IngestStats | None:
    """`mot kafka ingest`: join the group, ingest (`Ingestor.run`), leave the group.

    `connect` and `connect_dlq` reach the broker (waiting for it as they were told); the
    dead-letter producer is made first, so that the consumer joins the group last and no
    partition waits for it. None: asked to stop while still waiting for the broker
    (nothing was read). StreamError: the broker could not be reached.
    """
    try:
        dlq = connect_dlq() if connect_dlq is not None else None
        try:
            source = connect()
        except StreamError:
            if dlq is not None:
                dlq.close()
            raise
    except StreamError:
        if should_stop():
            return None
        raise
    try:
        # as `mot import` records: its batches' objects die young, and the collector's
        # scans of them found nothing to free
        with fewer_collections():
            return Ingestor(ledger, source, offsets=offsets, dlq=dlq, dlq_topic=dlq_topic,
                            batch_size=batch_size, commit_every=commit_every,
                            commit_interval_s=commit_interval_s, workers=workers,
                            ).run(should_stop=should_stop, progress=progress,
                                  exit_when_idle_s=exit_when_idle_s, retry=retry)
    finally:
        source.close()  # leave the group now rather than after the session timeout
        if dlq is not None:
            dlq.close()


def next_offsets(chunks: Iterable[Chunk]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> the offset after the last chunk of it here."""
    offsets: dict[tuple[str, int], int] = {}
    for c in chunks:
        key = (c.topic, c.partition)
        offsets[key] = max(offsets.get(key, 0), c.end)
    return offsets


def _parts(chunks: list[Chunk], size: int) -> Iterator[list[Chunk]]:
    """The chunks in order, in parts of about `size` messages (whole chunks)."""
    part: list[Chunk] = []
    count = 0
    for chunk in chunks:
        part.append(chunk)
        count += chunk.count
        if count >= size:
            yield part
            part, count = [], 0
    if part:
        yield part


def _payloads(chunks: list[Chunk]) -> list[tuple[bytes, int]]:
    return [c.payload for c in chunks]


@dataclass(slots=True)
class _Polled:
    """One poll's chunks, decoded and parsed: per message its offset, key, value, the ledger's
    `Incoming` and parsed message, and the chunk it came from (by index)."""

    chunks: list[Chunk]
    read: int
    offsets: list[int]
    keys: list[bytes | None]
    items: list[Incoming]
    parsed: list[Parsed]
    of_chunk: list[int]

    @classmethod
    def of(cls, chunks: list[Chunk], decoded: Decoded[Records]) -> _Polled:
        offsets: list[int] = []
        keys: list[bytes | None] = []
        items: list[Incoming] = []
        compact: list[Compact | None] = []
        of_chunk: list[int] = []
        for index, (chunk, ((its_offsets, its_keys, values), its_compact)) in enumerate(
                zip(chunks, decoded, strict=True)):
            topic, partition = chunk.topic, chunk.partition
            offsets += its_offsets
            keys += its_keys
            compact += its_compact
            of_chunk += [index] * len(its_offsets)
            # Each message's origin, and the messages, made in C (a message per loop of Python
            # was a tenth of this process's time a message); a tombstone is rare.
            prefix = origin_prefix(topic, partition)
            origins = list(map(prefix.__add__, map(str, its_offsets)))
            if None in values:
                items += [Incoming(v, origin) if v is not None
                          else Incoming(b"", origin, problem=NULL_VALUE)
                          for origin, v in zip(origins, values, strict=True)]
            else:
                items += map(new_incoming, zip(values, origins, repeat(None), repeat(None),
                                               repeat(())))
        return cls(chunks, len(items), offsets, keys, items, expand(items, compact), of_chunk)

    def after(self, known: Mapping[tuple[str, int], int]) -> _Polled:
        """Only the messages at or after the store's next offset of their partition."""
        firsts = [known.get((c.topic, c.partition), 0) for c in self.chunks]
        # The usual poll is all new: each chunk starts at or after its partition's next offset
        # (no message of a chunk is before its `start`), so no message need be looked at.
        if all(c.start >= first for c, first in zip(self.chunks, firsts, strict=True)):
            return self
        keep = [i for i, (o, c) in enumerate(zip(self.offsets, self.of_chunk, strict=True))
                if o >= firsts[c]]
        if len(keep) == len(self.items):
            return self
        return _Polled(self.chunks, self.read, [self.offsets[i] for i in keep],
                       [self.keys[i] for i in keep], [self.items[i] for i in keep],
                       [self.parsed[i] for i in keep], [self.of_chunk[i] for i in keep])

    def recorded_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the offset after the chunks that had messages recorded here
        (never behind what the store held: such a chunk ends after a message it did not)."""
        return next_offsets(self.chunks[i] for i in dict.fromkeys(self.of_chunk))

    def dead_letters(self, topic: str, result: BatchResult) -> list[Outgoing]:
        """The quarantined messages as they came (key, value), with why and where in headers."""
        return [
            Outgoing(topic, key, item.raw if item.problem is None else None, (
                ("reason", v.rejection.reason.encode()),
                ("field", v.rejection.field.encode()),
                ("origin", item.origin.encode()),
            ))
            for key, item, v in zip(self.keys, self.items, result.verdicts, strict=True)
            if v.outcome is Outcome.QUARANTINED and v.rejection is not None
        ]


# -- publish --------------------------------------------------------------------------------

# The projections `mot kafka publish` sends, each to `PREFIX + name` (the store reads their
# changed rows and tombstones: adapters/stores/changelog.py).
CHANGELOG_PROJECTIONS = ("relationships", "reciprocity", "amplifications", "persons", "responses")


@dataclass(frozen=True, slots=True)
class Change:
    """One row as it now is, or its tombstone (`record` None), at its version."""

    projection: str
    key: str
    version: int
    record: dict[str, Any] | None
    cursor: tuple[int, str]  # (version, position of the row within that version)


class ChangelogStore(Protocol):
    """Changed projection rows in version order, and the publisher's cursor, in the store."""

    def projected(self) -> int:
        """The ledger position the projections have reached (no row has a higher version)."""
        ...

    def cursor(self, name: str, projection: str, kind: str) -> tuple[int, str]:
        """Where publisher `name` is in one stream (kind `rows` or `tombstones`)."""
        ...

    def changes(self, projection: str, kind: str, after: tuple[int, str], upto: int,
                limit: int) -> list[Change]:
        """The next rows (or tombstones) after `after`, with versions up to `upto`."""
        ...

    def save_cursor(self, name: str, projection: str, kind: str, cursor: tuple[int, str]) -> None:
        ...

    def reset(self, name: str) -> None:
        """Forget publisher `name`'s cursors: the next run publishes every row again."""
        ...


@dataclass(slots=True)
class RunStats:
    """A run's counts (a subclass's fields) and its time so far: what `--summary-json` prints."""

    started: float = field(default_factory=time.monotonic, kw_only=True)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def as_dict(self) -> dict[str, Any]:
        """The counts in the order they are declared (a dict of them copied), then the seconds."""
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "started"}
        return {**{name: dict(value) if isinstance(value, dict) else value
                   for name, value in counts.items()},
                "seconds": round(self.seconds, 3)}


@dataclass(slots=True)
class PublishStats(RunStats):
    messages: int = 0
    tombstones: int = 0
    pages: int = 0
    by_projection: dict[str, int] = field(default_factory=dict)
    position: int = 0


def changelog_message(topic: str, change: Change) -> Outgoing:
    """A change as a compacted-topic message: key = the row's id, value = the row with its version."""
    headers = (("projection", change.projection.encode()),
               ("version", str(change.version).encode()))
    value = None if change.record is None else orjson.dumps(change.record)
    return Outgoing(topic, change.key.encode(), value, headers)


class Publisher:
    """Sends every change of the changelog projections to `PREFIX + projection` topics."""

    def __init__(self, store: ChangelogStore, sink: Sink, *, prefix: str = "mot.",
                 name: str = "default", page_size: int = 5000,
                 projections: Sequence[str] = CHANGELOG_PROJECTIONS) -> None:
        self.store = store
        self.sink = sink
        self.prefix = prefix
        self.name = name
        self.page_size = page_size
        self.projections = tuple(projections)

    def topics(self) -> list[str]:
        return [self.prefix + projection for projection in self.projections]

    def publish(self, stats: PublishStats | None = None,
                progress: Callable[[PublishStats], None] | None = None) -> PublishStats:
        """Publish everything that changed since the saved cursors, up to the projections' position."""
        stats = stats if stats is not None else PublishStats()
        upto = self.store.projected()
        for projection in self.projections:
            topic = self.prefix + projection
            for kind in ("rows", "tombstones"):
                cursor = self.store.cursor(self.name, projection, kind)
                while True:
                    changes = self.store.changes(projection, kind, cursor, upto, self.page_size)
                    if not changes:
                        break
                    for change in changes:
                        self.sink.send(changelog_message(topic, change))
                    self.sink.flush()
                    cursor = changes[-1].cursor
                    self.store.save_cursor(self.name, projection, kind, cursor)
                    stats.pages += 1
                    stats.messages += len(changes)
                    if kind == "tombstones":
                        stats.tombstones += len(changes)
                    stats.by_projection[projection] = (
                        stats.by_projection.get(projection, 0) + len(changes))
                    if progress is not None:
                        progress(stats)
        stats.position = upto
        return stats

    def follow(self, *, poll_seconds: float = 1.0, should_stop: Callable[[], bool] = lambda: False,
               before_round: Callable[[], None] | None = None,
               progress: Callable[[PublishStats], None] | None = None,
               on_error: Callable[[Exception], None] | None = None,
               sleep: Callable[[float], None] = time.sleep,
               retry: Retry | None = None) -> PublishStats:
        """Publish round after round until `should_stop()`; broker trouble is retried, and
        with `retry` a store that cannot be reached is waited for (a round repeats at most
        the page whose cursor it had not saved, with the same versions)."""
        stats = PublishStats()

        def one_round() -> bool:
            """Whether the broker took the round; its trouble is said, then paused on."""
            try:
                if before_round is not None:
                    before_round()
                self.publish(stats, progress)
            except StreamError as error:
                if on_error is not None:
                    on_error(error)
                sleep(poll_seconds)
                return False
            return True

        while not should_stop():
            before = stats.messages
            if run_round(retry, one_round) is True and stats.messages == before:
                sleep(poll_seconds)
        return stats


# -- export ---------------------------------------------------------------------------------


class NotificationLog(Protocol):
    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]: ...
    def head(self) -> int: ...


def wire_message(event: LedgerEvent) -> dict[str, Any]:
    """A ledger event as the wire-format v1 message that records it again (SPEC §2)."""
    if isinstance(event, MomentRecorded):
        return dict(event.moment)
    if isinstance(event, MomentAmended):
        amend = {"type": "amend", "moment_id": event.moment_id, "tenant": event.tenant,
                 "set": event.set, "reason": event.reason}
        if event.amendment_id is not None:
            amend["amendment_id"] = event.amendment_id
        return amend
    if isinstance(event, CustomersLinked | CustomersUnlinked):
        return {"type": "link" if type(event) is CustomersLinked else "unlink",
                "tenant": event.tenant, "customer_ids": list(event.customer_ids),
                "occurred_at": event.occurred_at, "reason": event.reason}
    if isinstance(event, PersonErased):
        # The erasure's receipt, without its reason (SPEC §6: no personal data). Not a wire
        # message a store records: an import of the export quarantines it.
        return {"type": "erasure", "tenant": event.tenant, "erasure": event.erasure,
                "customer_ids_with_moments": event.customer_ids_with_moments,
                "customer_ids_without_moments": event.customer_ids_without_moments,
                "moments": event.moments, "digest": event.digest, "erased_at": event.recorded_at}
    return {"type": "retract", "moment_id": event.moment_id, "tenant": event.tenant,
            "reason": event.reason}


def event_key(event: LedgerEvent) -> tuple[str, str]:
    """(Kafka key, event name) of an exported event: a moment's id, or a pair's stream id, so
    that one moment's or one pair's messages stay in one partition, in order."""
    if isinstance(event, CustomersLinked | CustomersUnlinked):
        return event.link_id, "linked" if type(event) is CustomersLinked else "unlinked"
    if isinstance(event, PersonErased):
        return event.erasure_id, "erased"
    return event.moment_id, type(event).__name__.removeprefix("Moment").lower()


def event_tenant(event: LedgerEvent) -> str:
    return event.tenant


@dataclass(slots=True)
class ExportStats(RunStats):
    read: int = 0
    sent: int = 0
    position: int = 0


def export(log: NotificationLog, sink: Sink, topic: str, *, tenant: str | None = None,
           after: int = 0, page_size: int = 5000,
           progress: Callable[[ExportStats, int], None] | None = None) -> ExportStats:
    """Send the ledger's events after `after`, in notification order, as wire messages keyed by
    moment id (a pair's links and unlinks by the pair's stream id).

    Everything up to the ledger's head when the export starts is sent; the
    returned position is where a later export can continue (`after`).
    """
    stats = ExportStats(position=after)
    head = log.head()
    position = after
    while position < head:
        page = [(n, event) for n, event in log.notifications(position, page_size) if n <= head]
        if not page:
            break
        for notification_id, event in page:
            stats.read += 1
            if tenant is not None and event_tenant(event) != tenant:
                continue
            key, kind = event_key(event)
            sink.send(Outgoing(topic, key.encode(), orjson.dumps(wire_message(event)), (
                ("position", str(notification_id).encode()),
                ("event", kind.encode()),
                ("origin", event.origin.encode()),
            )))
            stats.sent += 1
        sink.flush()
        position = stats.position = page[-1][0]
        if progress is not None:
            progress(stats, head)
    return stats
