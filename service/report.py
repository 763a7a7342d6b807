"""`mot report`: one self-contained HTML page of what the projections say, per tenant.

Everything is inline (styles, and charts as SVG drawn by matplotlib's SVG
backend), so the page opens with no network and prints as it shows. Each chart
carries a one-sentence reading computed from its data, the numbers it was drawn
from (`data-values`, JSON), and the tables carry each row's fields
(`data-field`/`data-value`), so a test can hold every number to `mot query`.

Counts are made in the database (`ReportReads.grouped`: rows per tenant, value and
day), not by reading a million rows into Python: customers per stage and status,
stage changes per day and stage, posts per delay, requests per team and response
time, moments per day, direction and kind (each group judged by
`projections.teams.listening_contribution`, as the listening projection judges a
moment). The short lists (the largest cascades, the customers to stop asking, the
teams, listening) come from the query service as `mot query` prints them, and the
response times are summed by the query's own `sum_response_times`. Snapshots
(stages, reciprocity, teams) are as of now; the window (`--since`/`--until`)
bounds the weekly charts and the posts.
"""

from __future__ import annotations

import html
import io
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from mot.domain.timefmt import format_utc, to_micros
from mot.projections.listening import LISTENS_ENOUGH
from mot.projections.model import Current
from mot.projections.responses import sum_response_times
from mot.projections.schema import RESPONSE_TIMES, record_maker
from mot.projections.teams import listening_contribution, listening_share
from mot.service.queries import Query, QueryService

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STAGES = ("stranger", "acquainted", "engaged", "loyal", "advocate", "detractor")
STATUSES = ("ok_to_ask", "give_first", "stop_asking")
DAY_US = 86_400_000_000
TOP = 10  # rows of the "largest" lists

# One palette for the whole page: stages from cold to warm, detractor red.
STAGE_COLOURS = {"stranger": "#b8c2cc", "acquainted": "#8fb3d9", "engaged": "#4f8fcf",
                 "loyal": "#2e6db4", "advocate": "#2f9e6b", "detractor": "#d64541"}
STATUS_COLOURS = {"ok_to_ask": "#2f9e6b", "give_first": "#e0a526", "stop_asking": "#d64541"}
POLARITY_COLOURS = {"positive": "#2f9e6b", "neutral": "#9aa5b1", "negative": "#d64541"}
INK = "#1f2933"


@dataclass(frozen=True, slots=True)
class Window:
    """The time the weekly charts and the posts cover (either end open)."""

    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> str:
        if self.since is None and self.until is None:
            return "all time"
        start = "the beginning" if self.since is None else format_utc(self.since)
        end = "now" if self.until is None else format_utc(self.until)
        return f"{start} to {end}"


@dataclass
class Chart:
    """A figure of the page: its SVG, its reading, and the numbers it shows."""

    key: str
    title: str
    reading: str
    svg: str
    values: Any
    table: str = ""


@dataclass
class TenantData:
    """What one tenant's section shows: counts made in the database, short lists as
    `mot query` returns them."""

    tenant: str
    stages: Counter[str] = field(default_factory=Counter)  # customers per stage
    statuses: Counter[str] = field(default_factory=Counter)  # customers per reciprocity status
    stop_asking: list[dict[str, Any]] = field(default_factory=list)  # the first TOP records
    moved: dict[str, Counter[str]] = field(default_factory=dict)  # week -> stage -> changes
    largest: list[dict[str, Any]] = field(default_factory=list)  # amplifications, by reach
    delays: Counter[int | None] = field(default_factory=Counter)  # posts per delay (None: unprompted)
    teams: list[dict[str, Any]] = field(default_factory=list)
    listening: list[dict[str, Any]] = field(default_factory=list)
    response_times: list[dict[str, Any]] = field(default_factory=list)
    weekly_listening: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def customers(self) -> int:
        return sum(self.stages.values())


