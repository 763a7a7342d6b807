"""Wire format v1 (SPEC §2): every rule's rejection, and the normalisation of good input.

The bad-input corpus (`corpus/bad_moments.jsonl`) holds one line per rule, as it
would appear in an import file, with the field and the exact reason expected.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mot.domain.messages import (
    AmendMoment,
    RecordMoment,
    Rejected,
    Rejection,
    RetractMoment,
    amended,
    parse_message,
)
from mot.domain.schema import AMENDABLE_FIELDS, MomentIn
from mot.domain.vocabulary import ASK_TYPES, CHANNELS, DIRECTIONS, FUNCTIONS, KINDS_BY_DIRECTION

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CORPUS_PATH = Path(__file__).parent / "corpus" / "bad_moments.jsonl"
CORPUS = [json.loads(line) for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines()]

MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"
OTHER_ID = "0b7e6c1d-2f3a-4b5c-9d8e-7f6a5b4c3d2e"


def wire(separators: bool = False, **fields: Any) -> bytes:
    """A valid outbound answer, with `fields` changed (None drops a field); `separators`:
    compact JSON (no space after a comma or a colon)."""
    message: dict[str, Any] = {
        "moment_id": MID,
        "tenant": "acme",
        "customer_id": "c1",
        "occurred_at": "2026-03-01T10:00:00Z",
        "channel": "email",
        "direction": "outbound",
        "kind": "answer",
    }
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not None},
                      separators=(",", ":") if separators else None).encode()


def record(raw: bytes, now: datetime = NOW) -> dict[str, Any]:
    result = parse_message(raw, now)
    assert isinstance(result, RecordMoment), result
    assert result.moment_id == result.moment["moment_id"]
    return result.moment


def reject(raw: bytes, now: datetime = NOW) -> Rejection:
    result = parse_message(raw, now)
    assert isinstance(result, Rejection), result
    return result


def uuid5_of(tenant: str, system: str, source_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mot:{tenant}:{system}:{source_id}"))


# --- the bad-input corpus ----------------------------------------------------------------


def test_corpus_is_well_formed() -> None:
    names = [case["case"] for case in CORPUS]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CORPUS:
        assert set(case) == {"case", "line", "field", "error"}, case["case"]
        assert isinstance(case["line"], str)
        assert "\n" not in case["line"], "a line of an import file holds no newline"
        expected_reason = f"{case['field']}: " if case["field"] else ""
        assert case["error"].startswith(expected_reason), case["case"]


@pytest.mark.parametrize("case", CORPUS, ids=[case["case"] for case in CORPUS])
def test_bad_input_is_rejected_naming_the_field(case: dict[str, str]) -> None:
    rejection = reject(case["line"].encode())
    assert rejection.field == case["field"]
    assert rejection.reason == case["error"]


def test_bad_input_as_text_is_rejected_the_same_way() -> None:
    for case in CORPUS:
        result = parse_message(case["line"], NOW)
        assert isinstance(result, Rejection), case["case"]
        assert result.reason == case["error"], case["case"]


# --- occurred_at -------------------------------------------------------------------------


def test_occurred_at_is_stored_in_utc_ending_in_z() -> None:
    assert record(wire(occurred_at="2026-03-01T10:00:00+02:00"))["occurred_at"] == (
        "2026-03-01T08:00:00Z"
    )
    assert record(wire(occurred_at="2026-03-01T10:00:00-05:30"))["occurred_at"] == (
        "2026-03-01T15:30:00Z"
    )
    assert record(wire(occurred_at="2026-03-01T10:00:00Z"))["occurred_at"] == (
        "2026-03-01T10:00:00Z"
    )


def test_occurred_at_keeps_fractional_seconds() -> None:
    moment = record(wire(occurred_at="2026-03-01T10:00:00.123456+02:00"))
    assert moment["occurred_at"] == "2026-03-01T08:00:00.123456Z"
    moment = record(wire(occurred_at="2026-03-01T10:00:00.5Z"))
    assert moment["occurred_at"] == "2026-03-01T10:00:00.500000Z"


@pytest.mark.parametrize(
    "text", ["2026-03-01t10:00:00z", "2026-03-01 10:00:00Z", "2026-03-01T10:00:00+00:00"]
)
def test_occurred_at_accepts_the_rfc_3339_variants(text: str) -> None:
    assert record(wire(occurred_at=text))["occurred_at"] == "2026-03-01T10:00:00Z"


def test_occurred_at_exactly_24_hours_ahead_is_accepted() -> None:
    assert record(wire(occurred_at="2026-06-02T00:00:00Z"))["occurred_at"] == (
        "2026-06-02T00:00:00Z"
    )
    # The same instant written with an offset.
    assert record(wire(occurred_at="2026-06-02T02:00:00+02:00"))["occurred_at"] == (
        "2026-06-02T00:00:00Z"
    )


def test_occurred_at_more_than_24_hours_ahead_is_rejected() -> None:
    rejection = reject(wire(occurred_at="2026-06-02T00:00:00.000001Z"))
    assert rejection.field == "occurred_at"
    # The rule is relative to the time of recording, not to the wall clock.
    later = NOW + timedelta(seconds=1)
    assert record(wire(occurred_at="2026-06-02T00:00:01Z"), later)


def test_occurred_at_in_the_past_is_accepted() -> None:
    assert record(wire(occurred_at="1999-12-31T23:59:59Z"))["occurred_at"] == (
        "1999-12-31T23:59:59Z"
    )


# --- defaults ----------------------------------------------------------------------------


def test_defaults_are_applied() -> None:
    raw = json.dumps({
        "customer_id": "c1",
        "occurred_at": "2026-03-01T10:00:00Z",
        "channel": "email",
        "direction": "outbound",
        "kind": "answer",
        "source": {"system": "crm", "id": "A-1"},
    }).encode()
    moment = record(raw)
    assert moment["tenant"] == "default"
    assert moment["function"] == "other"
    assert moment["reach"] == 0
    assert "ask_type" not in moment
    assert moment["moment_id"] == uuid5_of("default", "crm", "A-1")
    assert moment == {
        "moment_id": uuid5_of("default", "crm", "A-1"),
        "tenant": "default",
        "customer_id": "c1",
        "occurred_at": "2026-03-01T10:00:00Z",
        "channel": "email",
        "direction": "outbound",
        "kind": "answer",
        "function": "other",
        "reach": 0,
        "source": {"system": "crm", "id": "A-1"},
    }


def test_ask_type_defaults_to_other_for_asks_only() -> None:
    assert record(wire(kind="ask"))["ask_type"] == "other"
    assert record(wire(kind="ask", ask_type="review"))["ask_type"] == "review"
    for kind in KINDS_BY_DIRECTION["outbound"]:
        if kind != "ask":
            assert "ask_type" not in record(wire(kind=kind)), kind


def test_given_values_are_kept() -> None:
    moment = record(wire(
        direction="public", channel="twitter", kind="post", function="service",
        actor="@brand", sentiment=-0.5, reach=1200, value=19.99, currency="EUR",
        url="https://example.com/p/1", attributes={"lang": "en", "tags": ["a", "b"]},
    ))
    assert moment["function"] == "service"
    assert moment["actor"] == "@brand"
    assert moment["sentiment"] == -0.5
    assert moment["reach"] == 1200
    assert moment["value"] == 19.99
    assert moment["currency"] == "EUR"
    assert moment["url"] == "https://example.com/p/1"
    assert moment["attributes"] == {"lang": "en", "tags": ["a", "b"]}


def test_boundaries_are_accepted() -> None:
    assert record(wire(sentiment=1))["sentiment"] == 1.0
    assert record(wire(sentiment=-1))["sentiment"] == -1.0
    assert record(wire(value=0, currency="JPY"))["value"] == 0.0
    assert record(wire(tenant="t" * 128))["tenant"] == "t" * 128
    assert record(wire(customer_id="c" * 256))["customer_id"] == "c" * 256
    assert record(wire(actor="a" * 256))["actor"] == "a" * 256
    url = "https://example.com/" + "p" * 2028
    assert record(wire(url=url))["url"] == url
    attributes = {"n": "x" * 16376}  # encodes to exactly 16 KiB
    assert len(json.dumps(attributes, separators=(",", ":"))) == 16 * 1024
    assert record(wire(attributes=attributes))["attributes"] == attributes


def test_every_vocabulary_word_is_accepted() -> None:
    for channel in CHANNELS:
        assert record(wire(channel=channel))["channel"] == channel
    for function in FUNCTIONS:
        assert record(wire(function=function))["function"] == function
    for ask_type in ASK_TYPES:
        assert record(wire(kind="ask", ask_type=ask_type))["ask_type"] == ask_type
    for direction in DIRECTIONS:
        for kind in KINDS_BY_DIRECTION[direction]:
            extra = {"shares": OTHER_ID} if kind == "share" else {}
            moment = record(wire(direction=direction, kind=kind, **extra))
            assert (moment["direction"], moment["kind"]) == (direction, kind)


def test_currency_is_normalised_to_uppercase() -> None:
    assert record(wire(value=10, currency="eur"))["currency"] == "EUR"
    assert record(wire(value=10, currency="Usd"))["currency"] == "USD"


def test_type_moment_is_accepted_and_left_out() -> None:
    with_type = record(wire(type="moment"))
    assert "type" not in with_type
    assert with_type == record(wire())


# --- identity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "system", "source_id"),
    [
        ("acme", "salesforce", "0035e00000AbCdE"),
        ("default", "crm", "1"),
        ("brand:x", "listen:tool", "a:b:c"),
        ("Ünïcode ☕", "système", "идентификатор"),
    ],
)
def test_identity_is_derived_from_the_source(tenant: str, system: str, source_id: str) -> None:
    moment = record(wire(moment_id=None, tenant=tenant, source={"system": system, "id": source_id}))
    assert moment["moment_id"] == uuid5_of(tenant, system, source_id)
    assert moment["source"] == {"system": system, "id": source_id}


def test_same_source_in_two_tenants_gives_two_ids() -> None:
    source = {"system": "crm", "id": "A-1"}
    first = record(wire(moment_id=None, tenant="acme", source=source))["moment_id"]
    second = record(wire(moment_id=None, tenant="globex", source=source))["moment_id"]
    assert first != second


def test_same_source_sent_twice_gives_the_same_moment() -> None:
    raw = wire(moment_id=None, source={"system": "crm", "id": "A-1"})
    assert record(raw) == record(raw)


def test_numeric_source_id_is_coerced_to_a_string() -> None:
    moment = record(wire(moment_id=None, source={"system": "crm", "id": 42}))
    assert moment["source"] == {"system": "crm", "id": "42"}
    assert moment["moment_id"] == uuid5_of("acme", "crm", "42")
    as_text = record(wire(moment_id=None, source={"system": "crm", "id": "42"}))
    assert as_text == moment


def test_explicit_moment_id_wins_over_the_source() -> None:
    moment = record(wire(moment_id=MID, source={"system": "crm", "id": "A-1"}))
    assert moment["moment_id"] == MID
    assert moment["source"] == {"system": "crm", "id": "A-1"}


def test_moment_id_is_canonicalised_to_lowercase() -> None:
    result = parse_message(wire(moment_id=MID.upper()), NOW)
    assert isinstance(result, RecordMoment)
    assert result.moment_id == MID
    assert result.moment["moment_id"] == MID


# --- moment references -------------------------------------------------------------------


def test_reference_as_uuid_string_is_canonicalised() -> None:
    assert record(wire(in_reply_to=OTHER_ID.upper()))["in_reply_to"] == OTHER_ID
    moment = record(wire(direction="public", kind="share", shares=OTHER_ID.upper()))
    assert moment["shares"] == OTHER_ID


def test_reference_as_source_resolves_within_the_moments_tenant() -> None:
    reference = {"system": "crm", "id": "A-1"}
    in_acme = record(wire(tenant="acme", in_reply_to=reference))["in_reply_to"]
    in_globex = record(wire(tenant="globex", in_reply_to=reference))["in_reply_to"]
    assert in_acme == uuid5_of("acme", "crm", "A-1")
    assert in_globex == uuid5_of("globex", "crm", "A-1")
    assert in_acme != in_globex
    in_default = record(wire(tenant=None, in_reply_to=reference))["in_reply_to"]
    assert in_default == uuid5_of("default", "crm", "A-1")


def test_reference_names_the_moment_recorded_from_that_source() -> None:
    original = record(wire(moment_id=None, source={"system": "crm", "id": "A-1"}))
    reply = record(wire(moment_id=OTHER_ID, in_reply_to={"system": "crm", "id": "A-1"}))
    assert reply["in_reply_to"] == original["moment_id"]


def test_shares_as_source_and_numeric_id() -> None:
    moment = record(wire(
        direction="public", channel="twitter", kind="share", shares={"system": "x", "id": 987},
    ))
    assert moment["shares"] == uuid5_of("acme", "x", "987")


def test_reference_to_a_moment_not_yet_recorded_is_accepted() -> None:
    # Parsing is pure: a reference is resolved to an id, never looked up.
    never_recorded = str(uuid.uuid4())
    assert record(wire(in_reply_to=never_recorded))["in_reply_to"] == never_recorded


# --- amend and retract messages ----------------------------------------------------------


def test_amend_and_retract_messages_are_parsed() -> None:
    amend = parse_message(json.dumps({
        "type": "amend", "moment_id": MID.upper(), "set": {"sentiment": 0.6, "actor": None},
        "reason": "re-scored",
    }).encode(), NOW)
    assert amend == AmendMoment(MID, {"sentiment": 0.6, "actor": None}, "re-scored")
    retract = parse_message(json.dumps({
        "type": "retract", "moment_id": MID, "reason": "sent twice",
    }).encode(), NOW)
    assert retract == RetractMoment(MID, "sent twice")


def test_every_amendable_field_may_be_named() -> None:
    for name in AMENDABLE_FIELDS:
        message = {"type": "amend", "moment_id": MID, "set": {name: None}, "reason": "r"}
        assert isinstance(parse_message(json.dumps(message).encode(), NOW), AmendMoment), name


# --- amended() ---------------------------------------------------------------------------


def current(**fields: Any) -> dict[str, Any]:
    return record(wire(**fields))


def amend_error(moment: dict[str, Any], changes: dict[str, Any]) -> Rejection:
    with pytest.raises(Rejected) as caught:
        amended(moment, changes, NOW)
    return caught.value.rejection


def test_amended_sets_a_field() -> None:
    moment = current()
    result = amended(moment, {"sentiment": 0.6, "function": "service"}, NOW)
    assert result == {**moment, "sentiment": 0.6, "function": "service"}


def test_amended_null_removes_a_field() -> None:
    moment = current(actor="alice", sentiment=0.2, url="https://example.com/1")
    result = amended(moment, {"actor": None, "sentiment": None}, NOW)
    assert "actor" not in result
    assert "sentiment" not in result
    assert result["url"] == "https://example.com/1"
    # A removed field with a default gets its default back.
    assert amended(current(function="sales"), {"function": None}, NOW)["function"] == "other"


def test_amended_normalises_like_a_recorded_moment() -> None:
    result = amended(current(), {"occurred_at": "2026-03-01T12:00:00+02:00", "currency": "gbp",
                                 "value": 5, "in_reply_to": {"system": "crm", "id": 7}}, NOW)
    assert result["occurred_at"] == "2026-03-01T10:00:00Z"
    assert result["currency"] == "GBP"
    assert result["in_reply_to"] == uuid5_of("acme", "crm", "7")
    assert result["moment_id"] == MID


def test_amended_kind_may_change_within_its_direction() -> None:
    assert amended(current(), {"kind": "help"}, NOW)["kind"] == "help"
    asked = amended(current(), {"kind": "ask"}, NOW)
    assert asked["ask_type"] == "other"
    asked = amended(current(), {"kind": "ask", "ask_type": "referral"}, NOW)
    assert asked["ask_type"] == "referral"
    # An ask turned into a give drops its ask_type (it belongs to the ask).
    given = amended(current(kind="ask", ask_type="purchase"), {"kind": "gift"}, NOW)
    assert given["kind"] == "gift"
    assert "ask_type" not in given


def test_amended_kind_of_another_direction_is_rejected_as_set_kind() -> None:
    rejection = amend_error(current(), {"kind": "praise"})
    assert rejection.field == "set.kind"
    assert rejection.reason == (
        "set.kind: 'praise' is not a kind of direction 'outbound' (expected one of answer, help, "
        "content, gift, introduction, apology, ask, question, other)"
    )


def test_amended_bad_value_is_rejected_as_set_field() -> None:
    rejection = amend_error(current(), {"sentiment": 2})
    assert rejection.reason == "set.sentiment: expected a number less than or equal to 1, got 2"
    rejection = amend_error(current(), {"ask_type": "review"})
    assert rejection.reason == "set.ask_type: only allowed with kind 'ask', not 'answer'"
    rejection = amend_error(current(), {"in_reply_to": {"system": "crm"}})
    assert rejection.reason == "set.in_reply_to.id: required field is missing"
    rejection = amend_error(current(), {"occurred_at": "2026-06-03T00:00:00Z"})
    assert rejection.field == "set.occurred_at"


def test_amended_kind_share_requires_shares() -> None:
    post = current(direction="public", channel="twitter", kind="post")
    rejection = amend_error(post, {"kind": "share"})
    assert rejection.field == "shares"
    assert rejection.reason == "shares: required with kind 'share' (the public moment re-shared)"
    shared = amended(post, {"kind": "share", "shares": OTHER_ID}, NOW)
    assert (shared["kind"], shared["shares"]) == ("share", OTHER_ID)


def test_amended_share_to_post_must_drop_shares() -> None:
    share = current(direction="public", channel="twitter", kind="share", shares=OTHER_ID)
    rejection = amend_error(share, {"kind": "post"})
    assert rejection.reason == "shares: only allowed with kind 'share', not 'post'"
    post = amended(share, {"kind": "post", "shares": None}, NOW)
    assert post["kind"] == "post"
    assert "shares" not in post


def test_amended_does_not_change_its_input() -> None:
    moment = current(actor="alice")
    snapshot = dict(moment)
    amended(moment, {"actor": None, "kind": "help"}, NOW)
    assert moment == snapshot


# --- properties: nothing raises ----------------------------------------------------------

WIRE_FIELDS = sorted(set(MomentIn.model_fields) | {"set", "reason"})

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
wire_values = (
    json_values
    | st.sampled_from([
        "moment", "amend", "retract", "default", "acme", MID, MID.upper(), "not-a-uuid",
        "2026-03-01T10:00:00Z", "2026-03-01T10:00:00+02:00", "2026-03-01T10:00:00",
        "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "2026-06-02T00:00:00Z",
        "eur", "EUR", "ABC", *CHANNELS, *DIRECTIONS, *FUNCTIONS, *ASK_TYPES,
        *{kind for kinds in KINDS_BY_DIRECTION.values() for kind in kinds},
    ])
    | st.fixed_dictionaries(
        {"system": st.text(max_size=5) | st.integers()},
        optional={"id": st.text(max_size=5) | st.integers() | st.booleans(), "x": st.none()},
    )
    | st.dictionaries(st.sampled_from(sorted(AMENDABLE_FIELDS)), json_values, max_size=3)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
)
wire_dicts = st.dictionaries(
    st.sampled_from(WIRE_FIELDS) | st.text(max_size=12), wire_values, max_size=14
)


def _json_int(text: str) -> int | float:
    # The wire decoder (orjson) reads an integer beyond 64 bits as a float.
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(value)


def _a_message_or_a_rejection(result: object) -> None:
    assert isinstance(result, RecordMoment | AmendMoment | RetractMoment | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, str)
        assert result.reason


@given(st.binary())
def test_any_bytes_give_a_message_or_a_rejection(raw: bytes) -> None:
    _a_message_or_a_rejection(parse_message(raw, NOW))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(wire_dicts)
def test_any_json_object_gives_a_message_or_a_rejection(data: dict[str, Any]) -> None:
    _a_message_or_a_rejection(parse_message(json.dumps(data).encode(), NOW))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(MomentIn.model_fields)), wire_values, max_size=4))
def test_any_change_to_a_valid_moment_gives_a_message_or_a_rejection(
    changes: dict[str, Any],
) -> None:
    base = json.loads(wire(source={"system": "crm", "id": "A-1"}))
    _a_message_or_a_rejection(parse_message(json.dumps({**base, **changes}).encode(), NOW))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(AMENDABLE_FIELDS)), wire_values, min_size=1))
def test_any_amendment_gives_a_moment_or_a_rejection(changes: dict[str, Any]) -> None:
    # As the values of an amendment's `set` arrive: decoded from JSON. A NUL character is
    # refused when the message is parsed, before any amendment is applied
    # (test_a_nul_character_is_rejected_naming_the_field).
    assume("\\u0000" not in json.dumps(changes))
    changes = json.loads(json.dumps(changes), parse_int=_json_int)
    try:
        result = amended(current(kind="ask"), changes, NOW)
    except Rejected as error:
        assert error.rejection.reason
    else:
        assert record(json.dumps(result).encode()) == result


def test_a_nul_character_is_rejected_naming_the_field() -> None:
    # PostgreSQL text cannot hold U+0000: such a message must be quarantined, not stall a store.
    from mot.domain.messages import Rejection, parse_message

    now = datetime(2026, 6, 1, tzinfo=UTC)
    raw = (b'{"tenant":"acme","customer_id":"c1","occurred_at":"2026-03-01T09:00:00Z",'
           b'"channel":"email","direction":"inbound","kind":"praise","moment_id":'
           b'"6f1c9e2a-3b4d-4c5e-8f70-123456789abc","attributes":{"note":["ok","a\\u0000b"]}}')
    rejection = parse_message(raw, now)
    assert isinstance(rejection, Rejection)
    assert rejection.field == "attributes.note[1]"
    assert "NUL" in rejection.reason


# --- a field given twice ------------------------------------------------------------------

GIVEN_TWICE_WORDS = "is given more than once in its object"


@pytest.mark.parametrize(("raw", "field"), [
    (wire()[:-1] + b', "customer_id": "c2"}', "customer_id"),
    # Spaces (or a line end) between a name and its colon, as some writers put them.
    (b'{"customer_id" : "c1", "tenant": "acme", "customer_id"\n: "c2"}', "customer_id"),
    (wire(attributes={"plan": "a"})[:-2] + b', "plan": "b"}}', "attributes.plan"),
    (wire(attributes={"items": [{"sku": 1}]})[:-4] + b', "sku": 2}]}}', "attributes.items[0].sku"),
    (wire(source={"system": "crm", "id": "r-1"})[:-2] + b', "id": "r-2"}}', "source.id"),
    # Compact, as most encoders write JSON (no space anywhere).
    (wire(separators=True)[:-1] + b',"customer_id":"c2"}', "customer_id"),
    # The value given first holds an escaped quote.
    (wire(actor='say "hi"')[:-1] + b', "actor": "me"}', "actor"),
    # Nested deeper than orjson writes JSON (254 levels), the repeat at the bottom.
    (wire()[:-1] + b', "attributes": {"k": ' + b"[" * 300 + b'{"x": 1, "x": 2}' + b"]" * 300
     + b"}}", "attributes.k" + "[0]" * 300 + ".x"),
])
def test_a_field_given_twice_is_rejected_naming_it(raw: bytes, field: str) -> None:
    """JSON decoders keep the last of two values of one name, so the other would be lost
    without a word: the message is refused, naming the field (as bytes and as text)."""
    for sent in (raw, raw.decode()):
        rejection = parse_message(sent, NOW)
        assert isinstance(rejection, Rejection), rejection
        assert rejection.field == field
        assert GIVEN_TWICE_WORDS in rejection.problem


@pytest.mark.parametrize("raw", [
    wire(actor='he said ": twice": and left'),  # a quote and colon inside a string
    wire(attributes={"a": {"b": 1}, "c": {"b": 2}, "d": [{"b": 3}, {"b": 4}]}),  # same name, other objects
    wire(actor='sp" :ace'),
    wire(separators=True),  # compact
    wire(separators=True, actor='say "hi"', attributes={"q": '"', "r": ['"x":']}),  # escaped quotes
])
def test_the_same_name_in_other_objects_or_inside_text_is_no_repeat(raw: bytes) -> None:
    assert record(raw)["customer_id"] == "c1"
    assert record(raw.decode().encode())["customer_id"] == "c1"


def test_json_nested_deeper_than_orjson_writes_is_searched_for_repeats() -> None:
    """A message's text is compared with what orjson writes for its value, which orjson
    cannot write past 254 levels: such a text is counted instead."""
    from mot.domain.messages import duplicate_field

    deep = b'{"k": ' + b"[" * 300 + b'{"x": 1, "y": "a"}' + b"]" * 300 + b"}"
    assert duplicate_field(deep, json.loads(deep)) is None
    repeated = deep.replace(b'"y"', b'"x"')
    assert duplicate_field(repeated, json.loads(repeated)) == "k" + "[0]" * 300 + ".x"


def test_a_nul_nested_a_thousand_deep_is_rejected_not_a_crash() -> None:
    """JSON nested a thousand deep is valid (orjson reads up to 1,024 levels), deeper than
    Python's recursion limit: the NUL check walks it with a stack (it raised RecursionError)."""
    raw = wire()[:-1] + b', "attributes": {"k": ' + b"[" * 1000 + b'"a\\u0000"' + b"]" * 1000 + b"}}"
    rejection = reject(raw)
    assert rejection.field == "attributes.k" + "[0]" * 1000
    assert "NUL" in rejection.problem


def test_attributes_nested_deeper_than_the_ledger_stores_say_how_deep_may_go() -> None:
    """Attributes nested 255 levels deep were quarantined as "cannot be encoded as JSON
    (Recursion limit reached)", orjson's words, naming neither the limit nor what to send.
    The reason says how deep they may go; one level less is recorded."""
    def nested(levels: int) -> bytes:  # the attributes object itself is the first level
        return wire()[:-1] + b', "attributes": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"}"

    assert record(nested(254))["attributes"]["a"]["a"] is not None
    rejection = reject(nested(255))
    assert (rejection.field, rejection.problem) == (
        "attributes", "nested deeper than 254 arrays and objects (the attributes object "
                      "included); expected at most 254, the most the ledger stores")
