"""A rejected message kept with everything needed to fix and replay it (SPEC §2)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Rejected:
    """One rejected message on its way to the quarantine."""

    raw: bytes  # exactly the bytes received
    payload: bytes | None  # the wire JSON it maps to, when that differs from raw (CSV rows)
    origin: str  # file:line, kafka:topic/partition/offset, http:request#item
    field: str
    reason: str
    # A correction of a moment not recorded: (tenant or None, moment id) it waits for.
    waits_for: tuple[str | None, str] | None = None
    # A waiting correction sent again after another one for its moment (A, B, A) is not a
    # repeat of its first sending: it waits as an entry of its own, the how-manyth such.
    occurrence: int = 0
    # (tenant, customer id)s a source's record names that its bytes write otherwise (a
    # vendor's own contact id): what an erasure of one of them purges it by (`names_any`).
    names: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # PostgreSQL text cannot hold U+0000, and a source's reason may quote what it was sent
        # ("no column 'k\x00'"): the entry keeps it written as JSON writes it, \u0000.
        if "\x00" in self.reason or "\x00" in self.field:
            object.__setattr__(self, "field", self.field.replace("\x00", "\\u0000"))
            object.__setattr__(self, "reason", self.reason.replace("\x00", "\\u0000"))

    @property
    def digest(self) -> str:
        """What makes it the same message again: the SHA-256 of what is replayed (the mapped
        payload when there is one, else the raw bytes), in hex; a later occurrence's is that
        of the message's digest and its number."""
        import hashlib  # here, not at the top: loading OpenSSL is a tenth of a query's start-up

        digest = hashlib.sha256(self.payload if self.payload is not None else self.raw)
        if not self.occurrence:
            return digest.hexdigest()
        return hashlib.sha256(b"mot:occurrence:%d:%s" % (self.occurrence, digest.digest())
                              ).hexdigest()


def in_arrival_order(rejected: list[Rejected], waiting: Iterable[Quarantined]) -> list[Rejected]:
    """`rejected` with each waiting correction numbered by its occurrence among the corrections
    waiting for its moment (`waiting`: those already kept, oldest first): SPEC §2 applies
    them in the order they arrived and A -> B -> A three times, so the second A must not
    count as a repeat of the first; a retry of the latest one still is a repeat."""
    if all(r.waits_for is None for r in rejected):
        return rejected
    sent: dict[tuple[str | None, str], list[bytes]] = {}  # moment -> its corrections in order
    for entry in waiting:
        if entry.waits_for is not None:
            sent.setdefault(entry.waits_for, []).append(entry.message)
    out = []
    for r in rejected:
        if r.waits_for is None:
            out.append(r)
            continue
        message = r.payload if r.payload is not None else r.raw
        before = sent.setdefault(r.waits_for, [])
        if before and before[-1] == message:  # a retry of the latest: a repeat of it
            occurrence = before.count(message) - 1
        else:
            occurrence = before.count(message)
            before.append(message)
        out.append(replace(r, occurrence=occurrence) if occurrence else r)
    return out


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A message in the quarantine; the same bytes rejected again count as a repeat."""

    id: int
    raw: bytes
    payload: bytes | None
    origin: str
    last_origin: str
    field: str
    reason: str
    first_seen: str
    last_seen: str
    repeats: int
    waits_for: tuple[str | None, str] | None = None  # see Rejected.waits_for
    names: tuple[tuple[str, str], ...] = ()  # see Rejected.names

    @property
    def message(self) -> bytes:
        """The bytes a replay validates: the mapped payload if there is one, else the raw bytes."""
        return self.payload if self.payload is not None else self.raw


def summarise(reasons: Iterable[tuple[str, str, int, int]]) -> list[dict[str, object]]:
    """Group (field, reason, messages, lowest id) rows by field and the shape of the reason.

    A reason that names several fields ("channel: ...; kind: ...") counts under each; the
    value a message sent (", got ...", a moment id, a position in the line) is left out,
    so that the same mistake made by many messages is one group.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    # A group's "did you mean" suggestions, each with the values sent that it is for and how
    # many messages sent each: the value is left out of the reason, but the hint is the fix.
    meant: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    for field, reason, messages, example in reasons:
        parts = _PART.split(reason) if field else [reason]
        for part in parts:
            named, sep, problem = part.partition(": ")
            part_field, problem = (named, problem) if sep and _FIELD.fullmatch(named) else ("", part)
            if not field:
                part_field = ""
            key = (part_field, _shape(problem))
            group = groups.setdefault(key, [0, example])
            group[0] += messages
            group[1] = min(group[1], example)
            hint = _DID_YOU_MEAN.search(problem)
            if hint is not None:
                sent = meant.setdefault(key, {}).setdefault(hint["meant"], {})
                sent[hint["got"]] = sent.get(hint["got"], 0) + messages
    return [
        {"field": field, "reason": reason, "did_you_mean": _suggestions(meant.get((field, reason))),
         "messages": messages, "example": example}
        for (field, reason), (messages, example) in sorted(
            groups.items(), key=lambda item: (-item[1][0], item[1][1]))
    ]


