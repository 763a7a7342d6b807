"""The story a store tells: `mot story` (text, markdown or JSON) and `make demo` print it.

`summary` gathers the facts per tenant from the query service (so every number
is one `mot query` prints); `story` and `markdown` put them in words, and
`mot story --format json` prints the facts themselves.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Final

from mot.projections.listening import listens_enough
from mot.service.queries import Query, QueryService
from mot.wording import counted, printable

STAGES = ("advocate", "loyal", "engaged", "acquainted", "stranger", "detractor")
STATUSES = ("ok_to_ask", "give_first", "stop_asking")


def summary(queries: QueryService, *, tenant: str | None = None, top: int = 3
            ) -> list[dict[str, Any]]:
    """Per tenant: its customers by stage, its detractors and the teams before their
    negative posts, who must stop asking, what travelled furthest, who listens."""
    relationships = queries.run(Query("relationships", tenant=tenant))
    reciprocity = queries.run(Query("reciprocity", tenant=tenant))
    amplifications = queries.run(Query("amplifications", tenant=tenant))
    teams = queries.run(Query("teams", tenant=tenant))
    listening = {r["tenant"]: r for r in queries.run(Query("listening", tenant=tenant))}
    tenants = []
    for name in sorted({r["tenant"] for r in relationships}):
        rels = [r for r in relationships if r["tenant"] == name]
        stages = Counter(r["stage"] for r in rels)
        statuses = Counter(r["status"] for r in reciprocity if r["tenant"] == name)
        amps = sorted((a for a in amplifications if a["tenant"] == name),
                      key=lambda a: -a["cascade_reach"])
        detractors = {r["customer_id"] for r in rels if r["stage"] == "detractor"}
        negative = [a for a in amps if a["customer_id"] in detractors
                    and a["polarity"] == "negative"]
        team_rows = [t for t in teams if t["tenant"] == name and t["negative"]]
        worst = (max(team_rows, key=lambda t: (t["negative"], t["asked"] - t["given"]))
                 if team_rows else None)
        share = listening.get(name, {}).get("listening_share")
        tenants.append({
            "tenant": name,
            "customers": len(rels),
            "stages": {s: stages[s] for s in STAGES},
            "detractors": len(detractors),
            "detractor_posts_after": dict(sorted(Counter(
                a["trigger_function"] or "unprompted" for a in negative).items(),
                key=lambda item: (-item[1], item[0]))),
            "largest_detractor_posts": [_post(a) for a in negative[:top]],
            "reciprocity": {s: statuses[s] for s in STATUSES},
            "travelled_furthest": [_post(a) for a in amps[:top]],
            "team_behind_most_negative": None if worst is None else {
                k: worst[k] for k in ("function", "negative", "asked", "given")},
            "listening_share": share,
            "listens_enough": listens_enough(share),
        })
    return tenants


def _post(a: dict[str, Any]) -> dict[str, Any]:
    return {k: a[k] for k in ("amplification_id", "customer_id", "occurred_at", "polarity",
                              "cascade_reach", "cascade_size", "trigger_function",
                              "trigger_channel", "delay_seconds")}


def story(queries: QueryService, *, tenant: str | None = None, top: int = 3) -> list[str]:
    """Who became a detractor after which team's moment, who must stop asking, what travelled."""
    lines: list[str] = []
    for t in summary(queries, tenant=tenant, top=top):
        lines.append(f"== {t['tenant']}: {counted(t['customers'], 'customer')} — " + ", ".join(
            f"{t['stages'][s]:,} {s}" for s in STAGES if t["stages"][s]))
        lines += _detractors(t)
        lines.append(f"   must stop asking {counted(t['reciprocity']['stop_asking'], 'customer')}"
                     " (asked twice, no answer) and give first to "
                     f"{t['reciprocity']['give_first']:,} more (balance below zero)")
        for a in t["travelled_furthest"]:
            lines.append(f"   travelled far: {a['polarity']} post by {a['customer_id']} reached "
                         f"{a['cascade_reach']:,} {_how(a['cascade_size'])} ({_cause(a)})")
        worst = t["team_behind_most_negative"]
        if worst:
            lines.append(f"   team behind most negative posts: {worst['function']} "
                         f"({worst['negative']} negative, asked {worst['asked']}, "
                         f"gave {worst['given']})")
        lines += [f"   {line}" for line in _listening(t)]
    return lines


