"""POST /v1/webhooks/{source}: vendor bodies mapped by mot.adapters.vendors; HubSpot v3 and
Zendesk signatures checked with the configured secret and a 5-minute window; the other
sources (and signing ones without a secret) need a write token. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from http_support import Api, api

from mot.adapters.http.webhooks import (
    WebhookSettings,
    check_hubspot,
    hubspot_uri,
    hubspot_v3_signature,
    zendesk_signature,
)
from mot.adapters.vendors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "vendors"
HUBSPOT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
ZENDESK_SECRET = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0"
HUBSPOT_URL = "https://mot.example.com/v1/webhooks/hubspot?portal=62515&from=a%40b"


def first_line(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().splitlines()[0]


@pytest.fixture
def settings(tmp_path: Path) -> WebhookSettings:
    config = tmp_path / "mot.toml"
    config.write_text((FIXTURES / "mot.toml").read_text() + f"""
[webhooks.hubspot]
secret = "{HUBSPOT_SECRET}"
url = "{HUBSPOT_URL}"

[webhooks.zendesk]
secret = "not this one: the environment wins"
""")
    return WebhookSettings.load(config, {"MOT_WEBHOOK_SECRET_ZENDESK": ZENDESK_SECRET})


@pytest.fixture
def client(store_url: str, settings: WebhookSettings) -> Iterator[Api]:
    with api(store_url, webhooks=settings) as a:
        yield a


def hubspot_headers(body: bytes, *, age: float = 0.0, secret: str = HUBSPOT_SECRET) -> dict[str, str]:
    stamp = str(int((time.time() - age) * 1000))
    # Written out here as HubSpot documents it: base64(HMAC-SHA256(secret, method + uri + body
    # + timestamp)), the URI with %40 (and the other listed escapes) decoded.
    uri = HUBSPOT_URL.replace("%40", "@")
    digest = hmac.new(secret.encode(), b"POST" + uri.encode() + body + stamp.encode(),
                      hashlib.sha256).digest()
    return {"X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}


def zendesk_headers(body: bytes, *, age: float = 0.0) -> dict[str, str]:
    stamp = (datetime.now(UTC) - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(ZENDESK_SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp, "Content-Type": "application/json"}


def test_hubspot_signed_request_is_mapped_into_the_configured_tenant(client: Api) -> None:
    body = first_line("hubspot_engagements.jsonl")
    answer = client.client.post("/v1/webhooks/hubspot", content=body, headers=hubspot_headers(body))
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["tenant"] == "acme"
    assert data["mapping"]["source"] == "hubspot" and data["mapping"]["records"] >= 1
    recorded = [i for i in data["items"] if i["outcome"] == "recorded"]
    assert recorded
    history = client.get("acme", f"/v1/moments/{recorded[0]['moment_id']}").json()
    assert history[0]["origin"].startswith(f"webhook:hubspot:acme:{data['request_id']}")
    # HubSpot retries: the same request again records nothing twice.
    again = client.client.post("/v1/webhooks/hubspot", content=body, headers=hubspot_headers(body))
    assert {i["outcome"] for i in again.json()["items"]} <= {"duplicate"}


def test_hubspot_bad_or_stale_signatures_are_401(client: Api) -> None:
    body = first_line("hubspot_engagements.jsonl")
    head = client.services.ledger_store.head()
    for headers, problem in [
        ({}, "missing X-HubSpot-Signature-v3"),
        (hubspot_headers(body, secret="wrong"), "does not match"),
        (hubspot_headers(body, age=301), "more than 300 s from now"),
        ({**hubspot_headers(body), "X-HubSpot-Request-Timestamp": "soon"}, "not milliseconds"),
    ]:
        answer = client.client.post("/v1/webhooks/hubspot", content=body, headers=headers)
        assert answer.status_code == 401, headers
        assert problem in answer.json()["detail"]
    tampered = body.replace(b"COMPLETED", b"CANCELED", 1)
    answer = client.client.post("/v1/webhooks/hubspot", content=tampered,
                                headers=hubspot_headers(body))
    assert answer.status_code == 401
    # A write token does not stand in for the signature of a vendor that signs.
    answer = client.post("acme", body, path="/v1/webhooks/hubspot")
    assert answer.status_code == 401
    assert client.services.ledger_store.head() == head


def test_zendesk_signed_request_and_replays(client: Api) -> None:
    body = first_line("zendesk_ticket_audits.jsonl")
    answer = client.client.post("/v1/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["tenant"] == "acme" and data["counts"].get("recorded", 0) >= 1
    stale = client.client.post("/v1/webhooks/zendesk", content=body,
                               headers=zendesk_headers(body, age=600))
    assert stale.status_code == 401 and "a replay?" in stale.json()["detail"]
    forged = client.client.post("/v1/webhooks/zendesk", content=body + b" ",
                                headers=zendesk_headers(body))
    assert forged.status_code == 401


def test_unsigned_sources_need_a_write_token_and_use_its_tenant(client: Api) -> None:
    body = first_line("salesforce_activities.jsonl")
    assert client.client.post("/v1/webhooks/salesforce", content=body).status_code == 401
    assert client.post("acme_read", body, path="/v1/webhooks/salesforce").status_code == 403
    answer = client.post("globex", body, path="/v1/webhooks/salesforce")
    assert answer.status_code == 200, answer.text
    assert answer.json()["tenant"] == "globex"
    assert answer.json()["counts"].get("recorded", 0) >= 1
    assert client.post("globex", b"{not json", path="/v1/webhooks/salesforce").status_code == 400
    unknown = client.post("globex", body, path="/v1/webhooks/pipedrive")
    assert unknown.status_code == 422
    # A body the mapping cannot use is kept in the quarantine with the mapping's reason.
    odd = client.post("globex", b'{"neither": "a task nor an event"}', path="/v1/webhooks/salesforce")
    assert odd.json()["items"][0]["outcome"] == "quarantined"
    assert odd.json()["items"][0]["reason"].startswith("salesforce: ")


def test_a_signing_source_without_a_secret_takes_a_token(store_url: str) -> None:
    with api(store_url) as client:  # no configuration: no secrets
        body = first_line("zendesk_ticket_audits.jsonl")
        assert client.client.post("/v1/webhooks/zendesk", content=body).status_code == 401
        answer = client.post("globex", body, path="/v1/webhooks/zendesk")
        assert answer.status_code == 200 and answer.json()["tenant"] == "globex"


def test_signature_helpers() -> None:
    assert hubspot_uri("https://x.test/a%3Ab%2fc%3F%40%21%24%27%28%29%2A%2C%3B%20") == \
        "https://x.test/a:b/c?@!$'()*,;%20"
    signature = hubspot_v3_signature("s", "post", "https://x.test/h", b"[]", "1")
    expected = base64.b64encode(hmac.new(b"s", b"POSThttps://x.test/h[]1", hashlib.sha256).digest())
    assert signature == expected.decode()
    assert zendesk_signature("s", b"{}", "2026-01-01T00:00:00Z") == base64.b64encode(
        hmac.new(b"s", b"2026-01-01T00:00:00Z{}", hashlib.sha256).digest()).decode()
    now = 1_700_000_000.0
    headers = {"x-hubspot-signature-v3": hubspot_v3_signature("s", "POST", "u", b"", "1700000000000"),
               "x-hubspot-request-timestamp": "1700000000000"}
    assert check_hubspot("s", "POST", "u", b"", headers, now) is None
    assert check_hubspot("s", "POST", "u", b"", headers, now + 299) is None
    assert "more than" in (check_hubspot("s", "POST", "u", b"", headers, now + 301) or "")


def test_webhook_configuration_errors(tmp_path: Path) -> None:
    config = tmp_path / "mot.toml"
    config.write_text('[webhooks.x]\nsecret = "s"\n')
    with pytest.raises(ConfigError, match=r"\[webhooks.x\]: only hubspot, zendesk sign"):
        WebhookSettings.load(config, {})
    config.write_text('[webhooks.hubspot]\nsecrte = "s"\n')
    with pytest.raises(ConfigError, match="unknown key 'secrte'"):
        WebhookSettings.load(config, {})
    config.write_text('tenant = "acme"\n[hubspot]\nownres = {}\n')
    with pytest.raises(ConfigError, match="ownres"):
        WebhookSettings.load(config, {})
    assert WebhookSettings.load(None, {"MOT_WEBHOOK_SECRET_HUBSPOT": "e"}).secrets == {"hubspot": "e"}


def test_a_vendor_body_giving_a_field_twice_is_400_naming_it(client: Api) -> None:
    body = first_line("salesforce_activities.jsonl")
    twice = body.replace(b'"Subject":"Contract review"',
                         b'"Subject":"Contract review","Subject":"Other"', 1)
    assert twice != body
    answer = client.post("globex", twice, path="/v1/webhooks/salesforce")
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("records[0].Subject is given more than once")
    assert client.services.ledger_store.head() == 0


def test_signed_webhooks_are_under_their_tenants_rate_and_forgeries_under_their_own_share(
        tmp_path: Path) -> None:
    """A real `mot serve`: signed webhooks count against their tenant's --tenant-rate (they
    bypassed it: a vendor's flood was never refused), a forged one (bad signature) counts
    against no tenant's rate, and forged bodies that trickle in hold the source's own share
    of the memory, not the tenant's (globex, or anyone, could fill acme's share with them and
    leave acme's own batches 429)."""
    from test_http_fairness import answer_of
    from test_http_limits import held, moments, server, tokens

    store = str(tmp_path / "mot.db")
    token = tokens(store)
    config = tmp_path / "mot.toml"
    config.write_text((FIXTURES / "mot.toml").read_text() + f"""
[webhooks.hubspot]
secret = "{HUBSPOT_SECRET}"
url = "{HUBSPOT_URL}"
""")
    body = first_line("hubspot_engagements.jsonl")
    options = ("--config", str(config), "--tenant-rate", "0.2", "--tenant-burst", "3",
               "--max-body", "64KiB", "--memory-budget", "256KiB", "--tenant-memory", "128KiB",
               "--budget-wait", "0.5", "--read-timeout", "8")
    with server(store, *options) as (url, _), httpx.Client(base_url=url, timeout=60) as http:
        forged = [http.post("/v1/webhooks/hubspot", content=body,
                            headers=hubspot_headers(body, secret="wrong")) for _ in range(4)]
        assert [a.status_code for a in forged] == [401] * 4
        signed = [http.post("/v1/webhooks/hubspot", content=body, headers=hubspot_headers(body))
                  for _ in range(5)]
        statuses = [a.status_code for a in signed]
        assert statuses[:3] == [200] * 3, signed[0].text
        assert 429 in statuses[3:], statuses
        refused = signed[statuses.index(429)]
        assert refused.json()["code"] == "rate_limited"
        assert "--tenant-rate" in refused.json()["detail"]
        globex = {"Authorization": f"Bearer {token['globex']}"}
        assert http.post("/v1/moments", content=moments(1000), headers=globex).status_code == 200

        # Forged bodies that trickle in: two would fill a tenant's share (64 KiB each of
        # 128 KiB); they hold an eighth of the budget (one body here), the second is refused.
        head = (b"POST /v1/webhooks/hubspot HTTP/1.1\r\nHost: x\r\n"
                b"X-HubSpot-Signature-v3: forged\r\nX-HubSpot-Request-Timestamp: 0\r\n"
                b"Content-Length: 65536\r\n\r\n{\"results\"")
        trickles = held(url, head, 2)
        time.sleep(5.5)  # acme's request rate fills again (0.2 a second)
        acme = {"Authorization": f"Bearer {token['acme']}"}
        answer = http.post("/v1/moments", headers=acme,
                           content=moments(1000).replace(b'"m-', b'"a-'))
        assert answer.status_code == 200, answer.text
        assert sorted(int(answer_of(t).split(b" ", 2)[1]) for t in trickles) == [408, 429]


