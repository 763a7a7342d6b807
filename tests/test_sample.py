"""The sample generator: deterministic, exact, valid wire format, realistic enough, flat memory."""

from __future__ import annotations

import tracemalloc
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from mot.adapters.sources.sample import generate, generate_lines, main
from mot.domain.identity import derived_moment_id
from mot.domain.messages import (
    AmendMoment,
    RecordMoment,
    Rejection,
    RetractMoment,
    parse_message,
)
from mot.domain.vocabulary import KINDS_BY_DIRECTION

NOW = datetime(2026, 11, 25, tzinfo=UTC)
START = "2026-01-01T00:00:00Z"
N = 10_000


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(generate_lines(N))


@pytest.fixture(scope="module")
def parsed(lines: list[bytes]) -> list[RecordMoment | AmendMoment | RetractMoment | Rejection]:
    return [parse_message(line, NOW) for line in lines]


@pytest.fixture(scope="module")
def records(parsed: list[Any]) -> list[dict[str, Any]]:
    return [p.moment for p in parsed if isinstance(p, RecordMoment)]


def test_same_seed_gives_the_same_bytes() -> None:
    first = b"".join(generate_lines(3000, seed=11, bad_lines=True))
    assert first == b"".join(generate_lines(3000, seed=11, bad_lines=True))
    assert first != b"".join(generate_lines(3000, seed=12, bad_lines=True))


def test_lines_are_the_encoded_dicts() -> None:
    encoded = [orjson.dumps(m) + b"\n" for m in generate(2000, seed=3)]
    assert encoded == list(generate_lines(2000, seed=3))


@pytest.mark.parametrize(
    ("n", "options"),
    [
        (0, {}),
        (1, {}),
        (7, {}),
        (999, {"bad_lines": True}),
        (2500, {"corrections": False}),
        (1000, {"customers": 1}),
        (1000, {"customers": 900, "tenants": ("a", "b", "c")}),
        (500, {"start": datetime(2026, 11, 1, tzinfo=UTC)}),
    ],
)
def test_exact_count(n: int, options: dict[str, Any]) -> None:
    assert sum(1 for _ in generate_lines(n, **options)) == n
    assert sum(1 for _ in generate(n, **options)) == n


def test_every_line_is_a_valid_message(lines: list[bytes], parsed: list[Any]) -> None:
    assert len(lines) == N
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    rejected = [(ln, p) for ln, p in zip(lines, parsed, strict=True) if isinstance(p, Rejection)]
    assert rejected == []
    kinds = Counter(type(p) for p in parsed)
    assert set(kinds) == {RecordMoment, AmendMoment, RetractMoment}


def test_moments_are_sourced_and_within_the_year(lines: list[bytes], records: list[Any]) -> None:
    for line, moment in zip((ln for ln in lines if b'"type"' not in ln), records, strict=False):
        wire = orjson.loads(line)
        assert "moment_id" not in wire and set(wire["source"]) == {"system", "id"}
        assert wire["occurred_at"].endswith("Z")
        assert moment["moment_id"] == derived_moment_id(
            wire["tenant"], wire["source"]["system"], wire["source"]["id"])
        for field in ("in_reply_to", "shares"):
            if field in wire:
                assert set(wire[field]) == {"system", "id"}
    times = [m["occurred_at"] for m in records]
    assert min(times) >= START
    assert max(times) <= "2026-11-25T00:00:00Z"
    assert max(times) >= "2026-09-01"  # the set spreads over the year
    systems = {m["source"]["system"] for m in records}
    assert {"zendesk", "hubspot", "shop", "listening", "intercom"} <= systems


def test_all_tenants_directions_and_kinds_appear(records: list[Any]) -> None:
    assert {m["tenant"] for m in records} == {"acme", "globex"}
    seen = {(m["direction"], m["kind"]) for m in records}
    expected = {(d, k) for d, kinds in KINDS_BY_DIRECTION.items() for k in kinds}
    assert expected <= seen
    assert {m["ask_type"] for m in records if m["kind"] == "ask"} >= {
        "purchase", "review", "share", "referral", "like", "survey", "meeting"}
    functions = {m["function"] for m in records if m["direction"] != "public"}
    assert {"service", "product", "logistics", "hr", "sales", "marketing"} <= functions
    purchases = [m for m in records if m["kind"] == "purchase"]
    assert all(m["value"] > 0 and m["currency"] in {"EUR", "USD"} for m in purchases)
    customers = {(m["tenant"], m["customer_id"]) for m in records}
    assert N / 16 < len(customers) < N / 10