def markdown(queries: QueryService, *, tenant: str | None = None, top: int = 3) -> str:
    """The story as a Markdown document: a section per tenant, tables for the lists."""
    out = ["# What the projections say", ""]
    for t in summary(queries, tenant=tenant, top=top):
        out += [f"## {_md(t['tenant'])}", "",
                f"**{counted(t['customers'], 'customer')}**: " + ", ".join(
                    f"{t['stages'][s]:,} {s}" for s in STAGES if t["stages"][s]) + ".", ""]
        if t["detractors"]:
            out.append(f"**{counted(t['detractors'], 'detractor')}**; their negative posts "
                       "followed moments of: " + ", ".join(
                           f"{team} ({n})" for team, n in t["detractor_posts_after"].items())
                       + ".")
        else:
            out.append("No detractors.")
        recip = t["reciprocity"]
        out += ["", f"Must **stop asking** {counted(recip['stop_asking'], 'customer')} (asked "
                f"twice, no answer) and **give first** to {recip['give_first']:,} more "
                "(balance below zero).", ""]
        if t["travelled_furthest"]:
            out += ["| post by | polarity | reach | shares | after |", "|---|---|--:|--:|---|"]
            out += [f"| {_md(a['customer_id'])} | {a['polarity']} | {a['cascade_reach']:,} | "
                    f"{a['cascade_size']:,} | {_cause(a)} |" for a in t["travelled_furthest"]]
            out.append("")
        worst = t["team_behind_most_negative"]
        if worst:
            out += [f"Team behind most negative posts: **{worst['function']}** "
                    f"({worst['negative']} negative, asked {worst['asked']}, gave "
                    f"{worst['given']}).", ""]
        out += [line[0].upper() + line[1:] + "." for line in _listening(t)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# The ASCII punctuation Markdown reads as markup (a `|` ends a table cell, `<` opens HTML).
_MARKUP: Final = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _md(text: str) -> str:
    """A text of the data (a customer id, a tenant: what customers and vendors sent) as
    Markdown shows it, literally: controls written as escapes (\\x1b), markup escaped."""
    return _MARKUP.sub(r"\\\1", printable(text))


def _detractors(t: dict[str, Any]) -> list[str]:
    if not t["detractors"]:
        return ["   no detractors"]
    lines = [f"   {counted(t['detractors'], 'detractor')}; their negative posts followed "
             "moments of: " + ", ".join(
                 f"{team} ({count})" for team, count in t["detractor_posts_after"].items())]
    for a in t["largest_detractor_posts"]:
        hours = (a["delay_seconds"] or 0) / 3600
        cause = (f"{hours:.0f} h after a {a['trigger_function']} moment on {a['trigger_channel']}"
                 if a["trigger_function"] else "unprompted")
        lines.append(f"     {a['customer_id']} went public {cause}; reach {a['cascade_reach']:,}")
    return lines


def _listening(t: dict[str, Any]) -> list[str]:
    share = t["listening_share"]
    if share is None:
        return []
    verdict = "listens enough" if t["listens_enough"] else "talks more than it listens"
    return [f"listening share {share:.0%}: {verdict} (aim: at least half)"]


def _cause(a: dict[str, Any]) -> str:
    return (f"after {a['trigger_function']}'s {a['trigger_channel']} moment"
            if a["trigger_function"] else "unprompted")


def _how(shares: int) -> str:
    """How a post reached its audience: its author's alone, or with its shares'."""
    if not shares:
        return "without shares"
    return f"with {counted(shares, 'share')}"
