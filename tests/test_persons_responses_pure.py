"""Table tests for the pure rules of links and persons (SPEC §2) and responses (SPEC §3.5).

Each case is a sentence of the SPEC; the persons fixture's expected persons and
response times are checked against the same functions where they apply purely.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest
from conftest import SHARED
from test_projections_pure import HOUR, SECOND, T0, inb, out, pub

from mot.domain.links import PairEvidence, is_linked, is_repeat, link_stream_id, pair_of
from mot.projections.persons import components, person_id, persons
from mot.projections.responses import (
    Response,
    fold_responses,
    is_overdue,
    nearest_rank,
    response_times,
)

# --- links (SPEC §2) ---------------------------------------------------------------


def test_a_pair_is_the_same_whatever_the_order_of_its_ids() -> None:
    assert pair_of("x:maria", "zendesk:m1") == pair_of("zendesk:m1", "x:maria") == (
        "x:maria", "zendesk:m1")
    with pytest.raises(ValueError, match="two different"):
        pair_of("x:a", "x:a")


def test_a_pairs_stream_is_the_uuid5_of_the_spec() -> None:
    expected = str(uuid.uuid5(uuid.NAMESPACE_URL, "mot:link:acme:x:maria:zendesk:m1"))
    assert link_stream_id("acme", "zendesk:m1", "x:maria") == expected
    assert link_stream_id("acme", "x:maria", "zendesk:m1") == expected
    assert link_stream_id("globex", "x:maria", "zendesk:m1") != expected


def link(t: int) -> PairEvidence:
    return PairEvidence("link", t)


def unlink(t: int) -> PairEvidence:
    return PairEvidence("unlink", t)


@pytest.mark.parametrize(("evidence", "linked"), [
    ([], False),                                  # never linked
    ([unlink(5)], False),                         # an unlink of a pair never linked
    ([link(1)], True),
    ([link(1), unlink(2)], False),                # taken back
    ([unlink(2), link(1)], False),                # arrival order does not matter
    ([link(3), unlink(2)], True),                 # an unlink older than its link
    ([link(2), unlink(2)], False),                # at equal times an unlink wins
    ([unlink(2), link(2)], False),
    ([link(1), unlink(2), link(3)], True),
])
def test_a_pairs_state_is_its_latest_evidence(evidence: list[PairEvidence], linked: bool) -> None:
    assert is_linked(evidence) is linked
    assert is_linked(reversed(evidence)) is linked


def test_the_same_message_again_is_a_repeat_whatever_its_reason() -> None:
    recorded = [link(1), unlink(2)]
    assert is_repeat(link(1), recorded)
    assert not is_repeat(link(2), recorded)
    assert not is_repeat(unlink(1), recorded)


# --- persons (SPEC §2) ---------------------------------------------------------------


def test_persons_are_the_connected_components_of_linked_pairs() -> None:
    got = components(["a", "b", "c", "d", "e"], [("a", "b"), ("c", "b"), ("d", "e")])
    assert got == [frozenset("abc"), frozenset("de")]
    assert components(["z"], []) == [frozenset("z")]  # an id in no pair is a person by itself
    # A chain's order of arrival does not matter.
    pairs = [(f"id{i:03d}", f"id{i + 1:03d}") for i in range(200)]
    shuffled = pairs[:]
    random.Random(7).shuffle(shuffled)
    assert components([], shuffled) == components([], pairs) == [
        frozenset(f"id{i:03d}" for i in range(201))]


def test_person_id_is_the_smallest_id_with_a_current_moment() -> None:
    with_moments = {"x:maria", "zendesk:m1"}
    ids = ["email:abc", "x:maria", "zendesk:m1"]
    assert person_id(ids, with_moments.__contains__) == "x:maria"  # email:abc has no moment
    assert person_id(["email:abc"], with_moments.__contains__) is None  # no rows


def test_the_persons_fixture_gives_its_expected_persons() -> None:
    """The expected persons of the fixture from its links (pair states) and moments' ids."""
    lines = [json.loads(line) for line in
             (SHARED / "fixtures" / "persons.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = json.loads((SHARED / "fixtures" / "persons.expected.json").read_text())["persons"]
    from mot.domain.timefmt import parse_utc, to_micros

    evidence: dict[tuple[str, tuple[str, str]], list[PairEvidence]] = {}
    with_moments: dict[str, set[str]] = {}
    for line in lines:
        tenant = line.get("tenant", "default")
        if line.get("type") in ("link", "unlink"):
            pair = pair_of(*line["customer_ids"])
            evidence.setdefault((tenant, pair), []).append(
                PairEvidence(line["type"], to_micros(parse_utc(line["occurred_at"]))))
        elif "customer_id" in line:
            with_moments.setdefault(tenant, set()).add(line["customer_id"])
    got: list[dict[str, Any]] = []
    for tenant in sorted(with_moments):
        linked = [pair for (t, pair), ev in evidence.items() if t == tenant and is_linked(ev)]
        ids = with_moments[tenant] | {i for (t, pair) in evidence if t == tenant for i in pair}
        for p in persons(tenant, ids, linked, with_moments[tenant].__contains__):
            if p.person_id is not None:
                got.append({"tenant": p.tenant, "customer_id": p.person_id,
                            "customer_ids": list(p.customer_ids)})
    key = lambda r: (r["tenant"], r["customer_id"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)


# --- responses (SPEC §3.5) -------------------------------------------------------------


def by_id(responses: list[Response]) -> dict[str, Response]:
    return {r.request_moment_id: r for r in responses}


def test_the_first_answer_after_a_request_is_its_response() -> None:
    q = inb("question", 0, function="service", channel="chat")
    a = out("answer", 1.5, function="logistics")
    later = out("help", 3)
    [r] = fold_responses([q, a, later], "c1")
    assert (r.request_moment_id, r.kind, r.channel, r.function) == (q.moment_id, "question",
                                                                     "chat", "service")
    assert (r.response_moment_id, r.response_function) == (a.moment_id, "logistics")
    assert (r.responded_us, r.response_seconds) == (a.occurred_us, 5400)
    assert r.customer_id == "c1"


def test_one_answer_responds_to_several_requests() -> None:
    q1, q2 = inb("question", 0), inb("complaint", 1)
    a = out("apology", 2)
    got = by_id(fold_responses([q1, q2, a], "c1"))
    assert got[q1.moment_id].response_moment_id == got[q2.moment_id].response_moment_id == a.moment_id
    assert got[q1.moment_id].response_seconds == 7200
    assert got[q2.moment_id].response_seconds == 3600


@pytest.mark.parametrize("kind", ["content", "gift", "introduction", "ask", "question", "other"])
def test_other_outbound_kinds_answer_only_when_they_name_the_request(kind: str) -> None:
    q = inb("feedback", 0)
    unaddressed = out(kind, 1)
    [r] = fold_responses([q, unaddressed], "c1")
    assert r.is_open and r.response_seconds is None and r.responded_us is None
    named = out(kind, 2, in_reply_to=q.moment_id)
    [r] = fold_responses([q, unaddressed, named], "c1")
    assert r.response_moment_id == named.moment_id


def test_an_answer_to_something_else_answers_no_other_request() -> None:
    q = inb("question", 0)
    elsewhere = out("answer", 1, in_reply_to="00000000-0000-4000-8000-999999999999")  # unknown
    [r] = fold_responses([q, elsewhere], "c1")
    assert r.is_open


def test_an_answer_before_the_request_is_no_response_but_a_named_one_is() -> None:
    early = out("answer", 0)
    q = inb("question", 1)
    [r] = fold_responses([early, q], "c1")
    assert r.is_open
    named_earlier = out("other", 0.5, in_reply_to=q.moment_id)
    [r] = fold_responses([early, named_earlier, q], "c1")
    assert r.response_moment_id == named_earlier.moment_id
    assert r.response_seconds == -1800  # negative only through an explicit in_reply_to


def test_the_first_response_in_fold_order_wins_between_named_and_unaddressed() -> None:
    q = inb("question", 0)
    answer = out("answer", 2)
    named = out("other", 1, in_reply_to=q.moment_id)
    [r] = fold_responses([q, answer, named], "c1")
    assert r.response_moment_id == named.moment_id
    late_named = out("other", 3, in_reply_to=q.moment_id)
    [r] = fold_responses([late_named, q, answer], "c1")
    assert r.response_moment_id == answer.moment_id


def test_response_seconds_are_truncated_toward_zero() -> None:
    q = inb("question", at=T0)
    a = out("answer", at=T0 + 90 * SECOND + 999_999)
    [r] = fold_responses([q, a], "c1")
    assert r.response_seconds == 90
    b = out("other", at=T0 - 90 * SECOND - 999_999, in_reply_to=q.moment_id)
    [r] = fold_responses([q, b], "c1")
    assert r.response_seconds == -90


def test_only_inbound_questions_complaints_and_feedback_are_requests() -> None:
    moments = [inb("praise", 0), inb("reply", 1), inb("purchase", 2), out("question", 3),
               pub("post", 4), inb("decline", 5)]
    assert fold_responses(moments, "c1") == []


def test_arrival_order_does_not_matter() -> None:
    moments = [inb("question", 0), out("answer", 1), inb("complaint", 2), inb("question", 3),
               out("help", 4), out("other", 5, in_reply_to=None)]
    expected = fold_responses(moments, "c1")
    for seed in range(5):
        shuffled = moments[:]
        random.Random(seed).shuffle(shuffled)
        assert fold_responses(shuffled, "c1") == expected


@pytest.mark.parametrize(("values", "p50", "p90"), [
    ([], None, None),
    ([7], 7, 7),
    ([3000, 3600], 3000, 3600),           # the fixture's service row
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5, 9),
    ([1, 2, 3], 2, 3),
])
def test_nearest_rank(values: list[int], p50: int | None, p90: int | None) -> None:
    assert nearest_rank(values, 50) == p50
    assert nearest_rank(values, 90) == p90


def test_response_times_per_tenant_and_function() -> None:
    q1 = inb("question", 0, function="service")
    q2 = inb("question", 10, function="service")
    q3 = inb("complaint", 20, function="logistics")
    a1 = out("answer", 1, function="product", in_reply_to=q1.moment_id)
    a2 = out("answer", 12, function="service", in_reply_to=q2.moment_id)
    rows = response_times(fold_responses([q1, q2, q3, a1, a2], "c1"))
    assert [(r.tenant, r.function, r.requests, r.answered, r.open, r.response_p50_seconds,
             r.response_p90_seconds) for r in rows] == [
        ("acme", "logistics", 1, 0, 1, None, None),
        ("acme", "service", 2, 2, 0, 3600, 7200),  # counted for the request's own function
    ]


def test_an_open_request_is_overdue_past_its_functions_target() -> None:
    q = inb("complaint", 0, function="logistics")
    [r] = fold_responses([q], "c1")
    day = 24 * 3600
    assert not is_overdue(r, T0 + 24 * HOUR, {"logistics": day})  # exactly the target
    assert is_overdue(r, T0 + 24 * HOUR + 1, {"logistics": day})
    assert not is_overdue(r, T0 + 48 * HOUR, {"service": 4 * 3600})  # no target for its function
    [answered] = fold_responses([q, out("answer", 30)], "c1")
    assert not is_overdue(answered, T0 + 48 * HOUR, {"logistics": day})

