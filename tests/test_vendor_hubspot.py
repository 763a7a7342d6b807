"""HubSpot engagements and webhook events to wire moments: table tests of the pure mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mot.adapters.vendors import SOURCES, NotAMoment, Unmappable, VendorConfig
from mot.adapters.vendors.hubspot import map_record, records
from mot.domain.identity import derived_moment_id
from mot.domain.messages import RecordMoment, validate_message

CONFIG = VendorConfig.from_dict({
    "tenant": "acme",
    "hubspot": {
        "owners": {"52550153": "sales", "61112004": "service"},
        "teams": {"4433": "logistics"},
        "mailboxes": {"Billing@Acme.example": "marketing"},
        "kinds": {"meeting.outbound": "ask:meeting"},
    },
})
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def engagement(properties: dict[str, Any], contact: str | None = "601", **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "1001", "properties": properties, "archived": False, **extra}
    if contact is not None:
        record["associations"] = {"contacts": {"results": [{"id": contact, "type": "call_to_contact"}]}}
    return record


def one(record: dict[str, Any]) -> dict[str, Any]:
    [message] = map_record(record, CONFIG)
    assert isinstance(validate_message(message, NOW), RecordMoment), message
    return message


CALL = {"hs_timestamp": "2025-03-03T09:12:40.000Z", "hs_call_direction": "INBOUND",
        "hs_call_status": "COMPLETED", "hubspot_owner_id": "61112004"}


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (CALL, {"direction": "inbound", "kind": "question", "channel": "phone", "function": "service"}),
        ({**CALL, "hs_call_direction": "OUTBOUND", "hubspot_owner_id": "52550153"},
         {"direction": "outbound", "kind": "other", "channel": "phone", "function": "sales"}),
        ({**CALL, "hs_call_direction": None, "hubspot_owner_id": None},  # logged without direction
         {"direction": "outbound", "function": "sales"}),
        ({"hs_timestamp": "1741014000000", "hs_email_direction": "EMAIL", "hs_email_status": "SENT",
          "hs_email_from_email": "billing@acme.example"},
         {"direction": "outbound", "kind": "other", "channel": "email", "function": "marketing",
          "occurred_at": "2025-03-03T15:00:00Z"}),
        ({"hs_timestamp": "2025-03-03T11:02:17Z", "hs_email_direction": "INCOMING_EMAIL",
          "hs_email_to_email": "support@acme.example; billing@acme.example"},
         {"direction": "inbound", "kind": "reply", "function": "marketing"}),
        ({"hs_timestamp": "2025-03-03T11:02:17Z", "hs_email_direction": "FORWARDED_EMAIL"},
         {"direction": "inbound", "kind": "other", "function": "sales"}),
        ({"hs_timestamp": "2025-03-06T14:00:00Z", "hs_meeting_outcome": "COMPLETED",
          "hs_meeting_location": "https://us02web.zoom.us/j/812", "hubspot_team_id": "4433"},
         {"direction": "outbound", "kind": "ask", "ask_type": "meeting", "channel": "web",
          "function": "logistics"}),
        ({"hs_meeting_start_time": "2025-03-06T14:00:00Z", "hs_meeting_location": "Lyon office"},
         {"channel": "in_person", "occurred_at": "2025-03-06T14:00:00Z"}),
        ({"hs_timestamp": "2025-03-07T10:30:00Z", "hs_note_body": "Sent the part.",
          "hubspot_owner_id": "61112004"},
         {"direction": "outbound", "kind": "other", "channel": "other", "actor": "61112004"}),
    ],
)
def test_engagement_direction_kind_channel_function(properties: dict[str, Any],
                                                    expected: dict[str, Any]) -> None:
    message = one(engagement({k: v for k, v in properties.items() if v is not None}))
    assert message["tenant"] == "acme"
    assert message["customer_id"] == "hubspot:601"
    for name, value in expected.items():
        assert message.get(name) == value, name


@pytest.mark.parametrize(
    ("properties", "object_type"),
    [(CALL, "call"), ({"hs_timestamp": "2025-03-03T11:02:17Z", "hs_email_direction": "EMAIL"}, "email"),
     ({"hs_timestamp": "2025-03-06T14:00:00Z", "hs_meeting_title": "x"}, "meeting"),
     ({"hs_timestamp": "2025-03-06T14:00:00Z", "hs_note_body": "x"}, "note")],
)
def test_identity_is_the_object_type_and_id(properties: dict[str, Any], object_type: str) -> None:
    message = one(engagement(properties))
    assert message["source"] == {"system": "hubspot", "id": f"{object_type}:1001"}
    assert message["attributes"]["object"] == object_type


def test_the_same_record_maps_to_the_same_moment() -> None:
    record = engagement(CALL)
    assert map_record(record, CONFIG) == map_record(dict(record), CONFIG)


def test_contact_from_association_lowest_id_or_callee() -> None:
    record = engagement(CALL, contact=None, associations={"contacts": {"results": [
        {"id": "9001", "type": "call_to_contact"}, {"id": "702", "type": "call_to_contact"}]}})
    assert one(record)["customer_id"] == "hubspot:702"
    callee = engagement({**CALL, "hs_call_callee_object_id": "655", "hs_call_callee_object_type": "CONTACT"},
                        contact=None)
    assert one(callee)["customer_id"] == "hubspot:655"


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({**CALL, "hs_call_status": "CANCELED"}, "did not take place"),
        ({**CALL, "hs_call_status": "RINGING"}, "not finished"),
        ({"hs_timestamp": "2025-03-05T17:00:00Z", "hs_email_direction": "EMAIL",
          "hs_email_status": "BOUNCED"}, "not delivered"),
        ({"hs_timestamp": "2025-03-05T17:00:00Z", "hs_email_direction": "EMAIL",
          "hs_email_status": "SCHEDULED"}, "not sent yet"),
        ({"hs_timestamp": "2025-03-07T09:00:00Z", "hs_meeting_outcome": "NO_SHOW"}, "not held"),
    ],
)
def test_activities_that_did_not_happen_are_no_moments(properties: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotAMoment, match=reason):
        map_record(engagement(properties), CONFIG)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (engagement(CALL, contact=None), "no associated contact"),
        (engagement({"hs_call_direction": "INBOUND"}), "hs_timestamp: required"),
        (engagement({**CALL, "hs_timestamp": "03/03/2025 09:12"}), "not an ISO 8601 time"),
        (engagement({**CALL, "hs_call_direction": "SIDEWAYS"}), "neither INBOUND nor OUTBOUND"),
        (engagement({"hs_timestamp": "2025-03-03T11:02:17Z", "hs_email_status": "SENT"}),
         "hs_email_direction"),
        (engagement({"hs_timestamp": "2025-03-03T11:02:17Z"}), "cannot tell which engagement"),
        ({"engagement": {"id": 1, "type": "CALL"}, "metadata": {}}, "legacy v1 engagement"),
        ({"id": "1", "name": "not an engagement"}, "no `properties`"),
    ],
)
def test_unmappable_records_say_why(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        map_record(record, CONFIG)


def test_archived_object_retracts_its_moment() -> None:
    [message] = map_record(engagement(CALL, archived=True), CONFIG)
    assert message == {"type": "retract", "moment_id": derived_moment_id("acme", "hubspot", "call:1001"),
                       "reason": "call 1001 was archived (deleted) in HubSpot"}


WEBHOOK = {"eventId": 3816279340, "subscriptionId": 2881778, "portalId": 62515, "appId": 1160452,
           "occurredAt": 1741450210000, "attemptNumber": 0, "changeSource": "CRM_UI"}


def test_webhook_deletion_retracts_and_a_retry_is_the_same_message() -> None:
    event = {**WEBHOOK, "subscriptionType": "object.deletion", "objectId": 88812340002,
             "objectTypeId": "0-46"}
    retried = {**event, "attemptNumber": 3}
    [message] = map_record(event, CONFIG)
    assert message["type"] == "retract"
    assert message["moment_id"] == derived_moment_id("acme", "hubspot", "note:88812340002")
    assert map_record(retried, CONFIG) == [message]


def test_webhook_creation_without_properties_is_unmappable_with_the_fetch() -> None:
    event = {**WEBHOOK, "subscriptionType": "object.creation", "objectId": 34018752010,
             "objectTypeId": "0-48"}
    with pytest.raises(Unmappable, match=r"GET /crm/v3/objects/calls/34018752010\?associations=contacts"):
        map_record(event, CONFIG)


def test_webhook_creation_carrying_properties_is_the_engagement() -> None:
    event = {**WEBHOOK, "subscriptionType": "object.creation", "objectId": 1001, "objectTypeId": "0-48",
             "properties": CALL,
             "associations": {"contacts": {"results": [{"id": "601", "type": "call_to_contact"}]}}}
    assert map_record(event, CONFIG) == map_record(engagement(CALL), CONFIG)


@pytest.mark.parametrize(
    "event",
    [
        {**WEBHOOK, "subscriptionType": "contact.creation", "objectId": 612},
        {**WEBHOOK, "subscriptionType": "object.propertyChange", "objectId": 1, "objectTypeId": "0-48",
         "propertyName": "hs_call_body", "propertyValue": "x"},
    ],
)
def test_other_webhook_events_are_no_moments(event: dict[str, Any]) -> None:
    with pytest.raises(NotAMoment):
        map_record(event, CONFIG)


def test_records_unwraps_list_responses_and_webhook_batches() -> None:
    one_record = engagement(CALL)
    assert records(one_record) == [one_record]
    assert records({"results": [one_record, one_record], "paging": {"next": {"after": "2"}}}) == [
        one_record, one_record]
    assert records([WEBHOOK, WEBHOOK]) == [WEBHOOK, WEBHOOK]
    assert records({"results": []}) == []
    with pytest.raises(Unmappable, match="item 2"):
        records({"results": [one_record, "x"]})
    assert SOURCES["hubspot"].records is records
