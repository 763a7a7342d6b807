"""Table tests for the pure projections, straight from SPEC §3 and §4."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest

from mot.domain.timefmt import to_micros
from mot.projections.amplification import (
    Amplification,
    build_amplification,
    cascade,
    find_trigger,
    is_amplification,
    polarity,
    whole_seconds,
)
from mot.projections.lapsing import LAPSED_AFTER_US, is_lapsed
from mot.projections.listening import listens_enough
from mot.projections.model import Current
from mot.projections.reciprocity import (
    ASK_WEIGHTS,
    GIVE_WEIGHTS,
    Balance,
    ask_weight,
    balances_along,
    fold_reciprocity,
    reciprocity_step,
    status_of,
)
from mot.projections.relationship import (
    fold_relationship,
    in_fold_order,
    stage_of,
    stages_along,
)
from mot.projections.teams import (
    ListeningTotals,
    TeamDelta,
    TeamRow,
    TeamTotals,
    amplification_contribution,
    listening_contribution,
    listening_share,
    moment_contribution,
    scoreboard,
)

T0 = to_micros(datetime(2026, 3, 1, 9, tzinfo=UTC))
SECOND = 1_000_000
HOUR = 3600 * SECOND

_serial = count(1)


def make_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def mo(
    direction: str,
    kind: str,
    hours: float = 0,
    *,
    at: int | None = None,
    moment_id: str | None = None,
    tenant: str = "acme",
    customer: str = "c1",
    function: str = "other",
    channel: str = "email",
    actor: str | None = None,
    ask_type: str | None = None,
    sentiment: float | None = None,
    reach: int = 0,
    in_reply_to: str | None = None,
    shares: str | None = None,
) -> Current:
    """A current moment at T0 + `hours` (or at `at` µs); ids grow in creation order."""
    return Current(
        moment_id=moment_id or make_id(next(_serial)),
        tenant=tenant,
        customer_id=customer,
        occurred_us=at if at is not None else T0 + round(hours * HOUR),
        direction=direction,
        kind=kind,
        function=function,
        channel=channel,
        actor=actor,
        ask_type=(ask_type or "other") if kind == "ask" else None,
        sentiment=sentiment,
        reach=reach,
        in_reply_to=in_reply_to,
        shares=shares,
    )


def out(kind: str, hours: float = 0, **kw: Any) -> Current:
    return mo("outbound", kind, hours, **kw)


def inb(kind: str, hours: float = 0, **kw: Any) -> Current:
    return mo("inbound", kind, hours, **kw)


def pub(kind: str, hours: float = 0, **kw: Any) -> Current:
    return mo("public", kind, hours, **kw)


def conversation(directions: str, start: float = 0) -> list[Current]:
    """'oio' -> outbound, inbound, outbound one hour apart."""
    make = {"o": lambda h: out("other", h), "i": lambda h: inb("other", h)}
    return [make[d](start + n) for n, d in enumerate(directions)]


def stage(moments: Sequence[Current]) -> str:
    return fold_relationship(moments)[0].stage


# --- §3.1 relationship -------------------------------------------------------------


@pytest.mark.parametrize(
    ("directions", "exchanges"),
    [("oio", 2), ("iio", 1), ("o", 0), ("ii", 0), ("oioi", 3), ("ooii", 1), ("ioio", 3)],
)
def test_exchanges_count_adjacent_direction_changes(directions: str, exchanges: int) -> None:
    assert fold_relationship(conversation(directions))[0].exchanges == exchanges


def test_public_moments_are_not_part_of_the_conversation() -> None:
    moments = [out("answer", 0), pub("post", 1), pub("like", 2), inb("reply", 3)]
    assert fold_relationship(moments)[0].exchanges == 1


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"detracting": True, "endorsed": True, "exchanges": 9, "wants": 9}, "detractor"),
        ({"detracting": True, "endorsed": False, "exchanges": 0, "wants": 0}, "detractor"),
        ({"detracting": False, "endorsed": True, "exchanges": 1, "wants": 9}, "advocate"),
        ({"detracting": False, "endorsed": True, "exchanges": 0, "wants": 0}, "stranger"),
        ({"detracting": False, "endorsed": False, "exchanges": 2, "wants": 1}, "loyal"),
        ({"detracting": False, "endorsed": False, "exchanges": 3, "wants": 1}, "loyal"),
        ({"detracting": False, "endorsed": False, "exchanges": 1, "wants": 1}, "acquainted"),
        ({"detracting": False, "endorsed": False, "exchanges": 3, "wants": 0}, "engaged"),
        ({"detracting": False, "endorsed": False, "exchanges": 2, "wants": 0}, "acquainted"),
        ({"detracting": False, "endorsed": False, "exchanges": 1, "wants": 0}, "acquainted"),
        ({"detracting": False, "endorsed": False, "exchanges": 0, "wants": 0}, "stranger"),
    ],
)
def test_stage_first_rule_that_holds(facts: dict[str, Any], expected: str) -> None:
    # no customer moments, to isolate the exchanges branch of rule 5
    assert stage_of(customer_moments=0, **facts) == expected


def test_acquainted_by_customer_moments_alone() -> None:
    assert stage([pub("like")]) == "acquainted"
    assert stage([inb("question")]) == "acquainted"


def test_stranger_when_only_the_brand_spoke() -> None:
    assert stage([out("content"), out("ask", 1)]) == "stranger"


def test_engaged_after_three_exchanges() -> None:
    assert stage(conversation("oioi")) == "engaged"


def test_loyal_needs_a_want_and_two_exchanges() -> None:
    assert stage([inb("question", 0), out("help", 1), inb("purchase", 2)]) == "loyal"
    assert stage([out("help", 1), inb("purchase", 2)]) == "acquainted"
    assert stage([out("help", 1), inb("accept", 2), out("other", 3)]) == "loyal"


@pytest.mark.parametrize("kind", ["post", "review", "mention", "share"])
def test_advocate_on_a_positive_public_moment_and_an_exchange(kind: str) -> None:
    assert stage([out("help", 0), inb("reply", 1), pub(kind, 2, sentiment=0.3)]) == "advocate"


def test_advocate_thresholds_and_kinds() -> None:
    base = [out("help", 0), inb("reply", 1)]
    assert stage([*base, pub("post", 2, sentiment=0.29)]) == "acquainted"
    assert stage([*base, pub("like", 2, sentiment=0.9)]) == "acquainted"
    # a positive private moment is not public advocacy
    assert stage([*base, inb("praise", 2, sentiment=0.9)]) == "acquainted"
    # advocacy needs an exchange
    assert stage([pub("review", 0, sentiment=0.9)]) == "acquainted"
    # ...which may come after the post
    assert stage([pub("review", 0, sentiment=0.9), out("help", 1), inb("reply", 2)]) == "advocate"


@pytest.mark.parametrize("kind", ["post", "review", "mention"])
def test_detractor_on_a_negative_latest_post(kind: str) -> None:
    assert stage([pub(kind, 0, sentiment=-0.3)]) == "detractor"
    assert stage([pub(kind, 0, sentiment=-0.29)]) == "acquainted"


def test_a_negative_share_does_not_make_a_detractor() -> None:
    assert stage([pub("share", 0, sentiment=-0.9)]) == "acquainted"


def test_detractor_outranks_advocate() -> None:
    moments = [out("help", 0), inb("reply", 1), pub("post", 2, sentiment=0.9),
               pub("review", 3, sentiment=-0.5)]
    assert stage(moments) == "detractor"


def test_only_the_latest_post_with_a_sentiment_counts() -> None:
    negative_then_positive = [pub("post", 0, sentiment=-0.9), pub("post", 1, sentiment=0.1)]
    assert stage(negative_then_positive) == "acquainted"
    positive_then_negative = [pub("post", 0, sentiment=0.1), pub("post", 1, sentiment=-0.9)]
    assert stage(positive_then_negative) == "detractor"
    # a later post without a sentiment is not "with a sentiment": the negative one stays latest
    assert stage([pub("post", 0, sentiment=-0.9), pub("mention", 1)]) == "detractor"


@pytest.mark.parametrize(
    ("later", "still_detractor"),
    [
        (lambda: inb("praise", 1, sentiment=0.3), False),
        (lambda: inb("feedback", 1, sentiment=0.29), True),
        (lambda: pub("share", 1, sentiment=0.5), False),
        (lambda: pub("like", 1, sentiment=0.5), False),
        (lambda: out("apology", 1, sentiment=0.9), True),  # brand side does not count
        (lambda: inb("purchase", 1), True),  # no sentiment
    ],
)
def test_a_later_positive_customer_side_moment_lifts_detractor(
    later: Callable[[], Current], still_detractor: bool
) -> None:
    moments = [pub("post", 0, sentiment=-0.6), later()]
    assert (stage(moments) == "detractor") is still_detractor


def test_a_positive_moment_before_the_negative_post_does_not_lift_it() -> None:
    assert stage([inb("praise", 0, sentiment=0.9), pub("post", 1, sentiment=-0.6)]) == "detractor"


def test_counters_and_timestamps() -> None:
    moments = [
        out("content", 0, customer="c7"),
        inb("purchase", 1, customer="c7"),
        inb("accept", 2, customer="c7"),
        pub("like", 3, customer="c7"),
        pub("like", 4, customer="c7"),
        out("ask", 5, customer="c7"),
    ]
    rel, _ = fold_relationship(moments)
    assert rel.as_record() == {
        "tenant": "acme",
        "customer_id": "c7",
        "customer_ids": ["c7"],  # a person of one id (SPEC §3: records carry every id)
        "stage": "loyal",
        "exchanges": 2,  # out|in, in, like, like|out: the likes are not in the conversation
        "wants": 2,
        "likes": 2,
        "customer_moments": 4,
        "brand_moments": 2,
        "first_moment_at": "2026-03-01T09:00:00Z",
        "last_moment_at": "2026-03-01T14:00:00Z",
        "last_customer_moment_at": "2026-03-01T13:00:00Z",
    }


def test_no_customer_side_moment_means_no_last_customer_moment() -> None:
    rel, transitions = fold_relationship([out("ask")])
    assert rel.last_customer_moment_us is None
    assert rel.as_record()["last_customer_moment_at"] is None
    assert transitions == []


def test_transitions_start_from_stranger_and_record_each_change() -> None:
    a, b, c, d = out("answer", 0), inb("reply", 1), out("ask", 2), pub("post", 3, sentiment=-0.5)
    _, transitions = fold_relationship([a, b, c, d])
    assert [t.as_record() for t in transitions] == [
        {"tenant": "acme", "customer_id": "c1", "from": "stranger", "to": "acquainted",
         "occurred_at": "2026-03-01T10:00:00Z", "moment_id": b.moment_id},
        {"tenant": "acme", "customer_id": "c1", "from": "acquainted", "to": "detractor",
         "occurred_at": "2026-03-01T12:00:00Z", "moment_id": d.moment_id},
    ]


def test_fold_order_is_occurred_at_then_moment_id_whatever_the_input_order() -> None:
    moments = [*conversation("oioio"), pub("post", 2.5, sentiment=0.8), inb("accept", 6)]
    # same time, ids decide: the later id comes second
    tie_a = out("help", 7, moment_id=make_id(900_001))
    tie_b = inb("reply", 7, moment_id=make_id(900_000))
    moments += [tie_a, tie_b]
    expected = fold_relationship(moments)
    shuffled = moments[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert fold_relationship(shuffled) == expected
    assert [m.moment_id for m in in_fold_order(shuffled)][-2:] == [tie_b.moment_id, tie_a.moment_id]


def test_in_fold_order_does_not_copy_sorted_input() -> None:
    moments = conversation("oio")
    assert in_fold_order(moments) is moments


def test_stages_along_gives_the_running_stage() -> None:
    moments = [out("help", 0), inb("question", 1), out("help", 2), inb("purchase", 3)]
    assert [s for _, s in stages_along(list(reversed(moments)))] == [
        "stranger", "acquainted", "acquainted", "loyal",
    ]


def test_a_fold_is_over_one_customer() -> None:
    with pytest.raises(ValueError):
        fold_relationship([inb("reply", 0), inb("reply", 1, customer="c2")])
    with pytest.raises(ValueError):
        fold_relationship([])


def test_lapsed_after_180_days_of_customer_silence() -> None:
    last = T0
    assert is_lapsed(last, last + LAPSED_AFTER_US) is False  # exactly 180 × 24 h: not earlier
    assert is_lapsed(last, last + LAPSED_AFTER_US + 1) is True
    assert is_lapsed(last, last) is False
    assert is_lapsed(None, last) is True
    assert LAPSED_AFTER_US == 180 * 24 * HOUR


def test_a_tenant_listens_enough_from_half_of_its_moments() -> None:
    """The bar of `mot story`, `mot report` and listening_view: a share of at least half."""
    assert listens_enough(0.5) is True
    assert listens_enough(1 / 3) is False
    assert listens_enough(0.4999) is False
    assert listens_enough(None) is None


# --- §3.2 reciprocity --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "weight"),
    [("answer", 1), ("help", 2), ("content", 1), ("gift", 2), ("introduction", 1), ("apology", 1)],
)
def test_give_weights(kind: str, weight: int) -> None:
    assert GIVE_WEIGHTS[kind] == weight
    r = fold_reciprocity([out(kind)])
    assert (r.given, r.asked, r.balance, r.status) == (weight, 0, weight, "ok_to_ask")


@pytest.mark.parametrize(
    ("ask_type", "weight"),
    [("purchase", 2), ("referral", 2), ("review", 1), ("share", 1), ("like", 1),
     ("survey", 1), ("meeting", 1), ("other", 1)],
)
def test_ask_weights(ask_type: str, weight: int) -> None:
    assert ask_weight(ask_type) == weight
    r = fold_reciprocity([out("ask", ask_type=ask_type)])
    assert (r.asked, r.unanswered_asks, r.balance) == (weight, 1, -weight)
    assert set(ASK_WEIGHTS) == {"purchase", "referral"}


@pytest.mark.parametrize("kind", ["question", "other"])
def test_outbound_non_gives_count_nothing(kind: str) -> None:
    assert reciprocity_step(Balance(), out(kind)) == Balance()


@pytest.mark.parametrize(
    "give",
    [
        lambda: inb("purchase", 3), lambda: inb("accept", 3), lambda: inb("praise", 3),
        lambda: inb("feedback", 3), lambda: pub("post", 3, sentiment=0.3),
        lambda: pub("review", 3, sentiment=0.5), lambda: pub("mention", 3, sentiment=1.0),
        lambda: pub("share", 3, sentiment=0.3),
    ],
)
def test_a_customer_give_is_received_and_answers_the_asks(give: Callable[[], Current]) -> None:
    r = fold_reciprocity([out("ask", 1), out("ask", 2), give()])
    assert (r.received, r.unanswered_asks, r.status) == (1, 0, "give_first")


@pytest.mark.parametrize(
    "not_a_give",
    [
        lambda: inb("question", 3), lambda: inb("complaint", 3), lambda: inb("reply", 3),
        lambda: inb("other", 3), lambda: pub("post", 3, sentiment=0.29), lambda: pub("post", 3),
        lambda: pub("like", 3, sentiment=0.9),
    ],
)
def test_other_customer_moments_are_not_gives(not_a_give: Callable[[], Current]) -> None:
    r = fold_reciprocity([out("ask", 1), out("ask", 2), not_a_give()])
    assert (r.received, r.unanswered_asks, r.status) == (0, 2, "stop_asking")


def test_a_decline_answers_the_asks_without_giving() -> None:
    r = fold_reciprocity([out("ask", 1), out("ask", 2), inb("decline", 3)])
    assert (r.received, r.unanswered_asks, r.status) == (0, 0, "give_first")


def test_unanswered_asks_count_from_the_last_answer() -> None:
    assert fold_reciprocity([out("ask", 1), out("ask", 2), inb("praise", 3)]).unanswered_asks == 0
    assert fold_reciprocity([inb("praise", 1), out("ask", 2), out("ask", 3)]).unanswered_asks == 2
    # given in reverse order, the fold still sorts them
    reversed_input = [out("ask", 3), out("ask", 2), inb("praise", 1)]
    assert fold_reciprocity(reversed_input).unanswered_asks == 2


@pytest.mark.parametrize(
    ("balance", "unanswered", "status"),
    [(5, 2, "stop_asking"), (-3, 2, "stop_asking"), (-1, 1, "give_first"), (0, 1, "ok_to_ask"),
     (0, 0, "ok_to_ask"), (3, 0, "ok_to_ask")],
)
def test_status_precedence(balance: int, unanswered: int, status: str) -> None:
    assert status_of(balance, unanswered) == status


def test_stop_asking_even_in_credit() -> None:
    r = fold_reciprocity([out("gift", 0), out("help", 1), out("ask", 2), out("ask", 3)])
    assert (r.balance, r.status) == (2, "stop_asking")


def test_balances_along_gives_the_running_balance() -> None:
    moments = [out("help", 0), out("ask", 1, ask_type="purchase"), inb("accept", 2)]
    assert [(b.balance, b.unanswered_asks) for _, b in balances_along(moments)] == [
        (2, 0), (0, 1), (0, 0),
    ]


# --- §3.3 amplification ------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentiment", "expected"),
    [(0.3, "positive"), (1.0, "positive"), (0.2999, "neutral"), (0.0, "neutral"),
     (None, "neutral"), (-0.2999, "neutral"), (-0.3, "negative"), (-1.0, "negative")],
)
def test_polarity_thresholds(sentiment: float | None, expected: str) -> None:
    assert polarity(sentiment) == expected


def test_amplification_moments_are_public_posts_reviews_mentions() -> None:
    assert [is_amplification(pub(k)) for k in ("post", "review", "mention", "share", "like")] == [
        True, True, True, False, False,
    ]
    assert not is_amplification(inb("feedback"))


def test_window_trigger_is_the_latest_private_moment() -> None:
    post = pub("post", 100)
    earlier, latest = out("answer", 90), inb("reply", 95)
    assert find_trigger(post, None, [latest, earlier, post]) == latest


def test_window_includes_exactly_t_and_exactly_t_minus_72h() -> None:
    post = pub("post", 100)
    at_t = out("answer", 100)
    at_start = out("answer", 100 - 72)
    assert find_trigger(post, None, [at_t]) == at_t
    assert find_trigger(post, None, [at_start]) == at_start
    just_before = out("answer", at=post.occurred_us - 72 * HOUR - 1)
    just_after = out("answer", at=post.occurred_us + 1)
    assert find_trigger(post, None, [just_before, just_after]) is None


def test_window_ties_go_to_the_larger_moment_id() -> None:
    post = pub("post", 10)
    low = out("answer", 5, moment_id=make_id(800_000))
    high = inb("reply", 5, moment_id=make_id(800_001))
    assert find_trigger(post, None, [high, low]) == high


def test_window_skips_public_and_other_customers_moments() -> None:
    post = pub("post", 10)
    others = [pub("share", 9), out("answer", 9, customer="c2"), out("answer", 9, tenant="globex")]
    assert find_trigger(post, None, others) is None


def test_explicit_reply_to_a_later_moment_gives_a_negative_delay() -> None:
    later = out("answer", 102, function="service", channel="phone", actor="sam")
    post = pub("post", 100, in_reply_to=later.moment_id, sentiment=0.5)
    window = out("help", 99)
    trigger = find_trigger(post, later, [window, later])
    assert trigger == later
    a = build_amplification(post, trigger, 0, post.reach)
    assert (a.delay_seconds, a.trigger_function, a.trigger_channel, a.trigger_actor) == (
        -7200, "service", "phone", "sam",
    )


def test_explicit_reply_may_name_another_customer_and_any_time() -> None:
    long_ago = out("answer", -1000, customer="c2")
    post = pub("review", 0, in_reply_to=long_ago.moment_id)
    assert find_trigger(post, long_ago, []) == long_ago


def test_reply_to_a_public_moment_falls_back_to_the_window() -> None:
    other_post = pub("post", 50)
    window = inb("complaint", 99)
    post = pub("post", 100, in_reply_to=other_post.moment_id)
    assert find_trigger(post, other_post, [window]) == window


def test_reply_to_another_tenant_falls_back_to_the_window() -> None:
    foreign = out("answer", 99.5, tenant="globex")
    window = inb("complaint", 99)
    post = pub("post", 100, in_reply_to=foreign.moment_id)
    assert find_trigger(post, foreign, [window]) == window


def test_reply_to_no_current_moment_falls_back_to_the_window() -> None:
    window = inb("complaint", 99)
    post = pub("post", 100, in_reply_to=make_id(999_999))
    assert find_trigger(post, None, [window]) == window
    assert find_trigger(post, None, []) is None


def test_unprompted_amplification_has_no_trigger_fields() -> None:
    post = pub("mention", 0, sentiment=-0.4, reach=7)
    a = build_amplification(post, None, 0, 7)
    assert a.unprompted
    assert a.as_record() == {
        "amplification_id": post.moment_id, "tenant": "acme", "customer_id": "c1",
        "trigger_moment_id": None, "trigger_function": None, "trigger_channel": None,
        "delay_seconds": None, "polarity": "negative", "reach": 7, "cascade_size": 0,
        "cascade_reach": 7,
    }
    assert a.trigger_actor is None


def test_only_amplification_moments_build_amplifications() -> None:
    with pytest.raises(ValueError):
        build_amplification(pub("share", 0, shares=make_id(1)), None, 0, 0)


@pytest.mark.parametrize(
    ("micros", "seconds"),
    [(7200 * SECOND, 7200), (-7200 * SECOND, -7200), (1_500_000, 1), (-1_500_000, -1),
     (-1, 0), (0, 0), (86_400 * 365 * 100 * SECOND + 999_999, 86_400 * 365 * 100)],
)
def test_whole_seconds_truncate_toward_zero(micros: int, seconds: int) -> None:
    assert whole_seconds(micros) == seconds


def children_of(shares: Sequence[Current]) -> Callable[[str], list[Current]]:
    def children(moment_id: str) -> list[Current]:
        return [s for s in shares if s.shares == moment_id]
    return children


def test_cascade_counts_a_share_of_a_share() -> None:
    root = pub("post", 0, reach=500)
    first = pub("share", 1, customer="c9", shares=root.moment_id, reach=1200)
    second = pub("share", 2, customer="c8", shares=first.moment_id, reach=300)
    sibling = pub("share", 3, customer="c7", shares=root.moment_id, reach=5)
    found = cascade(root, children_of([first, second, sibling]))
    assert found == (3, 500 + 1200 + 300 + 5)


def test_cascade_without_shares_is_the_moments_own_reach() -> None:
    root = pub("review", 0, reach=40)
    assert cascade(root, lambda _: []) == (0, 40)


def test_cascade_ignores_other_tenants_and_misfiled_children() -> None:
    root = pub("post", 0, reach=10)
    foreign = pub("share", 1, tenant="globex", shares=root.moment_id, reach=100)
    not_a_share = pub("post", 1, reach=100)
    assert cascade(root, lambda _: [foreign, not_a_share]) == (0, 10)


def test_cascade_visits_each_share_once_even_if_children_loop() -> None:
    root = pub("post", 0, reach=10)
    a = pub("share", 1, shares=root.moment_id, reach=1)
    b = pub("share", 2, shares=a.moment_id, reach=2)
    # a faulty lookup that lists a below b (a cycle) and the root below a
    looped = {root.moment_id: [a], a.moment_id: [b, root], b.moment_id: [a]}
    assert cascade(root, lambda i: looped.get(i, [])) == (2, 13)


def test_a_retracted_share_cuts_off_the_shares_below_it() -> None:
    root = pub("post", 0, reach=10)
    retracted = pub("share", 1, shares=root.moment_id, reach=1)
    below = pub("share", 2, shares=retracted.moment_id, reach=2)
    assert cascade(root, children_of([below])) == (0, 10)


# --- §3.4 teams and listening ------------------------------------------------------


def test_moment_contribution() -> None:
    assert moment_contribution(out("help", function="product")) == TeamDelta(
        "acme", "product", moments=1, given=2
    )
    assert moment_contribution(out("ask", ask_type="referral", function="sales")) == TeamDelta(
        "acme", "sales", moments=1, asked=2
    )
    assert moment_contribution(inb("purchase")) == TeamDelta("acme", "other", moments=1)
    assert moment_contribution(pub("post", function="marketing")) is None


def amp(sentiment: float | None, trigger: Current | None, reach: int = 10) -> Amplification:
    post = pub("post", 5, sentiment=sentiment, reach=reach)
    return build_amplification(post, trigger, 1, reach + 1)


def test_amplification_contribution_goes_to_the_triggers_function() -> None:
    trigger = out("ask", 4, function="marketing")
    assert amplification_contribution(amp(-0.5, trigger)) == TeamDelta(
        "acme", "marketing", amplifications=1, negative=1, cascade_reach=11
    )
    assert amplification_contribution(amp(0.5, trigger)) == TeamDelta(
        "acme", "marketing", amplifications=1, positive=1, cascade_reach=11
    )
    assert amplification_contribution(amp(None, trigger)) == TeamDelta(
        "acme", "marketing", amplifications=1, cascade_reach=11
    )
    assert amplification_contribution(amp(0.5, None)) is None


@pytest.mark.parametrize(
    ("m", "increments"),
    [
        (inb("complaint"), (1, 0)),
        (inb("other"), (1, 0)),
        (out("question"), (1, 0)),
        (out("answer"), (0, 1)),
        (out("ask"), (0, 1)),
        (out("other"), (0, 1)),
        (pub("post"), (0, 0)),
    ],
)
def test_listening_contribution(m: Current, increments: tuple[int, int]) -> None:
    assert listening_contribution(m) == increments


def test_listening_share() -> None:
    assert listening_share(0, 0) is None
    assert listening_share(1, 1) == 0.5
    assert listening_share(3, 0) == 1.0
    assert listening_share(0, 2) == 0.0


def test_team_totals_add_subtract_and_omit_zero_rows() -> None:
    totals = TeamTotals()
    help_ = moment_contribution(out("help", function="service"))
    ask = moment_contribution(out("ask", function="sales", tenant="globex"))
    totals.add(help_)
    totals.add(ask)
    totals.add(None)
    assert [r.as_record() for r in totals.rows()] == [
        TeamRow("acme", "service", moments=1, given=2).as_record(),
        TeamRow("globex", "sales", moments=1, asked=1).as_record(),
    ]
    totals.subtract(ask)
    assert totals.rows() == [TeamRow("acme", "service", moments=1, given=2)]
    assert totals.get("globex", "sales") == TeamRow("globex", "sales")


def test_incremental_amendment_equals_a_rebuild() -> None:
    before = out("ask", 0, function="sales", ask_type="purchase")
    after = before._replace(kind="help", ask_type=None, function="product")
    other = inb("reply", 1)
    totals, listening = TeamTotals(), ListeningTotals()
    for m in (before, other):
        totals.add(moment_contribution(m))
        listening.add(m)
    totals.subtract(moment_contribution(before))
    listening.subtract(before)
    totals.add(moment_contribution(after))
    listening.add(after)
    rebuilt = scoreboard([after, other], [])
    assert tuple(totals.rows()) == rebuilt.teams
    assert tuple(listening.rows()) == rebuilt.listening


def test_listening_rows_for_every_tenant_with_a_moment() -> None:
    board = scoreboard([pub("like", tenant="initech"), inb("reply"), out("answer"),
                        out("question")], [])
    assert [r.as_record() for r in board.listening] == [
        {"tenant": "acme", "listening_share": 2 / 3},
        {"tenant": "initech", "listening_share": None},
    ]
    assert [r.tenant for r in board.teams] == ["acme"]  # public moments count for no team


# --- §4 worked example -------------------------------------------------------------


def test_worked_example() -> None:
    answer = out("answer", 0, function="service")
    reply = inb("reply", 1)
    ask_purchase = out("ask", 2, ask_type="purchase", function="sales")
    ask_review = out("ask", 3, ask_type="review", function="marketing")
    post = pub("post", 5, sentiment=-0.6, reach=500)
    moments = [answer, reply, ask_purchase, ask_review, post]

    rel, _ = fold_relationship(moments)
    assert (rel.exchanges, rel.stage) == (2, "detractor")

    r = fold_reciprocity(moments)
    assert (r.given, r.asked, r.received, r.balance, r.unanswered_asks, r.status) == (
        1, 3, 0, -2, 2, "stop_asking",
    )

    trigger = find_trigger(post, None, moments)
    assert trigger == ask_review
    size, reach = cascade(post, lambda _: [])
    a = build_amplification(post, trigger, size, reach)
    assert (a.trigger_moment_id, a.delay_seconds, a.polarity, a.cascade_reach) == (
        ask_review.moment_id, 7200, "negative", 500,
    )

    # someone shares it
    share = pub("share", 6, customer="c9", shares=post.moment_id, reach=1200)
    assert cascade(post, lambda i: [share] if i == post.moment_id else []) == (1, 1700)

    purchase = inb("purchase", 6)
    moments.append(purchase)
    rel, _ = fold_relationship(moments)
    assert (rel.wants, rel.exchanges, rel.stage) == (1, 3, "detractor")
    r = fold_reciprocity(moments)
    assert (r.received, r.unanswered_asks, r.status) == (1, 0, "give_first")


def test_counting_moments_per_contribution_group_adds_what_one_by_one_adds() -> None:
    from mot.adapters.sources.sample import generate_lines
    from mot.domain.messages import RecordMoment, parse_message
    from mot.projections.engine import Deltas, current_of

    now = datetime.now(UTC)
    parsed = [parse_message(line, now) for line in generate_lines(3000, seed=31)]
    moments = [current_of(dict(p.moment)) for p in parsed if isinstance(p, RecordMoment)]
    one_by_one, grouped = Deltas.empty(), Deltas.empty()
    for m in moments:
        one_by_one.move_moment(m, 1)
    grouped.add_moments(moments)
    assert len(moments) > 2500
    assert dict(grouped.teams) == dict(one_by_one.teams)
    assert dict(grouped.listening) == dict(one_by_one.listening)
    assert sum(counts[0] for counts in grouped.listening.values()) == len(moments)
