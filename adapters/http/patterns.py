"""The patterns query and path parameters are checked against, and what each means in words.

A parameter that did not match was answered with pydantic's "String should match pattern
'^([0-9A-Fa-f]{8}-?...)$'": the regular expression, not what to send. `meaning` gives the
words the problem says instead (adapters/http/errors.py).
"""

from __future__ import annotations

import re
from typing import Final

NO_NUL: Final = r"^[^\x00]*$"
MOMENT_REF: Final = (r"^([0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?"
                     r"[0-9A-Fa-f]{12}|[^:\x00]+:[^\x00]+)$")
_SORT: Final = re.compile(r"\^\[\+-\]\?\((?P<fields>[a-z_]+(?:\|[a-z_]+)*)\)\$")


def sort_pattern(fields: tuple[str, ...]) -> str:
    """FIELD, +FIELD or -FIELD of these fields."""
    return f"^[+-]?({'|'.join(fields)})$"


def meaning(pattern: str) -> str | None:
    """What a value of `pattern` is, in words (None for a pattern not made here)."""
    if pattern == NO_NUL:
        return "text without a NUL character (\\u0000)"
    if pattern == MOMENT_REF:
        return "a moment id (a UUID) or SYSTEM:ID, the source of a moment"
    sort = _SORT.fullmatch(pattern)
    if sort is not None:
        return f"FIELD, -FIELD or +FIELD with FIELD one of {', '.join(sort['fields'].split('|'))}"
    return None
