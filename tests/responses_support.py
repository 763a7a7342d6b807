"""The golden fixture's responses (SPEC §3.5), worked out by hand from golden.jsonl.

golden.expected.json predates responses; these records are checked line by line:
c2's question (line 9) is answered by the help that names it (line 10, 5 min); c4's
complaint (line 18) by the apology an hour later (line 19: no `in_reply_to`, an answer
kind); c4's feedback (line 22) stays open (the outbound question before it and the
mention after it answer nothing); c6's complaint is retracted; globex's question (line 36)
is open. The persons fixture's `responses` sections are the golden case with links.
"""

from __future__ import annotations

from typing import Any, Final

GOLDEN_RESPONSES: Final[list[dict[str, Any]]] = [
    {"request_moment_id": "0d4bcfe2-b146-5237-bb1e-721cb6e59dee", "tenant": "acme",
     "customer_id": "c4", "kind": "complaint", "channel": "phone", "function": "logistics",
     "occurred_at": "2026-01-05T08:00:00Z",
     "response_moment_id": "b4d1d95c-f7c9-5a6c-a07c-e086306cefe7",
     "response_function": "logistics", "responded_at": "2026-01-05T09:00:00Z",
     "response_seconds": 3600},
    {"request_moment_id": "2287b9a5-a264-5dbe-9fd2-18e9b92d4ef2", "tenant": "acme",
     "customer_id": "c4", "kind": "feedback", "channel": "email", "function": "other",
     "occurred_at": "2026-01-07T10:00:00Z", "response_moment_id": None,
     "response_function": None, "responded_at": None, "response_seconds": None},
    {"request_moment_id": "e10b4ac6-a854-5700-85ff-e5b20a3de278", "tenant": "globex",
     "customer_id": "c1", "kind": "question", "channel": "email", "function": "service",
     "occurred_at": "2026-03-05T09:00:00Z", "response_moment_id": None,
     "response_function": None, "responded_at": None, "response_seconds": None},
    {"request_moment_id": "ff3933e0-29b7-559e-8e84-a52fdfdb6de9", "tenant": "acme",
     "customer_id": "c2", "kind": "question", "channel": "chat", "function": "product",
     "occurred_at": "2026-02-01T09:00:00Z",
     "response_moment_id": "878c2645-baa5-5dd4-9610-e715f212e426",
     "response_function": "product", "responded_at": "2026-02-01T09:05:00Z",
     "response_seconds": 300},
]
"""In request_moment_id order, as `mot query responses` prints them."""

GOLDEN_RESPONSE_TIMES: Final[list[dict[str, Any]]] = [
    {"tenant": "acme", "function": "logistics", "requests": 1, "answered": 1, "open": 0,
     "response_p50_seconds": 3600, "response_p90_seconds": 3600},
    {"tenant": "acme", "function": "other", "requests": 1, "answered": 0, "open": 1,
     "response_p50_seconds": None, "response_p90_seconds": None},
    {"tenant": "acme", "function": "product", "requests": 1, "answered": 1, "open": 0,
     "response_p50_seconds": 300, "response_p90_seconds": 300},
    {"tenant": "globex", "function": "service", "requests": 1, "answered": 0, "open": 1,
     "response_p50_seconds": None, "response_p90_seconds": None},
]


def with_responses(expected: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """golden.expected.json and the golden responses."""
    return {**expected, "responses": GOLDEN_RESPONSES}
