"""The composition root: configuration (`--store`, `MOT_STORE`) in, wired services out.

Nothing connects at import time; `open_store` is called by an entry point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from mot.adapters.stores.ledger import SqlLedger
from mot.adapters.stores.projection_tables import SqlProjectionStore
from mot.adapters.stores.sql import SqlBackend
from mot.service.projecting import ProjectionService
from mot.service.queries import QueryService

if TYPE_CHECKING:
    from mot.service.ledger import LedgerService

DEFAULT_STORE = "./mot.db"


def store_url(explicit: str | None = None) -> str:
    """The store to use: `--store`, else `MOT_STORE`, else `./mot.db`."""
    return explicit or os.environ.get("MOT_STORE") or DEFAULT_STORE


def connect(url: str) -> SqlBackend:
    """A backend for a store URL: a `postgresql://` URL, else a SQLite file path."""
    if url.startswith(("postgresql://", "postgres://")):
        from mot.adapters.stores.postgres import PostgresBackend

        return PostgresBackend(url)
    if "://" in url and not url.startswith("sqlite://"):
        raise ValueError(f"unsupported store URL {url!r}: use a SQLite file path or a postgresql:// URL")
    from mot.adapters.stores.sqlite import SQLiteBackend

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SQLiteBackend(path)


def _positive_int(name: str) -> int | None:
    """A tuning setting from the environment (None when unset)."""
    value = os.environ.get(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name} must be a whole number above 0, not {value!r}")
    return int(value)


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

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str | None = None, *, page_size: int = 1000) -> Services:
    backend = connect(store_url(url))
    if backend.ready:
        ledger_store = SqlLedger(backend)
        projection_store = SqlProjectionStore(backend)
    else:
        with backend.schema_lock():
            ledger_store = SqlLedger(backend)
            projection_store = SqlProjectionStore(backend)
            backend.mark_ready()
    url = store_url(url)
    projections = ProjectionService(
        projection_store, ledger_store, page_size=page_size,
        quarantine_count=ledger_store.quarantine_count,
        # Worker processes open the store by its URL; an in-memory SQLite store has none.
        store_url=None if url.endswith(":memory:") else url,
        rebuild_positions=_positive_int("MOT_REBUILD_POSITIONS"),
    )
    return Services(
        backend, ledger_store, projection_store, projections,
        QueryService(projection_store, lambda: projections.engine),
    )
