"""Public-amplification moments: trigger, cascade and polarity (SPEC §3.3).

These are the pure pieces; the engine looks moments up (the `in_reply_to`
target, the customer's private moments, the shares below a moment) and hands
them in, so that nothing here needs a store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from mot.projections.model import Current
from mot.projections.relationship import (
    is_negative,
    is_positive,
    is_private,
    is_public_amplifying,
)
from mot.projections.schema import AMPLIFICATIONS, POLARITIES, record_maker

Polarity = Literal["positive", "negative", "neutral"]
assert set(get_args(Polarity)) == set(POLARITIES)  # the rule's values are the record's

TRIGGER_WINDOW_US: Final = 72 * 3600 * 1_000_000
"""How far back (72 h, in microseconds) a post looks for the private moment it makes public."""
MICROS_PER_SECOND: Final = 1_000_000
REACH_CEILING: Final = 2**63 - 1
"""The largest sum of reach kept (a cascade's, a team's): the stores keep signed 64-bit
integers, and a reach may be up to 2**53, so 1,025 shares of one post could pass it."""


def polarity(sentiment: float | None) -> Polarity:
    """positive at ≥ 0.3, negative at ≤ -0.3, else (or without a sentiment) neutral."""
    if is_positive(sentiment):
        return "positive"
    if is_negative(sentiment):
        return "negative"
    return "neutral"


def is_amplification(m: Current) -> bool:
    """Every public post, review or mention is an amplification moment."""
    return is_public_amplifying(m)


def find_trigger(
    post: Current,
    reply_target: Current | None,
    private_moments_of_customer: Sequence[Current],
) -> Current | None:
    """The private moment `post` makes public, or None when it is unprompted.

    `reply_target` is the current moment named by `post.in_reply_to` (None when
    there is no such reference or it names no current moment). It wins when it
    is an inbound or outbound moment of the same tenant, whatever its time or
    customer. Otherwise the latest (in fold order) of the post's customer's
    private moments in `[t − 72 h, t]`, both ends included.
    `private_moments_of_customer` may hold any of the customer's moments, in
    any order: public ones and other customers' are skipped.
    """
    if _names_a_trigger(post, reply_target):
        return reply_target
    return _latest_in_window(post, private_moments_of_customer)


def _names_a_trigger(post: Current, target: Current | None) -> bool:
    if target is None or post.in_reply_to is None:
        return False
    if target.moment_id != post.in_reply_to:
        raise ValueError(
            f"reply target {target.moment_id} is not the moment {post.in_reply_to} "
            f"that {post.moment_id} replies to"
        )
    # A reply to another public moment, or to an id of another tenant, is not a
    # private moment made public: fall back to the window.
    return is_private(target) and target.tenant == post.tenant


def _latest_in_window(post: Current, candidates: Sequence[Current]) -> Current | None:
    t = post.occurred_us
    earliest = t - TRIGGER_WINDOW_US
    latest: Current | None = None
    for m in candidates:
        if not (
            is_private(m)
            and m.tenant == post.tenant
            and m.customer_id == post.customer_id
            and earliest <= m.occurred_us <= t
        ):
            continue
        if latest is None or m.fold_key > latest.fold_key:
            latest = m
    return latest


def cascade(root: Current, children: Callable[[str], Sequence[Current]]) -> tuple[int, int]:
    """`(cascade_size, cascade_reach)` of the amplification moment `root`.

    `children(id)` gives the current public shares whose `shares` is `id`.
    """
    shares = share_tree(root, children)
    return len(shares), capped_reach(root.reach + sum(share.reach for share in shares))


def capped_reach(total: int) -> int:
    """A sum of reach as kept: at most REACH_CEILING. Beyond it the sum stays at the ceiling
    (a cascade that large reached everyone there is); before, one tenant's shares past it
    overflowed the store's integer and stopped the projections of every tenant."""
    return min(total, REACH_CEILING)


def share_tree(root: Current, children: Callable[[str], Sequence[Current]]) -> list[Current]:
    """The shares in the cascade of the amplification moment `root`.

    The walk goes down from the root, so a chain that never reaches an amplification
    moment is never seen, and a retracted share (absent from `children`) cuts
    off everything below it. A tree hanging from a root cannot cycle, but the
    walk still visits each moment once so that a faulty `children` cannot loop.
    """
    seen = {root.moment_id}
    tree: list[Current] = []
    pending = [root.moment_id]
    while pending:
        parent = pending.pop()
        for share in children(parent):
            if share.moment_id in seen or not _is_share_of(share, parent, root.tenant):
                continue
            seen.add(share.moment_id)
            tree.append(share)
            pending.append(share.moment_id)
    return tree


def _is_share_of(m: Current, parent_id: str, tenant: str) -> bool:
    return (
        m.direction == "public"
        and m.kind == "share"
        and m.shares == parent_id
        and m.tenant == tenant
    )


def whole_seconds(micros: int) -> int:
    """Microseconds as whole seconds, truncated toward zero (so -1.5 s is -1, like +1.5 s is 1).

    Integer arithmetic only: floor division would round negatives away from zero,
    and going through a float loses exactness for large values.
    """
    seconds = abs(micros) // MICROS_PER_SECOND
    return seconds if micros >= 0 else -seconds


@dataclass(frozen=True, slots=True)
class Amplification:
    """One amplification moment with its trigger and cascade; trigger fields and
    `delay_seconds` are None when it is unprompted."""

    amplification_id: str
    tenant: str
    customer_id: str
    occurred_us: int
    channel: str
    sentiment: float | None
    polarity: Polarity
    reach: int
    cascade_size: int
    cascade_reach: int
    trigger_moment_id: str | None
    trigger_function: str | None
    trigger_channel: str | None
    trigger_actor: str | None
    delay_seconds: int | None

    @property
    def unprompted(self) -> bool:
        return self.trigger_moment_id is None

    def as_record(self) -> dict[str, Any]:
        return _amplification_record(self)


_amplification_record = record_maker(AMPLIFICATIONS)


def build_amplification(
    post: Current, trigger: Current | None, cascade_size: int, cascade_reach: int
) -> Amplification:
    """The amplification record of `post`, from its trigger (or None) and cascade."""
    if not is_amplification(post):
        raise ValueError(f"moment {post.moment_id} is not a public post, review or mention")
    return Amplification(
        amplification_id=post.moment_id,
        tenant=post.tenant,
        customer_id=post.customer_id,
        occurred_us=post.occurred_us,
        channel=post.channel,
        sentiment=post.sentiment,
        polarity=polarity(post.sentiment),
        reach=post.reach,
        cascade_size=cascade_size,
        cascade_reach=cascade_reach,
        trigger_moment_id=None if trigger is None else trigger.moment_id,
        trigger_function=None if trigger is None else trigger.function,
        trigger_channel=None if trigger is None else trigger.channel,
        trigger_actor=None if trigger is None else trigger.actor,
        # Negative when an explicit in_reply_to names a later moment.
        delay_seconds=(
            None if trigger is None else whole_seconds(post.occurred_us - trigger.occurred_us)
        ),
    )
