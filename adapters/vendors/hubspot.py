"""HubSpot: CRM engagements (calls, emails, meetings, notes) and webhook events, as wire moments.

A record is a CRM object as `GET /crm/v3/objects/{calls|emails|meetings|notes}` returns it
(`id`, `properties`, `associations`, `archived`), one per line or a whole list response
(`{"results": [...], "paging": ...}`), or a webhook event (`subscriptionType`, `objectId`,
`objectTypeId`, `eventId`, `occurredAt`), one event or the JSON array HubSpot posts.

The mapping (docs/sources.md has the table):
- identity: `{"system": "hubspot", "id": "call:<id>"}` (engagement ids are per object type);
- customer: the associated contact (`associations.contacts`, else a call's
  `hs_call_callee_object_id` when its type is CONTACT);
- time: `hs_timestamp` (ISO 8601 or milliseconds);
- direction and kind from `hs_call_direction` / `hs_email_direction`; calls and emails that
  did not take place (`hs_call_status` CANCELED, an email BOUNCED) and meetings CANCELED or
  NO_SHOW are no moments;
- function: `hubspot_owner_id` in `[hubspot] owners`, else `hubspot_team_id` in `teams`, else
  the brand's mailbox of an email in `mailboxes`, else `default_function` (sales);
- an archived object, or a webhook `*.deletion` event, retracts the moment.

HubSpot webhook events name the object but carry none of its properties, so an engagement
creation event cannot be mapped by itself: it is quarantined with the request that fetches
the record (an event your receiver enriched with the object's `properties` is mapped).
"""

from __future__ import annotations

from typing import Any, Final

from mot.adapters.vendors.base import (
    Fields,
    NotAMoment,
    Record,
    Unmappable,
    VendorSource,
    Wire,
    compact,
    moment,
    obj,
    objects,
    one_or_many,
    retraction,
    source_ref,
    text,
    timestamp,
)
from mot.adapters.vendors.config import VendorConfig, VendorSettings

SYSTEM: Final = "hubspot"

# HubSpot's object type ids of the engagements (webhook `objectTypeId`).
OBJECT_TYPE_IDS: Final = {"0-48": "call", "0-49": "email", "0-47": "meeting", "0-46": "note"}
PLURALS: Final = {"call": "calls", "email": "emails", "meeting": "meetings", "note": "notes"}
_PROPERTY_PREFIXES: Final = {"hs_call_": "call", "hs_email_": "email", "hs_meeting_": "meeting",
                             "hs_note_": "note"}

CALL_NOT_FINISHED: Final = frozenset({"QUEUED", "RINGING", "IN_PROGRESS", "CALLING_CRM_USER", "CONNECTING"})
CALL_NOT_HELD: Final = frozenset({"CANCELED", "FAILED"})
EMAIL_NOT_SENT: Final = frozenset({"SCHEDULED", "SENDING"})
EMAIL_NOT_DELIVERED: Final = frozenset({"BOUNCED", "FAILED"})
MEETING_NOT_HELD: Final = frozenset({"CANCELED", "NO_SHOW", "RESCHEDULED"})

EMAIL_DIRECTIONS: Final = {
    "EMAIL": ("outbound", "other"),           # sent from the CRM, or logged with the BCC address
    "INCOMING_EMAIL": ("inbound", "reply"),   # "a reply to a logged outgoing email"
    "FORWARDED_EMAIL": ("inbound", "other"),  # forwarded to the CRM
}


def records(value: Any) -> list[Record]:
    """A CRM object, a list response (`results`), a webhook event, or the array HubSpot posts."""
    return one_or_many(value, ("results",))


