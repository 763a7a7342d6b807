"""The composition root: configuration (`--store`, `MOT_STORE`) in, wired services out.

The one place that knows both the service layer and the adapters: it picks the
store's backend from its URL and hands each use case the adapters that
implement its ports (the ledger, the projection tables, tokens, the tenant
ledger of the HTTP API, the Kafka changelog). Entry points (the CLI, the HTTP
app, the Kafka commands) call `open_store` and then only the service layer.
Nothing connects at import time, and what a command does not use is built
(and imported) on first use: a query loads none of the write side.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from mot.adapters.stores.urls import redacted

# The store's adapters and services are imported where a store is opened whole
# (`open_store`): `mot export --format parquet --no-refresh` of a PostgreSQL store
# (`arrow_exporter`) needs none of them, and their import was much of its start-up
# (bench/NOTES.md).
if TYPE_CHECKING:

    from mot.adapters.stores.changelog import SqlChangelog
    from mot.adapters.stores.ledger import SqlLedger
    from mot.adapters.stores.offsets import SqlOffsets
    from mot.adapters.stores.projection_tables import SqlProjectionStore
    from mot.adapters.stores.sql import SqlBackend
    from mot.adapters.stores.table_reads import SqlTableReader
    from mot.projections.alerts import AlertPolicy
    from mot.projections.persons import PersonLimits
    from mot.projections.ports import StagedRange
    from mot.service.access import AccessService, TenantLedger
    from mot.service.alert_config import AlertConfig
    from mot.service.alerting import AlertOutbox, AlertService, Backoff, Deliverer, OverdueCheck
    from mot.service.erasure import ErasureService
    from mot.service.export import Column, Exporter
    from mot.service.ledger import LedgerService
    from mot.service.moments import MomentHistory
    from mot.service.persons import PersonService
    from mot.service.projecting import ProjectionService
    from mot.service.quarantine import QuarantineService
    from mot.service.queries import QueryService
    from mot.service.streaming import NotificationLog
    from mot.service.timeline import Timelines
    from mot.service.verify import Scratch, Verifier

__all__ = ["DEFAULT_STORE", "Services", "arrow_exporter", "connect", "open_store", "redacted",
           "store_url"]

DEFAULT_STORE = "./mot.db"


def store_url(explicit: str | None = None) -> str:
    """The store to use: `--store`, else `MOT_STORE`, else `./mot.db`."""
    return explicit or os.environ.get("MOT_STORE") or DEFAULT_STORE


def is_postgres(url: str) -> bool:
    """Whether a store URL names a PostgreSQL database (else it is a SQLite file)."""
    return url.startswith(("postgresql://", "postgres://"))


def connect(url: str, *, create: bool = True) -> SqlBackend:
    """A backend for a store URL: a `postgresql://` URL, else a SQLite file path.

    With `create` false a store that does not exist yet is not made: `StoreNotFound`.
    A server that cannot be reached is `StoreUnavailable`, with the driver's reason.
    """
    if is_postgres(url):
        from mot.adapters.stores.postgres import PostgresBackend

        return PostgresBackend(url, create=create)
    if "://" in url and not url.startswith("sqlite://"):
        raise ValueError(f"unsupported store URL {redacted(url)!r}: use a SQLite file path or a "
                         "postgresql:// URL")
    from mot.adapters.stores.sqlite import SQLiteBackend

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SQLiteBackend(path, create=create)


def _positive_int(name: str) -> int | None:
    """A tuning setting from the environment (None when unset)."""
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number above 0, not {value!r}")
    return int(value)


def _alert_policy() -> AlertPolicy:
    """The alert thresholds of mot.toml (MOT_CONFIG, else ./mot.toml), read when an engine is
    built: a bad [alerts] section stops projecting with one error naming the key."""
    from mot.service.alert_config import load_alert_config

    return load_alert_config().policy


def _person_limits() -> PersonLimits:
    """Merge protection's limits of mot.toml ([persons], a tenant's own), read when an engine
    is built or a person shown: a bad section is one error naming the key."""
    from mot.service.persons import load_person_limits

    return load_person_limits()


@dataclass
class Services:
    """Everything an entry point needs, wired to one store."""

    backend: SqlBackend
    ledger_store: SqlLedger
    projection_store: SqlProjectionStore
    projections: ProjectionService
    queries: QueryService
    _closed: bool = field(default=False, repr=False)

    @cached_property
    def ledger(self) -> LedgerService:
        """The write side, built on first use (it loads the wire schema and pydantic)."""
        from mot.service.ledger import LedgerService

        return LedgerService(self.ledger_store)

    @cached_property
    def quarantine(self) -> QuarantineService:
        """List, inspect, fix, replay and drop rejected messages."""
        from mot.service.quarantine import QuarantineService

        return QuarantineService(self.ledger_store, lambda: self.ledger)

    @cached_property
    def moments(self) -> MomentHistory:
        """One moment's history, by id or source reference."""
        from mot.service.moments import MomentHistory

        return MomentHistory(self.ledger_store)

    @cached_property
    def timelines(self) -> Timelines:
        """A customer's moments in fold order, with the running stage and balance."""
        from mot.service.timeline import Timelines

        return Timelines(self.ledger_store, self.projection_store)

    @cached_property
    def persons(self) -> PersonService:
        """One person's ids, links and moments (`mot identity show`), and the suspect ones."""
        from mot.service.persons import PersonService

        return PersonService(self.projection_store, self.ledger_store, _person_limits)

    @cached_property
    def access(self) -> AccessService:
        """API tokens, kept in the store's `api_tokens` table (created on first use)."""
        from mot.adapters.stores.tokens import SqlTokenStore
        from mot.service.access import AccessService

        return AccessService(SqlTokenStore(self.backend))

    @cached_property
    def tenant_ledger(self) -> TenantLedger:
        """Recording on behalf of one tenant at a time (the HTTP API's writes)."""
        from mot.service.access import TenantLedger

        return TenantLedger(self.ledger_store)

    @cached_property
    def alert_outbox(self) -> AlertOutbox:
        """The alerts the projections raised and their delivery state (`mot alerts`)."""
        from mot.adapters.stores.alert_outbox import SqlAlertOutbox

        return SqlAlertOutbox(self.backend)

    @cached_property
    def alerts(self) -> AlertService:
        """List and acknowledge alerts (`mot alerts list|ack`, GET /v1/alerts)."""
        from mot.service.alerting import AlertService

        return AlertService(self.alert_outbox)

    def deliverer(self, config: AlertConfig, *, backoff: Backoff | None = None,
                  lease_s: float = 60.0, batch: int = 200, timeout_s: float = 10.0) -> Deliverer:
        """Delivers the outbox to the destinations `config` names (`mot alerts deliver`)."""
        from mot.adapters.alert_destinations import destinations
        from mot.service.alerting import Backoff, Deliverer

        return Deliverer(self.alert_outbox, destinations(config, timeout_s=timeout_s),
                         backoff=backoff or Backoff(), lease_s=lease_s, batch=batch,
                         history_us=config.policy.longest_window_us)

    def overdue_check(self, config_path: str | None = None, every_s: float | None = None,
                      warn: Callable[[str], None] | None = None) -> OverdueCheck:
        """Raises `overdue` alerts for open requests past their targets (the long-running
        commands run it every `every_s`, default mot.toml's `[alerts] overdue_check`);
        mot.toml is read again at each run; `warn` hears, once, of targets that never can."""
        from mot.service.alert_config import load_alert_config
        from mot.service.alerting import OverdueCheck

        return OverdueCheck(self.alert_outbox, lambda: load_alert_config(config_path),
                            every_s=every_s, warn=warn)

    @cached_property
    def erasures(self) -> ErasureService:
        """Erasure of a person (`mot erase`, `mot erasures`, POST /v1/erasures)."""
        from mot.adapters.stores.erasure import SqlErasures
        from mot.service.erasure import ErasureService
        from mot.service.queries import Query

        return ErasureService(SqlErasures(self.backend, self.ledger_store),
                              lambda: self.projections.project(),
                              lambda tenant, customer: bool(self.queries.run(
                                  Query("persons", tenant=tenant, customer=customer))))

    @cached_property
    def changelog(self) -> SqlChangelog:
        """The projections' changes in order, for `mot kafka publish`."""
        from mot.adapters.stores.changelog import SqlChangelog

        return SqlChangelog(self.backend)

    def offsets(self, group: str) -> SqlOffsets:
        """A Kafka consumer group's offsets, kept in the ledger's transactions (`mot kafka ingest`)."""
        from mot.adapters.stores.offsets import SqlOffsets

        return SqlOffsets(self.backend, group)

    @cached_property
    def tables(self) -> SqlTableReader:
        """Whole-table reads, a page at a time, and the moments counted per day."""
        from mot.adapters.stores.table_reads import SqlTableReader

        return SqlTableReader(self.backend)

    def serving(self) -> None:
        """This process serves the store beside other processes for as long as it runs (mot
        serve): see SqlTableReader.serving. It keeps fewer customers' keys too (Keystore.serving):
        its memory then does not grow with the customers it has met, nor with the pages of the
        store's indexes its SQLite connections cache (SQLiteBackend.serving)."""
        self.backend.serving()
        self.tables.serving()
        self.ledger_store.serving()

    def ingesting(self) -> None:
        """This process records from a stream for as long as it runs, maybe beside other
        ingests into the same store (mot kafka ingest): it reads tables as `serving` has it,
        and its SQLite connection that appends keeps a smaller page cache once another writer
        commits (SQLiteBackend.bound_shared_cache), where mot serve's always does: one ingest
        alone keeps the large cache that saves its appends a read each. It keeps as many
        customers' keys as mot import (not mot serve's fewer): a stream meets its customers
        in no order, so with fewer most moments of a large tenant missed their key and read
        it again (bench/NOTES.md)."""
        self.tables.serving()
        self.backend.bound_shared_cache()

    @cached_property
    def exporter(self) -> Exporter:
        """Every projection and the current moments to files (`mot export`)."""
        from mot.service.export import Exporter

        return Exporter(self.tables, self.queries, _export_sort)

    def report(self, *, tenant: str | None = None, since: datetime | None = None,
               until: datetime | None = None) -> str:
        """The HTML report page (`mot report`), of one tenant or of every tenant."""
        from mot.service.report import report

        return report(self.queries, self.tables, tenant=tenant, since=since, until=until)

    @cached_property
    def verifier(self) -> Verifier:
        """The projections recomputed from the ledger and compared (`mot verify`)."""
        from mot.service.verify import Verifier

        return Verifier(self.ledger_store, self.tables,
                        partial(scratch_store, self.projection_store,
                                self.projections.fold_workers,
                                forget_keys=partial(_forget_keys, self.ledger_store),
                                source_url=self.projections.store_url),
                        alerts=_alert_policy, persons=_person_limits)

    def unavailable(self, error: BaseException) -> bool:
        """Whether `error` says the store could not be reached (a service retries then)."""
        return self.backend.unavailable(error)

    @property
    def notification_log(self) -> NotificationLog:
        """The ledger's events in the order it recorded them, for `mot kafka export`."""
        return self.ledger_store

    def close(self) -> None:
        if "tables" in self.__dict__:  # the ADBC databases of its Arrow reads, if it made one
            self.tables.close()
        self.backend.close()

    def discard(self) -> bool:
        """Close, and remove the store when this process made it and it holds nothing yet
        (a refused first import leaves no empty store behind); False when it is kept."""
        if "tables" in self.__dict__:
            self.tables.close()
        return self.backend.discard()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def scratch_store(source: SqlProjectionStore, fold_workers: Callable[[int | None], int],
                  under: str | None = None, tenant: str | None = None,
                  workers: int | None = None, *,
                  forget_keys: Callable[[], None] = lambda: None,
                  source_url: str | None = None) -> Iterator[Scratch]:
    """A new SQLite store in a temporary folder (under `under`), removed afterwards: what
    `mot verify` rebuilds the projections into. Its moments are copied from `source`'s
    ledger (only `tenant`'s when given) a range at a time, and its persons are folded in
    worker processes that open it by its path, as many as a replay of the source would use
    (`fold_workers(workers)`); with `source_url` (the source's, when other processes can open
    it) those workers also copy the ranges, several at once, else this process does.
    `forget_keys` drops the data keys the source's ledger opened a range's sealed moments
    with, once the range is copied."""
    from mot.adapters.stores import scratch_folders
    from mot.projections.engine import MomentStager, PositionRange
    from mot.service.verify import Scratch

    folder = scratch_folders.make_owned(under)  # locked: a sweep knows it is not left over
    try:
        path = str(folder / "verify.db")
        with open_store(path) as scratch, ExitStack() as stack:
            target = scratch.projection_store

            def stager(ranges: Iterable[PositionRange], as_of: int) -> Iterator[StagedRange]:
                for after, upto in ranges:
                    yield _copied(source, forget_keys, target, after, upto, as_of, tenant)

            copy: MomentStager = stager
            pool = None
            workers = fold_workers(workers)
            if workers:
                from mot.service.fold_workers import FoldPool

                pool = stack.enter_context(FoldPool(path, workers, open_store, source=source_url))
                if source_url is not None:
                    copy = partial(pool.copy, partial(_copy_range, tenant=tenant))
            yield Scratch(target, scratch.tables, copy, pool)
    finally:
        scratch_folders.remove_owned(folder)


