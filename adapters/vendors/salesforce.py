"""Salesforce: Task and Event records, as wire moments.

A record is a Task or Event as the REST API returns it (a record with `attributes.type`, one
per line, or a whole query response `{"totalSize": ..., "done": ..., "records": [...]}`), or
one row of a Data Loader CSV export (upper-case headers such as `ID`, `WHOID`; compared
without case). The mapping (docs/sources.md has the table):

- identity: `{"system": "salesforce", "id": <18-character Id>}` (15-character ids from
  reports are extended to 18, so both exports name the same moment);
- customer: `WhoId` (the contact or lead);
- Tasks: `TaskSubtype` Call (direction from `CallType`; Internal calls are no moment), Email,
  ListEmail, Cadence, LinkedIn; a plain Task counts when its `Type` is Call, Email or
  Meeting. A Task that is not closed (`IsClosed` false, or a `Status` not in
  `closed_statuses`, default Completed) is no moment yet;
- Events: a meeting with the contact (channel `web` when `Location` is a link);
- time: Task `CompletedDateTime`, else `CreatedDate` (or `ActivityDate` when the activity was
  logged on another day); Event `StartDateTime`, else `ActivityDateTime`, `ActivityDate`;
- function: `OwnerId` (a user or a queue) in `[salesforce] owners`, else `default_function`;
- `IsDeleted` true (an "Export All" row, or queryAll) retracts the moment.

Identity evidence becomes link messages (SPEC §2; `links = false` turns them off,
`email_bridge = false` the email bridge alone): a Lead record converted into a contact
(`IsConverted`, `ConvertedContactId`) links the lead to the contact at its `ConvertedDate`; a
Lead or Contact record's `Email`, and the `Who.Email` of a Task or Event queried with it, link
the lead or contact to its `email:` id (at the record's `CreatedDate`, or the activity's time);
a Lead or Contact deleted by a merge (`IsDeleted`, `MasterRecordId`, read with queryAll) is
linked to the record kept, at its `LastModifiedDate`.
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
    flag,
    link,
    moment,
    number,
    obj,
    one_or_many,
    retraction,
    source_ref,
    text,
    timestamp,
)
from mot.adapters.vendors.config import VendorConfig, VendorSettings

SYSTEM: Final = "salesforce"
KEY_PREFIXES: Final = {"00T": "Task", "00U": "Event", "00Q": "Lead", "003": "Contact"}
PEOPLE: Final = frozenset({"Lead", "Contact"})
_SUFFIX_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def records(value: Any) -> list[Record]:
    """A record, a JSON array of records, or a query response (`records`)."""
    return one_or_many(value, ("records",))


def id18(value: str) -> str:
    """A Salesforce id in its 18-character, case-insensitive-safe form."""
    if len(value) != 15 or not value.isalnum():
        return value
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, char in enumerate(value[start:start + 5]) if "A" <= char <= "Z")
        suffix += _SUFFIX_CHARS[bits]
    return value + suffix


def map_record(record: Record, config: VendorConfig) -> list[Wire]:
    settings = config[SYSTEM]
    fields = Fields(record)
    raw_id = text(fields.get("Id"))
    if raw_id is None:
        raise Unmappable("no Id: expected a Task or Event record (REST API JSON or Data Loader CSV)")
    record_id = id18(raw_id)
    object_type = _object_type(record, record_id)
    where = f"{object_type} {record_id}"
    if object_type in PEOPLE:
        return _person_links(object_type, record_id, fields, settings)
    if flag(fields.get("IsDeleted")):
        return [retraction(settings.tenant, SYSTEM, record_id,
                           f"{object_type} {record_id} was deleted in Salesforce")]
    if object_type == "Task":
        activity, direction, channel, default_kind = _task(fields, settings)
        occurred_at = _task_time(fields, where)
    else:
        activity, direction, default_kind = "meeting", "outbound", "other"
        location = (text(fields.get("Location")) or "").lower()
        channel = "web" if location.startswith(("http://", "https://")) else "in_person"
        occurred_at = _event_time(fields, where)
    who = text(fields.get("WhoId"))
    if who is None:
        raise Unmappable(f"{where} has no WhoId: it names no contact or lead")
    owner = text(fields.get("OwnerId"))
    kind, ask_type = settings.kind(activity, direction, default_kind)
    duration = number(fields.get("CallDurationInSeconds"), f"{where}: CallDurationInSeconds")
    customer = settings.customer(id18(who))
    return [moment(
        tenant=settings.tenant,
        customer_id=customer,
        occurred_at=occurred_at,
        channel=channel,
        direction=direction,
        kind=kind,
        ask_type=ask_type,
        function=_owner_function(settings, owner),
        actor=id18(owner) if owner else None,
        source=source_ref(SYSTEM, record_id),
        attributes=compact({
            "object": object_type,
            "subtype": text(fields.get("TaskSubtype")) or text(fields.get("EventSubtype")),
            "status": text(fields.get("Status")),
            "call_disposition": text(fields.get("CallDisposition")),
            "call_duration_seconds": int(duration) if duration is not None else None,
            "what_id": id18(what) if (what := text(fields.get("WhatId"))) else None,
        }),
    ), *email_link(settings, customer, obj(record.get("Who")).get("Email") or fields.get("Who.Email"),
                   occurred_at, f"same email address in Salesforce ({where}, WhoId {id18(who)})")]


def customers(record: Record, config: VendorConfig) -> list[str]:
    """The contacts and leads a record names: a Task's or Event's WhoId, a Lead or Contact
    record itself, the one it was merged into or converted to."""
    fields = Fields(record)
    found = [fields.get("WhoId"), fields.get("MasterRecordId"), fields.get("ConvertedContactId")]
    record_id = text(fields.get("Id"))
    if record_id is not None and (text(obj(record.get("attributes")).get("type"))
                                  or KEY_PREFIXES.get(record_id[:3])) in PEOPLE:
        found.append(record_id)
    return customer_ids(config[SYSTEM], [id18(t) for f in found if (t := text(f)) is not None])


def _person_links(object_type: str, record_id: str, fields: Fields, settings: VendorSettings) -> list[Wire]:
    """A Lead or Contact record: no moment; its conversion and its address as links."""
    where = f"{object_type} {record_id}"
    customer = settings.customer(record_id)
    if flag(fields.get("IsDeleted")):
        # A record deleted by a merge names the one kept (queryAll, "Export All"): they were one.
        master = text(fields.get("MasterRecordId"))
        merged = [] if master is None else link(
            settings, customer, settings.customer(id18(master)),
            timestamp(fields.get("LastModifiedDate") or fields.get("SystemModstamp"),
                      f"{where}: LastModifiedDate"),
            f"{where} merged into {object_type} {id18(master)} in Salesforce")
        if not merged:
            raise NotAMoment(f"a deleted {object_type} record")
        return merged
    out: list[Wire] = []
    converted = text(fields.get("ConvertedContactId"))
    if object_type == "Lead" and converted and flag(fields.get("IsConverted")) is not False:
        when = next((name for name in ("ConvertedDate", "LastModifiedDate", "CreatedDate")
                     if fields.get(name) is not None), "ConvertedDate")
        out += link(settings, customer, settings.customer(id18(converted)),
                    timestamp(fields.get(when), f"{where}: {when}"),
                    f"{where} converted into Contact {id18(converted)} in Salesforce")
    address = fields.get("Email")
    if address is not None and settings.email_bridge and settings.links:
        out += email_link(settings, customer, address, timestamp(fields.get("CreatedDate"),
                          f"{where}: CreatedDate"), f"same email address in Salesforce ({where})")
    if not out:
        raise NotAMoment(f"a {object_type} record: no moment, and nothing to link (not converted, no "
                         "Email, or [salesforce] links = false)")
    return out


def _object_type(record: Record, record_id: str) -> str:
    declared = text(obj(record.get("attributes")).get("type"))
    if declared in ("Task", "Event", *PEOPLE):
        return declared
    if declared is not None:
        raise Unmappable(f"a record of type {declared}: only Task and Event records are activities (and "
                         "Lead and Contact records identity evidence)")
    by_prefix = KEY_PREFIXES.get(record_id[:3])
    if by_prefix is None:
        raise Unmappable(f"Id {record_id!r} is neither a Task (00T…) nor an Event (00U…), a Lead (00Q…) "
                         "or a Contact (003…)")
    return by_prefix


def _task(fields: Fields, settings: VendorSettings) -> tuple[str, str, str, str]:
    """Activity, direction, channel and default kind of a Task, or NotAMoment."""
    status = text(fields.get("Status"))
    closed = flag(fields.get("IsClosed"))
    if closed is None and status is not None:  # no IsClosed column: judge by the Status value
        closed = status.lower() in settings.closed_statuses
    if closed is False:
        raise NotAMoment(f"open task (Status {status!r}): a moment once it is completed")
    subtype = (text(fields.get("TaskSubtype")) or "Task").lower()
    declared_type = text(fields.get("Type"))
    task_type = (declared_type or "").lower()
    if subtype == "task" and task_type in ("call", "email", "meeting"):
        subtype = task_type
    if subtype == "call":
        call_type = (text(fields.get("CallType")) or "Outbound").lower()
        if call_type == "internal":
            raise NotAMoment("internal call (CallType Internal): not with a customer")
        direction = "inbound" if call_type == "inbound" else "outbound"
        return "call", direction, "phone", "question" if direction == "inbound" else "other"
    if subtype == "email":
        return "email", "outbound", "email", "other"
    if subtype == "listemail":
        return "list_email", "outbound", "email", "content"
    if subtype == "cadence":
        return "cadence", "outbound", "other", "other"
    if subtype == "linkedin":
        return "linkedin", "outbound", "linkedin", "other"
    if subtype == "meeting":
        return "meeting", "outbound", "in_person", "other"
    if subtype == "task":
        raise NotAMoment(f"a to-do task (Type {declared_type!r}): not an interaction with the contact")
    raise Unmappable(f"TaskSubtype {subtype!r}: expected Task, Email, ListEmail, Cadence, Call or LinkedIn")


def _task_time(fields: Fields, where: str) -> str:
    completed = fields.get("CompletedDateTime")
    if completed is not None:
        return timestamp(completed, f"{where}: CompletedDateTime")
    created = fields.get("CreatedDate")
    activity_date = text(fields.get("ActivityDate"))
    if created is not None:
        logged = timestamp(created, f"{where}: CreatedDate")
        if activity_date is None or logged.startswith(activity_date[:10]):
            return logged
    if activity_date is not None:
        return timestamp(activity_date, f"{where}: ActivityDate")
    raise Unmappable(f"{where}: no CompletedDateTime, CreatedDate or ActivityDate")


def _event_time(fields: Fields, where: str) -> str:
    for name in ("StartDateTime", "ActivityDateTime", "ActivityDate", "CreatedDate"):
        value = fields.get(name)
        if value is not None:
            return timestamp(value, f"{where}: {name}")
    raise Unmappable(f"{where}: no StartDateTime, ActivityDateTime or ActivityDate")


def _owner_function(settings: VendorSettings, owner: str | None) -> str:
    if owner:
        full = id18(owner)
        for key in (full, full[:15]):
            function = settings.function("owners", key)
            if function is not None:
                return function
    return settings.default_function


SOURCE: Final = VendorSource(
    name=SYSTEM,
    title="Salesforce Task and Event records (REST API JSON or Data Loader CSV)",
    formats=("csv", "jsonl"),
    records=records,
    map=map_record,
    customers=customers,
)
