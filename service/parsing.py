"""Parsing batches of messages, here or in worker processes, ahead of the ledger writes.

Validating a message (JSON, the wire schema, identity) costs about as much as
checking and appending it, and both are Python: one process does one or the
other. A bulk import therefore parses in worker processes while the main
process appends, batches in flight so neither waits. Results come back in
order. A worker hands a moment over as its JSON (bytes pickle for almost
nothing; a dict of strings costs more to unpickle than to validate), and the
main process keeps it as an `EncodedMoment`: a new moment, the common case,
is stored as that JSON without ever being decoded there. For a ledger that seals
personal fields (`split`, the default: every store made since sealing) the worker
hands the moment over split into its plain and personal parts instead, each
encoded (`domain/personal.py` `sealable`), and the main process only encrypts the
personal part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import orjson

from mot.domain.events import EncodedMoment
from mot.domain.identity import moment_stream_id
from mot.domain.messages import Message, RecordMoment, Rejection, new_record_moment, parse_message
from mot.domain.personal import sealable
from mot.service.workers import OrderedPool, steady_heap, usable_cpus

Parsed = Message | Rejection
Compact = (tuple[str, str, bytes, str] | tuple[str, str, bytes, bytes, str, str] | Message
           | Rejection)
"""A parsed message as a worker returns it: a moment as (id, tenant, JSON, stream id) or, split,
as (id, tenant, plain JSON, personal plaintext, customer id, stream id); anything else as is.
The stream id (`moment_stream_id`) is made in the worker, so the recording process does not."""


class HasMessage(Protocol):
    """An incoming message: its wire bytes, or why its source could not map it."""

    @property
    def message(self) -> bytes: ...

    @property
    def problem(self) -> str | None: ...


T = TypeVar("T", bound=HasMessage)
ParsedBatch = tuple[list[T], list[Parsed], datetime]


def parse_items(items: Sequence[HasMessage], now: datetime) -> list[Parsed]:
    """Parse a batch here; an item a source could not map is rejected with the source's reason."""
    return [
        parse_message(item.message, now) if item.problem is None else Rejection("", item.problem)
        for item in items
    ]


def _parse_compact(messages: list[bytes | None], now: datetime, split: bool = True
                   ) -> list[Compact | None]:
    # In a worker: None stands for an item that is not parsed (its source rejected it).
    out: list[Compact | None] = []
    for message in messages:
        if message is None:
            out.append(None)
            continue
        parsed = parse_message(message, now)
        if type(parsed) is RecordMoment:
            moment = parsed.moment
            moment_id, tenant = parsed.moment_id, parsed.tenant
            if split:
                plain, personal = sealable(moment)
                out.append((moment_id, tenant, plain, personal, moment["customer_id"],
                            moment_stream_id(tenant, moment_id)))
            else:
                out.append((moment_id, tenant, orjson.dumps(moment),
                            moment_stream_id(tenant, moment_id)))
        else:
            out.append(parsed)
    return out


def expand(items: Sequence[HasMessage], compact: list[Compact | None]) -> list[Parsed]:
    """A worker's compact results as the ledger's parsed messages (`items` line up with them)."""
    parsed: list[Parsed] = []
    for item, entry in zip(items, compact, strict=True):
        if type(entry) is tuple:  # (a RecordMoment is a named tuple, never a tuple itself)
            moment: Any = entry
            if len(moment) == 4:
                parsed.append(new_record_moment(
                    (moment[0], EncodedMoment(moment[2], None, moment[3]), moment[1])))
            else:
                parsed.append(new_record_moment(
                    (moment[0], EncodedMoment(None, moment[2:5], moment[5]), moment[1])))
        elif entry is None:
            parsed.append(Rejection("", item.problem or ""))
        else:
            parsed.append(entry)  # type: ignore[arg-type]
    return parsed


P = TypeVar("P")
M = TypeVar("M")
B = TypeVar("B")
Decode = Callable[[P], tuple[M, list[bytes | None]]]
"""Turns one encoded payload into (what else it says, its messages); None: no message there."""
Decoded = list[tuple[M, list[Compact | None]]]


