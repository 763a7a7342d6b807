"""Alerts: the changes someone should act on now (SPEC §3.6), as pure rules.

Each rule names the moment that caused it; an alert's identity is
`uuid5(NAMESPACE_URL, "mot:alert:{tenant}:{rule}:{moment_id}")`, so raising the
same alert again (a rebuild, a replay, a page applied twice) is recognisable by
its id alone, and an alert is raised only while its moment is fresh. What is
raised, and when, is the engine's business; what counts as an alert is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from mot.domain.identity import uuid5_text
from mot.projections.amplification import Amplification
from mot.projections.model import Current
from mot.projections.reciprocity import STOP_ASKING_AT, fold_reciprocity_and_stops
from mot.projections.relationship import Transition
from mot.projections.responses import waited_past_target

Rule = Literal["detractor", "stop_asking", "negative_amplification", "overdue"]
RULES: Final[tuple[Rule, ...]] = ("detractor", "stop_asking", "negative_amplification", "overdue")

DEFAULT_WINDOW_US: Final = 72 * 3600 * 1_000_000
"""Only moments this recent raise alerts (SPEC §3.6: default 72 h), so history raises none."""
DEFAULT_NEGATIVE_REACH: Final = 1000
"""A negative amplification alerts once its cascade reaches this many people (configurable)."""


def alert_id(tenant: str, rule: Rule, moment_id: str) -> str:
    """Equal to `str(uuid5(NAMESPACE_URL, f"mot:alert:{tenant}:{rule}:{moment_id}"))`."""
    return uuid5_text(f"mot:alert:{tenant}:{rule}:{moment_id}")


def is_fresh(occurred_us: int, raised_us: int, window_us: int = DEFAULT_WINDOW_US) -> bool:
    """A moment that occurred no longer than the window before the time it would raise an alert."""
    return raised_us - occurred_us <= window_us


@dataclass(frozen=True, slots=True)
class Cause:
    """What one rule found: the moment that caused it and the rule's own facts."""

    rule: Rule
    tenant: str
    customer_id: str  # the person
    moment_id: str
    occurred_us: int
    details: tuple[tuple[str, object], ...] = ()

    @property
    def alert_id(self) -> str:
        return alert_id(self.tenant, self.rule, self.moment_id)


def detractor_causes(transitions: Iterable[Transition]) -> Iterator[Cause]:
    """Every transition to `detractor` (the moment is the transition's)."""
    for t in transitions:
        if t.to_stage == "detractor":
            yield Cause("detractor", t.tenant, t.customer_id, t.moment_id, t.occurred_us,
                        (("from", t.from_stage), ("to", t.to_stage)))


def stop_asking_causes(moments: Sequence[Current], customer_id: str) -> Iterator[Cause]:
    """Each ask that made `unanswered_asks` reach the stop-asking line (status became
    `stop_asking`); a customer give or a decline resets it, so it can happen again."""
    if moments:
        yield from stop_asking_causes_of(fold_reciprocity_and_stops(moments)[1], customer_id)


def stop_asking_causes_of(asks: Iterable[Current], customer_id: str) -> Iterator[Cause]:
    """The causes of the asks that made `unanswered_asks` reach the line, as the reciprocity
    fold found them (`fold_reciprocity_and_stops`)."""
    for m in asks:
        yield Cause("stop_asking", m.tenant, customer_id, m.moment_id, m.occurred_us,
                    (("unanswered_asks", STOP_ASKING_AT), ("ask_type", m.ask_type)))


def negative_amplification_cause(a: Amplification, threshold: int) -> Cause | None:
    """A `negative` amplification moment whose cascade reach reached the threshold."""
    if a.polarity != "negative" or a.cascade_reach < threshold:
        return None
    return Cause("negative_amplification", a.tenant, a.customer_id, a.amplification_id,
                 a.occurred_us,
                 (("cascade_reach", a.cascade_reach), ("trigger_moment_id", a.trigger_moment_id),
                  ("trigger_function", a.trigger_function), ("trigger_actor", a.trigger_actor)))


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """The thresholds alerts are raised with: defaults, and each tenant's own (SPEC §3.6:
    "thresholds and targets are configured per tenant")."""

    window_us: int = DEFAULT_WINDOW_US
    negative_reach: int = DEFAULT_NEGATIVE_REACH
    tenants: tuple[tuple[str, int | None, int | None], ...] = ()  # (tenant, window, reach)

    def window(self, tenant: str) -> int:
        for name, window, _ in self.tenants:
            if name == tenant and window is not None:
                return window
        return self.window_us

    @property
    def longest_window_us(self) -> int:
        """The longest window of any tenant."""
        return max((self.window_us, *(w for _, w, _ in self.tenants if w is not None)))

    def reach(self, tenant: str) -> int:
        for name, _, reach in self.tenants:
            if name == tenant and reach is not None:
                return reach
        return self.negative_reach


