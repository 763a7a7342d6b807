"""Numeric option types bounded by what the stores hold.

A count or id goes into SQL as a 64-bit signed integer (SQLite's INTEGER, PostgreSQL's
bigint): a larger one failed inside the driver with a traceback (`OverflowError: Python int
too large to convert to SQLite INTEGER`) or a bare "store error: datatype mismatch". Bounded
here, click names the option and the range.
"""

from __future__ import annotations

import click

BIGINT_MAX = 2**63 - 1


def count(minimum: int = 1) -> click.IntRange:
    """A number of rows, ids or a position: from `minimum` to the largest a store holds."""
    return click.IntRange(minimum, BIGINT_MAX)


ROW_ID = count(1)  # a quarantined message's or a token's id
SECONDS = click.FloatRange(0.01)  # a wait between looks (time.sleep refuses a negative one)
