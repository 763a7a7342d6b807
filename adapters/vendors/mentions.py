"""Social-listening mention exports (Brandwatch, Talkwalker, Meltwater and the like), as public moments.

A record is one row of the export's CSV (or one JSON object per line with the same keys).
Which column holds which field is the documented default below, overridable per field in
`[mentions.columns]` (a column name or a list of them, compared without case):

| field     | default columns (first present wins)                                      |
|-----------|---------------------------------------------------------------------------|
| id        | Mention Id, Resource Id, Post Id, Id                                      |
| date      | Date, Published, Published Date, Created At, Created                      |
| author    | Author, Author Handle, Username, Screen Name, Author Name                 |
| url       | Url, Link, Permalink                                                      |
| sentiment | Sentiment, Sentiment Score, Tone                                          |
| reach     | Reach, Estimated Reach, Potential Reach, Audience, Followers               |
| reply_to  | Reply To Id, Reply To, In Reply To, Parent Id                             |
| repost_of | Repost Of Id, Repost Of, Reposted Id, Retweet Of, Shared Id               |
| channel   | Channel, Platform, Page Type, Source, Media Type                          |
| thread    | Thread Id, Thread, Conversation Id                                        |

Every mention is a public moment of its author: a `share` when it reposts another mention
(`shares` names it), a `review` on a review site, else a `mention`; `in_reply_to` names the
mention it replies to. Sentiment is a label (`[mentions.sentiment_labels]`, default positive
0.6, negative -0.6, neutral and mixed 0) or a score divided by `sentiment_scale` (default 1).
A time without offset is read in `[mentions] timezone` (default UTC). Posts by the brand's own
handles (`[mentions] handles`) are no customer moments.

Identity evidence (SPEC §2, Links; off with `[mentions] links = false`): a mention on X whose
author is a handle (`@jomartin_lyon`) links its customer to the handle's id under the X
section's `customer_prefix` (`x:@jomartin_lyon`), which X records link to the account.
"""

from __future__ import annotations

import re
from typing import Any, Final
from urllib.parse import urlsplit

from mot.adapters.vendors.base import (
    Fields,
    NotAMoment,
    Record,
    Unmappable,
    VendorSource,
    Wire,
    compact,
    customer_ids,
    handle_id,
    link,
    moment,
    number,
    one_or_many,
    source_ref,
    text,
    timestamp,
)
from mot.adapters.vendors.config import VendorConfig, VendorSettings

SYSTEM: Final = "mentions"
MAX_URL: Final = 2048
X_HANDLE: Final = re.compile(r"@?[A-Za-z0-9_]{1,15}")  # X's rule for usernames

# What a listening tool calls a platform or page type, and the wire channel it means.
PLATFORMS: Final = {
    "twitter": "twitter", "x": "twitter", "tweet": "twitter", "facebook": "facebook",
    "instagram": "instagram", "linkedin": "linkedin", "youtube": "youtube", "tiktok": "tiktok",
    "forum": "forum", "forums": "forum", "reddit": "forum", "blog": "blog", "blogs": "blog",
    "review": "review_site", "reviews": "review_site", "review site": "review_site",
    "news": "web", "online news": "web", "web": "web", "website": "web",
}
DOMAINS: Final = {
    "twitter.com": "twitter", "x.com": "twitter", "facebook.com": "facebook", "fb.com": "facebook",
    "instagram.com": "instagram", "linkedin.com": "linkedin", "youtube.com": "youtube",
    "youtu.be": "youtube", "tiktok.com": "tiktok", "reddit.com": "forum", "trustpilot.com": "review_site",
    "yelp.com": "review_site", "g2.com": "review_site", "tripadvisor.com": "review_site",
    "capterra.com": "review_site", "glassdoor.com": "review_site",
}


def records(value: Any) -> list[Record]:
    """A CSV row, or a JSON mention per line (or a list of them, or `{"results"|"mentions": [...]}`)."""
    return one_or_many(value, ("results", "mentions", "data"))


