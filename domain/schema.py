"""Wire format v1 (SPEC §2) as pydantic v2 models.

The models check each field on its own (types, enums, ranges, lengths, unknown
fields). Rules that span fields (kinds per direction, `ask_type` only with
`ask`, `shares` iff `share`, identity) live in `domain.messages`, where the
error can name the field that breaks them.

Numbers are strict (`true` is not a reach, `"5"` is not a sentiment): wire
JSON carries typed values, and the CSV source converts its text cells before
they get here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from mot.domain.vocabulary import IMMUTABLE_FIELDS, AskType, Channel, Direction, Function, Kind

MAX_CUSTOMER_ID: Final = 256
"""SPEC §2: a customer id is a string of 1 to 256 characters."""
MAX_TENANT: Final = 128
"""A tenant is a string of 1 to 128 characters (the wire format's, a token's, mot.toml's)."""

# RFC 3339 date-time (§5.6; "t"/"z" and a space separator allowed). The offset is
# optional here only so that its absence gets its own error from AwareDatetime.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)
TIMESTAMP_EXPECTED = "expected an RFC 3339 timestamp with an offset, such as 2026-03-01T10:00:00Z"


def _timestamp_text(value: Any) -> Any:
    # pydantic would read a number, or a string of digits, as a Unix time, and accepts
    # other ISO 8601 shapes; the wire format says RFC 3339.
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(TIMESTAMP_EXPECTED)
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError as error:  # the shape is right, a value is not (hour 25, 30 February)
        raise ValueError(f"{TIMESTAMP_EXPECTED} ({error})") from None
    if parsed.tzinfo is not None:
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{TIMESTAMP_EXPECTED} (outside years 1 to 9999 in UTC)") from None
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]


class SourceRef(BaseModel):
    """Where a moment came from: the system and that system's own id."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    system: str = Field(min_length=1, max_length=128)
    id: str = Field(min_length=1, max_length=512)


# A moment reference: a moment id, or a source object resolved like an identity.
Reference = UUID | SourceRef


MAX_REACH = 2**53
"""The largest `reach` recorded: exact as a JSON number everywhere, and far from overflowing a sum."""


class MomentIn(BaseModel):
    """One moment of truth as it arrives on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["moment"] | None = None
    moment_id: UUID | None = None
    tenant: str = Field("default", min_length=1, max_length=MAX_TENANT)
    customer_id: str = Field(min_length=1, max_length=MAX_CUSTOMER_ID)
    occurred_at: Timestamp
    channel: Channel
    direction: Direction
    kind: Kind
    function: Function = "other"
    actor: str | None = Field(None, max_length=256)
    ask_type: AskType | None = None
    sentiment: float | None = Field(None, ge=-1, le=1, strict=True, allow_inf_nan=False)
    # SPEC §2 sets no upper bound; the stores keep 64-bit integers and add reaches up into
    # cascade_reach, so an audience above 2^53 (nine quadrillion) is refused, not stored.
    reach: int = Field(0, ge=0, le=MAX_REACH, strict=True)
    value: float | None = Field(None, ge=0, strict=True, allow_inf_nan=False)
    currency: str | None = None  # checked against ISO 4217 in domain.messages
    in_reply_to: Reference | None = None
    shares: Reference | None = None
    url: str | None = Field(None, min_length=1, max_length=2048)
    source: SourceRef | None = None
    attributes: dict[str, Any] | None = None


# Fields of a moment that an amendment's `set` may name.
AMENDABLE_FIELDS = frozenset(MomentIn.model_fields) - IMMUTABLE_FIELDS - {"type"}


class AmendIn(BaseModel):
    """A correction of some fields of a recorded moment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["amend"]
    moment_id: UUID
    # Without it, the moment with that id in whichever tenant has one (SPEC §2).
    tenant: str | None = Field(None, min_length=1, max_length=MAX_TENANT)
    # Names this amendment, so that sending it again is a duplicate whatever came between.
    amendment_id: UUID | None = None
    set: dict[str, Any] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=2048)


class RetractIn(BaseModel):
    """The removal of a recorded moment from every projection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["retract"]
    moment_id: UUID
    tenant: str | None = Field(None, min_length=1, max_length=MAX_TENANT)
    reason: str = Field(min_length=1, max_length=2048)


