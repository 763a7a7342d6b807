"""A deterministic, streaming generator of realistic wire-format v1 moments (SPEC §2).

Used by `make demo` (a few thousand moments for two brands) and by the
benchmarks (a million moments and more). Each customer lives a small story of
a few days to a few weeks: teams answer, help, send content, apologise and
ask; the customer asks, complains, praises, replies, buys, accepts or
declines; some customers then post, review or mention the brand publicly
(negative posts mostly within 72 h of a complaint or a pushy ask, positive
ones after help), and other people share those posts, and shares of shares.

Every moment carries a `source` (`zendesk`, `intercom`, `hubspot`, `shop`,
`greenhouse`, `listening`), so every moment has a stable derived id, and
references (`in_reply_to`, `shares`) are source objects.

The brands differ so that the demo tells a story: the first tenant (`acme` by
default) listens well (answers fast, asks open questions, helps, rarely asks
twice); the second (`globex`) asks a lot, asks again without an answer,
leaves complaints unanswered and so grows detractors; further tenants sit in
between.

Streaming and memory: the output is ordered by `occurred_at` (corrections,
duplicates and bad lines aside, which carry no time of their own or repeat an
earlier one). Stories are merged through a heap holding one pending moment per
live story; everything else the generator remembers lives in fixed-size rings
(recent public moments to share, recent moments to correct or re-send). Memory
therefore does not grow as the stream goes on. The number of live stories
depends on how densely customers arrive; it is capped by shortening stories
when the density would exceed `MAX_LIVE_STORIES`.

Determinism: all randomness comes from `random.Random` instances seeded from
`seed`; the same arguments give byte-identical output. Stories draw from one
generator and corrections, duplicates and bad lines from another, so turning
`corrections` or `bad_lines` on or off leaves the story moments as they were
(only where the stream is cut to `n` moves).

Treat the yielded dicts as read-only: the generator re-reads recent ones to
derive corrections and duplicates.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from bisect import bisect
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from heapq import heappop, heappush
from typing import Any, Final

import orjson

from mot.domain.identity import derived_moment_id

Moment = dict[str, Any]
Story = Generator[Moment, None, None]
"""A customer's moments in time order; after each, the customer's `t` is that moment's time."""
Episode = Story
Shareable = tuple[dict[str, str], str, float]
"""A recent public moment that can be shared: its reference, channel and sentiment."""
Item = Moment | bytes
"""One output item: a message, or raw bytes for a line that is not even JSON."""

DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2026, 11, 25, tzinfo=UTC)
"""No generated moment is later than this (unless `start` or `until` say otherwise)."""
MOMENTS_PER_CUSTOMER: Final = 12
MAX_LIVE_STORIES: Final = 4096
SHARE_RING: Final = 1024
"""Recent public moments per tenant that can be shared (and so get shares of shares)."""
RECENT_RING: Final = 1024
"""Recent moments that corrections and duplicates pick from."""

AMEND_RATE: Final = 0.010
RETRACT_RATE: Final = 0.002
DUPLICATE_RATE: Final = 0.005
BAD_RATE: Final = 0.005

MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86_400
WEEK: Final = 7 * DAY

PREFIX: Final = {
    "zendesk": "ZD-",
    "intercom": "ic_",
    "hubspot": "hs-",
    "shop": "ord-",
    "greenhouse": "gh-",
    "listening": "li-",
}
PLATFORM: Final = {
    "twitter": "x.com/i/status",
    "facebook": "facebook.com/posts",
    "instagram": "instagram.com/p",
    "tiktok": "tiktok.com/v",
    "youtube": "youtube.com/watch",
    "linkedin": "linkedin.com/feed/update",
    "forum": "community.example.org/t",
    "blog": "medium.com/p",
    "review_site": "trustpilot.com/reviews",
}
STAFF: Final = {
    "service": ("ana", "ben", "chloe", "dev", "eli", "fatima"),
    "product": ("gus", "hana", "ivan"),
    "sales": ("jo", "kai", "lena", "marco"),
    "logistics": ("nia", "omar", "pia"),
    "hr": ("quinn", "rosa"),
    "marketing": ("sam", "tara"),
    "leadership": ("the-ceo",),
}
SOCIAL: Final = frozenset({"twitter", "facebook", "instagram", "linkedin", "tiktok", "youtube"})
CONTACT_CHANNELS: Final = ("chat", "email", "email", "phone", "chat", "twitter", "web", "sms")
POST_CHANNELS: Final = ("twitter", "twitter", "facebook", "instagram", "tiktok", "youtube",
                        "linkedin", "forum", "blog", "instagram", "twitter")
MENTION_CHANNELS: Final = ("twitter", "linkedin", "instagram", "forum", "facebook")
CAMPAIGN_CHANNELS: Final = ("email", "email", "sms", "instagram", "facebook", "web")
REACH_SCALE: Final = {"review_site": 20, "forum": 40, "blog": 60, "tiktok": 150, "youtube": 120}

RETRACT_REASONS: Final = ("logged against the wrong customer", "test record from the CRM sandbox",
                          "merged into another ticket")
TYPOS: Final = (("occurred_at", "occured_at"), ("customer_id", "customerId"),
                ("channel", "chanel"), ("direction", "dir"), ("source", "sorce"),
                ("sentiment", "sentimnet"), ("in_reply_to", "in_reply"))
WRONG_KIND: Final = {"inbound": ("answer", "help", "post"),
                     "outbound": ("complaint", "purchase", "praise"),
                     "public": ("praise", "complaint", "reply")}


