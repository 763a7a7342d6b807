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
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from mot.adapters.http import errors
from mot.adapters.http.auth import Credentials
from mot.adapters.http.bodies import MalformedBody, TooManyItems, split_batch
from mot.adapters.http.errors import ApiError
from mot.adapters.http.ingest import Ingest
from mot.adapters.sources.vendor import VendorStats, map_value
from mot.adapters.vendors import SOURCES, ConfigError, VendorConfig
from mot.adapters.vendors.config import read_toml
from mot.service.access import Principal, Submitted

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


# -- the route ------------------------------------------------------------------------------

def add_webhook_routes(
    app: FastAPI,
    settings: WebhookSettings,
    ingest: Ingest,
    authenticate: Callable[[HTTPAuthorizationCredentials | None], Principal],
) -> None:
    """Add `POST /v1/webhooks/{source}` to `app`."""

    @app.post(
        "/v1/webhooks/{source}",
        summary="Receive a vendor's webhook",
        response_model=None,
        tags=["ingest"],
        responses=errors.responses(400, 401, 403, 408, 409, 413, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"description": "The vendor's webhook body"}}}}},
    )
    async def webhook(
        source: Source,
        request: Request,
        credentials: Credentials,
    ) -> Response:
        """A vendor's webhook body (one event, or the array the vendor posts), mapped to moments.

        HubSpot and Zendesk requests are checked against their signature when a secret is
        configured; otherwise, and for the other sources, a bearer token with `write` is
        needed. The answer is that of POST /v1/moments, plus what the mapping did
        (`mapping`: records, messages, unmappable, not_moments and their reasons).
        """
        request_id = uuid.uuid4().hex[:16]
        secret = settings.secrets.get(source)
        principal: Principal | None = None
        if secret is None:  # authenticate before reading the body
            principal = await run_in_threadpool(authenticate, credentials)
        async with ingest.receive(request) as body:
            return await _receive(source, request, request_id, body, principal, settings, ingest)


async def _receive(source: str, request: Request, request_id: str, body: bytes,
                   principal: Principal | None, settings: WebhookSettings,
                   ingest: Ingest) -> Response:
    secret = settings.secrets.get(source)
    if secret is not None:
        now = time.time()
        if source == "hubspot":
            uri = settings.urls.get(source) or str(request.url)
            problem = check_hubspot(secret, request.method, uri, body, request.headers, now,
                                    settings.window_seconds)
        else:
            problem = check_zendesk(secret, body, request.headers, now, settings.window_seconds)
        if problem is not None:
            raise ApiError(401, f"{source} webhook refused: {problem}", code="bad_signature")
        principal = Principal(0, settings.vendors[source].tenant, frozenset({"write"}))
        config = settings.vendors
    else:
        assert principal is not None
        vendor = settings.vendors[source]
        config = replace(settings.vendors, sections={
            **settings.vendors.sections, source: replace(vendor, tenant=principal.tenant)})

    stats = VendorStats(source)

    def prepare() -> tuple[int, Iterator[list[Submitted]]]:
        # An array of more records than a request may carry is refused before it is decoded
        # whole (the vendor's mapping builds all its messages at once).
        split_batch(body, ingest.limits.max_items, keep=0)
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise MalformedBody(f"not valid JSON ({error}); nothing was recorded") from None
        incoming = map_value(SOURCES[source], value, config,
                             f"webhook:{source}:{request_id}", body, stats)
        if len(incoming) > ingest.limits.max_items:
            raise TooManyItems(ingest.limits.max_items)
        submitted = [
            Submitted(item.raw, None if item.payload is None else orjson.loads(item.payload),
                      item.origin, item.payload, item.problem)
            for item in incoming
        ]
        size = ingest.limits.chunk
        return len(submitted), (submitted[at:at + size] for at in range(0, len(submitted), size))

    recorded = await ingest.record(f"webhook:{source}", principal, prepare)
    return Response(recorded.answer(request_id, principal.tenant, mapping=stats.as_dict()),
                    media_type="application/json", headers={"X-Request-ID": request_id})
