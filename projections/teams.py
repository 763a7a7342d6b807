"""Team scoreboard and listening share, per tenant (SPEC §3.4).

Both are sums, so the engine keeps them incrementally: when a moment or an
amplification changes it subtracts the old contribution and adds the new one.
A rebuild (`scoreboard`) adds the same contributions from scratch, so the two
paths cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from mot.projections.amplification import Amplification, capped_reach
from mot.projections.model import Current
from mot.projections.reciprocity import asked_by, given_by
from mot.projections.relationship import is_private
from mot.projections.schema import LISTENING, TEAMS, record_maker

TeamKey = tuple[str, str]
"""(tenant, function)"""


@dataclass(frozen=True, slots=True)
class TeamRow:
    """One team's scoreboard row, and also what one moment or amplification adds to it (the
    same sums: a contribution is a row of one)."""

    tenant: str
    function: str
    moments: int = 0
    given: int = 0
    asked: int = 0
    amplifications: int = 0
    positive: int = 0
    negative: int = 0
    cascade_reach: int = 0

    def counters(self) -> tuple[int, ...]:
        return (self.moments, self.given, self.asked, self.amplifications, self.positive,
                self.negative, self.cascade_reach)

    def is_zero(self) -> bool:
        return not any(self.counters())

    def moved(self, delta: TeamRow, sign: int) -> TeamRow:
        """This row with `delta` added (sign 1) or taken away (sign -1); its cascade_reach at
        most the ceiling a sum of reach is kept at (`capped_reach`)."""
        return TeamRow(self.tenant, self.function,
                       self.moments + sign * delta.moments, self.given + sign * delta.given,
                       self.asked + sign * delta.asked,
                       self.amplifications + sign * delta.amplifications,
                       self.positive + sign * delta.positive,
                       self.negative + sign * delta.negative,
                       capped_reach(self.cascade_reach + sign * delta.cascade_reach))

    def as_record(self) -> dict[str, Any]:
        return _team_record(self)


TeamDelta = TeamRow
"""What one moment or one amplification adds to the row of (tenant, function)."""


@dataclass(frozen=True, slots=True)
class ListeningRow:
    """A tenant's listening counters: its moments, L (listening) and M (the brand talking);
    its listening share is None when it has moments but none private."""

    tenant: str
    moments: int
    listening: int
    other: int

    @property
    def listening_share(self) -> float | None:
        return listening_share(self.listening, self.other)

    def as_record(self) -> dict[str, Any]:
        return _listening_record(self)


_team_record = record_maker(TEAMS)
_listening_record = record_maker(LISTENING)


# --- contributions -----------------------------------------------------------------


def moment_contribution(m: Current) -> TeamRow | None:
    """What a private moment adds to its own function's row; None for public moments
    (those belong to the customer, not to a team)."""
    if not is_private(m):
        return None
    return TeamRow(m.tenant, m.function, moments=1, given=given_by(m), asked=asked_by(m))


def amplification_contribution(a: Amplification) -> TeamRow | None:
    """What an amplification adds to its trigger's function; None when unprompted
    (an unprompted post counts for no team)."""
    if a.trigger_function is None:
        return None
    return TeamRow(
        a.tenant,
        a.trigger_function,
        amplifications=1,
        positive=int(a.polarity == "positive"),
        negative=int(a.polarity == "negative"),
        cascade_reach=a.cascade_reach,
    )


CONTRIBUTION_FIELDS = ("tenant", "function", "direction", "kind", "ask_type")
"""What a moment's team and listening contributions depend on, and nothing else: a rebuild
adds up many moments by counting them per combination of these (`contribution_groups`)."""


def contribution_groups(moments: Iterable[Current]) -> list[tuple[Current, int]]:
    """Moments grouped by CONTRIBUTION_FIELDS: (a moment of the group, its size) for each.

    The moment stands for its whole group in `moment_contribution` and
    `listening_contribution`; counting is C work, so a rebuild calls those once per
    group instead of once per moment.
    """
    counts = Counter(map(attrgetter(*CONTRIBUTION_FIELDS), moments))
    return [(Current("", tenant, "", 0, direction, kind, function, "", None, ask_type, None, 0,
                     None, None), count)
            for (tenant, function, direction, kind, ask_type), count in counts.items()]


def listening_contribution(m: Current) -> tuple[int, int]:
    """`(L, M)` increments: listening is inbound moments and outbound questions;
    every other outbound moment is the brand talking. Public moments are neither."""
    if m.direction == "inbound" or (m.direction == "outbound" and m.kind == "question"):
        return 1, 0
    if m.direction == "outbound":
        return 0, 1
    return 0, 0


def count_listening(counts: list[int], m: Current, times: int) -> None:
    """Add `m`, `times` times (-1: take it away), to a tenant's `[moments, L, M]`."""
    listening, talking = listening_contribution(m)
    counts[0] += times
    counts[1] += times * listening
    counts[2] += times * talking


