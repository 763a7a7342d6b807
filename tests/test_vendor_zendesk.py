"""Zendesk ticket audits and satisfaction ratings to wire moments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mot.adapters.vendors import NotAMoment, Unmappable, VendorConfig
from mot.adapters.vendors.zendesk import map_record, records
from mot.domain.messages import RecordMoment, validate_message

CONFIG = VendorConfig.from_dict({
    "tenant": "acme",
    "zendesk": {
        "agents": {"3001": "service", "3002": "logistics"},
        "groups": {"360001": "service", "360002": "product"},
        "mailboxes": {"returns@acme.zendesk.com": "logistics"},
    },
})
NOW = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL_VIA = {"channel": "email", "source": {"from": {"address": "jo@example.org"},
                                            "to": {"address": "support@acme.zendesk.com"}, "rel": None}}


def comment(author: int, public: bool = True, event_id: int = 902, kind: str = "Comment") -> dict[str, Any]:
    return {"id": event_id, "type": kind, "author_id": author, "body": "text", "public": public,
            "attachments": []}


def audit(*events: dict[str, Any], author: int = 5001, channel: str = "web", ticket: int = 666,
          audit_id: int = 901) -> dict[str, Any]:
    return {"id": audit_id, "ticket_id": ticket, "created_at": "2025-05-02T08:14:03Z", "author_id": author,
            "metadata": {"system": {}, "custom": {}},
            "via": EMAIL_VIA if channel == "email" else {"channel": channel, "source": {}},
            "events": list(events)}


def create(field: str, value: Any) -> dict[str, Any]:
    return {"id": 1, "type": "Create", "field_name": field, "value": value}


def messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    out = map_record(record, CONFIG)
    for message in out:
        assert isinstance(validate_message(message, NOW), RecordMoment), message
    return out


def test_opening_comment_is_the_ticket_and_later_comments_reply_to_it() -> None:
    [opening] = messages(audit(comment(5001), create("requester_id", "5001"), create("type", "question"),
                               create("group_id", "360001")))
    assert opening["source"] == {"system": "zendesk", "id": "ticket:666"}
    assert (opening["direction"], opening["kind"], opening["function"]) == ("inbound", "question", "service")
    assert opening["customer_id"] == "zendesk:5001"
    assert "in_reply_to" not in opening
    wrapped = {"ticket": {"id": 666, "requester_id": 5001, "group_id": 360002, "type": "question",
                          "via": {"channel": "email"}},
               "audit": audit(comment(3001, event_id=903), author=3001, audit_id=902)}
    [answer] = messages(wrapped)
    assert answer["source"] == {"system": "zendesk", "id": "comment:903"}
    assert answer["in_reply_to"] == {"system": "zendesk", "id": "ticket:666"}
    assert (answer["direction"], answer["kind"]) == ("outbound", "answer")
    assert answer["customer_id"] == "zendesk:5001"
    assert answer["function"] == "service"  # the agent's, before the group's
    assert answer["actor"] == "3001"
    assert answer["channel"] == "email"  # typed in the workspace, sent by the ticket's channel


@pytest.mark.parametrize(
    ("ticket_type", "kind"), [("incident", "complaint"), ("problem", "complaint"), ("question", "question"),
                              ("task", "question")],
)
def test_opening_kind_from_ticket_type(ticket_type: str, kind: str) -> None:
    [opening] = messages(audit(comment(5001), create("requester_id", "5001"), create("type", ticket_type)))
    assert opening["kind"] == kind


def test_direction_from_requester_roles_and_agents() -> None:
    ticket = {"id": 666, "requester_id": 5001}
    later = {"ticket": ticket, "audit": audit(comment(5001), audit_id=905)}
    assert messages(later)[0]["kind"] == "reply"
    assert messages(later)[0]["direction"] == "inbound"
    unknown_agent = {"ticket": ticket, "audit": audit(comment(4444), author=4444)}
    assert messages(unknown_agent)[0]["direction"] == "outbound"  # not the requester: an agent
    assert messages(unknown_agent)[0]["function"] == "service"  # no group, no mailbox: default
    cc_end_user = {"ticket": ticket, "audit": audit(comment(4444), author=4444),
                   "users": [{"id": 4444, "role": "end-user"}]}
    assert messages(cc_end_user)[0]["direction"] == "inbound"
    listed_agent = audit(comment(3002))  # no requester known, but a configured agent ...
    with pytest.raises(Unmappable, match="requester"):  # ... answers someone unknown
        map_record(listed_agent, CONFIG)


def test_sideloaded_list_response_is_split_per_audit_with_its_ticket_and_users() -> None:
    envelope = {
        "audits": [audit(comment(5001), create("requester_id", "5001"), audit_id=1),
                   audit(comment(3001, event_id=77), author=3001, audit_id=2)],
        "users": [{"id": 5001, "role": "end-user"}, {"id": 3001, "role": "agent"},
                  {"id": 9, "role": "agent"}],
        "tickets": [{"id": 666, "requester_id": 5001, "via": {"channel": "chat"}}],
        "next_page": None, "previous_page": None, "count": 2,
    }
    *found, people = records(envelope)
    assert [r["audit"]["id"] for r in found] == [1, 2]
    assert people == {"users": envelope["users"], "identities": []}  # their links: test_vendor_links
    assert found[1]["ticket"]["id"] == 666
    assert {u["id"] for u in found[1]["users"]} == {3001, 5001}
    assert messages(found[1])[0]["channel"] == "chat"
    assert records({"audits": [audit(comment(5001))]}) == [audit(comment(5001))]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (audit({"id": 5, "type": "Change", "field_name": "status", "value": "pending"}), "without a comment"),
        (audit(comment(3001, public=False)), "internal note"),
        (audit(comment(-1), author=-1), "Zendesk itself"),
    ],
)
def test_no_moments(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotAMoment, match=reason):
        map_record(record, CONFIG)


def test_mailbox_function_and_channels() -> None:
    opening = audit(comment(5002), create("requester_id", "5002"), channel="email")
    opening["via"]["source"]["to"]["address"] = "returns@acme.zendesk.com"
    [message] = messages(opening)
    assert (message["channel"], message["function"]) == ("email", "logistics")
    voice = audit(comment(5001, kind="VoiceComment"), create("requester_id", "5001"))
    assert messages(voice)[0]["channel"] == "phone"
    whatsapp = audit(comment(5001), create("requester_id", "5001"), channel="whatsapp")
    assert messages(whatsapp)[0]["channel"] == "chat"
    unknown = audit(comment(5001), create("requester_id", "5001"), channel="carrier_pigeon")
    assert messages(unknown)[0]["channel"] == "other"


RATING = {"url": "https://acme.zendesk.com/api/v2/satisfaction_ratings/35436.json", "id": 35436,
          "assignee_id": 3001, "group_id": 360002, "requester_id": 5001, "ticket_id": 666, "score": "good",
          "created_at": "2025-05-05T08:00:00Z", "updated_at": "2025-05-05T19:41:12Z",
          "comment": "Fast and friendly", "reason": ""}


def test_rating_is_the_survey_ask_and_the_answer() -> None:
    ask, rated = messages(RATING)
    assert (ask["direction"], ask["kind"], ask["ask_type"]) == ("outbound", "ask", "survey")
    assert ask["occurred_at"] == "2025-05-05T08:00:00Z"
    assert ask["source"] == {"system": "zendesk", "id": "satisfaction_survey:35436"}
    assert ask["in_reply_to"] == {"system": "zendesk", "id": "ticket:666"}
    assert ask["function"] == "service"
    assert (rated["direction"], rated["kind"], rated["sentiment"]) == ("inbound", "praise", 1.0)
    assert rated["occurred_at"] == "2025-05-05T19:41:12Z"
    assert rated["in_reply_to"] == ask["source"]
    [offered] = messages({**RATING, "score": "offered", "updated_at": RATING["created_at"]})
    assert offered == ask  # the survey offered earlier and the rating later name the same ask
    _, bad = messages({**RATING, "score": "bad"})
    assert (bad["kind"], bad["sentiment"]) == ("complaint", -1.0)
    assert records({"satisfaction_ratings": [RATING], "count": 1}) == [RATING]
    assert records({"satisfaction_rating": RATING}) == [RATING]


def test_rating_no_moment_and_unmappable() -> None:
    with pytest.raises(NotAMoment, match="not offered"):
        map_record({**RATING, "score": "unoffered"}, CONFIG)
    with pytest.raises(Unmappable, match="requester_id"):
        map_record({**RATING, "requester_id": None}, CONFIG)
    with pytest.raises(Unmappable, match="score"):
        map_record({**RATING, "score": "great"}, CONFIG)
    with pytest.raises(Unmappable, match="neither a ticket audit"):
        map_record({"id": 666, "subject": "a ticket"}, CONFIG)