CustomerId = Annotated[str, Field(min_length=1, max_length=MAX_CUSTOMER_ID)]


class LinkIn(BaseModel):
    """Two customer ids of a tenant are one person (`link`), or are not (`unlink`): SPEC §2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["link", "unlink"]
    tenant: str = Field("default", min_length=1, max_length=MAX_TENANT)
    customer_ids: list[CustomerId] = Field(min_length=2, max_length=2)
    # When the evidence was established; absent: the time of recording.
    occurred_at: Timestamp | None = None
    reason: str = Field(min_length=1, max_length=2048)


# -- numbers kept exactly (SPEC §2) ------------------------------------------------------
# orjson reads an integer beyond 64 bits as a float, silently rounded. Only a literal of
# 20 or more digits can be one (2**64 has 20), so the exact reading below runs only for
# a message that holds a float that large and such a run of digits.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1  # what orjson and the stores keep exactly
_LONG_DIGITS_BYTES: Final = re.compile(rb"[0-9]{20}")
_LONG_DIGITS_TEXT: Final = re.compile(r"[0-9]{20}")


def holds_huge_float(value: Any) -> bool:
    """Whether a decoded JSON value holds a float outside the 64-bit integers' range: what
    orjson makes of an integer literal beyond 64 bits (or a float written that large)."""
    if value is None or type(value) is int:  # most moments: no attributes, a whole value
        return False
    # A stack, not recursion: JSON nested a thousand deep is valid input.
    stack = [value]
    while stack:
        value = stack.pop()
        if type(value) is float:
            if not INT_MIN <= value <= INT_MAX:
                return True
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


class _Literal(str):
    """A JSON number as it was written (from `json.loads(parse_int=..., parse_float=...)`)."""

    __slots__ = ("integer",)
    integer: bool


def _literal(integer: bool) -> Any:
    def make(text: str) -> _Literal:
        made = _Literal(text)
        made.integer = integer
        return made
    return make


def _exact(raw: bytes | str) -> Any:
    """The JSON with every number as the text it was written as; None when Python's reader
    refuses what orjson read (nested deeper than it goes, say): orjson's reading stands."""
    try:
        return json.loads(raw, parse_int=_literal(True), parse_float=_literal(False),
                          parse_constant=_literal(False))
    except (ValueError, RecursionError):
        return None


def _beyond_64_bits(literal: str) -> bool:
    digits = literal.lstrip("-")
    # By length first: int() refuses texts of more than 4,300 digits.
    return len(digits) > 20 or not INT_MIN <= int(literal) <= INT_MAX


def inexact_integer(raw: bytes | str) -> tuple[str, str] | None:
    """(dotted path, literal) of the first integer the message holds beyond 64 bits, which
    no JSON reader of ours keeps exactly; None when there is none (the common case, found
    without reading the message twice)."""
    pattern = _LONG_DIGITS_BYTES if isinstance(raw, bytes) else _LONG_DIGITS_TEXT
    if pattern.search(raw) is None:  # type: ignore[arg-type]
        return None
    # Depth first, in the message's order, with a stack (JSON may nest a thousand deep).
    stack: list[tuple[Any, str]] = [(_exact(raw), "")]
    while stack:
        value, path = stack.pop()
        if type(value) is _Literal:
            if value.integer and _beyond_64_bits(value):
                return path, str(value)
        elif isinstance(value, dict):
            stack.extend(reversed([(item, f"{path}.{key}" if path else str(key))
                                   for key, item in value.items()]))
        elif isinstance(value, list):
            stack.extend(reversed([(item, f"{path}[{index}]")
                                   for index, item in enumerate(value)]))
    return None


def number_as_sent(raw: bytes | str, path: str) -> str | None:
    """The text of the number at `path` (dotted, `[i]` or `.i` for list items) as the
    message wrote it, so that an error shows `1e32` rather than a float's `1e+32`."""
    value: Any = _exact(raw)
    for part in re.findall(r"[^.\[\]]+", path):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return str(value) if type(value) is _Literal else None


__all__ = [
    "AMENDABLE_FIELDS",
    "AmendIn",
    "LinkIn",
    "MomentIn",
    "Reference",
    "RetractIn",
    "SourceRef",
    "Timestamp",
    "datetime",
    "holds_huge_float",
    "inexact_integer",
    "number_as_sent",
]
