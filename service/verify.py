"""`mot verify`: recompute every projection from the ledger and compare with the stored tables.

The projections are recomputed by the rebuild path, the same streaming fold as
`mot replay` (`Engine.rebuild`), into a scratch projection store (`ScratchOpener`:
the composition root gives a SQLite store in a temporary folder): the current
moments are copied in a range of the log at a time, then every person is folded
once in key order, a range of persons at a time (in worker processes for a long
ledger, as a replay does). Nothing is held in memory but a range, and the work
per event does not grow with the ledger's length or a customer's history (the
incremental path, which an earlier verify used, refolds each touched customer's
whole history at every page). Then each projection's rows are read from both
stores in key order (`TableReader`), a page at a time, and compared field by
field; every difference is one `Difference` (key, field, stored, expected). With
a tenant, only that tenant's moments and links are folded and its rows compared.

Not compared: `version` (the ledger position at which a row last changed: a
rebuild stamps every row with the position it was built up to, the live pages
each row with its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mot.domain.events import LedgerEvent, LinkEvent, MomentAmended, MomentRecorded
from mot.projections.engine import Engine, MomentStager, RangeFolder
from mot.projections.ports import NotificationLog, ProjectionStore
from mot.projections.schema import PROJECTIONS
from mot.service.export import TableRead, TableReader

if TYPE_CHECKING:
    from mot.projections.alerts import AlertPolicy
    from mot.projections.persons import PersonLimits

IGNORED = frozenset({"version"})
# Ledger positions whose moments are copied into the scratch store at once: what a range
# holds in memory (a replay's 100,000 are read inside the database, not through Python),
# with the data keys of its customers (about 1.4 kB each; on a long ledger nearly every
# moment of a range is another customer's, so fewer positions, fewer keys at once).
COPY_POSITIONS = 10_000
# Rows read at a time from each side of the comparison: an export's pages of 32,768 rows,
# held as Python values on both sides, were most of verify's memory at 1,000,000 moments.
COMPARE_ROWS = 2_048


@dataclass(frozen=True, slots=True)
class Scratch:
    """A fresh, empty projection store to rebuild into, its tables' reader, and how its
    rebuild gets the ledger's moments and folds its persons."""

    store: ProjectionStore
    tables: TableReader
    stager: MomentStager  # the ledger's current moments of ranges of positions, staged in `store`
    folder: RangeFolder | None  # folds ranges of persons in worker processes (None: here)


ScratchOpener = Callable[[str | None, str | None, int | None], AbstractContextManager[Scratch]]
"""Opens a scratch store (in a temporary folder under the one given, None: the system's) whose
stager copies only the moments of the tenant given (None: all) and whose folder has the worker
processes asked (None: as many as a replay of the ledger would use, 0: none), and removes it
when the block ends."""


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

    def link_events_upto(self, upto: int, part: tuple[int, int] = (0, 1)) -> list[LinkEvent]:
        return [e for e in self.log.link_events_upto(upto, part) if e.tenant == self.tenant]

    def head(self) -> int:
        return self.log.head()

    def count(self, upto: int) -> int:
        return self.log.count(upto)


class Verifier:
    """Recomputes the projections of a ledger (`log`) and compares them with the stored
    ones (read through `tables`)."""

    def __init__(self, log: NotificationLog, tables: TableReader, scratch: ScratchOpener, *,
                 alerts: Callable[[], AlertPolicy] | None = None,
                 persons: Callable[[], PersonLimits] | None = None) -> None:
        self.log = log
        self.tables = tables
        self.scratch = scratch
        self.alerts = alerts  # mot.toml's policies, as the live engine folds with them
        self.persons = persons

    def verify(self, *, tenant: str | None = None, show: int = 100,
               progress: Callable[[str, int, int], None] | None = None,
               scratch_dir: str | None = None, workers: int | None = None) -> Verification:
        """Rebuild the projections in a scratch store; compare."""
        result = Verification(shown=[])
        with self.scratch(scratch_dir, tenant, workers) as scratch:
            log = self.log if tenant is None else TenantLog(self.log, tenant)
            engine = Engine(scratch.store, log, page_size=COPY_POSITIONS,
                            positions_per_load=COPY_POSITIONS,
                            alerts=self.alerts() if self.alerts else None,
                            persons=self.persons() if self.persons else None)
            built = engine.rebuild(progress, folder=scratch.folder, stager=scratch.stager)
            result.events = self.log.count(built)
            for name, projection in PROJECTIONS.items():
                columns = tuple(c for c in projection.columns if c not in IGNORED)
                key_at = [columns.index(k) for k in projection.key]
                # Byte order on both stores, so that the two sides' keys merge (PostgreSQL's
                # default collation sorts text otherwise).
                read = TableRead(name, columns, order=projection.key, byte_order=True,
                                 tenant=tenant if "tenant" in columns else None,
                                 page_rows=COMPARE_ROWS)
                stored = _rows(self.tables, read)
                expected = _rows(scratch.tables, read)
                for difference in _compare(name, columns, key_at, stored, expected, result):
                    result.differences += 1
                    if result.shown is not None and len(result.shown) < show:
                        result.shown.append(difference)
        return result


def _rows(tables: TableReader, read: TableRead) -> Iterator[tuple[Any, ...]]:
    for page in tables.pages(read):
        yield from zip(*page, strict=True)


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
