"""Numeric option types bounded by what the stores and the clock hold.

A count or id goes into SQL as a 64-bit signed integer (SQLite's INTEGER, PostgreSQL's
bigint): a larger one failed inside the driver with a traceback (`OverflowError: Python int
too large to convert to SQLite INTEGER`) or a bare "store error: datatype mismatch". Bounded
here, click names the option and the range.

A number of seconds is a float, and click's FloatRange lets `nan` and `inf` through (`nan`
compares false with both bounds): `--poll nan` reached time.sleep as a ValueError traceback
or a loop that never waited, and `--poll 1e300` an OverflowError. Every float option is a
`seconds(...)`, finite and at most SECONDS_MAX.
"""

from __future__ import annotations

import math
from typing import Any

import click

BIGINT_MAX = 2**63 - 1
# About 31 years: below what time.sleep and threading's waits accept (threading.TIMEOUT_MAX
# is about 292 years on 64-bit platforms), far above any wait a user means.
SECONDS_MAX = 1e9


def count(minimum: int = 1) -> click.IntRange:
    """A number of rows, ids or a position: from `minimum` to the largest a store holds."""
    return click.IntRange(minimum, BIGINT_MAX)


class Seconds(click.FloatRange):
    """A finite number of seconds from `minimum` to SECONDS_MAX."""

    name = "seconds"

    def __init__(self, minimum: float) -> None:
        super().__init__(minimum, SECONDS_MAX)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds.", param, ctx)
        return super().convert(number, param, ctx)


def seconds(minimum: float) -> Seconds:
    """A wait, a timeout or a lease, in seconds: finite, from `minimum` to SECONDS_MAX."""
    return Seconds(minimum)


ROW_ID = count(1)  # a quarantined message's or a token's id
SECONDS = seconds(0.01)  # a wait between looks (time.sleep refuses a negative one)
