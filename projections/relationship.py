"""Relationship state and stage transitions, per tenant and customer (SPEC §3.1).

Pure: the input is one customer's current moments, the output plain frozen
values. The fold, the transitions and the running stage of a timeline all go
through `_fold`, so there is exactly one implementation of the stage rule.

This module also holds the few moment predicates the later sections (§3.2 to
§3.4) reuse: fold order, which side a moment is on, and the ±0.3 thresholds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from operator import attrgetter
from typing import Any, Final, Literal, get_args

from mot.domain.vocabulary import AMPLIFYING_KINDS
from mot.projections.lapsing import is_lapsed
from mot.projections.model import Current
from mot.projections.schema import RELATIONSHIPS, STAGES, TRANSITIONS, record_maker

Stage = Literal["detractor", "advocate", "loyal", "engaged", "acquainted", "stranger"]
assert set(get_args(Stage)) == set(STAGES)  # the rule's values are the record's

POSITIVE_AT_LEAST: Final = 0.3
"""A sentiment this high or higher is positive (stages, customer gives, polarity)."""
NEGATIVE_AT_MOST: Final = -0.3
"""A sentiment this low or lower is negative (detractor, polarity)."""

PRIVATE_DIRECTIONS: Final = frozenset({"inbound", "outbound"})
CUSTOMER_SIDE_DIRECTIONS: Final = frozenset({"inbound", "public"})
WANT_KINDS: Final = frozenset({"purchase", "accept"})
# Public kinds whose positive sentiment makes an advocate: what makes something
# public, plus passing someone else's post on.
ENDORSING_KINDS: Final = AMPLIFYING_KINDS | {"share"}

# attrgetter builds the same tuple as Current.fold_key without a Python-level call.
_FOLD_KEY: Final = attrgetter("occurred_us", "moment_id")


# --- moment predicates shared by the projections ---------------------------------


def in_fold_order(moments: Sequence[Current]) -> Sequence[Current]:
    """The moments in `(occurred_at, moment_id)` order.

    The engine reads a customer's moments from an index that is already in this
    order, so check first: one pass and no copy in the common case.
    """
    keys = map(_FOLD_KEY, moments)
    if all(earlier <= later for earlier, later in pairwise(keys)):
        return moments
    return sorted(moments, key=_FOLD_KEY)


def is_private(m: Current) -> bool:
    """Inbound or outbound: the private conversation between brand and customer."""
    return m.direction in PRIVATE_DIRECTIONS


def is_customer_side(m: Current) -> bool:
    """Inbound or public: what the customer did (as opposed to the brand)."""
    return m.direction in CUSTOMER_SIDE_DIRECTIONS


def is_positive(sentiment: float | None) -> bool:
    return sentiment is not None and sentiment >= POSITIVE_AT_LEAST


def is_negative(sentiment: float | None) -> bool:
    return sentiment is not None and sentiment <= NEGATIVE_AT_MOST


def is_public_amplifying(m: Current) -> bool:
    """A public post, review or mention (an amplification moment of §3.3)."""
    return m.direction == "public" and m.kind in AMPLIFYING_KINDS


# --- the stage rule ----------------------------------------------------------------


def stage_of(
    *,
    detracting: bool,
    endorsed: bool,
    exchanges: int,
    wants: int,
    customer_moments: int,
) -> Stage:
    """The first stage rule of §3.1 that holds, from the facts the fold keeps."""
    if detracting:
        return "detractor"
    if endorsed and exchanges >= 1:
        return "advocate"
    if wants >= 1 and exchanges >= 2:
        return "loyal"
    if exchanges >= 3:
        return "engaged"
    if exchanges >= 1 or customer_moments >= 1:
        return "acquainted"
    return "stranger"


# --- outputs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relationship:
    """One customer's relationship after all of their current moments."""

    tenant: str
    customer_id: str
    stage: Stage
    exchanges: int
    wants: int
    likes: int
    customer_moments: int
    brand_moments: int
    first_moment_us: int
    last_moment_us: int
    last_customer_moment_us: int | None
    customer_ids: tuple[str, ...] = ()  # the person's ids (SPEC §3); set by the fold

    def lapsed(self, as_of_us: int) -> bool:
        return is_lapsed(self.last_customer_moment_us, as_of_us)

    def as_record(self) -> dict[str, Any]:
        return _relationship_record(self)


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of stage, caused by the moment `moment_id` at `occurred_us`."""

    tenant: str
    customer_id: str
    from_stage: Stage
    to_stage: Stage
    occurred_us: int
    moment_id: str

    def as_record(self) -> dict[str, Any]:
        return _transition_record(self)


_relationship_record = record_maker(RELATIONSHIPS)
_transition_record = record_maker(TRANSITIONS)


# --- the fold ----------------------------------------------------------------------


class _Tally:
    """The running facts of one customer's fold. Mutable and private: a fold over
    thousands of moments should not allocate a new value per moment."""

    __slots__ = (
        "brand_moments",
        "customer_moments",
        "detracting",
        "endorsed",
        "exchanges",
        "first_us",
        "last_customer_us",
        "last_private_direction",
        "last_us",
        "likes",
        "wants",
    )

    def __init__(self) -> None:
        self.exchanges = 0
        self.wants = 0
        self.likes = 0
        self.customer_moments = 0
        self.brand_moments = 0
        self.first_us: int | None = None
        self.last_us: int | None = None
        self.last_customer_us: int | None = None
        self.last_private_direction: str | None = None
        # Rule 1 needs only: is the latest sentiment-bearing post/review/mention
        # negative, with no positive customer-side moment since?
        self.detracting = False
        # Rule 2 needs only: has any public post/review/mention/share been positive?
        self.endorsed = False

    def add(self, m: Current) -> None:
        """Take in the next moment in fold order."""
        if self.first_us is None:
            self.first_us = m.occurred_us
        self.last_us = m.occurred_us
        self._count_exchange(m)
        if m.direction == "outbound":
            self.brand_moments += 1
        else:
            self.customer_moments += 1
            self.last_customer_us = m.occurred_us
        if m.direction == "inbound" and m.kind in WANT_KINDS:
            self.wants += 1
        if m.direction == "public" and m.kind == "like":
            self.likes += 1
        self._track_sentiment(m)

    def _count_exchange(self, m: Current) -> None:
        # Public moments are not part of the conversation: they neither count
        # nor break the run (out, public, in is still one turn).
        if not is_private(m):
            return
        previous = self.last_private_direction
        if previous is not None and previous != m.direction:
            self.exchanges += 1
        self.last_private_direction = m.direction

    def _track_sentiment(self, m: Current) -> None:
        if is_public_amplifying(m) and m.sentiment is not None:
            # A new latest post with a sentiment decides rule 1 afresh (a positive
            # post is also a positive customer-side moment, so False either way).
            self.detracting = is_negative(m.sentiment)
        elif is_customer_side(m) and is_positive(m.sentiment):
            self.detracting = False
        if m.direction == "public" and m.kind in ENDORSING_KINDS and is_positive(m.sentiment):
            self.endorsed = True

    @property
    def stage(self) -> Stage:
        return stage_of(
            detracting=self.detracting,
            endorsed=self.endorsed,
            exchanges=self.exchanges,
            wants=self.wants,
            customer_moments=self.customer_moments,
        )


def _fold(moments: Sequence[Current], tally: _Tally, *, ordered: bool = False
          ) -> Iterator[tuple[Current, Stage]]:
    """Feed `moments` (one customer's) to `tally` in fold order, yielding the stage
    after each one (`ordered`: the caller has them in fold order already)."""
    ordered_moments = moments if ordered else in_fold_order(moments)
    if not ordered_moments:
        return
    key = (ordered_moments[0].tenant, ordered_moments[0].customer_id)
    for m in ordered_moments:
        if (m.tenant, m.customer_id) != key:
            raise ValueError(
                f"moment {m.moment_id} is of {(m.tenant, m.customer_id)}, not {key}: "
                "a relationship folds one customer's moments"
            )
        tally.add(m)
        yield m, tally.stage


def stages_along(moments: Sequence[Current]) -> Iterator[tuple[Current, Stage]]:
    """Each of one customer's moments in fold order, with the stage right after it
    (for a timeline's running stage)."""
    return _fold(moments, _Tally())


def fold_relationship(moments: Sequence[Current], customer_ids: tuple[str, ...] = (), *,
                      ordered: bool = False) -> tuple[Relationship, list[Transition]]:
    """One customer's relationship and its stage transitions (SPEC §3.1).

    `moments` are all of the customer's current moments, in any order (`ordered`: the
    caller has them in fold order already); `customer_ids` all the person's ids (default:
    the customer's own).
    """
    if not moments:
        raise ValueError("a relationship needs at least one moment")
    tally = _Tally()
    transitions: list[Transition] = []
    stage: Stage = "stranger"  # the first transition is from stranger
    for m, after in _fold(moments, tally, ordered=ordered):
        if after != stage:
            transitions.append(
                Transition(m.tenant, m.customer_id, stage, after, m.occurred_us, m.moment_id)
            )
            stage = after
    first = moments[0]
    assert tally.first_us is not None and tally.last_us is not None  # moments is not empty
    relationship = Relationship(
        tenant=first.tenant,
        customer_id=first.customer_id,
        stage=stage,
        exchanges=tally.exchanges,
        wants=tally.wants,
        likes=tally.likes,
        customer_moments=tally.customer_moments,
        brand_moments=tally.brand_moments,
        first_moment_us=tally.first_us,
        last_moment_us=tally.last_us,
        last_customer_moment_us=tally.last_customer_us,
        customer_ids=customer_ids or (first.customer_id,),
    )
    return relationship, transitions
