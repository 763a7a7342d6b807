"""Social-listening mention exports to public moments: columns, sentiment labels and scores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mot.adapters.vendors import NotAMoment, Unmappable, VendorConfig
from mot.adapters.vendors.mentions import map_record, records
from mot.domain.messages import RecordMoment, validate_message

CONFIG = VendorConfig.from_dict({"tenant": "acme", "mentions": {"handles": ["@Acme"]}})
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ROW = {"Date": "2025-06-02 08:12:00.0", "Mention Id": "bw-90011", "Author": "@jomartin_lyon",
       "Url": "https://x.com/jomartin_lyon/status/1931", "Page Type": "twitter", "Sentiment": "negative",
       "Reach": "1,840", "Thread Id": "bw-90011", "Reply To Id": "", "Repost Of Id": ""}


def one(row: dict[str, Any], config: VendorConfig = CONFIG) -> dict[str, Any]:
    """The moment of a row (its X handle link, when there is one, is checked in test_vendor_links)."""
    message, *links = map_record(row, config)
    assert isinstance(validate_message(message, NOW), RecordMoment), message
    assert [link["type"] for link in links] in ([], ["link"]), links
    return message


def test_a_mention() -> None:
    message = one(ROW)
    assert message == {
        "tenant": "acme", "customer_id": "mentions:@jomartin_lyon", "occurred_at": "2025-06-02T08:12:00Z",
        "channel": "twitter", "direction": "public", "kind": "mention", "sentiment": -0.6, "reach": 1840,
        "url": "https://x.com/jomartin_lyon/status/1931", "source": {"system": "mentions", "id": "bw-90011"},
        "attributes": {"platform": "twitter", "thread_id": "bw-90011"},
    }


@pytest.mark.parametrize(
    ("cell", "sentiment"),
    [("positive", 0.6), ("Negative", -0.6), ("neutral", 0.0), ("mixed", 0.0), ("-0.72", -0.72),
     ("0.35", 0.35), ("1", 1.0), ("", None)],
)
def test_sentiment_label_or_score(cell: str, sentiment: float | None) -> None:
    assert one({**ROW, "Sentiment": cell}).get("sentiment") == sentiment


def test_sentiment_scale_and_labels_are_configurable() -> None:
    config = VendorConfig.from_dict({"mentions": {"sentiment_scale": 5,
                                                  "sentiment_labels": {"Angry": -0.9}}})
    assert one({**ROW, "Sentiment": "-4"}, config)["sentiment"] == -0.8
    assert one({**ROW, "Sentiment": "angry"}, config)["sentiment"] == -0.9
    with pytest.raises(Unmappable, match="sentiment_scale"):
        map_record({**ROW, "Sentiment": "45"}, CONFIG)
    with pytest.raises(Unmappable, match="label 'furious' is unknown"):
        map_record({**ROW, "Sentiment": "furious"}, CONFIG)


def test_repost_is_a_share_and_reply_to_is_in_reply_to() -> None:
    share = one({**ROW, "Mention Id": "bw-2", "Repost Of Id": "bw-90011"})
    assert share["kind"] == "share"
    assert share["shares"] == {"system": "mentions", "id": "bw-90011"}
    reply = one({**ROW, "Mention Id": "bw-3", "Reply To Id": "bw-90011"})
    assert (reply["kind"], reply["in_reply_to"]) == ("mention", {"system": "mentions", "id": "bw-90011"})


@pytest.mark.parametrize(
    ("page_type", "url", "channel", "kind"),
    [
        ("review", "https://www.trustpilot.com/reviews/1", "review_site", "review"),
        ("", "https://www.trustpilot.com/reviews/1", "review_site", "review"),
        ("forum", "https://www.reddit.com/r/x", "forum", "mention"),
        ("", "https://m.facebook.com/acme/posts/1", "facebook", "mention"),
        ("blog", "https://deskreviews.example/blog/1", "blog", "mention"),
        ("", "https://news.example/a", "web", "mention"),
        ("Instagram", "", "instagram", "mention"),
    ],
)
def test_channel_from_page_type_or_url(page_type: str, url: str, channel: str, kind: str) -> None:
    message = one({**ROW, "Page Type": page_type, "Url": url})
    assert (message["channel"], message["kind"]) == (channel, kind)


def test_column_overrides_and_timezone() -> None:
    config = VendorConfig.from_dict({"tenant": "acme", "mentions": {
        "columns": {"date": "Published (local)", "reach": ["Impressions", "Reach"], "id": "Post"},
        "timezone": "Europe/Paris", "system": "talkwalker"}})
    row = {"Published (local)": "2025-06-02 10:12:00", "Post": "tw-1", "Author": "jo",
           "Impressions": "500", "Url": "https://x.com/jo/status/1"}
    message = one(row, config)
    assert message["occurred_at"] == "2025-06-02T08:12:00Z"
    assert message["reach"] == 500
    assert message["source"] == {"system": "talkwalker", "id": "tw-1"}


def test_identity_falls_back_to_the_url() -> None:
    assert one({**ROW, "Mention Id": ""})["source"] == {"system": "mentions", "id": ROW["Url"]}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"Mention Id": "", "Url": ""}, "nothing identifies"),
        ({"Author": ""}, "no author"),
        ({"Date": ""}, "date .*required"),
        ({"Date": "02/06/2025 08:12"}, "not an ISO 8601 time"),
        ({"Reach": "lots"}, "expected a number"),
        ({"Reach": "-5"}, "negative"),
    ],
)
def test_unmappable(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        map_record({**ROW, **changes}, CONFIG)


def test_the_brands_own_posts_are_no_moments() -> None:
    with pytest.raises(NotAMoment, match="brand's own account"):
        map_record({**ROW, "Author": "@ACME"}, CONFIG)


def test_records_of_json_lines() -> None:
    assert records(ROW) == [ROW]
    assert records({"mentions": [ROW, ROW]}) == [ROW, ROW]