# ", got 'emial' (did you mean 'email'?)" at the end of a field's problem (domain.messages).
_DID_YOU_MEAN = re.compile(r",? got (?P<got>.{1,80}?) \(did you mean (?P<meant>.{1,80}?)\?\)$")
SUGGESTED_VALUES = 3  # the values shown for one suggestion, most sent first


def _suggestions(meant: dict[str, dict[str, int]] | None) -> str | None:
    """"'email' for 'emial', 'e-mail'; 'phone' for 'fone'": each suggestion, the most sent
    first, with the values it is for (the first SUGGESTED_VALUES of them, and how many more)."""
    if not meant:
        return None
    shown = []
    for suggestion, sent in sorted(meant.items(), key=lambda item: -sum(item[1].values())):
        values = sorted(sent, key=lambda value: -sent[value])
        more = f" and {len(values) - SUGGESTED_VALUES} more" if len(values) > SUGGESTED_VALUES else ""
        shown.append(f"{suggestion} for {', '.join(values[:SUGGESTED_VALUES])}{more}")
    return "; ".join(shown)


# A field path as reasons name it: customer_id, source.id, set.kind, attributes.a[0].
_FIELD = re.compile(r"[A-Za-z_][\w]*(?:\.[\w]+|\[\d+\])*")
# The "; " before the next field's part of a reason that names several.
_PART = re.compile(r"; (?=[A-Za-z_][\w]*(?:\.[\w]+|\[\d+\])*: )")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_VALUE_TAIL = re.compile(r",? got .*$|(?: at| \(at)? line \d+,? column \d+.*$| \(char \d+\)\)?$")
# Where in the line a JSON or text error was found ("at character 12", "(byte 0xff at byte 1)").
_POSITION = re.compile(r" ?\(cut off after character \d+\)| at character \d+(?:: .*$)?|"
                       r" \(byte 0x[0-9a-f]{2} at byte \d+\)")


def _shape(problem: str) -> str:
    """The problem without what one message sent: its value, ids, positions."""
    return _POSITION.sub("", _VALUE_TAIL.sub("", _UUID.sub("<id>", problem))).strip()


# -- what a message that may not be valid names (SPEC §6: suppression and the erasure's purge)

CORRECTIONS = ("amend", "retract")


def said_tenant(message: Mapping[str, Any]) -> object:
    """The tenant a wire message (a decoded JSON object, valid or not) is of: its `tenant`
    as sent; "default" when it has none, except a correction (amend, retract), which then
    names a moment of whichever tenant has one (None)."""
    named = message.get("tenant")
    if named is None and message.get("type") not in CORRECTIONS:
        return "default"
    return named


