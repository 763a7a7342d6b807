"""X (Twitter) API v2: posts from tweet lookup, search, timelines and the filtered stream.

A record is one post with the expansions that concern it: `{"data": <tweet>, "includes":
{"users": [...], "tweets": [...]}}`. A line may hold a whole response (`data` an array, with
`includes` and `meta`); it is split into one such record per post. A bare tweet object is
accepted too (without includes). The mapping (docs/sources.md has the table):

- identity: `{"system": "x", "id": <post id>}`;
- the brand's own accounts (`[x] handles`, by username, or `accounts`, by user id) make
  outbound moments with the customer they address: a reply (`answer` to the
  `in_reply_to_user_id`), a quote (`answer` to the quoted post's author) or a retweet
  (`content` for the retweeted author); a brand post addressed to no one is no moment;
- every other author makes a public moment, its customer the author: a retweet is a `share`
  of the post it retweets (`shares`); a reply or quote is a `mention` (when it addresses or
  names a brand account) or a `post`, with `in_reply_to` the post it replies to or quotes;
- `reach`: the author's `public_metrics.followers_count` (from `includes.users`);
- `url`: https://x.com/<username>/status/<id>.

Identity evidence (SPEC §2, Links; off with `[x] links = false`): when `includes.users` gives
the username of a moment's customer, the customer (`x:<user id>`) is linked to the handle's id
(`x:@<username>`, in lower case), so that a handle another source knows (a Zendesk user's X
identity, a listening tool's author) joins the account. The link is dated at the account's
creation, not the post's time, so that posts never re-assert a link a person took back
(`handle_evidence_time`).
"""

from __future__ import annotations

from typing import Any, Final

from mot.adapters.vendors.base import (
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
    obj,
    objects,
    records_of,
    source_ref,
    text,
    timestamp,
)
from mot.adapters.vendors.config import VendorConfig, VendorSettings

SYSTEM: Final = "x"


def records(value: Any) -> list[Record]:
    """One record per post: a response's `data` split, each with the includes it needs."""
    if isinstance(value, list):
        return records_of(value, "the array")
    if not isinstance(value, dict):
        raise Unmappable(f"expected a JSON object, got {type(value).__name__}")
    if "data" not in value:
        if "id" in value and "text" in value:
            return [value]  # a bare tweet object
        errors = objects(value.get("errors"))
        if errors:
            first = errors[0]
            raise Unmappable(f"an X API error response: {text(first.get('title')) or ''} "
                             f"{text(first.get('detail')) or ''}".strip())
        if "meta" in value:
            return []  # a page with no results (`meta.result_count` 0)
        raise Unmappable("neither an X API v2 response (`data`, `includes`) nor a tweet object")
    data = value["data"]
    if isinstance(data, dict):
        return [value]
    if not isinstance(data, list):
        raise Unmappable("`data`: expected a post object or an array of posts")
    includes = obj(value.get("includes"))
    users = {text(u.get("id")): u for u in objects(includes.get("users"))}
    tweets = {text(t.get("id")): t for t in objects(includes.get("tweets"))}
    return [_with_includes(tweet, users, tweets) for tweet in records_of(data, "`data`")]


def _with_includes(tweet: Record, users: dict[str | None, Any], tweets: dict[str | None, Any]) -> Record:
    referenced = [tweets[ref_id] for ref in objects(tweet.get("referenced_tweets"))
                  if (ref_id := text(ref.get("id"))) in tweets]
    user_ids = [text(tweet.get("author_id")), text(tweet.get("in_reply_to_user_id")),
                *(text(t.get("author_id")) for t in referenced)]
    wanted_users = [users[uid] for uid in dict.fromkeys(user_ids) if uid in users]
    includes: dict[str, Any] = {}
    if wanted_users:
        includes["users"] = wanted_users
    if referenced:
        includes["tweets"] = referenced
    return {"data": tweet, "includes": includes} if includes else {"data": tweet}


