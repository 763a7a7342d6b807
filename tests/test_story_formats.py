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


def test_story_markdown_shows_ids_literally(tmp_path: Path) -> None:
    """A customer id (what a customer or a vendor sent) went into the Markdown story as it
    was: a `|` split its table row, `<img ...>` became HTML where the page is rendered, and
    an escape sequence reached the terminal of whoever ran `mot story --format markdown`.
    Ids and tenants are now shown literally: markup escaped, controls written \\x1b."""
    store = str(tmp_path / "mot.db")
    evil = "a|b<img src=x onerror=alert(1)>\x1b[2J"
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({
        "tenant": "acme*", "customer_id": evil, "occurred_at": "2026-06-01T09:30:00Z",
        "channel": "twitter", "direction": "public", "kind": "post", "sentiment": -0.9,
        "reach": 50, "source": {"system": "s", "id": "1"}}) + "\n", encoding="utf-8")
    mot(store, "import", "-q", path)
    markdown = mot(store, "story", "--format", "markdown").stdout
    assert "\x1b" not in markdown and "b<img" not in markdown, markdown
    assert "## acme\\*\n" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| a"))
    assert row == ("| a\\|b\\<img src=x onerror=alert\\(1\\)\\>\\\\x1b\\[2J | negative | 50 | 0 |"
                   " unprompted |"), row


def test_story_text_fits_the_terminal(store_url: str, golden_path: Path) -> None:
    """At COLUMNS=80, `mot story` wrote lines of up to 120 characters (a tenant's detractors,
    a post that travelled far) which a terminal broke mid-word; it fits them to the width as
    `mot query`'s tables are fitted, each continuation indented under its line, and loses no
    word. Piped without $COLUMNS, each fact stays one line, for grep."""
    mot(store_url, "import", "-q", golden_path)
    whole = mot(store_url, "story", env={"COLUMNS": ""}).stdout.splitlines()
    assert max(map(len, whole)) > 80
    fitted = mot(store_url, "story", env={"COLUMNS": "80"}).stdout.splitlines()
    assert max(map(len, fitted)) <= 80, fitted
    assert " ".join(fitted).split() == " ".join(whole).split()
    # Each fact still begins a line, with its own indent; a continuation is indented deeper.
    def start(line: str) -> tuple[int, list[str]]:
        return len(line) - len(line.lstrip(" ")), line.split()[:2]

    starts = [start(line) for line in whole]
    assert [start(line) for line in fitted if start(line) in starts] == starts
    assert len(fitted) > len(whole)