def decode_compact(decode: Decode[P, M], payloads: list[P], now: datetime, split: bool = True
                   ) -> Decoded[M]:
    """Decode each payload and parse its messages (in a worker when a `ParsePool` runs it):
    a source whose records arrive still encoded (Kafka's record batches) is decoded where it
    is parsed, not in the process that records."""
    out: Decoded[M] = []
    for payload in payloads:
        meta, messages = decode(payload)
        out.append((meta, _parse_compact(messages, now, split)))
    return out


def decode_here(batches: Iterable[B | None], payloads: Callable[[B], list[P]],
                decode: Decode[P, M], clock: Callable[[], datetime], split: bool = True
                ) -> Iterator[tuple[B, Decoded[M], datetime]]:
    """(batch, its payloads decoded and parsed, time of recording), in this process; a
    batch None (nothing new yet, `OrderedPool.imap`) is passed over. `split`: see the
    module's docstring."""
    for batch in batches:
        if batch is None:
            continue
        now = clock()
        yield batch, decode_compact(decode, payloads(batch), now, split), now


def parse_here(batches: Iterable[list[T]], clock: Callable[[], datetime]) -> Iterator[ParsedBatch[T]]:
    """(batch, parsed messages, time of recording) for each batch, parsed in this process."""
    for batch in batches:
        now = clock()
        yield batch, parse_items(batch, now), now


class ParsePool:
    """Worker processes that parse batches while this process records earlier ones.

    `map` keeps a few batches in flight and yields results in order, so memory
    stays bounded whatever the length of the stream. `split`: whether moments come back
    split for a ledger that seals (the module's docstring).
    """

    def __init__(self, workers: int, split: bool = True) -> None:
        self.workers = workers
        self.split = split
        self._pool: OrderedPool[Any] = OrderedPool(
            workers,
            "a validation worker process stopped unexpectedly (killed, or out of memory); "
            "what was committed stays, and running the import again records the rest",
            initializer=steady_heap,
        )

    def map(
        self, batches: Iterable[list[T]], clock: Callable[[], datetime]
    ) -> Iterator[ParsedBatch[T]]:
        """(batch, parsed messages, time of recording) for each batch, in order."""
        for (batch, now), compact in self._pool.imap(_parse_compact,
                                                     _parse_tasks(batches, clock, self.split)):
            yield batch, expand(batch, compact), now

    def map_encoded(self, batches: Iterable[B | None], payloads: Callable[[B], list[P]],
                    decode: Decode[P, M], clock: Callable[[], datetime]
                    ) -> Iterator[tuple[B, Decoded[M], datetime]]:
        """`decode_here` in the workers: `decode` (a module-level function) and the
        payloads cross, the batch stays here; results in order. A batch None says the
        source has nothing new yet: the results ready are handed back meanwhile."""
        tasks = _decode_tasks(batches, payloads, decode, clock, self.split)
        for (batch, now), decoded in self._pool.imap(decode_compact, tasks):
            yield batch, decoded, now

    def start(self, *using: Callable[..., Any]) -> ParsePool:
        """Start the worker processes now, so that their start-up overlaps what this process
        does next (a consumer's group join) rather than the first batch; `using`: the
        module-level functions the tasks will pass, whose modules the workers import now."""
        self._pool.start(_imported, *using)
        return self

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# The tasks are generators, not generator expressions, which mypyc (mot/native.py) would
# build as lists: the whole input read before the first batch is parsed.
def _parse_tasks(batches: Iterable[list[T]], clock: Callable[[], datetime], split: bool
                 ) -> Iterator[tuple[tuple[list[T], datetime], tuple[list[bytes | None], datetime, bool]]]:
    for batch in batches:
        now = clock()
        yield (batch, now), ([i.message if i.problem is None else None for i in batch], now, split)


def _decode_tasks(batches: Iterable[B | None], payloads: Callable[[B], list[P]],
                  decode: Decode[P, M], clock: Callable[[], datetime], split: bool
                  ) -> Iterator[tuple[tuple[B, datetime], tuple[Decode[P, M], list[P], datetime, bool]]
                                | None]:
    for batch in batches:
        now = clock()
        yield None if batch is None else ((batch, now), (decode, payloads(batch), now, split))


def _imported(*using: Callable[..., Any]) -> None:
    """Nothing: the functions reaching the worker imported their modules there."""


def default_workers() -> int:
    """Parse workers for a bulk import: enough to keep one appending process busy."""
    return max(0, min(2, usable_cpus() - 1))