def _copy_range(source: Services, scratch: Services, after: int, upto: int, as_of: int, *,
                tenant: str | None) -> StagedRange:
    """`mot verify`'s copy of a range in a fold worker (`FoldPool.copy`), as `scratch_store`'s
    own stager makes it in this process."""
    return _copied(source.projection_store, partial(_forget_keys, source.ledger_store),
                   scratch.projection_store, after, upto, as_of, tenant)


def _copied(source: SqlProjectionStore, forget_keys: Callable[[], None],
            target: SqlProjectionStore, after: int, upto: int, as_of: int,
            tenant: str | None) -> StagedRange:
    """The source's current moments of a range (only `tenant`'s when given), staged in the
    target, and the data keys they were opened with dropped (`forget_keys`)."""
    rows = source.moment_rows(after, upto, as_of, tenant=tenant)
    # The next range has mostly other customers: keys kept for it would make the memory grow
    # with the ledger's customers, up to the keystore's cache.
    forget_keys()
    return target.stage_rows(rows)


def _forget_keys(ledger: SqlLedger) -> None:
    """Drops the data keys `ledger` opened sealed moments with (it keeps none if it does not seal)."""
    if ledger.sealed():
        ledger.sealing.keystore.forget()


@contextmanager
def arrow_exporter(url: str | None = None) -> Iterator[Exporter | None]:
    """An exporter of the live tables as Arrow pages (`mot export --format parquet
    --no-refresh`) that does not open the store whole (its ledger, projection tables and
    services): a PostgreSQL store is read through the ADBC driver alone, a SQLite file by
    the driver beside its backend (whose read transaction keeps the file's log in place:
    `SqlTableReader`). None for a store at another schema version, or none there at all
    (opening it whole sets it up or says why)."""
    url = store_url(url)
    if not is_postgres(url):
        with _sqlite_arrow_exporter(url) as exporter:
            yield exporter
        return
    from mot.adapters.stores.table_reads import PostgresArrowReader
    from mot.adapters.stores.urls import libpq_uri, postgres_server

    reader = PostgresArrowReader(libpq_uri(*postgres_server(url)))
    reader.open_early()  # the connections open while the modules below are imported
    try:
        from mot.adapters.stores.sql import SCHEMA_VERSION
        from mot.service.export import Exporter

        if reader.schema_version() == SCHEMA_VERSION:
            yield Exporter(reader, None, _export_sort)
        else:
            yield None
    finally:
        reader.close()


