"""The import job: streams of messages recorded batch by batch, with limits and a clean stop.

`mot import` builds the inputs (files, standard input, a source system's export) and
prints; everything between is here. `Recorder` is the loop every bulk path shares
(`record_stream` is it over one stream): batches parsed here or in worker
processes, checked and appended in order, committed together every `commit_every`
messages, with `committed` saying what the last commit made durable. `ImportJob` runs it
over several inputs and stops in one of four ways, each an `ImportStopped` carrying what
was committed: Ctrl-C (`Interrupted`), an input that fails part-way (`InputFailed`), too
many rejects (`TooManyRejects`, after recording what was valid, or recording nothing with
`all_or_nothing`), a worker process that died (`WorkerStopped`).
"""

from __future__ import annotations

import gc
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import islice
from time import monotonic
from typing import Protocol

from mot.domain.ledger import Outcome
from mot.domain.messages import Rejection, parse_message
from mot.domain.timefmt import utc_now
from mot.service.ledger import DEFAULT_BATCH, DEFAULT_COMMIT, Incoming, LedgerService, Summary
from mot.service.parsing import ParsePool, default_workers, parse_here
from mot.service.workers import WorkerFailed
from mot.wording import counted

PARALLEL_FROM_BYTES = 8 * 1024 * 1024
"""A worker process takes a few hundred milliseconds to start: worth it from some 30,000 lines."""
SAMPLES = 5
"""Rejects quoted when an import fails for too many of them."""


class ImportInput(Protocol):
    """One input of an import: a file, standard input, a source system's export."""

    @property
    def name(self) -> str: ...

    @property
    def size(self) -> int | None: ...

    def messages(self) -> Iterator[Incoming]: ...

    def watch(self, tick: Callable[[], None]) -> None: ...

    def lines(self) -> tuple[int, int]: ...

    def done(self) -> float | None: ...

    def failure(self) -> str | None: ...

    def close(self) -> None: ...


# -- the reject limit ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RejectLimit:
    """At most `count` rejected messages, or at most `percent` of those read."""

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> RejectLimit:
        """`N` (a count) or `P%` (a share of the messages read); ValueError otherwise."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
        if match is None:
            raise ValueError(f"{text!r} is neither a count (10) nor a percentage (0.5%)")
        number, percent = match.groups()
        if percent:
            value = float(number)
            if value > 100:
                raise ValueError(f"{text!r}: a percentage is at most 100%")
            return cls(percent=value)
        if "." in number:
            raise ValueError(f"{text!r}: a count of rejects is a whole number")
        return cls(count=int(number))

    def passed(self, rejected: int, read: int) -> bool:
        if self.count is not None:
            return rejected > self.count
        assert self.percent is not None
        return read > 0 and rejected * 100 > self.percent * read

    def passed_already(self, rejected: int) -> bool:
        """Passed whatever comes next (only a count can tell before the end)."""
        return self.count is not None and rejected > self.count

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.count:,}"


# -- the report ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did: its counts (committed ones, once it stopped), lines and inputs."""

    summary: Summary = field(default_factory=Summary)
    lines: int = 0  # lines read, blank ones included
    blank: int = 0
    inputs: list[str] = field(default_factory=list)  # the inputs read, to the end or not
    current: str | None = None  # the input being read
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason), the first few
    empty: list[str] = field(default_factory=list)  # the inputs read to the end without a message

    def as_dict(self) -> dict[str, float | int]:
        return {**self.summary.as_dict(), "lines": self.lines, "blank": self.blank}

    def counts(self) -> str:
        return self.summary.counts()


class ImportStopped(Exception):
    """The import stopped before its end; `report` counts what was committed."""

    exit_code = 1

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


class Interrupted(ImportStopped):
    """Ctrl-C (SIGINT): the open transaction is rolled back, what was committed stays."""

    exit_code = 130


class InputFailed(ImportStopped):
    """An input could not be read to its end (a truncated gzip, an I/O error)."""


class TooManyRejects(ImportStopped):
    """More rejects than `--max-rejects` allows."""


class WorkerStopped(ImportStopped):
    """A parse worker process died (killed, out of memory)."""


# -- the loop --------------------------------------------------------------------------------------


class _RolledBack(Exception):
    """Raised inside the open transaction to roll it back."""


