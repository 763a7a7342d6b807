"""Use cases of the quarantine: list, summarise, inspect, fix, replay and drop rejected messages."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from mot.domain.quarantine import Quarantined, summarise
from mot.service.ports import LedgerStore

if TYPE_CHECKING:
    from mot.service.ledger import Fix, LedgerService, Summary


class NotQuarantined(LookupError):
    """Ids named that are not in the quarantine (nothing was done)."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(f"no quarantined message {', '.join(map(str, ids))}")
        self.ids = ids


class QuarantineService:
    """The quarantine of one ledger. Replaying and fixing validate again, so they use the
    write side, which is built only when they ask for it (it loads the wire schema)."""

    def __init__(self, store: LedgerStore, ledger: Callable[[], LedgerService]) -> None:
        self.store = store
        self._ledger = ledger

    def entries(self, limit: int | None = None, *, field: str | None = None,
             reason: str | None = None) -> list[Quarantined]:
        """Rejected messages, oldest first: rejected for `field`, whose reason holds `reason`."""
        return self.store.quarantine(limit=limit, field=field, reason=reason)

    def get(self, quarantine_id: int) -> Quarantined | None:
        found = self.store.quarantine(ids=[quarantine_id])
        return found[0] if found else None

    def select(self, ids: Collection[int], field: str | None = None,
               reason: str | None = None) -> list[Quarantined]:
        """The messages with these ids (all when none) that the filters select;
        `NotQuarantined` when an id is not in the quarantine."""
        entries = self.store.quarantine(ids=list(ids) if ids else None, field=field,
                                        reason=reason)
        if ids:
            missing = sorted(set(ids) - {e.id for e in self.store.quarantine(ids=list(ids))})
            if missing:
                raise NotQuarantined(missing)
        return entries

    def summary(self) -> list[dict[str, object]]:
        """Rejected messages grouped by field and reason, most frequent first."""
        return summarise(self.store.quarantine_reasons())

    def count(self) -> int:
        return self.store.quarantine_count()

    def by_tenant(self) -> dict[str | None, int]:
        """Quarantined messages by the tenant whose they are (None: naming no tenant)."""
        return self.store.quarantine_by_tenant()

    def drop(self, ids: Collection[int]) -> int:
        """Delete these entries for good; returns how many there were."""
        return self.store.drop_quarantined(ids) if ids else 0

    def replay(self, ids: Collection[int] | None = None) -> Summary:
        """Validate entries again (all, or these ids); what goes in leaves the quarantine."""
        return self._ledger().replay_quarantine(None if ids is None else list(ids))

    def fix(self, quarantine_id: int, payload: bytes) -> Fix:
        """Replay an entry as `payload`, a corrected message (see `LedgerService.fix_quarantined`)."""
        return self._ledger().fix_quarantined(quarantine_id, payload)
