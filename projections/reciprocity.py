"""Reciprocity balance, per tenant and customer (SPEC §3.2).

A brand that gives earns the right to ask. `reciprocity_step` is the whole rule
for one moment; the fold and a timeline's running balance both use it. The
weight tables are public because the team scoreboard (§3.4) counts `given`
and `asked` with the same weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from mot.domain.vocabulary import OUTBOUND_GIVES
from mot.projections.model import Current
from mot.projections.relationship import in_fold_order, is_positive
from mot.projections.schema import RECIPROCITY, STATUSES, record_maker

Status = Literal["stop_asking", "give_first", "ok_to_ask"]
assert set(get_args(Status)) == set(STATUSES)  # the rule's values are the record's

GIVE_WEIGHTS: Final[Mapping[str, int]] = MappingProxyType({
    "answer": 1,
    "help": 2,
    "content": 1,
    "gift": 2,
    "introduction": 1,
    "apology": 1,
})
"""What an outbound give adds to `given`, by kind."""
assert set(GIVE_WEIGHTS) == OUTBOUND_GIVES  # the table and the vocabulary must agree

ASK_WEIGHTS: Final[Mapping[str, int]] = MappingProxyType({"purchase": 2, "referral": 2})
"""What an outbound ask adds to `asked`, by ask_type; any other weighs DEFAULT_ASK_WEIGHT."""
DEFAULT_ASK_WEIGHT: Final = 1

INBOUND_GIVES: Final = frozenset({"purchase", "accept", "praise", "feedback"})
PUBLIC_GIVES: Final = frozenset({"post", "review", "mention", "share"})
STOP_ASKING_AT: Final = 2


def ask_weight(ask_type: str | None) -> int:
    """What an outbound ask of this ask_type adds to `asked`."""
    return ASK_WEIGHTS.get(ask_type or "other", DEFAULT_ASK_WEIGHT)


def given_by(m: Current) -> int:
    """What `m` adds to `given`: the weight of an outbound give, else 0."""
    if m.direction != "outbound":
        return 0
    return GIVE_WEIGHTS.get(m.kind, 0)


def asked_by(m: Current) -> int:
    """What `m` adds to `asked`: the weight of an outbound ask, else 0."""
    if m.direction != "outbound" or m.kind != "ask":
        return 0
    return ask_weight(m.ask_type)


def is_customer_give(m: Current) -> bool:
    """The customer gave something back: a want, praise or feedback, or a positive
    public post/review/mention/share."""
    if m.direction == "inbound":
        return m.kind in INBOUND_GIVES
    if m.direction == "public":
        return m.kind in PUBLIC_GIVES and is_positive(m.sentiment)
    return False


def status_of(balance: int, unanswered_asks: int) -> Status:
    """Two unanswered asks trump the balance: stop asking before anything else."""
    if unanswered_asks >= STOP_ASKING_AT:
        return "stop_asking"
    if balance < 0:
        return "give_first"
    return "ok_to_ask"


@dataclass(frozen=True, slots=True)
class Balance:
    """The running counters of a reciprocity fold."""

    given: int = 0
    asked: int = 0
    received: int = 0
    unanswered_asks: int = 0

    @property
    def balance(self) -> int:
        return self.given - self.asked

    @property
    def status(self) -> Status:
        return status_of(self.balance, self.unanswered_asks)


def reciprocity_step(before: Balance, m: Current) -> Balance:
    """The balance after the next moment `m` (in fold order)."""
    if (weight := given_by(m)) > 0:
        return Balance(before.given + weight, before.asked, before.received, before.unanswered_asks)
    if (weight := asked_by(m)) > 0:
        return Balance(
            before.given, before.asked + weight, before.received, before.unanswered_asks + 1
        )
    if is_customer_give(m):
        return Balance(before.given, before.asked, before.received + 1, 0)
    if m.direction == "inbound" and m.kind == "decline":
        # A clear "no" answers the asks too: the brand may ask again later.
        return Balance(before.given, before.asked, before.received, 0)
    return before


def balances_along(moments: Sequence[Current]) -> Iterator[tuple[Current, Balance]]:
    """Each of one customer's moments in fold order, with the balance right after it."""
    balance = Balance()
    for m in in_fold_order(moments):
        balance = reciprocity_step(balance, m)
        yield m, balance


@dataclass(frozen=True, slots=True)
class Reciprocity:
    """One customer's reciprocity after all of their current moments."""

    tenant: str
    customer_id: str
    given: int
    asked: int
    received: int
    balance: int
    unanswered_asks: int
    status: Status
    customer_ids: tuple[str, ...] = ()  # the person's ids (SPEC §3); set by the fold

    def as_record(self) -> dict[str, Any]:
        return _reciprocity_record(self)


_reciprocity_record = record_maker(RECIPROCITY)


def fold_reciprocity(moments: Sequence[Current], customer_ids: tuple[str, ...] = ()
                     ) -> Reciprocity:
    """One customer's reciprocity balance (SPEC §3.2); `moments` in any order, `customer_ids`
    all the person's ids (default: the customer's own)."""
    return fold_reciprocity_and_stops(moments, customer_ids)[0]


def fold_reciprocity_and_stops(moments: Sequence[Current], customer_ids: tuple[str, ...] = (),
                               *, ordered: bool = False) -> tuple[Reciprocity, list[Current]]:
    """`fold_reciprocity`, and the asks that made `unanswered_asks` reach STOP_ASKING_AT (the
    status became `stop_asking`; what the stop_asking alert names, SPEC §3.6) in fold order:
    found in the same pass, so that raising alerts does not fold the balance again.
    `ordered`: the caller has the moments in fold order already."""
    if not moments:
        raise ValueError("a reciprocity balance needs at least one moment")
    tenant, customer_id = moments[0].tenant, moments[0].customer_id
    final = Balance()
    stops: list[Current] = []
    for m in moments if ordered else in_fold_order(moments):
        if (m.tenant, m.customer_id) != (tenant, customer_id):
            raise ValueError(
                f"moment {m.moment_id} is of {(m.tenant, m.customer_id)}, not "
                f"{(tenant, customer_id)}: a balance folds one customer's moments"
            )
        before, final = final, reciprocity_step(final, m)
        # Only an ask adds to unanswered_asks, one at a time: reaching the line is an ask.
        if final.unanswered_asks == STOP_ASKING_AT != before.unanswered_asks:
            stops.append(m)
    return Reciprocity(
        tenant=tenant,
        customer_id=customer_id,
        given=final.given,
        asked=final.asked,
        received=final.received,
        balance=final.balance,
        unanswered_asks=final.unanswered_asks,
        status=final.status,
        customer_ids=customer_ids or (customer_id,),
    ), stops