def map_record(record: Record, config: VendorConfig) -> list[Wire]:
    settings = config[SYSTEM]
    if "subscriptionType" in record:
        return _webhook_event(record, settings)
    if isinstance(record.get("engagement"), dict):
        raise Unmappable("a legacy v1 engagement (`engagement`, `metadata`): export the CRM v3 objects "
                         "instead (GET /crm/v3/objects/calls?associations=contacts)")
    properties = record.get("properties")
    if not isinstance(properties, dict):
        raise Unmappable("no `properties` object: expected a CRM object as GET /crm/v3/objects/calls "
                         "returns it, or a webhook event")
    object_type = _object_type(record, properties)
    object_id = text(record.get("id")) or text(properties.get("hs_object_id"))
    if object_id is None:
        raise Unmappable(f"a HubSpot {object_type} without `id` (or hs_object_id)")
    if record.get("archived") is True:
        return [retraction(settings.tenant, SYSTEM, f"{object_type}:{object_id}",
                           f"{object_type} {object_id} was archived (deleted) in HubSpot")]
    return [_engagement(object_type, object_id, properties, record, settings)]


def _object_type(record: Record, properties: dict[str, Any]) -> str:
    hinted = OBJECT_TYPE_IDS.get(text(record.get("objectTypeId")) or "")
    if hinted is not None:
        return hinted
    found = {kind for key in properties for prefix, kind in _PROPERTY_PREFIXES.items()
             if key.startswith(prefix)}
    if len(found) == 1:
        return found.pop()
    if not found:
        raise Unmappable("cannot tell which engagement this is: none of its properties is an hs_call_*, "
                         "hs_email_*, hs_meeting_* or hs_note_* property (request them with ?properties=)")
    raise Unmappable(f"properties of several engagement types ({', '.join(sorted(found))}) in one record")


def _engagement(object_type: str, object_id: str, properties: dict[str, Any], record: Record,
                settings: VendorSettings) -> Wire:
    props = Fields(properties)
    where = f"{object_type} {object_id}"
    contact = _contact(record, props)
    if contact is None:
        raise Unmappable(f"{where} has no associated contact: read it with ?associations=contacts "
                         "(the search endpoint does not return associations)")
    when = props.get("hs_timestamp")
    if when is None and object_type == "meeting":
        when = props.get("hs_meeting_start_time")
    occurred_at = timestamp(when, f"{where}: properties.hs_timestamp", epoch_ms=True)
    owner = text(props.get("hubspot_owner_id"))
    direction, default_kind, channel, attributes = _shape(object_type, where, props)
    kind, ask_type = settings.kind(object_type, direction, default_kind)
    function = (
        settings.function("owners", owner)
        or settings.function("teams", text(props.get("hubspot_team_id")))
        or _mailbox_function(settings, props, direction)
        or settings.default_function
    )
    return moment(
        tenant=settings.tenant,
        customer_id=settings.customer(contact),
        occurred_at=occurred_at,
        channel=channel,
        direction=direction,
        kind=kind,
        ask_type=ask_type,
        function=function,
        actor=owner,
        source=source_ref(SYSTEM, f"{object_type}:{object_id}"),
        attributes=compact({"object": object_type, **attributes}),
    )


def _shape(object_type: str, where: str, props: Fields) -> tuple[str, str, str, dict[str, Any]]:
    """Direction, default kind, channel and attributes of one engagement, or NotAMoment."""
    if object_type == "call":
        status = (text(props.get("hs_call_status")) or "").upper()
        if status in CALL_NOT_FINISHED:
            raise NotAMoment(f"call not finished (hs_call_status {status})")
        if status in CALL_NOT_HELD:
            raise NotAMoment(f"call did not take place (hs_call_status {status})")
        raw_direction = (text(props.get("hs_call_direction")) or "OUTBOUND").upper()
        if raw_direction not in ("INBOUND", "OUTBOUND"):
            raise Unmappable(f"{where}: hs_call_direction {raw_direction!r} is neither INBOUND nor OUTBOUND")
        direction = raw_direction.lower()
        duration = text(props.get("hs_call_duration"))
        return direction, "question" if direction == "inbound" else "other", "phone", {
            "status": status or None,
            "disposition": text(props.get("hs_call_disposition")),
            "duration_ms": int(duration) if duration and duration.isdigit() else None,
        }
    if object_type == "email":
        status = (text(props.get("hs_email_status")) or "").upper()
        if status in EMAIL_NOT_SENT:
            raise NotAMoment(f"email not sent yet (hs_email_status {status})")
        if status in EMAIL_NOT_DELIVERED:
            raise NotAMoment(f"email not delivered (hs_email_status {status})")
        raw_direction = (text(props.get("hs_email_direction")) or "").upper()
        if raw_direction not in EMAIL_DIRECTIONS:
            raise Unmappable(f"{where}: hs_email_direction {raw_direction or 'missing'!r}: expected "
                             f"{', '.join(EMAIL_DIRECTIONS)}")
        direction, kind = EMAIL_DIRECTIONS[raw_direction]
        return direction, kind, "email", {
            "status": status or None, "email_direction": raw_direction,
            "thread_id": text(props.get("hs_email_thread_id")),
        }
    if object_type == "meeting":
        outcome = (text(props.get("hs_meeting_outcome")) or "").upper()
        if outcome in MEETING_NOT_HELD:
            raise NotAMoment(f"meeting not held (hs_meeting_outcome {outcome})")
        location = text(props.get("hs_meeting_location")) or ""
        online = location.lower().startswith(("http://", "https://"))
        return "outbound", "other", "web" if online else "in_person", {"outcome": outcome or None}
    return "outbound", "other", "other", {}  # a note the owner logged about the contact


