"""X API v2 responses to wire moments: brand accounts, replies, quotes, retweets, envelopes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mot.adapters.vendors import NotAMoment, Unmappable, VendorConfig
from mot.adapters.vendors.x import map_record, records
from mot.domain.messages import RecordMoment, validate_message

CONFIG = VendorConfig.from_dict({"tenant": "acme", "x": {
    "handles": {"acmehelp": "service", "@Acme": "marketing"}, "accounts": {"1400000000000000009": "sales"}}})
NOW = datetime(2026, 1, 1, tzinfo=UTC)

JO = {"id": "101", "name": "Jo", "username": "jomartin_lyon", "public_metrics": {"followers_count": 1840}}
PRIYA = {"id": "102", "name": "Priya", "username": "priyan_builds",
         "public_metrics": {"followers_count": 45200}}
HELP = {"id": "2", "name": "Acme Help", "username": "acmehelp", "public_metrics": {"followers_count": 22510}}
ACME = {"id": "1", "name": "Acme", "username": "acme", "public_metrics": {"followers_count": 310200}}
USERS = [JO, PRIYA, HELP, ACME]


def post(post_id: str, author: str, *refs: tuple[str, str], **extra: Any) -> dict[str, Any]:
    tweet: dict[str, Any] = {"id": post_id, "edit_history_tweet_ids": [post_id], "text": "…",
                             "author_id": author, "conversation_id": "900", "lang": "en",
                             "created_at": "2025-05-02T08:30:12.000Z", **extra}
    if refs:
        tweet["referenced_tweets"] = [{"type": kind, "id": ref} for kind, ref in refs]
    return tweet


COMPLAINT = post("900", "101", entities={"mentions": [{"start": 0, "end": 9, "username": "acmehelp"}]})


def single(tweet: dict[str, Any], *referenced: dict[str, Any]) -> dict[str, Any]:
    includes: dict[str, Any] = {"users": USERS}
    if referenced:
        includes["tweets"] = list(referenced)
    return {"data": tweet, "includes": includes}


def one(record: dict[str, Any], config: VendorConfig = CONFIG) -> dict[str, Any]:
    """The moment of a record (its handle link, when there is one, is checked in test_vendor_links)."""
    message, *links = map_record(record, config)
    assert isinstance(validate_message(message, NOW), RecordMoment), message
    assert [link["type"] for link in links] in ([], ["link"]), links
    return message


def test_customer_post_naming_the_brand_is_a_public_mention() -> None:
    message = one(single(COMPLAINT))
    assert message == {
        "tenant": "acme", "customer_id": "x:101", "occurred_at": "2025-05-02T08:30:12Z", "channel": "twitter",
        "direction": "public", "kind": "mention", "reach": 1840,
        "url": "https://x.com/jomartin_lyon/status/900", "source": {"system": "x", "id": "900"},
        "attributes": {"username": "jomartin_lyon", "conversation_id": "900", "lang": "en"},
    }


def test_brand_reply_is_an_outbound_answer_to_the_author_replied_to() -> None:
    reply = post("901", "2", ("replied_to", "900"), in_reply_to_user_id="101")
    message = one(single(reply, COMPLAINT))
    assert (message["direction"], message["kind"], message["customer_id"]) == ("outbound", "answer", "x:101")
    assert (message["function"], message["actor"]) == ("service", "@acmehelp")
    assert message["in_reply_to"] == {"system": "x", "id": "900"}
    assert "reach" not in message


def test_retweet_is_a_share_of_the_retweeted_post() -> None:
    message = one(single(post("902", "102", ("retweeted", "900")), COMPLAINT))
    assert (message["direction"], message["kind"], message["reach"]) == ("public", "share", 45200)
    assert message["shares"] == {"system": "x", "id": "900"}
    assert message["customer_id"] == "x:102"


def test_quote_and_reply_by_others_point_at_the_post() -> None:
    quote = one(single(post("903", "102", ("quoted", "900")), COMPLAINT))
    assert (quote["kind"], quote["in_reply_to"]) == ("post", {"system": "x", "id": "900"})
    assert quote["attributes"]["quoted_id"] == "900"
    thanks = post("904", "101", ("replied_to", "901"), in_reply_to_user_id="2")
    reply = one(single(thanks, post("901", "2")))
    assert (reply["kind"], reply["in_reply_to"]) == ("mention", {"system": "x", "id": "901"})
    quoting_brand = one(single(post("905", "102", ("quoted", "906")), post("906", "1")))
    assert quoting_brand["kind"] == "mention"


def test_brand_quote_and_retweet_of_a_customer() -> None:
    quote = one(single(post("910", "1", ("quoted", "900")), COMPLAINT))
    assert (quote["direction"], quote["kind"], quote["customer_id"], quote["function"]) == (
        "outbound", "answer", "x:101", "marketing")
    retweet = one(single(post("911", "1", ("retweeted", "900")), COMPLAINT))
    assert (retweet["kind"], retweet["in_reply_to"]) == ("content", {"system": "x", "id": "900"})
    by_account_id = one(single(post("912", "1400000000000000009", ("replied_to", "900"),
                                    in_reply_to_user_id="101"), COMPLAINT))
    assert (by_account_id["function"], by_account_id["actor"]) == ("sales", "1400000000000000009")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (single(post("920", "1")), "addressed to no one"),
        (single(post("921", "2", ("replied_to", "922"), in_reply_to_user_id="1")), "its own accounts"),
    ],
)
def test_no_moments(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(NotAMoment, match=reason):
        map_record(record, CONFIG)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"id": "930", "edit_history_tweet_ids": ["930"], "text": "default fields only"}, "author_id"),
        (single({**COMPLAINT, "created_at": None}), "created_at"),
        ({"data": COMPLAINT}, "not in includes.users"),  # handles configured, author unknown
        (single(post("931", "2", ("retweeted", "999"))), "whose post"),
    ],
)
def test_unmappable(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        map_record(record, CONFIG)


def test_without_brand_handles_every_author_is_public() -> None:
    config = VendorConfig.from_dict({"x": {}})
    message = one({"data": post("940", "2")}, config)
    assert (message["direction"], message["kind"], message["reach"]) == ("public", "post", 0)
    assert message["url"] == "https://x.com/i/web/status/940"


def test_records_split_a_search_page_with_the_includes_each_post_needs() -> None:
    retweet = post("902", "102", ("retweeted", "900"))
    page = {"data": [COMPLAINT, retweet], "includes": {"users": USERS, "tweets": [COMPLAINT]},
            "meta": {"newest_id": "902", "oldest_id": "900", "result_count": 2}}
    first, second = records(page)
    assert first == {"data": COMPLAINT, "includes": {"users": [JO]}}
    assert second == {"data": retweet, "includes": {"users": [PRIYA, JO], "tweets": [COMPLAINT]}}
    assert map_record(second, CONFIG) == map_record(single(retweet, COMPLAINT), CONFIG)
    lookup = single(COMPLAINT)
    assert records(lookup) == [lookup]
    assert records({"meta": {"result_count": 0}}) == []
    assert records(COMPLAINT) == [COMPLAINT]
    with pytest.raises(Unmappable, match="Unauthorized"):
        records({"errors": [{"title": "Unauthorized", "detail": "Unauthorized", "status": 401}]})
    with pytest.raises(Unmappable, match="neither"):
        records({"title": "Too Many Requests", "status": 429})