class ReportReads(Protocol):
    """The port the report counts rows through."""

    def grouped(self, table: str, columns: Sequence[str], *, tenant: str | None,
                since_us: int | None = None, until_us: int | None = None,
                per_day: bool = False) -> list[tuple[Any, ...]]:
        """Rows of `table` (the current moments: `moments`), of one tenant or every tenant's,
        whose `occurred_us` is between the two times (inclusive; None: no bound), counted
        per tenant, (with `per_day`) day of `occurred_us` counted from the epoch (UTC), and
        the stored `columns`: (tenant, [day,] *values, count) tuples; none while the store
        has no such table yet."""
        ...


READS_AT_ONCE = 4  # the report's reads in flight at a time (see `gather`)


def gather(queries: QueryService, reads: ReportReads, *, tenant: str | None,
           window: Window, pool: Executor | None = None) -> list[TenantData]:
    """Every tenant's section data (or one tenant's), by tenant.

    The reads are independent, each its own read transaction, and run a few at a time
    on `pool` (threads): the store works on them at once (PostgreSQL's backends, SQLite
    without the GIL) where one after another each waited for the last, and the counts of
    the moments table alone are most of the time at 1,000,000 moments."""
    if pool is None:
        with ThreadPoolExecutor(READS_AT_ONCE, thread_name_prefix="report") as own:
            return gather(queries, reads, tenant=tenant, window=window, pool=own)
    since = None if window.since is None else to_micros(window.since)
    until = None if window.until is None else to_micros(window.until)
    # The longest first: the moments per day, direction and kind, then the transitions.
    weekly = pool.submit(weekly_listening, reads, tenant=tenant, since_us=since,
                         until_us=until)
    moved = pool.submit(reads.grouped, "transitions", ("to_stage",), tenant=tenant,
                        since_us=since, until_us=until, per_day=True)
    answered = pool.submit(reads.grouped, "responses", ("function", "response_seconds"),
                           tenant=tenant)
    delays = pool.submit(reads.grouped, "amplifications", ("delay_seconds",), tenant=tenant,
                         since_us=since, until_us=until)
    stages = pool.submit(reads.grouped, "relationships", ("stage",), tenant=tenant)
    statuses = pool.submit(reads.grouped, "reciprocity", ("status",), tenant=tenant)
    teams = pool.submit(queries.run, Query("teams", tenant=tenant))
    listening = pool.submit(queries.run, Query("listening", tenant=tenant))
    by_tenant: dict[str, TenantData] = {}

    def data(name: str) -> TenantData:
        return by_tenant.setdefault(name, TenantData(name))

    for name, stage, count in stages.result():
        data(name).stages[stage] += count
    for name, status, count in statuses.result():
        data(name).statuses[status] += count
    sections = [by_tenant[name] for name in sorted(by_tenant) if by_tenant[name].stages]
    # Each tenant's short lists, while the counts above are still being made.
    stop_asking = {section.tenant: pool.submit(first_to_stop_asking, queries, section.tenant)
                   for section in sections if section.statuses["stop_asking"]}
    largest = {section.tenant: pool.submit(queries.run, Query(
        "amplifications", tenant=section.tenant, since=window.since, until=window.until,
        sort="-cascade_reach", limit=TOP)) for section in sections}
    for name, day, stage, count in moved.result():
        data(name).moved.setdefault(week_of(day), Counter())[stage] += count
    for name, delay, count in delays.result():
        data(name).delays[delay] += count
    for record in teams.result():
        data(record["tenant"]).teams.append(record)
    for record in listening.result():
        data(record["tenant"]).listening.append(record)
    for name, weeks in weekly.result().items():
        data(name).weekly_listening = weeks
    for section in sections:
        one = section.tenant
        if one in stop_asking:
            section.stop_asking = stop_asking[one].result()
        section.largest = largest[one].result()
        # The query's own sums (`mot query response-times`) of the counted rows, each count
        # given as that many requests, one at a time: not listed, as they grow with the store.
        section.response_times = list(map(record_maker(RESPONSE_TIMES), sum_response_times(
            chain.from_iterable(repeat((name, function, seconds), count)
                                for name, function, seconds, count in answered.result()
                                if name == one))))
    return sections


def _stop_order(record: dict[str, Any]) -> tuple[int, int, str]:
    """Customers to stop asking: most unanswered asks first, then the lowest balance."""
    return (-record["unanswered_asks"], record["balance"], record["customer_id"])


