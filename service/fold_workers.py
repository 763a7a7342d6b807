"""A rebuild's work spread over worker processes: its moments phase and its fold phase.

Both phases are mostly work that needs no writer. In the moments phase each
worker extracts the moments of ranges of the log into stages of their own
(the database's JSON work, `ProjectionStore.stage_moments`); in the fold phase
each worker reads ranges of customers from the rebuild's moments table
(committed by then) and folds them with the engine's own `fold_range`. Each
worker opens the store itself, with the composition root's `open_store` that
the projection service was given (the service layer does not wire stores).
The main process copies the stages in, and writes the folded rows, in order,
each with the position it reached, exactly as it does when it does the work
itself. So a crash still loses and repeats
nothing, and the result is the same row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from mot.projections.ports import REBUILD, ProjectionStore
from mot.service.workers import OrderedPool, trim_heap

if TYPE_CHECKING:
    from mot.domain.events import LinkEvent
    from mot.projections.engine import CustomerRange, Engine, FoldedRange, PositionRange
    from mot.projections.ports import NotificationLog, StagedRange


class HasEngine(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def log(self) -> NotificationLog: ...


class WorkerStore(Protocol):
    """What a worker reads through: the store's projection tables and its engine."""

    @property
    def projection_store(self) -> ProjectionStore: ...

    @property
    def projections(self) -> HasEngine: ...


# Opens a store by its URL in a worker process; a module-level function, so that it can be
# sent to the worker by reference (the workers are spawned, not forked).
StoreOpener = Callable[[str], WorkerStore]

_opened: dict[str, WorkerStore] = {}  # in a worker: the store it reads


def _open(open_store: StoreOpener, url: str, source: str | None) -> None:
    _opened["store"] = open_store(url)
    if source is not None:
        _opened["source"] = open_store(source)


def _fold(first: Any, last: Any, version: int) -> FoldedRange:
    # What the worker's last task freed (a stage's, a range's) glibc keeps in its heaps, so
    # a worker's resident memory was the most any task ever used; handed back, it is about
    # what this range uses.
    trim_heap()
    services = _opened["store"]
    with services.projection_store.reader(name=REBUILD) as reader:
        return services.projections.engine.fold_range(reader, first, last, version)


def _links(upto: int, part: tuple[int, int]) -> list[LinkEvent]:
    return _opened["store"].projections.log.link_events_upto(upto, part)


def _stage(after: int, upto: int, as_of: int) -> StagedRange:
    staging = _opened["store"].projection_store.staging
    assert staging is not None, "a store opened by its URL stages moments"
    staged = staging.stage_moments(after, upto, as_of)
    trim_heap()  # before the worker waits for its next task (see `_fold`)
    return staged


# Copies the moments of a range of positions of one store's ledger (the first) into a stage of
# another (the second), as of a position: `mot verify`'s copy into its scratch store, made by
# the composition root, which knows what the stores are (a module-level function, sent by
# reference).
RangeCopier = Callable[[Any, Any, int, int, int], "StagedRange"]


def _copy(copier: RangeCopier, after: int, upto: int, as_of: int) -> StagedRange:
    return copier(_opened["source"], _opened["store"], after, upto, as_of)


class FoldPool:
    """The rebuild's worker processes: a `RangeFolder` (ranges of customers folded, results
    in order) and a `MomentStager` (ranges of the log staged, stages in order)."""

    def __init__(self, url: str, workers: int, open_store: StoreOpener, *,
                 source: str | None = None) -> None:
        """Workers that open the store at `url` (and the one at `source`, which `copy` reads)."""
        self._pool: OrderedPool[Any] = OrderedPool(
            workers,
            "a fold worker process stopped unexpectedly (killed, or out of memory); what was "
            "committed stays, and running mot replay again resumes the rebuild",
            _open, (open_store, url, source),
        )
        self._pool.start()  # the workers open the store while the rebuild starts

    def __call__(self, ranges: Iterable[CustomerRange], version: int) -> Iterator[FoldedRange]:
        tasks = ((None, (first, last, version)) for first, last in ranges)
        for _, folded in self._pool.imap(_fold, tasks):
            yield folded

    def links(self, upto: int) -> Iterator[LinkEvent]:
        """The link events up to `upto`, a part read by each worker (by position modulo their
        number: however the links lie in the log), from the call on: a rebuild's main process
        then only writes their states, and at 1,000,000 moments their opening (62,000 data
        keys, 37,000 boxes) was most of its work before it could copy in the first stage."""
        parts = self._pool.workers
        tasks = ((None, (upto, (i, parts))) for i in range(parts))
        return (event for _, part in self._pool.started(_links, tasks) for event in part)

    def stage(self, ranges: Iterable[PositionRange], as_of: int) -> Iterator[StagedRange]:
        """The stages of these ranges, in order; the workers start on the first ones now (the
        rebuild reads the links meanwhile)."""
        tasks = ((None, (after, upto, as_of)) for after, upto in ranges)
        return (stage for _, stage in self._pool.started(_stage, tasks))

    def copy(self, copier: RangeCopier, ranges: Iterable[PositionRange], as_of: int
             ) -> Iterator[StagedRange]:
        """`stage` from the `source` store's ledger: `copier(source, store, after, upto, as_of)`
        in the workers, stages in order."""
        tasks = ((None, (copier, after, upto, as_of)) for after, upto in ranges)
        return (stage for _, stage in self._pool.started(_copy, tasks))

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> FoldPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