def map_record(record: Record, config: VendorConfig) -> list[Wire]:
    settings = config[SYSTEM]
    fields = Fields(record)

    def column(name: str) -> Any:
        return fields.get(*settings.columns[name])

    mention_id = text(column("id"))
    url = text(column("url"))
    identity = mention_id or url
    if identity is None:
        raise Unmappable(f"no mention id ({_names(settings, 'id')}) and no url ({_names(settings, 'url')}): "
                         "nothing identifies this mention (set [mentions.columns] id)")
    author = text(column("author"))
    if author is None:
        raise Unmappable(f"mention {identity}: no author ({_names(settings, 'author')})")
    if settings.has("handles", author):
        raise NotAMoment(f"posted by the brand's own account {author}")
    occurred_at = timestamp(column("date"), f"mention {identity}: date ({_names(settings, 'date')})",
                            naive=settings.timezone)
    reach = number(column("reach"), f"mention {identity}: reach")
    if reach is not None and reach < 0:
        raise Unmappable(f"mention {identity}: reach {reach:g} is negative")
    channel = _channel(text(column("channel")), url)
    reply_to = text(column("reply_to"))
    repost_of = text(column("repost_of"))
    kind = "share" if repost_of else "review" if channel == "review_site" else "mention"
    customer = settings.customer(author)
    handle = (link(settings, customer, handle_id(config["x"], author), occurred_at,
                   f"the X handle of mention {identity}'s author")
              if channel == "twitter" and X_HANDLE.fullmatch(author) else [])
    return [moment(
        tenant=settings.tenant,
        customer_id=customer,
        occurred_at=occurred_at,
        channel=channel,
        direction="public",
        kind=kind,
        sentiment=_sentiment(column("sentiment"), settings, identity),
        reach=int(reach) if reach is not None else None,
        in_reply_to=source_ref(settings.system, reply_to) if reply_to else None,
        shares=source_ref(settings.system, repost_of) if repost_of else None,
        url=url if url and len(url) <= MAX_URL else None,
        source=source_ref(settings.system, identity),
        attributes=compact({"platform": text(column("channel")), "thread_id": text(column("thread"))}),
    ), *handle]


def customers(record: Record, config: VendorConfig) -> list[str]:
    """The author a mention names, and the id of their X handle when it may be one."""
    settings = config[SYSTEM]
    author = text(Fields(record).get(*settings.columns["author"]))
    if author is None:
        return []
    handle = [handle_id(config["x"], author)] if X_HANDLE.fullmatch(author) else []
    return [*customer_ids(settings, [author]), *handle]


def _sentiment(value: Any, settings: VendorSettings, identity: str) -> float | None:
    cell = text(value)
    if cell is None:
        return None
    label = settings.sentiment_labels.get(cell.lower())
    if label is not None:
        return label
    try:
        score = float(cell)
    except ValueError:
        known = ", ".join(sorted(settings.sentiment_labels))
        raise Unmappable(f"mention {identity}: sentiment label {cell!r} is unknown (known: {known}; add "
                         "it under [mentions.sentiment_labels])") from None
    scaled = score / settings.sentiment_scale
    if not -1 <= scaled <= 1:
        scale = f"{settings.sentiment_scale:g}"
        raise Unmappable(f"mention {identity}: sentiment {cell} is outside [-{scale}, {scale}] (set "
                         "[mentions] sentiment_scale to the tool's scale, such as 5 or 100)")
    return round(scaled, 6)


def _channel(platform: str | None, url: str | None) -> str:
    if platform is not None:
        known = PLATFORMS.get(platform.strip().lower())
        if known is not None:
            return known
    if url is not None:
        host = (urlsplit(url).hostname or "").lower().removeprefix("www.").removeprefix("m.")
        for domain, channel in DOMAINS.items():
            if host == domain or host.endswith("." + domain):
                return channel
        return "web"
    return "other"


def _names(settings: VendorSettings, field: str) -> str:
    return " / ".join(settings.columns[field])


SOURCE: Final = VendorSource(
    name=SYSTEM,
    title="Social-listening mention exports (CSV or JSON lines; columns configurable)",
    formats=("csv", "jsonl"),
    records=records,
    map=map_record,
    customers=customers,
)
