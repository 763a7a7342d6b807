"""Parsing batches of messages, here or in worker processes, ahead of the ledger writes.

Validating a message (JSON, the wire schema, identity) costs about as much as
checking and appending it, and both are Python: one process does one or the
other. A bulk import therefore parses in worker processes while the main
process appends, batches in flight so neither waits. Results come back in
order. A worker hands a moment over as its JSON (bytes pickle for almost
nothing; a dict of strings costs more to unpickle than to validate), and the
main process keeps it as an `EncodedMoment`: a new moment, the common case,
is stored as that JSON without ever being decoded there.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, Protocol, TypeVar

import orjson

from mot.domain.events import EncodedMoment
from mot.domain.messages import Message, RecordMoment, Rejection, parse_message

Parsed = Message | Rejection
Compact = tuple[str, bytes] | Message | Rejection
"""A parsed message as a worker returns it: a moment as (id, JSON), anything else as is."""


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


def _parse_compact(messages: list[bytes | None], now: datetime) -> list[Compact | None]:
    # In a worker: None stands for an item that is not parsed (its source rejected it).
    out: list[Compact | None] = []
    for message in messages:
        if message is None:
            out.append(None)
            continue
        parsed = parse_message(message, now)
        if type(parsed) is RecordMoment:
            out.append((parsed.moment_id, orjson.dumps(parsed.moment)))
        else:
            out.append(parsed)
    return out


def _expand(items: Sequence[HasMessage], compact: list[Compact | None]) -> list[Parsed]:
    parsed: list[Parsed] = []
    for item, entry in zip(items, compact, strict=True):
        if type(entry) is tuple:
            parsed.append(RecordMoment(entry[0], EncodedMoment(entry[1])))
        elif entry is None:
            parsed.append(Rejection("", item.problem or ""))
        else:
            parsed.append(entry)  # type: ignore[arg-type]
    return parsed


def parse_here(batches: Iterable[list[T]], clock: Callable[[], datetime]) -> Iterator[ParsedBatch[T]]:
    """(batch, parsed messages, time of recording) for each batch, parsed in this process."""
    for batch in batches:
        now = clock()
        yield batch, parse_items(batch, now), now


class WorkerFailed(RuntimeError):
    """A worker process died mid-import (killed, out of memory)."""


class ParsePool:
    """Worker processes that parse batches while this process records earlier ones.

    `map` keeps up to `ahead` batches in flight and yields results in order, so
    memory stays bounded whatever the length of the stream.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.ahead = 2 * workers + 1
        # spawn, not fork: the parent has database connections and their threads open.
        self._executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )

    def map(
        self, batches: Iterable[list[T]], clock: Callable[[], datetime]
    ) -> Iterator[ParsedBatch[T]]:
        """(batch, parsed messages, time of recording) for each batch, in order."""
        pending: deque[tuple[list[T], datetime, Future[list[Compact | None]]]] = deque()
        source = iter(batches)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.ahead:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                    break
                now = clock()
                messages = [item.message if item.problem is None else None for item in batch]
                pending.append((batch, now, self._executor.submit(_parse_compact, messages, now)))
            if not pending:
                return
            batch, now, future = pending.popleft()
            try:
                compact = future.result()
            except BrokenProcessPool as error:
                raise WorkerFailed(
                    "a validation worker process stopped unexpectedly (killed, or out of memory); "
                    "what was committed stays, and running the import again records the rest"
                ) from error
            yield batch, _expand(batch, compact), now

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_workers() -> int:
    """Parse workers for a bulk import: enough to keep one appending process busy."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(2, cpus - 1))
