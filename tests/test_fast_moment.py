"""The well-formed moment's direct check (`well_formed_moment`) against the full one.

The bulk paths check a moment of the common shape without pydantic. Whatever it accepts
must be exactly what `normalise(MomentIn.model_validate(...))` makes of the same message
(same fields, same order, same JSON types: compared as orjson's bytes), and what it does
not accept goes the full way, so errors are phrased as before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mot.adapters.sources.sample import generate_lines
from mot.domain.messages import (
    MAX_FUTURE,
    RecordMoment,
    Rejected,
    normalise,
    parse_message,
    well_formed_moment,
)
from mot.domain.schema import MomentIn

NOW = datetime(2026, 6, 1, tzinfo=UTC)  # as tests/test_wire_format.py (the corpus's)
MID = "6f1c9e2a-3b4d-4c5e-8f70-123456789abc"
BASE: dict[str, Any] = {
    "moment_id": MID, "tenant": "acme", "customer_id": "c1",
    "occurred_at": "2026-03-01T10:00:00Z", "channel": "web", "direction": "inbound",
    "kind": "purchase",
}


def full(data: dict[str, Any], now: datetime = NOW) -> bytes | None:
    """The moment the full check makes of `data` as JSON; None when it rejects it."""
    try:
        return orjson.dumps(normalise(MomentIn.model_validate(data), now))
    except (ValueError, Rejected):  # pydantic's ValidationError is a ValueError
        return None


def agrees(data: dict[str, Any], now: datetime = NOW) -> bool:
    """True when the direct check accepted (and matched the full one); False when it left
    the message to the full check."""
    fast = well_formed_moment(data, now)
    if fast is None:
        return False
    assert orjson.dumps(fast) == full(data, now), data
    return True


def test_every_sample_moment_takes_the_direct_check_and_matches() -> None:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    moments = [orjson.loads(line) for line in generate_lines(3000, seed=3, corrections=True)]
    moments = [m for m in moments if m.get("type") in (None, "moment")]
    assert len(moments) > 2500
    assert all(agrees(m, now) for m in moments)


@pytest.mark.parametrize("fields", [
    {}, {"tenant": None}, {"moment_id": None, "source": {"system": "crm", "id": "r1"}},
    {"source": {"system": "crm", "id": "r1"}}, {"occurred_at": "2026-03-01T10:00:00.5Z"},
    {"occurred_at": "2026-03-01T10:00:00.000000Z"}, {"occurred_at": "2026-03-01T10:00:00+02:00"},
    {"occurred_at": "2026-03-01T00:30:00-05:30"}, {"occurred_at": "2026-06-01T23:59:59Z"},
    {"occurred_at": "2026-06-02T00:00:00.000001Z"}, {"occurred_at": "2026-06-02T02:00:01+02:00"},
    {"sentiment": 1}, {"sentiment": -1.0}, {"sentiment": -0.0}, {"value": 0}, {"value": -0.0},
    {"value": 1e300}, {"value": 2**64 - 1}, {"currency": "eur"}, {"value": 3, "currency": "usd"},
    {"reach": 2**53}, {"reach": 2**53 + 1}, {"reach": True}, {"sentiment": True},
    {"actor": ""}, {"actor": "a" * 256}, {"actor": "a" * 257}, {"url": ""}, {"url": "u" * 2048},
    {"customer_id": "c" * 256}, {"customer_id": "c" * 257}, {"customer_id": "\ufdd0x"},
    {"tenant": "t" * 128}, {"tenant": "t" * 129}, {"tenant": ""}, {"function": None},
    {"direction": "outbound", "kind": "ask"}, {"direction": "outbound", "kind": "ask", "ask_type": None},
    {"direction": "outbound", "kind": "ask", "ask_type": "review"}, {"ask_type": "review"},
    {"direction": "public", "kind": "share"},
    {"direction": "public", "kind": "share", "shares": MID},
    {"direction": "public", "kind": "share", "shares": {"system": "x", "id": "1"}},
    {"direction": "public", "kind": "like", "shares": MID},
    {"in_reply_to": MID.upper()}, {"in_reply_to": {"system": "x", "id": 5}},
    {"in_reply_to": {"system": "x", "id": "5", "z": 1}}, {"in_reply_to": "{" + MID + "}"},
    {"moment_id": MID.upper()}, {"moment_id": MID.replace("-", "")}, {"moment_id": 5},
    {"source": {"system": "crm", "id": 7}}, {"source": {"system": "", "id": "x"}},
    {"attributes": {}}, {"attributes": {"a": [1, 2.5, None, {"b": "c"}]}},
    {"attributes": {"big": "x" * 17000}}, {"attributes": []}, {"type": "moment"},
    {"type": None}, {"extra": 1}, {"occurred_at": "2026-03-01t10:00:00z"},
    {"occurred_at": "2026-03-01 10:00:00Z"}, {"occurred_at": "2026-02-30T10:00:00Z"},
    {"occurred_at": "0001-01-01T00:30:00+01:00"}, {"occurred_at": "9999-12-31T23:59:59-01:00"},
    {"occurred_at": "2026-03-01T10:00:00.1234567Z"}, {"occurred_at": "2026-03-01T10:00:00"},
    {"occurred_at": 1767225600}, {"channel": "Web"}, {"kind": "answer"},
])
def test_each_form_either_matches_or_goes_the_full_way(fields: dict[str, Any]) -> None:
    data = {**BASE, **fields}
    agrees({k: v for k, v in data.items() if not (k == "moment_id" and v is None)})
    agrees(data)


def test_a_moment_more_than_a_day_ahead_is_left_to_the_full_check() -> None:
    ahead = (NOW + MAX_FUTURE + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert well_formed_moment({**BASE, "occurred_at": ahead}, NOW) is None
    result = parse_message(orjson.dumps({**BASE, "occurred_at": ahead}), NOW)
    assert not isinstance(result, RecordMoment)
    assert result.field == "occurred_at"


def test_the_common_forms_take_the_direct_check() -> None:
    for fields in ({}, {"occurred_at": "2026-03-01T10:00:00.25+01:00"},
                   {"moment_id": None, "source": {"system": "crm", "id": "r1"}},
                   {"value": 10, "currency": "eur", "attributes": {"a": 1}}):
        assert well_formed_moment({**BASE, **fields}, NOW) is not None


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**53 - 1, 2**53 + 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=4),
    st.sampled_from(["web", "inbound", "outbound", "public", "ask", "share", "purchase",
                     "review", "other", "eur", "USD", MID, MID.upper(), "", "2026-03-01T10:00:00Z",
                     "2026-03-01T10:00:00.123+05:30", "2026-06-03T00:00:00Z",
                     "2026-03-01T10:00:00-00:00"]),
    st.fixed_dictionaries({"system": st.sampled_from(["s", "", 1]),
                           "id": st.sampled_from(["i", "", 2, None])}),
    st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3), max_size=3),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(sorted({*MomentIn.model_fields, "other"})), VALUES,
                       max_size=5))
def test_changed_fields_either_match_or_go_the_full_way(fields: dict[str, Any]) -> None:
    agrees({**BASE, **fields})


def test_the_bad_corpus_goes_the_full_way() -> None:
    """A bad moment of the corpus (tests/test_wire_format.py checks each one's reason) is
    never taken by the direct check, unless only a check made after it rejects it (a NUL,
    an integer beyond 64 bits)."""
    corpus = Path(__file__).parent / "corpus" / "bad_moments.jsonl"
    taken = []
    for line in corpus.read_text(encoding="utf-8").splitlines():
        case = orjson.loads(line)
        try:
            data = orjson.loads(case["line"])
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("type") in (None, "moment") and agrees(data):
            taken.append(case["case"])
            assert not isinstance(parse_message(case["line"].encode(), NOW), RecordMoment)
    assert len(taken) <= 3, taken
