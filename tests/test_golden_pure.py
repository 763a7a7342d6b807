"""The pure projections reproduce shared/fixtures/golden.expected.json exactly.

No store and no engine: the golden lines go through the domain's parser and
corrections, the current moments through the projection functions.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mot.domain.messages import (
    AmendMoment,
    Moment,
    RecordMoment,
    Rejection,
    RetractMoment,
    amended,
    parse_message,
)
from mot.domain.timefmt import parse_utc, to_micros
from mot.projections.amplification import (
    Amplification,
    build_amplification,
    cascade,
    find_trigger,
    is_amplification,
)
from mot.projections.model import Current, CustomerKey
from mot.projections.reciprocity import fold_reciprocity
from mot.projections.relationship import fold_relationship
from mot.projections.teams import scoreboard

# The repository is /work/main locally and a fresh clone in CI; shared/ sits beside it.
SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
# Recorded well after the latest golden moment, so the 24-hour rule rejects none.
NOW = datetime(2026, 4, 1, tzinfo=UTC)

Record = dict[str, Any]


def current_moments() -> list[Current]:
    """The golden moments after amendments, retractions and the duplicate."""
    first_recorded: dict[str, Moment] = {}
    current: dict[str, Moment] = {}
    for number, line in enumerate((FIXTURES / "golden.jsonl").read_bytes().splitlines(), 1):
        message = parse_message(line, NOW)
        if isinstance(message, Rejection):
            pytest.fail(f"golden line {number} rejected: {message.reason}")
        if isinstance(message, RecordMoment):
            if message.moment_id in first_recorded:
                # A duplicate is accepted and changes nothing; a conflict would be rejected.
                same = first_recorded[message.moment_id] == message.moment
                assert same, f"golden line {number} conflicts with an earlier moment"
                continue
            first_recorded[message.moment_id] = message.moment
            current[message.moment_id] = message.moment
        elif isinstance(message, AmendMoment):
            current[message.moment_id] = amended(current[message.moment_id], message.set, NOW)
        elif isinstance(message, RetractMoment):
            del current[message.moment_id]
    return [to_current(m) for m in current.values()]


def to_current(m: Moment) -> Current:
    return Current(
        moment_id=m["moment_id"],
        tenant=m["tenant"],
        customer_id=m["customer_id"],
        occurred_us=to_micros(parse_utc(m["occurred_at"])),
        direction=m["direction"],
        kind=m["kind"],
        function=m["function"],
        channel=m["channel"],
        actor=m.get("actor"),
        ask_type=m.get("ask_type"),
        sentiment=m.get("sentiment"),
        reach=m["reach"],
        in_reply_to=m.get("in_reply_to"),
        shares=m.get("shares"),
    )


def project(moments: Sequence[Current]) -> dict[str, list[Record]]:
    """Every projection of SPEC §3, as `mot query NAME --format json` would list it."""
    by_customer: dict[CustomerKey, list[Current]] = defaultdict(list)
    by_id = {m.moment_id: m for m in moments}
    shares_of: dict[str, list[Current]] = defaultdict(list)
    for m in moments:
        by_customer[(m.tenant, m.customer_id)].append(m)
        if m.direction == "public" and m.kind == "share" and m.shares is not None:
            shares_of[m.shares].append(m)

    relationships: list[Record] = []
    transitions: list[Record] = []
    reciprocity: list[Record] = []
    for key in sorted(by_customer):
        relationship, changes = fold_relationship(by_customer[key])
        relationships.append(relationship.as_record())
        transitions.extend(t.as_record() for t in changes)
        reciprocity.append(fold_reciprocity(by_customer[key]).as_record())

    amplifications: list[Amplification] = []
    for post in filter(is_amplification, moments):
        reply_target = by_id.get(post.in_reply_to) if post.in_reply_to else None
        trigger = find_trigger(post, reply_target, by_customer[(post.tenant, post.customer_id)])
        size, reach = cascade(post, lambda moment_id: shares_of.get(moment_id, []))
        amplifications.append(build_amplification(post, trigger, size, reach))

    board = scoreboard(moments, amplifications)
    return {
        "relationships": relationships,
        "reciprocity": reciprocity,
        "transitions": sorted(
            transitions, key=lambda t: (t["tenant"], t["customer_id"], t["occurred_at"])
        ),
        "amplifications": sorted(
            (a.as_record() for a in amplifications), key=lambda a: a["amplification_id"]
        ),
        "teams": [row.as_record() for row in board.teams],
        "listening": [row.as_record() for row in board.listening],
    }


@pytest.fixture(scope="module")
def expected() -> dict[str, list[Record]]:
    data: dict[str, list[Record]] = json.loads((FIXTURES / "golden.expected.json").read_text())
    return data


@pytest.fixture(scope="module")
def moments() -> list[Current]:
    return current_moments()


@pytest.mark.parametrize(
    "name", ["relationships", "reciprocity", "transitions", "amplifications", "teams", "listening"]
)
def test_golden_projection(
    name: str, moments: list[Current], expected: dict[str, list[Record]]
) -> None:
    assert project(moments)[name] == expected[name]


def test_golden_covers_every_section(expected: dict[str, list[Record]]) -> None:
    assert set(expected) == {
        "relationships", "reciprocity", "transitions", "amplifications", "teams", "listening",
    }


def test_golden_is_independent_of_arrival_order(
    moments: list[Current], expected: dict[str, list[Record]]
) -> None:
    shuffled = moments[:]
    for seed in range(10):
        random.Random(seed).shuffle(shuffled)
        assert project(shuffled) == expected
