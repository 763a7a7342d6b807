"""The ledger's events, named in the past tense; immutable.

Each moment is one stream (stream id = moment id): version 1 is its
`MomentRecorded`, later versions its amendments and its retraction. The
store's uniqueness on (stream, version) is what makes a duplicate or a
concurrent writer harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Moment = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MomentRecorded:
    """A moment of truth entered the ledger."""

    moment_id: str
    version: int
    moment: Moment
    recorded_at: str
    origin: str


@dataclass(frozen=True, slots=True)
class MomentAmended:
    """Some fields of a recorded moment were corrected; `moment` is the result."""

    moment_id: str
    version: int
    set: dict[str, Any]
    reason: str
    moment: Moment
    recorded_at: str
    origin: str


@dataclass(frozen=True, slots=True)
class MomentRetracted:
    """A recorded moment was withdrawn from every projection (the log keeps it)."""

    moment_id: str
    version: int
    reason: str
    tenant: str
    customer_id: str
    recorded_at: str
    origin: str


LedgerEvent = MomentRecorded | MomentAmended | MomentRetracted