class Recorder:
    """Records streams of messages: batches parsed (here or by `workers` processes) while
    earlier ones are checked and appended in order, one transaction per `commit_every`.

    A commit costs about a page write per moment it holds, so fewer, larger ones import
    several times faster; a crash loses at most the uncommitted batches, and importing
    again puts them in. `committed` is what the last commit made durable.
    """

    def __init__(self, ledger: LedgerService, *, batch_size: int = DEFAULT_BATCH,
                 commit_every: int | None = DEFAULT_COMMIT, samples: int = 0) -> None:
        self.ledger = ledger
        self.batch_size = batch_size
        self.commit_every = commit_every  # None: one transaction for everything
        self.summary = Summary()
        self.committed = Summary()
        self.samples = samples
        self.rejects: list[tuple[str, str]] = []
        self._unit: ExitStack | None = None
        self._uncommitted = 0

    @contextmanager
    def unit(self) -> Iterator[None]:
        """The span of the recording: what is uncommitted at its end commits, and an
        exception out of it rolls that back."""
        with ExitStack() as unit, fewer_collections():
            self._unit = unit
            try:
                yield
                self.commit()
            finally:
                self._unit = None

    def record(self, items: Iterable[Incoming], *, workers: int = 0,
               progress: Callable[[Summary], None] | None = None,
               check: Callable[[Recorder], None] | None = None) -> Summary:
        """Record a stream inside `unit()`; returns its counts. `check` runs after each batch
        (it may raise to stop), `progress` gets the stream's counts so far."""
        assert self._unit is not None, "record() runs inside unit()"
        ledger, store = self.ledger, self.ledger.store
        counts = Summary()
        with ExitStack() as resources:
            batches = _batches(items, self.batch_size)
            if workers:
                pool = resources.enter_context(ParsePool(workers, split=store.sealed()))
                parsed_batches = pool.map(batches, ledger.clock)
            else:
                parsed_batches = parse_here(batches, ledger.clock)
            for batch, parsed, now in parsed_batches:
                if not self._uncommitted:
                    self._unit.enter_context(store.transaction())
                result = ledger.record_parsed(batch, parsed, now)
                outcomes = result.outcomes()
                counts.add(outcomes, len(batch), result.waited)
                self.summary.add(outcomes, len(batch), result.waited)
                if outcomes[Outcome.QUARANTINED] and len(self.rejects) < self.samples:
                    self.rejects += [(item.origin, v.rejection.reason)
                                     for item, v in zip(batch, result.verdicts, strict=True)
                                     if v.rejection is not None][:self.samples - len(self.rejects)]
                self._uncommitted += len(batch)
                if self.commit_every is not None and self._uncommitted >= self.commit_every:
                    self.commit()
                if check is not None:
                    check(self)
                if progress is not None:
                    progress(counts)
        return counts

    def commit(self) -> None:
        """Commit what is open now."""
        assert self._unit is not None
        with _interrupts_held():
            self._unit.close()
            self.committed = replace(self.summary)
            self._uncommitted = 0


@contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C waits until the block ends: a commit and the count of what it committed are
    one step, so what an interrupted import reports as committed is exact."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


