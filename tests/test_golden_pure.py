"""The pure projections reproduce shared/fixtures/golden.expected.json exactly.

No store and no engine: the golden lines go through the domain's parser and
corrections, the current moments through the projection functions.
"""

from __future__ import annotations

import json
import random
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
from mot.projections.folding import MomentsInMemory, project_customers
from mot.projections.model import Current, current_of
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
    return current_of(dict(m))


def project(moments: Sequence[Current]) -> dict[str, list[Record]]:
    """Every projection of SPEC §3, as `mot query NAME --format json` would list it, through
    the one fold orchestration with the moments held in memory."""
    reader = MomentsInMemory(moments)
    folded = project_customers(reader, reader.customers())
    amplifications = [a for f in folded.values() for a in f.amplifications]
    board = scoreboard(moments, amplifications)
    return {
        "relationships": [f.relationship.as_record() for f in folded.values()],
        "reciprocity": [f.reciprocity.as_record() for f in folded.values()],
        "transitions": sorted(
            (t.as_record() for f in folded.values() for t in f.transitions),
            key=lambda t: (t["tenant"], t["customer_id"], t["occurred_at"]),
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
    # SPEC §3: relationships and reciprocity carry the person's ids; the golden fixture has
    # no links, so each is the customer's own (the fixture predates the field).
    for name in ("relationships", "reciprocity"):
        data[name] = [r | {"customer_ids": [r["customer_id"]]} for r in data[name]]
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