@dataclass(frozen=True, slots=True)
class Profile:
    """How one brand behaves: the parameters of its customers' stories."""

    name: str
    currency: str
    answer_rate: float        # a question gets an answer
    answer_delay: int         # mean seconds until it does
    help_rate: float          # an answer is real help rather than a reply
    complaint_care: float     # a complaint gets an apology (and often help)
    ask_again: float          # after an unanswered ask, ask again (each time)
    max_asks: int             # asks in a row without an answer, at most
    neg_ignored: float        # negative public post after an ignored complaint
    neg_handled: float        # ... after a complaint that was handled
    neg_pushy: float          # ... after two or more unanswered asks
    pos_help: float           # positive public post after help
    respond_public: float     # the brand answers a big negative post
    issue_rate: float         # a purchase goes wrong (a logistics complaint)
    gift_rate: float          # a purchase earns a gift or useful content
    episodes: tuple[tuple[str, float], ...]
    ask_types: tuple[tuple[str, float], ...]
    ask_functions: tuple[str, ...]


LISTENER: Final = Profile(
    name="listener", currency="EUR",
    answer_rate=0.96, answer_delay=40 * MINUTE, help_rate=0.5, complaint_care=0.92,
    ask_again=0.12, max_asks=2, neg_ignored=0.35, neg_handled=0.03, neg_pushy=0.05,
    pos_help=0.22, respond_public=0.8, issue_rate=0.07, gift_rate=0.25,
    episodes=(("question", 3.0), ("complaint", 1.2), ("purchase", 2.2), ("ask", 0.9),
              ("listen", 2.2), ("sales", 0.6), ("hr", 0.4), ("public", 0.8)),
    ask_types=(("review", 3), ("survey", 3), ("purchase", 2), ("referral", 1), ("share", 1),
               ("meeting", 1), ("like", 1)),
    ask_functions=("marketing", "product", "sales", "service"),
)
PUSHER: Final = Profile(
    name="pusher", currency="USD",
    answer_rate=0.72, answer_delay=9 * HOUR, help_rate=0.2, complaint_care=0.45,
    ask_again=0.75, max_asks=4, neg_ignored=0.55, neg_handled=0.12, neg_pushy=0.3,
    pos_help=0.08, respond_public=0.25, issue_rate=0.18, gift_rate=0.03,
    episodes=(("question", 1.8), ("complaint", 1.8), ("purchase", 2.0), ("ask", 3.6),
              ("listen", 0.3), ("sales", 1.3), ("hr", 0.5), ("public", 0.8)),
    ask_types=(("purchase", 4), ("review", 3), ("share", 2), ("like", 2), ("referral", 2),
               ("meeting", 1), ("survey", 0.5)),
    ask_functions=("marketing", "marketing", "sales", "marketing", "sales"),
)
BALANCED: Final = Profile(
    name="balanced", currency="GBP",
    answer_rate=0.86, answer_delay=3 * HOUR, help_rate=0.35, complaint_care=0.7,
    ask_again=0.4, max_asks=3, neg_ignored=0.45, neg_handled=0.07, neg_pushy=0.15,
    pos_help=0.14, respond_public=0.5, issue_rate=0.12, gift_rate=0.1,
    episodes=(("question", 2.4), ("complaint", 1.5), ("purchase", 2.1), ("ask", 2.0),
              ("listen", 1.2), ("sales", 1.0), ("hr", 0.45), ("public", 0.8)),
    ask_types=(("purchase", 3), ("review", 3), ("survey", 2), ("share", 1), ("like", 1),
               ("referral", 1), ("meeting", 1)),
    ask_functions=("marketing", "sales", "product"),
)
PROFILES: Final = (LISTENER, PUSHER, BALANCED)


def _cumulative(pairs: Sequence[tuple[str, float]]) -> tuple[tuple[str, ...], list[float]]:
    names = tuple(name for name, _ in pairs)
    total = 0.0
    cum: list[float] = []
    for _, weight in pairs:
        total += weight
        cum.append(total)
    return names, [c / total for c in cum]


class _Brand:
    """A tenant with its profile and precomputed choices."""

    __slots__ = ("ask_cum", "ask_names", "episode_cum", "episode_names", "handle", "help_handle",
                 "name", "profile")

    def __init__(self, name: str, profile: Profile) -> None:
        self.name = name
        self.profile = profile
        self.episode_names, self.episode_cum = _cumulative(profile.episodes)
        self.ask_names, self.ask_cum = _cumulative(profile.ask_types)
        self.handle = f"@{name}"
        self.help_handle = f"@{name}_help"


class _Customer:
    """The small state of one live story."""

    __slots__ = ("brand", "cid", "credit", "last_content", "pace", "ring", "t", "tenant")

    def __init__(self, brand: _Brand, cid: str, t: int, pace: int,
                 ring: list[Shareable]) -> None:
        self.brand = brand
        self.tenant = brand.name
        self.cid = cid
        self.t = t
        self.pace = pace            # mean seconds between episodes
        self.credit = 0             # gives minus asks so far, as the customer feels it
        self.last_content: dict[str, str] | None = None
        self.ring = ring            # the tenant's recent public moments


def _ref(moment: Moment) -> dict[str, str]:
    source: dict[str, str] = moment["source"]
    return {"system": source["system"], "id": source["id"]}


