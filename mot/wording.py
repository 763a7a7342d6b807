"""How what `mot` prints reads: counts in words ("1 message", "2 messages", "1,000 events"),
and what senders wrote made safe to show a person (`printable`)."""

from __future__ import annotations

import re
from typing import Final


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` with thousands separators and `noun`, in the plural unless the count is one
    (`plural` for an irregular one; otherwise -s, or -es after s)."""
    if count == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{count:,} {plural}"


# What a terminal acts on rather than shows: C0 controls (escape sequences, newlines, tabs),
# DEL, C1 controls and the bidirectional overrides and isolates that reorder what follows.
_UNSHOWN: Final = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` as words for a person: the characters a terminal would act on (a tenant's
    "\\x1b]0;..." retitling the window, a customer id's newline forging a table row, an
    override reversing a name) written as their escapes (\\x1b, \\n, \\u202e). Data sent by
    one tenant is printed to an operator; json, jsonl and csv stay exact."""
    if text.isascii() and text.isprintable():
        return text
    return _UNSHOWN.sub(lambda found: repr(found.group())[1:-1], text)
