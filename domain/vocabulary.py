"""The closed vocabularies of wire format v1 (SPEC §2)."""

from __future__ import annotations

from typing import Final, Literal, get_args

Channel = Literal[
    "email", "phone", "chat", "sms", "in_person", "web", "forum", "blog", "review_site",
    "twitter", "facebook", "linkedin", "instagram", "youtube", "tiktok", "other",
]
Direction = Literal["inbound", "outbound", "public"]
Function = Literal[
    "service", "product", "sales", "logistics", "hr", "marketing", "leadership", "other"
]
AskType = Literal["purchase", "referral", "review", "share", "like", "survey", "meeting", "other"]
Kind = Literal[
    # outbound
    "answer", "help", "content", "gift", "introduction", "apology", "ask", "question", "other",
    # inbound (question and other are shared with outbound)
    "complaint", "feedback", "praise", "reply", "purchase", "accept", "decline",
    # public
    "post", "review", "mention", "share", "like",
]

CHANNELS: Final = frozenset(get_args(Channel))
DIRECTIONS: Final = get_args(Direction)
FUNCTIONS: Final = get_args(Function)
ASK_TYPES: Final = get_args(AskType)

OUTBOUND_GIVES: Final = frozenset({"answer", "help", "content", "gift", "introduction", "apology"})

KINDS_BY_DIRECTION: Final[dict[str, tuple[str, ...]]] = {
    "outbound": ("answer", "help", "content", "gift", "introduction", "apology",
                 "ask", "question", "other"),
    "inbound": ("question", "complaint", "feedback", "praise", "reply", "purchase",
                "accept", "decline", "other"),
    "public": ("post", "review", "mention", "share", "like"),
}

# Public moments that make something public: each is an amplification moment (SPEC §3.3).
AMPLIFYING_KINDS: Final = frozenset({"post", "review", "mention"})

# Fields an amendment may not change (SPEC §2, corrections).
IMMUTABLE_FIELDS: Final = frozenset({"moment_id", "tenant", "customer_id", "direction", "source"})
