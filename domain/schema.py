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

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from mot.domain.vocabulary import AskType, Channel, Direction, Function, Kind

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
    tenant: str = Field("default", min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=256)
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
AMENDABLE_FIELDS = frozenset(MomentIn.model_fields) - {
    "type", "moment_id", "tenant", "customer_id", "direction", "source"
}


class AmendIn(BaseModel):
    """A correction of some fields of a recorded moment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["amend"]
    moment_id: UUID
    set: dict[str, Any] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=2048)


class RetractIn(BaseModel):
    """The removal of a recorded moment from every projection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["retract"]
    moment_id: UUID
    reason: str = Field(min_length=1, max_length=2048)


__all__ = [
    "AMENDABLE_FIELDS",
    "AmendIn",
    "MomentIn",
    "Reference",
    "RetractIn",
    "SourceRef",
    "Timestamp",
    "datetime",
]
