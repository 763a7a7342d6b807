"""The vendor mapping configuration: which tenant, and which team (`function`) owned a moment.

Read from a TOML file (`mot.toml` by default; see docs/sources.md for the format):

    tenant = "acme"

    [hubspot]
    owners = { "52550153" = "sales", "61112004" = "service" }

    [zendesk]
    agents = { "3001" = "service" }
    groups = { "360001" = "service" }

    [x]
    handles = { "acme" = "marketing", "acmehelp" = "service" }

Every vendor has a section with `tenant` (overrides the top-level one),
`default_function` and `customer_prefix`, `links` and `email_bridge` (both on by default:
whether the vendor's identity evidence becomes link messages, SPEC §2), and tables mapping the vendor's own
owners, queues, teams, groups, mailboxes, agents, handles or accounts to a
function. A table may also be a list of keys, which then map to the section's
`default_function`. Unknown sections and keys are errors: a typo must not make
a setting vanish silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mot.domain.schema import MAX_TENANT
from mot.domain.vocabulary import ASK_TYPES, FUNCTIONS, KINDS_BY_DIRECTION

# The one file's reading and error, re-exported: the vendor parsers and `mot serve` name them here.
from mot.service.config import ConfigError as ConfigError
from mot.service.config import did_you_mean as _did_you_mean
from mot.service.config import read_toml as read_toml

VENDORS: Final = ("hubspot", "salesforce", "zendesk", "mentions", "x")

# The tables of each vendor that map one of its ids (or handles, addresses) to a function.
FUNCTION_TABLES: Final[dict[str, tuple[str, ...]]] = {
    "hubspot": ("owners", "teams", "mailboxes"),
    "salesforce": ("owners", "queues"),
    "zendesk": ("agents", "groups", "mailboxes"),
    "mentions": ("handles",),
    "x": ("handles", "accounts"),
}

DEFAULT_FUNCTIONS: Final[dict[str, str]] = {
    "hubspot": "sales", "salesforce": "sales", "zendesk": "service", "mentions": "marketing",
    "x": "marketing",
}

# Activities whose kind a user may override, per vendor: `[hubspot.kinds] "call.outbound" = "question"`.
KIND_ACTIVITIES: Final[dict[str, frozenset[str]]] = {
    "hubspot": frozenset({"call", "email", "meeting", "note"}),
    "salesforce": frozenset({"call", "email", "list_email", "cadence", "linkedin", "meeting"}),
    "zendesk": frozenset(),
    "mentions": frozenset(),
    "x": frozenset(),
}

_COMMON_KEYS: Final = frozenset({"tenant", "default_function", "customer_prefix", "kinds", "links",
                                  "email_bridge"})
_EXTRA_KEYS: Final[dict[str, frozenset[str]]] = {
    "hubspot": frozenset(),
    "salesforce": frozenset({"closed_statuses"}),
    "zendesk": frozenset(),
    "mentions": frozenset({"system", "timezone", "sentiment_scale", "sentiment_labels", "columns"}),
    "x": frozenset(),
}

# The mentions export columns each field is read from, first match wins (compared without case).
MENTION_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "id": ("Mention Id", "Mention ID", "Resource Id", "Post Id", "Id"),
    "date": ("Date", "Published", "Published Date", "Created At", "Created"),
    "author": ("Author", "Author Handle", "Username", "Screen Name", "Author Name"),
    "url": ("Url", "Link", "Permalink"),
    "sentiment": ("Sentiment", "Sentiment Score", "Tone"),
    "reach": ("Reach", "Estimated Reach", "Potential Reach", "Audience", "Followers"),
    "reply_to": ("Reply To Id", "Reply To", "In Reply To", "Parent Id"),
    "repost_of": ("Repost Of Id", "Repost Of", "Reposted Id", "Retweet Of", "Shared Id"),
    "channel": ("Channel", "Platform", "Page Type", "Source", "Media Type"),
    "thread": ("Thread Id", "Thread", "Conversation Id"),
}

DEFAULT_SENTIMENT_LABELS: Final[dict[str, float]] = {
    "positive": 0.6, "negative": -0.6, "neutral": 0.0, "mixed": 0.0,
}

DEFAULT_CLOSED_STATUSES: Final = frozenset({"completed"})


@dataclass(frozen=True, slots=True)
class VendorSettings:
    """The settings of one vendor section."""

    vendor: str
    tenant: str = "default"
    default_function: str = "other"
    customer_prefix: str = ""
    tables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    kinds: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    closed_statuses: frozenset[str] = DEFAULT_CLOSED_STATUSES
    system: str = ""
    timezone: tzinfo = UTC
    sentiment_scale: float = 1.0
    sentiment_labels: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SENTIMENT_LABELS))
    columns: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(MENTION_COLUMNS))
    links: bool = True  # the vendor's identity evidence becomes link messages (SPEC §2, Links)
    email_bridge: bool = True  # ... including a link to `email:<sha256>` where a record has an address

    def function(self, table: str, key: Any) -> str | None:
        """The function that `key` (an owner id, a group id, a handle, an address) maps to in `table`."""
        if key is None:
            return None
        return self.tables.get(table, {}).get(_table_key(table, str(key)))

    def has(self, table: str, key: Any) -> bool:
        return key is not None and _table_key(table, str(key)) in self.tables.get(table, {})

    def customer(self, vendor_id: Any) -> str:
        """The wire `customer_id` of one of the vendor's contact, lead, user or author ids."""
        return f"{self.customer_prefix}{vendor_id}"

    def kind(self, activity: str, direction: str, default: str) -> tuple[str, str | None]:
        """The kind (and ask_type) of an activity in a direction: the configured one, else `default`."""
        return self.kinds.get(f"{activity}.{direction}", (default, None))


