"""Vendor webhooks: `POST /v1/webhooks/{source}`, mapped by `mot.adapters.vendors`.

Who may post:
- a vendor that signs its requests (HubSpot v3, Zendesk), when a secret is configured for
  it: the signature must verify, and its timestamp be within 5 minutes of now (replays of
  an old request are refused; a replay within the window records nothing twice, since
  every moment's id derives from the vendor's own record id). The moments go to the
  tenant of that vendor's section of the configuration.
- otherwise a bearer token with the `write` scope: the moments go to the token's tenant.

Secrets come from the configuration file (the same TOML as the vendor mappings):

    [webhooks.hubspot]
    secret = "the app's client secret"
    url = "https://mot.example.com/v1/webhooks/hubspot"   # the URL HubSpot calls (it signs it)

    [webhooks.zendesk]
    secret = "the webhook's signing secret"

or from the environment: MOT_WEBHOOK_SECRET_HUBSPOT, MOT_WEBHOOK_SECRET_ZENDESK (these win).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

from mot.adapters.vendors import SOURCES, ConfigError, VendorConfig
from mot.adapters.vendors.config import read_toml

SIGNED: Final = ("hubspot", "zendesk")
WINDOW_SECONDS: Final = 300.0
WEBHOOK_KEYS: Final = frozenset({"secret", "url"})

Source = Literal["hubspot", "salesforce", "zendesk", "mentions", "x"]
assert set(get_args(Source)) == set(SOURCES), "Source must name every vendor of SOURCES"


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The vendor mappings' configuration, and the webhook secrets of the vendors that sign."""

    vendors: VendorConfig = field(default_factory=VendorConfig)
    secrets: Mapping[str, str] = field(default_factory=dict)
    urls: Mapping[str, str] = field(default_factory=dict)
    window_seconds: float = WINDOW_SECONDS

    @classmethod
    def load(cls, path: str | Path | None, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        """Read the TOML file (or none), then the environment; ConfigError names what is wrong."""
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        if path is not None:
            data = read_toml(path)
        webhooks = data.pop("webhooks", {})
        where = str(path) if path is not None else "<config>"
        vendors = VendorConfig.from_dict(data, where) if path is not None else VendorConfig()
        if not isinstance(webhooks, dict):
            raise ConfigError(f"{where}: [webhooks] must be a table")
        secrets: dict[str, str] = {}
        urls: dict[str, str] = {}
        for source, section in webhooks.items():
            if source not in SIGNED:
                raise ConfigError(f"{where}: [webhooks.{source}]: only {', '.join(SIGNED)} sign "
                                  "their webhooks; the others post with a bearer token")
            if not isinstance(section, dict):
                raise ConfigError(f"{where}: [webhooks.{source}] must be a table")
            for key in sorted(set(section) - WEBHOOK_KEYS):
                raise ConfigError(f"{where}: [webhooks.{source}] unknown key {key!r} "
                                  f"(allowed: {', '.join(sorted(WEBHOOK_KEYS))})")
            for key, value in section.items():
                if not isinstance(value, str) or not value:
                    raise ConfigError(f"{where}: [webhooks.{source}] {key}: expected text")
            if "secret" in section:
                secrets[source] = section["secret"]
            if "url" in section:
                urls[source] = section["url"]
        for source in SIGNED:
            secret = env.get(f"MOT_WEBHOOK_SECRET_{source.upper()}")
            if secret:
                secrets[source] = secret
        return cls(vendors, secrets, urls)


# -- signatures -----------------------------------------------------------------------------

# HubSpot signs the URI with these characters decoded (and no others).
_HUBSPOT_DECODED: Final = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}
_PERCENT: Final = re.compile("|".join(_HUBSPOT_DECODED), re.IGNORECASE)


def hubspot_uri(uri: str) -> str:
    return _PERCENT.sub(lambda match: _HUBSPOT_DECODED[match.group(0).upper()], uri)


def hubspot_v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + uri + body + timestamp)), as HubSpot computes it."""
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def zendesk_signature(secret: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, timestamp + body)), as Zendesk computes it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check_hubspot(secret: str, method: str, uri: str, body: bytes, headers: Mapping[str, str],
                  now: float, window: float = WINDOW_SECONDS) -> str | None:
    """None when the request is HubSpot's (v3 signature, fresh timestamp), else the problem."""
    signature = headers.get("x-hubspot-signature-v3")
    stamp = headers.get("x-hubspot-request-timestamp")
    if not signature or not stamp:
        return "missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp"
    try:
        sent = int(stamp) / 1000  # milliseconds since the epoch
    except ValueError:
        return "X-HubSpot-Request-Timestamp is not milliseconds since the epoch"
    if abs(now - sent) > window:
        return f"X-HubSpot-Request-Timestamp is more than {window:.0f} s from now (a replay?)"
    expected = hubspot_v3_signature(secret, method, uri, body, stamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "X-HubSpot-Signature-v3 does not match"
    return None


def check_zendesk(secret: str, body: bytes, headers: Mapping[str, str], now: float,
                  window: float = WINDOW_SECONDS) -> str | None:
    """None when the request is Zendesk's (signature, fresh timestamp), else the problem."""
    signature = headers.get("x-zendesk-webhook-signature")
    stamp = headers.get("x-zendesk-webhook-signature-timestamp")
    if not signature or not stamp:
        return "missing X-Zendesk-Webhook-Signature or X-Zendesk-Webhook-Signature-Timestamp"
    try:
        sent = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
        if sent.tzinfo is None:
            raise ValueError(stamp)
        age = abs(now - sent.timestamp())
    except (ValueError, OverflowError):
        return "X-Zendesk-Webhook-Signature-Timestamp is not an ISO 8601 time with an offset"
    if age > window:
        return f"X-Zendesk-Webhook-Signature-Timestamp is more than {window:.0f} s from now (a replay?)"
    expected = zendesk_signature(secret, body, stamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "X-Zendesk-Webhook-Signature does not match"
    return None
