"""Ledger events to eventsourcing stored events and back, encoded with orjson.

The topic names the event class (eventsourcing's `module:Class` convention);
the state holds everything but the stream id and version, which the stored
event carries itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from uuid import UUID

import orjson
from eventsourcing.persistence import StoredEvent

from mot.domain.events import LedgerEvent, MomentAmended, MomentRecorded, MomentRetracted

RECORDED: Final = "mot.domain.events:MomentRecorded"
AMENDED: Final = "mot.domain.events:MomentAmended"
RETRACTED: Final = "mot.domain.events:MomentRetracted"


def to_stored(event: LedgerEvent, stream_id: Callable[[str], Any] = UUID) -> StoredEvent:
    """Encode one ledger event; `stream_id` gives the form the recorder stores ids in."""
    state: dict[str, Any]
    if isinstance(event, MomentRecorded):
        topic = RECORDED
        state = {"moment": event.moment, "recorded_at": event.recorded_at, "origin": event.origin}
    elif isinstance(event, MomentAmended):
        topic = AMENDED
        state = {
            "set": event.set, "reason": event.reason, "moment": event.moment,
            "recorded_at": event.recorded_at, "origin": event.origin,
        }
    else:
        topic = RETRACTED
        state = {
            "reason": event.reason, "tenant": event.tenant, "customer_id": event.customer_id,
            "recorded_at": event.recorded_at, "origin": event.origin,
        }
    return StoredEvent(stream_id(event.moment_id), event.version, topic, orjson.dumps(state))


def from_stored(moment_id: str, version: int, topic: str, state: bytes) -> LedgerEvent:
    """Decode one stored event of the moment `moment_id`."""
    data = orjson.loads(state)
    if topic == RECORDED:
        return MomentRecorded(moment_id, version, data["moment"], data["recorded_at"], data["origin"])
    if topic == AMENDED:
        return MomentAmended(
            moment_id, version, data["set"], data["reason"], data["moment"],
            data["recorded_at"], data["origin"],
        )
    if topic == RETRACTED:
        return MomentRetracted(
            moment_id, version, data["reason"], data["tenant"], data["customer_id"],
            data["recorded_at"], data["origin"],
        )
    raise ValueError(f"unknown event topic {topic!r} in the ledger")