GC_GENERATION0 = 50_000
"""Allocations between two collections of the youngest generation while recording (700 by
default): a batch's thousands of short-lived objects are mostly freed before one."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Less of the cyclic garbage collector while a bulk path records: it found nothing to
    free there, yet scanned each batch's objects several times (and at every full collection
    every object from start-up, which `gc.freeze` sets aside). The collector's settings are
    the process's: only the main thread changes them (an import's or a Kafka ingest's own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(before[0], GC_GENERATION0), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _batches(items: Iterable[Incoming], size: int) -> Iterator[list[Incoming]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# -- the job ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportOptions:
    batch_size: int = DEFAULT_BATCH
    commit_every: int = DEFAULT_COMMIT
    workers: int | None = None  # None: parse workers for a large input (or stdin), none for a small
    max_rejects: RejectLimit | None = None
    all_or_nothing: bool = False  # one transaction: a passed limit (any reject without one) records nothing

    @property
    def limit(self) -> RejectLimit | None:
        if self.max_rejects is None and self.all_or_nothing:
            return RejectLimit(count=0)
        return self.max_rejects


Progress = Callable[[ImportReport, float | None], None]
"""Told the report so far (its summary is everything read, committed or not) and the
fraction of the current input done, after each batch and each chunk read."""


class ImportJob:
    """Import inputs in order into the ledger; see the module's docstring for how it stops."""

    def __init__(self, ledger: LedgerService, options: ImportOptions = ImportOptions(),
                 progress: Progress | None = None) -> None:
        self.ledger = ledger
        self.options = options
        self.progress = progress

    def run(self, inputs: Sequence[ImportInput]) -> ImportReport:
        """Record every input; the report of what was recorded, or ImportStopped."""
        options, limit = self.options, self.options.limit
        started = monotonic()
        recorder = Recorder(self.ledger, batch_size=options.batch_size,
                            commit_every=None if options.all_or_nothing else options.commit_every,
                            samples=SAMPLES if limit is not None else 0)
        report = ImportReport(summary=recorder.summary)
        done_lines = [0, 0]

        def check(recorder: Recorder) -> None:
            if options.all_or_nothing and limit is not None and limit.passed_already(
                    recorder.summary.quarantined):
                raise _RolledBack()

        def stopped(kind: type[ImportStopped], message: str) -> ImportStopped:
            committed = ImportReport(replace(recorder.committed, started=started), report.lines,
                                     report.blank, inputs=list(report.inputs),
                                     current=report.current, rejects=recorder.rejects)
            return kind(message, committed)

        try:
            with recorder.unit():
                for source in inputs:
                    report.current = source.name
                    report.inputs.append(source.name)
                    read_before = recorder.summary.read
                    self._record_one(recorder, source, report, done_lines, check)
                    if recorder.summary.read == read_before and source.failure() is None:
                        report.empty.append(source.name)
                    failure = source.failure()
                    if failure is not None:
                        if options.all_or_nothing:
                            raise _RolledBack()
                        recorder.commit()
                        raise stopped(InputFailed, failure)
                if limit is not None and options.all_or_nothing and limit.passed(
                        recorder.summary.quarantined, recorder.summary.read):
                    raise _RolledBack()
        except KeyboardInterrupt:
            raise stopped(Interrupted, "interrupted") from None
        except _RolledBack:
            failed = next((s.failure() for s in inputs if s.failure() is not None), None)
            if failed is not None:
                raise stopped(InputFailed, failed + "; with --all-or-nothing nothing was recorded") \
                    from None
            raise stopped(TooManyRejects, self._too_many(recorder, limit, rolled_back=True)) from None
        except WorkerFailed as error:
            raise stopped(WorkerStopped, f"{report.current}: {error}") from error
        finally:
            for source in inputs:
                source.close()
        report.current = None
        if limit is not None and limit.passed(recorder.summary.quarantined, recorder.summary.read):
            raise stopped(TooManyRejects, self._too_many(recorder, limit, rolled_back=False))
        report.summary = replace(recorder.summary, started=started)
        return report

    def _record_one(self, recorder: Recorder, source: ImportInput, report: ImportReport,
                    done_lines: list[int], check: Callable[[Recorder], None]) -> None:
        before = done_lines[:]

        def tell(*_: object) -> None:
            lines, blank = source.lines()
            report.lines, report.blank = before[0] + lines, before[1] + blank
            if self.progress is not None:
                self.progress(report, source.done())

        items = source.messages()
        source.watch(tell)
        workers = self.options.workers
        if workers is None:
            size = source.size
            workers = default_workers() if size is None or size > PARALLEL_FROM_BYTES else 0
        recorder.record(items, workers=workers, progress=tell, check=check)
        lines, blank = source.lines()
        report.lines, report.blank = before[0] + lines, before[1] + blank
        done_lines[:] = [report.lines, report.blank]

    @staticmethod
    def _too_many(recorder: Recorder, limit: RejectLimit | None, *, rolled_back: bool) -> str:
        s = recorder.summary
        share = f" ({s.quarantined * 100 / s.read:.1f}%)" if s.read else ""
        what = ("so nothing was recorded (--all-or-nothing)" if rolled_back
                else "the valid ones are recorded, the rejected ones are in the quarantine")
        lines = [f"too many rejects: {s.quarantined:,} of {counted(s.read, 'message')} read{share} "
                 f"were rejected, over --max-rejects {limit}; {what}"]
        lines += [f"  {origin}: {reason}" for origin, reason in recorder.rejects]
        return "\n".join(lines)


# -- a dry run -------------------------------------------------------------------------------------


def preview_problem(item: Incoming, now: datetime) -> str | None:
    """For a dry run: why the ledger would quarantine this message, or None when it is valid.

    Checks what can be checked without the store (the mapping, the wire schema, the rules
    between fields); whether a moment is new, a duplicate or a conflict needs the ledger.
    """
    if item.problem is not None:
        return item.problem
    parsed = parse_message(item.message, now)
    return parsed.reason if isinstance(parsed, Rejection) else None


def preview(inputs: Sequence[ImportInput], valid: Callable[[Incoming], None],
            rejected: Callable[[Incoming, str], None]) -> ImportReport:
    """Check each message without the store: `valid` or `rejected` is told of each."""
    report = ImportReport()
    now = utc_now()
    try:
        for source in inputs:
            report.inputs.append(source.name)
            for item in source.messages():
                report.summary.read += 1
                problem = preview_problem(item, now)
                if problem is None:
                    report.summary.recorded += 1
                    valid(item)
                else:
                    report.summary.quarantined += 1
                    rejected(item, problem)
            lines, blank = source.lines()
            report.lines += lines
            report.blank += blank
    finally:
        for source in inputs:
            source.close()
    return report


def record_stream(
    ledger: LedgerService,
    items: Iterable[Incoming],
    *,
    batch_size: int = DEFAULT_BATCH,
    commit_every: int = DEFAULT_COMMIT,
    workers: int = 0,
    progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Record a stream batch by batch (memory stays flat), with `workers` processes parsing
    the next batches meanwhile, one transaction per `commit_every` messages: a `Recorder`
    over one stream."""
    recorder = Recorder(ledger, batch_size=batch_size, commit_every=commit_every)
    with recorder.unit():
        return recorder.record(items, workers=workers, progress=progress)