def map_record(record: Record, config: VendorConfig) -> list[Wire]:
    settings = config[SYSTEM]
    tweet = record["data"] if isinstance(record.get("data"), dict) else record
    includes = obj(record.get("includes")) if tweet is not record else {}
    users = {text(u.get("id")): u for u in objects(includes.get("users"))}
    tweets = {text(t.get("id")): t for t in objects(includes.get("tweets"))}
    post_id = text(tweet.get("id"))
    if post_id is None:
        raise Unmappable("a post without id")
    author = text(tweet.get("author_id"))
    if author is None:
        raise Unmappable(f"post {post_id} has no author_id (request tweet.fields=author_id)")
    occurred_at = timestamp(tweet.get("created_at"),
                            f"post {post_id}: created_at (request tweet.fields=created_at)")
    refs = {text(ref.get("type")): text(ref.get("id")) for ref in objects(tweet.get("referenced_tweets"))}
    author_user = obj(users.get(author))
    username = text(author_user.get("username"))
    url = f"https://x.com/{username}/status/{post_id}" if username else f"https://x.com/i/web/status/{post_id}"
    attributes = compact({
        "username": username, "conversation_id": text(tweet.get("conversation_id")),
        "lang": text(tweet.get("lang")), "quoted_id": refs.get("quoted"),
    })
    function = _brand_function(author, users, settings, f"post {post_id}")
    common = {"tenant": settings.tenant, "occurred_at": occurred_at, "channel": "twitter", "url": url,
              "source": source_ref(SYSTEM, post_id), "attributes": attributes}
    if function is not None:
        answer = _outbound(tweet, refs, users, tweets, settings, function, author, username, common)
        addressed = str(answer["customer_id"]).removeprefix(settings.customer_prefix)
        return [answer, *_handle_link(settings, addressed, users)]
    followers = number(obj(author_user.get("public_metrics")).get("followers_count"),
                       f"post {post_id}: followers_count")
    reach = max(int(followers), 0) if followers is not None else 0
    customer = settings.customer(author)
    handle = _handle_link(settings, author, users)
    if refs.get("retweeted"):
        return [moment(customer_id=customer, direction="public", kind="share", reach=reach,
                       shares=source_ref(SYSTEM, str(refs["retweeted"])), **common), *handle]
    target = refs.get("replied_to") or refs.get("quoted")
    return [moment(
        customer_id=customer, direction="public",
        kind="mention" if _addresses_brand(tweet, refs, users, tweets, settings) else "post",
        reach=reach, in_reply_to=source_ref(SYSTEM, target) if target else None, **common,
    ), *handle]


def customers(record: Record, config: VendorConfig) -> list[str]:
    """The accounts a post names other than the brand's: its author, the one it replies to,
    the authors of the posts it references, and the handles' ids of those in includes.users."""
    settings = config[SYSTEM]
    tweet = record["data"] if isinstance(record.get("data"), dict) else record
    includes = obj(record.get("includes")) if tweet is not record else {}
    named = {text(v) for v in (tweet.get("author_id"), tweet.get("in_reply_to_user_id"),
                               *(t.get("author_id") for t in objects(includes.get("tweets"))))}
    named -= {None, *(i for i in named if i is not None and settings.has("accounts", i))}
    handles = [handle_id(settings, name) for u in objects(includes.get("users"))
               if text(u.get("id")) in named and (name := text(u.get("username")))]
    return [*customer_ids(settings, sorted(i for i in named if i is not None)), *handles]


def _handle_link(settings: VendorSettings, user_id: str, users: dict[str | None, Any]
                 ) -> list[Wire]:
    """The customer's account linked to its handle's id, when includes.users gives its username."""
    user = obj(users.get(user_id))
    username = text(user.get("username"))
    if username is None:
        return []
    return link(settings, settings.customer(user_id), handle_id(settings, username),
                handle_evidence_time(user), f"X user {user_id} is @{username}")


X_LAUNCH: Final = "2006-03-21T00:00:00Z"
"""No X account is older: the time of a handle link whose account's creation is not given."""


