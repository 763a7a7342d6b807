"""When a relationship has lapsed (SPEC §3): judged at query time, against `--as-of`.

Its own module: every `mot query relationships` applies it, and it needs none of
the fold (whose module is a good part of a query's start-up).
"""

from __future__ import annotations

from typing import Final

LAPSED_AFTER_US: Final = 180 * 24 * 3600 * 1_000_000
"""180 × 24 hours, in microseconds: no customer-side moment for longer is lapsed."""


def is_lapsed(last_customer_moment_us: int | None, as_of_us: int) -> bool:
    """True when the last customer-side moment is more than 180 × 24 h before `as_of`.

    Exactly 180 × 24 h before is not lapsed ("earlier than"); no customer-side
    moment at all is lapsed.
    """
    if last_customer_moment_us is None:
        return True
    return last_customer_moment_us < as_of_us - LAPSED_AFTER_US