@contextmanager
def _sqlite_arrow_exporter(url: str) -> Iterator[Exporter | None]:
    """`arrow_exporter` of a SQLite file: its backend and table reader alone. Opening the
    store whole built the ledger, the projection tables and their services for nothing
    (measured: bench/NOTES.md)."""
    from mot.adapters.stores.table_reads import SqlTableReader
    from mot.service.export import Exporter

    try:
        backend = connect(url, create=False)
    except Exception:  # no store there, not a store URL: opening it whole says why
        yield None
        return
    reader = SqlTableReader(backend)
    try:
        if backend.ready and backend.local_file() is not None:
            yield Exporter(reader, None, _export_sort)
        else:
            yield None
    finally:
        reader.close()  # the ADBC databases before the store's connections (Services.close)
        backend.close()


def _export_sort(pages: Iterator[list[Any]], cols: Sequence[Column], order: Sequence[str]
                 ) -> Iterator[list[Any]]:
    """The `RowSorter` of an `--as-of` export: a scratch SQLite file in an owned folder that an
    erasure sweeps if the export is killed (adapters/stores/scratch_sort.py). Imported on
    first use, not at the top: tempfile, shutil, random, bz2 and lzma come with it, which a
    live export never uses (bench/NOTES.md)."""
    from mot.adapters.stores.scratch_sort import sorted_pages

    return sorted_pages(pages, cols, order)


