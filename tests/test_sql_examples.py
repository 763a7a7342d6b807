"""The SQL for analysts of docs/analysis.md, run as it stands on both stores, against `mot query`.

The examples are read out of docs/analysis.md (every ```sql block of its "SQL for
analysts" section), so the documentation cannot drift from what runs. Each
answer is checked against the same numbers worked out from `mot query` and the
exported current moments.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from cli_support import mot, query

from mot.bootstrap import open_store

ANALYSIS = Path(__file__).resolve().parents[1] / "docs" / "analysis.md"

PURCHASES = [  # priced purchases, so revenue has something to add up
    {"tenant": "acme", "customer_id": c, "occurred_at": f"2026-02-0{d}T10:00:00Z",
     "channel": "web", "direction": "inbound", "kind": "purchase", "function": "sales",
     "value": v, "currency": "EUR", "source": {"system": "sql-test", "id": f"p{d}"},
     "attributes": {"plan": "pro" if d % 2 else "basic"}}
    for c, d, v in (("c1", 1, 120.5), ("c2", 2, 80), ("c3", 3, 19.99), ("c1", 4, 10))
] + [  # two asks nobody answered: a customer to stop asking
    {"tenant": "globex", "customer_id": "g-asked", "occurred_at": f"2026-02-1{d}T10:00:00Z",
     "channel": "email", "direction": "outbound", "kind": "ask", "function": "sales",
     "ask_type": "purchase", "source": {"system": "sql-test", "id": f"a{d}"}} for d in (1, 2)
]


def examples() -> list[str]:
    text = ANALYSIS.read_text(encoding="utf-8")
    section = text[text.index("## SQL for analysts"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)






def run_sql(store: str, statement: str) -> list[tuple[Any, ...]]:
    with open_store(store) as services, services.backend.read() as tx:
        return tx.query(statement)


def test_the_readme_sql_examples_answer_as_mot_query_does(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    sql = examples()
    assert len(sql) == 5
    extra = tmp_path / "purchases.jsonl"
    extra.write_text("".join(json.dumps(p) + "\n" for p in PURCHASES))
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "import", "-q", extra)
    mot(store_url, "export", "--format", "jsonl", "--out", tmp_path / "x", "-q")
    moments = [json.loads(line) for line in (tmp_path / "x" / "moments.jsonl").read_text()
               .splitlines()]
    rels = {(r["tenant"], r["customer_id"]): r for r in query(store_url, "relationships")}
    amps = query(store_url, "amplifications")
    recips = query(store_url, "reciprocity")

    # 1. Revenue per stage.
    revenue: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in moments:
        if m["kind"] == "purchase" and m["value"] is not None:
            revenue[(rels[(m["tenant"], m["customer_id"])]["stage"], m["currency"])].append(
                m["value"])
    got = run_sql(store_url, sql[0])
    assert got and {(stage, cur): (n, total) for stage, cur, n, total in got} == {
        key: (len(v), sum(v)) for key, v in revenue.items()}
    assert [row[3] for row in got] == sorted((row[3] for row in got), reverse=True)

    # 2. Detractors by triggering team.
    by_team: dict[str, set[str]] = defaultdict(set)
    reach: Counter[str] = Counter()
    for a in amps:
        if (rels[(a["tenant"], a["customer_id"])]["stage"] == "detractor"
                and a["polarity"] == "negative" and a["trigger_function"]):
            by_team[a["trigger_function"]].add(a["customer_id"])
            reach[a["trigger_function"]] += a["cascade_reach"]
    got = run_sql(store_url, sql[1])
    assert got and [(t, n, r) for t, n, r in got] == sorted(
        ((t, len(c), reach[t]) for t, c in by_team.items()), key=lambda x: (-x[1], x[0]))

    # 3. Who to stop asking, with their last ask.
    asks: dict[tuple[str, str], str] = {}
    for m in moments:
        if m["kind"] == "ask":
            key = (m["tenant"], m["customer_id"])
            asks[key] = max(asks.get(key, ""), m["occurred_at"])
    stop = [r for r in recips if r["status"] == "stop_asking"]
    got = run_sql(store_url, sql[2])
    assert got and [tuple(row) for row in got] == sorted(
        ((r["tenant"], r["customer_id"], r["unanswered_asks"],
          asks[(r["tenant"], r["customer_id"])]) for r in stop),
        key=lambda x: (-x[2], x[0], x[1]))

    # 4. Lapsed customers per stage, as of now (the view's lapsed is mot query's).
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (tenant, _), r in rels.items():
        expected[(tenant, r["stage"])][0] += 1
        expected[(tenant, r["stage"])][1] += r["lapsed"]
    got = run_sql(store_url, sql[3])
    assert [(t, s, n, int(lapsed)) for t, s, n, lapsed in got] == [
        (t, s, n, lapsed) for (t, s), (n, lapsed) in sorted(expected.items())]
    assert any(lapsed for *_, lapsed in got)

    # 5. How fast each team's moments go public.
    delays: dict[str, list[int]] = defaultdict(list)
    team_reach: Counter[str] = Counter()
    for a in amps:
        if a["trigger_moment_id"]:
            delays[a["trigger_function"]].append(a["delay_seconds"])
            team_reach[a["trigger_function"]] += a["cascade_reach"]
    got = run_sql(store_url, sql[4])
    assert got and [(t, n) for t, n, _, _ in got] == sorted(
        ((t, len(d)) for t, d in delays.items()), key=lambda x: (-x[1], x[0]))
    for team, n, hours, total in got:
        assert abs(float(hours) - sum(delays[team]) / n / 3600) < 1e-9
        assert total == team_reach[team]


def test_the_views_survive_a_rebuild_and_the_moments_table_keeps_attributes(
    store_url: str, golden_path: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "purchases.jsonl"
    extra.write_text("".join(json.dumps(p) + "\n" for p in PURCHASES))
    mot(store_url, "import", "-q", golden_path)
    mot(store_url, "import", "-q", extra)
    mot(store_url, "replay")  # the swap drops and makes the views again
    mot(store_url, "replay")
    kind = "sqlite" if "://" not in store_url else "postgresql"
    plan = ("json_extract(attributes, '$.plan')" if kind == "sqlite"
            else "attributes->>'plan'")
    got = run_sql(store_url, f"SELECT {plan}, SUM(value) FROM moments WHERE attributes IS NOT"
                             " NULL GROUP BY 1 ORDER BY 1")
    assert [(p, float(v)) for p, v in got] == [("basic", 90.0), ("pro", 140.49)]
    views = run_sql(store_url, "SELECT COUNT(*) FROM relationships_view WHERE lapsed")
    assert views[0][0] == sum(r["lapsed"] for r in query(store_url, "relationships")) > 0
    listening = run_sql(store_url, "SELECT tenant, listens_enough FROM listening_view"
                                   " ORDER BY tenant")
    assert [(t, bool(e)) for t, e in listening] == [
        (r["tenant"], r["listening_share"] >= 0.5)
        for r in sorted(query(store_url, "listening"), key=lambda r: r["tenant"])]