def first_to_stop_asking(queries: QueryService, tenant: str) -> list[dict[str, Any]]:
    """A tenant's first TOP customers to stop asking (`_stop_order`), as `mot query` prints
    them. The query sorts by unanswered asks, in the store, and gives as many as asked for:
    the read grows until it holds every customer tied with the TOP-th, rather than reading
    all of them (they grow with the store; the page shows ten)."""
    limit = TOP
    while True:
        records = queries.run(Query("reciprocity", tenant=tenant, status="stop_asking",
                                    sort="-unanswered_asks", limit=limit))
        # Sorted by unanswered asks, most first: once the last has fewer than the TOP-th,
        # every customer with as many as the TOP-th is among them.
        if (len(records) < limit
                or records[-1]["unanswered_asks"] < records[TOP - 1]["unanswered_asks"]):
            return sorted(records, key=_stop_order)[:TOP]
        limit *= 4


def week_of(day: int) -> str:
    """The Monday (UTC) of the week holding a day counted from the epoch, as YYYY-MM-DD."""
    monday = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=monday)).strftime("%Y-%m-%d")


def weekly_listening(reads: ReportReads, *, tenant: str | None, since_us: int | None,
                     until_us: int | None) -> dict[str, dict[str, tuple[int, int]]]:
    """Tenant -> week -> (L, M) of SPEC §3.4, counted over the current moments per day,
    direction and kind by the store; each group is judged by the projection's rule."""
    out: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for name, day, direction, kind, moments in reads.grouped(
            "moments", ("direction", "kind"), tenant=tenant, since_us=since_us,
            until_us=until_us, per_day=True):
        probe = Current("", name, "", 0, direction, kind, "", "", None, None, None, 0,
                        None, None)
        listening, talking = listening_contribution(probe)
        tally = out[name].setdefault(week_of(day), [0, 0])
        tally[0] += listening * moments
        tally[1] += talking * moments
    return {name: {week: (lm[0], lm[1]) for week, lm in sorted(weeks.items())}
            for name, weeks in out.items()}


# -- readings and charts ------------------------------------------------------------------

def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "0%"


def _duration(seconds: float) -> str:
    s = int(abs(seconds))
    sign = "-" if seconds < 0 else ""
    if s < 3600:
        return f"{sign}{s // 60} min"
    if s < 86400:
        return f"{sign}{s / 3600:.1f} h"
    return f"{sign}{s / 86400:.1f} days"


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


class Drawing:
    """matplotlib, imported when the first chart is drawn: `mot query` never loads it."""

    def __init__(self) -> None:
        # Figures made without pyplot need no display and no GUI toolkit; savefig picks
        # the SVG canvas for format="svg".
        import matplotlib
        import matplotlib.ticker
        from matplotlib.figure import Figure

        self.matplotlib = matplotlib
        self.figure_class = Figure

    def figure(self, height: float = 3.2, *, labels: Iterable[str] = (), bottom: float = 0.5,
               top: float = 0.15) -> tuple[Figure, Axes]:
        """A figure of the page's width; margins in inches, the left one sized to the longest
        of `labels` (a horizontal chart's names). Fixed margins, not tight_layout, which
        measured every text twice and cost half of drawing a chart."""
        width = 6.4
        longest = max((len(label) for label in labels), default=0)
        left = 0.55 + 0.07 * longest if longest else 0.6
        fig = self.figure_class(figsize=(width, height))
        fig.subplots_adjust(left=left / width, right=1 - 0.2 / width, bottom=bottom / height,
                            top=1 - top / height)
        ax = fig.add_subplot()
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(colors=INK, labelsize=9)
        return fig, ax

    def counted_bars(self, key: str, counts: dict[str, int], colours: dict[str, str],
                     height: float) -> str:
        """Customers per category, a labelled horizontal bar each, the first at the top."""
        names = list(counts)[::-1]
        fig, ax = self.figure(height, labels=names)
        ax.barh(names, [counts[n] for n in names], color=[colours[n] for n in names])
        for i, name in enumerate(names):
            ax.text(counts[name], i, f" {counts[name]:,}", va="center", fontsize=9, color=INK)
        ax.set_xlabel("customers")
        return self.svg(fig, key)

    def svg(self, fig: Figure, key: str) -> str:
        out = io.StringIO()
        with self.matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": key}):
            fig.savefig(out, format="svg", metadata={"Date": None})
        text = out.getvalue()
        # The XML prologue and DOCTYPE belong to a file of its own, not to inline SVG.
        return text[text.index("<svg"):]


