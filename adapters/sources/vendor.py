"""A source of vendor records: JSONL (one API record or list response per line) or CSV rows.

Each record goes through its vendor's pure mapping (`mot.adapters.vendors`) and comes out as
`Incoming` messages for `mot.service.importing.record_stream`: `raw` is the vendor record (the line,
the CSV row, or the one record of a list response, as JSON), `payload` the mapped wire JSON,
`origin` is `file:line`, plus `#n` when one line holds several records. A record that cannot
be mapped becomes an `Incoming` with `problem` set, so the ledger quarantines it with the
reason and its origin. A record that is by rule no moment (`NotAMoment`) is counted by reason
in `VendorStats`, which the caller reports. Nothing is dropped silently.

`map_value` is the one step from a decoded JSON value (a line, a CSV row, a webhook body) to
messages; the HTTP webhook endpoint uses it too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from mot.adapters.sources.files import CsvTable, Opened, cell_count_problem, jsonl_lines
from mot.adapters.vendors import NotAMoment, Unmappable, VendorConfig, VendorSource
from mot.adapters.vendors.base import without_addresses
from mot.domain.messages import GIVEN_TWICE, duplicate_field
from mot.service.ledger import Incoming
from mot.wording import counted


@dataclass(slots=True)
class VendorStats:
    """What the mapping did with the records of one import (or one webhook request)."""

    source: str
    records: int = 0
    messages: int = 0  # wire messages produced (moments, retractions of deleted records, links)
    links: int = 0  # of which link messages (identity evidence: SPEC §2, Links)
    unmappable: int = 0  # records sent to the quarantine with the mapping's reason
    not_moments: Counter[str] = field(default_factory=Counter)  # reason -> records
    first_origin: dict[str, str] = field(default_factory=dict)  # reason -> where it was first seen

    def skip(self, reason: str, origin: str) -> None:
        self.not_moments[reason] += 1
        self.first_origin.setdefault(reason, origin)

    def merge(self, other: VendorStats) -> None:
        self.records += other.records
        self.messages += other.messages
        self.links += other.links
        self.unmappable += other.unmappable
        self.not_moments.update(other.not_moments)
        for reason, origin in other.first_origin.items():
            self.first_origin.setdefault(reason, origin)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "records": self.records, "messages": self.messages, "links": self.links,
            "unmappable": self.unmappable, "not_moments": sum(self.not_moments.values()),
            "not_moment_reasons": dict(self.not_moments.most_common()),
        }

    def report(self, suppressed: bool = False) -> list[str]:
        """Lines for a person: the counts, then each reason a record was no moment;
        `suppressed` when the import suppressed messages, which may be unmapped records."""
        skipped = sum(self.not_moments.values())
        kept = "quarantined unless naming an erased person" if suppressed else "quarantined"
        lines = [f"{self.source}: {counted(self.records, 'record')} mapped to "
                 f"{counted(self.messages, 'message')}{self._of_which_links()}; "
                 f"{self.unmappable:,} could not be mapped ({kept}), "
                 f"{skipped:,} {'is' if skipped == 1 else 'are'} no "
                 f"{'moment' if skipped == 1 else 'moments'}"]
        for reason, count in self.not_moments.most_common():
            lines.append(f"  no moment ×{count:,}: {reason} (first at {self.first_origin[reason]})")
        return lines

    def _of_which_links(self) -> str:
        return f" ({counted(self.links, 'link')})" if self.links else ""


MAPPING_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
                  RecursionError)
"""What a mapping raises on a value of a shape it did not expect (a list for a string...)."""


def _broke(source: VendorSource, error: Exception) -> str:
    return f"{source.name}: cannot map this record ({type(error).__name__}: {error})"


def map_value(source: VendorSource, value: Any, config: VendorConfig, origin: str,
              raw: bytes | None, stats: VendorStats) -> list[Incoming]:
    """The messages of one decoded value (a JSONL line, a CSV row, a webhook body).

    Each message's `raw` (what the quarantine keeps if it is rejected) is the vendor's record
    with its email addresses replaced by their `email:` ids (SPEC §2: the address itself is
    never stored), unless the source's `email_bridge` is off."""
    raw_value = raw if raw is not None else orjson.dumps(value)
    try:
        found = source.records(value)
    except Unmappable as error:
        stats.records += 1
        stats.unmappable += 1
        return [Incoming(kept(raw_value, source, config), origin,
                         problem=f"{source.name}: {error.reason}")]
    except MAPPING_ERRORS as error:
        # A value of a shape the unwrapping did not expect: keep it, say what broke.
        stats.records += 1
        stats.unmappable += 1
        return [Incoming(kept(raw_value, source, config), origin, problem=_broke(source, error))]
    several = len(found) > 1
    out: list[Incoming] = []
    for number, record in enumerate(found, start=1):
        record_raw = kept(raw_value if record is value else orjson.dumps(record), source, config)
        out.extend(map_record(source, record, config, f"{origin}#{number}" if several else origin,
                              record_raw, stats))
    return out


