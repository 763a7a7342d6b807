"""Use cases of the projections: bring up to date, follow, rebuild, report status."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from mot.domain.timefmt import parse_utc
from mot.projections.ports import LIVE, REBUILD, NotificationLog, ProjectionStore

if TYPE_CHECKING:
    from mot.projections.alerts import AlertPolicy
    from mot.projections.engine import Engine, Progress
    from mot.projections.persons import PersonLimits
    from mot.service.fold_workers import StoreOpener
    from mot.service.resilience import Retry

# A first `mot project` over a long ledger takes the rebuild path: same result, built faster.
BULK_THRESHOLD = 20_000
# A rebuild of at least this many events folds in worker processes by default: below
# it, starting them costs more than they save.
PARALLEL_THRESHOLD = 50_000  # where bench/project_bench.py shows workers start to pay
MAX_FOLD_WORKERS = 4


@dataclass(frozen=True, slots=True)
class Status:
    head: int
    position: int
    rebuild: tuple[int, str, int | None] | None
    quarantined: int
    # When the first event not projected yet was recorded (None: nothing waits), and when
    # the live projection and an unfinished rebuild last saved a page (RFC 3339, UTC).
    oldest_unprojected_at: str | None = None
    last_progress_at: str | None = None
    rebuild_progress_at: str | None = None
    now: datetime | None = None  # when this status was read

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)

    @property
    def lag_seconds(self) -> float:
        """The age of the oldest event not projected yet (0 when the projections are up to date)."""
        if self.oldest_unprojected_at is None or self.now is None:
            return 0.0
        return max((self.now - parse_utc(self.oldest_unprojected_at)).total_seconds(), 0.0)

    def stalled(self, after_s: float) -> bool:
        """Events wait, and the live projection has saved no page for `after_s` seconds."""
        if not self.lag or self.now is None:
            return False
        since = self.last_progress_at or self.oldest_unprojected_at
        return since is not None and (self.now - parse_utc(since)).total_seconds() > after_s


class ProjectionService:
    """Keeps projections up to date with the ledger."""

    def __init__(self, store: ProjectionStore, log: NotificationLog, *, page_size: int = 1000,
                 quarantine_count: Callable[[], int] = lambda: 0,
                 store_url: str | None = None, open_store: StoreOpener | None = None,
                 rebuild_positions: int | None = None,
                 alert_policy: Callable[[], AlertPolicy] | None = None,
                 person_limits: Callable[[], PersonLimits] | None = None) -> None:
        self.store = store
        self.alert_policy = alert_policy  # read when the engine is built (mot.toml's [alerts])
        self.person_limits = person_limits  # ... and mot.toml's [persons]
        self.log = log
        self.page_size = page_size
        self.rebuild_positions = rebuild_positions  # ledger positions a rebuild loads at once
        self.quarantine_count = quarantine_count
        # What fold workers open, and how (the composition root's opener); None: the store
        # cannot be shared with other processes (an in-memory one).
        self.store_url = store_url if open_store is not None else None
        self.open_store = open_store

    @cached_property
    def engine(self) -> Engine:
        """Built on first use: a query of up-to-date projections never loads the folds."""
        from mot.projections.engine import Engine

        return Engine(self.store, self.log, page_size=self.page_size,
                      positions_per_load=self.rebuild_positions,
                      alerts=self.alert_policy() if self.alert_policy else None,
                      persons=self.person_limits() if self.person_limits else None)

    def position(self) -> int:
        state = self.store.state(LIVE)
        return state[0] if state else 0

    def project(self, progress: Progress | None = None, *, page_size: int | None = None) -> int:
        """Apply everything recorded so far, `page_size` events a transaction (default: the
        service's); return the number of events applied."""
        position = self.position()
        head = self.log.head()
        if position >= head:
            return 0  # up to date: nothing to load or apply
        if position == 0 and head > BULK_THRESHOLD:
            with self._rebuilding(progress):
                if self.position() == 0:  # nobody built them while this process waited
                    built = self._rebuild(progress)
                    # Events, not positions: a rolled-back append leaves a gap in the
                    # positions (PostgreSQL's sequence does not go back).
                    return self.log.count(built)
        return self.engine.catch_up(LIVE, progress, page_size=page_size)

    def follow(self, *, poll_seconds: float = 0.5, progress: Progress | None = None,
               should_stop: Callable[[], bool] = lambda: False,
               on_applied: Callable[[int], None] | None = None,
               page_size: int | None = None, retry: Retry | None = None) -> None:
        """Keep projecting as moments arrive, until `should_stop()` says so. With `retry`,
        a round that fails because the store is unreachable is retried with backoff (each
        page commits with its position, so nothing is lost or applied twice)."""
        from mot.service.resilience import RETRIED, run_round

        while not should_stop():
            applied = run_round(retry, lambda: self.project(progress, page_size=page_size))
            if applied is RETRIED:
                continue
            if on_applied is not None and applied:
                on_applied(applied)
            if not applied:
                time.sleep(poll_seconds)

    def replay(self, progress: Progress | None = None, *, restart: bool = False,
               workers: int | None = None) -> int:
        """Rebuild every projection from the start of the log into fresh tables, then swap.

        `workers` processes extract the moments and fold the customers (None: one per
        CPU, up to 4, for a ledger of PARALLEL_THRESHOLD events or more; 0: all in this
        process).
        """
        with self._rebuilding(progress):
            return self._rebuild(progress, restart=restart, workers=workers)

    def _rebuilding(self, progress: Progress | None) -> AbstractContextManager[None]:
        """The store's rebuild lock: two processes never work on one rebuild (a second
        `mot replay`, or followers that all find a fresh store, wait their turn)."""
        def waiting() -> None:
            if progress is not None:
                progress("waiting for another process's rebuild to end", 0, 0)

        return self.store.rebuild_lock(waiting)

    def _rebuild(self, progress: Progress | None, *, restart: bool = False,
                 workers: int | None = None) -> int:
        workers = self.fold_workers(workers)
        if not workers:
            return self.engine.rebuild(progress, restart=restart)
        from mot.service.fold_workers import FoldPool

        assert self.store_url is not None and self.open_store is not None
        with FoldPool(self.store_url, workers, self.open_store) as pool:
            return self.engine.rebuild(progress, restart=restart, folder=pool, stager=pool.stage,
                                       links=pool.links)

    def fold_workers(self, asked: int | None) -> int:
        """How many fold worker processes a rebuild uses."""
        if self.store_url is None:
            return 0
        if asked is not None:
            return asked
        if self.log.head() < PARALLEL_THRESHOLD:
            return 0
        # Here, not at the top: it loads multiprocessing, which a query never needs and
        # would otherwise pay for at start-up.
        from mot.service.workers import usable_cpus

        return min(MAX_FOLD_WORKERS, usable_cpus())

    def status(self) -> Status:
        head, position = self.log.head(), self.position()
        oldest = None
        if position < head:
            waiting = self.log.notifications(position, 1)
            oldest = waiting[0][1].recorded_at if waiting else None
        return Status(head, position, self.store.state(REBUILD), self.quarantine_count(),
                      oldest, self.store.progress_time(LIVE), self.store.progress_time(REBUILD),
                      datetime.now(UTC))
