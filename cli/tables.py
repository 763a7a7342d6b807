"""Tables for a terminal, as psql and sqlite-utils draw them: they fit its width.

Only the `table` format passes through here; `json`, `jsonl` and `csv` stay exact.
A table wider than the terminal first shortens its long cells (with an
ellipsis), then hides its least telling columns, and says which ones and how to
see them: nothing is dropped silently. Durations and shares are shown in human
units (`3h 12m`, `49.2%`), timestamps to the minute. `-x` prints one record at
a time, every field on its own line, like psql's expanded display.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from mot.wording import printable

GAP = "  "
MIN_TRUNCATED = 9  # a cell is never shortened below this (8 characters and the ellipsis)
SHORT = 16  # columns no wider than this (names, stages, timestamps) are never shortened
ELLIPSIS = "…"

# Which columns a narrow table keeps: those most telling first. Columns not listed
# rank below them (rightmost first); those in HIDE_FIRST go before any other.
KEEP = ("tenant", "customer_id", "function", "stage", "status", "polarity", "cascade_reach",
        "from", "to", "listening_share", "balance", "unanswered_asks", "trigger_function",
        "delay_seconds", "response_seconds", "kind", "response_p50_seconds",
        "response_p90_seconds", "requests", "open", "exchanges", "lapsed", "last_moment_at",
        "occurred_at", "wants",
        "given", "asked", "received", "positive", "negative", "moments", "amplifications",
        "likes", "listening", "other", "customer_moments", "brand_moments", "cascade_size",
        "reach", "sentiment", "channel", "response_function", "answered", "responded_at")
HIDE_FIRST = ("version", "trigger_moment_id", "trigger_actor", "moment_id", "amplification_id",
              "first_moment_at", "last_customer_moment_at", "trigger_channel")

DURATIONS = frozenset({"delay_seconds", "response_seconds", "response_p50_seconds",
                       "response_p90_seconds"})
SHARES = frozenset({"listening_share"})


def terminal_width() -> int | None:
    """The width to fit: the terminal's, or $COLUMNS when output is not a terminal (None:
    no limit, as psql does when piped)."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def human(name: str, value: Any, *, full: bool = False) -> str:
    """A cell as a person reads it (`full`: timestamps to the microsecond), what a terminal
    would act on escaped (`printable`)."""
    return printable(_human(name, value, full=full))


def _human(name: str, value: Any, *, full: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if name in DURATIONS and isinstance(value, int | float):
        return duration(value)
    if name in SHARES and isinstance(value, int | float):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if (not full and isinstance(value, str) and name.endswith("_at") and len(value) >= 17
            and value[10] == "T"):
        return f"{value[:10]} {value[11:16]}"
    return str(value)


def duration(seconds: float) -> str:
    """`45s`, `12m 5s`, `3h 12m`, `2d 4h`; negative with a minus sign."""
    sign = "-" if seconds < 0 else ""
    s = int(abs(seconds))
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{sign}{s // 3600}h {s % 3600 // 60}m"
    return f"{sign}{s // 86400}d {s % 86400 // 3600}h"


def _numeric(values: Sequence[Any]) -> bool:
    return all(v is None or (isinstance(v, int | float) and not isinstance(v, bool))
               for v in values)


def _rank(name: str, names: Sequence[str]) -> int:
    """Lower is kept longer."""
    if name in HIDE_FIRST:
        return 2000 - HIDE_FIRST.index(name)
    if name in KEEP:
        return KEEP.index(name)
    return 1000 + names.index(name)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + ELLIPSIS


def fit(records: Sequence[dict[str, Any]], columns: Sequence[str] = (),
        width: int | None = None) -> str:
    """An aligned table of `records` no wider than `width` (None: as wide as it needs)."""
    names = list(columns or (records[0].keys() if records else ()))
    if not records:
        return "(no rows)"
    cells = {n: [human(n, r.get(n)) for r in records] for n in names}
    right = {n: _numeric([r.get(n) for r in records]) for n in names}
    natural = {n: max(len(n), *(len(c) for c in cells[n])) for n in names}
    shown = list(names)
    widths = dict(natural)
    hidden: list[str] = []
    if width is not None:
        floors = {n: natural[n] if natural[n] <= SHORT or right[n] else MIN_TRUNCATED
                  for n in names}

        def total(w: dict[str, int]) -> int:
            return sum(w[n] for n in shown) + len(GAP) * (len(shown) - 1)
        # Hide the least telling columns until the rest fit with long cells shortened...
        for name in sorted(shown, key=lambda n: _rank(n, names), reverse=True):
            if total(floors) <= width:
                break
            shown.remove(name)
            hidden.append(name)
        # ... then shorten the widest long cells by what is still too much.
        while total(widths) > width:
            longer = [n for n in shown if widths[n] > floors[n]]
            if not longer:
                break
            widest = max(longer, key=lambda n: widths[n])
            widths[widest] = max(floors[widest], widths[widest] - (total(widths) - width))
    lines = [GAP.join(n.rjust(widths[n]) if right[n] else n.ljust(widths[n]) for n in shown)
             .rstrip(),
             GAP.join("-" * widths[n] for n in shown)]
    for i in range(len(records)):
        lines.append(GAP.join(
            _cut(cells[n][i], widths[n]).rjust(widths[n]) if right[n]
            else _cut(cells[n][i], widths[n]).ljust(widths[n]) for n in shown).rstrip())
    footer = f"({len(records):,} row{'s' if len(records) != 1 else ''})"
    if hidden:
        footer += (f"; {len(hidden)} column{'s' if len(hidden) != 1 else ''} hidden to fit "
                   f"{width} columns: {', '.join(n for n in names if n in hidden)} "
                   "(see them with -x, --columns, or --format json)")
    if width is not None:
        import textwrap

        footer = textwrap.fill(footer, width)
    lines.append(footer)
    return "\n".join(lines)


def expanded(records: Sequence[dict[str, Any]], columns: Sequence[str] = ()) -> str:
    """One record at a time, a field a line (psql's `\\x`); values in full."""
    if not records:
        return "(no rows)"
    names = list(columns or records[0].keys())
    label = max(len(n) for n in names)
    blocks = []
    for number, record in enumerate(records, 1):
        lines = [f"-[ RECORD {number} ]".ljust(label + 1, "-") + "+" + "-" * 20]
        lines += [f"{n.ljust(label)} | {human(n, record.get(n), full=True)}".rstrip()
                  for n in names]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)