def kept(raw: bytes, source: VendorSource, config: VendorConfig) -> bytes:
    """What the quarantine may keep of a vendor's record: its bytes, with each email address
    replaced by its `email:` id while the source's email bridge is on (the default)."""
    return without_addresses(raw) if config[source.name].email_bridge else raw


def map_record(source: VendorSource, record: dict[str, Any], config: VendorConfig, origin: str,
               raw: bytes, stats: VendorStats) -> list[Incoming]:
    """The messages of one vendor record; an unmappable one is a message with its `problem`."""
    stats.records += 1
    try:
        messages = source.map(record, config)
    except NotAMoment as skipped:
        stats.skip(skipped.reason, origin)
        return []
    except Unmappable as error:
        stats.unmappable += 1
        return [Incoming(raw, origin, None, f"{source.name}: {error.reason}",
                         _named(source, record, config))]
    except MAPPING_ERRORS as error:
        # A value of a shape the mapping did not expect: keep the record, say what broke.
        stats.unmappable += 1
        return [Incoming(raw, origin, None, _broke(source, error), _named(source, record, config))]
    try:
        encoded = [orjson.dumps(message) for message in messages if _exact(message, "")]
    except _Inexact as error:
        stats.unmappable += 1
        return [Incoming(raw, origin, None, f"{source.name}: {error}",
                         _named(source, record, config))]
    stats.messages += len(messages)
    stats.links += sum(1 for message in messages if message.get("type") == "link")
    return [Incoming(raw, origin, message) for message in encoded]


def _named(source: VendorSource, record: dict[str, Any], config: VendorConfig
           ) -> tuple[tuple[str, str], ...]:
    """The (tenant, customer id)s an unmapped record names (`VendorSource.customers`): the
    quarantine keeps only the vendor's own ids, and the erasure of one purges it by these."""
    try:
        found = source.customers(record, config)
    except MAPPING_ERRORS:  # a shape even this reading did not expect: it names none it can tell
        return ()
    tenant = config[source.name].tenant
    return tuple((tenant, customer) for customer in found)


class _Inexact(ValueError):
    """A mapped value JSON cannot carry as it is."""


def _exact(value: Any, path: str) -> bool:
    """True, or _Inexact naming the field: JSON would carry NaN and infinities as null, and
    orjson refuses integers beyond 64 bits; either way the record would not be kept as sent."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _Inexact(f"{path or 'the message'}: {value} is not a number JSON can carry")
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        raise _Inexact(f"{path or 'the message'}: {value} is beyond 64 bits")
    if isinstance(value, dict):
        for key, item in value.items():
            _exact(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _exact(item, f"{path}[{index}]")
    return True


def vendor_records(opened: Opened | CsvTable, source: VendorSource, config: VendorConfig,
                   stats: VendorStats) -> Iterator[Incoming]:
    """The messages of a whole file, one record at a time (memory stays flat)."""
    if isinstance(opened, CsvTable):
        yield from _csv_messages(opened, source, config, stats)
    else:
        yield from _jsonl_messages(opened, source, config, stats)


def _jsonl_messages(opened: Opened, source: VendorSource, config: VendorConfig,
                    stats: VendorStats) -> Iterator[Incoming]:
    for number, line, problem in jsonl_lines(opened):
        origin = f"{opened.name}:{number}"
        if problem is not None:
            stats.records += 1
            stats.unmappable += 1
            yield Incoming(kept(line, source, config), origin, problem=f"{source.name}: {problem}")
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            stats.records += 1
            stats.unmappable += 1
            yield Incoming(kept(line, source, config), origin,
                           problem=f"{source.name}: not valid JSON ({error})")
            continue
        twice = duplicate_field(line, value)
        if twice is not None:
            stats.records += 1
            stats.unmappable += 1
            yield Incoming(kept(line, source, config), origin,
                           problem=f"{source.name}: {twice} {GIVEN_TWICE}")
            continue
        yield from map_value(source, value, config, origin, line, stats)


def _csv_messages(table: CsvTable, source: VendorSource, config: VendorConfig,
                  stats: VendorStats) -> Iterator[Incoming]:
    columns = table.columns
    for row in table:
        origin = f"{table.opened.name}:{row.line}"
        problem = row.problem
        if problem is None and len(row.cells) != len(columns):
            problem = cell_count_problem(row.cells, columns)
        if problem is not None:
            stats.records += 1
            stats.unmappable += 1
            yield Incoming(kept(row.raw, source, config), origin, problem=f"{source.name}: {problem}")
            continue
        yield from map_value(source, dict(zip(columns, row.cells, strict=True)), config, origin,
                             row.raw, stats)


def check_vendor_header(columns: list[str]) -> list[str]:
    """What is wrong with a vendor CSV header: a column named twice (the mappings read
    fields without case) would lose a cell of each row, as a record is header -> cell."""
    problems: list[str] = []
    seen: set[str] = set()
    for column in columns:
        folded = column.lower()
        if column and folded in seen:
            problems.append(f"column {column!r} appears twice")
        seen.add(folded)
    return problems
