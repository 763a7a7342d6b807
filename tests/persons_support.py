"""Feeding the persons fixture (links and unlinks among moments) to a projection engine:
lines recorded one by one on an in-memory ledger, which any projection store can follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from mot.adapters.stores.memory import MemoryLedger
from mot.service.ledger import Incoming, LedgerService

SECTIONS = ("relationships", "reciprocity", "transitions", "amplifications", "teams",
            "listening", "persons")
"""The fixture's sections this engine answers (responses are another projection's)."""

KEYS = {"relationships": ("tenant", "customer_id"), "reciprocity": ("tenant", "customer_id"),
        "transitions": ("tenant", "customer_id", "occurred_at", "moment_id"),
        "amplifications": ("tenant", "amplification_id"), "teams": ("tenant", "function"),
        "listening": ("tenant",), "persons": ("tenant", "customer_id")}


class LinkFeeder:
    """Records lines on an in-memory ledger through the ledger service, one at a time in
    their order: moments, corrections, links and unlinks alike."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self.ledger = ledger
        self.service = LedgerService(ledger)

    def record(self, lines: list[dict[str, Any]]) -> None:
        for n, line in enumerate(lines):
            self.service.record([Incoming(orjson.dumps(line), f"test:{n}")])


def fixture_lines(path: Path) -> list[dict[str, Any]]:
    """The fixture's lines, each correction moved after the moment it names (the ledger's
    waiting corrections do that on their own)."""
    from mot.domain.identity import derived_moment_id

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    out: list[dict[str, Any]] = []
    waiting: dict[str, list[dict[str, Any]]] = {}
    recorded: set[str] = set()
    for line in lines:
        if line.get("type") in ("amend", "retract") and line["moment_id"] not in recorded:
            waiting.setdefault(line["moment_id"], []).append(line)
            continue
        out.append(line)
        if "customer_id" in line and "source" in line:
            moment_id = derived_moment_id(line.get("tenant", "default"), line["source"]["system"],
                                          line["source"]["id"])
            recorded.add(moment_id)
            out.extend(waiting.pop(moment_id, []))
    return out


def keyed(name: str, records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[k] for k in KEYS[name]): r for r in records}


def expected_sections(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The fixture's expected records of `SECTIONS`; team rows whose counters are all 0 may be
    left out (SPEC §3.4), and are."""
    expected = json.loads(path.read_text(encoding="utf-8"))
    out = {name: expected[name] for name in SECTIONS}
    out["teams"] = [r for r in out["teams"]
                    if any(v for k, v in r.items() if k not in ("tenant", "function"))]
    return out


def assert_expected(views: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Every expected record of `SECTIONS` (persons.expected.json at `path`) is in `views`,
    with every expected field equal, and no other key."""
    expected = expected_sections(path)
    for name in SECTIONS:
        got, wanted = keyed(name, views[name]), keyed(name, expected[name])
        assert sorted(got) == sorted(wanted), name
        for key, record in wanted.items():
            assert {f: got[key].get(f, "<missing>") for f in record} == record, (name, key)