@dataclass(frozen=True, slots=True)
class Alert:
    """One raised alert as the outbox keeps it and destinations receive it."""

    alert_id: str
    rule: Rule
    tenant: str
    customer_id: str  # the person
    customer_ids: tuple[str, ...]
    moment_id: str
    occurred_us: int
    raised_us: int
    function: str
    actor: str | None
    channel: str
    details: tuple[tuple[str, object], ...] = ()  # the rule's own facts, in order
    url: str | None = None  # the moment's, as the outbox reads it (not kept with the alert)


def customer_causes(tenant: str, customer_id: str, last_us: int,
                    transitions: Iterable[Transition], amplifications: Iterable[Amplification],
                    stop_asks: Iterable[Current], policy: AlertPolicy, now_us: int) -> list[Cause]:
    """The fresh causes among one customer's folded projections (every rule but `overdue`):
    its transitions, its amplifications and the asks that reached the stop-asking line, as
    its folds found them (`stop_asks`: `fold_reciprocity_and_stops`); `last_us` is when its
    latest moment occurred.

    A customer none of whose moments is fresh has none: most of a rebuild costs one
    comparison per customer.
    """
    window = policy.window(tenant)
    if not is_fresh(last_us, now_us, window):
        return []
    causes: list[Cause] = []
    by_id = {a.amplification_id: a for a in amplifications}
    for cause in detractor_causes(transitions):
        a = by_id.get(cause.moment_id)
        if a is not None and a.trigger_moment_id is not None:
            cause = Cause(cause.rule, cause.tenant, cause.customer_id, cause.moment_id,
                          cause.occurred_us,
                          (*cause.details, ("trigger_moment_id", a.trigger_moment_id),
                           ("trigger_function", a.trigger_function),
                           ("trigger_actor", a.trigger_actor),
                           ("delay_seconds", a.delay_seconds)))
        causes.append(cause)
    causes.extend(stop_asking_causes_of(stop_asks, customer_id))
    reach = policy.reach(tenant)
    for a in by_id.values():
        found = negative_amplification_cause(a, reach)
        if found is not None:
            causes.append(found)
    return [c for c in causes if is_fresh(c.occurred_us, now_us, window)]


def raise_alerts(causes: Iterable[Cause], moments: Mapping[str, Current],
                 customer_ids: Mapping[str, tuple[str, ...]], now_us: int) -> list[Alert]:
    """The alerts of fresh causes, each with its moment's function, actor and channel
    (`moments`: by moment id; `customer_ids`: each person's ids, default the one id)."""
    alerts = []
    for c in causes:
        m = moments.get(c.moment_id)
        if m is None:
            continue
        alerts.append(Alert(c.alert_id, c.rule, c.tenant, c.customer_id,
                            customer_ids.get(c.customer_id, (c.customer_id,)), c.moment_id,
                            c.occurred_us, now_us, m.function, m.actor, m.channel, c.details))
    return alerts


def overdue_cause(tenant: str, customer_id: str, request_moment_id: str, occurred_us: int,
                  kind: str, function: str, target_s: int | None, now_us: int,
                  window_us: int) -> Cause | None:
    """An open request (SPEC §3.5) that has waited longer than its function's first-response
    target, while it is fresh (the moment is the request). Time alone makes it overdue:
    a periodic check asks this of every open request.

    Fresh as SPEC §3.6 says of every alert: the request itself occurred no longer than the
    window before the check raises it. A check that did not run for a while still raises
    what became overdue meanwhile while its request is fresh; a request older than the
    window (history) raises none, and so does a target as long as the window or longer
    (`targets_never_overdue` names those, so the commands can say so)."""
    if target_s is None:
        return None
    if not waited_past_target(function, occurred_us, now_us, {function: target_s}):
        return None
    if not is_fresh(occurred_us, now_us, window_us):
        return None
    waited = now_us - occurred_us
    return Cause("overdue", tenant, customer_id, request_moment_id, occurred_us,
                 (("kind", kind), ("target_seconds", target_s),
                  ("overdue_seconds", waited // 1_000_000 - target_s),
                  ("waiting_seconds", waited // 1_000_000)))


def targets_never_overdue(targets: Mapping[str, int], window_us: int) -> tuple[str, ...]:
    """The functions whose first-response target (seconds) is as long as the alert window or
    longer: their requests are no longer fresh (SPEC §3.6) by the time they are overdue, so
    they never raise an `overdue` alert (their responses still show as overdue, §3.5)."""
    return tuple(sorted(f for f, target_s in targets.items() if target_s * 1_000_000 >= window_us))
