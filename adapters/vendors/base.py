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

A record may also carry evidence that two customer ids are one person (a CRM
merge, a converted lead, a user's identities, an email address): the mapping then
adds link messages (SPEC §2, Links) with the vendor's time for that evidence, so
that importing it again repeats the same message (a duplicate). An email address
becomes the id `email:<sha256 of the trimmed lowercase address>`; the address
itself goes into no message.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Final

from mot.domain.identity import derived_moment_id
from mot.domain.timefmt import format_utc

if TYPE_CHECKING:
    from mot.adapters.vendors.config import VendorConfig, VendorSettings

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
    # The customer ids a record names (its contact, requester, author...) as its mapping
    # writes them, whether or not it maps: what a quarantined record is erased and
    # suppressed by (SPEC §6), as it holds only the vendor's own ids.
    customers: Callable[[Record, VendorConfig], list[str]]


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


# --- links: identity evidence (SPEC §2, Links) --------------------------------------------------

EMAIL_PREFIX: Final = "email:"
# An address as vendors write it (no display name): what is hashed, trimmed and in lower case.
_ADDRESS: Final = re.compile(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]+")
# Addresses inside a raw record (JSON, a CSV row), for `without_addresses`: found from their `@`
# and domain, then the local part read backwards (a pattern starting with the local part would be
# tried at every byte of a long line).
_RAW_DOMAIN: Final = re.compile(rb"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_LOCAL_BYTES: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                b".!#$%&*+/=?^_`{|}~-")


def email_id(address: Any) -> str | None:
    """`email:<sha256 hex of the trimmed lowercase address>`; None when `address` is no address."""
    cell = text(address)
    return None if cell is None else _email_id(cell.lower())


@functools.lru_cache(maxsize=4096)  # the same few addresses recur on every page of a response
def _email_id(folded: str) -> str | None:
    if _ADDRESS.fullmatch(folded) is None:
        return None
    return EMAIL_PREFIX + hashlib.sha256(folded.encode()).hexdigest()


def customer_ids(settings: VendorSettings, vendor_ids: Iterable[Any]) -> list[str]:
    """The customer ids of these vendor ids (each once; absent and empty ones left out)."""
    return [settings.customer(found) for found in dict.fromkeys(map(text, vendor_ids)) if found]


def link(settings: VendorSettings, a: str, b: str, occurred_at: str, reason: str) -> list[Wire]:
    """The link message saying that `a` and `b` are one person, in the section's tenant; none when
    the section's `links` is off or the two are one id."""
    if not settings.links or a == b:
        return []
    return [{"type": "link", "tenant": settings.tenant, "customer_ids": [a, b],
             "occurred_at": occurred_at, "reason": reason}]


def links_to(settings: VendorSettings, a: str, others: Iterable[str], occurred_at: str,
             reason: str) -> list[Wire]:
    """A link from `a` to each of `others` (each once, in their order)."""
    return [message for other in dict.fromkeys(others)
            for message in link(settings, a, other, occurred_at, reason)]


def email_link(settings: VendorSettings, customer: str, address: Any, occurred_at: str,
               reason: str) -> list[Wire]:
    """The email bridge: `customer` linked to the `email:` id of `address` (never the address);
    none when `email_bridge` (or `links`) is off or `address` is no address. `reason` must not
    name the address."""
    if not settings.email_bridge:
        return []
    bridge = email_id(address)
    return [] if bridge is None else link(settings, customer, bridge, occurred_at, reason)


def handle_id(x_settings: VendorSettings, handle: str) -> str:
    """The id of an X handle (`x:@maria`, with the X section's `customer_prefix`): X's own records
    link it to the account's user id (`x:1400…`), other sources to their customer."""
    return f"{x_settings.customer_prefix}@{handle.strip().lstrip('@').lower()}"


def without_addresses(raw: bytes) -> bytes:
    """A record's bytes with every email address replaced by its `email:` id: what the quarantine
    keeps of a record it cannot map, so that no address is stored (the record still says where
    each address was)."""
    if b"@" not in raw:
        return raw
    parts: list[bytes] = []
    done = 0
    for found in _RAW_DOMAIN.finditer(raw):
        start = found.start()
        while start > done and raw[start - 1] in _LOCAL_BYTES:
            start -= 1
        bridge = email_id(raw[start:found.end()].decode()) if start < found.start() else None
        if bridge is not None:
            parts += [raw[done:start], bridge.encode()]
            done = found.end()
    return b"".join([*parts, raw[done:]]) if parts else raw