class _Sampler:
    """One run of the generator: stories merged by time, plus corrections and noise."""

    def __init__(self, n: int, seed: int, tenants: Sequence[str], start: datetime,
                 customers: int | None, corrections: bool, bad_lines: bool,
                 until: datetime | None, raw_bytes: bool) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if isinstance(tenants, str):
            raise TypeError("tenants must be a sequence of names, not one string")
        if not tenants:
            raise ValueError("tenants must name at least one tenant")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if customers is not None and customers < 1:
            raise ValueError(f"customers must be >= 1, got {customers}")
        start = start.astimezone(UTC).replace(microsecond=0)
        if until is None:
            end = min(start + timedelta(days=365), LATEST)
            if end - start < timedelta(days=1):
                end = start + timedelta(days=365)
        else:
            end = until.astimezone(UTC)
            if end <= start:
                raise ValueError("until must be after start")
        self.n = n
        # Times are whole seconds since the epoch; `span` is the length of the run.
        self.base = int(start.timestamp())
        self.span = int((end - start).total_seconds())
        self.horizon = self.base + self.span
        self.r = random.Random(seed)
        self.noise = random.Random(seed * 7919 + 104_729)
        self.corrections = corrections
        self.bad_lines = bad_lines
        self.raw_bytes = raw_bytes
        self.brands = [_Brand(name, PROFILES[i % len(PROFILES)]) for i, name in enumerate(tenants)]

        # A story is one stretch of a customer's life with the brand (about 12 moments). With
        # fewer customers than stories, customers come back: story i is customer i % customers.
        self.customers = customers if customers is not None else max(
            1, round(n / MOMENTS_PER_CUSTOMER))
        self.stories = max(self.customers, round(n / MOMENTS_PER_CUSTOMER), 1)
        # Story lengths share out a budget of 1.02 n, so the stream is cut at n (in the last
        # stories) rather than running dry, also when corrections and bad lines take up to
        # 2.2 % of it. The budget does not depend on those options, so the stories do not.
        self.per_story = max(1.0, n / self.stories)
        self.budget = n * 1.02

        # Stories last days to weeks (a median of 9 days, at most 8 weeks) and start over the
        # span less the longest story. All durations shrink by `tscale` when the span is
        # shorter than 300 days, or when so many stories would be live at once that memory
        # would grow past MAX_LIVE_STORIES pending moments.
        tscale = min(1.0, self.span / (300 * DAY))
        for _ in range(2):
            max_span = 8 * WEEK * tscale
            window = max(1.0, self.span - max_span)
            live = self.stories * 1.4 * 9 * DAY * tscale / window
            if live > MAX_LIVE_STORIES:
                tscale *= MAX_LIVE_STORIES / live
        self.tscale = tscale
        self.max_span = max_span
        self.median_span = 9 * DAY * tscale
        self.arrival_window = max(1, int(self.span - max_span))

        self.counters = dict.fromkeys(PREFIX, 100_000)
        self.days: dict[int, str] = {}
        self.hm = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
        self.ss = [f"{s:02d}Z" for s in range(60)]
        self.share_rings: dict[str, list[Shareable]] = {b.name: [] for b in self.brands}
        self.share_pos = dict.fromkeys(self.share_rings, 0)
        self.recent: list[Moment | None] = [None] * RECENT_RING
        self.bad_count = 0
        self.episodes: dict[str, Callable[[_Customer], Episode]] = {
            "question": self._ep_question,
            "complaint": self._ep_complaint,
            "purchase": self._ep_purchase,
            "ask": self._ep_ask,
            "listen": self._ep_listen,
            "sales": self._ep_sales,
            "hr": self._ep_hr,
            "public": self._ep_public,
        }

    # -- output loop -------------------------------------------------------------------------

    def items(self) -> Iterator[Item]:
        n = self.n
        horizon = self.horizon
        heap: list[tuple[int, int, Moment, Story, int, _Customer]] = []
        emitted = 0
        index = 0
        stories = self.stories
        step = self.arrival_window / stories
        base = self.base
        next_arrival = base + int(self.r.random() * step)
        last_t = 0
        corrections = self.corrections
        rates: tuple[float, ...] = (
            (AMEND_RATE, RETRACT_RATE, DUPLICATE_RATE) if corrections else (0.0, 0.0, 0.0))
        rates += (BAD_RATE if self.bad_lines else 0.0,)
        noise_rate = sum(rates)
        # Moments until the next correction, duplicate or bad line: geometric gaps, so the
        # noise costs one draw per noisy item rather than one per moment.
        next_noise = self._noise_gap(noise_rate)
        share_rings = self.share_rings
        share_pos = self.share_pos
        recent = self.recent
        recent_pos = 0
        while emitted < n:
            if not heap or (index < stories and next_arrival <= heap[0][0]):
                if index >= stories:
                    # Out of planned stories before n: more, starting where the stream is.
                    next_arrival = min(horizon, max(next_arrival, last_t))
                story, length, c = self._new_story(index, next_arrival)
                index += 1
                if index < stories:
                    next_arrival = base + int((index + self.r.random()) * step)
                m = next(story)
                heappush(heap, (c.t, index - 1, m, story, length, c))
                continue
            # Ties in time go by story number: one pending moment per story keeps keys unique.
            last_t, k, m, story, left, c = heappop(heap)
            if left > 1:
                nm = next(story)
                heappush(heap, (c.t, k, nm, story, left - 1, c))
            else:
                story.close()
            yield m
            emitted += 1
            if m["direction"] == "public" and m["kind"] != "like":
                tenant = m["tenant"]
                ring = share_rings[tenant]
                entry = (_ref(m), m["channel"], m.get("sentiment", 0.0))
                if len(ring) < SHARE_RING:
                    ring.append(entry)
                else:
                    pos = share_pos[tenant]
                    ring[pos] = entry
                    share_pos[tenant] = (pos + 1) % SHARE_RING
            if corrections:
                recent[recent_pos] = m
                recent_pos = (recent_pos + 1) % RECENT_RING
            next_noise -= 1
            if next_noise > 0 or emitted >= n:
                continue
            next_noise = self._noise_gap(noise_rate)
            x = self.noise.random() * noise_rate
            extra: Item | None
            if x < rates[0]:
                extra = self._amend()
            elif x < rates[0] + rates[1]:
                extra = self._retract()
            elif x < rates[0] + rates[1] + rates[2]:
                extra = self._duplicate()
            else:
                extra = self._bad(m)
            if extra is not None:
                yield extra
                emitted += 1
        for _, _, _, story, _, _ in heap:
            story.close()

    def _noise_gap(self, rate: float) -> int:
        """Moments until the next noisy item, when each is followed by one with `rate`."""
        if rate <= 0.0:
            return self.n + 1
        return 1 + int(math.log(1.0 - self.noise.random()) / math.log(1.0 - rate))

    def _new_story(self, index: int, t0: int) -> tuple[Story, int, _Customer]:
        r = self.r
        customer = index % self.customers
        # Fibonacci hashing: a customer belongs to one tenant in all of their stories.
        brand = self.brands[((customer * 0x9E3779B1) >> 12) % len(self.brands)]
        audience = r.random() < 0.2
        # Story length: spread around what is left of the budget per story still to come;
        # audience stories (shares and likes) are short.
        left = self.stories - index
        mean = self.budget / left if left > 0 else self.per_story
        factor = r.lognormvariate(-0.18, 0.6) * (0.35 if audience else 1.1625)
        length = max(1, round(mean * factor))
        self.budget -= length
        span = min(self.max_span, max(MINUTE, self.median_span * r.lognormvariate(0.0, 0.7)))
        episodes = max(1.0, length / (2.0 if audience else 3.2))
        pace = max(MINUTE, int(span / episodes))
        c = _Customer(brand, f"c{customer:06d}", t0, pace, self.share_rings[brand.name])
        return (self._audience(c) if audience else self._customer(c)), length, c

    # -- corrections and noise -------------------------------------------------------------------

    def _pick_recent(self) -> tuple[int, Moment] | None:
        for _ in range(4):
            i = int(self.noise.random() * RECENT_RING)
            m = self.recent[i]
            if m is not None:
                return i, m
        return None

    def _amend(self) -> Moment | None:
        found = self._pick_recent()
        if found is None:
            return None
        _, m = found
        nr = self.noise.random
        source = m["source"]
        moment_id = derived_moment_id(m["tenant"], source["system"], source["id"])
        direction = m["direction"]
        if m["kind"] == "purchase":
            changes: dict[str, Any] = {"value": round(m.get("value", 10.0) * 0.9, 2)}
            reason = "partial refund: price corrected"
        elif direction == "outbound" and nr() < 0.4:
            current = m.get("function", "other")
            others = [f for f in STAFF if f not in (current, "leadership")]
            changes = {"function": others[int(nr() * len(others))]}
            reason = f"ticket re-assigned to {changes['function']}"
        else:
            old = m.get("sentiment", 0.0)
            new = max(-1.0, min(1.0, round(old + (nr() - 0.5) * 0.8, 2)))
            changes = {"sentiment": new}
            reason = ("sentiment re-scored by the listening model" if direction == "public"
                      else "sentiment corrected by the agent")
        return {"type": "amend", "moment_id": moment_id, "set": changes, "reason": reason}

    def _retract(self) -> Moment | None:
        found = self._pick_recent()
        if found is None:
            return None
        i, m = found
        self.recent[i] = None  # never amend or re-send a retracted moment
        source = m["source"]
        moment_id = derived_moment_id(m["tenant"], source["system"], source["id"])
        if m["direction"] == "public":
            reason = "posted by a spam account"
        else:
            reason = RETRACT_REASONS[int(self.noise.random() * len(RETRACT_REASONS))]
        return {"type": "retract", "moment_id": moment_id, "reason": reason}

    def _duplicate(self) -> Moment | None:
        found = self._pick_recent()
        if found is None:
            return None
        return found[1]  # the same record sent again: the same line

    def _bad(self, template: Moment) -> Item:
        nr = self.noise.random
        m = dict(template)
        system = m["source"]["system"]
        self.bad_count += 1  # a record of its own, numbered apart from the stories' records
        m["source"] = {"system": system, "id": f"{PREFIX[system]}X{self.bad_count}"}
        case = int(nr() * 6)
        if case == 0:
            present = [pair for pair in TYPOS if pair[0] in m]
            old, new = present[int(nr() * len(present))]
            return {(new if key == old else key): value for key, value in m.items()}
        if case == 1:
            wrong = WRONG_KIND[m["direction"]]
            m["kind"] = wrong[int(nr() * len(wrong))]
            return m
        if case == 2:
            m["sentiment"] = 1.7
            return m
        if case == 3:
            m["occurred_at"] = m["occurred_at"].rstrip("Z")
            return m
        if case == 4:
            cut = nr()
            if not self.raw_bytes:  # generate() yields dicts: a required field goes missing
                del m["customer_id"]
                return m
            line = orjson.dumps(m)
            return line[: 10 + int(cut * (len(line) - 20))] + b"\n"
        moment_id = derived_moment_id(m["tenant"], "zendesk", f"ZD-archived-{self.bad_count}")
        return {"type": "amend", "moment_id": moment_id, "set": {"sentiment": -0.5},
                "reason": "sentiment corrected by the agent"}

    # -- building moments ----------------------------------------------------------------------

    def _date(self, day: int) -> str:
        """The `YYYY-MM-DDT` prefix of a day since the epoch (cached: a year is 366 entries)."""
        text = datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%dT")
        self.days[day] = text
        return text

    def _mom(self, c: _Customer, dt: int, channel: str, direction: str, kind: str,
             function: str | None, system: str, actor: str | None = None,
             ask_type: str | None = None, sentiment: float | None = None,
             reach: int | None = None, value: float | None = None,
             reply_to: dict[str, str] | None = None, shares: dict[str, str] | None = None,
             ) -> Moment:
        t = c.t + dt
        if t > self.horizon:
            t = self.horizon
        c.t = t
        counter = self.counters[system] + 1
        self.counters[system] = counter
        sid = f"{PREFIX[system]}{counter}"
        day, rest = divmod(t, DAY)
        date = self.days.get(day)
        if date is None:
            date = self._date(day)
        m: Moment = {"tenant": c.tenant, "customer_id": c.cid,
                     "occurred_at": f"{date}{self.hm[rest // 60]}{self.ss[rest % 60]}",
                     "channel": channel, "direction": direction, "kind": kind}
        if function is not None:
            m["function"] = function
        if actor is not None:
            m["actor"] = actor
        if ask_type is not None:
            m["ask_type"] = ask_type
        if sentiment is not None:
            m["sentiment"] = sentiment
        if reach is not None:
            m["reach"] = reach
        if value is not None:
            m["value"] = value
            m["currency"] = c.brand.profile.currency
        if reply_to is not None:
            m["in_reply_to"] = reply_to
        if shares is not None:
            m["shares"] = shares
        if direction == "public" and kind != "like":
            m["url"] = f"https://{PLATFORM.get(channel, 'example.org/p')}/{counter}"
        m["source"] = {"system": system, "id": sid}
        return m

    def _delay(self, mean: float, least: int = 30) -> int:
        """Seconds until the next moment of an episode: at least `least`, exponential beyond."""
        return int((least + self.r.expovariate(1.0 / mean)) * self.tscale)

    def _actor(self, c: _Customer, function: str, channel: str) -> str | None:
        if channel in SOCIAL:
            return c.brand.help_handle if function == "service" else c.brand.handle
        if function == "marketing" and self.r.random() < 0.6:
            return None  # campaign automation
        staff = STAFF.get(function, STAFF["service"])
        return staff[int(self.r.random() * len(staff))]

    def _reach(self, channel: str) -> int:
        scale = REACH_SCALE.get(channel, 30)
        return min(5_000_000, int(scale * self.r.paretovariate(1.15)))

    @staticmethod
    def _system(channel: str, function: str) -> str:
        if function == "hr":
            return "greenhouse"
        if function in ("marketing", "sales"):
            return "hubspot"
        if channel == "chat" or channel == "web":
            return "intercom"
        return "zendesk"

    def _positive(self) -> float:
        return round(0.3 + 0.65 * self.r.random(), 2)

    def _negative(self) -> float:
        return round(-0.3 - 0.7 * self.r.random(), 2)

    # -- stories -------------------------------------------------------------------------------

    def _customer(self, c: _Customer) -> Story:
        r = self.r
        names = c.brand.episode_names
        cum = c.brand.episode_cum
        episodes = self.episodes
        while True:
            yield from episodes[names[bisect(cum, r.random())]](c)
            c.t += MINUTE + int(r.expovariate(1.0 / c.pace))

    def _audience(self, c: _Customer) -> Story:
        r = self.r
        while True:
            yield from self._ep_public(c)
            c.t += MINUTE + int(r.expovariate(1.0 / c.pace))

    def _ep_question(self, c: _Customer) -> Episode:
        r = self.r
        p = c.brand.profile
        x = r.random()
        fn = "service" if x < 0.6 else "product" if x < 0.85 else "sales"
        ch = CONTACT_CHANNELS[int(r.random() * len(CONTACT_CHANNELS))]
        system = self._system(ch, fn)
        q = self._mom(c, 0, ch, "inbound", "question", fn, system)
        yield q
        if r.random() < p.answer_rate:
            helped = r.random() < p.help_rate
            a = self._mom(c, self._delay(p.answer_delay), ch, "outbound",
                          "help" if helped else "answer", fn, system,
                          actor=self._actor(c, fn, ch), reply_to=_ref(q))
            yield a
            c.credit += 2 if helped else 1
            x = r.random()
            if x < 0.45:
                yield self._mom(c, self._delay(2 * HOUR), ch, "inbound", "reply", fn, system,
                                     sentiment=self._positive() if helped else None,
                                     reply_to=_ref(a))
            elif helped and x < 0.6:
                yield self._mom(c, self._delay(4 * HOUR), ch, "inbound", "praise", fn,
                                     system, sentiment=self._positive(), reply_to=_ref(a))
            if helped and r.random() < p.pos_help:
                yield from self._opinion(c, a, positive=True)
        elif r.random() < 0.6:
            # Nobody answered: the customer chases, angrier.
            comp = self._mom(c, self._delay(DAY, HOUR), ch, "inbound", "complaint", fn, system,
                             sentiment=self._negative(), reply_to=_ref(q))
            yield comp
            yield from self._after_complaint(c, comp, fn, ch, system)

    def _ep_complaint(self, c: _Customer) -> Episode:
        r = self.r
        x = r.random()
        fn = "logistics" if x < 0.45 else "product" if x < 0.75 else "service"
        ch = CONTACT_CHANNELS[int(r.random() * len(CONTACT_CHANNELS))]
        system = "shop" if fn == "logistics" and r.random() < 0.5 else self._system(ch, fn)
        comp = self._mom(c, 0, ch, "inbound", "complaint", fn, system, sentiment=self._negative())
        yield comp
        yield from self._after_complaint(c, comp, fn, ch, system)

    def _after_complaint(self, c: _Customer, comp: Moment, fn: str, ch: str,
                         system: str) -> Episode:
        r = self.r
        p = c.brand.profile
        if r.random() < p.complaint_care:
            responder = fn if r.random() < 0.5 else "service"
            sys2 = self._system(ch, responder) if responder != fn else system
            a = self._mom(c, self._delay(p.answer_delay), ch, "outbound", "apology", responder,
                          sys2, actor=self._actor(c, responder, ch), reply_to=_ref(comp))
            yield a
            c.credit += 1
            last = a
            helped = r.random() < 0.6 + p.help_rate / 2
            if helped:
                last = self._mom(c, self._delay(3 * HOUR), ch, "outbound", "help", responder, sys2,
                                 actor=self._actor(c, responder, ch), reply_to=_ref(a))
                yield last
                c.credit += 2
            if r.random() < 0.5:
                yield self._mom(c, self._delay(3 * HOUR), ch, "inbound", "reply", fn, system,
                                     sentiment=round(0.8 * r.random() - 0.1, 2),
                                     reply_to=_ref(last))
            x = r.random()
            if helped and x < p.pos_help:
                yield from self._opinion(c, last, positive=True)
            elif x > 1.0 - p.neg_handled:
                yield from self._opinion(c, comp, positive=False)
        elif r.random() < p.neg_ignored:
            post = yield from self._opinion(c, comp, positive=False)
            if post is not None and post.get("reach", 0) >= 300 and r.random() < p.respond_public:
                # The post went out: now the brand reacts, in public.
                responder = "leadership" if r.random() < 0.1 else "service"
                pch = post["channel"] if post["channel"] in SOCIAL else "email"
                yield self._mom(c, self._delay(p.answer_delay / 3), pch, "outbound",
                                     "apology", responder, "zendesk",
                                     actor=self._actor(c, responder, pch), reply_to=_ref(post))
                c.credit += 1

    def _opinion(self, c: _Customer, trigger: Moment,
                 positive: bool) -> Generator[Moment, None, Moment | None]:
        """A public post, review or mention about what just happened."""
        r = self.r
        x = r.random()
        if x < 0.55:
            kind = "post"
            ch = POST_CHANNELS[int(r.random() * len(POST_CHANNELS))]
        elif x < 0.8:
            kind, ch = "review", "review_site"
        else:
            kind = "mention"
            ch = MENTION_CHANNELS[int(r.random() * len(MENTION_CHANNELS))]
        if positive:
            dt = self._delay(20 * HOUR, HOUR)
            sentiment = self._positive()
        else:
            # Usually within 72 hours of the trigger; sometimes days later.
            dt = min(int(70 * HOUR * self.tscale), self._delay(9 * HOUR, 20 * MINUTE))
            if r.random() < 0.1:
                dt += int((3 + 5 * r.random()) * DAY * self.tscale)
            sentiment = self._negative()
        reply_to = _ref(trigger) if r.random() < 0.3 else None
        m = self._mom(c, dt, ch, "public", kind, None, "listening", sentiment=sentiment,
                      reach=self._reach(ch), reply_to=reply_to)
        yield m
        return m

    def _ep_purchase(self, c: _Customer) -> Episode:
        r = self.r
        p = c.brand.profile
        if r.random() < 0.45:
            ch = CAMPAIGN_CHANNELS[int(r.random() * len(CAMPAIGN_CHANNELS))]
            content = self._mom(c, 0, ch, "outbound", "content", "marketing", "hubspot",
                                actor=self._actor(c, "marketing", ch))
            yield content
            c.last_content = _ref(content)
            c.credit += 1
            if r.random() < 0.2:
                yield self._mom(c, self._delay(5 * HOUR), "instagram", "public", "like",
                                     None, "listening", reply_to=_ref(content))
        ch = "web" if r.random() < 0.8 else "in_person"
        value = round(r.lognormvariate(3.6, 0.8), 2)
        buy = self._mom(c, self._delay(DAY), ch, "inbound", "purchase", "sales", "shop",
                        value=value)
        yield buy
        c.credit += 1
        if r.random() < 0.5:  # the order confirmation: a notice, not a give
            yield self._mom(c, self._delay(2 * MINUTE, 5), "email", "outbound", "other",
                                 "sales", "shop", reply_to=_ref(buy))
        ship = self._mom(c, self._delay(6 * HOUR), "email", "outbound", "content", "logistics",
                         "shop", reply_to=_ref(buy))
        yield ship
        if r.random() < p.issue_rate:
            ch = CONTACT_CHANNELS[int(r.random() * len(CONTACT_CHANNELS))]
            comp = self._mom(c, self._delay(2 * DAY, HOUR), ch, "inbound", "complaint",
                             "logistics", "shop", sentiment=self._negative(), reply_to=_ref(ship))
            yield comp
            yield from self._after_complaint(c, comp, "logistics", ch, "shop")
            return
        if r.random() < p.gift_rate:
            kind = "gift" if r.random() < 0.5 else "content"
            yield self._mom(c, self._delay(2 * DAY), "email", "outbound", kind, "marketing",
                                 "hubspot", actor=self._actor(c, "marketing", "email"))
            c.credit += 2 if kind == "gift" else 1
        if r.random() < 0.55:
            ask = self._mom(c, self._delay(3 * DAY, DAY), "email", "outbound", "ask", "marketing",
                            "hubspot", ask_type="review")
            yield ask
            c.credit -= 1
            x = r.random()
            if x < 0.3 + 0.05 * max(0, min(c.credit, 4)):
                yield self._mom(c, self._delay(DAY), "review_site", "public", "review", None,
                                     "listening", sentiment=self._positive(),
                                     reach=self._reach("review_site"), reply_to=_ref(ask))
            elif x < 0.45:
                yield self._mom(c, self._delay(DAY), "email", "inbound", "decline",
                                     "marketing", "hubspot", reply_to=_ref(ask))

    def _ep_ask(self, c: _Customer) -> Episode:
        r = self.r
        brand = c.brand
        p = brand.profile
        fn = p.ask_functions[int(r.random() * len(p.ask_functions))]
        ch = CAMPAIGN_CHANNELS[int(r.random() * len(CAMPAIGN_CHANNELS))]
        system = self._system(ch, fn)
        ask_type = brand.ask_names[bisect(brand.ask_cum, r.random())]
        unanswered = 0
        last: Moment | None = None
        for attempt in range(p.max_asks):
            if attempt and r.random() >= p.ask_again:
                break
            dt = 0 if attempt == 0 else self._delay(2 * DAY, 6 * HOUR)
            last = self._mom(c, dt, ch, "outbound", "ask", fn, system,
                             actor=self._actor(c, fn, ch), ask_type=ask_type)
            yield last
            c.credit -= 2 if ask_type in ("purchase", "referral") else 1
            # The more the brand has given, the likelier an answer; repeated asks wear it out.
            willing = 0.35 + 0.06 * max(-3, min(c.credit, 5)) - 0.1 * attempt
            x = r.random()
            if x < willing:
                yield from self._answer_ask(c, last, ask_type, fn, ch, system)
                return
            if x < willing + 0.12:
                yield self._mom(c, self._delay(8 * HOUR), ch, "inbound", "decline", fn,
                                     system, reply_to=_ref(last))
                return
            unanswered += 1
        if last is None or unanswered < 2:
            return
        if r.random() < p.neg_pushy * (unanswered - 1):
            yield from self._opinion(c, last, positive=False)
        elif r.random() < 0.3:
            quit_ = self._mom(c, self._delay(DAY), "email", "inbound", "other", fn, system,
                              reply_to=_ref(last))
            quit_["attributes"] = {"action": "unsubscribe"}
            yield quit_

    def _answer_ask(self, c: _Customer, ask: Moment, ask_type: str, fn: str, ch: str,
                    system: str) -> Episode:
        r = self.r
        dt = self._delay(10 * HOUR)
        if ask_type == "purchase":
            value = round(r.lognormvariate(3.8, 0.8), 2)
            yield self._mom(c, dt, "web", "inbound", "purchase", "sales", "shop", value=value)
        elif ask_type == "review":
            yield self._mom(c, dt, "review_site", "public", "review", None, "listening",
                                 sentiment=round(r.random() * 1.1 - 0.2, 2),
                                 reach=self._reach("review_site"), reply_to=_ref(ask))
        elif ask_type == "like":
            yield self._mom(c, dt, "instagram", "public", "like", None, "listening",
                                 reply_to=_ref(ask))
        elif ask_type == "share" and c.ring:
            yield from self._share(c, dt)
        else:
            yield self._mom(c, dt, ch, "inbound", "accept", fn, system, reply_to=_ref(ask))
            if ask_type == "survey" and r.random() < 0.7:
                yield self._mom(c, self._delay(HOUR), "web", "inbound", "feedback", "product",
                                     "intercom", sentiment=round(r.random() * 1.4 - 0.6, 2))
        c.credit += 1

    def _ep_listen(self, c: _Customer) -> Episode:
        r = self.r
        fn = "product" if r.random() < 0.6 else "service"
        ch = ("email", "web", "chat", "phone")[int(r.random() * 4)]
        system = self._system(ch, fn)
        q = self._mom(c, 0, ch, "outbound", "question", fn, system, actor=self._actor(c, fn, ch))
        yield q
        if r.random() < 0.6:
            fb = self._mom(c, self._delay(DAY), ch, "inbound", "feedback", fn, system,
                           sentiment=round(r.random() * 1.5 - 0.5, 2), reply_to=_ref(q))
            yield fb
            c.credit += 1
            if r.random() < 0.5:
                yield self._mom(c, self._delay(DAY), "email", "outbound", "answer", "product",
                                     system, actor=self._actor(c, "product", "email"),
                                     reply_to=_ref(fb))
                c.credit += 1

    def _ep_sales(self, c: _Customer) -> Episode:
        r = self.r
        ch = "linkedin" if r.random() < 0.5 else "email"
        intro = self._mom(c, 0, ch, "outbound", "introduction", "sales", "hubspot",
                          actor=self._actor(c, "sales", ch))
        yield intro
        c.credit += 1
        ask = self._mom(c, self._delay(2 * DAY, HOUR), ch, "outbound", "ask", "sales", "hubspot",
                        actor=self._actor(c, "sales", ch), ask_type="meeting")
        yield ask
        c.credit -= 1
        x = r.random()
        if x < 0.4:
            yield self._mom(c, self._delay(DAY), ch, "inbound", "accept", "sales", "hubspot",
                                 reply_to=_ref(ask))
            yield self._mom(c, self._delay(4 * DAY, HOUR), "in_person", "outbound", "help",
                                 "sales", "hubspot", actor=self._actor(c, "sales", "in_person"))
            c.credit += 2
            if r.random() < 0.45:
                value = round(r.lognormvariate(6.0, 1.0), 2)
                yield self._mom(c, self._delay(5 * DAY), "email", "inbound", "purchase",
                                     "sales", "shop", value=value)
        elif x < 0.6:
            yield self._mom(c, self._delay(DAY), ch, "inbound", "decline", "sales", "hubspot",
                                 reply_to=_ref(ask))

    def _ep_hr(self, c: _Customer) -> Episode:
        r = self.r
        p = c.brand.profile
        if r.random() < 0.35:
            ch = "linkedin" if r.random() < 0.7 else "email"
            yield self._mom(c, 0, ch, "outbound", "content", "hr", "greenhouse",
                                 actor=self._actor(c, "hr", ch))
            c.credit += 1
            return
        ch = "email" if r.random() < 0.6 else "linkedin"
        app = self._mom(c, 0, ch, "inbound", "question", "hr", "greenhouse")
        yield app
        if r.random() < p.answer_rate - 0.1:
            a = self._mom(c, self._delay(2 * DAY, HOUR), "email", "outbound", "answer", "hr",
                          "greenhouse", actor=self._actor(c, "hr", "email"), reply_to=_ref(app))
            yield a
            c.credit += 1
            ask = self._mom(c, self._delay(DAY), "email", "outbound", "ask", "hr", "greenhouse",
                            actor=self._actor(c, "hr", "email"), ask_type="meeting")
            yield ask
            c.credit -= 1
            kind = "accept" if r.random() < 0.75 else "decline"
            yield self._mom(c, self._delay(DAY), "email", "inbound", kind, "hr", "greenhouse",
                                 reply_to=_ref(ask))
        elif r.random() < 0.35:
            # Ghosted applicants write reviews of the employer.
            yield self._mom(c, self._delay(5 * DAY, DAY), "review_site", "public", "review",
                                 None, "listening", sentiment=self._negative(),
                                 reach=self._reach("review_site"))

    def _share(self, c: _Customer, dt: int) -> Episode:
        """Share a recent public moment of the tenant (a post, or a share of one)."""
        r = self.r
        ring = c.ring
        if not ring:
            return
        ref, ch, root_sentiment = ring[int(r.random() * len(ring))]
        sentiment: float | None = None
        if r.random() < 0.4 and abs(root_sentiment) >= 0.3:
            sentiment = self._positive() if root_sentiment > 0 else self._negative()
        yield self._mom(c, dt, ch, "public", "share", None, "listening", sentiment=sentiment,
                             reach=self._reach(ch), shares=dict(ref))

    def _ep_public(self, c: _Customer) -> Episode:
        r = self.r
        x = r.random()
        if x < 0.62 and c.ring:
            yield from self._share(c, 0)
        elif x < 0.85:
            yield self._mom(c, 0, "instagram" if r.random() < 0.6 else "facebook", "public",
                                 "like", None, "listening", reply_to=c.last_content)
        else:
            ch = MENTION_CHANNELS[int(r.random() * len(MENTION_CHANNELS))]
            y = r.random()
            sentiment = (self._positive() if y < 0.35 else self._negative() if y < 0.5
                         else round(r.random() * 0.5 - 0.25, 2))
            yield self._mom(c, 0, ch, "public", "mention", None, "listening",
                                 sentiment=sentiment, reach=self._reach(ch))


