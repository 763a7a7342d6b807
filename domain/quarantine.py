"""A rejected message kept with everything needed to fix and replay it (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected message on its way to the quarantine."""

    raw: bytes  # exactly the bytes received
    payload: bytes | None  # the wire JSON it maps to, when that differs from raw (CSV rows)
    origin: str  # file:line, kafka:topic/partition/offset, http:request#item
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message in the quarantine; the same bytes rejected again count as a repeat."""

    id: int
    raw: bytes
    payload: bytes | None
    origin: str
    last_origin: str
    field: str
    reason: str
    first_seen: str
    last_seen: str
    repeats: int

    @property
    def message(self) -> bytes:
        """The bytes a replay validates: the mapped payload if there is one, else the raw bytes."""
        return self.payload if self.payload is not None else self.raw