def moment_ref(text: str) -> str | None:
    """The canonical moment id (lowercase, hyphenated) a text writes in any form of a UUID
    (any case; hyphens or none; braces, `urn:uuid:`), else None."""
    if not 32 <= len(text) <= 45:
        return None
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


# A JSON object holding one of these is a wire message: of the tenant it says (`said_tenant`).
_WIRE_KEYS = ("customer_id", "customer_ids", "moment_id", "type")
_TENANT_SAID = re.compile(rb'"tenant"\s*:\s*"([^"\\]*)"')


def read_said(message: bytes) -> tuple[Any, object]:
    """A quarantined message's bytes decoded (None when they are not JSON) and the tenant
    they say it is of, the only tenant whose erasure may purge it by the ids it holds: a
    wire message's `said_tenant` (None for a correction naming none: any tenant's); for
    another JSON object (a source's record it could not map) None, whatever its tenant; for
    anything else (a malformed line) the `"tenant": "..."` it holds, else None."""
    import orjson

    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        return data, said_tenant(data) if any(key in data for key in _WIRE_KEYS) else None
    said = _TENANT_SAID.search(message)
    return data, None if said is None else said.group(1).decode("utf-8", "surrogateescape")


def erased_with(message: bytes, names: Iterable[tuple[str, str]],
                origin: str = "") -> str | None:
    """The tenant whose erasures alone may purge this quarantined message, None when any
    tenant's may (the quarantine's `tenant`: an erasure reads only its tenant's entries and
    those): the tenant its bytes say (`read_said`), unless its source said whom it names
    (`names`: a vendor's record, purged by those too), or what they say is no tenant's
    name (a number, text a database column cannot hold), which no erasure purges by it
    but which is left to the erasure's own reading rather than trusted here. A message an
    HTTP token sent (origin `http:TENANT:REQUEST#INDEX`, or a webhook's
    `webhook:SOURCE:TENANT:REQUEST`) is its tenant's whatever its bytes say: a JSON text, an
    object without wire fields or a vendor's record was any tenant's, so another tenant's
    admin token could count it in a dry run (a probe of this tenant's ids) and purge it."""
    sender = _sender(origin)
    if sender is not None:
        return sender
    if any(True for _ in names):
        return None
    said = read_said(message)[1]
    if not isinstance(said, str) or "\x00" in said:
        return None
    try:
        said.encode()
    except UnicodeEncodeError:
        return None
    return said


def _sender(origin: str) -> str | None:
    """The tenant an HTTP origin names: `http:TENANT:REQUEST#INDEX`,
    `webhook:SOURCE:TENANT:REQUEST[#N]` (a tenant may hold `:`; a request id does not)."""
    if origin.startswith("http:"):
        rest = origin[5:]
    elif origin.startswith("webhook:"):
        rest = origin[8:].partition(":")[2]
    else:
        return None
    sender, colon, _ = rest.rpartition(":")
    return sender if colon and sender else None


def names_any(message: Any, customer_ids: Collection[str], moment_ids: Collection[str]) -> bool:
    """Whether a decoded JSON value names one of these customer ids (exactly: ids are
    case-sensitive) or canonical moment ids (in any form `moment_ref` reads) as one of
    its texts, anywhere in it."""
    return any(text in customer_ids or moment_ref(text) in moment_ids
               for text in _texts(message))


def names_listed(names: Iterable[tuple[str, str]], tenant: str,
                 customer_ids: Collection[str]) -> bool:
    """Whether the (tenant, customer id)s a source said a record names (`Rejected.names`:
    a vendor's record writes only the vendor's own ids) include one of these of `tenant`."""
    return any(said == tenant and customer in customer_ids for said, customer in names)


def _texts(value: Any) -> Iterator[str]:
    """Every text of a decoded JSON value: its strings and object keys."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item
            pending += item.values()
        elif isinstance(item, list):
            pending += item