def generate(n: int, *, seed: int = 7, tenants: Sequence[str] = ("acme", "globex"),
             start: datetime = DEFAULT_START, customers: int | None = None,
             corrections: bool = True, bad_lines: bool = False,
             until: datetime | None = None) -> Iterator[Moment]:
    """Yield exactly `n` wire-format v1 messages (JSON-ready dicts), deterministically.

    Moments span at most a year from `start`, and end no later than 2026-11-25
    unless `until` (or a `start` past that day) says otherwise. `customers`
    defaults to about n / 12. With `corrections`, about 1 % of the items are
    amendments, 0.2 % retractions and 0.5 % exact duplicates of earlier
    moments. With `bad_lines`, about 0.5 % are realistic bad input; the
    truncated JSON line that `generate_lines` produces cannot be a dict, so
    here it is a moment whose `customer_id` is missing (everything else is
    the same as `generate_lines`).
    """
    for item in _Sampler(n, seed, tenants, start, customers, corrections, bad_lines, until,
                         raw_bytes=False).items():
        if isinstance(item, bytes):  # pragma: no cover - raw_bytes=False never makes bytes
            raise AssertionError("generate() produced raw bytes")
        yield item


def generate_lines(n: int, *, seed: int = 7, tenants: Sequence[str] = ("acme", "globex"),
                   start: datetime = DEFAULT_START, customers: int | None = None,
                   corrections: bool = True, bad_lines: bool = False,
                   until: datetime | None = None) -> Iterator[bytes]:
    """Yield exactly `n` JSONL lines (orjson-encoded, each ending in a newline).

    As `generate`; with `bad_lines`, about 0.5 % of the lines are bad input:
    a typo'd field name, a kind the direction does not allow, sentiment 1.7,
    a timestamp without an offset, a truncated JSON line, or an amendment of
    a moment that was never recorded.
    """
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    for item in _Sampler(n, seed, tenants, start, customers, corrections, bad_lines, until,
                         raw_bytes=True).items():
        yield item if isinstance(item, bytes) else dumps(item, option=newline)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mot.adapters.sources.sample N > moments.jsonl`."""
    parser = argparse.ArgumentParser(
        prog="python -m mot.adapters.sources.sample",
        description="Write N realistic wire-format v1 moments as JSONL to standard output.")
    parser.add_argument("n", type=int, help="how many lines to write")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tenants", default="acme,globex",
                        help="comma-separated tenants (default: acme,globex)")
    parser.add_argument("--customers", type=int, default=None,
                        help="number of customers (default: about N/12)")
    parser.add_argument("--start", type=datetime.fromisoformat, default=DEFAULT_START,
                        help="RFC 3339 start time (default: 2026-01-01T00:00:00Z)")
    parser.add_argument("--no-corrections", action="store_true",
                        help="no amendments, retractions or duplicate lines")
    parser.add_argument("--bad-lines", action="store_true",
                        help="about 0.5%% of the lines are bad input")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("N must be >= 0")
    start: datetime = args.start
    if start.tzinfo is None:
        parser.error("--start needs an offset, such as Z")
    tenants = [t for t in args.tenants.split(",") if t]
    out = sys.stdout.buffer
    written = 0
    try:
        for line in generate_lines(args.n, seed=args.seed, tenants=tenants, start=start,
                                   customers=args.customers,
                                   corrections=not args.no_corrections,
                                   bad_lines=args.bad_lines):
            out.write(line)
            written += 1
            if written % 100_000 == 0:
                print(f"sample: {written:,} / {args.n:,} moments", file=sys.stderr, flush=True)
        out.flush()
    except BrokenPipeError:
        return 1
    print(f"sample: wrote {written:,} moments", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DEFAULT_START", "LATEST", "Profile", "generate", "generate_lines", "main"]
