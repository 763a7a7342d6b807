"""The `[alerts]` part of mot.toml: thresholds, and where alerts are delivered (SPEC §3.6).

    [alerts]
    window = "72h"              # only moments this fresh raise alerts
    negative_reach = 1000       # negative_amplification threshold
    overdue_check = "30s"       # how often the long-running commands look for overdue requests

    [[alerts.webhooks]]
    url = "https://hooks.example.com/mot"
    secret = "..."              # signs each POST; required unless insecure = true
    format = "json"             # or "slack"
    rules = ["detractor", "overdue"]   # optional filters
    tenants = ["acme"]

    [alerts.kafka]
    topic = "mot.alerts"
    bootstrap = "localhost:9092"

    [tenants.acme.alerts]       # a tenant's own thresholds
    window = "24h"
    negative_reach = 500

Bad configuration is one error naming the key: a typo must not make a destination or
a threshold vanish silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from mot.projections.alerts import DEFAULT_NEGATIVE_REACH, DEFAULT_WINDOW_US, RULES, AlertPolicy, Rule
from mot.service.alerting import OVERDUE_CHECK_S
from mot.service.config import DEFAULT_PATH, ConfigError, did_you_mean, read_toml
from mot.service.targets import TENANT_PARTS, Targets, parse_duration, targets_from_dict

ALERT_KEYS: Final = frozenset({"window", "negative_reach", "overdue_check", "webhooks", "kafka"})
WEBHOOK_KEYS: Final = frozenset({"name", "url", "secret", "format", "rules", "tenants", "insecure"})
KAFKA_KEYS: Final = frozenset({"name", "topic", "bootstrap", "rules", "tenants"})
TENANT_ALERT_KEYS: Final = frozenset({"window", "negative_reach"})
TENANT_KEYS: Final = frozenset(TENANT_PARTS)  # `targets`: the responses' (service/targets.py)

Format = Literal["json", "slack"]


@dataclass(frozen=True, slots=True)
class Filters:
    """Which alerts a destination takes (empty: all)."""

    rules: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()

    def wants(self, rule: str, tenant: str) -> bool:
        return (not self.rules or rule in self.rules) and (not self.tenants or tenant in self.tenants)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    name: str  # the destination's name in the delivery state (default: the URL)
    url: str
    secret: str | None
    format: Format = "json"
    filters: Filters = Filters()


@dataclass(frozen=True, slots=True)
class KafkaAlertSettings:
    name: str
    topic: str
    bootstrap: str
    filters: Filters = Filters()


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Everything the `[alerts]` and `[tenants.NAME.alerts]` sections say."""

    policy: AlertPolicy = field(default_factory=AlertPolicy)
    webhooks: tuple[WebhookSettings, ...] = ()
    kafka: KafkaAlertSettings | None = None
    path: str | None = None
    tenants: tuple[str, ...] = field(default=())
    targets: Targets = field(default_factory=Targets)  # [targets]: what `overdue` checks
    overdue_check_s: int = OVERDUE_CHECK_S  # seconds between the overdue checks

    @property
    def destinations(self) -> tuple[WebhookSettings | KafkaAlertSettings, ...]:
        return (*self.webhooks, *((self.kafka,) if self.kafka else ()))


def _window(value: Any, where: str) -> int:
    """Microseconds of a duration (mot.toml's one duration rule, `service/targets.py`)."""
    seconds = parse_duration(value, where)
    if seconds <= 0:
        raise ConfigError(f"{where}: {value!r} is no window: expected more than 0, like 72h")
    return seconds * 1_000_000


def load_alert_config(path: str | Path | None = None) -> AlertConfig:
    """The alert configuration of `path`, else of `MOT_CONFIG`, else of ./mot.toml when it
    exists; the defaults when there is none."""
    chosen = path or os.environ.get("MOT_CONFIG") or (
        DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None)
    if chosen is None:
        return AlertConfig()
    data = read_toml(chosen)
    return alert_config(data, str(chosen))