def funnel_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    values = {s: data.stages[s] for s in STAGES}
    total = sum(values.values())
    svg = draw.counted_bars(key, values, STAGE_COLOURS, 2.8)
    warm = values["loyal"] + values["advocate"]
    reading = (f"Of {_plural(total, 'customer')}, {warm:,} ({_share(warm, total)}) are loyal or "
               f"advocates and {values['detractor']:,} ({_share(values['detractor'], total)}) "
               "are detractors.")
    return Chart(key, "Stage funnel now", reading, svg, values)


def movement_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    weeks = data.moved
    ordered = sorted(weeks)
    values = {w: {s: weeks[w][s] for s in STAGES if weeks[w][s]} for w in ordered}
    fig, ax = draw.figure(3.2, top=0.45)
    bottom = [0] * len(ordered)
    edges = [i - 0.5 for i in range(len(ordered) + 1)]
    for stage in STAGES[1:]:
        heights = [weeks[w][stage] for w in ordered]
        if any(heights):
            # One stepped area per stage, stacked, rather than a bar per week and stage:
            # matplotlib's cost is per shape, and a year of weeks made hundreds.
            top = [b + h for b, h in zip(bottom, heights, strict=True)]
            ax.stairs(top, edges, baseline=bottom, fill=True, color=STAGE_COLOURS[stage],
                      label=f"into {stage}")
            bottom = top
    _week_ticks(ax, ordered)
    ax.set_ylabel("stage changes")
    if ordered:
        ax.legend(fontsize=8, frameon=False, ncols=5, loc="lower left", bbox_to_anchor=(0, 1),
                  handlelength=1, columnspacing=1)
        busiest = max(ordered, key=lambda w: (sum(weeks[w].values()), w))
        into_detractor = sum(weeks[w]["detractor"] for w in ordered)
        total = sum(sum(c.values()) for c in weeks.values())
        reading = (f"{_plural(total, 'stage change')} over {_plural(len(ordered), 'week')}; the "
                   f"busiest was the week of {busiest} ({sum(weeks[busiest].values()):,}), and "
                   f"{into_detractor:,} of all changes were into detractor.")
    else:
        reading = "No customer changed stage in this window."
    return Chart(key, "Stage movement week by week", reading, draw.svg(fig, key), values)


def reciprocity_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    values = {s: data.statuses[s] for s in STATUSES}
    total = sum(values.values())
    svg = draw.counted_bars(key, values, STATUS_COLOURS, 2.2)
    reading = (f"The brand must stop asking {values['stop_asking']:,} of {total:,} customers "
               f"({_share(values['stop_asking'], total)}: asked twice, no answer) and give first "
               f"to {values['give_first']:,} more.")
    return Chart(key, "Reciprocity: may the brand ask?", reading, svg, values)


def stop_asking_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    shown = data.stop_asking
    fig, ax = draw.figure(0.7 + 0.26 * max(len(shown), 3),
                          labels=[r["customer_id"] for r in shown])
    ax.barh([r["customer_id"] for r in shown][::-1],
            [r["unanswered_asks"] for r in shown][::-1], color=STATUS_COLOURS["stop_asking"])
    ax.set_xlabel("unanswered asks")
    if shown:
        first = shown[0]
        reading = (f"{_plural(data.statuses['stop_asking'], 'customer')} must not be asked "
                   "again before the brand "
                   f"gives; {first['customer_id']} has {first['unanswered_asks']:,} unanswered "
                   f"asks (asked {first['asked']:,}, given {first['given']:,}).")
    else:
        reading = "No customer has two unanswered asks: the brand may keep asking."
    table = _table("reciprocity", shown, ("customer_id", "unanswered_asks", "asked", "given",
                                          "received", "balance"), key=("tenant", "customer_id"))
    return Chart(key, "Customers to stop asking", reading, draw.svg(fig, key),
                 {r["customer_id"]: r["unanswered_asks"] for r in shown}, table)


