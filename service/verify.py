"""`mot verify`: recompute every projection from the ledger and compare with the stored tables.

The ledger is read from the start, page by page, and folded by the same engine
that keeps the live tables (its incremental path: `Engine.catch_up`) into a
scratch SQLite store in a temporary folder: nothing is held in memory but a
page, whatever the ledger's length. Then each projection's rows are read from
both stores in key order, a page at a time, and compared field by field; every
difference is one `Difference` (key, field, stored, expected). With a tenant,
only that tenant's events are folded and its rows compared.

Not compared: `version` (the ledger position of the page at which a row last
changed: a rebuild, the live pages and the scratch fold's own pages stamp
different ones for the same content).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mot.bootstrap import Services, open_store
from mot.domain.events import LedgerEvent, MomentAmended, MomentRecorded
from mot.projections.engine import Engine
from mot.projections.ports import LIVE, NotificationLog
from mot.projections.schema import PROJECTIONS
from mot.service.export import PAGE_ROWS

IGNORED = frozenset({"version"})
FOLD_PAGE = 20_000  # events folded per transaction of the scratch store


@dataclass(frozen=True, slots=True)
class Difference:
    """One field of one row that the stored table and the recomputation disagree on."""

    projection: str
    key: tuple[Any, ...]
    field: str  # "(row)" when the row is missing on one side
    stored: Any
    expected: Any

    def as_record(self) -> dict[str, Any]:
        return {"projection": self.projection, "key": "/".join(str(k) for k in self.key),
                "field": self.field, "stored": self.stored, "expected": self.expected}


@dataclass(slots=True)
class Verification:
    events: int = 0
    rows: int = 0
    differences: int = 0
    shown: list[Difference] | None = None


def _tenant_of(event: LedgerEvent) -> str:
    if isinstance(event, MomentRecorded | MomentAmended):
        return str(event.moment["tenant"])
    return event.tenant


class TenantLog:
    """The ledger's notification log with only one tenant's events (positions kept)."""

    def __init__(self, log: NotificationLog, tenant: str) -> None:
        self.log = log
        self.tenant = tenant

    def notifications(self, after: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        # An empty page means "the end" to the engine: read on past pages of other tenants.
        head = self.log.head()
        while after < head:
            page = self.log.notifications(after, limit)
            if not page:
                return []
            kept = [(n, e) for n, e in page if _tenant_of(e) == self.tenant]
            if kept:
                return kept
            after = page[-1][0]
        return []

    def head(self) -> int:
        return self.log.head()

    def count(self, upto: int) -> int:
        return self.log.count(upto)


def verify(services: Services, *, tenant: str | None = None, show: int = 100,
           progress: Callable[[str, int, int], None] | None = None,
           scratch_dir: str | None = None) -> Verification:
    """Recompute the projections of `services`' ledger in a scratch store; compare."""
    folder = Path(tempfile.mkdtemp(prefix="mot-verify-", dir=scratch_dir))
    result = Verification(shown=[])
    try:
        scratch = open_store(str(folder / "verify.db"))
        try:
            log: NotificationLog = services.ledger_store
            if tenant is not None:
                log = TenantLog(log, tenant)
            result.events = Engine(scratch.projection_store, log,
                                   page_size=FOLD_PAGE).catch_up(LIVE, progress)
            for name, projection in PROJECTIONS.items():
                columns = [c for c in projection.columns if c not in IGNORED]
                key_at = [columns.index(k) for k in projection.key]
                where = " WHERE tenant = ?" if tenant is not None and "tenant" in columns else ""
                params: Sequence[Any] = (tenant,) if where else ()
                stored = _rows(services, projection.name, columns, projection.key, where, params)
                expected = _rows(scratch, projection.name, columns, projection.key, where, params)
                for difference in _compare(name, columns, key_at, stored, expected, result):
                    result.differences += 1
                    if result.shown is not None and len(result.shown) < show:
                        result.shown.append(difference)
        finally:
            scratch.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _rows(services: Services, table: str, columns: Sequence[str], key: Sequence[str], where: str,
          params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    # Byte order on both stores, so that the two sides' keys merge (PostgreSQL's default
    # collation sorts text otherwise).
    collate = services.backend.byte_order
    order = ", ".join(f"{k}{collate}" if k not in ("seq",) else k for k in key)
    statement = f"SELECT {', '.join(columns)} FROM {table}{where} ORDER BY {order}"
    with services.backend.read() as tx:
        for page in services.backend.stream_rows(tx, statement, params, PAGE_ROWS):
            yield from page


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return (a is None and b is None) or (a is not None and b is not None and int(a) == int(b))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _compare(name: str, columns: Sequence[str], key_at: Sequence[int],
             stored: Iterator[tuple[Any, ...]], expected: Iterator[tuple[Any, ...]],
             result: Verification) -> Iterator[Difference]:
    """A merge of two key-ordered row streams: missing rows, extra rows, differing fields."""
    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(row[i] for i in key_at)

    s, e = next(stored, None), next(expected, None)
    while s is not None or e is not None:
        result.rows += 1
        if e is None or (s is not None and key(s) < key(e)):
            assert s is not None
            yield Difference(name, key(s), "(row)", "present", "absent")
            s = next(stored, None)
        elif s is None or key(e) < key(s):
            yield Difference(name, key(e), "(row)", "absent", "present")
            e = next(expected, None)
        else:
            for column, a, b in zip(columns, s, e, strict=True):
                if not _same(a, b):
                    yield Difference(name, key(s), column, a, b)
            s, e = next(stored, None), next(expected, None)
