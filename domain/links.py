"""Links: one person under several customer ids (SPEC §2, "Links").

A link says that two customer ids of a tenant are the same person; an unlink
takes it back. The messages about one pair form one stream, and the pair's
state is that of its message with the latest `occurred_at`, whatever the order
of arrival; at equal times an unlink wins. Pure: no I/O, no storage shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mot.domain.identity import uuid5_text

LinkType = Literal["link", "unlink"]


def pair_of(a: str, b: str) -> tuple[str, str]:
    """The pair's canonical order (code points): the order of the two ids does not matter."""
    if a == b:
        raise ValueError("a link names two different customer ids")
    return (a, b) if a < b else (b, a)


def link_stream_id(tenant: str, a: str, b: str) -> str:
    """The stream of a pair's links and unlinks.

    Equal to `str(uuid5(NAMESPACE_URL, f"mot:link:{tenant}:{min(A,B)}:{max(A,B)}"))`.
    """
    low, high = pair_of(a, b)
    return uuid5_text(f"mot:link:{tenant}:{low}:{high}")


@dataclass(frozen=True, slots=True)
class PairEvidence:
    """One link or unlink of a pair, as far as its state is concerned."""

    type: LinkType
    occurred_us: int  # microseconds since the epoch, UTC

    @property
    def precedence(self) -> tuple[int, int]:
        """Later evidence wins; at equal times an unlink wins over a link."""
        return (self.occurred_us, 1 if self.type == "unlink" else 0)


def is_linked(evidence: Iterable[PairEvidence]) -> bool:
    """The pair's state: that of its evidence with the greatest precedence; unlinked if none."""
    latest = max(evidence, key=lambda e: e.precedence, default=None)
    return latest is not None and latest.type == "link"


def is_repeat(new: PairEvidence, recorded: Iterable[PairEvidence]) -> bool:
    """The same message again (same type, pair and `occurred_at`, whatever its reason)."""
    return any(new == old for old in recorded)
