"""How counts read in the words `mot` prints: "1 message", "2 messages", "1,000 events"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`count` with thousands separators and `noun`, in the plural unless the count is one
    (`plural` for an irregular one; otherwise -s, or -es after s)."""
    if count == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{count:,} {plural}"