def cascades_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    largest = data.largest  # by cascade reach, as queried
    labels = [f"{a['customer_id']} · {a['trigger_function'] or 'unprompted'}" for a in largest]
    fig, ax = draw.figure(0.7 + 0.3 * max(len(largest), 3), labels=labels)
    ax.barh(labels[::-1], [a["cascade_reach"] for a in largest][::-1],
            color=[POLARITY_COLOURS[a["polarity"]] for a in largest][::-1])
    ax.set_xlabel("cascade reach (the post's and its shares')")
    if largest:
        a = largest[0]
        cause = (f"{a['delay_seconds'] and _duration(a['delay_seconds'])} after a "
                 f"{a['trigger_function']} {a['trigger_channel']} moment"
                 if a["trigger_moment_id"] else "unprompted")
        reading = (f"The largest cascade, {a['customer_id']}'s {a['polarity']} {a['channel']} "
                   f"post, reached {a['cascade_reach']:,} through "
                   f"{_plural(a['cascade_size'], 'share')}, {cause}.")
    else:
        reading = "No post went public in this window."
    table = _table("amplifications", largest, (
        "customer_id", "occurred_at", "polarity", "cascade_reach", "cascade_size",
        "trigger_function", "trigger_channel", "trigger_moment_id"),
        key=("amplification_id",))
    return Chart(key, "Largest cascades and what triggered them", reading, draw.svg(fig, key),
                 {a["amplification_id"]: a["cascade_reach"] for a in largest}, table)


