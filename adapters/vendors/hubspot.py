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

Identity evidence becomes link messages (SPEC §2; off with `links = false`, the email
bridge alone with `email_bridge = false`): a `contact.merge` webhook event links every merged
contact to the primary one at the event's `occurredAt`; a contact record (`GET
/crm/v3/objects/contacts`) links its `email` and `hs_additional_emails` to their `email:`
ids and its `hs_merged_object_ids` to itself, at its `createdAt` (the record says nothing of
when, and a time that does not move keeps an import repeatable and a later unlink in force);
an email engagement with one associated contact and one address on the contact's side links
that address, at the email's time.

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
    customer_ids,
    email_link,
    links_to,
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
CONTACT_TYPE_ID: Final = "0-1"
# Properties of a contact record (none of them is an engagement's).
CONTACT_PROPERTIES: Final = frozenset({"email", "firstname", "lastname", "hs_additional_emails",
                                       "hs_merged_object_ids", "lifecyclestage"})

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
    if _is_contact(record, properties):
        return _contact_links(record, properties, settings)
    object_type = _object_type(record, properties)
    object_id = text(record.get("id")) or text(properties.get("hs_object_id"))
    if object_id is None:
        raise Unmappable(f"a HubSpot {object_type} without `id` (or hs_object_id)")
    if record.get("archived") is True:
        return [retraction(settings.tenant, SYSTEM, f"{object_type}:{object_id}",
                           f"{object_type} {object_id} was archived (deleted) in HubSpot")]
    return _engagement(object_type, object_id, properties, record, settings)


def customers(record: Record, config: VendorConfig) -> list[str]:
    """The contacts a record names: an engagement's associated ones, a contact record itself
    and those merged into it, a contact webhook event's contacts."""
    properties = obj(record.get("properties"))
    props = Fields(properties)
    found: list[Any] = _contacts(record, props)
    if "subscriptionType" in record:
        if ((text(record.get("subscriptionType")) or "").startswith("contact.")
                or text(record.get("objectTypeId")) == CONTACT_TYPE_ID):
            merged = record.get("mergedObjectIds")
            found += [record.get("objectId"), record.get("primaryObjectId"),
                      record.get("newObjectId"), *(merged if isinstance(merged, list) else [])]
    elif _is_contact(record, properties):
        found += [record.get("id") or props.get("hs_object_id"),
                  *_listed(props.get("hs_merged_object_ids"))]
    return customer_ids(config[SYSTEM], found)


def _is_contact(record: Record, properties: dict[str, Any]) -> bool:
    if text(record.get("objectTypeId")) == CONTACT_TYPE_ID:
        return True
    engagement = any(key.startswith(prefix) for key in properties for prefix in _PROPERTY_PREFIXES)
    return not engagement and any(key in CONTACT_PROPERTIES for key in properties)


def _contact_links(record: Record, properties: dict[str, Any], settings: VendorSettings) -> list[Wire]:
    """A contact record: no moment, links from its addresses and the contacts merged into it."""
    props = Fields(properties)
    contact_id = text(record.get("id")) or text(props.get("hs_object_id"))
    if contact_id is None:
        raise Unmappable("a HubSpot contact without `id` (or hs_object_id)")
    if record.get("archived") is True:
        raise NotAMoment("an archived contact record")
    where = f"contact {contact_id}"
    when = timestamp(record.get("createdAt") or props.get("createdate"), f"{where}: createdAt",
                     epoch_ms=True)
    customer = settings.customer(contact_id)
    out: list[Wire] = []
    for address in [props.get("email"), *_listed(props.get("hs_additional_emails"))]:
        out += email_link(settings, customer, address, when, f"same email address in HubSpot ({where})")
    merged = [settings.customer(other) for other in _listed(props.get("hs_merged_object_ids"))]
    out += links_to(settings, customer, merged, when, f"merged into {where} in HubSpot")
    if not out:
        raise NotAMoment("a contact record: no moment, and nothing to link (no email address or merged "
                         "contact, or [hubspot] links = false)")
    return out


def _listed(value: Any) -> list[str]:
    """The items of a HubSpot multi-value property (`a;b;c`)."""
    return [item.strip() for item in (text(value) or "").replace(",", ";").split(";") if item.strip()]


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
                settings: VendorSettings) -> list[Wire]:
    props = Fields(properties)
    where = f"{object_type} {object_id}"
    contacts = _contacts(record, props)
    contact = contacts[0] if contacts else None
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
    customer = settings.customer(contact)
    out = [moment(
        tenant=settings.tenant,
        customer_id=customer,
        occurred_at=occurred_at,
        channel=channel,
        direction=direction,
        kind=kind,
        ask_type=ask_type,
        function=function,
        actor=owner,
        source=source_ref(SYSTEM, f"{object_type}:{object_id}"),
        attributes=compact({"object": object_type, **attributes}),
    )]
    if object_type == "email" and len(contacts) == 1:
        # The contact's side of the email: its one address, when it has exactly one.
        field = "hs_email_to_email" if direction == "outbound" else "hs_email_from_email"
        addresses = [a for a in _listed(props.get(field)) if not settings.has("mailboxes", a)]
        if len(addresses) == 1:
            out += email_link(settings, customer, addresses[0], occurred_at,
                              f"same email address in HubSpot ({where}, contact {contact})")
    return out


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


def _contacts(record: Record, props: Fields) -> list[str]:
    """The associated contacts, lowest first (the first is the moment's customer, so that the same
    record always names the same contact)."""
    associations = obj(record.get("associations"))
    contacts = obj(associations.get("contacts")) or obj(associations.get("0-1"))
    ids = sorted(
        {cid for item in objects(contacts.get("results"))
         if (cid := text(item.get("id")) or text(item.get("toObjectId"))) is not None},
        key=lambda cid: (len(cid), cid),
    )
    if ids:
        return ids
    callee = text(props.get("hs_call_callee_object_id"))
    if callee and (text(props.get("hs_call_callee_object_type")) or "").upper() == "CONTACT":
        return [callee]
    return []


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
    if action == "merge" and (prefix == "contact" or text(event.get("objectTypeId")) == CONTACT_TYPE_ID):
        return _merge(event, subscription, event_id, settings)
    if (action == "propertyChange" and prefix == "contact"
            and text(event.get("propertyName")) in ("email", "hs_additional_emails")):
        return _address_change(event, subscription, event_id, settings)
    if object_type is None:
        raise NotAMoment(f"webhook event {subscription}: not about a call, email, meeting or note")
    if object_id is None:
        raise Unmappable(f"webhook event {subscription} ({event_id}) has no objectId")
    if action == "deletion":
        return [retraction(settings.tenant, SYSTEM, f"{object_type}:{object_id}",
                           f"{object_type} {object_id} was deleted in HubSpot (webhook event {event_id})")]
    properties = event.get("properties")
    if isinstance(properties, dict) and action == "creation":
        return _engagement(object_type, object_id, properties, event, settings)
    if action == "creation":
        raise Unmappable(
            f"webhook event {subscription} ({event_id}) names {object_type} {object_id} but carries none "
            f"of its properties (time, direction, contact): fetch GET /crm/v3/objects/"
            f"{PLURALS[object_type]}/{object_id}?associations=contacts and import that record")
    raise NotAMoment(f"webhook event {subscription}: a change to an existing {object_type} "
                     "(a moment is recorded once; import the record again to see what changed)")


def _merge(event: Record, subscription: str, event_id: str | None, settings: VendorSettings) -> list[Wire]:
    """A `contact.merge` event: every merged contact (and the merge's new id) linked to the primary."""
    where = f"webhook event {subscription} ({event_id})"
    primary = text(event.get("primaryObjectId")) or text(event.get("objectId"))
    if primary is None:
        raise Unmappable(f"{where} has no primaryObjectId (or objectId)")
    merged = [cid for item in event.get("mergedObjectIds") or [] if (cid := text(item)) is not None]
    new = text(event.get("newObjectId"))
    others = [cid for cid in (*merged, *([new] if new else [])) if cid != primary]
    if not others:
        raise Unmappable(f"{where} names no merged contact (mergedObjectIds)")
    when = timestamp(event.get("occurredAt"), f"{where}: occurredAt", epoch_ms=True)
    out = links_to(settings, settings.customer(primary), [settings.customer(cid) for cid in others],
                   when, f"contacts merged in HubSpot ({where})")
    if not out:
        raise NotAMoment("webhook event contact.merge: [hubspot] links = false")
    return out


def _address_change(event: Record, subscription: str, event_id: str | None,
                    settings: VendorSettings) -> list[Wire]:
    """A contact's `email` (or additional emails) set: the contact linked to each address's id."""
    where = f"webhook event {subscription} ({event_id})"
    contact = text(event.get("objectId"))
    if contact is None:
        raise Unmappable(f"{where} has no objectId")
    when = timestamp(event.get("occurredAt"), f"{where}: occurredAt", epoch_ms=True)
    out = [message for address in _listed(event.get("propertyValue"))
           for message in email_link(settings, settings.customer(contact), address, when,
                                     f"same email address in HubSpot (contact {contact}, {where})")]
    if not out:
        raise NotAMoment(f"webhook event {subscription}: a contact's address changed (no address to link, "
                         "or [hubspot] email_bridge = false)")
    return out


SOURCE: Final = VendorSource(
    name=SYSTEM,
    title="HubSpot CRM engagements (calls, emails, meetings, notes) and webhook events",
    formats=("jsonl",),
    records=records,
    map=map_record,
    customers=customers,
)
