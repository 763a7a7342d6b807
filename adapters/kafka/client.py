"""kafka-python behind the ports of `mot.service.streaming`: `KafkaSource`, `KafkaSink`, `ensure_topics`.

Everything kafka-python raises comes out as `StreamError`, so the service
layer can tell broker trouble (retry) from a failing store (stop). Offsets
are never committed automatically: the service commits them after the batch
is in the ledger.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, TypeVar, cast

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import CorruptRecordError, KafkaError, TopicAlreadyExistsError
from kafka.record import MemoryRecords
from kafka.structs import OffsetAndMetadata

from mot.service.parsing import Decode
from mot.service.streaming import Chunk, Outgoing, Records, StreamError

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BOOTSTRAP = "localhost:9092"
CLIENT_ID = "mot"


def servers(bootstrap: str) -> list[str]:
    """`host:port[,host:port...]` as kafka-python's list."""
    found = [s.strip() for s in bootstrap.split(",") if s.strip()]
    if not found:
        raise ValueError("no bootstrap server given (expected host:port[,host:port...])")
    return found


def connect_with_retry(make: Callable[[int], T], *, wait_s: float,
                       should_stop: Callable[[], bool] = lambda: False,
                       on_retry: Callable[[Exception], None] | None = None,
                       backoff_s: float = 1.0) -> T:
    """Build a client, retrying while the broker cannot be reached, for up to `wait_s` seconds.

    `make(timeout_ms)` builds one: its bootstrap may take at most `timeout_ms`, what is left
    of the wait (kafka-python's own 30 s would make a wait of 3 s last 30).
    """
    deadline = time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        try:
            return _attempt(make, int(min(max(left, MIN_ATTEMPT_S), MAX_ATTEMPT_S) * 1000),
                            should_stop)
        except (KafkaError, StreamError) as error:
            if time.monotonic() >= deadline or should_stop():
                raise StreamError(f"cannot reach the Kafka broker: {error}") from error
            if on_retry is not None:
                on_retry(error)
            time.sleep(min(backoff_s, max(deadline - time.monotonic(), 0)))


def _attempt(make: Callable[[int], T], timeout_ms: int, should_stop: Callable[[], bool]) -> T:
    """One `make(timeout_ms)`, in a thread of its own, given up as soon as `should_stop()`: an
    attempt waits for an absent broker up to MAX_ATTEMPT_S, so a SIGTERM during one kept
    `mot kafka ingest` running up to 30 s more, past a supervisor's stop timeout (docker
    stop's 10 s). A client the given-up attempt makes after all is closed by its thread."""
    done = threading.Event()
    given_up = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            made = make(timeout_ms)
        except BaseException as error:  # handed to the caller below
            outcome.append(error)
        else:
            outcome.append(made)
            if given_up.is_set() and hasattr(made, "close"):
                made.close()
        finally:
            done.set()

    threading.Thread(target=run, name="mot-kafka-connect", daemon=True).start()
    while not done.wait(STOP_CHECK_S):
        if should_stop():
            given_up.set()
            if done.is_set() and outcome and hasattr(outcome[0], "close"):
                outcome[0].close()  # made just now, after the thread looked
            raise StreamError("asked to stop while waiting for the broker")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return cast(T, result)


def group_member(settings: ConsumerSettings, *, wait_s: float,
                 should_stop: Callable[[], bool] = lambda: False,
                 on_retry: Callable[[Exception], None] | None = None,
                 on_rebalance: Callable[[str, list[tuple[str, int]]], None] | None = None
                 ) -> KafkaSource:
    """A consumer-group member, waiting up to `wait_s` for the broker (`connect_with_retry`)."""
    return connect_with_retry(
        lambda ms: KafkaSource(replace(settings, bootstrap_timeout_ms=ms),
                               on_rebalance=on_rebalance),
        wait_s=wait_s, should_stop=should_stop, on_retry=on_retry)


def producer(bootstrap: str, *, wait_s: float, should_stop: Callable[[], bool] = lambda: False,
             on_retry: Callable[[Exception], None] | None = None) -> KafkaSink:
    """A producer, waiting up to `wait_s` for the broker (`connect_with_retry`)."""
    return connect_with_retry(
        lambda ms: KafkaSink(bootstrap, bootstrap_timeout_ms=ms),
        wait_s=wait_s, should_stop=should_stop, on_retry=on_retry)


