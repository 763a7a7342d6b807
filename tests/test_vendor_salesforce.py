"""Salesforce Task and Event records (REST JSON and Data Loader CSV rows) to wire moments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mot.adapters.vendors import NotAMoment, Unmappable, VendorConfig
from mot.adapters.vendors.salesforce import id18, map_record, records
from mot.domain.identity import derived_moment_id
from mot.domain.messages import RecordMoment, validate_message

CONFIG = VendorConfig.from_dict({
    "tenant": "acme",
    "salesforce": {
        "owners": {"0055g00000Ow7NrAAJ": "sales", "0055g00000Ow7Ns": "product"},
        "queues": {"00G5g00000Qu3UeEAJ": "service"},
        "kinds": {"email.outbound": "content"},
    },
})
NOW = datetime(2026, 1, 1, tzinfo=UTC)

TASK = {
    "attributes": {"type": "Task", "url": "/services/data/v62.0/sobjects/Task/00T5g00000Ab1C2EAJ"},
    "Id": "00T5g00000Ab1C2EAJ", "WhoId": "0035g00000Kq1AaAAJ", "OwnerId": "0055g00000Ow7NrAAJ",
    "Status": "Completed", "IsClosed": True, "ActivityDate": "2025-04-01",
    "CreatedDate": "2025-04-01T09:41:07.000+0000", "TaskSubtype": "Call", "CallType": "Inbound",
    "CallDurationInSeconds": 540, "IsDeleted": False,
}
EVENT = {
    "attributes": {"type": "Event"}, "Id": "00U5g00000Xy7Z1EAJ", "WhoId": "00Q5g00000Ld9EeEAJ",
    "OwnerId": "00G5g00000Qu3UeEAJ", "StartDateTime": "2025-04-11T13:00:00.000+0200",
    "ActivityDate": "2025-04-11", "Location": "Acme HQ", "IsDeleted": False,
}


def one(record: dict[str, Any]) -> dict[str, Any]:
    [message] = map_record(record, CONFIG)
    assert isinstance(validate_message(message, NOW), RecordMoment), message
    return message


def test_id18_extends_15_character_ids() -> None:
    assert id18("001A0000006Vm9r") == "001A0000006Vm9rIAC"  # Salesforce's documented example
    assert id18("00T5g00000Ab1C2EAJ") == "00T5g00000Ab1C2EAJ"
    assert id18("00T5g00000Ab1C2") == "00T5g00000Ab1C2EAJ"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, {"direction": "inbound", "kind": "question", "channel": "phone", "function": "sales",
              "occurred_at": "2025-04-01T09:41:07Z"}),
        ({"CallType": "Outbound"}, {"direction": "outbound", "kind": "other", "channel": "phone"}),
        ({"CallType": None}, {"direction": "outbound"}),
        ({"TaskSubtype": "Email", "CallType": None}, {"direction": "outbound", "kind": "content",
                                                       "channel": "email"}),
        ({"TaskSubtype": "ListEmail"}, {"kind": "content", "channel": "email"}),
        ({"TaskSubtype": "LinkedIn"}, {"channel": "linkedin", "kind": "other"}),
        ({"TaskSubtype": "Cadence"}, {"channel": "other"}),
        ({"TaskSubtype": "Task", "Type": "Meeting"}, {"channel": "in_person", "direction": "outbound"}),
        ({"OwnerId": "0055g00000Ow7NsAAJ"}, {"function": "product", "actor": "0055g00000Ow7NsAAJ"}),
        ({"OwnerId": "00G5g00000Qu3Ue"}, {"function": "service", "actor": "00G5g00000Qu3UeEAJ"}),
        ({"OwnerId": "0055g00000Zz9Zz"}, {"function": "sales"}),  # not configured: default_function
        ({"CompletedDateTime": "2025-04-01T10:00:00.000+0000"}, {"occurred_at": "2025-04-01T10:00:00Z"}),
        ({"CreatedDate": "2025-04-09T08:10:00.000+0000"}, {"occurred_at": "2025-04-01T00:00:00Z"}),
        ({"WhoId": "0035g00000Kq1Aa"}, {"customer_id": "salesforce:0035g00000Kq1AaAAJ"}),
    ],
)
def test_task_mapping(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    record = {k: v for k, v in {**TASK, **changes}.items() if v is not None}
    message = one(record)
    assert message["source"] == {"system": "salesforce", "id": "00T5g00000Ab1C2EAJ"}
    for name, value in expected.items():
        assert message.get(name) == value, name


def test_data_loader_row_upper_case_headers_and_text_cells() -> None:
    row = {"ID": "00T5g00000Ab1C2EAJ", "WHOID": "0035g00000Kq1AaAAJ", "OWNERID": "0055g00000Ow7NrAAJ",
           "STATUS": "Completed", "ISCLOSED": "true", "ACTIVITYDATE": "2025-04-01",
           "CREATEDDATE": "2025-04-01T09:41:07.000Z", "TASKSUBTYPE": "Call", "CALLTYPE": "Inbound",
           "CALLDURATIONINSECONDS": "540", "ISDELETED": "false", "WHATID": ""}
    rest = one(TASK)
    csv_moment = one(row)
    assert csv_moment == rest  # both exports of the same Task are the same moment
    assert csv_moment["attributes"]["call_duration_seconds"] == 540


def test_event_mapping() -> None:
    message = one(EVENT)
    assert message["occurred_at"] == "2025-04-11T11:00:00Z"
    assert (message["direction"], message["kind"], message["channel"]) == ("outbound", "other", "in_person")
    assert message["customer_id"] == "salesforce:00Q5g00000Ld9EeEAJ"
    assert message["function"] == "service"
    online = one({**EVENT, "Location": "https://acme.my.webex.com/meet/demo"})
    assert online["channel"] == "web"
    by_prefix = one({k: v for k, v in EVENT.items() if k != "attributes"})
    assert by_prefix == message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"IsClosed": False, "Status": "Not Started"}, "open task"),
        ({"IsClosed": None, "Status": "In Progress"}, "open task"),
        ({"CallType": "Internal"}, "internal call"),
        ({"TaskSubtype": "Task", "Type": "Other"}, "to-do task"),
    ],
)
def test_no_moments(changes: dict[str, Any], reason: str) -> None:
    record = {k: v for k, v in {**TASK, **changes}.items() if v is not None}
    with pytest.raises(NotAMoment, match=reason):
        map_record(record, CONFIG)


def test_closed_statuses_are_configurable() -> None:
    record = {k: v for k, v in TASK.items() if k != "IsClosed"} | {"Status": "Done"}
    with pytest.raises(NotAMoment):
        map_record(record, CONFIG)
    custom = VendorConfig.from_dict({"salesforce": {"closed_statuses": ["Done"]}})
    assert map_record(record, custom)[0]["direction"] == "inbound"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({**TASK, "WhoId": None}, "no WhoId"),
        ({"attributes": {"type": "Opportunity"}, "Id": "0065g00000Dl4OoAAJ"}, "only Task and Event"),
        ({"Id": "0065g00000Dl4OoAAJ"}, "neither a Task"),
        ({"Name": "x"}, "no Id"),
        ({**TASK, "TaskSubtype": "Fax"}, "TaskSubtype 'fax'"),
        ({k: v for k, v in TASK.items() if k not in ("CreatedDate", "ActivityDate")}, "no CompletedDateTime"),
        ({**TASK, "CallDurationInSeconds": "long"}, "expected a number"),
    ],
)
def test_unmappable(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        map_record({k: v for k, v in record.items() if v is not None}, CONFIG)


def test_deleted_record_retracts() -> None:
    [message] = map_record({**TASK, "IsDeleted": True}, CONFIG)
    assert message == {"type": "retract",
                       "moment_id": derived_moment_id("acme", "salesforce", "00T5g00000Ab1C2EAJ"),
                       "reason": "Task 00T5g00000Ab1C2EAJ was deleted in Salesforce"}


def test_records_unwraps_query_responses() -> None:
    assert records({"totalSize": 2, "done": True, "records": [TASK, EVENT]}) == [TASK, EVENT]
    assert records(TASK) == [TASK]
    assert records([TASK]) == [TASK]