def test_one_body_that_two_sources_cannot_map_keeps_the_first_sources_reason(
        client: Api) -> None:
    """The same bytes posted to two vendors' webhooks are one quarantined entry (a repeat);
    it named the first source as its origin and the last one's reason ('mentions: no
    mention id ...' beside origin webhook:x:...): the reason now stays its origin's."""
    body = b'{"nothing": "here"}'
    answers = [client.post("acme", body, path=f"/v1/webhooks/{source}").json()
               for source in ("x", "mentions")]
    assert [a["items"][0]["reason"].split(":")[0] for a in answers] == ["x", "mentions"]
    [entry] = client.services.quarantine.entries()
    assert entry.origin.startswith("webhook:x:acme:") and entry.reason.startswith("x: ")
    assert entry.last_origin.startswith("webhook:mentions:acme:")
    assert (entry.repeats, entry.field) == (2, "")


def test_one_body_that_two_sources_cannot_map_tells_both_sources_reasons(client: Api) -> None:
    """The later source's reason was in its answer only: the entry kept the first source's
    (and last_origin named the later one). Each source's reason is now in the entry, once,
    however often either sends the bytes again (both stores)."""
    body = b'{"nothing": "at all"}'
    answers = [client.post("acme", body, path=f"/v1/webhooks/{source}").json()["items"][0]
               for source in ("x", "mentions", "x", "mentions")]
    [entry] = client.services.quarantine.entries()
    assert entry.reason == f"{answers[0]['reason']}; {answers[1]['reason']}"
    assert entry.reason.startswith("x: ") and "; mentions: " in entry.reason
    assert entry.origin.startswith("webhook:x:acme:")
    assert (entry.repeats, entry.field) == (4, "")