def test_references_point_to_earlier_moments(records: list[Any]) -> None:
    earlier: dict[str, dict[str, Any]] = {}
    shares = replies = 0
    for m in records:
        target_id = m.get("shares")
        if target_id is not None:
            target = earlier[target_id]
            assert target["tenant"] == m["tenant"]
            assert target["direction"] == "public"
            assert target["kind"] in ("post", "review", "mention", "share")
            assert target["occurred_at"] <= m["occurred_at"]
            shares += 1
        reply_to = m.get("in_reply_to")
        if reply_to is not None:
            assert earlier[reply_to]["occurred_at"] <= m["occurred_at"]
            replies += 1
        earlier.setdefault(m["moment_id"], m)
    assert shares > N / 50 and replies > N / 10
    share_of_share = sum(1 for m in records if m["kind"] == "share"
                         and earlier[m["shares"]]["kind"] == "share")
    assert share_of_share > 0


def test_cascades_and_reach_are_heavy_tailed(records: list[Any]) -> None:
    by_id = {m["moment_id"]: m for m in records}
    cascade: Counter[str] = Counter()
    for m in records:
        if m["kind"] == "share":
            root = m
            while root["kind"] == "share":
                root = by_id[root["shares"]]
            cascade[root["moment_id"]] += 1
    sizes = sorted(cascade.values())
    assert sizes[len(sizes) // 2] <= 2 and sizes[-1] >= 15
    reach = sorted(m["reach"] for m in records if m["direction"] == "public" and m["reach"])
    assert reach[-1] > 50 * reach[len(reach) // 2]


def test_corrections_and_duplicates(lines: list[bytes], parsed: list[Any]) -> None:
    seen_ids: set[str] = set()
    seen_lines: set[bytes] = set()
    amends = retracts = duplicates = 0
    retracted: set[str] = set()
    for line, p in zip(lines, parsed, strict=True):
        if isinstance(p, AmendMoment | RetractMoment):
            assert p.moment_id in seen_ids  # placed after the moment it corrects
            assert p.moment_id not in retracted
            if isinstance(p, AmendMoment):
                amends += 1
            else:
                retracts += 1
                retracted.add(p.moment_id)
        elif line in seen_lines:
            duplicates += 1
        else:
            seen_ids.add(p.moment_id)
            seen_lines.add(line)
    assert 0.006 * N < amends < 0.014 * N
    assert 0.0008 * N < retracts < 0.004 * N
    assert 0.002 * N < duplicates < 0.008 * N
    none = [orjson.loads(line) for line in generate_lines(3000, corrections=False)]
    assert all("type" not in m for m in none)
    ids = [(m["tenant"], m["source"]["system"], m["source"]["id"]) for m in none]
    assert len(set(ids)) == len(ids)


def test_corrections_and_bad_lines_leave_the_stories_alone() -> None:
    plain = list(generate_lines(3000, corrections=False))
    noisy = list(generate_lines(3000, corrections=True, bad_lines=True))
    stories: list[bytes] = []
    seen: set[bytes] = set()
    for line in noisy:
        try:
            wire = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a truncated bad line
        if "type" in wire or "X" in wire.get("source", {}).get("id", "X") or line in seen:
            continue  # a correction, a bad line (numbered apart) or a duplicate
        stories.append(line)
        seen.add(line)
    assert len(stories) > 2900
    assert stories == plain[: len(stories)]


def test_bad_lines_are_rejected_for_many_reasons() -> None:
    n = 10_000
    results = [parse_message(line, NOW) for line in generate_lines(n, bad_lines=True)]
    rejections = [r for r in results if isinstance(r, Rejection)]
    assert 0.002 * n < len(rejections) < 0.008 * n
    reasons = " | ".join(r.reason for r in rejections)
    for expected in ("not valid JSON", "unknown field", "is not a kind of direction",
                     "less than or equal to 1", "offset"):
        assert expected in reasons
    good = {r.moment_id for r in results if isinstance(r, RecordMoment)}
    assert any(isinstance(r, AmendMoment) and r.moment_id not in good for r in results)


def test_the_brands_differ(records: list[Any]) -> None:
    def listening_share(tenant: str) -> float:
        mine = [m for m in records if m["tenant"] == tenant and m["direction"] != "public"]
        listening = sum(1 for m in mine if m["direction"] == "inbound" or m["kind"] == "question")
        return listening / len(mine)

    def negative_posts(tenant: str) -> int:
        return sum(1 for m in records if m["tenant"] == tenant and m["direction"] == "public"
                   and m["kind"] in ("post", "review", "mention") and m.get("sentiment", 0) <= -0.3)

    def asks(tenant: str) -> int:
        return sum(1 for m in records if m["tenant"] == tenant and m["kind"] == "ask")

    assert listening_share("acme") >= 0.45 > listening_share("globex")
    assert negative_posts("globex") > 3 * negative_posts("acme")
    assert asks("globex") > 2 * asks("acme")


def test_memory_stays_flat() -> None:
    # 200,000 moments under tracemalloc; the deque drains the generator without keeping items.
    tracemalloc.start()
    try:
        deque(generate(200_000), maxlen=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024


def test_command_line(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["300", "--seed", "5", "--bad-lines"]) == 0
    out = capsysbinary.readouterr().out
    assert out == b"".join(generate_lines(300, seed=5, bad_lines=True))
