"""The vendor mappings: one pure module per source system, from its own records to wire moments.

`SOURCES[name]` is a `VendorSource` with `records(value)` (unwrap what one line, CSV row or
webhook body holds) and `map(record, config)` (wire-format v1 messages, or `Unmappable` /
`NotAMoment`). `adapters/sources/vendor.py` turns files into `Incoming` messages with them;
docs/sources.md documents each mapping and the configuration file.
"""

from __future__ import annotations

from typing import Final

from mot.adapters.vendors import hubspot, mentions, salesforce, x, zendesk
from mot.adapters.vendors.base import NotAMoment, Record, Unmappable, VendorSource, Wire
from mot.adapters.vendors.config import ConfigError, VendorConfig, VendorSettings

SOURCES: Final[dict[str, VendorSource]] = {
    source.name: source
    for source in (hubspot.SOURCE, salesforce.SOURCE, zendesk.SOURCE, mentions.SOURCE, x.SOURCE)
}

__all__ = [
    "SOURCES",
    "ConfigError",
    "NotAMoment",
    "Record",
    "Unmappable",
    "VendorConfig",
    "VendorSettings",
    "VendorSource",
    "Wire",
]