# One attempt to reach the broker: at least long enough for a broker that is up to answer,
# at most kafka-python's default.
MIN_ATTEMPT_S = 0.5
MAX_ATTEMPT_S = 30.0
STOP_CHECK_S = 0.1  # how often an attempt looks whether it was asked to stop


@dataclass
class ConsumerSettings:
    """What a `mot kafka ingest` consumer needs; the defaults are kafka-python's unless said."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    group: str
    auto_offset_reset: str = "earliest"  # a new group reads a topic from its start
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 3_000
    request_timeout_ms: int = 30_000
    bootstrap_timeout_ms: int = 30_000
    # Smaller fetches than kafka-python's 50 MB: the consumer buffers one fetch ahead of the
    # ledger, held as record batches (bench/NOTES.md has the sizes' figures).
    fetch_max_bytes: int = 1 << 20
    max_partition_fetch_bytes: int = 256 << 10
    # How long the broker may hold a fetch that finds nothing new, while this member waits
    # for messages (kafka-python's default); while it has messages on their way to the
    # ledger, BUSY_FETCH_WAIT_MS.
    fetch_max_wait_ms: int = 500
    extra: dict[str, Any] = field(default_factory=dict)


BUSY_FETCH_WAIT_MS = 100
"""How long the broker may hold a fetch that finds nothing new while this member polls without
waiting (it has batches on their way to the ledger). A member sends one fetch at a time to a
broker, only for the partitions it holds no records of: near the end of a backlog a partition
that ran dry was asked alone while the others' records were still being recorded, and the
others' next fetch waited for the whole fetch wait once they ran out (0.47 s with
kafka-python's 500 ms, in a 1.7 s ingest of 100,000 messages; bench/NOTES.md). An idle member
keeps the longer wait: a fetch every 100 ms cost it 2.7 times the CPU of one every 500 ms."""


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    """Says what the group did (`on_change`), and keeps whether this member's place in the
    group is settled: joined, with its assignment, and no rebalance under way since.

    kafka-python keeps a revoked assignment in `consumer.assignment()` until the rebalance
    ends (the eager protocol's revocation is a notification), so the assignment cannot tell
    a member that is rejoining from one that holds those partitions; the calls here can:
    a rebalance starts with a revocation (or, for a member the group dropped, a loss) and
    ends with an assignment, the whole of it, empty included. Called on kafka-python's
    network thread; the flag is read on the polling thread."""

    def __init__(self, on_change: Callable[[str, list[tuple[str, int]]], None] | None) -> None:
        self.on_change = on_change
        self.settled = False

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Nothing to save here: batches of these partitions that are still on their way to
        # the ledger are recorded by this process, and read again by the new owner from the
        # last committed offset; the ledger records them once (the rest are duplicates).
        self.settled = False
        self._say("revoked", revoked)

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        # The group dropped this member (it did not poll within max_poll_interval_ms, or its
        # session expired): the partitions may already be another member's. The same as a
        # revocation here; offsets are only ever committed for partitions still owned.
        self.settled = False
        self._say("lost", lost)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.settled = True
        self._say("assigned", assigned)

    def _say(self, what: str, partitions: Iterable[TopicPartition]) -> None:
        if self.on_change is not None:
            self.on_change(what, sorted((tp.topic, tp.partition) for tp in partitions))


class _Fetched(NamedTuple):
    """A record batch as kafka-python's fetcher hands it on: `offset` is the batch's last, by
    which the fetcher passes over a batch wholly before its position."""

    offset: int
    chunk: Chunk


class _BatchRecords(Fetcher.PartitionRecords):  # type: ignore[misc]
    """The fetcher's records of one partition, one record batch at a time and still encoded:
    the parse workers decode them (`decode_chunk`), not the consuming process record by
    record. Checks each batch's CRC (in C) and leaves out control batches, as the fetcher
    does; poll's `max_records` counts batches here."""

    def _unpack_records(self, tp: TopicPartition, records: MemoryRecords, key_deserializer: Any,
                        value_deserializer: Any) -> Iterator[_Fetched]:
        batch = records.next_batch()
        while batch is not None:
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(f"Record batch for partition {tp} at offset "
                                         f"{batch.base_offset} failed crc check")
            data = bytes(batch._buffer)
            if batch.magic >= 2:
                self.leader_epoch = batch.leader_epoch
                first, end, count = batch.base_offset, batch.next_offset, batch.records_count
                skip = batch.is_control_batch
            else:  # message format v0/v1 (brokers before 0.11): read to find its last offset
                offsets = [r.offset for r in MemoryRecords(data).next_batch()]
                first, end, count = offsets[0], offsets[-1] + 1, len(offsets)
                skip = False
            self.next_fetch_offset = end
            if not skip and end > self.fetch_offset:
                self.records_read += count
                self.bytes_read += len(data)
                start = max(first, self.fetch_offset)
                yield _Fetched(end - 1, Chunk(tp.topic, tp.partition, start, end, count, data))
            batch = records.next_batch()
        self.drain()


def decode_chunk(payload: tuple[bytes, int]) -> tuple[Records, list[bytes | None]]:
    """A chunk's (data, start) as ((offsets, keys, values), values), from `start` on.

    An uncompressed record batch of message format v2 (what brokers since 0.11 send
    unless the producer compressed) is read here, field by field: kafka-python's
    reader builds a record object with its headers and timestamp for each message, a
    fifth of what a parse worker spent per message. Any other batch is left to it.
    """
    data, start = payload
    offsets: list[int] = []
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    at, size = 0, len(data)
    # Each batch's length and magic byte are where every format has them; a v0/v1 message
    # (a batch of its own) may be shorter than a v2 batch's header.
    while at + _MAGIC_END <= size:
        end = at + 12 + int.from_bytes(data[at + 8:at + 12], "big", signed=True)
        attributes = int.from_bytes(data[at + 21:at + 23], "big")
        if data[at + 16] == 2 and not attributes & _CODEC_MASK:
            if not attributes & _CONTROL:  # a transaction marker: no message (as the fetcher)
                _read_v2(data, at, start, offsets, keys, values)
        else:
            batch = MemoryRecords(data[at:end]).next_batch()
            for record in batch or ():
                if record.offset >= start:
                    offsets.append(record.offset)
                    keys.append(record.key)
                    values.append(record.value)
        at = end
    return (offsets, keys, values), values


_V2_HEADER = 61  # bytes before a v2 batch's first record (DefaultRecordBase.HEADER_STRUCT)
_MAGIC_END = 17  # base offset 8, length 4, CRC (v0/v1) or leader epoch (v2) 4, magic 1
_CODEC_MASK = 0x07
_CONTROL = 0x20


def _read_v2(data: bytes, at: int, start: int, offsets: list[int], keys: list[bytes | None],
             values: list[bytes | None]) -> None:
    """The records of the uncompressed v2 batch at `at`: each is its length, attributes,
    timestamp delta, offset delta, key, value and headers, the numbers zigzag varints.

    Each varint of one or two bytes (nearly all of them: lengths and deltas under 8,192) is
    read inline; a call per varint was most of the decoding's cost."""
    base = int.from_bytes(data[at:at + 8], "big", signed=True)
    count = int.from_bytes(data[at + 57:at + 61], "big", signed=True)
    pos = at + _V2_HEADER
    for _ in range(count):
        n = data[pos]
        if n < 0x80:
            pos += 1
        elif data[pos + 1] < 0x80:
            n, pos = n & 0x7F | data[pos + 1] << 7, pos + 2
        else:
            n, pos = _uvarint(data, pos)
        after = pos + ((n >> 1) ^ -(n & 1))
        pos += 1  # past the attributes byte
        while data[pos] >= 0x80:  # past the timestamp delta
            pos += 1
        pos += 1
        n = data[pos]
        if n < 0x80:
            pos += 1
        elif data[pos + 1] < 0x80:
            n, pos = n & 0x7F | data[pos + 1] << 7, pos + 2
        else:
            n, pos = _uvarint(data, pos)
        offset = base + ((n >> 1) ^ -(n & 1))
        n = data[pos]
        if n < 0x80:
            pos += 1
        elif data[pos + 1] < 0x80:
            n, pos = n & 0x7F | data[pos + 1] << 7, pos + 2
        else:
            n, pos = _uvarint(data, pos)
        key = None
        if not n & 1:  # a length of -1 (zigzag 1): no key
            key = data[pos:pos + (n >> 1)]
            pos += n >> 1
        n = data[pos]
        if n < 0x80:
            pos += 1
        elif data[pos + 1] < 0x80:
            n, pos = n & 0x7F | data[pos + 1] << 7, pos + 2
        else:
            n, pos = _uvarint(data, pos)
        if offset >= start:
            offsets.append(offset)
            keys.append(key)
            values.append(None if n & 1 else data[pos:pos + (n >> 1)])
        pos = after  # past the headers


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos` before its zigzag decoding, and the position after it."""
    value, shift = 0, 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


COLLECT_EVERY = 20_000
"""Messages polled between two collections of kafka-python's reference cycles: a few ms each.
Not tied to the ledger's transactions (`DEFAULT_COMMIT` messages while behind): the cycles
hold the fetched responses, so what they keep is bounded by the messages polled between two
collections, whatever a transaction holds."""


class KafkaSource:
    """A member of a consumer group, as the service's `Source` port."""

    def __init__(self, settings: ConsumerSettings, *,
                 on_rebalance: Callable[[str, list[tuple[str, int]]], None] | None = None) -> None:
        self.settings = settings
        self._first_polled: dict[TopicPartition, int] = {}
        self._per_batch = 1.0  # messages per record batch, as seen so far
        self._uncollected = 0  # messages polled since the last `_collect_cycles`
        self._group = _Rebalances(on_rebalance)
        try:
            self.consumer = KafkaConsumer(
                bootstrap_servers=servers(settings.bootstrap_servers),
                client_id=CLIENT_ID,
                group_id=settings.group,
                enable_auto_commit=False,
                auto_offset_reset=settings.auto_offset_reset,
                max_poll_interval_ms=settings.max_poll_interval_ms,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=settings.heartbeat_interval_ms,
                request_timeout_ms=settings.request_timeout_ms,
                bootstrap_timeout_ms=settings.bootstrap_timeout_ms,
                fetch_max_bytes=settings.fetch_max_bytes,
                max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
                **settings.extra,
            )
            # Record batches rather than records (`_BatchRecords`); kafka-python has no
            # public way to hand the batches on undecoded.
            self.consumer._fetcher.PartitionRecords = _BatchRecords
            self.consumer.subscribe(list(settings.topics), listener=self._group)
        except KafkaError as error:
            raise StreamError(str(error)) from error

    @property
    def decode(self) -> Decode[tuple[bytes, int], Records]:
        return decode_chunk

    def poll(self, timeout_s: float, max_records: int) -> list[Chunk]:
        batches = max(1, round(max_records / self._per_batch))
        # Read by kafka-python each time it makes a fetch request (no public way to change it).
        self.consumer._fetcher.config["fetch_max_wait_ms"] = (
            self.settings.fetch_max_wait_ms if timeout_s else
            min(BUSY_FETCH_WAIT_MS, self.settings.fetch_max_wait_ms))
        try:
            polled = self.consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=batches)
        except KafkaError as error:
            raise StreamError(f"poll: {error}") from error
        out: list[Chunk] = []
        for tp, fetched in polled.items():
            if fetched and tp not in self._first_polled:
                self._first_polled[tp] = fetched[0].chunk.start
            out.extend(f.chunk for f in fetched)
        if out:
            count = sum(c.count for c in out)
            self._per_batch = max(1.0, count / len(out))
            self._uncollected += count
            self._collect_cycles()
        return out

    def rewind(self) -> None:
        """Seek each assigned partition back to its committed offset (or, with none committed
        yet, to the first offset this member polled there)."""
        try:
            for tp in self.consumer.assignment():
                offset = self.consumer.committed(tp)
                if offset is None:
                    offset = self._first_polled.get(tp)
                if offset is not None:
                    self.consumer.seek(tp, offset)
        except KafkaError as error:
            raise StreamError(f"rewind: {error}") from error

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self._collect_cycles()
        # Only partitions this member still owns: after a rebalance, another member reads
        # the rest and commits its own progress there.
        owned = self.consumer.assignment()
        wanted = {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                  for (topic, partition), offset in offsets.items()}
        wanted = {tp: offset for tp, offset in wanted.items() if tp in owned}
        if not wanted:
            return
        try:
            self.consumer.commit(wanted, timeout_ms=self.settings.request_timeout_ms)
        except KafkaError as error:
            raise StreamError(str(error)) from error

    def _collect_cycles(self) -> None:
        """Free kafka-python's garbage cycles once COLLECT_EVERY messages were polled since
        the last time (at a commit, the heap about to be trimmed, or at the poll that passes
        it inside a longer transaction). A poll that finds nothing fetched while a fetch is on
        its way (every poll that does not wait, while batches are in the parse workers) times
        out in kafka-python, and the timeout's exception keeps its traceback's frames, whose
        locals hold the fetches in flight and so, once they complete, their responses (up to
        fetch_max_bytes each):
        reference cycles only the collector frees. `mot kafka ingest` records with fewer
        collections (service/importing.py `fewer_collections`), so they piled up, the faster
        the more: 150 MB of responses by 1,000,000 messages (bench/scaling_notes.toml)."""
        if self._uncollected >= COLLECT_EVERY:
            self._uncollected = 0
            gc.collect()

    def lag(self) -> int | None:
        """Highwater minus position over the assigned partitions, from the last fetch responses."""
        try:
            total = 0
            for tp in self.consumer.assignment():
                high = self.consumer.highwater(tp)
                position = self.consumer._subscription.assignment[tp].position
                if high is None or position is None:
                    return None
                total += max(high - position.offset, 0)
            return total
        except (KafkaError, KeyError, AttributeError):
            return None

    def keep_alive(self) -> None:
        # A poll with every partition paused: it heartbeats the poll interval, takes part in
        # a rebalance (revoking, rejoining; batches of a partition this member loses are
        # still recorded, and the new owner's repeats skipped by the stored offsets), and
        # hands over no message, so no position moves. Should a partition newly assigned
        # by that rebalance hand some over, its position goes back to where they began.
        try:
            paused = self.consumer.assignment()
            self.consumer.pause(*paused)
            try:
                polled = self.consumer.poll(timeout_ms=0, max_records=1)
            finally:
                self.consumer.resume(*(paused & self.consumer.assignment()))
            for tp, fetched in polled.items():
                if fetched:
                    self.consumer.seek(tp, fetched[0].chunk.start)
        except KafkaError as error:
            log.debug("keep-alive poll: %s", error)

    def in_group(self) -> bool:
        return bool(self._group.settled)

    def close(self) -> None:
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except KafkaError as error:  # leaving the group is best effort; the session times out anyway
            log.warning("closing the consumer: %s", error)


class KafkaSink:
    """A producer, as the service's `Sink` port: `flush` says whether everything was written."""

    def __init__(self, bootstrap_servers: str, *, linger_ms: int = 5, batch_size: int = 256 * 1024,
                 max_block_ms: int = 60_000, flush_timeout_s: float = 120.0,
                 bootstrap_timeout_ms: int = 30_000,
                 extra: Mapping[str, Any] | None = None) -> None:
        self.flush_timeout_s = flush_timeout_s
        self.failures: list[BaseException] = []
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=servers(bootstrap_servers),
                client_id=CLIENT_ID,
                acks="all",
                linger_ms=linger_ms,
                batch_size=batch_size,
                max_block_ms=max_block_ms,
                bootstrap_timeout_ms=bootstrap_timeout_ms,
                **dict(extra or {}),
            )
        except KafkaError as error:
            # As the ingest says it: "KafkaTimeoutError: Unable to bootstrap from [...]" was
            # all mot kafka publish and export said of a broker that was not there.
            raise StreamError(f"cannot reach the Kafka broker at {bootstrap_servers} "
                              f"(--bootstrap-servers): {error}") from error

    def send(self, message: Outgoing) -> None:
        try:
            future = self.producer.send(message.topic, value=message.value, key=message.key,
                                        headers=list(message.headers))
        except KafkaError as error:
            raise StreamError(f"send to {message.topic}: {error}") from error
        future.add_errback(self.failures.append)

    def flush(self) -> None:
        try:
            self.producer.flush(timeout=self.flush_timeout_s)
        except KafkaError as error:
            raise StreamError(f"flush: {error}") from error
        if self.failures:
            first, count = self.failures[0], len(self.failures)
            self.failures = []
            raise StreamError(f"{count} message(s) not written: {first}")

    def close(self) -> None:
        try:
            self.producer.close(timeout=10)
        except KafkaError as error:
            log.warning("closing the producer: %s", error)


def ensure_topics(bootstrap_servers: str, topics: Iterable[str], *, partitions: int = 1,
                  replication_factor: int = 1, configs: Mapping[str, str] | None = None,
                  timeout_ms: int = 30_000) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers(bootstrap_servers), client_id=CLIENT_ID,
                                 request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
    except KafkaError as error:
        raise StreamError(f"cannot reach the Kafka broker: {error}") from error
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in dict.fromkeys(topics) if t not in existing]
        created: list[str] = []
        for topic in wanted:
            spec: dict[str, Any] = {"num_partitions": partitions,
                                    "replication_factor": replication_factor}
            if configs:
                spec["configs"] = dict(configs)
            try:
                admin.create_topics({topic: spec}, timeout_ms=timeout_ms)
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as error:
        raise StreamError(f"creating topics: {error}") from error
    finally:
        admin.close()


COMPACTED = {"cleanup.policy": "compact"}