def alert_config(data: Mapping[str, Any], path: str = "<config>") -> AlertConfig:
    """The alert configuration of a parsed mot.toml (other sections are not read here)."""
    section = _table(data.get("alerts", {}), f"{path}: [alerts]")
    _known(section, ALERT_KEYS, f"{path}: [alerts]")
    window = (_window(section["window"], f"{path}: [alerts] window")
              if "window" in section else DEFAULT_WINDOW_US)
    reach = (_count(section["negative_reach"], f"{path}: [alerts] negative_reach")
             if "negative_reach" in section else DEFAULT_NEGATIVE_REACH)
    check = (parse_duration(section["overdue_check"], f"{path}: [alerts] overdue_check")
             if "overdue_check" in section else OVERDUE_CHECK_S)
    if check <= 0:
        raise ConfigError(f"{path}: [alerts] overdue_check: {section['overdue_check']!r} is no"
                          " interval: expected 1s or more, like 30s")
    hooks = section.get("webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError(f"{path}: [alerts] webhooks: expected [[alerts.webhooks]] tables")
    webhooks = tuple(_webhook(hook, f"{path}: [[alerts.webhooks]] #{n}")
                     for n, hook in enumerate(hooks, 1))
    kafka = _kafka(section["kafka"], f"{path}: [alerts.kafka]") if "kafka" in section else None
    names = [w.name for w in webhooks] + ([kafka.name] if kafka else [])
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: [alerts] two destinations named {name!r}: give "
                                   "each a different `name`")
    tenants = _table(data.get("tenants", {}), f"{path}: [tenants]")
    own: list[tuple[str, int | None, int | None]] = []
    for tenant, settings in sorted(tenants.items()):
        where = f"{path}: [tenants.{tenant}]"
        settings = _table(settings, where)
        _known(settings, TENANT_KEYS, where)
        alerts = _table(settings.get("alerts", {}), f"{path}: [tenants.{tenant}.alerts]")
        _known(alerts, TENANT_ALERT_KEYS, f"{path}: [tenants.{tenant}.alerts]")
        own.append((
            tenant,
            _window(alerts["window"], f"{path}: [tenants.{tenant}.alerts] window")
            if "window" in alerts else None,
            _count(alerts["negative_reach"], f"{path}: [tenants.{tenant}.alerts] negative_reach")
            if "negative_reach" in alerts else None,
        ))
    return AlertConfig(AlertPolicy(window, reach, tuple(own)), webhooks, kafka, path,
                       tuple(sorted(tenants)), targets_from_dict(data, path), check)


def _webhook(value: Any, where: str) -> WebhookSettings:
    hook = _table(value, where)
    _known(hook, WEBHOOK_KEYS, where)
    url = hook.get("url")
    if not isinstance(url, str):
        raise ConfigError(f"{where} url: required, an http:// or https:// URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} url: expected an http:// or https:// URL with a host, "
                               f"not {url!r}")
    insecure = hook.get("insecure", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"{where} insecure: expected true or false, not {insecure!r}")
    secret = hook.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ConfigError(f"{where} secret: expected a non-empty string")
    if secret is None and not insecure:
        raise ConfigError(f"{where} secret: required (receivers verify each alert's "
                               "signature with it); set `insecure = true` to send unsigned")
    fmt = hook.get("format", "json")
    if fmt not in ("json", "slack"):
        raise ConfigError(f"{where} format: expected \"json\" or \"slack\", not {fmt!r}")
    name = hook.get("name", url)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} name: expected a non-empty string")
    return WebhookSettings(name, url, secret, fmt, _filters(hook, where))


def _kafka(value: Any, where: str) -> KafkaAlertSettings:
    kafka = _table(value, where)
    _known(kafka, KAFKA_KEYS, where)
    topic = kafka.get("topic")
    if not isinstance(topic, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
        raise ConfigError(f"{where} topic: expected a Kafka topic name, not {topic!r}")
    bootstrap = kafka.get("bootstrap", os.environ.get("MOT_KAFKA_BOOTSTRAP", "localhost:9092"))
    if not isinstance(bootstrap, str) or not bootstrap:
        raise ConfigError(f"{where} bootstrap: expected host:port[,host:port]")
    name = kafka.get("name", f"kafka:{topic}")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} name: expected a non-empty string")
    return KafkaAlertSettings(name, topic, bootstrap, _filters(kafka, where))


def _filters(section: Mapping[str, Any], where: str) -> Filters:
    rules = _strings(section.get("rules", []), f"{where} rules")
    for rule in rules:
        if rule not in RULES:
            raise ConfigError(f"{where} rules: unknown rule {rule!r}"
                                   f"{did_you_mean(rule, RULES)} (rules: {', '.join(RULES)})")
    return Filters(frozenset(rules), frozenset(_strings(section.get("tenants", []),
                                                        f"{where} tenants")))


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of strings, not {value!r}")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a whole number of people (0 or more), "
                               f"not {value!r}")
    return value


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table, not {value!r}")
    return value


def _known(section: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in sorted(set(section) - allowed):
        raise ConfigError(f"{where} unknown key {key!r}{did_you_mean(key, allowed)}")


def rule_of(value: str) -> Rule:
    """A rule named on the command line or in a query."""
    for rule in RULES:
        if rule == value:
            return rule
    raise ConfigError(f"unknown rule {value!r}{did_you_mean(value, RULES)} "
                           f"(rules: {', '.join(RULES)})")


__all__ = ["AlertConfig", "ConfigError", "Filters", "KafkaAlertSettings", "WebhookSettings",
           "alert_config", "load_alert_config", "rule_of"]
