"""What every vendor mapping shares: the registry entry, its two outcomes besides moments, helpers.

A vendor mapping is pure: `records(value)` unwraps what one line (or CSV row, or
webhook body) holds into the vendor's own records, and `map(record, config)`
turns one record into wire-format v1 messages (SPEC §2), or raises

- `Unmappable(reason)`: the record should be a moment but cannot be mapped (no
  contact, no time, a shape we do not know). Sources quarantine it with the
  reason and its origin.
- `NotAMoment(reason)`: the record is understood and, by a documented rule, is
  no moment between the brand and a customer (an internal note, an open task,
  an audit that only changed a field). Sources count it by reason and report
  it; nothing is recorded.

Identity comes from the vendor's own ids: every moment carries
`source = {"system": vendor, "id": ...}`, so the same record imported again,
or a webhook the vendor retries, derives the same moment id and is a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Final

from mot.domain.identity import derived_moment_id
from mot.domain.timefmt import format_utc

if TYPE_CHECKING:
    from mot.adapters.vendors.config import VendorConfig

Record = dict[str, Any]
"""One vendor record as its API returns it (or one CSV row, header -> cell)."""
Wire = dict[str, Any]
"""One wire-format v1 message, JSON-ready."""


class Unmappable(Exception):
    """The record cannot be mapped to a moment; `reason` says why, for the quarantine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotAMoment(Exception):
    """The record is, by a documented rule, no moment (counted and reported, not recorded)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VendorSource:
    """One source system: its name, the file formats it reads, and its two pure functions."""

    name: str
    title: str
    formats: tuple[str, ...]
    records: Callable[[Any], list[Record]]
    map: Callable[[Record, VendorConfig], list[Wire]]


# --- reading values out of records --------------------------------------------------------------


def text(value: Any) -> str | None:
    """A cell or JSON value as stripped text; None for null, empty text, or a JSON object/array."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    out = str(value).strip()
    return out or None


def flag(value: Any) -> bool | None:
    """A boolean from JSON (`true`) or a CSV cell (`true`, `1`, `yes`); None when absent."""
    if isinstance(value, bool):
        return value
    cell = text(value)
    if cell is None:
        return None
    lowered = cell.lower()
    if lowered in ("true", "1", "yes", "y", "t"):
        return True
    if lowered in ("false", "0", "no", "n", "f"):
        return False
    return None


def number(value: Any, what: str) -> float | None:
    """A number from JSON or text (`12,345`, `0.4`); None when absent; Unmappable when not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    cell = text(value)
    if cell is None:
        return None
    try:
        return float(cell.replace(",", "").replace("_", ""))
    except ValueError:
        raise Unmappable(f"{what}: expected a number, got {cell!r}") from None


def obj(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one when the value is absent or not an object."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (other items and non-arrays give nothing)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def records_of(items: list[Any], where: str) -> list[Record]:
    """The items of a list of records; Unmappable when one is not a JSON object (nothing is skipped)."""
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise Unmappable(f"{where}: item {position} is {type(item).__name__}, expected a JSON object")
    return list(items)


class Fields:
    """Case-insensitive access to a record's fields (Data Loader CSV headers are upper case)."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        self.record = record
        self._folded = {key.lower(): key for key in record}

    def get(self, *names: str) -> Any:
        """The value of the first of `names` the record has (compared without case)."""
        for name in names:
            key = self._folded.get(name.lower())
            if key is not None:
                value = self.record[key]
                if value is not None and value != "":
                    return value
        return None

    def has(self, name: str) -> bool:
        return name.lower() in self._folded


# --- time ---------------------------------------------------------------------------------------

_COMPACT_OFFSET: Final = re.compile(r"^(.*[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)([+-]\d{2})(\d{2})$")
_DATE_ONLY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DIGITS: Final = re.compile(r"^-?\d{9,}$")


def timestamp(value: Any, what: str, *, naive: tzinfo | None = None, epoch_ms: bool = False) -> str:
    """A vendor time as RFC 3339 in UTC (`…Z`), or Unmappable naming `what`.

    Accepts ISO 8601 with `Z` or an offset (also Salesforce's `+0000`), a date alone
    (midnight in `naive`, else UTC), a time without offset when `naive` is given, and,
    with `epoch_ms`, milliseconds since the epoch (HubSpot's `hs_timestamp`).
    """
    if value is None or isinstance(value, bool):
        raise Unmappable(f"{what}: required, and missing")
    if epoch_ms and (isinstance(value, int | float) or _DIGITS.match(str(value).strip())):
        try:
            return format_utc(datetime.fromtimestamp(int(str(value).strip()) / 1000, UTC))
        except (OverflowError, OSError, ValueError):
            raise Unmappable(f"{what}: {value!r} is not a time in milliseconds since 1970") from None
    cell = text(value)
    if cell is None:
        raise Unmappable(f"{what}: required, and missing")
    compact = _COMPACT_OFFSET.match(cell)
    candidate = f"{compact.group(1)}{compact.group(2)}:{compact.group(3)}" if compact else cell
    try:
        parsed = datetime.fromisoformat(candidate.replace(",", "."))
    except ValueError:
        raise Unmappable(
            f"{what}: {cell!r} is not an ISO 8601 time (expected such as 2025-03-01T10:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        if _DATE_ONLY.match(cell):
            parsed = parsed.replace(tzinfo=naive or UTC)
        elif naive is not None:
            parsed = parsed.replace(tzinfo=naive)
        else:
            raise Unmappable(f"{what}: {cell!r} has no UTC offset (expected such as 2025-03-01T10:00:00Z)")
    return format_utc(parsed)


# --- building wire messages ---------------------------------------------------------------------


def source_ref(system: str, source_id: str) -> dict[str, str]:
    return {"system": system, "id": source_id}


def moment(**fields: Any) -> Wire:
    """A wire moment from keyword fields; fields that are None (or empty attributes) are left out."""
    return {
        name: value for name, value in fields.items()
        if value is not None and not (name == "attributes" and not value)
    }


def retraction(tenant: str, system: str, source_id: str, reason: str) -> Wire:
    """A wire retraction of the moment a vendor record made (a record deleted at the vendor)."""
    return {
        "type": "retract",
        "moment_id": derived_moment_id(tenant, system, source_id),
        "reason": reason,
    }


def compact(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes without the absent ones."""
    return {name: value for name, value in attributes.items() if value is not None and value != ""}


def envelope_items(value: Any, keys: tuple[str, ...]) -> list[Record] | None:
    """The records of a list response: the first of `keys` that holds an array; None if none does."""
    if isinstance(value, dict):
        for key in keys:
            items = value.get(key)
            if isinstance(items, list):
                return records_of(items, f"`{key}`")
    return None


def one_or_many(value: Any, keys: tuple[str, ...]) -> list[Record]:
    """A record per line, a JSON array of records, or a list response wrapped in one of `keys`."""
    if isinstance(value, list):
        return records_of(value, "the array")
    items = envelope_items(value, keys)
    if items is not None:
        return items
    if isinstance(value, dict):
        return [value]
    raise Unmappable(f"expected a JSON object or array, got {type(value).__name__}")