@dataclass(frozen=True, slots=True)
class VendorConfig:
    """The whole configuration: one VendorSettings per vendor (defaults for those not configured)."""

    tenant: str = "default"
    path: str | None = None
    sections: Mapping[str, VendorSettings] = field(default_factory=dict)

    def __getitem__(self, vendor: str) -> VendorSettings:
        settings = self.sections.get(vendor)
        if settings is None:
            return _defaults(vendor, self.tenant)
        return settings

    @classmethod
    def load(cls, path: str | Path) -> VendorConfig:
        """Read a TOML file; ConfigError when it cannot be read or a setting is wrong."""
        return cls.from_dict(read_toml(path), str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "<config>") -> VendorConfig:
        """Build from decoded TOML (a dict), checking every key and value."""
        # mot.toml is one file: [webhooks] holds `mot serve`'s signing secrets, [targets] the
        # first-response targets, [alerts] the alerts' settings, [tenants.NAME] both per tenant;
        # each is checked by its own use case (service/config.py).
        known = {"tenant", "webhooks", "targets", "alerts", "tenants", *VENDORS}
        unknown = set(data) - known
        for key in sorted(unknown):
            raise ConfigError(f"{path}: unknown key {key!r}{_did_you_mean(key, known)}")
        tenant = _tenant(data.get("tenant", "default"), f"{path}:", "tenant")
        sections = {}
        for vendor in VENDORS:
            section = data.get(vendor, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{path}: [{vendor}] must be a table")
            sections[vendor] = _section(vendor, section, tenant, f"{path}: [{vendor}]")
        return cls(tenant, path, sections)


def _defaults(vendor: str, tenant: str) -> VendorSettings:
    return VendorSettings(
        vendor, tenant, DEFAULT_FUNCTIONS[vendor], f"{vendor}:",
        system=vendor if vendor != "mentions" else "mentions",
    )


def _section(vendor: str, data: dict[str, Any], tenant: str, where: str) -> VendorSettings:
    allowed = _COMMON_KEYS | _EXTRA_KEYS[vendor] | set(FUNCTION_TABLES[vendor])
    for key in sorted(set(data) - allowed):
        raise ConfigError(f"{where} unknown key {key!r}{_did_you_mean(key, allowed)}"
                          f" (allowed: {', '.join(sorted(allowed))})")
    default = _defaults(vendor, tenant)
    section_tenant = _tenant(data.get("tenant", tenant), where, "tenant")
    default_function = _function(data.get("default_function", default.default_function),
                                 f"{where} default_function")
    prefix = data.get("customer_prefix", default.customer_prefix)
    if not isinstance(prefix, str):
        raise ConfigError(f"{where} customer_prefix: expected text, got {prefix!r}")
    tables = {
        table: _table(table, data[table], default_function, f"{where} {table}")
        for table in FUNCTION_TABLES[vendor] if table in data
    }
    if vendor == "salesforce" and "queues" in tables:  # queues own records like users do
        tables["owners"] = {**tables.get("owners", {}), **tables.pop("queues")}
    kinds = _kinds(vendor, data.get("kinds", {}), f"{where} kinds")
    settings: dict[str, Any] = {
        name: _switch(data[name], f"{where} {name}") for name in ("links", "email_bridge") if name in data
    }
    if "closed_statuses" in data:
        statuses = data["closed_statuses"]
        if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
            raise ConfigError(f"{where} closed_statuses: expected a list of Status values")
        settings["closed_statuses"] = frozenset(s.strip().lower() for s in statuses)
    if vendor == "mentions":
        settings.update(_mentions(data, where))
    return VendorSettings(
        vendor, section_tenant, default_function, prefix, tables, kinds,
        system=settings.pop("system", default.system), **settings,
    )


def _mentions(data: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "system" in data:
        system = data["system"]
        if not isinstance(system, str) or not 1 <= len(system) <= 128:
            raise ConfigError(f"{where} system: expected a name of 1 to 128 characters")
        out["system"] = system
    if "timezone" in data:
        name = data["timezone"]
        try:
            out["timezone"] = UTC if name in ("UTC", "Z") else ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where} timezone: unknown time zone {name!r} (such as UTC or "
                              "Europe/Paris)") from None
    if "sentiment_scale" in data:
        scale = data["sentiment_scale"]
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
            raise ConfigError(f"{where} sentiment_scale: expected a positive number (1, 5, 100)")
        out["sentiment_scale"] = float(scale)
    if "sentiment_labels" in data:
        labels = data["sentiment_labels"]
        if not isinstance(labels, dict):
            raise ConfigError(f"{where} sentiment_labels: expected a table of label = number")
        parsed: dict[str, float] = {}
        for label, value in labels.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
                raise ConfigError(f"{where} sentiment_labels.{label}: expected a number in [-1, 1]")
            parsed[label.strip().lower()] = float(value)
        out["sentiment_labels"] = parsed
    if "columns" in data:
        columns = data["columns"]
        if not isinstance(columns, dict):
            raise ConfigError(f"{where} columns: expected a table of field = \"Column name\"")
        merged = dict(MENTION_COLUMNS)
        for name, header in columns.items():
            if name not in MENTION_COLUMNS:
                raise ConfigError(f"{where} columns: unknown field {name!r}"
                                  f"{_did_you_mean(name, set(MENTION_COLUMNS))}"
                                  f" (fields: {', '.join(MENTION_COLUMNS)})")
            headers = [header] if isinstance(header, str) else header
            if not isinstance(headers, list) or not headers or not all(isinstance(h, str) for h in headers):
                raise ConfigError(f"{where} columns.{name}: expected a column name or a list of them")
            merged[name] = tuple(headers)
        out["columns"] = merged
    return out


def _table(table: str, value: Any, default_function: str, where: str) -> dict[str, str]:
    if isinstance(value, list):
        return {_table_key(table, str(key)): default_function for key in value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table of id = function, or a list of ids")
    return {_table_key(table, str(key)): _function(function, f"{where}.{key}")
            for key, function in value.items()}


def _table_key(table: str, key: str) -> str:
    key = key.strip()
    if table == "handles":
        return key.lstrip("@").lower()
    if table == "mailboxes":
        return key.lower()
    return key


def _kinds(vendor: str, value: Any, where: str) -> dict[str, tuple[str, str | None]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table such as {{ \"call.outbound\" = \"question\" }}")
    activities = KIND_ACTIVITIES[vendor]
    if value and not activities:
        raise ConfigError(f"{where}: this source's kinds follow from its records and cannot be set")
    out: dict[str, tuple[str, str | None]] = {}
    for key, setting in value.items():
        activity, _, direction = key.partition(".")
        if activity not in activities or direction not in ("inbound", "outbound"):
            raise ConfigError(
                f"{where}: {key!r} is not ACTIVITY.DIRECTION (activities: {', '.join(sorted(activities))};"
                " directions: inbound, outbound)")
        if not isinstance(setting, str):
            raise ConfigError(f"{where}.{key}: expected a kind such as \"question\" or \"ask:meeting\"")
        kind, _, ask_type = setting.partition(":")
        allowed = KINDS_BY_DIRECTION[direction]
        if kind not in allowed:
            raise ConfigError(f"{where}.{key}: {kind!r} is not a kind of direction {direction!r} "
                              f"(expected one of {', '.join(allowed)})")
        if ask_type and (kind != "ask" or ask_type not in ASK_TYPES):
            raise ConfigError(f"{where}.{key}: \"{setting}\": only \"ask:TYPE\" takes a type, with TYPE "
                              f"one of {', '.join(ASK_TYPES)}")
        out[key] = (kind, ask_type or None)
    return out


def _switch(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _function(value: Any, where: str) -> str:
    if value not in FUNCTIONS:
        raise ConfigError(f"{where}: {value!r} is not a function (expected one of {', '.join(FUNCTIONS)})")
    return str(value)


def _tenant(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_TENANT:
        raise ConfigError(f"{where} {key}: expected a tenant name of 1 to {MAX_TENANT} characters, "
                          f"got {value!r}")
    return value
