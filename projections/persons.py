"""Persons: the connected components of a tenant's linked pairs (SPEC §2, "Links").

A person is a set of customer ids of one tenant connected by pairs whose state
is linked; an id in no linked pair is a person by itself. Its `person_id` is
the smallest (code-point order) of its ids that has a current moment; a person
with no current moment has no projection rows. Pure: the engine decides which
pairs and ids to pass in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Person:
    """One person of a tenant: every id, in code-point order, and the id that keys its rows."""

    tenant: str
    customer_ids: tuple[str, ...]
    person_id: str | None  # None: no id has a current moment, so no projection rows


def components(ids: Iterable[str], linked_pairs: Iterable[tuple[str, str]]) -> list[frozenset[str]]:
    """The connected components of the graph whose edges are the linked pairs.

    Every id of `ids` and of the pairs is in exactly one component; the result is
    ordered by each component's smallest id, so it does not depend on input order.
    """
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps later finds short
            x = parent[x]
        return x

    for i in ids:
        root(i)
    for a, b in linked_pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            # The smaller id becomes the root, so each root is its component's minimum.
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, set[str]] = {}
    for i in parent:
        groups.setdefault(root(i), set()).add(i)
    return [frozenset(groups[r]) for r in sorted(groups)]


def person_id(customer_ids: Iterable[str], has_moment: Callable[[str], bool]) -> str | None:
    """The smallest id (code-point order) that has a current moment; None when none has."""
    return min((i for i in customer_ids if has_moment(i)), default=None)


def persons(tenant: str, ids: Iterable[str], linked_pairs: Iterable[tuple[str, str]],
            has_moment: Callable[[str], bool]) -> list[Person]:
    """Every person of a tenant that the given ids and linked pairs make up."""
    return [
        Person(tenant, tuple(sorted(c)), person_id(c, has_moment))
        for c in components(ids, linked_pairs)
    ]


MAX_IDS = 50
"""Merge protection (issue 15): a person with more ids than this is suspect."""
MAX_EMAIL_LINKS = 10
"""... and so is one whose `email:` id is linked to more ids than this (`support@…`)."""


@dataclass(frozen=True, slots=True)
class PersonRow:
    """A person's row of the `persons` projection (one per person with a current moment)."""

    tenant: str
    customer_id: str  # the person_id
    customer_ids: tuple[str, ...]
    ids: int  # how many
    email_links: int  # the most ids one `email:` id of the person is linked to (0: none)
    suspect: bool  # `is_suspect` with the tenant's limits (`PersonLimits`)
    group_id: str  # the smallest id, with or without moments: how an id finds its person


Member = tuple[str, int]
"""(customer_id, degree: how many ids it is linked to) of an id in a linked component."""


@dataclass(frozen=True, slots=True)
class PersonLimits:
    """Merge protection's limits (mot.toml `[persons]`, a tenant's own in
    `[tenants.NAME.persons]`): what makes a person suspect."""

    max_ids: int = MAX_IDS
    max_email_links: int = MAX_EMAIL_LINKS
    # (tenant, max_ids or None, max_email_links or None): a tenant's own, None where it keeps
    # the default
    tenants: tuple[tuple[str, int | None, int | None], ...] = ()

    def of(self, tenant: str) -> tuple[int, int]:
        """(max_ids, max_email_links) for `tenant`."""
        for name, ids, emails in self.tenants:
            if name == tenant:
                return (self.max_ids if ids is None else ids,
                        self.max_email_links if emails is None else emails)
        return self.max_ids, self.max_email_links


DEFAULT_LIMITS: Final = PersonLimits()


def person_row(tenant: str, group: str, person: str, members: Sequence[Member],
               limits: PersonLimits = DEFAULT_LIMITS) -> PersonRow:
    """The row of a person from its ids and their degrees."""
    ids = sorted(i for i, _ in members) or [group]
    email = max((degree for i, degree in members if i.startswith("email:")), default=0)
    max_ids, max_email_links = limits.of(tenant)
    return PersonRow(tenant, person, tuple(ids), len(ids), email,
                     is_suspect(len(ids), email, max_ids=max_ids, max_email_links=max_email_links),
                     group)


def is_suspect(ids: int, email_links: int, *, max_ids: int = MAX_IDS,
               max_email_links: int = MAX_EMAIL_LINKS) -> bool:
    """Merge protection, reported not hidden: too many ids, or an `email:` id linked to too
    many (the SPEC's person rule itself stays as it is)."""
    return ids > max_ids or email_links > max_email_links


def groups(linked_pairs: Iterable[tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """Each id of a linked pair: its group (its component's smallest id) and its degree.

    Ids in no linked pair are their own group and appear nowhere here.
    """
    pairs = list(linked_pairs)
    degree: dict[str, int] = {}
    for a, b in pairs:
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
    out: dict[str, tuple[str, int]] = {}
    for component in components((), pairs):
        group = min(component)
        for i in component:
            out[i] = (group, degree[i])
    return out
