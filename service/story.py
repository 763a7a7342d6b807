"""The story a store tells, in a few lines a person reads: `mot story` and `make demo` print it."""

from __future__ import annotations

from collections import Counter
from typing import Any

from mot.service.queries import Query, QueryService
from mot.wording import counted


def story(queries: QueryService, *, tenant: str | None = None, top: int = 3) -> list[str]:
    """Who became a detractor after which team's moment, who must stop asking, what travelled."""
    relationships = queries.run(Query("relationships", tenant=tenant))
    reciprocity = queries.run(Query("reciprocity", tenant=tenant))
    amplifications = queries.run(Query("amplifications", tenant=tenant))
    teams = queries.run(Query("teams", tenant=tenant))
    listening = {r["tenant"]: r for r in queries.run(Query("listening", tenant=tenant))}
    lines: list[str] = []
    for name in sorted({r["tenant"] for r in relationships}):
        rels = [r for r in relationships if r["tenant"] == name]
        stages = Counter(r["stage"] for r in rels)
        lines.append(f"== {name}: {counted(len(rels), 'customer')} — " + ", ".join(
            f"{stages[s]:,} {s}" for s in
            ("advocate", "loyal", "engaged", "acquainted", "stranger", "detractor") if stages[s]))
        lines += _detractors(name, rels, amplifications, top)
        recips = [r for r in reciprocity if r["tenant"] == name]
        stop = sum(r["status"] == "stop_asking" for r in recips)
        give = sum(r["status"] == "give_first" for r in recips)
        lines.append(f"   must stop asking {counted(stop, 'customer')} (asked twice, no answer) "
                     f"and give first to {give:,} more (balance below zero)")
        amps = sorted((a for a in amplifications if a["tenant"] == name),
                      key=lambda a: -a["cascade_reach"])
        for a in amps[:top]:
            cause = (f"after {a['trigger_function']}'s {a['trigger_channel']} moment"
                     if a["trigger_moment_id"] else "unprompted")
            lines.append(f"   travelled far: {a['polarity']} post by {a['customer_id']} reached "
                         f"{a['cascade_reach']:,} {_how(a['cascade_size'])} ({cause})")
        team_rows = [t for t in teams if t["tenant"] == name and t["negative"]]
        if team_rows:
            worst = max(team_rows, key=lambda t: (t["negative"], t["asked"] - t["given"]))
            lines.append(f"   team behind most negative posts: {worst['function']} "
                         f"({worst['negative']} negative, asked {worst['asked']}, "
                         f"gave {worst['given']})")
        share = listening.get(name, {}).get("listening_share")
        if share is not None:
            verdict = "listens enough" if share >= 0.5 else "talks more than it listens"
            lines.append(f"   listening share {share:.0%}: {verdict} (aim: at least half)")
    return lines


def _detractors(tenant: str, rels: list[dict[str, Any]], amplifications: list[dict[str, Any]],
                top: int) -> list[str]:
    detractors = {r["customer_id"] for r in rels if r["stage"] == "detractor"}
    negative = [a for a in amplifications if a["tenant"] == tenant
                and a["customer_id"] in detractors and a["polarity"] == "negative"]
    by_team = Counter(a["trigger_function"] or "unprompted" for a in negative)
    if not detractors:
        return ["   no detractors"]
    lines = [f"   {counted(len(detractors), 'detractor')}; their negative posts followed moments of: "
             + ", ".join(f"{team} ({count})" for team, count in by_team.most_common())]
    for a in sorted(negative, key=lambda a: -a["cascade_reach"])[:top]:
        hours = (a["delay_seconds"] or 0) / 3600
        cause = (f"{hours:.0f} h after a {a['trigger_function']} moment on {a['trigger_channel']}"
                 if a["trigger_moment_id"] else "unprompted")
        lines.append(f"     {a['customer_id']} went public {cause}; reach {a['cascade_reach']:,}")
    return lines


def _how(shares: int) -> str:
    """How a post reached its audience: its author's alone, or with its shares'."""
    if not shares:
        return "without shares"
    return f"with {counted(shares, 'share')}"
