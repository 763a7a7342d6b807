"""`mot story --format text|markdown|json`: the same facts, each equal to what `mot query` says."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cli_support import mot, query


def test_story_json_and_markdown_hold_the_query_numbers(store_url: str, golden_path: Path) -> None:
    mot(store_url, "import", "-q", golden_path)
    facts = json.loads(mot(store_url, "story", "--format", "json", "--top", "2").stdout)
    rels, recips = query(store_url, "relationships"), query(store_url, "reciprocity")
    amps, listening = query(store_url, "amplifications"), query(store_url, "listening")
    assert [t["tenant"] for t in facts] == sorted({r["tenant"] for r in rels})
    for t in facts:
        name = t["tenant"]
        stages = Counter(r["stage"] for r in rels if r["tenant"] == name)
        assert t["customers"] == sum(stages.values())
        assert {s: n for s, n in t["stages"].items() if n} == dict(stages)
        assert t["detractors"] == stages["detractor"]
        statuses = Counter(r["status"] for r in recips if r["tenant"] == name)
        assert {s: n for s, n in t["reciprocity"].items() if n} == dict(statuses)
        mine = sorted((a for a in amps if a["tenant"] == name), key=lambda a: -a["cascade_reach"])
        assert [a["amplification_id"] for a in t["travelled_furthest"]] == [
            a["amplification_id"] for a in mine[:2]]
        share = next(r["listening_share"] for r in listening if r["tenant"] == name)
        assert t["listening_share"] == share and t["listens_enough"] == (share >= 0.5)
    markdown = mot(store_url, "story", "--format", "markdown", "--top", "2").stdout
    text = mot(store_url, "story", "--top", "2").stdout
    assert markdown.startswith("# What the projections say\n")
    for t in facts:
        assert f"\n## {t['tenant']}\n" in markdown
        customers = f"{t['customers']:,} customer{'s' if t['customers'] != 1 else ''}"
        assert f"**{customers}**" in markdown
        assert f"== {t['tenant']}: {customers}" in text
        for a in t["travelled_furthest"]:
            assert f"| {a['customer_id']} | {a['polarity']} | {a['cascade_reach']:,} |" in markdown
    acme = json.loads(mot(store_url, "story", "--format", "json", "--tenant", "acme").stdout)
    assert [t["tenant"] for t in acme] == ["acme"]
