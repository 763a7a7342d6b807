"""Adversarial probes of SPEC conformance: orders of arrival, rule boundaries, links and
erasure, each asserting the values SPEC.md gives, on real stores (SQLite and PostgreSQL),
and each store's incremental projection equal to its rebuild and to `mot verify`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from mot.bootstrap import Services, open_store
from mot.domain.identity import derived_moment_id
from mot.domain.ledger import Outcome
from mot.service.ledger import Incoming
from mot.service.queries import PROJECTION_NAMES, Query

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
TENANT = "acme"


def at(hours: float = 0, seconds: float = 0) -> str:
    return (T0 + timedelta(hours=hours, seconds=seconds)).isoformat().replace("+00:00", "Z")


def mid(source_id: str, tenant: str = TENANT) -> str:
    return derived_moment_id(tenant, "s", source_id)


def moment(source_id: str, customer: str, when: str, direction: str, kind: str,
           **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"tenant": TENANT, "customer_id": customer, "occurred_at": when,
                           "channel": "email", "direction": direction, "kind": kind,
                           "source": {"system": "s", "id": source_id}}
    out.update(fields)
    return out


def link(a: str, b: str, when: str, kind: str = "link") -> dict[str, Any]:
    return {"type": kind, "tenant": TENANT, "customer_ids": [a, b], "occurred_at": when,
            "reason": "probe"}


@pytest.fixture
def store(store_url: str) -> Iterator[Services]:
    opened = open_store(store_url, page_size=2)
    try:
        yield opened
    finally:
        opened.close()


def send(s: Services, *messages: dict[str, Any]) -> list[Outcome]:
    result = s.ledger.record([Incoming(orjson.dumps(m), f"probe:{i}")
                              for i, m in enumerate(messages)])
    return [v.outcome for v in result.verdicts]


def step(s: Services, *messages: dict[str, Any]) -> list[Outcome]:
    """Record one batch and project it (in pages of two events)."""
    outcomes = send(s, *messages)
    s.projections.project()
    return outcomes


def rows(s: Services, name: str, **filters: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "version"}
            for r in s.queries.run(Query(name, **filters))]


def snapshot(s: Services) -> dict[str, list[dict[str, Any]]]:
    return {name: rows(s, name) for name in (*PROJECTION_NAMES, "responses", "persons")}


def assert_rebuild_and_verify_agree(s: Services) -> dict[str, list[dict[str, Any]]]:
    """The incremental tables == a rebuild's == what `mot verify` recomputes."""
    incremental = snapshot(s)
    verification = s.verifier.verify()
    assert verification.differences == 0, verification.shown
    s.projections.replay()
    assert snapshot(s) == incremental
    return incremental


def one(records: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, records)
    return found[0]


# -- §2 corrections: before their moment, of amendments, repeats --------------------------------


def test_corrections_that_overtake_their_moment_apply_when_it_comes(store: Services) -> None:
    amend = {"type": "amend", "tenant": TENANT, "moment_id": mid("p1"),
             "set": {"sentiment": -0.8}, "reason": "rescored"}
    untenanted = {"type": "amend", "moment_id": mid("p1"), "set": {"reach": 700},
                  "reason": "recount"}
    retract = {"type": "retract", "moment_id": mid("a2"), "reason": "sent by mistake"}
    assert step(store, amend, untenanted, retract) == [Outcome.QUARANTINED] * 3
    assert rows(store, "amplifications") == []
    assert step(store, moment("a1", "c1", at(0), "outbound", "answer"),
                moment("a2", "c1", at(1), "outbound", "ask", ask_type="review"),
                moment("p1", "c1", at(2), "public", "post", sentiment=0.9, reach=10)) == [
        Outcome.RECORDED] * 3
    assert [q.reason for q in store.ledger_store.quarantine()] == []
    post = one(rows(store, "amplifications"), amplification_id=mid("p1"))
    # Both amendments, in the order they arrived; the retracted ask is no trigger.
    assert (post["polarity"], post["reach"], post["cascade_reach"]) == ("negative", 700, 700)
    assert post["trigger_moment_id"] == mid("a1")
    rel = one(rows(store, "relationships"), customer_id="c1")
    assert (rel["stage"], rel["brand_moments"]) == ("detractor", 1)
    recip = one(rows(store, "reciprocity"), customer_id="c1")
    assert (recip["given"], recip["asked"], recip["status"]) == (1, 0, "ok_to_ask")
    assert_rebuild_and_verify_agree(store)


