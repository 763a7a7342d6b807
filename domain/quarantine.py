"""A rejected message kept with everything needed to fix and replay it (SPEC §2)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


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

    @property
    def digest(self) -> str:
        """What makes it the same message again: the SHA-256 of what is replayed (the mapped
        payload when there is one, else the raw bytes), in hex."""
        import hashlib  # here, not at the top: loading OpenSSL is a tenth of a query's start-up

        return hashlib.sha256(self.payload if self.payload is not None else self.raw).hexdigest()


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
    return [
        {"field": field, "reason": reason, "messages": messages, "example": example}
        for (field, reason), (messages, example) in sorted(
            groups.items(), key=lambda item: (-item[1][0], item[1][1]))
    ]


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