def open_store(url: str | None = None, *, page_size: int = 1000, create: bool = True) -> Services:
    """Services wired to the store at `url` (see `store_url`).

    With `create` false (read-only commands) a store that does not exist yet is
    `StoreNotFound` and nothing is made: no file, no folder, no table.
    """
    from mot.adapters.stores.ledger import SqlLedger
    from mot.adapters.stores.projection_tables import SqlProjectionStore
    from mot.service.projecting import ProjectionService
    from mot.service.queries import QueryService

    url = store_url(url)
    backend = connect(url, create=create)
    if backend.ready:
        ledger_store = SqlLedger(backend)
        projection_store = SqlProjectionStore(backend)
    else:
        with backend.schema_lock():
            ledger_store = SqlLedger(backend)
            projection_store = SqlProjectionStore(backend)
            backend.mark_ready()
    if ledger_store.sealed():
        # Late: the keystore (and OpenSSL) load only when a rebuild opens sealed events.
        projection_store.opener = lambda tx, boxes: ledger_store.sealing.opened_texts(tx, boxes)
        projection_store.unsealer = lambda: ledger_store.sealing.in_database()
        projection_store.forget_keys = partial(_forget_keys, ledger_store)
    shared = not url.endswith(":memory:")  # worker processes open the store by its URL
    projections = ProjectionService(
        projection_store, ledger_store, page_size=page_size,
        quarantine_count=ledger_store.quarantine_count,
        store_url=url if shared else None, open_store=open_store if shared else None,
        rebuild_positions=_positive_int("MOT_REBUILD_POSITIONS"),
        alert_policy=_alert_policy, person_limits=_person_limits,
    )
    return Services(
        backend, ledger_store, projection_store, projections,
        QueryService(projection_store, lambda: projections.engine),
    )
