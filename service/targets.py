"""First-response targets (SPEC §3.5 overdue): the `[targets]` part of mot.toml.

    [targets.first_response]      # per request function: how long a customer may wait
    service = "4h"
    logistics = "1d"

    [tenants.acme.targets.first_response]
    service = "2h"                # acme's own target; its other functions keep the defaults

A duration is a whole number and a unit: `3600s`, `90m`, `4h`, `1d`. A bad
duration, an unknown function or an unknown key is a `ConfigError` naming the
key. `parse_duration` is the one duration rule of mot.toml (the alerts' window
uses it too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from mot.domain.vocabulary import FUNCTIONS
from mot.service.config import ConfigError, did_you_mean, read_toml

UNITS: Final[Mapping[str, int]] = MappingProxyType({"s": 1, "m": 60, "h": 3600, "d": 86400})
_DURATION: Final = re.compile(r"(\d{1,12})([smhd])")
TARGET_KINDS: Final = ("first_response",)
"""The targets mot.toml may set (SPEC §3.5): only first-response times today."""
NO_TARGETS: Final = ("--overdue needs first-response targets, and none are configured: add"
                     " [targets.first_response] to mot.toml (service = \"4h\", say)")
"""What `mot query responses --overdue` and GET /v1/responses?overdue=true answer (an error)
when mot.toml sets no target: an empty answer would read as "nothing is late"."""
TENANT_PARTS: Final = ("targets", "alerts", "persons")
"""What `[tenants.NAME]` may hold; each part is checked by its own use case."""


def parse_duration(value: Any, key: str) -> int:
    """Seconds of a duration such as "4h", "90m", "1d", "3600s"; ConfigError naming `key`."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{key}: {value!r} is not a duration like 4h, 90m, 1d")
    return int(match[1]) * UNITS[match[2]]


def format_duration(seconds: int) -> str:
    """The shortest text `parse_duration` reads back to `seconds` ("1d", "90m")."""
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Targets:
    """First-response targets in seconds per request function: the defaults and, per tenant,
    the functions a tenant sets for itself."""

    first_response: Mapping[str, int] = field(default_factory=dict)
    tenants: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def first_response_for(self, tenant: str) -> Mapping[str, int]:
        """The targets of one tenant: its own, else the defaults, per function."""
        own = self.tenants.get(tenant)
        return self.first_response if not own else {**self.first_response, **own}

    @property
    def configured(self) -> bool:
        return bool(self.first_response) or any(self.tenants.values())


def targets_from_dict(data: Mapping[str, Any], path: str = "mot.toml") -> Targets:
    """The targets of decoded mot.toml (other sections are their owners' to check)."""
    first_response = _targets(data.get("targets", {}), f"{path}: targets")
    tenants = data.get("tenants", {})
    if not isinstance(tenants, dict):
        raise ConfigError(f"{path}: tenants: expected tables [tenants.NAME]")
    per_tenant = {}
    for name, section in tenants.items():
        where = f"{path}: tenants.{name}"
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: expected a table [tenants.{name}]")
        for key in sorted(set(section) - set(TENANT_PARTS)):
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, TENANT_PARTS)}"
                              f" (allowed: {', '.join(TENANT_PARTS)})")
        per_tenant[name] = _targets(section.get("targets", {}), f"{where}.targets")
    return Targets(first_response, per_tenant)


def load_targets(path: str | Path | None) -> Targets:
    """The targets of a mot.toml file; no targets without a file."""
    if path is None:
        return Targets()
    return targets_from_dict(read_toml(path), str(path))


def _targets(section: Any, where: str) -> dict[str, int]:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a table such as [targets.first_response]")
    for key in sorted(set(section) - set(TARGET_KINDS)):
        raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, TARGET_KINDS)}"
                          f" (allowed: {', '.join(TARGET_KINDS)})")
    table = section.get("first_response", {})
    where = f"{where}.first_response"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of function = duration (service = \"4h\")")
    out = {}
    for function, value in table.items():
        if function not in FUNCTIONS:
            raise ConfigError(f"{where}.{function}: {function!r} is not a function (expected one"
                              f" of {', '.join(FUNCTIONS)}){did_you_mean(function, FUNCTIONS)}")
        out[function] = parse_duration(value, f"{where}.{function}")
    return out
