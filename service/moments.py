"""Read-side use cases on single moments: resolve an id, show a moment's history."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mot.domain.events import LedgerEvent, MomentAmended, MomentRecorded, PersonErased, as_dict
from mot.domain.identity import derived_moment_id
from mot.service.ports import LedgerStore


class MomentHistory:
    """A moment's events, as `mot show` and `GET /v1/moments/{id}` give them."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    def events(self, moment_id: str, tenant: str | None = None) -> list[LedgerEvent]:
        """The moment's events in version order (none when the ledger has no such moment);
        without `tenant`, of the moment with that id in whichever tenant has one."""
        return self.store.stream(moment_id, tenant)

    def records(self, moment_id: str, tenant: str | None = None) -> list[dict[str, Any]]:
        """The moment's history as plain records, oldest first (see `history_records`)."""
        return history_records(self.events(moment_id, tenant))


def is_moment_id(text: str) -> bool:
    """Whether `text` is a moment id (a UUID), not a SYSTEM:ID reference."""
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def resolve_moment_id(text: str, tenant: str) -> str | None:
    """A moment id from a UUID, or from `SYSTEM:ID` naming a source record in `tenant`."""
    try:
        return str(UUID(text))
    except ValueError:
        pass
    if ":" in text:
        system, source_id = text.split(":", 1)
        if system and source_id:
            return derived_moment_id(tenant, system, source_id)
    return None


def history_records(events: list[LedgerEvent]) -> list[dict[str, Any]]:
    """A moment's events as plain records, oldest first."""
    records: list[dict[str, Any]] = []
    for event in events:
        record: dict[str, Any] = {
            "version": event.version,
            "recorded_at": event.recorded_at,
            "origin": event.origin,
        }
        if isinstance(event, MomentRecorded):
            record |= {"event": "recorded", "moment": as_dict(event.moment)}
        elif isinstance(event, MomentAmended):
            record |= {"event": "amended", "set": event.set, "reason": event.reason,
                       "moment": event.moment}
        elif isinstance(event, PersonErased):
            continue  # an erasure's stream, never a moment's
        else:
            record |= {"event": "retracted", "reason": event.reason}
        records.append(record)
    return records