def _contact(record: Record, props: Fields) -> str | None:
    associations = obj(record.get("associations"))
    contacts = obj(associations.get("contacts")) or obj(associations.get("0-1"))
    ids = sorted(
        {cid for item in objects(contacts.get("results"))
         if (cid := text(item.get("id")) or text(item.get("toObjectId"))) is not None},
        key=lambda cid: (len(cid), cid),
    )
    if ids:
        return ids[0]  # the lowest id, so that the same record always names the same contact
    if (text(props.get("hs_call_callee_object_type")) or "").upper() == "CONTACT":
        return text(props.get("hs_call_callee_object_id"))
    return None


def _mailbox_function(settings: VendorSettings, props: Fields, direction: str) -> str | None:
    # The brand's side of an email: the sender of an outbound one, a recipient of an inbound one.
    field = "hs_email_from_email" if direction == "outbound" else "hs_email_to_email"
    for address in (text(props.get(field)) or "").replace(",", ";").split(";"):
        function = settings.function("mailboxes", address.strip())
        if function is not None:
            return function
    return None


def _webhook_event(event: Record, settings: VendorSettings) -> list[Wire]:
    subscription = text(event.get("subscriptionType")) or ""
    prefix, _, action = subscription.rpartition(".")
    object_type = OBJECT_TYPE_IDS.get(text(event.get("objectTypeId")) or "")
    if object_type is None and prefix in PLURALS:
        object_type = prefix
    object_id = text(event.get("objectId"))
    event_id = text(event.get("eventId"))
    if object_type is None:
        raise NotAMoment(f"webhook event {subscription}: not about a call, email, meeting or note")
    if object_id is None:
        raise Unmappable(f"webhook event {subscription} ({event_id}) has no objectId")
    if action == "deletion":
        return [retraction(settings.tenant, SYSTEM, f"{object_type}:{object_id}",
                           f"{object_type} {object_id} was deleted in HubSpot (webhook event {event_id})")]
    properties = event.get("properties")
    if isinstance(properties, dict) and action == "creation":
        return [_engagement(object_type, object_id, properties, event, settings)]
    if action == "creation":
        raise Unmappable(
            f"webhook event {subscription} ({event_id}) names {object_type} {object_id} but carries none "
            f"of its properties (time, direction, contact): fetch GET /crm/v3/objects/"
            f"{PLURALS[object_type]}/{object_id}?associations=contacts and import that record")
    raise NotAMoment(f"webhook event {subscription}: a change to an existing {object_type} "
                     "(a moment is recorded once; import the record again to see what changed)")


SOURCE: Final = VendorSource(
    name=SYSTEM,
    title="HubSpot CRM engagements (calls, emails, meetings, notes) and webhook events",
    formats=("jsonl",),
    records=records,
    map=map_record,
)
