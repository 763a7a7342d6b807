"""Timestamps: stored in UTC, written as RFC 3339 ending in `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`; fractions of a second only when present."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    # isoformat() is C code; it omits the fraction when there is none, as we want.
    return moment.replace(tzinfo=None).isoformat() + "Z"


def parse_utc(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset (or `Z`)."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no offset")
    return parsed.astimezone(UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: the sortable form used by the stores."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def micros_to_text(micros: int) -> str:
    """The RFC 3339 text of a count of microseconds since the epoch."""
    # Naive arithmetic in C: a rebuild writes a few of these per row, and this is about
    # twice as fast as going through a time zone (fromtimestamp, replace).
    return (_NAIVE_EPOCH + timedelta(microseconds=micros)).isoformat() + "Z"


def reversed_window(since: datetime | None, until: datetime | None) -> str | None:
    """What is wrong with a window whose end is before its start (None when nothing is): it
    holds nothing, and an empty answer would pass for a quiet period."""
    if since is not None and until is not None and until < since:
        return (f"until ({format_utc(until)}) is before since ({format_utc(since)}): the window"
                " holds nothing; swap them")
    return None


def utc_now() -> datetime:
    """The time of recording (and the default as-of time of queries)."""
    return datetime.now(UTC)
