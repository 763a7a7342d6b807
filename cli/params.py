"""Option types: numbers bounded by what the stores and the clock hold, and timestamps.

A count or id goes into SQL as a 64-bit signed integer (SQLite's INTEGER, PostgreSQL's
bigint): a larger one failed inside the driver with a traceback (`OverflowError: Python int
too large to convert to SQLite INTEGER`) or a bare "store error: datatype mismatch". Bounded
here, click names the option and the range.

A number of seconds is a float, and click's FloatRange lets `nan` and `inf` through (`nan`
compares false with both bounds): `--poll nan` reached time.sleep as a ValueError traceback
or a loop that never waited, and `--poll 1e300` an OverflowError. Every float option is a
`Finite` (`seconds(...)`, `rate(...)`): finite and bounded.

The option types live here, apart from the commands, so that a command's module imports
them without another command's module (`mot export` loaded `mot query`'s output code and
orjson for `Timestamp`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import click

BIGINT_MAX = 2**63 - 1
# About 31 years: below what time.sleep and threading's waits accept (threading.TIMEOUT_MAX
# is about 292 years on 64-bit platforms), far above any wait a user means.
SECONDS_MAX = 1e9


class Whole(click.IntRange):
    """A whole number in a range. click's IntRange calls itself an "integer range", so `--limit
    abc` said "'abc' is not a valid integer range." as though a range were wanted."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.INT.convert(value, param, ctx)
        # Below the floor, the store's ceiling is no limit a user means: `--limit -1` said
        # "not in the range 1<=x<=9223372036854775807" (above it, the ceiling is the point).
        if self.max == BIGINT_MAX and self.min is not None and number < self.min:
            self.fail(f"{number} is not in the range x>={self.min}.", param, ctx)
        return super().convert(number, param, ctx)


def whole(minimum: int, maximum: int | None = None) -> Whole:
    """A whole number from `minimum` (to `maximum`, when given)."""
    return Whole(minimum, maximum)


def count(minimum: int = 1) -> click.IntRange:
    """A number of rows, ids or a position: from `minimum` to the largest a store holds."""
    return Whole(minimum, BIGINT_MAX)


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """The nearest of `known` to a mistyped `value` in click's own words for a mistyped option
    ("Did you mean '--stage'?", "(Did you mean one of: 'a', 'b'?)"); a case apart counts as
    near; "" when none is near. Only those about as near as the nearest: 'relationship' is
    one letter from 'relationships', and 'transitions' (as near as difflib's cutoff) would
    only be noise beside it."""
    from difflib import SequenceMatcher, get_close_matches

    names = list(known)
    close = get_close_matches(value, names) or [n for n in names if n.lower() == value.lower()]
    if len(close) > 1:
        ratios = {n: SequenceMatcher(None, value, n).ratio() for n in close}
        close = [n for n in close if ratios[n] >= max(ratios.values()) - 0.1]
    if not close:
        return ""
    listed = ", ".join(repr(n) for n in sorted(close))
    return f"Did you mean {listed}?" if len(close) == 1 else f"(Did you mean one of: {listed}?)"


class Choice(click.Choice):  # type: ignore[type-arg]
    """click's Choice that names the nearest choice to a mistyped one ('relationship': "Did you
    mean 'relationships'?"), as click does for a mistyped option or command."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as error:
            hint = did_you_mean(str(value), (str(c) for c in self.choices))
            if not hint:
                raise
            raise click.BadParameter(f"{error.message} {hint}", ctx, param) from None


class Finite(click.FloatRange):
    """A finite number of `unit` from `minimum` to `maximum` (click's FloatRange alone lets
    `nan` and `inf` through)."""

    def __init__(self, minimum: float, maximum: float, unit: str) -> None:
        super().__init__(minimum, maximum)
        self.name = unit
        self.unit = unit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of {self.unit}.", param, ctx)
        return super().convert(number, param, ctx)


class Seconds(Finite):
    """A finite number of seconds from `minimum` to SECONDS_MAX."""

    def __init__(self, minimum: float) -> None:
        super().__init__(minimum, SECONDS_MAX, "seconds")


def seconds(minimum: float) -> Seconds:
    """A wait, a timeout or a lease, in seconds: finite, from `minimum` to SECONDS_MAX."""
    return Seconds(minimum)


class Rate(Finite):
    """A rate limit: 0 (no limit) or from `least` to 1e9 `unit`. A positive rate near 0 is
    no limit an operator means: `mot serve --tenant-rate 1e-300` started, and its tenants'
    second request got a Retry-After of 10^300 seconds."""

    def __init__(self, least: float, unit: str) -> None:
        super().__init__(0, 1e9, unit)
        self.least = least

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if 0 < number < self.least:
            self.fail(f"{number:g} is neither 0 (no limit) nor in the range "
                      f"{self.least:g}<=x<=1e9 {self.unit}.", param, ctx)
        return number


def rate(unit: str, least: float) -> Rate:
    """A rate limit (`unit`: "requests a second"...): finite, 0 (no limit) or from `least`
    (so that the wait for the next request, Retry-After, stays below an hour) to 1e9."""
    return Rate(least, unit)


ROW_ID = count(1)  # a quarantined message's or a token's id
SECONDS = seconds(0.01)  # a wait between looks (time.sleep refuses a negative one)


class Timestamp(click.ParamType):  # type: ignore[type-arg]
    """An RFC 3339 timestamp with an offset (`2026-01-01T00:00:00Z`), or a date
    (`2026-06-01`): the start of that day in UTC, or its end with `end_of_day` (so that
    `--until 2026-06-30` takes in the whole of the 30th)."""

    name = "TIMESTAMP"

    def __init__(self, *, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        from datetime import UTC, date, time

        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime.combine(day, time.max if self.end_of_day else time.min, UTC)
            parsed = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is neither a date such as 2026-06-01 nor an RFC 3339 timestamp "
                      "such as 2026-06-01T09:30:00Z", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no offset; add Z (UTC) or +HH:MM", param, ctx)
        return parsed