def test_amendments_of_amendments_a_b_a_apply_three_times_a_repeat_once(store: Services) -> None:
    step(store, moment("q1", "c1", at(0), "inbound", "question", function="sales"))
    a = {"type": "amend", "moment_id": mid("q1"), "set": {"function": "service"}, "reason": "x"}
    b = {"type": "amend", "moment_id": mid("q1"), "set": {"function": "product"}, "reason": "x"}
    assert step(store, a, b, a, a) == [Outcome.AMENDED] * 3 + [Outcome.DUPLICATE]
    assert one(rows(store, "responses"), request_moment_id=mid("q1"))["function"] == "service"
    # With an amendment_id, only that id again is a repeat.
    ided = {**b, "amendment_id": "00000000-0000-4000-8000-000000000001"}
    assert step(store, ided, {**ided, "reason": "other words"}, b) == [
        Outcome.AMENDED, Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert one(rows(store, "responses"), request_moment_id=mid("q1"))["function"] == "product"
    assert [r["function"] for r in rows(store, "response-times")] == ["product"]
    assert_rebuild_and_verify_agree(store)


def test_the_same_moment_in_other_words_is_a_duplicate_other_content_a_conflict(
        store: Services) -> None:
    first = moment("m1", "c1", "2026-03-01T09:00:00.1234567Z", "outbound", "ask",
                   sentiment=1, attributes={"n": 1},
                   in_reply_to={"system": "s", "id": "m0"})
    assert step(store, first) == [Outcome.RECORDED]
    same = {**first, "type": "moment", "occurred_at": "2026-03-01T11:00:00.123456+02:00",
            "sentiment": 1.0, "function": "other", "ask_type": "other", "reach": 0,
            "attributes": {"n": 1.0}, "in_reply_to": mid("m0").upper()}
    assert step(store, same) == [Outcome.DUPLICATE]
    assert step(store, {**first, "attributes": {"n": True}},
                {**first, "occurred_at": "2026-03-01T09:00:00.123457Z"}) == [
        Outcome.QUARANTINED, Outcome.QUARANTINED]
    reasons = [q.reason for q in store.ledger_store.quarantine()]
    assert len(reasons) == 2 and all("attributes" in r or "occurred_at" in r for r in reasons)
    # The original as first recorded stays a duplicate after an amendment; the amended
    # content sent as a moment is a conflict.
    step(store, {"type": "amend", "moment_id": mid("m1"), "set": {"sentiment": 0.5},
                 "reason": "r"})
    assert step(store, first, {**first, "sentiment": 0.5}) == [Outcome.DUPLICATE,
                                                               Outcome.QUARANTINED]


# -- §2 links: order of arrival, equal times, relinks ------------------------------------------


def test_a_link_before_either_moment_and_an_unlink_then_relink(store: Services) -> None:
    # Evidence arrives out of order: the latest occurred_at decides, an unlink at a tie.
    assert step(store, link("z:2", "x:1", at(5), "unlink"), link("x:1", "z:2", at(1))) == [
        Outcome.UNLINKED, Outcome.LINKED]
    step(store, moment("m2", "z:2", at(2), "inbound", "question"))
    step(store, moment("m1", "x:1", at(3), "outbound", "answer"))
    assert sorted(r["customer_id"] for r in rows(store, "relationships")) == ["x:1", "z:2"]
    assert step(store, link("x:1", "z:2", at(5))) == [Outcome.LINKED]  # tie: unlink wins
    assert len(rows(store, "relationships")) == 2
    assert step(store, link("x:1", "z:2", at(5), "unlink"), link("z:2", "x:1", at(6))) == [
        Outcome.DUPLICATE, Outcome.LINKED]
    person = one(rows(store, "relationships"), customer_id="x:1")
    assert person["customer_ids"] == ["x:1", "z:2"] and person["exchanges"] == 1
    response = one(rows(store, "responses"), request_moment_id=mid("m2"))
    assert (response["customer_id"], response["response_moment_id"]) == ("x:1", mid("m1"))
    assert response["response_seconds"] == 3600
    # A later unlink arriving before an older link: unlinked.
    step(store, link("x:1", "z:2", at(8), "unlink"), link("x:1", "z:2", at(7)))
    assert sorted(r["customer_id"] for r in rows(store, "relationships")) == ["x:1", "z:2"]
    assert one(rows(store, "responses"), request_moment_id=mid("m2"))["response_moment_id"] is None
    assert_rebuild_and_verify_agree(store)


def test_a_link_merging_two_persons_with_open_requests_and_asks(store: Services) -> None:
    step(store,
         moment("q1", "b", at(0), "inbound", "question", function="service"),
         moment("k1", "b", at(1), "outbound", "ask", ask_type="review"),
         moment("q2", "a", at(2), "inbound", "complaint", function="product"),
         moment("k2", "a", at(3), "outbound", "ask", ask_type="purchase"),
         moment("r1", "a", at(4), "outbound", "apology"))
    times = {r["request_moment_id"]: r["response_seconds"] for r in rows(store, "responses")}
    assert times == {mid("q1"): None, mid("q2"): 2 * 3600}
    assert {r["customer_id"]: r["status"] for r in rows(store, "reciprocity")} == {
        "a": "give_first", "b": "give_first"}
    step(store, link("a", "b", at(10)))
    merged = rows(store, "responses")
    # One apology after both requests answers both (SPEC §3.5: two questions, one answer).
    assert {r["request_moment_id"]: (r["customer_id"], r["response_moment_id"],
                                     r["response_seconds"]) for r in merged} == {
        mid("q1"): ("a", mid("r1"), 4 * 3600), mid("q2"): ("a", mid("r1"), 2 * 3600)}
    recip = one(rows(store, "reciprocity"), customer_id="a")
    # ask, ask (no customer give between): two unanswered; the apology does not reset them.
    assert (recip["given"], recip["asked"], recip["unanswered_asks"], recip["status"]) == (
        1, 3, 2, "stop_asking")
    assert recip["customer_ids"] == ["a", "b"]
    times = one(rows(store, "response-times"), function="service")
    assert (times["requests"], times["answered"], times["open"],
            times["response_p50_seconds"]) == (1, 1, 0, 4 * 3600)
    step(store, link("a", "b", at(11), "unlink"))
    assert {r["request_moment_id"]: r["response_moment_id"]
            for r in rows(store, "responses")} == {mid("q1"): None, mid("q2"): mid("r1")}
    assert_rebuild_and_verify_agree(store)


# -- §3 boundaries ------------------------------------------------------------------------------


def test_two_unanswered_asks_then_gives(store: Services) -> None:
    step(store, moment("k1", "c", at(0), "outbound", "ask", ask_type="purchase"),
         moment("k2", "c", at(1), "outbound", "ask"),
         moment("g1", "c", at(2), "outbound", "gift"))
    r = one(rows(store, "reciprocity"), customer_id="c")
    # A brand give does not answer asks: still two unanswered.
    assert (r["given"], r["asked"], r["balance"], r["unanswered_asks"], r["status"]) == (
        2, 3, -1, 2, "stop_asking")
    step(store, moment("d1", "c", at(3), "public", "mention", sentiment=0.3))
    r = one(rows(store, "reciprocity"), customer_id="c")
    assert (r["received"], r["unanswered_asks"], r["status"]) == (1, 0, "give_first")
    step(store, moment("d0", "c", at(1.5), "public", "mention", sentiment=0.29))
    assert one(rows(store, "reciprocity"), customer_id="c")["received"] == 1


def test_trigger_window_edges_and_equal_times(store: Services) -> None:
    post_at = at(100)
    # Exactly 72 h before: counts; a microsecond earlier: does not.
    step(store, moment("edge", "c", at(28), "outbound", "help"),
         moment("p1", "c", post_at, "public", "review", sentiment=-0.3))
    a = one(rows(store, "amplifications"), amplification_id=mid("p1"))
    assert (a["trigger_moment_id"], a["delay_seconds"], a["polarity"]) == (
        mid("edge"), 72 * 3600, "negative")
    step(store, {"type": "amend", "moment_id": mid("edge"),
                 "set": {"occurred_at": "2026-03-02T08:59:59.999999Z"}, "reason": "r"})
    assert one(rows(store, "amplifications"), amplification_id=mid("p1"))[
        "trigger_moment_id"] is None
    # A private moment at exactly t counts, whichever side of the post it folds on.
    later_ids = sorted([("x1", mid("x1")), ("x2", mid("x2")), ("x3", mid("x3"))],
                       key=lambda pair: pair[1])
    step(store, *(moment(source, "c", post_at, "inbound", "reply")
                  for source, _ in later_ids[:2]))
    a = one(rows(store, "amplifications"), amplification_id=mid("p1"))
    assert (a["trigger_moment_id"], a["delay_seconds"]) == (later_ids[1][1], 0)
    assert_rebuild_and_verify_agree(store)


def test_offsets_order_by_instant(store: Services) -> None:
    step(store, moment("late_text", "c", "2026-03-01T10:00:00+05:00", "inbound", "question"),
         moment("early_text", "c", "2026-03-01T06:00:00Z", "outbound", "answer"))
    r = one(rows(store, "responses"), request_moment_id=mid("late_text"))
    assert (r["occurred_at"], r["response_moment_id"], r["response_seconds"]) == (
        "2026-03-01T05:00:00Z", mid("early_text"), 3600)
    rel = one(rows(store, "relationships"), customer_id="c")
    assert (rel["first_moment_at"], rel["last_moment_at"]) == ("2026-03-01T05:00:00Z",
                                                                "2026-03-01T06:00:00Z")


def test_responses_at_equal_times_and_by_name(store: Services) -> None:
    ids = sorted(["e1", "e2", "e3"], key=mid)
    # At one instant: fold order is the moment id. An answer folding before the request is no
    # answer to it; one folding after is.
    step(store, moment(ids[1], "c", at(0), "inbound", "feedback"),
         moment(ids[0], "c", at(0), "outbound", "answer"))
    assert one(rows(store, "responses"), request_moment_id=mid(ids[1]))[
        "response_moment_id"] is None
    step(store, moment(ids[2], "c", at(0), "outbound", "help"))
    r = one(rows(store, "responses"), request_moment_id=mid(ids[1]))
    assert (r["response_moment_id"], r["response_seconds"]) == (mid(ids[2]), 0)
    # An earlier reply naming the request wins, whatever its time (negative seconds).
    step(store, moment("named", "c", at(-0.5), "outbound", "other",
                       in_reply_to={"system": "s", "id": ids[1]}))
    r = one(rows(store, "responses"), request_moment_id=mid(ids[1]))
    assert (r["response_moment_id"], r["response_seconds"]) == (mid("named"), -1800)
    # An answer to something else is no answer to it; a survey question is no answer.
    step(store, moment("q9", "c", at(1), "inbound", "question"),
         moment("else", "c", at(2), "outbound", "answer",
                in_reply_to={"system": "s", "id": "unknown"}),
         moment("survey", "c", at(3), "outbound", "question"))
    assert one(rows(store, "responses"), request_moment_id=mid("q9"))["response_moment_id"] is None
    assert_rebuild_and_verify_agree(store)


# -- §3.3 amendments that move a cascade --------------------------------------------------------


def test_a_post_amended_into_a_like_and_a_share_into_a_post(store: Services) -> None:
    step(store, moment("share2", "d", at(3), "public", "share", reach=3,
                       shares={"system": "s", "id": "share1"}),
         moment("share1", "c", at(2), "public", "share", reach=20,
                shares={"system": "s", "id": "post"}),
         moment("post", "b", at(1), "public", "post", sentiment=-0.5, reach=100))
    a = one(rows(store, "amplifications"), amplification_id=mid("post"))
    assert (a["cascade_size"], a["cascade_reach"]) == (2, 123)
    step(store, {"type": "amend", "moment_id": mid("post"), "set": {"kind": "like"},
                 "reason": "was a like"})
    assert rows(store, "amplifications") == []
    step(store, {"type": "amend", "moment_id": mid("share1"),
                 "set": {"kind": "post", "shares": None, "sentiment": 0.4}, "reason": "r"})
    a = one(rows(store, "amplifications"), amplification_id=mid("share1"))
    assert (a["cascade_size"], a["cascade_reach"], a["polarity"]) == (1, 23, "positive")
    step(store, {"type": "amend", "moment_id": mid("post"), "set": {"kind": "review"},
                 "reason": "a review after all"})
    assert {r["amplification_id"]: r["cascade_reach"] for r in rows(store, "amplifications")} == {
        mid("post"): 100, mid("share1"): 23}
    assert_rebuild_and_verify_agree(store)


# -- §2 persons: person_id moves, bridge ids, code-point order ---------------------------------


def test_person_ids_in_code_point_order_and_a_retracted_smallest_id(store: Services) -> None:
    # Code points: 'Z' < 'z' < 'é' < '😀'; a bridge id with no moment joins them.
    step(store, link("😀", "email:b", at(0)), link("é", "email:b", at(0)),
         link("z", "é", at(0)), link("Z", "email:b", at(0)))
    assert rows(store, "persons") == []  # no current moment: no rows
    step(store, moment("m1", "😀", at(1), "inbound", "question"),
         moment("m2", "é", at(2), "outbound", "answer"))
    [person] = rows(store, "persons")
    assert (person["customer_id"], person["customer_ids"]) == (
        "é", ["Z", "email:b", "z", "é", "😀"])
    step(store, moment("m3", "z", at(3), "inbound", "praise"))
    assert [p["customer_id"] for p in rows(store, "persons")] == ["z"]
    rel = one(rows(store, "relationships"), customer_id="z")
    assert (rel["exchanges"], rel["customer_moments"], rel["brand_moments"]) == (2, 2, 1)
    # Its only moment retracted, 'z' keys nothing any more; the person moves back to 'é'.
    step(store, {"type": "retract", "moment_id": mid("m3"), "reason": "wrong person"})
    assert [p["customer_id"] for p in rows(store, "relationships")] == ["é"]
    for customer in ("Z", "email:b", "😀", "é"):
        assert [p["customer_id"] for p in rows(store, "relationships", customer=customer)] == ["é"]
    # 'é' off the bridge: 'é' and 'z' stay linked; 'Z' and '😀' keep the bridge.
    step(store, link("é", "email:b", at(4), "unlink"))
    assert {p["customer_id"]: p["customer_ids"] for p in rows(store, "persons")} == {
        "é": ["z", "é"], "😀": ["Z", "email:b", "😀"]}
    response = one(rows(store, "responses"), request_moment_id=mid("m1"))
    assert (response["customer_id"], response["response_moment_id"]) == ("😀", None)
    assert_rebuild_and_verify_agree(store)


def test_as_of_uses_the_current_links_and_the_moments_of_then(store: Services) -> None:
    step(store, moment("m1", "b", at(0), "inbound", "question"),
         moment("m2", "a", at(5), "outbound", "answer"),
         link("a", "b", at(10)))
    then = T0 + timedelta(hours=1)
    [person] = rows(store, "persons", as_of=then)
    # As of then only b had a moment: the person's id is b's, its ids those of today's links.
    assert (person["customer_id"], person["customer_ids"]) == ("b", ["a", "b"])
    [r] = rows(store, "responses", as_of=then)
    assert (r["customer_id"], r["response_moment_id"]) == ("b", None)
    [r] = rows(store, "responses")
    assert (r["customer_id"], r["response_seconds"]) == ("a", 5 * 3600)


# -- §3.6 alerts: raised, then their cause corrected ---------------------------------------------


def _alerts(s: Services) -> list[tuple[str, str, str]]:
    from mot.service.alerting import AlertQuery

    return sorted((a.alert.rule, a.alert.customer_id, a.alert.moment_id)
                  for a in s.alert_outbox.alerts(AlertQuery()))


def _engine(s: Services, now: datetime) -> Any:
    from mot.projections.alerts import AlertPolicy
    from mot.projections.engine import Engine

    return Engine(s.projection_store, s.ledger_store, page_size=2, clock=lambda: now,
                  alerts=AlertPolicy(negative_reach=100))


def test_alerts_raised_then_their_cause_corrected(store: Services) -> None:
    now = T0 + timedelta(hours=24)
    engine = _engine(store, now)
    send(store, moment("k1", "c", at(0), "outbound", "ask", ask_type="review"),
         moment("k2", "c", at(1), "outbound", "ask", ask_type="purchase"),
         moment("p1", "c", at(2), "public", "post", sentiment=-0.7, reach=150))
    engine.catch_up()
    assert _alerts(store) == sorted([("stop_asking", "c", mid("k2")), ("detractor", "c", mid("p1")),
                                     ("negative_amplification", "c", mid("p1"))])
    # The post was positive after all, then negative again: the same alerts, none twice.
    send(store, {"type": "amend", "moment_id": mid("p1"), "set": {"sentiment": 0.5},
                 "reason": "misread"})
    engine.catch_up()
    send(store, {"type": "amend", "moment_id": mid("p1"), "set": {"sentiment": -0.5},
                 "reason": "read right"})
    engine.catch_up()
    assert len(_alerts(store)) == 3
    # A late ask before them: now k1 makes two unanswered (a new cause, a new alert); a late
    # negative mention before the post makes it the detractor's moment.
    send(store, moment("k0", "c", at(-1), "outbound", "ask"),
         moment("p0", "c", at(1.5), "public", "mention", sentiment=-0.4))
    engine.catch_up()
    assert ("stop_asking", "c", mid("k1")) in _alerts(store)
    assert ("detractor", "c", mid("p0")) in _alerts(store)
    # History raises none: a moment older than the window.
    send(store, moment("old", "d", at(-100), "public", "review", sentiment=-0.9, reach=5000))
    engine.catch_up()
    assert [a for a in _alerts(store) if a[1] == "d"] == []
    before = _alerts(store)
    engine.rebuild()
    assert _alerts(store) == before


# -- §3.3, §3.4 sums of reach past the store's integers ----------------------------------------


def test_a_cascade_reach_past_64_bits_is_kept_at_the_ceiling_and_stops_no_tenant(
        store_url: str) -> None:
    """A reach may be up to 2**53 (§2: kept exactly); 1,025 shares of such a post summed past
    the stores' 64-bit integers: SQLite's SUM failed ('integer overflow'), PostgreSQL's bigint
    column refused the row, and the error stopped every tenant's projections. The sums stay
    at the ceiling instead, the same after a rebuild."""
    from mot.projections.amplification import REACH_CEILING

    huge = 2**53
    lines = [{**moment("ask", "c", at(0), "outbound", "ask", function="marketing"),
              "tenant": "evil"},
             {**moment("p", "c", at(1), "public", "post", reach=huge, sentiment=-0.9),
              "tenant": "evil"}]
    lines += [{**moment(f"s{i}", f"d{i}", at(2), "public", "share", reach=huge,
                        shares={"system": "s", "id": "p"}), "tenant": "evil"}
              for i in range(1025)]
    with open_store(store_url) as s:
        step(s, *lines[:500])
        step(s, *lines[500:], moment("q", "g", at(0), "inbound", "question"))
        [post] = rows(s, "amplifications", tenant="evil")
        assert (post["cascade_size"], post["cascade_reach"]) == (1025, REACH_CEILING)
        assert REACH_CEILING == 2**63 - 1 < 1026 * huge
        team = one(rows(s, "teams"), tenant="evil", function="marketing")
        assert (team["amplifications"], team["cascade_reach"]) == (1, REACH_CEILING)
        assert [r["customer_id"] for r in rows(s, "relationships", tenant=TENANT)] == ["g"]
        # Below the ceiling the sum is exact again.
        step(s, *({"type": "retract", "tenant": "evil", "moment_id": mid(f"s{i}", "evil"),
                   "reason": "spam"} for i in range(24)))
        [post] = rows(s, "amplifications", tenant="evil")
        assert post["cascade_reach"] == 1002 * huge
        assert one(rows(s, "teams"), tenant="evil", function="marketing")[
            "cascade_reach"] == 1002 * huge
        assert_rebuild_and_verify_agree(s)


# -- §6 a correction waiting for a moment of an erased person ------------------------------------


def test_corrections_waiting_for_a_moment_of_an_erased_person_go_with_it(store_url: str) -> None:
    """An amendment that overtakes its moment waits in the quarantine (§2); when the moment
    comes and names an erased person it is suppressed (§6), and what waited for it goes too:
    it waited for good before, holding her personal data (an actor's address here)."""
    secret = "maria.private@example.com"

    def amend(source_id: str) -> dict[str, Any]:
        return {"type": "amend", "tenant": TENANT, "moment_id": mid(source_id),
                "set": {"actor": secret}, "reason": "who answered"}

    with open_store(store_url) as s:
        step(s, moment("m1", "maria", at(0), "inbound", "question"))
        s.erasures.erase(TENANT, "maria", "request 17")
        assert send(s, amend("m2")) == [Outcome.QUARANTINED]  # nothing says whose it is yet
        result = s.ledger.record([Incoming(orjson.dumps(
            moment("m2", "maria", at(1), "inbound", "complaint")), "late")])
        assert ([v.outcome for v in result.verdicts], result.waited) == ([Outcome.SUPPRESSED], 0)
        # In one batch, before or after the moment.
        assert send(s, amend("m3"), moment("m3", "maria", at(2), "inbound", "question"),
                    moment("m4", "maria", at(3), "inbound", "question"), amend("m4")) == [
            Outcome.SUPPRESSED] * 4
        assert list(s.ledger_store.quarantine()) == []
        # Another customer's waiting correction still applies when its moment comes.
        assert send(s, amend("o1")) == [Outcome.QUARANTINED]
        result = s.ledger.record([Incoming(orjson.dumps(
            moment("o1", "other", at(1), "outbound", "answer")), "on time")])
        assert ([v.outcome for v in result.verdicts], result.waited) == ([Outcome.RECORDED], 1)
        s.projections.project()
        assert list(s.ledger_store.quarantine()) == []
        assert [r["customer_id"] for r in rows(s, "relationships")] == ["other"]


# -- §3.1 lapsed and §3.5 overdue at their edges -------------------------------------------------


def test_lapsed_and_overdue_exactly_at_their_lines(store: Services) -> None:
    from mot.service.targets import Targets

    step(store, moment("q", "c", at(0), "inbound", "question", function="service"),
         moment("q2", "c", at(1), "inbound", "question", function="sales"))
    targets = Targets(first_response={"service": 3600}, tenants={TENANT: {"sales": 60}})

    def overdue(when: datetime) -> list[str]:
        return [r["request_moment_id"] for r in rows(
            store, "responses", overdue=True, targets=targets, as_of=when)]

    # "T − occurred_at exceeds it": exactly the target is not overdue, a microsecond more is.
    line = T0 + timedelta(hours=1)
    assert overdue(line) == []
    assert overdue(line + timedelta(microseconds=1)) == [mid("q")]
    # The tenant's own target for sales, the default for service.
    assert sorted(overdue(line + timedelta(seconds=61))) == sorted([mid("q"), mid("q2")])

    def lapsed(when: datetime) -> bool:
        return bool(one(rows(store, "relationships", as_of=when), customer_id="c")["lapsed"])

    # "earlier than the as-of time minus 180 × 24 hours".
    last = T0 + timedelta(hours=1)
    assert not lapsed(last + timedelta(hours=180 * 24))
    assert lapsed(last + timedelta(hours=180 * 24, microseconds=1))
    # Only brand moments: no customer-side moment is lapsed at once.
    step(store, moment("b", "brandonly", at(0), "outbound", "content"))
    assert one(rows(store, "relationships", as_of=T0 + timedelta(hours=1)),
               customer_id="brandonly")["lapsed"] is True