def listening_share(listening: int, talking: int) -> float | None:
    """`L / (L + M)`, or None when both are 0."""
    total = listening + talking
    return None if total == 0 else listening / total


# --- accumulators ------------------------------------------------------------------


class TeamTotals:
    """The scoreboard as running sums keyed by (tenant, function)."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: dict[TeamKey, TeamRow] = {}

    def add(self, delta: TeamRow | None) -> None:
        """Add a contribution (None, as returned for public or unprompted, is nothing)."""
        self._move(delta, 1)

    def subtract(self, delta: TeamRow | None) -> None:
        """Take back a contribution added before (the old version of a changed moment)."""
        self._move(delta, -1)

    def _move(self, delta: TeamRow | None, sign: int) -> None:
        if delta is None:
            return
        key = (delta.tenant, delta.function)
        row = self.get(*key).moved(delta, sign)
        if row.is_zero():
            del self._rows[key]  # keep the dict as small as the scoreboard
        else:
            self._rows[key] = row

    def get(self, tenant: str, function: str) -> TeamRow:
        """The row of one team (all zeros when it has none)."""
        return self._rows.get((tenant, function)) or TeamRow(tenant, function)

    def rows(self) -> list[TeamRow]:
        """The non-zero rows, by tenant and function."""
        return [self._rows[key] for key in sorted(self._rows)]


class ListeningTotals:
    """Per tenant: how many moments, and the L and M of the listening share."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        # tenant -> [moments, L, M]
        self._counts: dict[str, list[int]] = {}

    def add(self, m: Current) -> None:
        self._move(m, 1)

    def subtract(self, m: Current) -> None:
        self._move(m, -1)

    def _move(self, m: Current, sign: int) -> None:
        counts = self._counts.setdefault(m.tenant, [0, 0, 0])
        count_listening(counts, m, sign)
        if counts[0] == 0:
            del self._counts[m.tenant]

    def rows(self) -> list[ListeningRow]:
        """One row per tenant with at least one moment, by tenant."""
        return [
            ListeningRow(tenant, *counts) for tenant, counts in sorted(self._counts.items())
        ]


@dataclass(frozen=True, slots=True)
class Scoreboard:
    teams: tuple[TeamRow, ...]
    listening: tuple[ListeningRow, ...]


def scoreboard(moments: Iterable[Current], amplifications: Iterable[Amplification]) -> Scoreboard:
    """The team scoreboard and listening shares from scratch (rebuilds, as-of queries).

    `moments` are all current moments (every tenant, every direction) and
    `amplifications` every amplification built from them.
    """
    teams = TeamTotals()
    listening = ListeningTotals()
    for m in moments:
        teams.add(moment_contribution(m))
        listening.add(m)
    for a in amplifications:
        teams.add(amplification_contribution(a))
    return Scoreboard(tuple(teams.rows()), tuple(listening.rows()))
