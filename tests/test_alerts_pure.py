"""Table tests for the pure alert rules (SPEC §3.6): identity, freshness, what causes each."""

from __future__ import annotations

import uuid

from test_projections_pure import HOUR, T0, inb, out, pub

from mot.projections.alerts import (
    DEFAULT_WINDOW_US,
    Cause,
    alert_id,
    detractor_causes,
    is_fresh,
    negative_amplification_cause,
    overdue_cause,
    stop_asking_causes,
    targets_never_overdue,
)
from mot.projections.amplification import Amplification
from mot.projections.relationship import fold_relationship


def test_an_alerts_identity_is_the_uuid5_of_the_spec() -> None:
    moment = "00000000-0000-4000-8000-000000000001"
    assert alert_id("acme", "detractor", moment) == str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"mot:alert:acme:detractor:{moment}"))
    assert alert_id("acme", "overdue", moment) != alert_id("acme", "detractor", moment)
    assert alert_id("globex", "detractor", moment) != alert_id("acme", "detractor", moment)


def test_only_fresh_moments_raise_alerts() -> None:
    assert is_fresh(T0, T0 + 72 * HOUR)  # exactly the window
    assert not is_fresh(T0, T0 + 72 * HOUR + 1)
    assert not is_fresh(T0, T0 + 2 * HOUR, window_us=HOUR)
    assert DEFAULT_WINDOW_US == 72 * HOUR


def test_the_worked_example_raises_detractor_and_stop_asking() -> None:
    """SPEC §4: answer, reply, ask purchase, ask review, negative post."""
    answer, reply = out("answer", 0), inb("reply", 1)
    ask1, ask2 = out("ask", 2, ask_type="purchase"), out("ask", 3, ask_type="review")
    post = pub("post", 5, sentiment=-0.6, reach=500)
    moments = [answer, reply, ask1, ask2, post]
    _, transitions = fold_relationship(moments)
    [detractor] = list(detractor_causes(transitions))
    assert (detractor.rule, detractor.moment_id, dict(detractor.details)["to"]) == (
        "detractor", post.moment_id, "detractor")
    [stop] = list(stop_asking_causes(moments, "c1"))
    assert (stop.moment_id, dict(stop.details)) == (
        ask2.moment_id, {"unanswered_asks": 2, "ask_type": "review"})
    # A third ask keeps the status; only reaching the line again after a give raises again.
    ask3, purchase = out("ask", 6), inb("purchase", 7)
    ask4, ask5 = out("ask", 8), out("ask", 9)
    again = [c.moment_id for c in stop_asking_causes([*moments, ask3, purchase, ask4, ask5], "c1")]
    assert again == [ask2.moment_id, ask5.moment_id]


def amplification(polarity: str, reach: int) -> Amplification:
    return Amplification("00000000-0000-4000-8000-000000000009", "acme", "c1", T0, "twitter",
                         -0.6 if polarity == "negative" else 0.6, polarity,  # type: ignore[arg-type]
                         reach, 0, reach, None, None, None, None, None)


def test_a_negative_amplification_alerts_once_its_reach_reaches_the_threshold() -> None:
    assert negative_amplification_cause(amplification("negative", 999), 1000) is None
    cause = negative_amplification_cause(amplification("negative", 1000), 1000)
    assert cause is not None and dict(cause.details)["cascade_reach"] == 1000
    assert negative_amplification_cause(amplification("positive", 5000), 1000) is None


def test_an_overdue_request_is_fresh_while_the_request_occurred_within_the_window() -> None:
    """SPEC §3.6: an alert is raised only while its moment occurred no longer than the window
    before the time it would be raised, and an overdue alert's moment is the request. So a
    check that did not run for a while still raises, history does not, and a target as long
    as the window or longer never raises."""
    window, day = 72 * HOUR, 24 * HOUR

    def cause(target_s: int | None, now: int) -> Cause | None:
        return overdue_cause("acme", "c1", "r1", T0, "question", "service", target_s, now, window)

    assert cause(3600, T0 + HOUR) is None  # exactly the target: not past it
    found = cause(3600, T0 + HOUR + 1_000_000)
    assert found is not None and dict(found.details)["overdue_seconds"] == 1
    # A check that did not run for two days still raises what became overdue meanwhile.
    assert cause(3600, T0 + HOUR + 2 * day) is not None
    # The request exactly a window old is still fresh; a microsecond more is history.
    assert cause(3600, T0 + window) is not None
    assert cause(3600, T0 + window + 1) is None
    # A target of 5 days (longer than the window): the request is history once it is overdue.
    assert cause(5 * 86400, T0 + 5 * day + 1) is None
    assert cause(3 * 86400, T0 + 3 * day + 1) is None  # as long as the window: the same
    assert cause(None, T0 + 10 * day) is None
    assert targets_never_overdue({"service": 3600, "sales": 3 * 86400, "hr": 5 * 86400},
                                 window) == ("hr", "sales")
    assert targets_never_overdue({"service": 3 * 86400 - 1}, window) == ()
