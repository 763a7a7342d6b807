"""Alerts: the changes someone should act on now (SPEC §3.6), as pure rules.

Each rule names the moment that caused it; an alert's identity is
`uuid5(NAMESPACE_URL, "mot:alert:{tenant}:{rule}:{moment_id}")`, so raising the
same alert again (a rebuild, a replay, a page applied twice) is recognisable by
its id alone, and an alert is raised only while its moment is fresh. What is
raised, and when, is the engine's business; what counts as an alert is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from mot.domain.identity import uuid5_text
from mot.projections.amplification import Amplification
from mot.projections.model import Current
from mot.projections.reciprocity import STOP_ASKING_AT, balances_along
from mot.projections.relationship import Transition

Rule = Literal["detractor", "stop_asking", "negative_amplification", "overdue"]
RULES: Final[tuple[Rule, ...]] = ("detractor", "stop_asking", "negative_amplification", "overdue")

DEFAULT_WINDOW_US: Final = 72 * 3600 * 1_000_000
"""Only moments this recent raise alerts (SPEC §3.6: default 72 h), so history raises none."""


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
    for m, balance in balances_along(moments):
        if m.direction == "outbound" and m.kind == "ask" and balance.unanswered_asks == STOP_ASKING_AT:
            yield Cause("stop_asking", m.tenant, customer_id, m.moment_id, m.occurred_us,
                        (("unanswered_asks", balance.unanswered_asks), ("ask_type", m.ask_type)))


def negative_amplification_cause(a: Amplification, threshold: int) -> Cause | None:
    """A `negative` amplification moment whose cascade reach reached the threshold."""
    if a.polarity != "negative" or a.cascade_reach < threshold:
        return None
    return Cause("negative_amplification", a.tenant, a.customer_id, a.amplification_id,
                 a.occurred_us,
                 (("cascade_reach", a.cascade_reach), ("trigger_moment_id", a.trigger_moment_id),
                  ("trigger_function", a.trigger_function), ("trigger_actor", a.trigger_actor)))
