"""One fold orchestration: customers' current moments in, their projections out (SPEC §3.1-§3.5).

`project_customers` is the only place the per-customer folds are put together:
the engine (incremental and rebuild), `--as-of` queries and the tests all call
it. What a customer's posts need from beyond their own moments (the moment an
`in_reply_to` names, the shares below a post) comes from a `FoldReader`: a
store's, or `MomentsInMemory` where no store is needed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mot.projections.amplification import (
    Amplification,
    build_amplification,
    capped_reach,
    find_trigger,
    is_amplification,
    share_tree,
)
from mot.projections.model import Current, CustomerKey, MomentKey
from mot.projections.persons import DEFAULT_LIMITS, Member, PersonLimits, PersonRow, person_row
from mot.projections.ports import Cascade, FoldReader
from mot.projections.reciprocity import Reciprocity, fold_reciprocity_and_stops
from mot.projections.relationship import (
    Relationship,
    Transition,
    fold_relationship,
    in_fold_order,
)
from mot.projections.responses import Response, fold_responses


@dataclass(frozen=True, slots=True)
class CustomerProjections:
    """What one customer's moments fold to."""

    relationship: Relationship
    transitions: list[Transition]
    reciprocity: Reciprocity
    amplifications: list[Amplification]  # of the customer's posts, reviews and mentions
    # The shares of those posts' cascades with the post each leads up to, when the reader
    # walked the trees (a rebuild stores them; see `FoldReader.cascades`).
    shares: list[tuple[Current, str]]
    person: PersonRow
    responses: list[Response] = field(default_factory=list)  # the customer's requests (§3.5)
    # The asks that made unanswered_asks reach the stop-asking line, found by the reciprocity
    # fold: what the stop_asking alert names (§3.6), without folding the balance again.
    stop_asks: list[Current] = field(default_factory=list)

    @property
    def key(self) -> CustomerKey:
        """The key of the person's rows: (tenant, person_id)."""
        return (self.person.tenant, self.person.customer_id)


NO_MEMBERS: Mapping[CustomerKey, Sequence[Member]] = {}


def project_customers(reader: FoldReader, moments: dict[CustomerKey, list[Current]],
                      members: Mapping[CustomerKey, Sequence[Member]] = NO_MEMBERS,
                      limits: PersonLimits = DEFAULT_LIMITS,
                      ) -> dict[CustomerKey, CustomerProjections]:
    """The projections of each person with moments, from their moments and what their
    posts reach.

    `moments` are keyed by person group (tenant, the smallest of the person's ids): every
    current moment of any of its ids. `members` holds each linked group's ids and their
    degrees; a group without is one id. The rows are keyed by the person_id, the smallest
    id with a moment (SPEC §2), under which the person's moments are folded as one
    customer's; the result stays keyed by group.
    """
    posts = [m for ms in moments.values() for m in ms if is_amplification(m)]
    targets = reader.moments_by_key({(p.tenant, p.in_reply_to) for p in posts if p.in_reply_to})
    cascades = reader.cascades(posts) if posts else {}
    make = Current._make
    out = {}
    for key, ms in moments.items():
        if not ms:
            continue
        ids = members.get(key)
        if ids:
            person = min(m.customer_id for m in ms)
            # Built as tuples: `_replace` costs several times as much, and a merge of large
            # persons renames thousands of moments.
            ms = [m if m.customer_id == person else make((*m[:2], person, *m[3:])) for m in ms]
            row = person_row(key[0], key[1], person, ids, limits)
        else:
            person = key[1]
            row = PersonRow(key[0], person, (person,), 1, 0, False, person)
        # Checked once here (the stores read them in fold order), not once in each fold.
        ordered = in_fold_order(ms)
        relationship, transitions = fold_relationship(ordered, row.customer_ids, ordered=True)
        private = [m for m in ms if m.direction != "public"]
        amplifications = []
        shares: list[tuple[Current, str]] = []
        for post in ms:
            if is_amplification(post):
                target = targets.get((post.tenant, post.in_reply_to)) if post.in_reply_to else None
                trigger = find_trigger(post, target, private)
                tree = cascades[post.moment_id]
                amplifications.append(build_amplification(post, trigger, tree.size, tree.reach))
                shares.extend((share, post.moment_id) for share in tree.shares)
        reciprocity, stop_asks = fold_reciprocity_and_stops(ordered, row.customer_ids,
                                                            ordered=True)
        out[key] = CustomerProjections(relationship, transitions, reciprocity, amplifications,
                                       shares, row,
                                       fold_responses(ordered, row.customer_id, ordered=True),
                                       stop_asks)
    return out


def walk_cascades(children: Callable[[Collection[MomentKey]], Iterable[Current]],
                  posts: Sequence[Current]) -> dict[str, Cascade]:
    """Each post's cascade, walking down the share trees a level at a time: `children(keys)`
    gives the current shares whose `shares` names one of those moments ((tenant, id); one
    read a level)."""
    below: dict[MomentKey, list[Current]] = defaultdict(list)
    frontier = {(post.tenant, post.moment_id) for post in posts}
    seen = set(frontier)
    while frontier:
        following: set[MomentKey] = set()
        for share in children(frontier):
            assert share.shares is not None
            below[(share.tenant, share.shares)].append(share)
            key = (share.tenant, share.moment_id)
            if key not in seen:
                seen.add(key)
                following.add(key)
        frontier = following
    empty: list[Current] = []
    out = {}
    for post in posts:
        def children_of(parent: str, tenant: str = post.tenant) -> list[Current]:
            return below.get((tenant, parent), empty)

        tree = share_tree(post, children_of)
        out[post.moment_id] = Cascade(len(tree),
                                      capped_reach(post.reach + sum(s.reach for s in tree)),
                                      tuple(tree))
    return out


class MomentsInMemory:
    """A `FoldReader` over a set of current moments held in memory (pure tests, `--as-of` of
    the golden fixture): what a store's reader answers, without a store."""

    def __init__(self, moments: Iterable[Current]) -> None:
        self.moments = list(moments)
        self.by_key = {(m.tenant, m.moment_id): m for m in self.moments}
        self.shares_of: dict[MomentKey, list[Current]] = defaultdict(list)
        for m in self.moments:
            if m.kind == "share" and m.shares is not None:
                self.shares_of[(m.tenant, m.shares)].append(m)

    def moments_by_key(self, keys: Collection[MomentKey]) -> dict[MomentKey, Current]:
        return {key: self.by_key[key] for key in keys if key in self.by_key}

    def children(self, parents: Collection[MomentKey]) -> list[Current]:
        return [m for parent in parents for m in self.shares_of.get(parent, [])]

    def cascades(self, posts: Sequence[Current]) -> dict[str, Cascade]:
        return walk_cascades(self.children, posts)

    def customers(self) -> dict[CustomerKey, list[Current]]:
        """Every customer's moments, by key."""
        out: dict[CustomerKey, list[Current]] = defaultdict(list)
        for m in self.moments:
            out[(m.tenant, m.customer_id)].append(m)
        return dict(sorted(out.items()))
