"""A rebuild's fold phase spread over worker processes.

Reading a customer's moments and folding them is Python work that needs no
writer, and it is most of a rebuild. Each worker opens the store itself (the
rebuild's moments table is committed by then) and folds ranges of customers
with the engine's own `fold_range`; the main process writes the rows in order,
each range with the position it reached, exactly as it does when it folds
them itself. So a crash still loses and repeats nothing, and the result is
the same row for row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mot.projections.ports import REBUILD
from mot.service.workers import OrderedPool

if TYPE_CHECKING:
    from mot.projections.engine import CustomerRange, FoldedRange
    from mot.service.bootstrap import Services

_opened: dict[str, Services] = {}  # in a worker: the store it reads


def _open(url: str) -> None:
    from mot.service.bootstrap import open_store

    _opened["store"] = open_store(url)


def _fold(first: Any, last: Any, version: int) -> FoldedRange:
    services = _opened["store"]
    with services.projection_store.reader(name=REBUILD) as reader:
        return services.projections.engine.fold_range(reader, first, last, version)


class FoldPool:
    """A `RangeFolder` whose ranges are folded in worker processes, results in order."""

    def __init__(self, url: str, workers: int) -> None:
        self._pool: OrderedPool[FoldedRange] = OrderedPool(
            workers,
            "a fold worker process stopped unexpectedly (killed, or out of memory); what was "
            "committed stays, and running mot replay again resumes the rebuild",
            _open, (url,),
        )
        self._pool.start()  # the workers open the store while the moments are loaded

    def __call__(self, ranges: Iterable[CustomerRange], version: int) -> Iterator[FoldedRange]:
        tasks = ((None, (first, last, version)) for first, last in ranges)
        for _, folded in self._pool.imap(_fold, tasks):
            yield folded

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> FoldPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