def test_forged_webhook_bodies_hold_at_most_an_eighth_of_the_memory(tmp_path: Path) -> None:
    """A real `mot serve`: the bodies of signed webhooks, read before their signature is
    checked (forgeries too, which anyone can send), had a share sized like a tenant's (half
    the budget, and a share per vendor: two vendors' forgeries held all of it). They now hold
    an eighth of --memory-budget (at least one body), all vendors together."""
    from test_http_fairness import answer_of
    from test_http_limits import send_partial, server, tokens

    store = str(tmp_path / "mot.db")
    tokens(store)
    config = tmp_path / "mot.toml"
    config.write_text((FIXTURES / "mot.toml").read_text() + f"""
[webhooks.hubspot]
secret = "{HUBSPOT_SECRET}"
url = "{HUBSPOT_URL}"
""")
    options = ("--config", str(config), "--max-body", "64KiB", "--memory-budget", "1MiB",
               "--budget-wait", "0.5", "--read-timeout", "6")
    head = (b"POST /v1/webhooks/hubspot HTTP/1.1\r\nHost: x\r\n"
            b"X-HubSpot-Signature-v3: forged\r\nX-HubSpot-Request-Timestamp: 0\r\n"
            b"Content-Length: 65536\r\n\r\n{\"results\"")
    with server(store, *options) as (url, _):
        trickles = [send_partial(url, head) for _ in range(6)]
        answers = [answer_of(t) for t in trickles]
    statuses = sorted(int(a.split(b" ", 2)[1]) for a in answers)
    # 1 MiB / 8 = 128 KiB: two bodies of 64 KiB held (then 408), the four others refused
    assert statuses == [408, 408, 429, 429, 429, 429], statuses
    refused = next(a for a in answers if a.split(b" ", 2)[1] == b"429")
    assert b"signed webhooks whose signature is not checked yet hold 131,072 bytes" in refused
