"""Every error of a message at once (issue 14): field, expected, got; "did you mean" for
field names and for values of the closed vocabularies; text that is not JSON in words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from mot.domain.messages import Rejected, Rejection, amended, parse_message

NOW = datetime(2026, 6, 1, tzinfo=UTC)
MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"
CHANNELS = ("'email', 'phone', 'chat', 'sms', 'in_person', 'web', 'forum', 'blog', "
            "'review_site', 'twitter', 'facebook', 'linkedin', 'instagram', 'youtube', "
            "'tiktok' or 'other'")
KINDS = ("'answer', 'help', 'content', 'gift', 'introduction', 'apology', 'ask', 'question', "
         "'other', 'complaint', 'feedback', 'praise', 'reply', 'purchase', 'accept', "
         "'decline', 'post', 'review', 'mention', 'share' or 'like'")


def rejection(raw: bytes | dict[str, Any]) -> Rejection:
    result = parse_message(raw if isinstance(raw, bytes) else orjson.dumps(raw), NOW)
    assert isinstance(result, Rejection), result
    return result


def moment(**fields: Any) -> dict[str, Any]:
    base = {"tenant": "acme", "customer_id": "c1", "occurred_at": "2026-03-01T10:00:00Z",
            "channel": "email", "direction": "outbound", "kind": "answer",
            "source": {"system": "crm", "id": "1"}}
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def test_every_field_error_is_named_with_a_suggestion() -> None:
    r = rejection(moment(channel="emial", direction="outbund", kind="answr"))
    assert [(p.field, p.problem) for p in r.problems] == [
        ("channel", f"expected {CHANNELS}, got 'emial' (did you mean 'email'?)"),
        ("direction", "expected 'inbound', 'outbound' or 'public', got 'outbund' "
                      "(did you mean 'outbound'?)"),
        ("kind", f"expected {KINDS}, got 'answr' (did you mean 'answer'?)"),
    ]
    assert r.field == "channel"  # the quarantine's field column: the first
    assert r.reason == "; ".join(f"{p.field}: {p.problem}" for p in r.problems)


def test_a_kind_is_suggested_from_its_direction() -> None:
    # 'pots' is close to 'post' (public) and to 'other' less so: the direction decides.
    r = rejection(moment(direction="public", kind="pots", channel="twitter"))
    assert r.problems[0].problem.endswith("got 'pots' (did you mean 'post'?)")
    assert rejection(moment(function="Service")).problem.endswith(
        "got 'Service' (did you mean 'service'?)")
    assert "did you mean" not in rejection(moment(channel="fax")).problem


def test_rules_across_fields_are_judged_beside_field_errors() -> None:
    r = rejection(moment(channel="emial", kind="praise", ask_type="purchase",
                         occurred_at="2026-09-01T10:00:00Z", currency="EURO", source=None,
                         custmer_id="c1", customer_id=None))
    assert [p.field for p in r.problems] == [
        "custmer_id", "channel", "kind", "ask_type", "occurred_at", "moment_id", "currency"]
    # The typo explains the missing customer_id, which is not listed again.
    assert r.problems[0].problem.endswith("did you mean 'customer_id'?)")
    assert r.problems[2].problem == (
        "'praise' is not a kind of direction 'outbound' (expected one of answer, help, "
        "content, gift, introduction, apology, ask, question, other)")
    # A rule is not judged on a value that has an error of its own.
    only = rejection(moment(kind="answr", ask_type="purchase"))
    assert [p.field for p in only.problems] == ["kind"]


def test_a_valid_message_with_one_rule_broken_names_just_that() -> None:
    r = rejection(moment(kind="share", direction="public", channel="twitter"))
    assert (r.field, r.others) == ("shares", ())
    assert r.reason == "shares: required with kind 'share' (the public moment re-shared)"


def test_an_amendment_names_every_bad_field() -> None:
    r = rejection({"type": "amend", "moment_id": MID, "set": {"chanel": "x", "tenant": "b"},
                   "reason": "r"})
    assert [p.field for p in r.problems] == ["set.chanel", "set.tenant"]
    assert "did you mean 'channel'?" in r.problems[0].problem
    try:
        amended(moment(), {"channel": "emial", "sentiment": 3}, NOW)
    except Rejected as error:
        assert [p.field for p in error.rejection.problems] == ["set.channel", "set.sentiment"]
    else:
        raise AssertionError("the amendment should be rejected")
    assert rejection({"type": "amnd"}).reason == (
        "type: expected 'moment', 'amend', 'retract', 'link' or 'unlink', got 'amnd' "
        "(did you mean 'amend'?)")


def test_text_that_is_not_json_is_described_in_words() -> None:
    cases = {
        b"not json": "not valid JSON: expected a JSON value (an object, string, number, true, "
                     "false or null) at character 1, got 'not json'",
        b'{"customer_id": "c1"': "not valid JSON: it ends before the JSON is complete "
                                 "(cut off after character 20)",
        b"{'a': 1}": "not valid JSON: expected a field name in double quotes at character 2, "
                     "got \"'a': 1}\"",
        b'{"a": 1,}': "not valid JSON: a comma before the closing bracket at character 8 "
                      "(JSON allows none there)",
        b'{"a": 1} x': "not valid JSON: more text after the JSON value at character 10: 'x'",
        b"acme,c1,2026-03-01T10:00:00Z": "not valid JSON: expected a JSON value (an object, "
        "string, number, true, false or null) at character 1, got 'acme,c1,2026-03-01T1' "
        "(a CSV row? import CSV with --format csv)",
        b"\xff\xfe{": "not UTF-8 text (byte 0xff at byte 1); save the file as UTF-8",
        b"  ": "an empty line; expected a JSON object",
    }
    for raw, reason in cases.items():
        r = rejection(raw)
        assert (r.field, r.reason) == ("", reason), raw
        assert "char " not in r.reason and "line 1 column" not in r.reason