def delay_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    delays = sorted((d, n) for d, n in data.delays.items() if d is not None)
    posts = sum(n for _, n in delays)
    # Within SPEC's 72 h window, except through an explicit in_reply_to: those are drawn
    # at the window's edges rather than left out. Six-hour bins, counted here: the chart
    # draws twelve bars, not one value per post.
    bins = [0] * 12
    for d, n in delays:
        bins[min(max(d, 0) // DELAY_BIN, len(bins) - 1)] += n
    fig, ax = draw.figure(2.6)
    ax.stairs(bins, range(0, 6 * len(bins) + 1, 6), fill=True, color="#4f8fcf")
    ax.set_xticks(range(0, 73, 12))
    ax.set_xlabel("hours from the private moment to the public post (beyond 72 h: at 72)")
    ax.set_ylabel("posts")
    unprompted = data.delays[None]
    median = _nth(delays, (posts - 1) // 2) if posts else None
    within_day = sum(n for d, n in delays if d <= 86_400)
    values = {"posts": posts, "six_hour_bins": bins, "median": median,
              "within_day": within_day, "unprompted": unprompted}
    if median is not None:
        reading = (f"Half of the {posts:,} triggered posts came within {_duration(median)} "
                   f"of their private moment, {_share(within_day, posts)} within a day; "
                   f"{unprompted:,} came unprompted.")
    else:
        reading = f"No post followed a private moment; {unprompted:,} came unprompted."
    return Chart(key, "From private moment to public post", reading, draw.svg(fig, key), values)


DELAY_BIN = 6 * 3600  # seconds: the delay chart's bars


def _nth(counted: Sequence[tuple[int, int]], index: int) -> int:
    """The value at `index` (from 0) of the sorted values that (value, count) pairs stand for."""
    for value, count in counted:
        if index < count:
            return value
        index -= count
    raise IndexError(index)


def polarity_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    teams = sorted(data.teams, key=lambda t: (-(t["positive"] + t["negative"]), t["function"]))
    names = [t["function"] for t in teams]
    fig, ax = draw.figure(2.8, bottom=0.8)
    positions = range(len(names))
    ax.bar([p - 0.2 for p in positions], [t["positive"] for t in teams], width=0.4,
           color=POLARITY_COLOURS["positive"], label="positive")
    ax.bar([p + 0.2 for p in positions], [t["negative"] for t in teams], width=0.4,
           color=POLARITY_COLOURS["negative"], label="negative")
    ax.set_xticks(list(positions), names, rotation=30, ha="right")
    ax.set_ylabel("public posts triggered")
    ax.legend(fontsize=8, frameon=False)
    values = {t["function"]: {"positive": t["positive"], "negative": t["negative"]} for t in teams}
    negative = sum(t["negative"] for t in teams)
    if negative:
        worst = max(teams, key=lambda t: (t["negative"], -t["positive"]))
        reading = (f"{worst['function']} triggered {worst['negative']:,} of the "
                   f"{_plural(negative, 'negative post')} (and {worst['positive']:,} positive).")
    else:
        positive = sum(t["positive"] for t in teams)
        reading = f"No team triggered a negative post; {_plural(positive, 'positive one')}."
    return Chart(key, "Positive and negative posts per team", reading, draw.svg(fig, key), values)


def scoreboard_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    teams = sorted(data.teams, key=lambda t: (-t["moments"], t["function"]))
    names = [t["function"] for t in teams]
    fig, ax = draw.figure(2.8, bottom=0.8)
    positions = range(len(names))
    ax.bar([p - 0.2 for p in positions], [t["given"] for t in teams], width=0.4,
           color="#2f9e6b", label="given")
    ax.bar([p + 0.2 for p in positions], [t["asked"] for t in teams], width=0.4,
           color="#e0a526", label="asked")
    ax.set_xticks(list(positions), names, rotation=30, ha="right")
    ax.set_ylabel("weighted gives and asks")
    ax.legend(fontsize=8, frameon=False)
    takers = [t for t in teams if t["asked"] > t["given"]]
    if takers:
        worst = max(takers, key=lambda t: (t["asked"] - t["given"], t["function"]))
        reading = (f"{worst['function']} asked {worst['asked']:,} and gave {worst['given']:,}: "
                   + ("the only team" if len(takers) == 1 else
                      f"the widest gap of {len(takers)} teams") + " asking more than it gives.")
    elif teams:
        reading = "Every team gives at least as much as it asks."
    else:
        reading = "No team has moments yet."
    table = _table("teams", teams, ("function", "moments", "given", "asked", "amplifications",
                                    "positive", "negative", "cascade_reach"),
                   key=("tenant", "function"))
    return Chart(key, "Team scoreboard", reading, draw.svg(fig, key),
                 {t["function"]: {"given": t["given"], "asked": t["asked"]} for t in teams}, table)


def listening_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    weeks = list(data.weekly_listening)
    shares = [listening_share(*data.weekly_listening[w]) for w in weeks]
    fig, ax = draw.figure(2.8)
    ax.plot(range(len(weeks)), [s if s is not None else float("nan") for s in shares],
            marker="o", markersize=3, color="#2e6db4", label="listening share")
    ax.axhline(LISTENS_ENOUGH, color="#d64541", linestyle="--", linewidth=1,
               label=f"{LISTENS_ENOUGH * 100:.0f} % line")
    ax.set_ylim(0, 1)
    ax.yaxis.set_major_formatter(draw.matplotlib.ticker.PercentFormatter(1.0))
    _week_ticks(ax, weeks)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    values = {w: {"listening": lm[0], "other": lm[1], "share": s}
              for (w, lm), s in zip(data.weekly_listening.items(), shares, strict=True)}
    judged = [s for s in shares if s is not None]
    overall = data.listening[0]["listening_share"] if data.listening else None
    if judged:
        at_least = sum(s >= LISTENS_ENOUGH for s in judged)
        reading = (f"Listening reached half of the brand's moments in {at_least:,} of "
                   f"{_plural(len(judged), 'week')}"
                   + (f"; over all time it is {overall:.0%}." if overall is not None else "."))
    else:
        reading = "No inbound or outbound moments in this window."
    return Chart(key, "Listening share per week", reading, draw.svg(fig, key), values)


def response_times_chart(draw: Drawing, key: str, data: TenantData) -> Chart:
    teams = sorted(data.response_times, key=lambda t: (-t["requests"], t["function"]))
    names = [t["function"] for t in teams]
    fig, ax = draw.figure(2.8, bottom=0.8)
    positions = range(len(names))
    for offset, field_, colour, label in ((-0.2, "response_p50_seconds", "#4f8fcf", "p50"),
                                          (0.2, "response_p90_seconds", "#2e6db4", "p90")):
        ax.bar([p + offset for p in positions], [(t[field_] or 0) / 3600 for t in teams],
               width=0.4, color=colour, label=label)
    ax.set_xticks(list(positions), names, rotation=30, ha="right")
    ax.set_ylabel("hours to the first response")
    ax.legend(fontsize=8, frameon=False)
    values = {t["function"]: {"p50": t["response_p50_seconds"], "p90": t["response_p90_seconds"],
                              "open": t["open"]} for t in teams}
    waiting = sum(t["open"] for t in teams)
    timed = [t for t in teams if t["response_p90_seconds"] is not None]
    if timed:
        slowest = max(timed, key=lambda t: (t["response_p90_seconds"], t["function"]))
        reading = (f"{slowest['function']} answers 9 in 10 requests within "
                   f"{_duration(slowest['response_p90_seconds'])}, the slowest of "
                   f"{_plural(len(timed), 'team')}; {_plural(waiting, 'request')} "
                   f"{'waits' if waiting == 1 else 'wait'} for a first response.")
    elif teams:
        reading = f"No request is answered yet; {_plural(waiting, 'request')} waiting."
    else:
        reading = "No customer brought a question, complaint or feedback."
    table = _table("response-times", teams, ("function", "requests", "answered", "open",
                                             "response_p50_seconds", "response_p90_seconds"),
                   key=("tenant", "function"))
    return Chart(key, "How fast each team answers", reading, draw.svg(fig, key), values, table)


def _week_ticks(ax: Axes, weeks: Sequence[str]) -> None:
    step = max(1, len(weeks) // 8)
    ticks = list(range(0, len(weeks), step))
    ax.set_xticks(ticks, [weeks[i][5:] for i in ticks], fontsize=8)
    ax.set_xlabel("week starting (MM-DD)")


CHARTS: tuple[tuple[str, Callable[[Drawing, str, TenantData], Chart]], ...] = (
    ("funnel", funnel_chart), ("movement", movement_chart), ("reciprocity", reciprocity_chart),
    ("stop-asking", stop_asking_chart), ("cascades", cascades_chart), ("delay", delay_chart),
    ("polarity", polarity_chart), ("scoreboard", scoreboard_chart),
    ("listening", listening_chart), ("response-times", response_times_chart),
)
"""Every chart of a tenant's section, in page order."""
WIDE = frozenset({"cascades"})  # figures across the page (their table is wide)


# -- the page -------------------------------------------------------------------------

def _cell(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if name.endswith("_at") and isinstance(value, str):
        return value.replace("T", " ").removesuffix("Z")[:16]
    if name.endswith("_id") and isinstance(value, str) and len(value) == 36:
        return value[:8] + "…"
    return str(value)


def _table(query: str, rows: Iterable[dict[str, Any]], columns: Sequence[str],
           key: Sequence[str]) -> str:
    """A table of query records; each cell keeps its exact value in `data-value`."""
    head = "".join(f"<th>{html.escape(HEADINGS.get(c, c.replace('_', ' ')))}</th>"
                   for c in columns)
    body = []
    for row in rows:
        row_key = orjson.dumps([row[k] for k in key]).decode()
        cells = "".join(
            f'<td data-field="{c}" data-value="{html.escape(orjson.dumps(row[c]).decode())}"'
            f'{" class=num" if isinstance(row[c], int | float) else ""}>'
            f"{html.escape(_cell(c, row[c]))}</td>" for c in columns)
        body.append(f'<tr data-key="{html.escape(row_key)}">{cells}</tr>')
    return (f'<div class="table"><table data-query="{query}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


HEADINGS = {"customer_id": "customer", "occurred_at": "when (UTC)", "cascade_reach": "reach",
            "cascade_size": "shares", "trigger_function": "after team",
            "trigger_channel": "on", "trigger_moment_id": "moment", "unanswered_asks": "unanswered",
            "amplifications": "posts", "response_p50_seconds": "p50 (s)",
            "response_p90_seconds": "p90 (s)"}


STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2933; background: #f5f7fa; }
header, section { max-width: 1180px; margin: 0 auto; padding: 20px 24px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 0; color: #52606d; }
section > h2 { font-size: 22px; border-bottom: 2px solid #d9e2ec; padding-bottom: 6px; }
section > p.summary { margin: 4px 0 16px; color: #3e4c59; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 18px; }
figure { margin: 0; background: #fff; border: 1px solid #e4e7eb; border-radius: 8px;
         padding: 14px 16px; break-inside: avoid; page-break-inside: avoid; }
figure h3 { margin: 0 0 4px; font-size: 16px; }
figcaption { margin: 0 0 8px; color: #3e4c59; }
figure svg { width: 100%; height: auto; display: block; max-width: 640px; }
figure.wide { grid-column: 1 / -1; }
div.table { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; font-size: 12.5px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #e4e7eb; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { color: #52606d; font-weight: 600; }
footer { max-width: 1180px; margin: 0 auto; padding: 12px 24px 30px; color: #7b8794; font-size: 12px; }
@media print {
  body { background: #fff; font-size: 11pt; }
  header, section { padding: 8px 0; max-width: none; }
  .grid { grid-template-columns: 1fr 1fr; gap: 10px; }
  figure { border-color: #ccc; }
  section { break-before: page; }
  section:first-of-type { break-before: auto; }
}
"""


CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render(tenants: Sequence[TenantData], *, window: Window, generated: datetime,
           draw: Drawing | None = None) -> str:
    """The whole page: a section per tenant, a figure per chart."""
    with _DRAWING:  # matplotlib's global state (rc settings) is not for threads at once
        return _render(tenants, window=window, generated=generated, draw=draw or Drawing())


_DRAWING = threading.Lock()


def _render(tenants: Sequence[TenantData], *, window: Window, generated: datetime,
            draw: Drawing) -> str:
    sections = []
    for data in tenants:
        figures = []
        for kind, make in CHARTS:
            chart = make(draw, f"{data.tenant}-{kind}", data)
            values = html.escape(orjson.dumps(chart.values).decode())
            wide = " wide" if kind in WIDE else ""
            figures.append(
                f'<figure class="chart{wide}" id="chart-{html.escape(chart.key)}" data-chart="{kind}" '
                f'data-values="{values}"><h3>{html.escape(chart.title)}</h3>'
                f"<figcaption>{html.escape(chart.reading)}</figcaption>{chart.svg}{chart.table}"
                "</figure>")
        customers = data.customers
        sections.append(
            f'<section data-tenant="{html.escape(data.tenant)}"><h2>{html.escape(data.tenant)}</h2>'
            f'<p class="summary">{_plural(customers, "customer")}; '
            f"{_plural(data.delays.total(), 'public post')} and "
            f"{_plural(sum(c.total() for c in data.moved.values()), 'stage change')} in the "
            "window.</p>"
            f'<div class="grid">{"".join(figures)}</div></section>')
    if not sections:
        sections.append("<section><h2>No customers yet</h2><p>Record moments with "
                        "<code>mot import FILE</code>, then run the report again.</p></section>")
    title = ("mot report — " + ", ".join(d.tenant for d in tenants)) if tenants else "mot report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # The page may load nothing: a browser refuses (and reports) any fetch at all.
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>Weekly charts and posts: "
        f"{html.escape(window.describe())}. Stages, reciprocity and teams: as of "
        f"{format_utc(generated.replace(microsecond=0))}.</p></header>"
        + "".join(sections)
        + "<footer>Every number here is one <code>mot query</code> prints; charts drawn with "
        "matplotlib. This page needs no network.</footer></body></html>\n"
    )


def report(queries: QueryService, reads: ReportReads, *, tenant: str | None = None,
           since: datetime | None = None, until: datetime | None = None) -> str:
    """The report page of one tenant, or of every tenant."""
    window = Window(since, until)
    with ThreadPoolExecutor(READS_AT_ONCE, thread_name_prefix="report") as pool:
        # matplotlib loads (a CPU's half second) while the store counts.
        drawing = pool.submit(Drawing)
        sections = gather(queries, reads, tenant=tenant, window=window, pool=pool)
        return render(sections, window=window, generated=queries.clock(),
                      draw=drawing.result())
