"""Ledger events to eventsourcing stored events and back, encoded with orjson.

The topic names the event class (eventsourcing's `module:Class` convention);
the state holds everything but the version, which the stored event carries
itself, and the stream id, `moment_stream_id(tenant, moment_id)` of the
moment id and tenant the state holds (a pair's link or unlink holds its stream id,
`link_id`, itself).
"""

from __future__ import annotations

from typing import Any

import orjson

from mot.adapters.stores.topics import AMENDED, ERASED, LINKED, RECORDED, RETRACTED, UNLINKED
from mot.domain.events import (
    CustomersLinked,
    CustomersUnlinked,
    EncodedMoment,
    LedgerEvent,
    MomentAmended,
    MomentRecorded,
    MomentRetracted,
    PersonErased,
    as_dict,
)

StoredRow = tuple[Any, int, str, bytes | bytearray]
"""A stored event as the recorder's table holds it: (originator_id, originator_version, topic, state)."""


def to_row(event: LedgerEvent, stream_id: Any) -> StoredRow:
    """Encode one ledger event; `stream_id` is its stream's id as the recorder stores ids."""
    if type(event) is MomentRecorded:
        moment = event.moment
        # A moment that arrived as JSON is stored as that JSON, not decoded and encoded again.
        stored = orjson.Fragment(moment.json) if type(moment) is EncodedMoment else moment
        return (stream_id, event.version, RECORDED, orjson.dumps(
            {"moment": stored, "recorded_at": event.recorded_at, "origin": event.origin}))
    topic, state = to_state(event)
    return (stream_id, event.version, topic, orjson.dumps(state))


def to_state(event: LedgerEvent) -> tuple[str, dict[str, Any]]:
    """(topic, state) of one ledger event, before encoding (what sealing works on:
    adapters/stores/sealing.py)."""
    state: dict[str, Any]
    if type(event) is MomentRecorded:
        return RECORDED, {"moment": as_dict(event.moment), "recorded_at": event.recorded_at,
                          "origin": event.origin}
    if isinstance(event, MomentAmended):
        topic = AMENDED
        state = {
            "set": event.set, "reason": event.reason, "moment": event.moment,
            "recorded_at": event.recorded_at, "origin": event.origin,
        }
        if event.amendment_id is not None:
            state["amendment_id"] = event.amendment_id
    elif isinstance(event, CustomersLinked | CustomersUnlinked):
        topic = LINKED if type(event) is CustomersLinked else UNLINKED
        state = {
            "link_id": event.link_id, "tenant": event.tenant,
            "customer_ids": list(event.customer_ids), "occurred_at": event.occurred_at,
            "reason": event.reason, "recorded_at": event.recorded_at, "origin": event.origin,
        }
    elif isinstance(event, PersonErased):
        topic = ERASED
        state = {
            "tenant": event.tenant, "erasure": event.erasure,
            "customer_ids_with_moments": event.customer_ids_with_moments,
            "customer_ids_without_moments": event.customer_ids_without_moments,
            "moments": event.moments, "digest": event.digest,
            "recorded_at": event.recorded_at, "origin": event.origin,
        }
    else:
        assert isinstance(event, MomentRetracted)
        topic = RETRACTED
        state = {
            "moment_id": event.moment_id,
            "reason": event.reason, "tenant": event.tenant, "customer_id": event.customer_id,
            "recorded_at": event.recorded_at, "origin": event.origin,
        }
    return topic, state


def from_stored(version: int, topic: str, state: bytes) -> LedgerEvent:
    """Decode one stored event."""
    return from_data(version, topic, orjson.loads(state))


def from_data(version: int, topic: str, data: dict[str, Any]) -> LedgerEvent:
    """One stored event from its decoded (and opened) state."""
    if topic == RECORDED:
        moment = data["moment"]
        return MomentRecorded(moment["moment_id"], version, moment, data["recorded_at"],
                              data["origin"], moment["tenant"])
    if topic == AMENDED:
        return MomentAmended(
            data["moment"]["moment_id"], version, data["set"], data["reason"], data["moment"],
            data["recorded_at"], data["origin"], data.get("amendment_id"),
        )
    if topic == RETRACTED:
        return MomentRetracted(
            data["moment_id"], version, data["reason"], data["tenant"], data["customer_id"],
            data["recorded_at"], data["origin"],
        )
    if topic in (LINKED, UNLINKED):
        kind = CustomersLinked if topic == LINKED else CustomersUnlinked
        low, high = data["customer_ids"]
        return kind(data["link_id"], version, data["tenant"], (low, high), data["occurred_at"],
                    data["reason"], data["recorded_at"], data["origin"])
    if topic == ERASED:
        from mot.domain.erasure import erasure_stream_id

        return PersonErased(
            erasure_stream_id(data["tenant"], data["erasure"]), version, data["tenant"],
            data["erasure"], data["customer_ids_with_moments"],
            data["customer_ids_without_moments"], data["moments"], data["digest"],
            data["recorded_at"], data["origin"])
    raise ValueError(f"unknown event topic {topic!r} in the ledger")