def handle_evidence_time(user: dict[str, Any]) -> str:
    """The time of a handle link's evidence: the account's creation (`created_at` of the user in
    includes.users, with `user.fields=created_at`), else X's launch; never a post's time.

    The rule for a vendor's link against a person's explicit unlink (SPEC §2: a pair's latest
    evidence decides): a link X's posts make does not override a later manual unlink. Dated
    this way, every post repeats the same link (the ledger records it once; the others are
    duplicates), and an unlink dated after the account's creation (`mot identity unlink`
    dates it now) stays the pair's state whatever posts come after it.
    """
    try:
        return timestamp(user.get("created_at"), "created_at")
    except Unmappable:
        return X_LAUNCH


def _outbound(tweet: Record, refs: dict[str | None, str | None], users: dict[str | None, Any],
              tweets: dict[str | None, Any], settings: VendorSettings, function: str, author: str,
              username: str | None, common: dict[str, Any]) -> Wire:
    post_id = str(tweet.get("id"))
    if refs.get("retweeted"):
        target, kind = refs["retweeted"], "content"
        customer = text(obj(tweets.get(target)).get("author_id"))
    elif refs.get("replied_to"):
        target, kind = refs["replied_to"], "answer"
        customer = text(tweet.get("in_reply_to_user_id")) or text(obj(tweets.get(target)).get("author_id"))
    elif refs.get("quoted"):
        target, kind = refs["quoted"], "answer"
        customer = text(obj(tweets.get(target)).get("author_id"))
    else:
        raise NotAMoment("a post by the brand's own account addressed to no one (not a reply, quote or "
                         "retweet)")
    if customer is None:
        raise Unmappable(f"post {post_id}: cannot tell whose post the brand answered (request "
                         "expansions=referenced_tweets.id,in_reply_to_user_id)")
    if _brand_function(customer, users, settings, f"post {post_id}") is not None:
        raise NotAMoment("the brand replying to, quoting or retweeting one of its own accounts")
    return moment(
        customer_id=settings.customer(customer), direction="outbound", kind=kind, function=function,
        actor=f"@{username}" if username else author,
        in_reply_to=source_ref(SYSTEM, str(target)), **common,
    )


def _brand_function(user_id: str, users: dict[str | None, Any], settings: VendorSettings,
                    where: str) -> str | None:
    """The function of a brand account, or None when `user_id` is not one of the brand's accounts."""
    by_id = settings.function("accounts", user_id)
    if by_id is not None:
        return by_id
    if not settings.tables.get("handles"):
        return None
    user = users.get(user_id)
    if user is None:
        raise Unmappable(f"{where}: cannot tell whether user {user_id} is one of the brand's accounts: "
                         "it is not in includes.users (request expansions=author_id,in_reply_to_user_id, "
                         "or list the brand's user ids under [x] accounts)")
    return settings.function("handles", text(obj(user).get("username")))


def _addresses_brand(tweet: Record, refs: dict[str | None, str | None], users: dict[str | None, Any],
                     tweets: dict[str | None, Any], settings: VendorSettings) -> bool:
    mentioned = [text(m.get("username")) for m in objects(obj(tweet.get("entities")).get("mentions"))]
    if any(settings.has("handles", name) for name in mentioned if name):
        return True
    addressed = [text(tweet.get("in_reply_to_user_id")),
                 *(text(obj(tweets.get(ref)).get("author_id")) for ref in refs.values() if ref)]
    for user_id in addressed:
        if user_id is None:
            continue
        if settings.has("accounts", user_id):
            return True
        name = text(obj(users.get(user_id)).get("username"))
        if name and settings.has("handles", name):
            return True
    return False


SOURCE: Final = VendorSource(
    name=SYSTEM,
    title="X API v2 responses (tweet lookup, search, timelines, filtered stream)",
    formats=("jsonl",),
    records=records,
    map=map_record,
    customers=customers,
)
