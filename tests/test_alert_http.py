"""GET /v1/alerts is scoped to the token's tenant; /metrics counts the outbox (SPEC §3.6)."""

from __future__ import annotations

import time

from alert_support import S, make_alert
from http_support import api

from mot.service.alerting import Outcome


def test_alerts_over_http_are_the_tokens_tenants_and_metrics_count_failures(store_url: str) -> None:
    acme, acme_later, globex = make_alert(1), make_alert(2, "stop_asking"), make_alert(3, tenant="globex")
    with api(store_url) as client:
        outbox = client.services.alert_outbox
        outbox.raise_alerts([acme, acme_later, globex])
        now = int(time.time() * S)
        outbox.enqueue("hook", lambda a: True, 10)
        claimed = outbox.claim(["hook"], "me", now, 60 * S, 10)
        outbox.settle("me", [Outcome("hook", c.stored.alert.alert_id,
                                     "failed" if c.stored.alert.tenant == "globex" else "delivered",
                                     1, now, "HTTP 410" if c.stored.alert.tenant == "globex" else None,
                                     now) for c in claimed])
        mine = client.get("acme", "/v1/alerts").json()
        assert [a["alert_id"] for a in mine] == [acme.alert_id, acme_later.alert_id]
        assert mine[0]["deliveries"] == [{"destination": "hook", "state": "delivered",
                                          "attempts": 1, "error": None}]
        assert [a["rule"] for a in client.get("acme", "/v1/alerts", rule="stop_asking").json()] == [
            "stop_asking"]
        assert client.get("acme", "/v1/alerts", failed="true").json() == []
        theirs = client.get("globex", "/v1/alerts", failed="true").json()
        assert [a["alert_id"] for a in theirs] == [globex.alert_id]
        assert client.get("acme", "/v1/alerts", rule="nonsense").status_code == 422
        assert client.client.get("/v1/alerts").status_code == 401
        metrics = client.client.get("/metrics").text
        assert "mot_alerts_raised 3.0" in metrics
        assert 'mot_alert_deliveries{state="failed"} 1.0' in metrics
        assert 'mot_alert_deliveries{state="delivered"} 2.0' in metrics


def test_an_alert_is_acknowledged_over_http_in_its_tenant_only(store_url: str) -> None:
    """POST /v1/alerts/{id}/ack does what `mot alerts ack` does: the alert is acknowledged once
    (`acked_at` stays the first time), and what is not delivered yet is not sent any more."""
    acme, other = make_alert(1), make_alert(2, tenant="globex")
    with api(store_url) as client:
        outbox = client.services.alert_outbox
        outbox.raise_alerts([acme, other])
        outbox.enqueue("hook", lambda a: True, 10)
        path = f"/v1/alerts/{acme.alert_id}/ack"
        assert client.post("globex", b"", path).status_code == 404  # another tenant's alert
        missing = client.post("acme", b"", "/v1/alerts/nope/ack")
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
        assert client.post("acme_read", b"", path).status_code == 403  # ack changes delivery
        assert client.client.post(path).status_code == 401
        first = client.post("acme", b"", path)
        assert first.status_code == 200
        record = first.json()
        assert (record["alert_id"], record["rule"], record["tenant"]) == (
            acme.alert_id, "detractor", "acme")
        assert record["acked_at"] is not None
        assert record["deliveries"] == [{"destination": "hook", "state": "acked", "attempts": 0,
                                         "error": None}]
        again = client.post("acme_write", b"", path).json()
        assert again["acked_at"] == record["acked_at"]
        now = int(time.time() * S)
        claimed = outbox.claim(["hook"], "me", now, 60 * S, 10)
        assert [c.stored.alert.alert_id for c in claimed] == [other.alert_id]  # not the acked one
        listed = client.get("acme", "/v1/alerts").json()
        assert [a["acked_at"] for a in listed] == [record["acked_at"]]
        assert client.get("globex", "/v1/alerts").json()[0]["acked_at"] is None


def test_a_tenants_token_never_reads_a_webhooks_url(store_url: str) -> None:
    """A destination is named by its URL unless mot.toml names it, and a webhook's URL is
    its credential (Slack's incoming webhooks: whoever has it posts to the channel): a
    tenant's token sees its alerts' delivery state, never the operator's URL."""
    slack = "https://hooks.slack.com/services/T0001/B0002/SeCrEtToKeN42"
    acme = make_alert(1)
    with api(store_url) as client:
        outbox = client.services.alert_outbox
        outbox.raise_alerts([acme])
        outbox.enqueue(slack, lambda a: True, 10)
        outbox.enqueue("named-hook", lambda a: True, 10)
        answer = client.get("acme", "/v1/alerts")
        assert "SeCrEtToKeN42" not in answer.text and "B0002" not in answer.text
        destinations = [d["destination"] for d in answer.json()[0]["deliveries"]]
        assert destinations == ["https://hooks.slack.com/…", "named-hook"]
        acked = client.post("acme", b"", f"/v1/alerts/{acme.alert_id}/ack")
        assert "SeCrEtToKeN42" not in acked.text
